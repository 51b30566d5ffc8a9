"""A headset's session: its state, the events it emits, and the read loop that feeds them.

Owns: `HeadsetState`, the event records, the pure transition `step(state, reading, now)`, and
`Session`, which reads one device's transport, decodes, steps, and hands events to a sink.

Never does: write to the device, sleep to wait for anything, or let one bad report end the
session: a malformed report becomes a `ReportRejected` event and the loop goes on. Only the
transport saying the device is gone (or unreadable) ends it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

from headsetd.clock import Clock
from headsetd.hid.decoder import Control, MalformedReport, Reading, TelephonyDecoder
from headsetd.hid.transport import DeviceGone, HidTransport, TransportError


@dataclass(frozen=True, slots=True)
class HeadsetState:
    """What is known about a headset's controls. None means not known yet."""

    off_hook: bool | None = None
    muted: bool | None = None  # only devices whose Phone Mute is absolute report a state
    held: frozenset[Control] = frozenset()  # press-type controls now non-zero, for edges


@dataclass(frozen=True, slots=True)
class DeviceConnected:
    event: ClassVar[str] = "device_connected"


@dataclass(frozen=True, slots=True)
class DeviceDisconnected:
    reason: str
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
    reason: str  # the `headsetd_device_errors_total` kind is "malformed_report"
    detail: str
    event: ClassVar[str] = "report_rejected"


@dataclass(frozen=True, slots=True)
class ReadFailed:
    kind: str  # read, access_denied, open, internal: the `headsetd_device_errors_total` kind
    detail: str
    event: ClassVar[str] = "read_failed"


Event = (
    DeviceConnected
    | DeviceDisconnected
    | HookChanged
    | MutePressed
    | MuteChanged
    | ButtonPressed
    | ReportRejected
    | ReadFailed
)


def event_fields(event: Event) -> dict[str, Any]:
    """The event as log fields: its name and its own values (enums as their label)."""
    fields: dict[str, Any] = {"event": event.event}
    for key, value in asdict(event).items():
        fields[key] = value.value if isinstance(value, Control) else value
    return fields


def step(state: HeadsetState, reading: Reading, now: float) -> tuple[HeadsetState, list[Event]]:
    """Apply one decoded report to the state: the new state and what happened.

    Hook Switch absolute is the hook state; relative is a toggle (known only once an absolute
    value was seen: a toggle from unknown stays unknown, and counts as a hook-switch press).
    Phone Mute relative is a press (a 1 then 0 pulse is one press); absolute is the mute state.
    Every other watched control counts a press on its rising edge. `now` is accepted so the
    signature stays (state, reading, now) for transitions that will need time.
    """
    del now  # no transition depends on time yet
    off_hook, muted = state.off_hook, state.muted
    held = set(state.held)
    events: list[Event] = []
    for cv in reading.values:
        on = cv.value != 0
        control = cv.control
        if control is Control.HOOK_SWITCH and not cv.relative:
            if on != off_hook:
                off_hook = on
                events.append(HookChanged(on))
        elif control is Control.PHONE_MUTE and not cv.relative:
            if on != muted:
                muted = on
                events.append(MuteChanged(on))
        else:
            pressed = on and control not in held
            if on:
                held.add(control)
            else:
                held.discard(control)
            if not pressed:
                continue
            if control is Control.PHONE_MUTE:
                events.append(MutePressed())
            elif control is Control.HOOK_SWITCH and off_hook is not None:
                off_hook = not off_hook
                events.append(HookChanged(off_hook))
            else:
                events.append(ButtonPressed(control))
    if not events and held == state.held:
        return state, events
    return HeadsetState(off_hook, muted, frozenset(held)), events


def decode_and_step(
    decoder: TelephonyDecoder, state: HeadsetState, report: bytes, now: float
) -> tuple[HeadsetState, list[Event]]:
    """One report through the decoder and `step`; a malformed one is an event, not an error."""
    try:
        reading = decoder.decode(report)
    except MalformedReport as exc:
        return state, [ReportRejected(exc.reason, f"{exc}; report {report[:64].hex()}")]
    return step(state, reading, now)


# Where a session's events go (the fleet, plus the log): (events, now).
EventSink = Callable[[list[Event], float], None]


class Session:
    """Reads one device until it is gone: transport -> decoder -> step -> sink.

    Runs on its own thread (Solaar's model); `stop()` takes effect within one read timeout,
    because closing a hidraw handle from another thread does not interrupt a blocking read.
    """

    def __init__(  # noqa: PLR0917 - one session, its collaborators
        self,
        transport: HidTransport,
        decoder: TelephonyDecoder,
        sink: EventSink,
        clock: Clock,
        read_timeout: float,
        on_exit: Callable[[DeviceDisconnected, float], None],
    ) -> None:
        self._transport = transport
        self._decoder = decoder
        self._sink = sink
        self._clock = clock
        self._read_timeout = read_timeout
        self._on_exit = on_exit
        self._stopping = threading.Event()
        self._stop_reason = "stopped"
        self.state = HeadsetState()

    def stop(self, reason: str = "stopped") -> None:
        self._stop_reason = reason
        self._stopping.set()

    def run(self) -> None:
        reason = "stopped"
        try:
            while not self._stopping.is_set():
                try:
                    report = self._transport.read(self._read_timeout)
                except DeviceGone as exc:
                    reason = exc.reason
                    break
                except TransportError as exc:
                    self._sink([ReadFailed(exc.kind, str(exc))], self._clock.now())
                    reason = "read_failed"
                    break
                if report is not None:
                    self.feed(report, self._clock.now())
            else:
                reason = self._stop_reason
        finally:
            self._transport.close()
            self._on_exit(DeviceDisconnected(reason), self._clock.now())

    def feed(self, report: bytes, now: float) -> None:
        try:
            self.state, events = decode_and_step(self._decoder, self.state, report, now)
        except Exception as exc:  # a bug met by one report must not end the session
            events = [
                ReadFailed("internal", f"{type(exc).__name__}: {exc}; report {report[:64].hex()}")
            ]
        if events:
            self._sink(events, now)
