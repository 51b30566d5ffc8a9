"""Input-report decoding, compiled once per device from its report descriptor.

Owns: which descriptor fields carry the controls headsetd watches (`Control`), a per-report
plan of shifts and masks built once per device (`TelephonyDecoder`), and `MalformedReport` for
reports that do not match the descriptor (unknown report ID, wrong length).

Never does: keep state between reports (`headsetd.session` does), look at output or feature
reports (those belong to the softphone), or use per-model byte tables: every position comes
from the descriptor. Telephony usages count only inside a Telephony application collection,
and Consumer usages inside a Consumer or Telephony one, so a vendor collection that mirrors the
same usages is not counted twice. A usage repeated within one report is decoded once (the first
field wins), and a report with more than `MAX_WATCHED_PER_REPORT` watched values is rejected
with `DescriptorError` when the decoder is built, so a report's decoding cost is bounded.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from headsetd.hid import usages as u
from headsetd.hid.descriptor import DescriptorError, Field, ReportDescriptor, ReportKind


class Control(StrEnum):
    """A headset control headsetd watches; the value is its label in metrics and logs."""

    HOOK_SWITCH = "hook_switch"
    PHONE_MUTE = "phone_mute"
    FLASH = "flash"
    REDIAL = "redial"
    DROP = "drop"
    CONSUMER_MUTE = "consumer_mute"
    VOLUME_UP = "volume_up"
    VOLUME_DOWN = "volume_down"


# Controls that are buttons: each rising edge is one press, whatever their Input flags say.
BUTTONS = (
    Control.FLASH,
    Control.REDIAL,
    Control.DROP,
    Control.CONSUMER_MUTE,
    Control.VOLUME_UP,
    Control.VOLUME_DOWN,
)

_CONTROL_BY_USAGE: dict[int, Control] = {
    u.HOOK_SWITCH: Control.HOOK_SWITCH,
    u.PHONE_MUTE: Control.PHONE_MUTE,
    u.FLASH: Control.FLASH,
    u.REDIAL: Control.REDIAL,
    u.DROP: Control.DROP,
    u.CONSUMER_MUTE: Control.CONSUMER_MUTE,
    u.VOLUME_UP: Control.VOLUME_UP,
    u.VOLUME_DOWN: Control.VOLUME_DOWN,
}

# Which application collections may carry a usage page's controls.
_APPLICATION_PAGES: dict[int, frozenset[int]] = {
    u.PAGE_TELEPHONY: frozenset({u.PAGE_TELEPHONY}),
    u.PAGE_CONSUMER: frozenset({u.PAGE_CONSUMER, u.PAGE_TELEPHONY}),
}


# Watched values one input report may carry: variable fields and array slots whose usage is a
# watched control, repeats included. Real headsets carry 2-9 (tests/fixtures/hid); a descriptor
# with more is rejected (DescriptorError, the daemon's `malformed_descriptor`), so a hostile
# device cannot make each report cost milliseconds (61,440 Hook Switch bits took 83 ms) or
# thousands of events. Decoding then costs at most this many slot reads per report.
MAX_WATCHED_PER_REPORT = 64


class MalformedReport(ValueError):
    """An input report that does not fit the descriptor; `reason` is a short label."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ControlValue:
    """A control's value in one report. `relative` is the descriptor's Input flag."""

    control: Control
    value: int
    relative: bool


@dataclass(frozen=True, slots=True)
class Reading:
    """What one input report says about the watched controls (empty if it has none)."""

    report_id: int | None
    values: tuple[ControlValue, ...]


@dataclass(frozen=True, slots=True)
class DecodedControl:
    """Where a watched control is decoded from: its input report and field (for an array, the
    whole array). `bit` counts from the first data bit, after the report-ID byte."""

    control: Control
    report_id: int | None
    bit: int
    size: int
    relative: bool


@dataclass(frozen=True, slots=True)
class _VariablePlan:
    control: Control
    shift: int
    mask: int
    sign_bit: int  # 0 when unsigned
    relative: bool


@dataclass(frozen=True, slots=True)
class _ArrayPlan:
    """Array slots; a control is 'on' when any slot holds its usage's index."""

    shifts: tuple[int, ...]
    mask: int
    index_of_control: tuple[tuple[int, Control], ...]  # raw slot value -> control
    controls: tuple[Control, ...]
    relative: bool


