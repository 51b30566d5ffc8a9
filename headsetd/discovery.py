"""Finding devices and their parts: udev and sysfs in production, recordings for --replay.

Owns: the part-change vocabulary (`PartAdded`, `PartRemoved`, `DiscoveryFailed`), the sysfs
reader that turns a hidraw node into its physical device's identity and its HID interface
(`SysfsReader`, rooted anywhere so tests build a fake tree), `UdevDiscovery` (pyudev: the
netlink monitor is started before the scan, so nothing plugged in between is missed, and its
socket is one more descriptor in the reader loop: no thread of its own) and `ReplayDiscovery`
(each recording stands in for a plugged device, on loop timers).

Never does: open a device for writing, claim a USB interface, or sleep to wait for udev: the
monitor's events come after udev has run its rules (ACLs included), and the parts of one
device simply arrive as several changes. Device-supplied strings are read as bytes and go
through `clean_text`, so a name that is not UTF-8 never stops a scan.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from headsetd.events import ErrorKind
from headsetd.hid.recording import Recording
from headsetd.hid.source import HidrawSource, HidSource, ReplaySource
from headsetd.identity import DeviceIdentity, HidInterface, clean_text, firmware_version
from headsetd.loop import ReaderLoop

REPLUG_PAUSE_SECONDS = 1.0  # replay --loop: time between a recording's end and its replug
_BUS_NAMES = {0x03: "usb", 0x05: "bluetooth", 0x06: "virtual"}


@dataclass(frozen=True, slots=True)
class PartAdded:
    """A part of a device appeared (or was there at start-up)."""

    device: DeviceIdentity
    hid: HidInterface


@dataclass(frozen=True, slots=True)
class PartRemoved:
    """A part went away: `part_key` is a HID node's path."""

    device_key: str
    part_key: str


@dataclass(frozen=True, slots=True)
class DiscoveryFailed:
    """Something plugged in could not be examined; counted by kind."""

    kind: ErrorKind
    path: str
    detail: str


PartChange = PartAdded | PartRemoved | DiscoveryFailed
ChangeSink = Callable[[PartChange], None]


class Discovery(Protocol):
    def start(self, loop: ReaderLoop, changes: ChangeSink) -> None:
        """Report every present part, then watch for changes; all on the loop's thread."""
        ...

    def open(self, hid: HidInterface) -> HidSource:
        """The source of a HID interface's reports; raises DeviceGone or TransportError."""
        ...

    def stop(self) -> None: ...


def _uevent(directory: Path) -> dict[str, bytes]:
    """A sysfs `uevent` file as raw KEY=value pairs (values may be any bytes)."""
    pairs: dict[str, bytes] = {}
    for line in (directory / "uevent").read_bytes().splitlines():
        key, sep, value = line.partition(b"=")
        if sep:
            pairs[key.decode("ascii", errors="replace")] = value
    return pairs


def _read(directory: Path, name: str) -> bytes | None:
    try:
        return (directory / name).read_bytes().rstrip(b"\n")
    except OSError:
        return None


def _ancestor(start: Path, has: str, stop: Path) -> Path | None:
    """The nearest directory above `start` (inside `stop`) holding a file named `has`."""
    for directory in start.parents:
        if directory == stop or stop not in directory.parents:
            return None
        if (directory / has).is_file():
            return directory
    return None


class SysfsReader:
    """Reads what a hidraw node is from sysfs: its HID parent and, if any, its USB device."""

    def __init__(self, root: Path = Path("/sys")) -> None:
        self.root = root

    def hid_part(self, hidraw_sys_path: str, node: str, bus_path: str = "") -> PartAdded | None:
        """The part a hidraw node is, or None when its HID parent is not a HID device.

        Raises OSError when sysfs cannot be read (the device vanished mid-scan, permissions).
        `bus_path` is udev's ID_PATH of the USB device, when udev is there to ask.
        """
        hidraw = Path(hidraw_sys_path)
        hid = _ancestor(hidraw, "report_descriptor", self.root / "devices")
        if hid is None:
            return None
        facts = _uevent(hid)
        try:
            bus, vendor, product = (int(p, 16) for p in facts["HID_ID"].split(b":"))
        except (KeyError, ValueError):
            return None
        descriptor = (hid / "report_descriptor").read_bytes()
        usb = _ancestor(hid, "idVendor", self.root / "devices")
        interface = _read(hid.parent, "bInterfaceNumber") if usb is not None else None
        hid_interface = HidInterface(
            node=node,
            descriptor=descriptor,
            interface=int(interface, 16) if interface else None,
        )
        if usb is None:
            # No USB parent (Bluetooth, uhid): the HID device is a device of its own.
            identity = DeviceIdentity(
                key=node,
                vendor_id=vendor,
                product_id=product,
                product=clean_text(facts.get("HID_NAME")),
                serial=clean_text(facts.get("HID_UNIQ")),
                port=clean_text(facts.get("HID_PHYS")) or _BUS_NAMES.get(bus, "hid"),
            )
            return PartAdded(identity, hid_interface)
        identity = DeviceIdentity(
            key=str(usb),
            vendor_id=vendor,
            product_id=product,
            manufacturer=clean_text(_read(usb, "manufacturer")),
            product=clean_text(_read(usb, "product") or facts.get("HID_NAME")),
            serial=clean_text(_read(usb, "serial") or facts.get("HID_UNIQ")),
            firmware=firmware_version(clean_text(_read(usb, "bcdDevice"))),
            port=usb.name,
            sys_path="/" + str(usb.relative_to(self.root)),
            bus_path=bus_path,
        )
        return PartAdded(identity, hid_interface)


