"""A headset's HID session state and its pure transitions.

Owns: `HeadsetState` (what is known of a headset's controls), `step(state, reading, now)`, the
pure transition from one decoded report to the next state and its events, and
`decode_and_step`, the same from report bytes (a malformed report is an event, not an error).

Never does: I/O, keep time, or hold anything but values: the reader loop (headsetd.loop) and
the device lifecycle (headsetd.devices) call these functions and own everything that moves.
"""

from __future__ import annotations

from dataclasses import dataclass

from headsetd.events import (
    ButtonPressed,
    Event,
    HookChanged,
    MuteChanged,
    MutePressed,
    ReportRejected,
)
from headsetd.hid.decoder import Control, MalformedReport, Reading, TelephonyDecoder


@dataclass(frozen=True, slots=True)
class HeadsetState:
    """What is known about a headset's controls. None means not known yet."""

    off_hook: bool | None = None
    muted: bool | None = None  # only devices whose Phone Mute is absolute report a state
    held: frozenset[Control] = frozenset()  # press-type controls now non-zero, for edges


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
