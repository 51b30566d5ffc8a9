"""HID report descriptor model and parser.

Owns: turning report-descriptor bytes into reports and fields (bit offset, size, count, usages,
logical range, Input/Output/Feature flags), the list of top-level application collections, and a
typed `DescriptorError` for anything malformed.

Never does: decode report data (that is `headsetd.hid.decoder`), guess per-model layouts, or
raise anything but `DescriptorError` on bad bytes. Parsing is linear in the descriptor's length
and every size the descriptor claims is bounded before it is used, so a hostile descriptor
cannot make it hang or allocate without bound.

The item semantics follow the HID 1.11 specification and, where the specification is loose,
the Linux kernel's hid-core (which is what the headset's hidraw node is made from):
- a Logical Maximum is read as signed when the Logical Minimum is negative;
- a Usage of 1 or 2 bytes takes the Usage Page current when it is declared, and the trailing
  usages declared before the last Usage Page take that page at the Main item (the kernel's
  hid_concatenate_last_usage_page), so `Usage; Usage Page; Input` gives the later page while
  `Usage; Usage Page; Usage; Input` keeps each usage's own page;
- a variable item with fewer usages than its count repeats its last usage;
- a Constant item that carries usages is data, not padding: real speakerphones (Anker
  PowerConf, the Razer USB microphone in tests/fixtures/hid) flag their Hook Switch Constant.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum

# Bounds, mostly the kernel's own (include/linux/hid.h), so that anything the kernel accepts
# parses here and anything absurd is rejected before it costs time or memory.
MAX_DESCRIPTOR_BYTES = 4096  # HID_MAX_DESCRIPTOR_SIZE
MAX_REPORT_SIZE_BITS = 256  # hid_parser_global rejects larger Report Size values
MAX_REPORT_COUNT = 12288  # HID_MAX_USAGES
MAX_REPORT_BYTES = 16384  # HID_MAX_BUFFER_SIZE
MAX_USAGES_PER_ITEM = 12288  # HID_MAX_USAGES: bounds usage ranges, the source of blow-ups
# Usages held by all Fields together (a variable Field holds 1, an array all of its own): each
# bound above holds, yet 4 KiB of items can still ask for millions of 1-bit Fields (Report Count
# 12288 repeated under fresh report IDs) or millions of array usages. Real descriptors hold a
# few thousand at most (2230 in tests/fixtures/hid); this keeps a hostile one to ~10 MB and
# under a second.
MAX_FIELD_USAGES = 65536
MAX_GLOBAL_STACK = 16  # Push depth (the kernel allows 4; a few real devices nest deeper)
MAX_COLLECTION_DEPTH = 64

# Main item data bits (HID 1.11 6.2.2.5).
FLAG_CONSTANT = 0x01
FLAG_VARIABLE = 0x02
FLAG_RELATIVE = 0x04
FLAG_NULL_STATE = 0x40

COLLECTION_APPLICATION = 0x01


class DescriptorError(ValueError):
    """The report descriptor is malformed or exceeds a bound; `offset` is the item's byte."""

    def __init__(self, message: str, offset: int | None = None) -> None:
        where = f" at byte {offset}" if offset is not None else ""
        super().__init__(f"{message}{where}")
        self.offset = offset


class ReportKind(StrEnum):
    """Which main item made a report: the direction of its data."""

    INPUT = "input"
    OUTPUT = "output"
    FEATURE = "feature"


