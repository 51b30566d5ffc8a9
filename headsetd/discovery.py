"""Finding HID devices, and who they are: udev/sysfs in production, recordings for --replay.

Owns: `DeviceInfo` (identity and sysfs facts of one hidraw node, device-supplied strings
already sanitised), the stable `device` id, the `Discovery` protocol (initial scan plus
hotplug, and opening a device's transport), `UdevDiscovery` (pyudev: netlink monitor started
before the scan, so nothing plugged in between is missed) and `ReplayDiscovery`.

Never does: open a device for writing, claim a USB interface, or sleep to wait for udev: the
monitor's events come after udev has run its rules (ACLs included), and several interfaces of
one device simply arrive as several events.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import structlog

from headsetd.clock import Clock
from headsetd.hid.recording import Recording
from headsetd.hid.transport import HidrawTransport, HidTransport, ReplayTransport

REPLUG_PAUSE_SECONDS = 1.0  # replay --loop: time between a recording's end and its replug
MAX_TEXT = 64  # device strings are bounded before they reach a label or a log line
_ID_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_SPACES = re.compile(r"\s+")

log = structlog.get_logger("headsetd.discovery")


def clean_text(value: str | bytes | None, limit: int = MAX_TEXT) -> str:
    """A device-supplied string made safe for labels and logs: printable, bounded, one line."""
    if value is None:
        return ""
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    text = "".join(ch if ch.isprintable() else " " for ch in value[: limit * 4])
    text = _SPACES.sub(" ", text).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _id_part(value: str) -> str:
    return _ID_UNSAFE.sub("_", value)[:MAX_TEXT]


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """One HID interface of a device, as discovered. Strings are already `clean_text`ed."""

    path: str  # /dev/hidrawN, or replay:<n> for a recording standing in for a device
    vendor_id: int
    product_id: int
    descriptor: bytes
    manufacturer: str = ""
    product: str = ""
    serial: str = ""
    firmware: str = ""  # bcdDevice as "major.minor"
    port: str = ""  # USB port path (sysfs name of the USB device, e.g. "1-1.2")
    interface: int | None = None
    id_suffix: str = ""  # set by the daemon only when two nodes would share one id

    @property
    def device_id(self) -> str:
        """Stable across replugs: vendor:product:serial, or vendor:product@port without one."""
        ids = f"{self.vendor_id:04x}:{self.product_id:04x}"
        if self.serial:
            return f"{ids}:{_id_part(self.serial)}{self.id_suffix}"
        return f"{ids}@{_id_part(self.port or self.path)}{self.id_suffix}"


class Discovery(Protocol):
    def start(self, on_add: Callable[[DeviceInfo], None], on_remove: Callable[[str], None]) -> None:
        """Watch for hotplug, then report every present device through on_add."""
        ...

    def open(self, info: DeviceInfo) -> HidTransport: ...

    def stop(self) -> None: ...


def _firmware(bcd: str | None) -> str:
    try:
        value = int(bcd or "", 16)
    except ValueError:
        return ""
    return f"{value >> 8:x}.{value & 0xFF:02x}"


def _attr(device: Any, name: str) -> str | bytes | None:
    if device is None:
        return None
    try:
        value: str | bytes | None = device.attributes.get(name)
    except (OSError, KeyError, UnicodeDecodeError):
        return None
    return value


def info_from_udev(hidraw: Any) -> DeviceInfo | None:
    """A DeviceInfo from a pyudev hidraw device, or None if it is not a HID device we can read.

    Raises OSError when sysfs cannot be read (the device vanished mid-scan, or permissions).
    """
    node = hidraw.device_node
    hid = hidraw.find_parent("hid")
    if node is None or hid is None:
        return None
    try:
        _bus, vendor, product = (int(p, 16) for p in hid.properties["HID_ID"].split(":"))
    except (KeyError, ValueError):
        return None
    descriptor = Path(hid.sys_path, "report_descriptor").read_bytes()
    usb = hidraw.find_parent("usb", "usb_device")
    interface = hidraw.find_parent("usb", "usb_interface")
    number = _attr(interface, "bInterfaceNumber")
    return DeviceInfo(
        path=node,
        vendor_id=vendor,
        product_id=product,
        descriptor=descriptor,
        manufacturer=clean_text(_attr(usb, "manufacturer")),
        product=clean_text(_attr(usb, "product") or hid.properties.get("HID_NAME")),
        serial=clean_text(_attr(usb, "serial") or hid.properties.get("HID_UNIQ")),
        firmware=_firmware(clean_text(_attr(usb, "bcdDevice"))),
        port=clean_text(usb.sys_name) if usb is not None else "",
        interface=int(number, 16) if isinstance(number, str | bytes) and number else None,
    )


class UdevDiscovery:
    """hidraw nodes through pyudev: a netlink monitor, then a scan of what is present."""

    def __init__(self) -> None:
        import pyudev  # noqa: PLC0415 - Linux only; imported where it is used

        self._pyudev = pyudev
        self._context = pyudev.Context()
        self._observer: Any = None

    def scan(self) -> Iterator[DeviceInfo]:
        for device in self._context.list_devices(subsystem="hidraw"):
            info = self._info(device)
            if info is not None:
                yield info

    def _info(self, device: Any) -> DeviceInfo | None:
        try:
            return info_from_udev(device)
        except OSError as exc:
            log.warning("device_unreadable", path=device.device_node, error=str(exc))
            return None

    def start(self, on_add: Callable[[DeviceInfo], None], on_remove: Callable[[str], None]) -> None:
        monitor = self._pyudev.Monitor.from_netlink(self._context)
        monitor.filter_by("hidraw")

        def event(action: str, device: Any) -> None:
            if action == "add":
                info = self._info(device)
                if info is not None:
                    on_add(info)
            elif action == "remove" and device.device_node:
                on_remove(device.device_node)

        # Started before the scan: a device plugged during the scan is seen twice, never
        # missed; the daemon ignores an add for a node it already watches.
        self._observer = self._pyudev.MonitorObserver(monitor, event, name="udev-monitor")
        self._observer.start()
        for info in self.scan():
            on_add(info)

    def open(self, info: DeviceInfo) -> HidTransport:
        return HidrawTransport(info.path)

    def stop(self) -> None:
        if self._observer is not None:
            self._observer.send_stop()


class ReplayDiscovery:
    """Each recording stands in for a plugged device: plugged at start, unplugged when its
    reports run out, and (with loop) plugged again, as udev would report it."""

    def __init__(
        self, recordings: Sequence[Recording], speed: float, loop: bool, clock: Clock
    ) -> None:
        self._recordings = recordings
        self._speed = speed
        self._loop = loop
        self._clock = clock
        self._stopping = threading.Event()
        self._ended: dict[str, threading.Event] = {}
        self._threads: list[threading.Thread] = []

    @staticmethod
    def info(recording: Recording, index: int) -> DeviceInfo:
        return DeviceInfo(
            path=f"replay-{index}",
            vendor_id=recording.vendor_id,
            product_id=recording.product_id,
            descriptor=recording.descriptor,
            product=clean_text(recording.name),
            port=f"replay-{index}",
        )

    def start(self, on_add: Callable[[DeviceInfo], None], on_remove: Callable[[str], None]) -> None:
        for index, recording in enumerate(self._recordings):
            thread = threading.Thread(
                target=self._plug,
                args=(recording, index, on_add, on_remove),
                name=f"replay-{index}",
                daemon=True,
            )
            self._threads.append(thread)
            thread.start()

    def _plug(
        self,
        recording: Recording,
        index: int,
        on_add: Callable[[DeviceInfo], None],
        on_remove: Callable[[str], None],
    ) -> None:
        info = self.info(recording, index)
        while not self._stopping.is_set():
            ended = threading.Event()
            self._ended[info.path] = ended
            on_add(info)
            ended.wait()  # the session closed the transport (past the last report), or stop()
            on_remove(info.path)
            # Out for a moment, as a hand replugging would be; a one-report recording must not
            # turn --loop into a busy loop.
            if not self._loop or self._stopping.wait(REPLUG_PAUSE_SECONDS / self._speed):
                return

    def open(self, info: DeviceInfo) -> HidTransport:
        recording = self._recordings[int(info.path.removeprefix("replay-"))]
        transport = ReplayTransport(recording.reports, self._speed, self._clock)
        ended = self._ended[info.path]
        return _SignallingTransport(transport, ended)

    def stop(self) -> None:
        self._stopping.set()
        for ended in self._ended.values():
            ended.set()


class _SignallingTransport:
    """Tells the replay plug thread when the session has closed its transport."""

    def __init__(self, inner: ReplayTransport, closed: threading.Event) -> None:
        self._inner = inner
        self._closed = closed

    def read(self, timeout: float) -> bytes | None:
        return self._inner.read(timeout)

    def close(self) -> None:
        self._inner.close()
        self._closed.set()
