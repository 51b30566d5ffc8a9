"""`headsetd inspect FILE [--json]`: what a device's report descriptor says, for a person or a
script.

Owns: turning a `Recording` and its parsed `ReportDescriptor` into a JSON-ready description
(`describe`: every report and field with its position, usage, logical range and flags; whether
headsetd would watch the device and which controls it decodes from where) and a readable table
of it (`render_table`, which folds runs of identical fields, such as a vendor report's 63 bytes,
into one row; the JSON keeps every field). This is how a user checks what headsetd will read
from a new headset before reporting it, so it shows the descriptor as parsed, padding included.

Never does: open or read a device (it works on a recording or a descriptor file), write an
output or feature report, decide what a field means (that is `headsetd.hid.decoder`), or
print device-supplied text raw: the name is escaped in the table so a hostile name cannot drive
the terminal (JSON escapes it by itself).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, NotRequired, TypedDict

from headsetd.hid.decoder import TelephonyDecoder, can_type, has_telephony_inputs
from headsetd.hid.descriptor import DescriptorError, Field, ReportDescriptor
from headsetd.hid.recording import Recording
from headsetd.hid.usages import page_name, usage_name

Direction = Literal["input", "output", "feature"]


class FieldDescription(TypedDict):
    """One field; `bit` counts from the first data bit, after the report-ID byte."""

    page: int | None  # usage page (extended usage >> 16); None for padding
    usage: int | None  # usage id (low 16 bits); for an array, its first usage
    name: str | None
    bit: int
    size: int
    count: int
    logical_min: int
    logical_max: int
    variable: bool
    relative: bool
    constant: bool
    usages: NotRequired[list[int]]  # arrays only: every usage id (low 16 bits), slot order


class ReportDescription(TypedDict):
    direction: Direction
    report_id: int | None
    fields: list[FieldDescription]


class ControlDescription(TypedDict):
    """A control headsetd decodes: its report and field (an array: the whole array)."""

    control: str  # the Control label, as in metrics and logs
    report_id: int | None
    bit: int
    size: int
    relative: bool


class Description(TypedDict):
    name: str
    vendor_id: str  # 4 hex digits, as lsusb prints it
    product_id: str
    reports: list[ReportDescription]
    watched: bool  # headsetd would watch it: Telephony inputs, and a descriptor it accepts
    controls: list[ControlDescription]  # empty when not watched
    rejected: NotRequired[str]  # only when the decoder rejects the descriptor, or it types: why


def _describe_field(field: Field) -> FieldDescription:
    usage = field.usage
    described: FieldDescription = {
        "page": None if usage is None else usage >> 16,
        "usage": None if usage is None else usage & 0xFFFF,
        "name": None if usage is None else usage_name(usage),
        "bit": field.bit,
        "size": field.size,
        "count": field.count,
        "logical_min": field.logical_min,
        "logical_max": field.logical_max,
        "variable": field.variable,
        "relative": field.relative,
        "constant": field.constant,
    }
    if field.is_array:
        described["usages"] = [u & 0xFFFF for u in field.usages]
    return described


def describe(recording: Recording, descriptor: ReportDescriptor) -> Description:
    """Every report of the descriptor, in descriptor order, with its fields in wire order, and
    what headsetd would make of it (`watched`, `controls`).

    A variable item is one entry per value (as `Field` already is); an array is one entry with
    `usages`; padding has page, usage and name None.
    """
    described: Description = {
        "name": recording.name,
        "vendor_id": f"{recording.vendor_id:04x}",
        "product_id": f"{recording.product_id:04x}",
        "reports": [
            {
                "direction": report.kind.value,
                "report_id": report.report_id,
                "fields": [_describe_field(f) for f in report.fields],
            }
            for report in descriptor.reports
        ],
        "watched": False,
        "controls": [],
    }
    if can_type(descriptor):
        described["rejected"] = "a keyboard or keypad collection: it types, so it is never read"
        return described
    if not has_telephony_inputs(descriptor):
        return described
    try:
        decoder = TelephonyDecoder(descriptor)
    except DescriptorError as exc:
        described["rejected"] = str(exc)
        return described
    described["watched"] = True
    described["controls"] = [
        {
            "control": d.control.value,
            "report_id": d.report_id,
            "bit": d.bit,
            "size": d.size,
            "relative": d.relative,
        }
        for d in decoder.decoded
    ]
    return described


def printable(text: str) -> str:
    """Device-supplied text with control characters escaped (no terminal escapes get through)."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _flags(field: FieldDescription) -> str:
    if field["page"] is None:
        return "padding"
    words = ["Const" if field["constant"] else "Data"]
    words.append("Var" if field["variable"] else "Array")
    words.append("Rel" if field["relative"] else "Abs")
    return ",".join(words)


