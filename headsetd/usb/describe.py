"""`headsetd inspect FILE [--json]` for a USB descriptors file: what it says, and the kind.

Owns: telling a sysfs `descriptors` file from other inputs by its content
(`is_usb_descriptors`), the JSON-ready description of a parsed device and its classification
(`describe`, the shape the `inspect --json` contract fixes), and a table for people
(`render_table`: configurations, interfaces, audio terminals with their type names, the kind
and the rule that gave it).

Never does: read a device or sysfs, classify (that is `headsetd.classify`), or print
device-supplied text raw: function names come from the device and are escaped in the table.
"""

from __future__ import annotations

from typing import TypedDict

from headsetd.classify import Classification
from headsetd.inspect import _printable  # the one escaping rule for device text in tables
from headsetd.usb.descriptors import (
    DEVICE_DESCRIPTOR_BYTES,
    DT_DEVICE,
    AudioFunction,
    Configuration,
    UsbDescription,
    UsbDescriptorError,
    parse_usb_descriptors,
)

# USB Audio Terminal Types 1.0 (UAC2 renames 0x0706 and adds the instruments 0x0714..0x0717).
TERMINAL_TYPE_NAMES: dict[int, str] = {
    0x0100: "USB Undefined",
    0x0101: "USB Streaming",
    0x01FF: "USB Vendor Specific",
    0x0200: "Input Undefined",
    0x0201: "Microphone",
    0x0202: "Desktop Microphone",
    0x0203: "Personal Microphone",
    0x0204: "Omni-directional Microphone",
    0x0205: "Microphone Array",
    0x0206: "Processing Microphone Array",
    0x0300: "Output Undefined",
    0x0301: "Speaker",
    0x0302: "Headphones",
    0x0303: "Head Mounted Display Audio",
    0x0304: "Desktop Speaker",
    0x0305: "Room Speaker",
    0x0306: "Communication Speaker",
    0x0307: "Low Frequency Effects Speaker",
    0x0400: "Bi-directional Undefined",
    0x0401: "Handset",
    0x0402: "Headset",
    0x0403: "Speakerphone",
    0x0404: "Echo-suppressing Speakerphone",
    0x0405: "Echo-canceling Speakerphone",
    0x0500: "Telephony Undefined",
    0x0501: "Phone Line",
    0x0502: "Telephone",
    0x0503: "Down Line Phone",
    0x0600: "External Undefined",
    0x0601: "Analog Connector",
    0x0602: "Digital Audio Interface",
    0x0603: "Line Connector",
    0x0604: "Legacy Audio Connector",
    0x0605: "S/PDIF Interface",
    0x0606: "1394 DA Stream",
    0x0607: "1394 DV Stream Soundtrack",
    0x0608: "ADAT Lightpipe",
    0x0609: "TDIF",
    0x060A: "MADI",
    0x0700: "Embedded Undefined",
    0x0701: "Level Calibration Noise Source",
    0x0702: "Equalization Noise",
    0x0703: "CD Player",
    0x0704: "DAT",
    0x0705: "DCC",
    0x0706: "MiniDisk",
    0x0707: "Analog Tape",
    0x0708: "Phonograph",
    0x0709: "VCR Audio",
    0x070A: "Video Disc Audio",
    0x070B: "DVD Audio",
    0x070C: "TV Tuner Audio",
    0x070D: "Satellite Receiver Audio",
    0x070E: "Cable Tuner Audio",
    0x070F: "DSS Audio",
    0x0710: "Radio Receiver",
    0x0711: "Radio Transmitter",
    0x0712: "Multi-track Recorder",
    0x0713: "Synthesizer",
    0x0714: "Piano",
    0x0715: "Guitar",
    0x0716: "Drums/Rhythm",
    0x0717: "Other Musical Instrument",
}

# USB-IF base class codes, and the subclasses of the two that matter here.
CLASS_NAMES: dict[int, str] = {
    0x01: "Audio",
    0x02: "Communications",
    0x03: "HID",
    0x05: "Physical",
    0x06: "Imaging",
    0x07: "Printer",
    0x08: "Mass Storage",
    0x09: "Hub",
    0x0A: "CDC Data",
    0x0B: "Smart Card",
    0x0D: "Content Security",
    0x0E: "Video",
    0x0F: "Personal Healthcare",
    0x10: "Audio/Video",
    0x11: "Billboard",
    0x12: "USB Type-C Bridge",
    0xDC: "Diagnostic",
    0xE0: "Wireless Controller",
    0xEF: "Miscellaneous",
    0xFE: "Application Specific",
    0xFF: "Vendor Specific",
}
SUBCLASS_NAMES: dict[tuple[int, int], str] = {
    (0x01, 0x01): "AudioControl",
    (0x01, 0x02): "AudioStreaming",
    (0x01, 0x03): "MIDIStreaming",
    (0x0E, 0x01): "VideoControl",
    (0x0E, 0x02): "VideoStreaming",
    (0x0E, 0x03): "Video Interface Collection",
}
BADD_PROFILE_NAMES: dict[int, str] = {
    0x20: "Generic I/O",
    0x21: "Headphone",
    0x22: "Speaker",
    0x23: "Microphone",
    0x24: "Headset",
    0x25: "Headset Adapter",
    0x26: "Speakerphone",
}


class AudioFunctionJson(TypedDict):
    interfaces: list[int]
    name: str  # the AudioControl interface's string ('' when unknown, as in a file)
    inputs: list[int]  # input terminal types
    outputs: list[int]  # output terminal types