class UdevDiscovery:
    """hidraw nodes through pyudev: the monitor first, then a scan of what is present."""

    def __init__(self, sysfs: SysfsReader | None = None) -> None:
        import pyudev  # noqa: PLC0415 - Linux only; imported where it is used

        self._pyudev = pyudev
        self._context = pyudev.Context()
        self._sysfs = sysfs or SysfsReader(Path(self._context.sys_path))
        self._monitor: Any = None
        self._loop: ReaderLoop | None = None
        self._changes: ChangeSink | None = None
        self._keys: dict[str, str] = {}  # node -> device key, to report removals

    def scan(self) -> list[PartChange]:
        """Every hidraw node present now (for `headsetd list` and the daemon's start)."""
        return [
            change
            for device in self._context.list_devices(subsystem="hidraw")
            if (change := self._added(device)) is not None
        ]

    def _bus_path(self, device: Any) -> str:
        usb = device.find_parent("usb", "usb_device")
        if usb is None:
            return ""
        try:
            return clean_text(usb.properties.get("ID_PATH"), limit=256)
        except (KeyError, UnicodeDecodeError):
            return ""

    def _added(self, device: Any) -> PartChange | None:
        node = device.device_node
        if not node:
            return None
        try:
            change = self._sysfs.hid_part(device.sys_path, node, self._bus_path(device))
        except OSError as exc:
            return DiscoveryFailed(ErrorKind.UNREADABLE, node, str(exc))
        if change is not None:
            self._keys[node] = change.device.key
        return change

    def start(self, loop: ReaderLoop, changes: ChangeSink) -> None:
        monitor = self._pyudev.Monitor.from_netlink(self._context)
        monitor.filter_by("hidraw")
        # Receiving before the scan: a device plugged during the scan is seen twice, never
        # missed (the lifecycle ignores an add for a node it already has).
        monitor.start()
        self._monitor, self._loop, self._changes = monitor, loop, changes
        for change in self.scan():
            changes(change)
        loop.add_reader(monitor.fileno(), self._readable)

    def _readable(self) -> None:
        changes = self._changes
        if changes is None:
            return
        while (device := self._monitor.poll(timeout=0)) is not None:
            if device.action == "add":
                change = self._added(device)
                if change is not None:
                    changes(change)
            elif device.action == "remove" and device.device_node:
                key = self._keys.pop(device.device_node, device.device_node)
                changes(PartRemoved(key, device.device_node))

    def open(self, hid: HidInterface) -> HidSource:
        return HidrawSource(hid.node)

    def stop(self) -> None:
        if self._loop is not None and self._monitor is not None:
            self._loop.remove_reader(self._monitor.fileno())
        self._changes = None


class ReplayDiscovery:
    """Each recording stands in for a plugged device: plugged at start, unplugged after its
    last report, and (with `loop`) plugged again after a pause, as udev would report it."""

    def __init__(self, recordings: Sequence[Recording], speed: float, loop: bool) -> None:
        if not speed > 0:
            raise ValueError("speed must be positive")
        self._recordings = recordings
        self._speed = speed
        self._replug = loop
        self._loop: ReaderLoop | None = None
        self._changes: ChangeSink | None = None

    @staticmethod
    def part(recording: Recording, index: int) -> PartAdded:
        key = f"replay-{index}"
        identity = DeviceIdentity(
            key=key,
            vendor_id=recording.vendor_id,
            product_id=recording.product_id,
            product=clean_text(recording.name),
            port=key,
        )
        return PartAdded(identity, HidInterface(node=key, descriptor=recording.descriptor))

    def start(self, loop: ReaderLoop, changes: ChangeSink) -> None:
        self._loop, self._changes = loop, changes
        for index in range(len(self._recordings)):
            self._plug(index)

    def _plug(self, index: int) -> None:
        if self._changes is not None:
            self._changes(self.part(self._recordings[index], index))

    def open(self, hid: HidInterface) -> HidSource:
        index = int(hid.node.removeprefix("replay-"))
        return ReplaySource(
            self._recordings[index].reports, self._speed, lambda: self._unplug(index)
        )

    def _unplug(self, index: int) -> None:
        changes, loop = self._changes, self._loop
        if changes is None or loop is None:
            return
        key = f"replay-{index}"
        changes(PartRemoved(key, key))
        if self._replug:
            # Out for a moment, as a hand replugging would be; a one-report recording must
            # not turn --loop into a busy loop.
            loop.call_later(REPLUG_PAUSE_SECONDS / self._speed, lambda: self._plug(index))

    def stop(self) -> None:
        self._changes = None
