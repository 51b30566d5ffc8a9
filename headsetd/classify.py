"""What kind of device a USB/HID device is, from its own descriptors.

Owns: `Kind`, the precedence of rules that gives it (`RULES`, a table: each row a name, a
predicate over the `Evidence`, the kind it gives, and the fixtures that prove it), and
`classify()`, which turns a `UsbDescription` and the device's HID report descriptors into a
`Classification` with the capabilities beside the kind.

Never does: look at vendor or product ids (no per-model table), read a device, or guess from
names. The USB rules are the precedence of tests/fixtures/usb/README.md, in its order; HID
report descriptors add what USB descriptors cannot say:
- a Game Pad (0x01:0x05) or Joystick (0x01:0x04) application collection makes a device `other`,
  first of all: game controllers (DualSense, SCUF) declare a Headset terminal for their jack;
- a Telephony application collection with inputs is `call_control`. It does not change a USB
  device's kind: a speakerphone or a conference webcam with call buttons keeps its kind, and a
  USB device with call buttons but no audio function cannot carry a call's audio over USB (a
  button pod, or a base whose audio goes to a desk phone), so it stays `other`: counting it as
  a headset would hide a desk that has none;
- a device with no USB parent (Bluetooth HID, uhid, a replayed recording) has no USB
  descriptors at all; with call control it is a `headset`: hook switch and phone mute are what
  headsets and handsets carry, and its audio travels outside USB (Bluetooth HFP), where
  descriptors cannot show it. Such a headset is taken to have a microphone and a speaker, as
  the kind says (a headset is both): otherwise every Bluetooth headset would look like
  headphones to the "no microphone on this desk" alert. Where USB descriptors exist,
  has_microphone and has_speaker say exactly what their terminals show.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from headsetd.hid.decoder import has_telephony_inputs
from headsetd.hid.descriptor import ReportDescriptor
from headsetd.usb.descriptors import AudioFunction, UsbDescription


class Kind(StrEnum):
    """A device's kind; the value is the `kind` label in metrics and JSON."""

    HEADSET = "headset"
    HEADPHONES = "headphones"
    SPEAKERPHONE = "speakerphone"
    MICROPHONE = "microphone"
    WEBCAM = "webcam"
    OTHER = "other"


# Terminal types (USB Audio Terminal Types 1.0, section 2) by what they mean for a person.
MICROPHONE_INPUTS = frozenset({*range(0x0201, 0x0207), 0x0401, 0x0402})  # mics, handset, headset
SPEAKER_OUTPUTS = frozenset({*range(0x0301, 0x0308), 0x0401, 0x0402})  # speakers, headphones...
SPEAKERPHONES = frozenset({0x0403, 0x0404, 0x0405})  # plain, echo-suppressing, echo-canceling
EXTERNAL_CONNECTORS = range(0x0600, 0x0700)  # analog, digital, line, S/PDIF, ADAT, MADI...

GENERIC_DESKTOP_JOYSTICK = 0x0001_0004
GENERIC_DESKTOP_GAME_PAD = 0x0001_0005


def _audio(
    usb: UsbDescription | None,
) -> tuple[tuple[AudioFunction, ...], frozenset[int], frozenset[int]]:
    """The active configuration's audio functions, their input and their output terminal types."""
    active = usb.active if usb is not None else None
    functions = active.audio_functions if active is not None else ()
    inputs = frozenset(t for f in functions for t in f.input_types)
    outputs = frozenset(t for f in functions for t in f.output_types)
    return functions, inputs, outputs


@dataclass(frozen=True, slots=True)
class Evidence:
    """What the rules look at: the active configuration's audio and video, and the HID side."""

    usb: bool  # the device has USB descriptors (False: Bluetooth, uhid, a recording alone)
    audio: bool  # an audio function in the active configuration
    microphone: bool  # a microphone-type input terminal
    speaker: bool  # a speaker-type output terminal
    speakerphone: bool  # a speakerphone terminal, either side
    external_connector: bool  # a 0x06xx terminal, either side
    video: bool  # a Video class interface
    game_controller: bool  # a HID Game Pad or Joystick application collection
    call_control: bool  # a HID Telephony application collection with inputs

    @classmethod
    def of(cls, usb: UsbDescription | None, hid: Sequence[ReportDescriptor]) -> Evidence:
        active = usb.active if usb is not None else None
        functions, inputs, outputs = _audio(usb)
        applications = {app for descriptor in hid for app in descriptor.applications}
        return cls(
            usb=usb is not None,
            audio=bool(functions),
            microphone=bool(inputs & MICROPHONE_INPUTS),
            speaker=bool(outputs & SPEAKER_OUTPUTS),
            speakerphone=bool((inputs | outputs) & SPEAKERPHONES),
            external_connector=any(t in EXTERNAL_CONNECTORS for t in inputs | outputs),
            video=active is not None and bool(active.video_interfaces),
            game_controller=bool(
                applications & {GENERIC_DESKTOP_JOYSTICK, GENERIC_DESKTOP_GAME_PAD}
            ),
            call_control=any(has_telephony_inputs(d) for d in hid),
        )


@dataclass(frozen=True, slots=True)
class Rule:
    """One row of the precedence. `fixtures` prove it: "usb/<stem>" is a descriptors file in
    tests/fixtures/usb (with "@<bConfigurationValue>" when not its first configuration), with
    the HID report descriptors of that device where the tests have them; "hid/<stem>" is a
    device with no USB parent, from tests/fixtures/hid."""

    name: str
    applies: Callable[[Evidence], bool]
    kind: Kind
    fixtures: tuple[str, ...]


