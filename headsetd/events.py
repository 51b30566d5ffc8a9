"""What happens to a device, in one vocabulary: the event records.

Owns: the device event records (`DeviceConnected` ... `ReadFailed`, with the error kinds of
headsetd.errors), the `Event` union, and `event_fields`, which turns an event into log fields.
Session state machines produce these events, the fleet counts them, the log shows them and
`headsetd replay` prints them: one vocabulary for all four.

Never does: decide when an event happens (the state machines do) or count anything (the fleet
does). Event names are the log's `event` values: snake_case, past tense.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import Enum
from typing import Any, ClassVar

from headsetd.errors import ErrorKind
from headsetd.hid.decoder import Control
from headsetd.identity import DeviceFacts


@dataclass(frozen=True, slots=True)
class DeviceConnected:
    event: ClassVar[str] = "device_connected"


@dataclass(frozen=True, slots=True)
class DeviceClassified:
    """The device's parts say something new about it (a part arrived after its admission)."""

    facts: DeviceFacts
    event: ClassVar[str] = "device_classified"


@dataclass(frozen=True, slots=True)
class DeviceDisconnected:
    reason: str  # unplugged, stopped, read_failed, replugged
    event: ClassVar[str] = "device_disconnected"


@dataclass(frozen=True, slots=True)
class HookChanged:
    off_hook: bool
    event: ClassVar[str] = "hook_changed"


@dataclass(frozen=True, slots=True)
class MutePressed:
    event: ClassVar[str] = "mute_pressed"


@dataclass(frozen=True, slots=True)
class MuteChanged:
    muted: bool
    event: ClassVar[str] = "mute_changed"


@dataclass(frozen=True, slots=True)
class ButtonPressed:
    button: Control
    event: ClassVar[str] = "button_pressed"


@dataclass(frozen=True, slots=True)
class ReportRejected:
    reason: str  # unknown_report_id, wrong_length; counted as ErrorKind.MALFORMED_REPORT
    detail: str
    event: ClassVar[str] = "report_rejected"


@dataclass(frozen=True, slots=True)
class ReadingResumed:
    """A node whose open had failed opened now (its access was granted since)."""

    node: str
    event: ClassVar[str] = "reading_resumed"


@dataclass(frozen=True, slots=True)
class ReadFailed:
    kind: ErrorKind
    detail: str
    event: ClassVar[str] = "read_failed"


Event = (
    DeviceConnected
    | DeviceClassified
    | DeviceDisconnected
    | HookChanged
    | MutePressed
    | MuteChanged
    | ButtonPressed
    | ReportRejected
    | ReadingResumed
    | ReadFailed
)


def facts_fields(facts: DeviceFacts) -> dict[str, Any]:
    """What a device is, as log fields (and `headsetd replay --json` keys)."""
    c = facts.classification
    return {
        "kind": c.kind.value,
        "call_control": c.call_control,
        "has_microphone": c.has_microphone,
        "has_speaker": c.has_speaker,
        "uac": c.uac,
        "rule": c.rule,
        "controls": [control.value for control in facts.controls],
        "hidraw": list(facts.hidraw),
        "sound": list(facts.sound),
    }


def event_fields(event: Event) -> dict[str, Any]:
    """The event as log fields: its name and its own values (enums as their label)."""
    fields: dict[str, Any] = {"event": event.event}
    if isinstance(event, DeviceClassified):
        return {**fields, **facts_fields(event.facts)}
    for key, value in asdict(event).items():
        fields[key] = value.value if isinstance(value, Enum) else value
    return fields


def is_warning(event: Event) -> bool:
    """A rejected report or a failed read is worth a look; the rest is routine."""
    return isinstance(event, ReportRejected | ReadFailed)