# "class" is a keyword, hence the functional form.
InterfaceJson = TypedDict(
    "InterfaceJson", {"number": int, "class": int, "subclass": int, "protocol": int}
)


class UsbInspection(TypedDict):
    vendor_id: str  # 4 hex digits, as lsusb prints it
    product_id: str
    kind: str
    has_microphone: bool
    has_speaker: bool
    uac: int | None
    audio_functions: list[AudioFunctionJson]
    interfaces: list[InterfaceJson]  # the active configuration's, first alternate setting each


def is_usb_descriptors(raw: bytes) -> bool:
    """True for a sysfs `descriptors` file: a device descriptor (0x12 0x01) that parses."""
    if raw[:2] != bytes((DEVICE_DESCRIPTOR_BYTES, DT_DEVICE)):
        return False
    try:
        parse_usb_descriptors(raw)
    except UsbDescriptorError:
        return False
    return True


def describe(usb: UsbDescription, classification: Classification) -> UsbInspection:
    """The `inspect --json` object: ids, kind, capabilities, audio functions, interfaces."""
    active = usb.active
    interfaces = (
        [] if active is None else [active.first_setting(n) for n in active.interface_numbers]
    )
    return {
        "vendor_id": f"{usb.vendor_id:04x}",
        "product_id": f"{usb.product_id:04x}",
        "kind": classification.kind.value,
        "has_microphone": classification.has_microphone,
        "has_speaker": classification.has_speaker,
        "uac": classification.uac,
        "audio_functions": [
            {
                "interfaces": list(f.interfaces),
                "name": f.name,
                "inputs": list(f.inputs),
                "outputs": list(f.outputs),
            }
            for f in classification.audio_functions
        ],
        "interfaces": [
            {
                "number": i.number,
                "class": i.interface_class,
                "subclass": i.subclass,
                "protocol": i.protocol,
            }
            for i in interfaces
        ],
    }


def terminal_type_name(terminal_type: int) -> str:
    return TERMINAL_TYPE_NAMES.get(terminal_type, "unknown")


def _class_name(interface_class: int, subclass: int) -> str:
    name = CLASS_NAMES.get(interface_class, f"class 0x{interface_class:02x}")
    sub = SUBCLASS_NAMES.get((interface_class, subclass))
    return f"{name} / {sub}" if sub else name


def _function_lines(function: AudioFunction, name: str) -> list[str]:
    numbers = ", ".join(str(n) for n in function.interfaces)
    title = f"    audio function, interfaces {numbers}: UAC{function.uac}"
    if function.badd_profile is not None:
        profile = BADD_PROFILE_NAMES.get(function.badd_profile, "reserved")
        title += f", BADD profile 0x{function.badd_profile:02x} {profile}"
    if name:
        title += f', "{_printable(name)}"'
    lines = [title]
    for direction, terminals in (("input ", function.inputs), ("output", function.outputs)):
        for t in terminals:
            where = "implied by the profile" if t.terminal_id == 0 else f"ID {t.terminal_id}"
            kind = f"0x{t.terminal_type:04x} {terminal_type_name(t.terminal_type)}"
            lines.append(f"      {direction} terminal {where}: {kind}")
    if not function.inputs and not function.outputs:
        lines.append("      no terminals")
    return lines


def _configuration_lines(
    configuration: Configuration, active: bool, names: dict[tuple[int, ...], str]
) -> list[str]:
    state = " (active)" if active else ""
    lines = [f"  configuration {configuration.value}{state}"]
    for number in configuration.interface_numbers:
        first = configuration.first_setting(number)
        alternates = sum(1 for i in configuration.interfaces if i.number == number)
        more = f", {alternates} alternate settings" if alternates > 1 else ""
        lines.append(
            f"    interface {number}: {_class_name(first.interface_class, first.subclass)}"
            f" (0x{first.interface_class:02x} 0x{first.subclass:02x}"
            f" 0x{first.protocol:02x}){more}"
        )
    for function in configuration.audio_functions:
        lines.extend(
            _function_lines(function, names.get(function.interfaces, "") if active else "")
        )
    if configuration.video_interfaces:
        numbers = ", ".join(str(n) for n in configuration.video_interfaces)
        lines.append(f"    video, interfaces {numbers}")
    return lines


def render_table(usb: UsbDescription, classification: Classification) -> str:
    """The device for people: configurations, interfaces, audio terminals, kind and rule."""
    lines = [
        f"USB device {usb.vendor_id:04x}:{usb.product_id:04x}"
        f" (USB {usb.bcd_usb >> 8:x}.{usb.bcd_usb & 0xFF:02x},"
        f" {len(usb.configurations)} configuration(s))"
    ]
    names = {f.interfaces: f.name for f in classification.audio_functions}
    for index, configuration in enumerate(usb.configurations):
        # Two configurations may share a value (seen in the fixtures): the first one is active.
        active = configuration is usb.active
        if index:
            lines.append("")
        lines.extend(_configuration_lines(configuration, active, names))
    yes = {True: "yes", False: "no"}
    uac = "none" if classification.uac is None else f"UAC{classification.uac}"
    lines.extend(
        [
            "",
            f"kind: {classification.kind.value} (rule {classification.rule})",
            f"microphone: {yes[classification.has_microphone]}, speaker:"
            f" {yes[classification.has_speaker]}, call control:"
            f" {yes[classification.call_control]}, audio class: {uac}",
        ]
    )
    return "\n".join(lines) + "\n"
