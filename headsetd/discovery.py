"""Finding devices and their parts: udev and sysfs in production, recordings for --replay.

Owns: the part-change vocabulary (`PartAdded`, `PartRemoved`, `DiscoveryFailed`), the sysfs
reader that turns a USB device, a hidraw node or an ALSA card into its physical device's
identity and the part it is (`SysfsReader`, rooted anywhere, so tests build a fake tree),
`UdevDiscovery` (pyudev: usb_device, hidraw and sound; the netlink monitor is started before
the scan, so nothing plugged in between is missed, and its socket is one more descriptor in the
reader loop: no thread of its own) and `ReplayDiscovery` (each recording, USB descriptors file
or both stand in for a plugged device, on loop timers).

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

from headsetd.errors import ErrorKind
from headsetd.hid.recording import Recording
from headsetd.hid.source import HidrawSource, HidSource, ReplaySource
from headsetd.identity import (
    DeviceIdentity,
    HidInterface,
    Part,
    SoundCard,
    UsbDescriptors,
    clean_text,
    firmware_version,
)
from headsetd.loop import ReaderLoop
from headsetd.usb.descriptors import UsbDescriptorError, parse_usb_descriptors

REPLUG_PAUSE_SECONDS = 1.0  # replay --loop: time between a recording's end and its replug
_BUS_NAMES = {0x03: "usb", 0x05: "bluetooth", 0x06: "virtual"}


@dataclass(frozen=True, slots=True)
class PartAdded:
    """A part of a device appeared (or was there at start-up)."""

    device: DeviceIdentity
    part: Part

    @property
    def part_key(self) -> str:
        return part_key(self.device, self.part)


@dataclass(frozen=True, slots=True)
class PartRemoved:
    """A part went away. `part_key` is a HID node's path, a sound card's sysfs path, or the
    device key itself: the USB device went, and every part with it."""

    device_key: str
    part_key: str


def part_key(device: DeviceIdentity, part: Part) -> str:
    """How a part is told apart within its device."""
    match part:
        case HidInterface(node=node):
            return node
        case SoundCard(key=key):
            return key
        case UsbDescriptors():
            return device.key


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
    """Reads what a USB device, a hidraw node or a sound card is, from sysfs files only."""

    def __init__(self, root: Path = Path("/sys")) -> None:
        self.root = root

    def _usb_identity(self, usb: Path, bus_path: str, hid: dict[str, bytes]) -> DeviceIdentity:
        return DeviceIdentity(
            key=str(usb),
            vendor_id=int(_read(usb, "idVendor") or b"0", 16),
            product_id=int(_read(usb, "idProduct") or b"0", 16),
            manufacturer=clean_text(_read(usb, "manufacturer")),
            product=clean_text(_read(usb, "product") or hid.get("HID_NAME")),
            serial=clean_text(_read(usb, "serial") or hid.get("HID_UNIQ")),
            firmware=firmware_version(clean_text(_read(usb, "bcdDevice"))),
            port=usb.name,
            sys_path="/" + str(usb.relative_to(self.root)),
            bus_path=bus_path,
        )

    def usb_device(self, usb_sys_path: str, bus_path: str = "") -> PartAdded:
        """A USB device and its descriptors. Raises OSError when sysfs cannot be read."""
        usb = Path(usb_sys_path)
        data = (usb / "descriptors").read_bytes()
        configuration = _read(usb, "bConfigurationValue")
        names = []
        for interface in sorted(usb.glob(f"{usb.name}:*")):
            number, name = _read(interface, "bInterfaceNumber"), _read(interface, "interface")
            if number and name:
                names.append((int(number, 16), clean_text(name)))
        # An empty bConfigurationValue is an unconfigured device: no configuration is active.
        descriptors = UsbDescriptors(data, int(configuration or b"0"), tuple(names))
        return PartAdded(self._usb_identity(usb, bus_path, {}), descriptors)

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
        return PartAdded(self._usb_identity(usb, bus_path, facts), hid_interface)

    def sound_card(self, card_sys_path: str, bus_path: str = "") -> PartAdded | None:
        """The part an ALSA card is, or None when it is not a USB device's (onboard audio)."""
        card = Path(card_sys_path)
        usb = _ancestor(card, "idVendor", self.root / "devices")
        number = _read(card, "number")
        if usb is None or number is None:
            return None
        interface = _read(card.parent.parent, "bInterfaceNumber")  # .../1-1:1.0/sound/card1
        sound = SoundCard(
            key=str(card),
            number=int(number),
            name=clean_text(_read(card, "id")),
            interface=int(interface, 16) if interface else None,
        )
        return PartAdded(self._usb_identity(usb, bus_path, {}), sound)


