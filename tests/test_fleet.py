"""Fleet bookkeeping: counting events into records, seconds in state, replugs and retention."""

from __future__ import annotations

from headsetd.events import DeviceDisconnected, HookChanged, MutePressed, ReportRejected
from headsetd.fleet import Fleet
from headsetd.hid.decoder import Control
from headsetd.identity import DeviceIdentity

INFO = DeviceIdentity("/sys/devices/usb1/1-1", 0x0B0E, 0x0307, serial="ABC123", port="1-1")
CONTROLS = (Control.HOOK_SWITCH, Control.PHONE_MUTE)


def record(fleet: Fleet, now: float):  # type: ignore[no-untyped-def]
    (only,) = fleet.snapshot(now).devices
    return only


def test_device_id_prefers_serial_and_falls_back_to_port() -> None:
    assert INFO.device_id == "0b0e:0307:ABC123"
    no_serial = DeviceIdentity("/sys/devices/usb1/1-1.4", 0x0B0E, 0x0307, port="1-1.4")
    assert no_serial.device_id == "0b0e:0307@1-1.4"


def test_off_hook_seconds_accumulate_including_the_open_interval() -> None:
    fleet = Fleet(retention=60)
    fleet.connect(INFO, CONTROLS, 0.0)
    fleet.apply(INFO.device_id, [HookChanged(True)], 10.0)
    fleet.apply(INFO.device_id, [HookChanged(False)], 25.0)
    fleet.apply(INFO.device_id, [HookChanged(True)], 100.0)
    r = record(fleet, 104.5)
    assert r.off_hook_seconds_at(104.5) == 19.5
    assert dict(r.hook_changes) == {"off_hook": 2, "on_hook": 1}


def test_unplug_during_a_call_closes_the_interval_and_forgets_the_state() -> None:
    fleet = Fleet(retention=60)
    fleet.connect(INFO, CONTROLS, 0.0)
    fleet.apply(INFO.device_id, [HookChanged(True), MutePressed()], 1.0)
    fleet.apply(INFO.device_id, [DeviceDisconnected("unplugged")], 4.0)
    r = record(fleet, 50.0)
    assert (r.connected, r.connects, r.disconnects) == (False, 1, 1)
    assert r.state.off_hook is None
    assert r.off_hook_seconds_at(50.0) == 3.0
    assert r.mute_presses == 1


def test_replug_keeps_counters_and_a_replug_before_the_unplug_counts_both() -> None:
    fleet = Fleet(retention=60)
    fleet.connect(INFO, CONTROLS, 0.0)
    fleet.apply(INFO.device_id, [MutePressed()], 1.0)
    fleet.connect(INFO, CONTROLS, 2.0)  # the add arrived before the unplug was seen
    r = record(fleet, 3.0)
    assert (r.connected, r.connects, r.disconnects, r.mute_presses) == (True, 2, 1, 1)


def test_unplugged_devices_are_kept_for_the_retention_then_forgotten() -> None:
    fleet = Fleet(retention=30)
    fleet.connect(INFO, CONTROLS, 0.0)
    fleet.apply(INFO.device_id, [DeviceDisconnected("unplugged")], 10.0)
    assert len(fleet.snapshot(40.0).devices) == 1
    assert fleet.snapshot(40.5).devices == ()


def test_errors_of_one_device_leave_another_alone() -> None:
    fleet = Fleet(retention=30)
    other = DeviceIdentity("/sys/devices/usb1/1-2", 0x047F, 0xC056, port="1-2")
    fleet.connect(INFO, CONTROLS, 0.0)
    fleet.connect(other, CONTROLS, 0.0)
    fleet.apply(INFO.device_id, [ReportRejected("wrong_length", "x")] * 3, 1.0)
    fleet.apply(other.device_id, [MutePressed()], 1.0)
    by_id = {r.device_id: r for r in fleet.snapshot(2.0).devices}
    assert dict(by_id[INFO.device_id].errors) == {"malformed_report": 3}
    assert dict(by_id[other.device_id].errors) == {}
    assert by_id[other.device_id].mute_presses == 1
