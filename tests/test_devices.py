"""The device lifecycle on the reader loop: what is opened, what is counted, what survives a bug.
Driven through the production loop on simulated time with a scripted discovery."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from headsetd.clock import ManualClock
from headsetd.devices import Compiled, DecoderCache, Devices
from headsetd.errors import ErrorKind
from headsetd.events import Event, ReadFailed
from headsetd.fleet import DeviceRecord, Fleet
from headsetd.hid.decoder import Control, ControlValue, Reading, TelephonyDecoder
from headsetd.hid.descriptor import DescriptorError, parse_report_descriptor
from headsetd.hid.recording import RecordedReport, Recording
from headsetd.hid.source import TransportError
from headsetd.identity import DeviceIdentity
from headsetd.loop import ReaderLoop
from headsetd.replay import run_simulated
from tests.conftest import FIXTURES, RECORDINGS
from tests.scripted import Plug, ScriptedDiscovery

# A boot keyboard (HID 1.11 appendix E.6): a Generic Desktop Keyboard collection, no Telephony.
KEYBOARD = bytes.fromhex(
    "05010906a101050719e029e71500250175019508810295017508810195057501050819012905910295017503"
    "91019506750815002565050719002965 8100 c0".replace(" ", "")
)
CALL = Recording.load(RECORDINGS / "jabra_evolve-link-ms_0b0e-0307_call.hid")


def identity(n: int) -> DeviceIdentity:
    return DeviceIdentity(f"/sys/devices/usb1/1-{n}", 0x0B0E, 0x0307, port=f"1-{n}")


class Collected:
    def __init__(self) -> None:
        self.events: list[tuple[str, Event]] = []

    def __call__(self, record: DeviceRecord, events: Sequence[Event], now: float) -> None:
        self.events.extend((record.device_id, e) for e in events)


class OpenCounting(ScriptedDiscovery):
    def __init__(self, plugs: Sequence[Plug]) -> None:
        super().__init__(plugs)
        self.opened: list[str] = []

    def open(self, hid):  # type: ignore[no-untyped-def]
        self.opened.append(hid.node)
        return super().open(hid)


def test_a_keyboard_is_never_opened_and_a_headset_is() -> None:
    keyboard = Recording(KEYBOARD, reports=(RecordedReport(0.0, b"\x00" * 8),))
    discovery = OpenCounting(
        [
            Plug(0.0, identity(1), keyboard, node="/dev/hidraw0"),
            Plug(0.0, identity(2), CALL, node="/dev/hidraw1"),
        ]
    )
    fleet = run_simulated(discovery, Collected())
    assert discovery.opened == ["/dev/hidraw1"]
    assert [r.device_id for r in fleet.snapshot(0.0).devices] == ["0b0e:0307@1-2"]


class ExplodingDecoder:
    """Decodes Phone Mute presses; a report starting 0xff meets a bug."""

    controls = (Control.PHONE_MUTE,)

    def decode(self, report: bytes) -> Reading:
        if report[0] == 0xFF:
            raise ZeroDivisionError("bug")
        return Reading(1, (ControlValue(Control.PHONE_MUTE, report[0], True),))


class ExplodingCache(DecoderCache):
    def compile(self, descriptor: bytes) -> Compiled:
        parsed = parse_report_descriptor(descriptor)
        return Compiled(parsed, ExplodingDecoder())  # type: ignore[arg-type]


def test_a_bug_met_by_one_report_is_counted_and_reading_goes_on() -> None:
    reports = tuple(
        RecordedReport(float(t), b) for t, b in enumerate((b"\x01", b"\xff", b"\x00", b"\x01"))
    )
    recording = Recording(CALL.descriptor, reports=reports)
    discovery = ScriptedDiscovery([Plug(0.0, identity(1), recording)])
    clock = ManualClock()
    loop = ReaderLoop(clock, lambda exc: None, advance_clock=clock.advance_to)
    fleet = Fleet(retention=3600)
    seen = Collected()
    devices = Devices(loop, discovery, fleet, seen, ExplodingCache())
    discovery.start(loop, devices.on_change)
    loop.run()
    events = [e for _, e in seen.events]
    assert [e.event for e in events] == [
        "device_connected",
        "mute_pressed",
        "read_failed",
        "mute_pressed",
        "device_disconnected",
    ]
    assert isinstance(events[2], ReadFailed)
    assert events[2].kind is ErrorKind.INTERNAL
    (record,) = fleet.snapshot(10.0).devices
    assert record.mute_presses == 2
    assert record.errors[ErrorKind.INTERNAL] == 1


def test_the_decoder_cache_makes_a_replug_a_lookup_and_remembers_bad_descriptors() -> None:
    cache = DecoderCache(size=2)
    descriptor = CALL.descriptor
    first = cache.compile(descriptor)
    assert cache.compile(descriptor) is first
    assert isinstance(first.decoder, TelephonyDecoder)
    bad = b"\x05\x0b\x09\x05\xa1\x01"
    with pytest.raises(DescriptorError) as first_error:
        cache.compile(bad)
    with pytest.raises(DescriptorError) as second_error:
        cache.compile(bad)
    assert second_error.value is first_error.value  # parsed once
    others = sorted(FIXTURES.glob("*.hid"))[:3]
    for path in others:
        cache.compile(Recording.load(path).descriptor)
    assert cache.compile(descriptor) is not first  # bounded: evicted, compiled again


def test_unplug_in_a_call_is_one_disconnect_and_forgets_the_hook_state() -> None:
    half = Recording(CALL.descriptor, reports=CALL.reports[:2])  # off-hook, then unplugged
    fleet = run_simulated(ScriptedDiscovery([Plug(0.0, identity(1), half)]), Collected())
    (record,) = fleet.snapshot(10.0).devices
    assert (record.connected, record.disconnects) == (False, 1)
    assert record.state.off_hook is None
    assert record.hook_changes == {"off_hook": 1}


class GrantedLater(ScriptedDiscovery):
    """The node may not be opened at first (no udev rule yet); after `udevadm trigger` it is
    reported again (a "change" event) and may be."""

    def __init__(self, plugs: Sequence[Plug]) -> None:
        super().__init__(plugs)
        self.opens = 0

    def open(self, hid):  # type: ignore[no-untyped-def]
        self.opens += 1
        if self.opens == 1:
            raise TransportError(ErrorKind.ACCESS_DENIED, f"{hid.node}: permission denied")
        return super().open(hid)

    def start(self, loop: ReaderLoop, changes):  # type: ignore[no-untyped-def]
        super().start(loop, changes)
        loop.call_at(5.0, lambda: self._plug(0))  # the rule granted access: reported again


def test_a_node_reported_again_after_a_denied_open_is_read_then() -> None:
    discovery = GrantedLater([Plug(0.0, identity(1), CALL, unplug_after=None)])
    seen = Collected()
    fleet = run_simulated(discovery, seen)
    names = [e.event for _, e in seen.events]
    assert names[:3] == ["device_connected", "read_failed", "reading_resumed"]
    (record,) = fleet.snapshot(20.0).devices
    assert record.readable
    assert record.errors[ErrorKind.ACCESS_DENIED] == 1
    assert record.hook_changes.get("off_hook") == 1  # its reports were read after all
