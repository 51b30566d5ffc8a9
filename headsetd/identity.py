"""Who a device is: identity records, the stable `device` id, and device strings made safe.

Owns: `DeviceIdentity` (one physical device: a USB device, or a HID device with no USB parent,
or a recording standing in for one), its parts as discovered (`HidInterface`: one hidraw node
with its report descriptor; `UsbDescriptors`: the USB device's own descriptors; `SoundCard`:
an ALSA card made from one of its audio functions), `DeviceFacts` (what the parts together say
the device is), `clean_text` (every device-supplied string passes through it before it reaches a
label or a log line) and the 4-digit hex rendering of USB ids.

Never does: I/O of any kind. Discovery reads sysfs and builds these records; everything after
it (fleet, collector, logs, `list`) only reads them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from headsetd.classify import Classification
from headsetd.hid.decoder import Control

MAX_TEXT = 64  # device strings are bounded before they reach a label or a log line
_ID_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_SPACES = re.compile(r"\s+")


def clean_text(value: str | bytes | None, limit: int = MAX_TEXT) -> str:
    """A device-supplied string made safe for labels and logs: printable, bounded, one line.

    Bytes that are not UTF-8 (a Bluetooth device's name, a uhid device's uniq) are replaced,
    never raised on: a name is something to show, not something to fail discovery over.
    """
    if value is None:
        return ""
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    text = "".join(ch if ch.isprintable() else " " for ch in value[: limit * 4])
    text = _SPACES.sub(" ", text).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def hex4(value: int) -> str:
    """A USB vendor or product id as lsusb prints it (and as labels carry it): 4 hex digits."""
    return f"{value:04x}"


def firmware_version(bcd: str | None) -> str:
    """bcdDevice (sysfs hex text, e.g. "0213") as "major.minor" ("2.13"); "" when absent."""
    try:
        value = int(bcd or "", 16)
    except ValueError:
        return ""
    return f"{value >> 8:x}.{value & 0xFF:02x}"


def _id_part(value: str) -> str:
    return _ID_UNSAFE.sub("_", value)[:MAX_TEXT]


@dataclass(frozen=True, slots=True)
class DeviceIdentity:
    """One physical device as discovered. Strings are already `clean_text`ed.

    `key` tells devices apart while they are plugged in (the USB device's sysfs path; a HID
    node's path for a device with no USB parent; `replay-N` for a recording). `device_id` is
    what dashboards see, the same after a replug: `vendor:product:serial`, or
    `vendor:product@port` for a device without a serial.
    """

    key: str
    vendor_id: int
    product_id: int
    manufacturer: str = ""
    product: str = ""
    serial: str = ""
    firmware: str = ""  # bcdDevice as "major.minor"
    port: str = ""  # USB port path (the USB device's sysfs name, e.g. "1-1.2")
    sys_path: str = ""  # sysfs devpath of the USB device (/devices/.../1-1.2); "" if none
    bus_path: str = ""  # udev ID_PATH of the USB device (pci-0000:00:14.0-usb-0:1.2); "" if none
    id_suffix: str = ""  # set only when two plugged devices would share one id

    @property
    def device_id(self) -> str:
        ids = f"{hex4(self.vendor_id)}:{hex4(self.product_id)}"
        if self.serial:
            return f"{ids}:{_id_part(self.serial)}{self.id_suffix}"
        return f"{ids}@{_id_part(self.port or self.key)}{self.id_suffix}"


@dataclass(frozen=True, slots=True)
class HidInterface:
    """One hidraw node of a device: where its reports come from and what they mean."""

    node: str  # /dev/hidrawN, or replay-N for a recording
    descriptor: bytes  # the report descriptor, as sysfs gives it
    interface: int | None = None  # the USB interface number, when there is one


@dataclass(frozen=True, slots=True)
class UsbDescriptors:
    """A USB device's descriptors as sysfs gives them (`descriptors`: the device descriptor and
    every configuration), which configuration is active, and its interfaces' names."""

    data: bytes
    configuration: int | None  # bConfigurationValue; None when unconfigured or unknown
    interface_names: tuple[tuple[int, str], ...] = ()  # iInterface strings, by number


@dataclass(frozen=True, slots=True)
class SoundCard:
    """An ALSA card made from one of the device's audio functions."""

    key: str  # the card's sysfs path
    number: int
    name: str  # the card's id, e.g. "Headset" (what `aplay -l` shows in brackets)
    interface: int | None = None  # the USB interface it is bound to (the AudioControl one)


Part = HidInterface | UsbDescriptors | SoundCard


@dataclass(frozen=True, slots=True)
class DeviceFacts:
    """What a device's parts together say: its classification, the controls its telephony
    interfaces report, and where its parts are (for `list` and `status`)."""

    classification: Classification
    controls: tuple[Control, ...] = ()
    hidraw: tuple[str, ...] = ()  # every hidraw node, telephony or not
    sound: tuple[str, ...] = ()  # ALSA card names
