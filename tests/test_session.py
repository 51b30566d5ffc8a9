"""The pure state machine: step(state, reading, now) -> (state, events), and decode_and_step."""

from __future__ import annotations

import pytest

from headsetd.events import ButtonPressed, HookChanged, MuteChanged, MutePressed, ReportRejected
from headsetd.hid.decoder import Control, ControlValue, Reading, TelephonyDecoder
from headsetd.hid.descriptor import parse_report_descriptor
from headsetd.session import HeadsetState, decode_and_step, step


def reading(*values: tuple[Control, int, bool]) -> Reading:
    return Reading(1, tuple(ControlValue(c, v, rel) for c, v, rel in values))


HOOK, MUTE = Control.HOOK_SWITCH, Control.PHONE_MUTE
ABS, REL = False, True


def run(readings: list[Reading], state: HeadsetState | None = None) -> list[object]:
    state = state or HeadsetState()
    seen: list[object] = []
    for i, r in enumerate(readings):
        state, events = step(state, r, float(i))
        seen.extend(events)
    return seen


def test_hook_state_is_unknown_until_reported() -> None:
    assert HeadsetState().off_hook is None
    state, events = step(HeadsetState(), reading((HOOK, 0, ABS)), 0.0)
    assert state.off_hook is False
    assert events == [HookChanged(False)]


def test_absolute_hook_emits_only_changes() -> None:
    events = run([reading((HOOK, v, ABS)) for v in (1, 1, 0, 0, 1)])
    assert events == [HookChanged(True), HookChanged(False), HookChanged(True)]


def test_relative_mute_pulse_is_one_press() -> None:
    events = run([reading((HOOK, 1, ABS), (MUTE, v, REL)) for v in (1, 0, 1, 0)])
    assert events == [HookChanged(True), MutePressed(), MutePressed()]


def test_relative_mute_held_over_several_reports_is_one_press() -> None:
    events = run([reading((MUTE, v, REL)) for v in (1, 1, 1, 0)])
    assert events == [MutePressed()]


def test_absolute_mute_is_a_state() -> None:
    events = run([reading((MUTE, v, ABS)) for v in (1, 1, 0)])
    assert events == [MuteChanged(True), MuteChanged(False)]


def test_relative_hook_toggles_a_known_state() -> None:
    state = HeadsetState(off_hook=False)
    events = run([reading((HOOK, v, REL)) for v in (1, 0, 1, 0)], state)
    assert events == [HookChanged(True), HookChanged(False)]


def test_relative_hook_from_unknown_is_a_press_not_a_guess() -> None:
    state, events = step(HeadsetState(), reading((HOOK, 1, REL)), 0.0)
    assert state.off_hook is None
    assert events == [ButtonPressed(HOOK)]


@pytest.mark.parametrize(
    "control",
    [Control.VOLUME_UP, Control.VOLUME_DOWN, Control.CONSUMER_MUTE, Control.FLASH, Control.DROP],
)
def test_buttons_count_rising_edges_whatever_their_flags(control: Control) -> None:
    for relative in (ABS, REL):
        events = run([reading((control, v, relative)) for v in (0, 1, 1, 0, 1)])
        assert events == [ButtonPressed(control), ButtonPressed(control)]


def test_unchanged_reading_returns_the_same_state_object() -> None:
    state = HeadsetState(off_hook=True)
    new, events = step(state, reading((HOOK, 1, ABS), (MUTE, 0, REL)), 0.0)
    assert new is state
    assert events == []


# An array-style Consumer Control (as many keyboards and some dongles declare it):
# Usage Page Consumer, Usage Consumer Control, Collection Application, Report ID 3,
# Logical 0..0x3ff, Usage Min 0, Usage Max 0x3ff, Report Size 16, Count 2, Input (Data,Array).
ARRAY_DESCRIPTOR = bytes.fromhex(
    "050c0901a1018503150026ff0319002aff03751095028100c0"
    # Telephony Headset, Report ID 4: Hook Switch (abs), Phone Mute (rel), 6 bits padding.
    "050b0905a10185041500250109207501950181020 92f8106750695018103c0".replace(" ", "")
)


def test_array_fields_report_presses_by_usage_index() -> None:
    decoder = TelephonyDecoder(parse_report_descriptor(ARRAY_DESCRIPTOR))
    assert set(decoder.controls) == {
        Control.CONSUMER_MUTE,
        Control.VOLUME_UP,
        Control.VOLUME_DOWN,
        Control.HOOK_SWITCH,
        Control.PHONE_MUTE,
    }
    state = HeadsetState()
    events: list[object] = []
    # volume up (0xe9) pressed in slot 2, then released, then mute (0xe2) in slot 1
    for report in ("030000e900", "0300000000", "03e2000000", "0300000000"):
        state, got = decode_and_step(decoder, state, bytes.fromhex(report), 0.0)
        events += got
    assert events == [ButtonPressed(Control.VOLUME_UP), ButtonPressed(Control.CONSUMER_MUTE)]


def test_malformed_reports_become_events_and_leave_state_alone() -> None:
    decoder = TelephonyDecoder(parse_report_descriptor(ARRAY_DESCRIPTOR))
    state = HeadsetState(off_hook=True)
    for report, reason in (
        ("0701", "unknown_report_id"),
        ("04", "wrong_length"),
        ("040100", "wrong_length"),
        ("", "wrong_length"),
    ):
        new, events = decode_and_step(decoder, state, bytes.fromhex(report), 0.0)
        assert new is state
        assert len(events) == 1
        assert isinstance(events[0], ReportRejected)
        assert events[0].reason == reason
