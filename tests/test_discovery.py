"""Discovery on a fake sysfs tree built from real fixtures, and the device lifecycle on top of it:
one physical device from its parts, whatever order they arrive in; a replug; a part that
vanishes mid-scan; a HID device with no USB parent; a name that is not UTF-8.

The tree is what Linux shows for a USB headset (paths as in /sys/devices): the USB device with
its `descriptors`, its interfaces, a HID device per HID interface with a hidraw child, and the
ALSA card of its audio function. The USB descriptors are the Plantronics USB headset's
(tests/fixtures/usb), the three HID interfaces carry the Blackwire 3220's three report
descriptors (tests/fixtures/hid: telephony, consumer, vendor).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path

import pytest

from headsetd.classify import Kind
from headsetd.discovery import (
    ChangeSink,
    DiscoveryFailed,
    PartAdded,
    PartChange,
    PartRemoved,
    SysfsReader,
)
from headsetd.events import ErrorKind, Event
from headsetd.fleet import DeviceRecord
from headsetd.hid.recording import Recording
from headsetd.hid.source import HidSource, ReplaySource
from headsetd.identity import HidInterface, SoundCard, UsbDescriptors
from headsetd.loop import ReaderLoop
from headsetd.replay import run_simulated
from tests.conftest import FIXTURES, REPO

USB = REPO / "tests" / "fixtures" / "usb" / "plantronics_usb-headset_047f-c001.desc"
BLACKWIRE = "plantronics_blackwire-3220_047f-c056"
PORT = "1-1.4"
DEVICE = f"devices/pci0000:00/0000:00:14.0/usb1/1-1/{PORT}"
# A boot keyboard (HID 1.11 appendix E.6), trimmed to its key array.
KEYBOARD = bytes.fromhex("05010906a101050719e029e71500250175019508810295017508810195017508c0")


def _write(path: Path, content: bytes | str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode() if isinstance(content, str) else content)


class FakeSys:
    """A /sys tree with one USB headset."""

    def __init__(self, root: Path, name: bytes = b"Plantronics Blackwire 3220 Series") -> None:
        self.root = root
        self.usb = root / DEVICE
        _write(self.usb / "descriptors", USB.read_bytes())
        _write(self.usb / "bConfigurationValue", "1\n")
        _write(self.usb / "idVendor", "047f\n")
        _write(self.usb / "idProduct", "c056\n")
        _write(self.usb / "manufacturer", "Plantronics\n")
        _write(self.usb / "product", name + b"\n")
        _write(self.usb / "serial", "D1A2B3C4\n")
        _write(self.usb / "bcdDevice", "0213\n")
        _write(self.usb / "uevent", "DEVTYPE=usb_device\n")
        _write(self.interface(0) / "interface", "Plantronics Audio\n")
        self.hidraw: list[tuple[str, str]] = []  # (sys path, node)
        for n, part in enumerate(("telephony", "consumer", "vendor-ffa0")):
            descriptor = Recording.load(FIXTURES / f"{BLACKWIRE}_{part}.hid").descriptor
            hid = self.interface(3 + n) / f"0003:047F:C056.000{n + 1}"
            _write(hid / "report_descriptor", descriptor)
            _write(
                hid / "uevent",
                b"HID_ID=0003:0000047F:0000C056\nHID_NAME=" + name + b"\nHID_UNIQ=\n",
            )
            hidraw = hid / "hidraw" / f"hidraw{n}"
            _write(hidraw / "dev", f"246:{n}\n")
            self.hidraw.append((str(hidraw), f"/dev/hidraw{n}"))
        self.card = self.interface(0) / "sound" / "card2"
        _write(self.card / "number", "2\n")
        _write(self.card / "id", "C001\n")

    def interface(self, number: int) -> Path:
        directory = self.usb / f"{PORT}:1.{number}"
        _write(directory / "bInterfaceNumber", f"{number:02x}\n")
        return directory

    def parts(self) -> list[PartAdded]:
        reader = SysfsReader(self.root)
        found: list[PartAdded | None] = [reader.usb_device(str(self.usb))]
        found += [reader.hid_part(path, node) for path, node in self.hidraw]
        found.append(reader.sound_card(str(self.card)))
        assert all(part is not None for part in found)
        return [part for part in found if part is not None]


class PartsDiscovery:
    """Plays part changes on the loop, in the order given; HID sources are empty recordings."""

    def __init__(self, changes: Sequence[tuple[float, PartChange]]) -> None:
        self.changes = changes
        self.opened: list[str] = []
        self._changes: ChangeSink | None = None

    def start(self, loop: ReaderLoop, changes: ChangeSink) -> None:
        self._changes = changes
        for at, change in self.changes:
            loop.call_at(at, lambda change=change: changes(change))

    def open(self, hid: HidInterface) -> HidSource:
        self.opened.append(hid.node)
        return ReplaySource((), 1.0, lambda: None)

    def stop(self) -> None:
        self._changes = None


class Events:
    def __init__(self) -> None:
        self.seen: list[tuple[str, Event]] = []

    def __call__(self, record: DeviceRecord, events: Sequence[Event], now: float) -> None:
        self.seen.extend((record.device_id, e) for e in events)

    def names(self) -> list[str]:
        return [e.event for _, e in self.seen]


def test_the_sysfs_reader_sees_one_device_in_every_part(tmp_path: Path) -> None:
    parts = FakeSys(tmp_path).parts()
    assert {p.device.key for p in parts} == {str(tmp_path / DEVICE)}
    assert {p.device.device_id for p in parts} == {"047f:c056:D1A2B3C4"}
    usb, *hids, card = parts
    assert isinstance(usb.part, UsbDescriptors)
    assert usb.part.configuration == 1
    assert usb.part.interface_names == ((0, "Plantronics Audio"),)
    assert usb.device.sys_path == f"/{DEVICE}"
    assert usb.device.firmware == "2.13"
    assert [p.part.interface for p in hids if isinstance(p.part, HidInterface)] == [3, 4, 5]
    assert card.part == SoundCard(str(tmp_path / DEVICE / f"{PORT}:1.0/sound/card2"), 2, "C001", 0)


@pytest.mark.parametrize("order", list(itertools.permutations(range(5)))[::7])
def test_parts_in_any_order_make_one_headset_read_on_its_telephony_node_only(
    tmp_path: Path, order: tuple[int, ...]
) -> None:
    parts = FakeSys(tmp_path).parts()
    discovery = PartsDiscovery([(float(t), parts[i]) for t, i in enumerate(order)])
    events = Events()
    fleet = run_simulated(discovery, events)
    (record,) = fleet.snapshot(10.0).devices
    assert record.device_id == "047f:c056:D1A2B3C4"
    assert record.connected
    facts = record.facts
    assert facts.classification.kind is Kind.HEADSET
    assert facts.classification.call_control
    assert facts.hidraw == ("/dev/hidraw0", "/dev/hidraw1", "/dev/hidraw2")
    assert facts.sound == ("C001",)
    assert discovery.opened == ["/dev/hidraw0"]  # consumer and vendor interfaces stay closed
    assert events.names()[0] == "device_connected"
    assert events.names().count("device_connected") == 1


def test_a_replug_is_a_second_connect_of_the_same_device(tmp_path: Path) -> None:
    parts = FakeSys(tmp_path).parts()
    key = parts[0].device.key
    unplug = [PartRemoved(key, node) for _, node in FakeSys(tmp_path).hidraw]
    changes: list[tuple[float, PartChange]] = [(0.0, p) for p in parts]
    changes += [(5.0, u) for u in unplug] + [(5.0, PartRemoved(key, key))]
    changes += [(9.0, p) for p in parts]
    events = Events()
    fleet = run_simulated(PartsDiscovery(changes), events)
    (record,) = fleet.snapshot(10.0).devices
    assert (record.connects, record.disconnects, record.connected) == (2, 1, True)
    assert events.names().count("device_disconnected") == 1


def test_a_part_that_vanishes_mid_scan_is_an_unreadable_error_not_a_crash(tmp_path: Path) -> None:
    fake = FakeSys(tmp_path)
    usb, _telephony, *rest = fake.parts()
    path, node = fake.hidraw[0]
    (Path(path).parent.parent / "uevent").unlink()  # going away while it is being read
    with pytest.raises(FileNotFoundError):
        SysfsReader(tmp_path).hid_part(path, node)
    failed = DiscoveryFailed(ErrorKind.UNREADABLE, node, "No such file or directory")
    changes: list[tuple[float, PartChange]] = [(0.0, usb), (0.0, failed)]
    fleet = run_simulated(PartsDiscovery(changes + [(1.0, p) for p in rest]), Events())
    snapshot = fleet.snapshot(2.0)
    assert snapshot.discovery_errors == {ErrorKind.UNREADABLE: 1}
    (record,) = snapshot.devices  # the rest of the device is still seen
    assert record.facts.classification.kind is Kind.HEADSET
    assert not record.facts.classification.call_control


def test_a_keyboard_on_a_device_without_audio_is_never_tracked_or_opened(tmp_path: Path) -> None:
    fake = FakeSys(tmp_path)
    no_audio = REPO / "tests" / "fixtures" / "usb" / "apple_iphone-6s_05ac-12a8.desc"
    _write(fake.usb / "descriptors", no_audio.read_bytes())  # configuration 1 has no audio
    _write(Path(fake.hidraw[0][0]).parent.parent / "report_descriptor", KEYBOARD)
    reader = SysfsReader(tmp_path)
    keyboard = reader.hid_part(*fake.hidraw[0])
    assert keyboard is not None
    discovery = PartsDiscovery([(0.0, reader.usb_device(str(fake.usb))), (0.0, keyboard)])
    fleet = run_simulated(discovery, Events())
    assert fleet.snapshot(1.0).devices == ()
    assert discovery.opened == []


def test_a_hid_device_without_a_usb_parent_is_its_own_device_with_a_mangled_name(
    tmp_path: Path,
) -> None:
    """A Bluetooth headset: the HID device hangs off a Bluetooth connection; its name is not
    UTF-8 (real devices send Latin-1 and worse)."""
    descriptor = Recording.load(FIXTURES / f"{BLACKWIRE}_telephony.hid").descriptor
    hid = tmp_path / "devices/virtual/misc/uhid/0005:047F:C056.0009"
    _write(hid / "report_descriptor", descriptor)
    _write(
        hid / "uevent", b"HID_ID=0005:0000047F:0000C056\nHID_NAME=Caf\xe9 \xff\xfe\nHID_UNIQ=\xc3\n"
    )
    hidraw = hid / "hidraw" / "hidraw7"
    hidraw.mkdir(parents=True)
    part = SysfsReader(tmp_path).hid_part(str(hidraw), "/dev/hidraw7")
    assert part is not None
    assert part.device.key == "/dev/hidraw7"
    assert part.device.product == "Caf\ufffd \ufffd\ufffd"
    assert part.device.device_id.startswith("047f:c056")
    fleet = run_simulated(PartsDiscovery([(0.0, part)]), Events())
    (record,) = fleet.snapshot(1.0).devices
    assert record.facts.classification.kind is Kind.HEADSET
