"""`headsetd inspect FILE [--json]`: what a device's report descriptor says, for a person or a
script.

Owns: turning a `Recording` and its parsed `ReportDescriptor` into a JSON-ready description
(`describe`: every report and field with its position, usage, logical range and flags) and a
readable table of it (`render_table`). This is how a user checks what headsetd will read from a
new headset before reporting it, so it shows the descriptor as parsed, padding included.

Never does: open or read a device (it works on a recording or a descriptor file), write an
output or feature report, decide what a field means (that is `headsetd.hid.decoder`), or
print device-supplied text raw: the name is escaped in the table so a hostile name cannot drive
the terminal (JSON escapes it by itself).
"""

from __future__ import annotations

from typing import Literal, NotRequired, TypedDict

from headsetd.hid.descriptor import Field, ReportDescriptor
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


class Description(TypedDict):
    name: str
    vendor_id: str  # 4 hex digits, as lsusb prints it
    product_id: str
    reports: list[ReportDescription]


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
    """Every report of the descriptor, in descriptor order, with its fields in wire order.

    A variable item is one entry per value (as `Field` already is); an array is one entry with
    `usages`; padding has page, usage and name None.
    """
    return {
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
    }


def _printable(text: str) -> str:
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


def render_table(described: Description) -> str:
    """A block per report and a line per field: bit, size, count, page, usage, flags, range."""
    ids = f"{described['vendor_id']}:{described['product_id']}"
    name = _printable(described["name"]) or "(no name)"
    lines = [f"{name} [{ids}]"]
    if not described["reports"]:
        lines.append("  no reports")
    for report in described["reports"]:
        rid = "unnumbered" if report["report_id"] is None else f"report ID {report['report_id']}"
        lines.append("")
        lines.append(f"{report['direction']} {rid}")
        header = ("bit", "size", "count", "page", "usage", "flags", "logical")
        rows = [header]
        for field in report["fields"]:
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
        widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
        for row in rows:
            cells = [
                cell.rjust(width) if i < 3 else cell.ljust(width)
                for i, (cell, width) in enumerate(zip(row, widths, strict=True))
            ]
            lines.append("  " + "  ".join(cells).rstrip())
        if not report["fields"]:
            lines.append("  (no fields)")
    return "\n".join(lines) + "\n"