@dataclass(frozen=True, slots=True)
class Field:
    """One field of a report.

    A variable item becomes one Field per value (count 1, one usage); an array item is one
    Field with `count` slots that each hold the index of a pressed usage among `usages`;
    padding is a constant Field with no usages. `bit` is counted from the start of the report
    data, after the report-ID byte. Usages are extended: usage page << 16 | usage id.
    """

    kind: ReportKind
    report_id: int | None
    bit: int
    size: int
    count: int
    usages: tuple[int, ...]
    logical_min: int
    logical_max: int
    flags: int
    application: int

    @property
    def constant(self) -> bool:
        return bool(self.flags & FLAG_CONSTANT)

    @property
    def variable(self) -> bool:
        return bool(self.flags & FLAG_VARIABLE)

    @property
    def relative(self) -> bool:
        return bool(self.flags & FLAG_RELATIVE)

    @property
    def is_array(self) -> bool:
        return not self.variable and not self.is_padding

    @property
    def is_padding(self) -> bool:
        return not self.usages

    @property
    def usage(self) -> int | None:
        """The (first) extended usage, None for padding."""
        return self.usages[0] if self.usages else None

    @property
    def signed(self) -> bool:
        return self.logical_min < 0


@dataclass(frozen=True, slots=True)
class Report:
    """All fields of one report (kind + report ID), in wire order."""

    kind: ReportKind
    report_id: int | None
    fields: tuple[Field, ...]
    bits: int

    @property
    def data_bytes(self) -> int:
        """Bytes of report data, after the report-ID byte."""
        return (self.bits + 7) // 8

    @property
    def wire_bytes(self) -> int:
        """Bytes as read from hidraw: the report-ID byte (if numbered) and the data."""
        return self.data_bytes + (0 if self.report_id is None else 1)


@dataclass(frozen=True, slots=True)
class ReportDescriptor:
    """A parsed report descriptor: its reports and its top-level application collections."""

    raw: bytes
    reports: tuple[Report, ...]
    applications: tuple[int, ...]

    def reports_of(self, kind: ReportKind) -> dict[int | None, Report]:
        return {r.report_id: r for r in self.reports if r.kind is kind}

    @property
    def numbered(self) -> bool:
        """True when reports carry a report-ID byte."""
        return any(r.report_id is not None for r in self.reports)

    def has_application_page(self, page: int) -> bool:
        return any(app >> 16 == page for app in self.applications)


@dataclass(slots=True)
class _Globals:
    usage_page: int = 0
    logical_min: int = 0
    logical_max_raw: int = 0
    logical_max_bytes: int = 0
    report_size: int = 0
    report_count: int = 0
    report_id: int | None = None

    def copy(self) -> _Globals:
        return _Globals(
            self.usage_page,
            self.logical_min,
            self.logical_max_raw,
            self.logical_max_bytes,
            self.report_size,
            self.report_count,
            self.report_id,
        )


@dataclass(slots=True)
class _Usage:
    value: int
    extended: bool  # a 4-byte usage carries its own page
    page: int = 0  # the Usage Page current when a 1- or 2-byte usage was declared


@dataclass(slots=True)
class _Locals:
    usages: list[_Usage] = field(default_factory=list)
    usage_min: _Usage | None = None
    usage_max: _Usage | None = None


@dataclass(slots=True)
class _ReportBuilder:
    kind: ReportKind
    report_id: int | None
    fields: list[Field] = field(default_factory=list)
    bits: int = 0


_KIND_BY_TAG = {0x8: ReportKind.INPUT, 0x9: ReportKind.OUTPUT, 0xB: ReportKind.FEATURE}


def _signed(value: int, nbytes: int) -> int:
    if nbytes == 0:
        return 0
    sign = 1 << (nbytes * 8 - 1)
    return (value ^ sign) - sign