# First rule that applies wins. The USB rows are the fixtures' README precedence, in its order.
RULES: tuple[Rule, ...] = (
    Rule(
        "game_controller",
        lambda e: e.game_controller,
        Kind.OTHER,
        ("usb/sony_dualsense-controller_054c-0ce6",),
    ),
    Rule(
        "call_control_without_usb",
        lambda e: not e.usb and e.call_control,
        Kind.HEADSET,
        (
            "hid/jabra_evolve-link-ms_0b0e-0307",
            "hid/plantronics_blackwire-3220_047f-c056_telephony",
            "hid/yealink_wh66_6993-b02b",
        ),
    ),
    Rule(
        "no_audio_function",
        lambda e: not e.audio,
        Kind.OTHER,
        ("usb/apple_iphone-6s_05ac-12a8", "usb/apple_iphone-6s_05ac-12a8@3"),
    ),
    Rule(
        "speakerphone_terminal",
        lambda e: e.speakerphone,
        Kind.SPEAKERPHONE,
        ("usb/dell_mh3021p-speakerphone_413c-81e3",),
    ),
    Rule(
        "external_connector",
        lambda e: e.external_connector,
        Kind.OTHER,
        (
            "usb/dell_wd15-dock-usb-audio_0bda-402e",
            "usb/elgato_4k-x-capture-card_0fd9-009b",
            "usb/gigabyte_trx40-onboard-realtek-usb-audio_0414-a002",
            "usb/m-audio_micro-dac_0763-201a",
        ),
    ),
    Rule(
        "video_with_microphone",
        lambda e: e.video and e.microphone,
        Kind.WEBCAM,
        (
            "usb/logitech_c270-webcam_046d-0825",
            "usb/generic_hd-video-camera-with-speaker-and-mic_349c-3307",
            "usb/rockchip_uvc-camera-with-speaker-and-mic_2207-0018",
        ),
    ),
    Rule(
        "microphone_and_speaker",
        lambda e: e.microphone and e.speaker,
        Kind.HEADSET,
        (
            "usb/logitech_usb-headset-h340_046d-0a38",
            "usb/plantronics_usb-headset_047f-c001",
            "usb/steelseries_arctis-7-wireless-adapter_1038-1260",
            "usb/lenovo_thinkpad-usb-c-dock-audio_17ef-30f7",
            "usb/apple_usb-c-to-3.5mm-headphone-jack-adapter_05ac-110a@2",
        ),
    ),
    Rule(
        "speaker_only",
        lambda e: e.speaker,
        Kind.HEADPHONES,
        ("usb/edifier_hal0-2.0-se-qr30-speakers_2d99-a101", "usb/smsl_d6s-usb-dac_152a-85dd"),
    ),
    Rule(
        "microphone_only",
        lambda e: e.microphone,
        Kind.MICROPHONE,
        ("usb/apple_iphone-6s_05ac-12a8@2",),
    ),
)
# No row applies: an audio function with no typed terminal at all (a USB-MIDI instrument's
# AudioControl, a BADD Generic I/O). No real fixture reaches it, so it is not a row of the
# table; tests/test_classify.py shows it on two synthetic devices.
FALLBACK = "no_typed_terminal"


@dataclass(frozen=True, slots=True)
class AudioFunctionSummary:
    """An audio function as `headsetd list`/`inspect` show it; `name` is '' when unknown."""

    interfaces: tuple[int, ...]
    name: str
    inputs: tuple[int, ...]  # input terminal types
    outputs: tuple[int, ...]  # output terminal types


@dataclass(frozen=True, slots=True)
class Classification:
    kind: Kind
    has_microphone: bool  # a microphone-type or speakerphone input terminal
    has_speaker: bool  # a speaker-type or speakerphone output terminal
    call_control: bool  # a Telephony collection with inputs (hook switch, mute...)
    uac: int | None  # the highest UAC version among the audio functions; None without one
    audio_functions: tuple[AudioFunctionSummary, ...]
    rule: str  # the RULES row (or FALLBACK) that gave the kind


def _summary(function: AudioFunction, names: Mapping[int, str]) -> AudioFunctionSummary:
    return AudioFunctionSummary(
        function.interfaces,
        names.get(function.control_interface, ""),
        function.input_types,
        function.output_types,
    )


def classify(
    usb: UsbDescription | None,
    hid: Sequence[ReportDescriptor],
    names: Mapping[int, str] | None = None,
) -> Classification:
    """Classify a device from its USB descriptors (None: no USB parent) and HID descriptors.

    `names` maps interface numbers to their sysfs `interface` strings (the kernel read them at
    enumeration; reading them needs no control request) and names the audio functions.
    """
    evidence = Evidence.of(usb, hid)
    rule = next((r for r in RULES if r.applies(evidence)), None)
    functions, inputs, outputs = _audio(usb)
    headset_without_usb = rule is not None and rule.name == "call_control_without_usb"
    return Classification(
        kind=rule.kind if rule is not None else Kind.OTHER,
        has_microphone=headset_without_usb or bool(inputs & (MICROPHONE_INPUTS | SPEAKERPHONES)),
        has_speaker=headset_without_usb or bool(outputs & (SPEAKER_OUTPUTS | SPEAKERPHONES)),
        call_control=evidence.call_control,
        uac=max((f.uac for f in functions), default=None),
        audio_functions=tuple(_summary(f, names or {}) for f in functions),
        rule=rule.name if rule is not None else FALLBACK,
    )
