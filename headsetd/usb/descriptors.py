"""USB descriptors, as the kernel shows them in sysfs, parsed into frozen records.

Owns: reading the bytes of `/sys/bus/usb/devices/<dev>/descriptors` (the 18-byte device
descriptor, then every configuration with all its interface, endpoint and class-specific
descriptors) into a `UsbDescription`; grouping the interfaces of each configuration into USB
Audio Class functions (`AudioFunction`, UAC 1, 2 and 3) with their input and output terminals;
and one typed error, `UsbDescriptorError`, for anything malformed.

Never does: open a device, set a configuration, claim an interface, detach a driver or send a
control request. The standard descriptors go through pyusb's descriptor model (`usb.core.Device`,
`Configuration`, `Interface`, `Endpoint`) fed by `DescriptorBackend`, a pyusb backend that serves
them from the parsed bytes and refuses every I/O method with `IoRefused`. pyusb's other paths
all need a device handle: `usb.core.find()` with libusb would open /dev/bus/usb (and its string
and `get_active_configuration()` calls are control requests), so a backend of our own is the one
path that gives pyusb's model without a handle; libusb's own descriptor parsing is not reachable
from pyusb for bytes it did not read itself.

Class-specific AudioControl descriptors are parsed here (pyusb hands them over as an
interface's `extra_descriptors`): the header (bcdADC; UAC1's baInterfaceNr list), input and
output terminals (bTerminalID, wTerminalType, bAssocTerminal, the prefix all three versions
share) and UAC3 BADD profiles. The UAC version is the AudioControl interface's
bInterfaceProtocol (0x00, 0x20, 0x30), as snd-usb-audio decides it: a UAC3 header has no bcdADC.

Bounds: input over 64 KiB is refused before it is read; every descriptor's length is checked
against its configuration before it is used; counts are capped at the kernel's limits
(USB_MAXCONFIG, USB_MAXINTERFACES, USB_MAXALTSETTING, USB_MAXENDPOINTS). Each byte is visited a
bounded number of times, so parsing is linear in the input and cannot hang.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import usb.backend
import usb.core

MAX_DESCRIPTORS_BYTES = 64 * 1024  # a real device's file is a few KiB (3131 B in the fixtures)
DEVICE_DESCRIPTOR_BYTES = 18
CONFIGURATION_DESCRIPTOR_BYTES = 9
INTERFACE_DESCRIPTOR_BYTES = 9
ENDPOINT_DESCRIPTOR_BYTES = 7
ASSOCIATION_DESCRIPTOR_BYTES = 8
# The kernel's limits (include/linux/usb.h): it keeps no more than this of any device.
MAX_CONFIGURATIONS = 8  # USB_MAXCONFIG
MAX_INTERFACES = 32  # USB_MAXINTERFACES
MAX_ALTSETTINGS = 128  # USB_MAXALTSETTING
MAX_ENDPOINTS = 30  # USB_MAXENDPOINTS

DT_DEVICE = 0x01
DT_CONFIG = 0x02
DT_INTERFACE = 0x04
DT_ENDPOINT = 0x05
DT_INTERFACE_ASSOCIATION = 0x0B
DT_CS_INTERFACE = 0x24

CLASS_AUDIO = 0x01
SUBCLASS_AUDIOCONTROL = 0x01
CLASS_VIDEO = 0x0E

AC_HEADER = 0x01
AC_INPUT_TERMINAL = 0x02
AC_OUTPUT_TERMINAL = 0x03
TERMINAL_PREFIX_BYTES = 7  # bLength..bAssocTerminal, the same in UAC 1, 2 and 3

# bInterfaceProtocol of an AudioControl interface -> UAC version (anything else is UAC1, as in
# snd-usb-audio's snd_usb_create_mixer).
_UAC_BY_PROTOCOL = {0x20: 2, 0x30: 3}

# UAC3 Basic Audio Device Definition profiles (function subclass, UAC3 A.2). A BADD function
# carries no class-specific AudioControl descriptors: its profile stands for its terminals, and
# these are the terminal types each profile means (terminal ID 0: implied, not read).
BADD_GENERIC_IO = 0x20
BADD_HEADPHONE = 0x21
BADD_SPEAKER = 0x22
BADD_MICROPHONE = 0x23
BADD_HEADSET = 0x24
BADD_HEADSET_ADAPTER = 0x25
BADD_SPEAKERPHONE = 0x26
BADD_PROFILES = range(0x20, 0x30)  # 0x27..0x2F are reserved for future profiles
_BADD_TERMINALS: dict[int, tuple[tuple[int, ...], tuple[int, ...]]] = {  # (inputs, outputs)
    BADD_HEADPHONE: ((), (0x0302,)),  # Headphones
    BADD_SPEAKER: ((), (0x0301,)),  # Speaker
    BADD_MICROPHONE: ((0x0201,), ()),  # Microphone
    BADD_HEADSET: ((0x0402,), (0x0402,)),  # Headset both ways
    BADD_HEADSET_ADAPTER: ((0x0402,), (0x0402,)),  # a headset is what plugs into it
    BADD_SPEAKERPHONE: ((0x0403,), (0x0403,)),  # Speakerphone both ways
    # Generic I/O and the reserved profiles say nothing of what is attached: no terminals.
}


class UsbDescriptorError(ValueError):
    """The descriptors are malformed or exceed a bound; `offset` is the byte where it shows."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(f"{message} at byte {offset}")
        self.offset = offset


