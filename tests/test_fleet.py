"""Fleet bookkeeping: counting events into records, seconds in state, replugs and retention."""

from __future__ import annotations

from headsetd.discovery import DeviceInfo
from headsetd.fleet import Fleet
from headsetd.hid.decoder import Control
from headsetd.session import DeviceDisconnected, HookChanged, MutePressed, ReportRejected

INFO = DeviceInfo("/dev/hidraw3", 0x0B0E, 0x0307, b"", serial="ABC123", port="1-1")
CONTROLS = (Control.HOOK_SWITCH, Control.PHONE_MUTE)


def record(fleet: Fleet, now: float):  # type: ignore[no-untyped-def]
    (only,) = fleet.snapshot(now).devices
    return only


def test_device_id_prefers_serial_and_falls_back_to_port() -> None:
    assert INFO.device_id == "0b0e:0307:ABC123"
    no_serial = DeviceInfo("/dev/hidraw3", 0x0B0E, 0x0307, b"", port="1-1.4")
    assert no_serial.device_id == "0b0e:0307@1-1.4"


def test_off_hook_seconds_accumulate_including_the_open_interval() -> None:
    fleet = Fleet(retention=60)
    gen = fleet.connect(INFO, CONTROLS, 0.0)
    fleet.apply(INFO.device_id, gen, [HookChanged(True)], 10.0)
    fleet.apply(INFO.device_id, gen, [HookChanged(False)], 25.0)
    fleet.apply(INFO.device_id, gen, [HookChanged(True)], 100.0)
    r = record(fleet, 104.5)
    assert r.off_hook_seconds_at(104.5) == 19.5
    assert dict(r.hook_changes) == {"off_hook": 2, "on_hook": 1}


def test_unplug_during_a_call_closes_the_interval_and_forgets_the_state() -> None:
    fleet = Fleet(retention=60)
    gen = fleet.connect(INFO, CONTROLS, 0.0)
    fleet.apply(INFO.device_id, gen, [HookChanged(True), MutePressed()], 1.0)
    fleet.apply(INFO.device_id, gen, [DeviceDisconnected("unplugged")], 4.0)
    r = record(fleet, 50.0)
    assert (r.connected, r.connects, r.disconnects) == (False, 1, 1)
    assert r.state.off_hook is None
    assert r.off_hook_seconds_at(50.0) == 3.0
    assert r.mute_presses == 1


def test_replug_keeps_counters_and_a_stale_session_cannot_unplug_the_new_one() -> None:
    fleet = Fleet(retention=60)
    old = fleet.connect(INFO, CONTROLS, 0.0)
    fleet.apply(INFO.device_id, old, [MutePressed()], 1.0)
    new = fleet.connect(INFO, CONTROLS, 2.0)  # the add arrived before the old session ended
    fleet.apply(INFO.device_id, old, [DeviceDisconnected("unplugged")], 2.5)
    r = record(fleet, 3.0)
    assert new != old
    assert (r.connected, r.connects, r.disconnects, r.mute_presses) == (True, 2, 1, 1)


def test_unplugged_devices_are_kept_for_the_retention_then_forgotten() -> None:
    fleet = Fleet(retention=30)
    gen = fleet.connect(INFO, CONTROLS, 0.0)
    fleet.apply(INFO.device_id, gen, [DeviceDisconnected("unplugged")], 10.0)
    assert len(fleet.snapshot(40.0).devices) == 1
    assert fleet.snapshot(40.5).devices == ()


def test_errors_of_one_device_leave_another_alone() -> None:
    fleet = Fleet(retention=30)
    other = DeviceInfo("/dev/hidraw4", 0x047F, 0xC056, b"", port="1-2")
    a = fleet.connect(INFO, CONTROLS, 0.0)
    b = fleet.connect(other, CONTROLS, 0.0)
    fleet.apply(INFO.device_id, a, [ReportRejected("wrong_length", "x")] * 3, 1.0)
    fleet.apply(other.device_id, b, [MutePressed()], 1.0)
    by_id = {r.info.device_id: r for r in fleet.snapshot(2.0).devices}
    assert dict(by_id[INFO.device_id].errors) == {"malformed_report": 3}
    assert dict(by_id[other.device_id].errors) == {}
    assert by_id[other.device_id].mute_presses == 1