class _Parser:
    """Parse-time state, kept apart from the result (unlike hid-tools' scratch attributes)."""

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self.globals = _Globals()
        self.global_stack: list[_Globals] = []
        self.locals = _Locals()
        self.collection_depth = 0
        self.application = 0
        self.applications: list[int] = []
        self.reports: dict[tuple[ReportKind, int | None], _ReportBuilder] = {}
        self.field_usages = 0  # bounded by MAX_FIELD_USAGES

    def parse(self) -> ReportDescriptor:
        raw = self.raw
        pos = 0
        while pos < len(raw):
            offset = pos
            header = raw[pos]
            pos += 1
            if header == 0xFE:  # long item: bDataSize, bLongItemTag, data; no defined tags
                if pos + 2 > len(raw):
                    raise DescriptorError("truncated long item", offset)
                pos += 2 + raw[pos]
                if pos > len(raw):
                    raise DescriptorError("truncated long item", offset)
                continue
            nbytes = (0, 1, 2, 4)[header & 0x03]
            if pos + nbytes > len(raw):
                raise DescriptorError(f"truncated item 0x{header:02x}", offset)
            value = int.from_bytes(raw[pos : pos + nbytes], "little")
            pos += nbytes
            item_type = (header >> 2) & 0x03
            tag = header >> 4
            if item_type == 0:
                self._main(tag, value, offset)
            elif item_type == 1:
                self._global(tag, value, nbytes, offset)
            elif item_type == 2:
                self._local(tag, value, nbytes, offset)
            else:
                raise DescriptorError(f"reserved item type in 0x{header:02x}", offset)
        if self.collection_depth != 0:
            raise DescriptorError(f"{self.collection_depth} collection(s) left open")
        reports = tuple(
            Report(b.kind, b.report_id, tuple(b.fields), b.bits) for b in self.reports.values()
        )
        return ReportDescriptor(raw, reports, tuple(self.applications))

    def _global(self, tag: int, value: int, nbytes: int, offset: int) -> None:
        g = self.globals
        if tag == 0x0:
            g.usage_page = value & 0xFFFF
        elif tag == 0x1:
            g.logical_min = _signed(value, nbytes)
        elif tag == 0x2:
            g.logical_max_raw, g.logical_max_bytes = value, nbytes
        elif tag in (0x3, 0x4, 0x5, 0x6):
            pass  # physical range, unit exponent, unit: not needed to locate or decode a field
        elif tag == 0x7:
            if value > MAX_REPORT_SIZE_BITS:
                raise DescriptorError(f"Report Size {value} exceeds {MAX_REPORT_SIZE_BITS}", offset)
            g.report_size = value
        elif tag == 0x8:
            if not 1 <= value <= 255:
                raise DescriptorError(f"invalid Report ID {value}", offset)
            g.report_id = value
        elif tag == 0x9:
            if value > MAX_REPORT_COUNT:
                raise DescriptorError(f"Report Count {value} exceeds {MAX_REPORT_COUNT}", offset)
            g.report_count = value
        elif tag == 0xA:
            if len(self.global_stack) >= MAX_GLOBAL_STACK:
                raise DescriptorError("Push nested too deep", offset)
            self.global_stack.append(g.copy())
        elif tag == 0xB:
            if not self.global_stack:
                raise DescriptorError("Pop without Push", offset)
            self.globals = self.global_stack.pop()
        else:
            raise DescriptorError(f"reserved global item tag 0x{tag:x}", offset)

    def _local(self, tag: int, value: int, nbytes: int, offset: int) -> None:
        loc = self.locals
        usage = _Usage(value, extended=nbytes == 4, page=self.globals.usage_page)
        if tag == 0x0:
            if len(loc.usages) >= MAX_USAGES_PER_ITEM:
                raise DescriptorError("too many usages for one item", offset)
            loc.usages.append(usage)
        elif tag == 0x1:
            loc.usage_min = usage
        elif tag == 0x2:
            loc.usage_max = usage
        elif tag <= 0xA:
            pass  # designators, strings, delimiters: not needed to decode
        else:
            raise DescriptorError(f"reserved local item tag 0x{tag:x}", offset)

    def _extend(self, usage: _Usage) -> int:
        if usage.extended:
            return usage.value
        return (self.globals.usage_page << 16) | (usage.value & 0xFFFF)

    def _concatenate_usage_page(self, declared: list[_Usage]) -> list[int]:
        """The kernel's hid_concatenate_last_usage_page: each usage has the page it was declared
        under, except the trailing ones declared before the current page, which take it."""
        page = self.globals.usage_page
        usages = [u.value if u.extended else (u.page << 16) | (u.value & 0xFFFF) for u in declared]
        for i in reversed(range(len(declared))):
            if declared[i].extended:
                continue
            if declared[i].page == page:
                break
            usages[i] = (page << 16) | (declared[i].value & 0xFFFF)
        return usages

    def _local_usages(self, offset: int) -> list[int]:
        """The item's usages: explicit ones first, then a Usage Minimum..Maximum range."""
        loc = self.locals
        usages = self._concatenate_usage_page(loc.usages)
        if loc.usage_min is not None or loc.usage_max is not None:
            if loc.usage_min is None or loc.usage_max is None:
                raise DescriptorError("Usage Minimum without Usage Maximum (or reverse)", offset)
            low, high = self._extend(loc.usage_min), self._extend(loc.usage_max)
            if high < low:
                raise DescriptorError("Usage Maximum below Usage Minimum", offset)
            if high - low + 1 + len(usages) > MAX_USAGES_PER_ITEM:
                raise DescriptorError(f"usage range of {high - low + 1} is too large", offset)
            usages.extend(range(low, high + 1))
        return usages

    def _main(self, tag: int, value: int, offset: int) -> None:
        if tag in _KIND_BY_TAG:
            self._field_item(_KIND_BY_TAG[tag], value, offset)
        elif tag == 0xA:  # Collection
            usages = self._local_usages(offset)
            if self.collection_depth >= MAX_COLLECTION_DEPTH:
                raise DescriptorError("collections nested too deep", offset)
            if self.collection_depth == 0 and value == COLLECTION_APPLICATION:
                self.application = usages[0] if usages else 0
                self.applications.append(self.application)
            self.collection_depth += 1
        elif tag == 0xC:  # End Collection
            if self.collection_depth == 0:
                raise DescriptorError("End Collection without Collection", offset)
            self.collection_depth -= 1
            if self.collection_depth == 0:
                self.application = 0
        else:
            raise DescriptorError(f"reserved main item tag 0x{tag:x}", offset)
        self.locals = _Locals()

    def _field_item(self, kind: ReportKind, flags: int, offset: int) -> None:
        g = self.globals
        usages = self._local_usages(offset)
        size, count = g.report_size, g.report_count
        logical_max = (
            _signed(g.logical_max_raw, g.logical_max_bytes)
            if g.logical_min < 0
            else g.logical_max_raw
        )
        key = (kind, g.report_id)
        builder = self.reports.get(key)
        if builder is None:
            builder = self.reports[key] = _ReportBuilder(kind, g.report_id)
        start = builder.bits
        builder.bits += size * count
        if builder.bits > MAX_REPORT_BYTES * 8:
            raise DescriptorError(f"report exceeds {MAX_REPORT_BYTES} bytes", offset)
        if size * count == 0:
            return  # an item of no bits occupies nothing and carries nothing
        self.field_usages += count if usages and flags & FLAG_VARIABLE else max(len(usages), 1)
        if self.field_usages > MAX_FIELD_USAGES:
            raise DescriptorError(f"fields hold more than {MAX_FIELD_USAGES} usages", offset)
        whole = Field(
            kind,
            g.report_id,
            start,
            size,
            count,
            tuple(usages),
            g.logical_min,
            logical_max,
            flags,
            self.application,
        )
        if usages and flags & FLAG_VARIABLE:
            # One Field per value; a variable item with fewer usages repeats its last one.
            builder.fields.extend(
                replace(
                    whole, bit=start + i * size, count=1, usages=(usages[min(i, len(usages) - 1)],)
                )
                for i in range(count)
            )
        else:  # an array, or padding (no usages, whatever its flags say)
            builder.fields.append(whole)


def parse_report_descriptor(raw: bytes) -> ReportDescriptor:
    """Parse report-descriptor bytes; raises `DescriptorError` on anything malformed."""
    if not raw:
        raise DescriptorError("empty report descriptor")
    if len(raw) > MAX_DESCRIPTOR_BYTES:
        raise DescriptorError(
            f"report descriptor of {len(raw)} bytes exceeds {MAX_DESCRIPTOR_BYTES}"
        )
    return _Parser(bytes(raw)).parse()