def _usage_cell(field: FieldDescription) -> tuple[str, str]:
    page, usage = field["page"], field["usage"]
    if page is None or usage is None:
        return "-", "-"
    name = field["name"] or f"0x{usage:02x}"
    usages = field.get("usages")
    if usages is not None and len(usages) > 1:
        name += f" (+{len(usages) - 1} more)"
    return page_name(page), name


def _folded(fields: list[FieldDescription]) -> list[FieldDescription]:
    """Runs of adjacent fields alike but for their position (a vendor report's 63 bytes) as one
    field whose count is the run's: one table row for what the descriptor declares once."""
    rows: list[FieldDescription] = []
    for field in fields:
        last = rows[-1] if rows else None
        if (
            last is not None
            and "usages" not in field
            and "usages" not in last
            and field["bit"] == last["bit"] + last["size"] * last["count"]
            and _same_but_position(last, field)
        ):
            rows[-1] = {**last, "count": last["count"] + field["count"]}
        else:
            rows.append(field)
    return rows


def _same_but_position(a: FieldDescription, b: FieldDescription) -> bool:
    return (a["page"], a["usage"], a["size"], a["logical_min"], a["logical_max"]) == (
        b["page"],
        b["usage"],
        b["size"],
        b["logical_min"],
        b["logical_max"],
    ) and (a["variable"], a["relative"], a["constant"]) == (
        b["variable"],
        b["relative"],
        b["constant"],
    )


def _table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]], right: int) -> list[str]:
    """Aligned lines; the first `right` columns are right-aligned (numbers)."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return [
        "  "
        + "  ".join(
            cell.rjust(width) if i < right else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in [header, *rows]
    ]


def _watch_lines(described: Description) -> list[str]:
    if not described["watched"]:
        why = described.get("rejected") or "no input field in a Telephony application collection"
        return [f"watched: no ({printable(why)})"]
    rows = [
        (
            "unnumbered" if c["report_id"] is None else str(c["report_id"]),
            str(c["bit"]),
            str(c["size"]),
            c["control"],
            "Rel" if c["relative"] else "Abs",
        )
        for c in described["controls"]
    ]
    header = ("report", "bit", "size", "control", "flags")
    return ["watched: yes; decoded controls:", *_table(header, rows, right=3)]


def render_table(described: Description) -> str:
    """The device, whether it is watched and its decoded controls, then a block per report and
    a line per field (runs of identical fields folded): bit, size, count, page, usage, flags,
    logical range."""
    ids = f"{described['vendor_id']}:{described['product_id']}"
    name = printable(described["name"]) or "(no name)"
    lines = [f"{name} [{ids}]", *_watch_lines(described)]
    if not described["reports"]:
        lines.append("  no reports")
    for report in described["reports"]:
        rid = "unnumbered" if report["report_id"] is None else f"report ID {report['report_id']}"
        lines.append("")
        lines.append(f"{report['direction']} {rid}")
        header = ("bit", "size", "count", "page", "usage", "flags", "logical")
        rows = []
        for field in _folded(report["fields"]):
            page, usage = _usage_cell(field)
            rows.append(
                (
                    str(field["bit"]),
                    str(field["size"]),
                    str(field["count"]),
                    page,
                    usage,
                    _flags(field),
                    f"{field['logical_min']}..{field['logical_max']}",
                )
            )
        lines.extend(_table(header, rows, right=3))
        if not report["fields"]:
            lines.append("  (no fields)")
    return "\n".join(lines) + "\n"