class UdevDiscovery:
    """USB devices, hidraw nodes and sound cards through pyudev: the monitor first, then a scan
    of what is present (USB devices first, so a device's kind is known before its nodes)."""

    def __init__(self, sysfs: SysfsReader | None = None) -> None:
        import pyudev  # noqa: PLC0415 - Linux only; imported where it is used

        self._pyudev = pyudev
        self._context = pyudev.Context()
        self._sysfs = sysfs or SysfsReader(Path(self._context.sys_path))
        self._monitor: Any = None
        self._loop: ReaderLoop | None = None
        self._changes: ChangeSink | None = None
        self._keys: dict[str, tuple[str, str]] = {}  # sys path -> (device key, part key)

    def scan(self) -> list[PartChange]:
        """Every part present now (for `headsetd list` and the daemon's start)."""
        found = [
            *self._context.list_devices(subsystem="usb", DEVTYPE="usb_device"),
            *self._context.list_devices(subsystem="hidraw"),
            *self._context.list_devices(subsystem="sound"),
        ]
        return [change for device in found if (change := self._added(device)) is not None]

    def _bus_path(self, device: Any) -> str:
        usb = device if device.device_type == "usb_device" else None
        usb = usb or device.find_parent("usb", "usb_device")
        if usb is None:
            return ""
        try:
            return clean_text(usb.properties.get("ID_PATH"), limit=256)
        except (KeyError, UnicodeDecodeError):
            return ""

    def _added(self, device: Any) -> PartChange | None:
        """The part a udev device is, or None when it is none of ours."""
        subsystem, path = device.subsystem, device.sys_path
        try:
            if subsystem == "usb" and device.device_type == "usb_device":
                change: PartAdded | None = self._sysfs.usb_device(path, self._bus_path(device))
            elif subsystem == "hidraw" and device.device_node:
                change = self._sysfs.hid_part(path, device.device_node, self._bus_path(device))
            elif subsystem == "sound" and device.sys_name.startswith("card"):
                change = self._sysfs.sound_card(path, self._bus_path(device))
            else:
                return None
        except OSError as exc:
            return DiscoveryFailed(ErrorKind.UNREADABLE, device.device_node or path, str(exc))
        if change is not None:
            self._keys[path] = (change.device.key, change.part_key)
        return change

    def start(self, loop: ReaderLoop, changes: ChangeSink) -> None:
        monitor = self._pyudev.Monitor.from_netlink(self._context)
        monitor.filter_by("usb", "usb_device")
        monitor.filter_by("hidraw")
        monitor.filter_by("sound")
        # Receiving before the scan: a device plugged during the scan is seen twice, never
        # missed (the lifecycle ignores an add for a part it already has).
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
            # "change" on a hidraw node follows `udevadm trigger` (the udev rule may have granted
            # access since): the same part again, which the lifecycle takes as a retry.
            if device.action == "add" or (device.action == "change" and device.device_node):
                change = self._added(device)
                if change is not None:
                    changes(change)
            elif device.action == "remove" and device.sys_path in self._keys:
                changes(PartRemoved(*self._keys.pop(device.sys_path)))

    def open(self, hid: HidInterface) -> HidSource:
        return HidrawSource(hid.node)

    def stop(self) -> None:
        if self._loop is not None and self._monitor is not None:
            self._loop.remove_reader(self._monitor.fileno())
        self._changes = None


@dataclass(frozen=True, slots=True)
class ReplayedDevice:
    """What stands in for one plugged device: a recording, a USB descriptors file, or both."""

    name: str
    recording: Recording | None = None
    usb: bytes | None = None  # a sysfs `descriptors` file's bytes

    def identity(self, index: int) -> DeviceIdentity:
        key = f"replay-{index}"
        if self.recording is not None:
            vendor, product = self.recording.vendor_id, self.recording.product_id
            name = self.recording.name or self.name
        else:
            vendor, product = _usb_ids(self.usb or b"")
            name = self.name
        return DeviceIdentity(key, vendor, product, product=clean_text(name), port=key)

    def parts(self, index: int) -> list[PartAdded]:
        identity = self.identity(index)
        parts = []
        if self.usb is not None:
            # A file has no active configuration: its first one is read (as `inspect` does).
            parts.append(PartAdded(identity, UsbDescriptors(self.usb, None)))
        if self.recording is not None:
            hid = HidInterface(node=identity.key, descriptor=self.recording.descriptor)
            parts.append(PartAdded(identity, hid))
        return parts


def _usb_ids(data: bytes) -> tuple[int, int]:
    try:
        usb = parse_usb_descriptors(data)
    except UsbDescriptorError:
        return 0, 0
    return usb.vendor_id, usb.product_id


class ReplayDiscovery:
    """Each replayed device is plugged at start; one with a recording is unplugged after its
    last report and (with `loop`) plugged again after a pause, as udev would report it; one
    without stays plugged."""

    def __init__(self, devices: Sequence[ReplayedDevice], speed: float, loop: bool) -> None:
        if not speed > 0:
            raise ValueError("speed must be positive")
        self._devices = devices
        self._speed = speed
        self._replug = loop
        self._loop: ReaderLoop | None = None
        self._changes: ChangeSink | None = None

    @classmethod
    def of_recordings(
        cls, recordings: Sequence[Recording], speed: float = 1.0, loop: bool = False
    ) -> ReplayDiscovery:
        return cls([ReplayedDevice(r.name, r) for r in recordings], speed, loop)

    def start(self, loop: ReaderLoop, changes: ChangeSink) -> None:
        self._loop, self._changes = loop, changes
        for index in range(len(self._devices)):
            self._plug(index)

    def _plug(self, index: int) -> None:
        for part in self._devices[index].parts(index):
            if self._changes is not None:
                self._changes(part)

    def open(self, hid: HidInterface) -> HidSource:
        index = int(hid.node.removeprefix("replay-"))
        recording = self._devices[index].recording
        reports = recording.reports if recording is not None else ()
        return ReplaySource(reports, self._speed, lambda: self._unplug(index))

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