@dataclass(frozen=True, slots=True)
class _ReportPlan:
    """One input report's plan: shifts are counted from byte `first_byte` of the wire report,
    and `watched` masks every bit a watched control occupies in `report[first_byte:end_byte]`
    as a little-endian integer; all other bits cannot change the Reading."""

    report_id: int | None
    wire_bytes: int
    variables: tuple[_VariablePlan, ...]
    arrays: tuple[_ArrayPlan, ...]
    first_byte: int
    end_byte: int
    watched: int


def control_of(field: Field, extended_usage: int) -> Control | None:
    """The watched control a usage of this field stands for, if any."""
    control = _CONTROL_BY_USAGE.get(extended_usage)
    if control is None:
        return None
    allowed = _APPLICATION_PAGES[extended_usage >> 16]
    return control if field.application >> 16 in allowed else None


def _plan_report(
    report_id: int | None, wire_bytes: int, fields: tuple[Field, ...]
) -> tuple[_ReportPlan, list[DecodedControl]]:
    """Compile one input report. A control is decoded from the first field (in wire order) and,
    within an array, the first usage that carries it; a later repeat is ignored, as the
    kernel's hid-input ignores a usage already mapped on the same input device
    (HID_STAT_DUP_DETECTED). So `Report Count 2` on one Hook Switch usage is one control, and
    one report gives at most one value per control."""
    offset = 0 if report_id is None else 8  # the report-ID byte precedes the data
    variables: list[_VariablePlan] = []
    arrays: list[_ArrayPlan] = []
    spans: list[tuple[int, int]] = []  # (first bit, bit count) of each watched field
    decoded: list[DecodedControl] = []
    seen: set[Control] = set()
    watched_values = 0
    for field in fields:
        if field.is_padding:
            continue
        mask = (1 << field.size) - 1
        if field.variable:
            control = control_of(field, field.usages[0])
            watched_values += control is not None
            if control is not None and control not in seen:
                seen.add(control)
                sign_bit = 1 << (field.size - 1) if field.signed else 0
                variables.append(
                    _VariablePlan(control, offset + field.bit, mask, sign_bit, field.relative)
                )
                spans.append((offset + field.bit, field.size))
                decoded.append(
                    DecodedControl(control, report_id, field.bit, field.size, field.relative)
                )
            continue
        mapping = []
        carries_control = False
        for index, extended_usage in enumerate(field.usages):
            control = control_of(field, extended_usage)
            carries_control |= control is not None
            if control is not None and control not in seen:
                seen.add(control)
                mapping.append((index + field.logical_min, control))
        watched_values += field.count if carries_control else 0
        if mapping:
            arrays.append(
                _ArrayPlan(
                    shifts=tuple(offset + field.bit + i * field.size for i in range(field.count)),
                    mask=mask,
                    index_of_control=tuple(mapping),
                    controls=tuple(c for _, c in mapping),
                    relative=field.relative,
                )
            )
            spans.append((offset + field.bit, field.size * field.count))
            decoded.extend(
                DecodedControl(c, report_id, field.bit, field.size * field.count, field.relative)
                for _, c in mapping
            )
    if watched_values > MAX_WATCHED_PER_REPORT:
        rid = "unnumbered" if report_id is None else report_id
        raise DescriptorError(
            f"input report {rid} has {watched_values} watched fields or array slots; "
            f"more than {MAX_WATCHED_PER_REPORT} is not a headset"
        )
    if not spans:
        return _ReportPlan(report_id, wire_bytes, (), (), 0, 0, 0), decoded
    first_byte = min(start for start, _ in spans) // 8
    end_byte = (max(start + bits for start, bits in spans) + 7) // 8
    base = first_byte * 8
    watched = 0
    for start, bits in spans:
        watched |= ((1 << bits) - 1) << (start - base)
    plan = _ReportPlan(
        report_id,
        wire_bytes,
        tuple(replace(v, shift=v.shift - base) for v in variables),
        tuple(replace(a, shifts=tuple(s - base for s in a.shifts)) for a in arrays),
        first_byte,
        end_byte,
        watched,
    )
    return plan, decoded