class IoRefused(RuntimeError):
    """Something asked `DescriptorBackend` for device I/O, which it never does."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    address: int
    attributes: int
    max_packet_size: int
    interval: int


@dataclass(frozen=True, slots=True)
class Interface:
    """One alternate setting of one interface; `extra` is the class-specific descriptors after
    it (pyusb's `extra_descriptors`)."""

    number: int
    alternate: int
    interface_class: int
    subclass: int
    protocol: int
    string_index: int  # iInterface
    endpoints: tuple[Endpoint, ...]
    extra: bytes


@dataclass(frozen=True, slots=True)
class InterfaceAssociation:
    """An interface association descriptor (IAD): interfaces that make one function."""

    first_interface: int
    interface_count: int
    function_class: int
    function_subclass: int
    function_protocol: int
    string_index: int  # iFunction

    def __contains__(self, number: object) -> bool:
        return isinstance(number, int) and 0 <= number - self.first_interface < self.interface_count


@dataclass(frozen=True, slots=True)
class Terminal:
    """An audio terminal; `terminal_id` 0 means implied by a BADD profile, not read."""

    terminal_id: int
    terminal_type: int  # wTerminalType, e.g. 0x0201 Microphone, 0x0302 Headphones
    assoc_terminal: int


@dataclass(frozen=True, slots=True)
class AudioFunction:
    """A USB Audio Class function: an AudioControl interface and the interfaces it governs."""

    interfaces: tuple[int, ...]  # interface numbers, the AudioControl one included, ascending
    control_interface: int
    string_index: int  # iInterface of the AudioControl interface (0: none)
    uac: int  # 1, 2 or 3
    bcd_adc: int | None  # the header's bcdADC (UAC 1 and 2 only)
    badd_profile: int | None  # UAC3 BADD function subclass (0x20..0x2F), else None
    inputs: tuple[Terminal, ...]
    outputs: tuple[Terminal, ...]

    @property
    def input_types(self) -> tuple[int, ...]:
        return tuple(t.terminal_type for t in self.inputs)

    @property
    def output_types(self) -> tuple[int, ...]:
        return tuple(t.terminal_type for t in self.outputs)


@dataclass(frozen=True, slots=True)
class Configuration:
    value: int  # bConfigurationValue
    string_index: int  # iConfiguration
    attributes: int
    max_power: int  # bMaxPower, in the unit of the bus speed (2 mA, or 8 mA on SuperSpeed)
    interfaces: tuple[Interface, ...]  # every alternate setting, interface by interface
    associations: tuple[InterfaceAssociation, ...]
    audio_functions: tuple[AudioFunction, ...]

    @property
    def interface_numbers(self) -> tuple[int, ...]:
        """Each interface number once, in descriptor order."""
        return tuple(dict.fromkeys(i.number for i in self.interfaces))

    def first_setting(self, number: int) -> Interface:
        """The first alternate setting of an interface (the one the kernel starts with)."""
        return next(i for i in self.interfaces if i.number == number)

    @property
    def video_interfaces(self) -> tuple[int, ...]:
        """Numbers of the Video class (0x0E) interfaces: a camera."""
        video = (i.number for i in self.interfaces if i.interface_class == CLASS_VIDEO)
        return tuple(dict.fromkeys(video))


@dataclass(frozen=True, slots=True)
class UsbDescription:
    """A USB device as its descriptors tell it; `active` is the configuration in use."""

    vendor_id: int
    product_id: int
    bcd_usb: int
    bcd_device: int
    device_class: int
    device_subclass: int
    device_protocol: int
    manufacturer_index: int
    product_index: int
    serial_index: int
    configurations: tuple[Configuration, ...]
    active_value: int | None  # bConfigurationValue of the active configuration; None: none

    @property
    def active(self) -> Configuration | None:
        return next((c for c in self.configurations if c.value == self.active_value), None)


# --- the bytes, scanned into standard descriptors with the class-specific bytes after each ---


@dataclass(frozen=True, slots=True)
class _Span:
    """A standard descriptor and the other descriptors that follow it (libusb's `extra`)."""

    offset: int
    data: bytes
    extra: bytes
    extra_offset: int


@dataclass(frozen=True, slots=True)
class _Setting:
    interface: _Span
    endpoints: tuple[_Span, ...]


@dataclass(frozen=True, slots=True)
class _ConfigLayout:
    config: _Span
    interfaces: tuple[tuple[_Setting, ...], ...]  # by interface, in order of first appearance
    associations: tuple[tuple[int, bytes], ...]  # (offset, IAD bytes)


@dataclass(frozen=True, slots=True)
class DescriptorLayout:
    """The descriptors file split into standard descriptors, lengths and counts checked."""

    device: bytes
    configurations: tuple[_ConfigLayout, ...]


@dataclass(slots=True)
class _SpanBuilder:
    offset: int
    data: bytes
    extra: list[bytes] = field(default_factory=list)

    def build(self) -> _Span:
        return _Span(self.offset, self.data, b"".join(self.extra), self.offset + len(self.data))


@dataclass(slots=True)
class _SettingBuilder:
    interface: _SpanBuilder
    endpoints: list[_SpanBuilder] = field(default_factory=list)


def _u16(data: bytes, at: int) -> int:
    return data[at] | data[at + 1] << 8


def _descriptors(data: bytes, start: int, end: int) -> Iterator[tuple[int, int, int]]:
    """(offset, bLength, bDescriptorType) of each descriptor in data[start:end]."""
    pos = start
    while pos < end:
        if end - pos < 2:
            raise UsbDescriptorError("truncated descriptor header", pos)
        length = data[pos]
        if length < 2:
            raise UsbDescriptorError(f"descriptor bLength {length}", pos)
        if pos + length > end:
            raise UsbDescriptorError(f"descriptor of {length} bytes runs past its end", pos)
        yield pos, length, data[pos + 1]
        pos += length


def _scan_configuration(raw: bytes, start: int, end: int) -> _ConfigLayout:
    config = _SpanBuilder(start, raw[start : start + raw[start]])
    owner = config  # the descriptor whose `extra` collects what follows it
    interfaces: dict[int, list[_SettingBuilder]] = {}
    setting: _SettingBuilder | None = None
    associations: list[tuple[int, bytes]] = []
    for pos, length, kind in _descriptors(raw, start + raw[start], end):
        data = raw[pos : pos + length]
        if kind == DT_INTERFACE:
            if length < INTERFACE_DESCRIPTOR_BYTES:
                raise UsbDescriptorError(f"interface descriptor of {length} bytes", pos)
            settings = interfaces.setdefault(data[2], [])
            if len(interfaces) > MAX_INTERFACES or len(settings) >= MAX_ALTSETTINGS:
                raise UsbDescriptorError("too many interfaces or alternate settings", pos)
            setting = _SettingBuilder(_SpanBuilder(pos, data))
            settings.append(setting)
            owner = setting.interface
        elif kind == DT_ENDPOINT and setting is not None:
            if length < ENDPOINT_DESCRIPTOR_BYTES:
                raise UsbDescriptorError(f"endpoint descriptor of {length} bytes", pos)
            if len(setting.endpoints) >= MAX_ENDPOINTS:
                raise UsbDescriptorError(f"more than {MAX_ENDPOINTS} endpoints", pos)
            owner = _SpanBuilder(pos, data)
            setting.endpoints.append(owner)
        else:  # class-specific, IAD, or anything else: the `extra` of the one before (libusb)
            if kind == DT_INTERFACE_ASSOCIATION:
                if length < ASSOCIATION_DESCRIPTOR_BYTES:
                    raise UsbDescriptorError(f"association descriptor of {length} bytes", pos)
                associations.append((pos, data))
            owner.extra.append(data)
    return _ConfigLayout(
        config.build(),
        tuple(
            tuple(_Setting(s.interface.build(), tuple(e.build() for e in s.endpoints)) for s in ss)
            for ss in interfaces.values()
        ),
        tuple(associations),
    )


def scan(raw: bytes) -> DescriptorLayout:
    """Split a descriptors file into its standard descriptors; raises `UsbDescriptorError`."""
    if len(raw) > MAX_DESCRIPTORS_BYTES:
        raise UsbDescriptorError(f"more than {MAX_DESCRIPTORS_BYTES} bytes", MAX_DESCRIPTORS_BYTES)
    if len(raw) < DEVICE_DESCRIPTOR_BYTES:
        raise UsbDescriptorError("truncated device descriptor", len(raw))
    if raw[0] != DEVICE_DESCRIPTOR_BYTES or raw[1] != DT_DEVICE:
        raise UsbDescriptorError("not a device descriptor (bLength 18, type 1)", 0)
    configurations: list[_ConfigLayout] = []
    pos = DEVICE_DESCRIPTOR_BYTES
    while pos < len(raw):
        if len(raw) - pos < CONFIGURATION_DESCRIPTOR_BYTES:
            raise UsbDescriptorError("truncated configuration descriptor", pos)
        length, kind, total = raw[pos], raw[pos + 1], _u16(raw, pos + 2)
        if kind != DT_CONFIG or not CONFIGURATION_DESCRIPTOR_BYTES <= length <= total:
            raise UsbDescriptorError("not a configuration descriptor", pos)
        if pos + total > len(raw):
            raise UsbDescriptorError(f"wTotalLength {total} runs past the end", pos)
        if len(configurations) == MAX_CONFIGURATIONS:
            raise UsbDescriptorError(f"more than {MAX_CONFIGURATIONS} configurations", pos)
        configurations.append(_scan_configuration(raw, pos, pos + total))
        pos += total
    if not configurations:
        raise UsbDescriptorError("no configuration", pos)
    return DescriptorLayout(raw[:DEVICE_DESCRIPTOR_BYTES], tuple(configurations))


# --- pyusb's model, fed from the layout ---


class DescriptorBackend(usb.backend.IBackend):  # type: ignore[misc]  # pyusb is untyped
    """A pyusb backend serving one device's descriptors from a `DescriptorLayout`.

    Only the descriptor methods answer. Counts are served as the layout holds them (the kernel
    fixes bNumInterfaces and bNumEndpoints to what the descriptors hold in the same way), so
    pyusb never asks for a descriptor that is not there. Every I/O method raises `IoRefused`.
    """

    def __init__(self, layout: DescriptorLayout) -> None:
        self.layout = layout

    # Descriptor reads: the whole of what this backend does.

    def enumerate_devices(self) -> Iterator[DescriptorLayout]:
        yield self.layout

    def get_device_descriptor(self, dev: DescriptorLayout) -> SimpleNamespace:
        d = dev.device
        return SimpleNamespace(
            bLength=d[0],
            bDescriptorType=d[1],
            bcdUSB=_u16(d, 2),
            bDeviceClass=d[4],
            bDeviceSubClass=d[5],
            bDeviceProtocol=d[6],
            bMaxPacketSize0=d[7],
            idVendor=_u16(d, 8),
            idProduct=_u16(d, 10),
            bcdDevice=_u16(d, 12),
            iManufacturer=d[14],
            iProduct=d[15],
            iSerialNumber=d[16],
            bNumConfigurations=len(dev.configurations),
            # Bus position and speed are sysfs attributes, not descriptors.
            address=None,
            bus=None,
            port_number=None,
            port_numbers=None,
            speed=None,
        )

    def get_configuration_descriptor(self, dev: DescriptorLayout, config: int) -> SimpleNamespace:
        layout = dev.configurations[config]
        c = layout.config.data
        return SimpleNamespace(
            bLength=c[0],
            bDescriptorType=c[1],
            wTotalLength=_u16(c, 2),
            bNumInterfaces=len(layout.interfaces),
            bConfigurationValue=c[5],
            iConfiguration=c[6],
            bmAttributes=c[7],
            bMaxPower=c[8],
            extra_descriptors=layout.config.extra,
        )

    def get_interface_descriptor(
        self, dev: DescriptorLayout, intf: int, alt: int, config: int
    ) -> SimpleNamespace:
        setting = dev.configurations[config].interfaces[intf][alt]
        i = setting.interface.data
        return SimpleNamespace(
            bLength=i[0],
            bDescriptorType=i[1],
            bInterfaceNumber=i[2],
            bAlternateSetting=i[3],
            bNumEndpoints=len(setting.endpoints),
            bInterfaceClass=i[5],
            bInterfaceSubClass=i[6],
            bInterfaceProtocol=i[7],
            iInterface=i[8],
            extra_descriptors=setting.interface.extra,
        )

    def get_endpoint_descriptor(
        self, dev: DescriptorLayout, ep: int, intf: int, alt: int, config: int
    ) -> SimpleNamespace:
        span = dev.configurations[config].interfaces[intf][alt].endpoints[ep]
        e = span.data
        audio = len(e) >= 9  # audio endpoints carry bRefresh and bSynchAddress
        return SimpleNamespace(
            bLength=e[0],
            bDescriptorType=e[1],
            bEndpointAddress=e[2],
            bmAttributes=e[3],
            wMaxPacketSize=_u16(e, 4),
            bInterval=e[6],
            bRefresh=e[7] if audio else 0,
            bSynchAddress=e[8] if audio else 0,
            extra_descriptors=span.extra,
        )

    def get_parent(self, dev: DescriptorLayout) -> None:
        return None  # descriptors do not say where a device is plugged in

    # Everything else is device I/O: refused, whatever pyusb or a caller asks.

    def _refuse(self, name: str) -> IoRefused:
        return IoRefused(f"{name}: descriptors only, no device I/O")

    def open_device(self, dev: object) -> None:
        raise self._refuse("open_device")

    def close_device(self, dev_handle: object) -> None:
        raise self._refuse("close_device")

    def set_configuration(self, dev_handle: object, config_value: object) -> None:
        raise self._refuse("set_configuration")

    def get_configuration(self, dev_handle: object) -> None:
        raise self._refuse("get_configuration")

    def set_interface_altsetting(self, dev_handle: object, intf: object, alt: object) -> None:
        raise self._refuse("set_interface_altsetting")

    def claim_interface(self, dev_handle: object, intf: object) -> None:
        raise self._refuse("claim_interface")

    def release_interface(self, dev_handle: object, intf: object) -> None:
        raise self._refuse("release_interface")

    def bulk_write(self, *args: object) -> None:
        raise self._refuse("bulk_write")

    def bulk_read(self, *args: object) -> None:
        raise self._refuse("bulk_read")

    def intr_write(self, *args: object) -> None:
        raise self._refuse("intr_write")

    def intr_read(self, *args: object) -> None:
        raise self._refuse("intr_read")

    def iso_write(self, *args: object) -> None:
        raise self._refuse("iso_write")

    def iso_read(self, *args: object) -> None:
        raise self._refuse("iso_read")

    def ctrl_transfer(self, *args: object) -> None:
        raise self._refuse("ctrl_transfer")

    def clear_halt(self, *args: object) -> None:
        raise self._refuse("clear_halt")

    def reset_device(self, *args: object) -> None:
        raise self._refuse("reset_device")

    def is_kernel_driver_active(self, *args: object) -> None:
        raise self._refuse("is_kernel_driver_active")

    def detach_kernel_driver(self, *args: object) -> None:
        raise self._refuse("detach_kernel_driver")

    def attach_kernel_driver(self, *args: object) -> None:
        raise self._refuse("attach_kernel_driver")


# --- USB Audio Class ---


@dataclass(frozen=True, slots=True)
class _AudioControl:
    """What an AudioControl interface's class-specific descriptors say."""

    bcd_adc: int | None
    streaming: tuple[int, ...]  # UAC1 header's baInterfaceNr
    inputs: tuple[Terminal, ...]
    outputs: tuple[Terminal, ...]


def _audio_control(extra: bytes, base: int, uac: int) -> _AudioControl:
    """Parse an AudioControl interface's `extra`; `base` is its offset in the file."""
    bcd_adc: int | None = None
    streaming: tuple[int, ...] = ()
    inputs: list[Terminal] = []
    outputs: list[Terminal] = []
    for pos, length, kind in _descriptors(extra, 0, len(extra)):
        if kind != DT_CS_INTERFACE or length < 3:
            continue
        d = extra[pos : pos + length]
        subtype = d[2]
        if subtype == AC_HEADER and uac in (1, 2):
            # UAC1: bcdADC, wTotalLength, bInCollection, baInterfaceNr...; UAC2: bcdADC,
            # bCategory, wTotalLength, bmControls (9 bytes).
            need = 8 if uac == 1 else 9
            if length < need or (uac == 1 and 8 + d[7] > length):
                raise UsbDescriptorError(f"UAC{uac} header of {length} bytes", base + pos)
            bcd_adc = _u16(d, 3)
            if uac == 1:
                streaming = tuple(d[8 : 8 + d[7]])
        elif subtype in (AC_INPUT_TERMINAL, AC_OUTPUT_TERMINAL):
            if length < TERMINAL_PREFIX_BYTES:
                raise UsbDescriptorError(f"audio terminal of {length} bytes", base + pos)
            terminal = Terminal(d[3], _u16(d, 4), d[6])
            (inputs if subtype == AC_INPUT_TERMINAL else outputs).append(terminal)
    return _AudioControl(bcd_adc, streaming, tuple(inputs), tuple(outputs))


def _audio_functions(
    settings: tuple[Interface, ...],
    associations: tuple[InterfaceAssociation, ...],
    offsets: dict[int, int],
) -> tuple[AudioFunction, ...]:
    """Group a configuration's interfaces into audio functions.

    An IAD that holds an AudioControl interface is one function (UAC 2 and 3 require it);
    without one, a UAC1 header's baInterfaceNr lists the streaming interfaces; failing both,
    the AudioControl interface takes the audio interfaces right after it.
    """
    first: dict[int, Interface] = {}
    for setting in settings:
        first.setdefault(setting.number, setting)
    numbers = list(first)
    controls = [
        s
        for s in first.values()
        if s.interface_class == CLASS_AUDIO and s.subclass == SUBCLASS_AUDIOCONTROL
    ]
    functions: list[AudioFunction] = []
    for ac in controls:
        uac = _UAC_BY_PROTOCOL.get(ac.protocol, 1)
        parsed = _audio_control(ac.extra, offsets[ac.number], uac)
        iad = next((a for a in associations if ac.number in a), None)
        if iad is not None:
            members = {n for n in numbers if n in iad}
        elif parsed.streaming:
            members = {ac.number, *(n for n in parsed.streaming if n in first)}
        else:
            members = {ac.number}
            for n in numbers[numbers.index(ac.number) + 1 :]:
                if first[n].interface_class != CLASS_AUDIO or first[n] in controls:
                    break
                members.add(n)
        badd = _badd_profile(uac, iad)
        inputs, outputs = parsed.inputs, parsed.outputs
        if badd is not None and not inputs and not outputs:
            implied_in, implied_out = _BADD_TERMINALS.get(badd, ((), ()))
            inputs = tuple(Terminal(0, t, 0) for t in implied_in)
            outputs = tuple(Terminal(0, t, 0) for t in implied_out)
        functions.append(
            AudioFunction(
                tuple(sorted(members)),
                ac.number,
                ac.string_index,
                uac,
                parsed.bcd_adc,
                badd,
                inputs,
                outputs,
            )
        )
    return tuple(functions)


def _badd_profile(uac: int, iad: InterfaceAssociation | None) -> int | None:
    """The UAC3 BADD profile: the IAD's bFunctionSubClass. (The AudioControl interface's own
    bInterfaceSubClass is AUDIOCONTROL, so it cannot carry one, and snd-usb-audio refuses a
    UAC 2 or 3 function without its IAD.)"""
    if uac == 3 and iad is not None and iad.function_subclass in BADD_PROFILES:
        return iad.function_subclass
    return None


def _association(data: bytes) -> InterfaceAssociation:
    return InterfaceAssociation(data[2], data[3], data[4], data[5], data[6], data[7])


def _configuration(cfg: Any, layout: _ConfigLayout) -> Configuration:
    """A configuration from pyusb's model (`cfg`) plus the offsets only the layout knows."""
    settings: list[Interface] = []
    offsets: dict[int, int] = {}
    for intf in cfg:
        span = layout.interfaces[intf.index][intf.alternate_index].interface
        offsets.setdefault(int(intf.bInterfaceNumber), span.extra_offset)
        settings.append(
            Interface(
                int(intf.bInterfaceNumber),
                int(intf.bAlternateSetting),
                int(intf.bInterfaceClass),
                int(intf.bInterfaceSubClass),
                int(intf.bInterfaceProtocol),
                int(intf.iInterface),
                tuple(
                    Endpoint(
                        int(ep.bEndpointAddress),
                        int(ep.bmAttributes),
                        int(ep.wMaxPacketSize),
                        int(ep.bInterval),
                    )
                    for ep in intf
                ),
                bytes(intf.extra_descriptors),
            )
        )
    interfaces = tuple(settings)
    associations = tuple(_association(data) for _, data in layout.associations)
    return Configuration(
        int(cfg.bConfigurationValue),
        int(cfg.iConfiguration),
        int(cfg.bmAttributes),
        int(cfg.bMaxPower),
        interfaces,
        associations,
        _audio_functions(interfaces, associations, offsets),
    )


def read_description(
    backend: DescriptorBackend, configuration_value: int | None = None
) -> UsbDescription:
    """The device `backend` serves, through pyusb's descriptor model.

    `configuration_value` is the active configuration's bConfigurationValue (sysfs
    `bConfigurationValue`); None takes the first configuration (a file has no active one), and
    a value no configuration has (0: unconfigured) leaves none active.
    """
    device = usb.core.find(backend=backend)
    configurations = tuple(
        _configuration(cfg, backend.layout.configurations[cfg.index]) for cfg in device
    )
    active = configurations[0].value if configuration_value is None else configuration_value
    return UsbDescription(
        int(device.idVendor),
        int(device.idProduct),
        int(device.bcdUSB),
        int(device.bcdDevice),
        int(device.bDeviceClass),
        int(device.bDeviceSubClass),
        int(device.bDeviceProtocol),
        int(device.iManufacturer),
        int(device.iProduct),
        int(device.iSerialNumber),
        configurations,
        active,
    )


def parse_usb_descriptors(raw: bytes, configuration_value: int | None = None) -> UsbDescription:
    """Parse a sysfs `descriptors` file; raises `UsbDescriptorError` on malformed bytes.

    See `read_description` for `configuration_value`.
    """
    return read_description(DescriptorBackend(scan(bytes(raw))), configuration_value)