# Application collections of a device that types (Generic Desktop Keyboard, Keypad): a reader
# of its node reads keystrokes, so headsetd never watches it and the udev rule never grants it,
# whatever else its descriptor declares.
_TYPING_APPLICATIONS = frozenset(
    {u.usage(u.PAGE_GENERIC_DESKTOP, 0x06), u.usage(u.PAGE_GENERIC_DESKTOP, 0x07)}
)


def can_type(descriptor: ReportDescriptor) -> bool:
    """A keyboard or keypad application collection: a reader of the node reads keystrokes."""
    return any(app in _TYPING_APPLICATIONS for app in descriptor.applications)


def has_telephony_inputs(descriptor: ReportDescriptor) -> bool:
    """True for a device headsetd watches: a Telephony application collection with inputs, and
    no keyboard or keypad collection (70-headsetd.rules grants read access to exactly these).

    An empty Telephony collection (the Razer Kraken Kitty V2 ends with one) does not count.
    """
    if can_type(descriptor):
        return False
    return any(
        f.application >> 16 == u.PAGE_TELEPHONY
        for report in descriptor.reports
        if report.kind is ReportKind.INPUT
        for f in report.fields
        if not f.is_padding
    )


# Distinct watched-bit patterns remembered, all report IDs together: a headset shows a few
# dozen at most; a bound on the total (not per ID) keeps 255 report IDs to ~1 MB.
_CACHE_LIMIT = 1024


class TelephonyDecoder:
    """Decodes a device's input reports into `Reading`s with a plan compiled at construction.

    Readings are immutable, so the one for a given pattern of watched bits is made once and
    then shared: decoding a report is a slice, a mask and a dictionary lookup. One decoder
    belongs to one session thread.
    """

    __slots__ = ("_cache", "_cached", "_numbered", "_plans", "controls", "decoded")

    def __init__(self, descriptor: ReportDescriptor) -> None:
        """Compile the plan; raises `DescriptorError` when a report carries more than
        `MAX_WATCHED_PER_REPORT` watched values (see there)."""
        self._numbered = descriptor.numbered
        self._plans: dict[int | None, _ReportPlan] = {}
        decoded: list[DecodedControl] = []
        for report_id, report in descriptor.reports_of(ReportKind.INPUT).items():
            self._plans[report_id], placed = _plan_report(
                report_id, report.wire_bytes, report.fields
            )
            decoded.extend(placed)
        self._cache: dict[int | None, dict[int, Reading]] = {r: {} for r in self._plans}
        self._cached = 0
        self.decoded: tuple[DecodedControl, ...] = tuple(decoded)
        """Where each watched control is decoded from, report by report, in wire order."""
        self.controls: tuple[Control, ...] = tuple(dict.fromkeys(d.control for d in decoded))
        """Every watched control this device can report."""

    def decode(self, report: bytes) -> Reading:
        """Decode one input report as read from hidraw (report-ID byte first, if numbered)."""
        if not report:
            raise MalformedReport("wrong_length", "empty report")
        report_id = report[0] if self._numbered else None
        plan = self._plans.get(report_id)
        if plan is None:
            raise MalformedReport("unknown_report_id", f"unknown input report ID {report_id}")
        if len(report) != plan.wire_bytes:
            raise MalformedReport(
                "wrong_length",
                f"report {report_id} is {len(report)} bytes, not {plan.wire_bytes}",
            )
        if not plan.watched:
            return Reading(report_id, ())
        bits = int.from_bytes(report[plan.first_byte : plan.end_byte], "little") & plan.watched
        cache = self._cache[report_id]
        reading = cache.get(bits)
        if reading is None:
            reading = _read(plan, bits)
            if self._cached < _CACHE_LIMIT:
                cache[bits] = reading
                self._cached += 1
        return reading


def _read(plan: _ReportPlan, bits: int) -> Reading:
    values: list[ControlValue] = []
    for var in plan.variables:
        value = (bits >> var.shift) & var.mask
        if var.sign_bit and value & var.sign_bit:
            value -= var.sign_bit << 1
        values.append(ControlValue(var.control, value, var.relative))
    for array in plan.arrays:
        slots = {(bits >> shift) & array.mask for shift in array.shifts}
        on = {control for index, control in array.index_of_control if index in slots}
        values.extend(ControlValue(c, int(c in on), array.relative) for c in array.controls)
    return Reading(plan.report_id, tuple(values))
