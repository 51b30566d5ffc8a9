"""The descriptor parser's proof.

1. Differential: every descriptor in tests/fixtures/hid (and tests/recordings, if any) is parsed by
   our parser and by hid-tools (the reference model the HID maintainers use), and every report and
   field is compared. Where hid-tools knowingly differs from the kernel/spec, the normalisation is
   written out below with the hid-tools 0.12 line it answers (hidtools/hid.py).
2. Decode: random input reports are decoded with our Field positions and with hid-tools'
   `HidField.get_values`, and through our `TelephonyDecoder`.
3. Properties: random well-formed descriptors from a small grammar agree with hid-tools; random
   bytes only ever raise `DescriptorError`.
4. Malformed descriptors and the specific semantics the daemon relies on.
"""

from __future__ import annotations

import contextlib
import random
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from hidtools import hid as hidtools_hid
from hidtools.util import twos_comp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from headsetd.hid import usages as u
from headsetd.hid.decoder import ControlValue, TelephonyDecoder, control_of
from headsetd.hid.descriptor import (
    MAX_COLLECTION_DEPTH,
    MAX_DESCRIPTOR_BYTES,
    MAX_GLOBAL_STACK,
    DescriptorError,
    Field,
    Report,
    ReportDescriptor,
    ReportKind,
    parse_report_descriptor,
)
from headsetd.hid.recording import Recording
from headsetd.session import Event, HeadsetState, HookChanged, decode_and_step

TESTS = Path(__file__).parent
FIXTURE_DIR = TESTS / "fixtures" / "hid"
RECORDING_DIR = TESTS / "recordings"
# Data-driven: a file dropped into either folder is tested with no code change.
DESCRIPTOR_FILES = sorted(FIXTURE_DIR.glob("*.hid")) + sorted(RECORDING_DIR.glob("*.hid"))


def _descriptor_of(path: Path) -> bytes:
    return Recording.load(path).descriptor


def _by_descriptor() -> dict[bytes, list[Path]]:
    """Files grouped by their descriptor: recordings re-use their fixture's descriptor, so each
    distinct descriptor is tested once (named by its first file) and keeps every file's
    recorded reports."""
    groups: dict[bytes, list[Path]] = {}
    for path in DESCRIPTOR_FILES:
        groups.setdefault(_descriptor_of(path), []).append(path)
    return groups


DESCRIPTORS = [
    pytest.param(raw, paths, id=paths[0].name + (f"+{len(paths) - 1}" if len(paths) > 1 else ""))
    for raw, paths in _by_descriptor().items()
]


def _fixture(name: str) -> ReportDescriptor:
    return parse_report_descriptor(_descriptor_of(FIXTURE_DIR / name))


def test_there_are_fixtures() -> None:
    # An empty glob would silently turn every parametrized test below into a skip.
    assert len(list(FIXTURE_DIR.glob("*.hid"))) >= 10


# --------------------------------------------------------------------------------------------
# hid-tools, with the one normalisation that has to happen while it parses
# --------------------------------------------------------------------------------------------


class KernelSignedReportDescriptor(hidtools_hid.ReportDescriptor):  # type: ignore[misc]
    """hid-tools' parser, with Logical Maximum read as the kernel reads it.

    hid-tools sign-extends Logical Minimum but not Logical Maximum (hid.py:302, the line
    `# "Logical Maximum",` is commented out of the two's-complement list). The kernel's
    hid_parser_global reads Logical Maximum as signed when Logical Minimum is negative
    (`if (parser->global.logical_minimum < 0) ... item_sdata`), and so do we. The byte width of
    the Logical Maximum item is needed to sign-extend it and hid-tools keeps it nowhere, so this
    subclass tracks it (including across Push/Pop) and fixes the fields each main item adds.
    """

    def __init__(self, items: list[Any]) -> None:
        self._lmax_width = 0
        self._lmax_width_stack: list[int] = []
        super().__init__(items)

    def _parse_item(self, rdesc_item: Any) -> None:
        item = rdesc_item.item
        if item == "Logical Maximum":
            self._lmax_width = rdesc_item.size - 1
        elif item == "Push":
            self._lmax_width_stack.append(self._lmax_width)
        elif item == "Pop" and self._lmax_width_stack:
            self._lmax_width = self._lmax_width_stack.pop()
        if item not in ("Input", "Output", "Feature"):
            super()._parse_item(rdesc_item)
            return
        report = self._get_current_report(item)  # the report hid-tools is about to extend
        before = len(report.fields)
        super()._parse_item(rdesc_item)
        for f in report.fields[before:]:
            if f.logical_min < 0:
                f.logical_max = twos_comp(f.logical_max, 8 * self._lmax_width)


def hidtools_parse(raw: bytes) -> Any:
    # Not `KernelSignedReportDescriptor.from_bytes`: it builds a plain `ReportDescriptor`
    # (hid.py:2140 `return ReportDescriptor(items)`), not `cls`.
    parsed = KernelSignedReportDescriptor(hidtools_hid._HidRDescItem.from_bytes(raw))
    assert isinstance(parsed, KernelSignedReportDescriptor)
    return parsed


# --------------------------------------------------------------------------------------------
# Normalised view of a report, the same for both parsers
# --------------------------------------------------------------------------------------------


class Norm(NamedTuple):
    bit: int  # after the report-ID byte
    size: int
    count: int
    usages: tuple[int, ...]  # () for padding
    logical_min: int
    logical_max: int
    constant: bool
    variable: bool
    relative: bool


def _flags(flags: int) -> tuple[bool, bool, bool]:
    return bool(flags & 0x01), bool(flags & 0x02), bool(flags & 0x04)


def ours_normalised(report: Report) -> list[tuple[Norm, Field]]:
    out: list[tuple[Norm, Field]] = []
    for f in report.fields:
        flags = _flags(f.flags)
        if f.is_padding:
            # hid-tools folds a usage-less item into one field of size*count (hid.py:1452
            # `item.size *= count`); the bits covered are what matter, so compare that.
            out.append(
                (Norm(f.bit, f.size * f.count, 1, (), f.logical_min, f.logical_max, *flags), f)
            )
        elif f.is_array and f.constant:
            # hid-tools splits every Const *or* Variable item into one field per value
            # (hid.py:1432 `if value & 0x3:  # Const or Variable item`), so a constant array
            # with usages comes out as variables. The kernel (and we) keep it an array: the
            # Variable bit alone decides (hid-core's hid_add_field / hid_input_field). Expand
            # ours the way hid-tools does: value i takes usage i, the last one repeating.
            for i in range(f.count):
                usage = f.usages[min(i, len(f.usages) - 1)]
                norm = Norm(
                    f.bit + i * f.size, f.size, 1, (usage,), f.logical_min, f.logical_max, *flags
                )
                out.append((norm, f))
        else:
            out.append(
                (Norm(f.bit, f.size, f.count, f.usages, f.logical_min, f.logical_max, *flags), f)
            )
    return out


def hidtools_normalised(report: Any) -> list[tuple[Norm, Any]]:
    # hid-tools' `start` counts the report-ID byte of a numbered report (hid.py:1499
    # `self._bitsize = 8`); ours counts from the first data bit.
    id_bits = 8 if report.numbered else 0
    out: list[tuple[Norm, Any]] = []
    for f in report.fields:
        if f.size * f.count == 0:
            # hid-tools keeps an item of Report Size 0 or Report Count 0 as a field; it covers no
            # bits and carries no value, and we (like the kernel's layout) keep no field for it.
            continue
        bit = f.start - id_bits
        flags = _flags(f.type)
        if f.is_array and not f.is_const:  # the array branch of getHidFields (hid.py:1455)
            usages = tuple(f.usages or ())
            if not usages:
                # An array without usages: hid-tools puts the logical or application collection's
                # usage in `usage` (hid.py:1404-1410 "for arrays, we don't have a given usage")
                # but leaves `usages` empty. It reports nothing; the kernel drops it as padding
                # (hid_add_field: "Ignore padding fields"), and so do we.
                out.append(
                    (Norm(bit, f.size * f.count, 1, (), f.logical_min, f.logical_max, *flags), f)
                )
            else:
                norm = Norm(bit, f.size, f.count, usages, f.logical_min, f.logical_max, *flags)
                out.append((norm, f))
        else:  # Const or Variable: one field per value, or one folded padding field
            # A folded padding field carries `usage = usage_min`, i.e. 0 (hid.py:1400-1402).
            # Extended usage 0 (page 0 "Undefined", id 0) occurs in no fixture and the grammar
            # below never makes it, so usage 0 here means padding.
            usages = (f.usage,) if f.usage else ()
            size = f.size if usages else f.size * f.count
            out.append((Norm(bit, size, 1, usages, f.logical_min, f.logical_max, *flags), f))
    return out


_KINDS = (
    (ReportKind.INPUT, "input_reports"),
    (ReportKind.OUTPUT, "output_reports"),
    (ReportKind.FEATURE, "feature_reports"),
)


def assert_same_as_hidtools(raw: bytes) -> ReportDescriptor:
    ours = parse_report_descriptor(raw)
    theirs = hidtools_parse(raw)
    for kind, attribute in _KINDS:
        our_reports = ours.reports_of(kind)
        # hid-tools keys an unnumbered report by -1 (hid.py:1875 `report_ID: U8 = -1`).
        their_reports = {
            (None if rid == -1 else rid): r for rid, r in getattr(theirs, attribute).items()
        }
        assert set(our_reports) == set(their_reports), kind
        for rid, report in our_reports.items():
            their = their_reports[rid]
            id_bits = 8 if their.numbered else 0
            assert report.bits == their.bitsize - id_bits, (kind, rid)
            assert [n for n, _ in ours_normalised(report)] == [
                n for n, _ in hidtools_normalised(their)
            ], (kind, rid)
    return ours


@pytest.mark.parametrize(("raw", "paths"), DESCRIPTORS)
def test_fixture_agrees_with_hidtools(raw: bytes, paths: list[Path]) -> None:
    assert_same_as_hidtools(raw)


# --------------------------------------------------------------------------------------------
# Decoding both ways
# --------------------------------------------------------------------------------------------


def _extract(field: Field, report: bytes, numbered: bool) -> int:
    shift = (8 if numbered else 0) + field.bit
    value = (int.from_bytes(report, "little") >> shift) & ((1 << field.size) - 1)
    if field.signed and value >> (field.size - 1):
        value -= 1 << field.size
    return value


def _hidtools_value(field: Any, report: bytes, index: int = 0) -> int:
    value = field.get_values(list(report))[index]
    assert isinstance(value, int)
    if field.logical_min < 0 and field.size == 1:
        # hid-tools sign-extends only fields wider than one bit (hid.py:1194
        # `if self.logical_min < 0 and self.size > 1`); the kernel's snto32() and we sign-extend
        # a 1-bit field with a negative Logical Minimum too.
        value = twos_comp(value, 1)
    return value


def _sample_reports(report: Report, seed: str, recorded: list[bytes]) -> list[bytes]:
    """All-zero, all-one and random reports of the right length, and every recorded report of
    this report ID and length (recordings also hold deliberately malformed ones)."""
    rng = random.Random(seed)
    samples = [bytes(report.data_bytes), b"\xff" * report.data_bytes]
    samples += [rng.randbytes(report.data_bytes) for _ in range(8)]
    prefix = b"" if report.report_id is None else bytes([report.report_id])
    mine = [r for r in recorded if len(r) == report.wire_bytes and r.startswith(prefix)]
    return [prefix + s for s in samples] + mine


def _expected_reading(pairs: list[tuple[Norm, Field, Any]], data: bytes) -> list[ControlValue]:
    """What the decoder must say, computed from hid-tools' values, in the decoder's plan order:
    watched variables in wire order, then watched arrays."""
    # Group hid-tools' fields by the Field of ours they were paired with (a constant array of
    # ours is several hid-tools fields, one per slot; see ours_normalised).
    groups: dict[int, tuple[Field, list[Any]]] = {}
    for _, ours, theirs in pairs:
        groups.setdefault(id(ours), (ours, []))[1].append(theirs)
    variables: list[ControlValue] = []
    arrays: list[ControlValue] = []
    for ours, theirs in groups.values():
        if ours.is_padding:
            continue
        if ours.variable:
            control = control_of(ours, ours.usages[0])
            if control is not None:
                value = _hidtools_value(theirs[0], data)
                variables.append(ControlValue(control, value, ours.relative))
            continue
        # An array: a control is on when any slot holds its usage's index.
        slots = {_hidtools_value(t, data, i) for t in theirs for i in range(t.count)}
        mapping = [
            (i + ours.logical_min, control_of(ours, usage)) for i, usage in enumerate(ours.usages)
        ]
        controls = list(dict.fromkeys(c for _, c in mapping if c is not None))
        on = {c for index, c in mapping if c is not None and index in slots}
        arrays.extend(ControlValue(c, int(c in on), ours.relative) for c in controls)
    return variables + arrays


@pytest.mark.parametrize(("raw", "paths"), DESCRIPTORS)
def test_fixture_decodes_like_hidtools(raw: bytes, paths: list[Path]) -> None:
    recorded = [r.data for p in paths for r in Recording.load(p).reports]
    ours = parse_report_descriptor(raw)
    theirs = hidtools_parse(raw)
    decoder = TelephonyDecoder(ours)
    for rid, report in ours.reports_of(ReportKind.INPUT).items():
        their = theirs.input_reports[-1 if rid is None else rid]
        our_pairs = ours_normalised(report)
        their_pairs = hidtools_normalised(their)
        assert [n for n, _ in our_pairs] == [n for n, _ in their_pairs]
        pairs = [(n, f, t) for (n, f), (_, t) in zip(our_pairs, their_pairs, strict=True)]
        for data in _sample_reports(report, f"{paths[0].name}:{rid}", recorded):
            assert len(data) == report.wire_bytes
            for norm, field, their_field in pairs:
                if not norm.usages or not their_field.type & 0x2:
                    continue  # padding, or an array (its slots are checked via the decoder)
                assert _extract(field, data, ours.numbered) == _hidtools_value(their_field, data), (
                    rid,
                    norm,
                    data.hex(),
                )
            if ours.numbered == (rid is not None):  # a mixed numbered/unnumbered device is moot
                reading = decoder.decode(data)
                assert list(reading.values) == _expected_reading(pairs, data)


# --------------------------------------------------------------------------------------------
# Property tests: a small grammar of well-formed descriptors
# --------------------------------------------------------------------------------------------

# Never page 0: hid-tools tests a usage range by truthiness (hid.py:1433 and 1455
# `if usage_min and usage_max:`), so a range starting at extended usage 0 (page 0, id 0) would be
# silently ignored by hid-tools alone. With a non-zero page every range is truthy. For the same
# reason the grammar opens every descriptor with a Usage Page.
PAGES = (0x01, 0x08, 0x09, 0x0B, 0x0C, 0xFF00, 0xFFA0)


def _item(prefix: int, value: int, nbytes: int) -> bytes:
    return bytes([prefix | {0: 0, 1: 1, 2: 2, 4: 3}[nbytes]]) + value.to_bytes(nbytes, "little")


def _width_for(value: int, signed: bool) -> list[int]:
    fits = []
    for n in (1, 2, 4):
        low, high = (
            (-(1 << (8 * n - 1)), (1 << (8 * n - 1)) - 1) if signed else (0, (1 << 8 * n) - 1)
        )
        if low <= value <= high:
            fits.append(n)
    return fits


@st.composite
def _uint_item(draw: st.DrawFn, prefix: int, value: int) -> bytes:
    n = draw(st.sampled_from(_width_for(value, signed=False)))
    return _item(prefix, value, n)


@st.composite
def _sint_item(draw: st.DrawFn, prefix: int, value: int) -> bytes:
    n = draw(st.sampled_from(_width_for(value, signed=True)))
    return _item(prefix, value & ((1 << 8 * n) - 1), n)


@st.composite
def _usage_page(draw: st.DrawFn) -> bytes:
    return draw(_uint_item(0x04, draw(st.sampled_from(PAGES))))


@st.composite
def _globals(draw: st.DrawFn, report_id_allowed: bool) -> bytes:
    out = b""
    if draw(st.booleans()):
        out += draw(_usage_page())
    if draw(st.booleans()):
        out += draw(_sint_item(0x14, draw(st.integers(-(1 << 31), (1 << 31) - 1))))
    if draw(st.booleans()):
        # Logical Maximum is written as raw bytes; whether it reads signed depends on the minimum.
        n = draw(st.sampled_from((1, 2, 4)))
        out += _item(0x24, draw(st.integers(0, (1 << 8 * n) - 1)), n)
    if draw(st.booleans()):
        out += draw(_uint_item(0x74, draw(st.integers(0, 32))))  # Report Size
    if draw(st.booleans()):
        out += draw(_uint_item(0x94, draw(st.integers(0, 8))))  # Report Count
    if report_id_allowed and draw(st.integers(0, 4)) == 0:
        out += draw(_uint_item(0x84, draw(st.integers(1, 255))))
    return out


@st.composite
def _usage(draw: st.DrawFn) -> bytes:
    if draw(st.integers(0, 3)) == 0:  # a 4-byte extended usage carries its own page
        page, uid = draw(st.sampled_from(PAGES)), draw(st.integers(0, 0xFFFF))
        return _item(0x08, page << 16 | uid, 4)
    uid = draw(st.integers(0, 0xFFFF))
    return _item(0x08, uid, draw(st.sampled_from(_width_for(uid, signed=False)[:2])))


@st.composite
def _usage_range(draw: st.DrawFn) -> bytes:
    # Both ends the same width: hid-tools re-pages a range by the Maximum's width only
    # (hid.py:1958 `_concatenate_usages`), the kernel expands it at the Maximum.
    length = draw(st.integers(1, 16))
    if draw(st.integers(0, 3)) == 0:
        page, low = draw(st.sampled_from(PAGES)), draw(st.integers(0, 0xFFFF - length))
        return _item(0x18, page << 16 | low, 4) + _item(0x28, page << 16 | (low + length - 1), 4)
    n = draw(st.sampled_from((1, 2)))
    low = draw(st.integers(0, (1 << 8 * n) - length))
    return _item(0x18, low, n) + _item(0x28, low + length - 1, n)


@st.composite
def _locals(draw: st.DrawFn) -> bytes:
    """Usages (or one range; hid-tools drops explicit usages when a range is present, hid.py:1433,
    while the kernel keeps both), with Usage Page changes in between and after them."""
    out = b""
    if draw(st.integers(0, 3)) == 0:
        out += draw(_usage_range())
    else:
        for _ in range(draw(st.integers(0, 4))):
            if draw(st.integers(0, 3)) == 0:
                out += draw(_usage_page())
            out += draw(_usage())
    if draw(st.integers(0, 3)) == 0:
        out += draw(_usage_page())  # `Usage; Usage Page; Input`
    return out


@st.composite
def _main(draw: st.DrawFn) -> bytes:
    prefix = draw(st.sampled_from((0x80, 0x90, 0xB0)))  # Input, Output, Feature
    flags = draw(st.integers(0, 0x1FF))  # const/var/rel and the rest, up to Buffered Bytes
    return draw(_locals()) + draw(_uint_item(prefix, flags))


@st.composite
def _body(draw: st.DrawFn, depth: int, pushes: int) -> bytes:
    out = b""
    for _ in range(draw(st.integers(0, 5))):
        choice = draw(st.integers(0, 9))
        if choice <= 2:
            # hid-tools keeps Report ID among its locals (hid.py:1980), so Push/Pop do not save it
            # while the kernel's Push does; the grammar sets Report IDs only outside Push..Pop.
            out += draw(_globals(report_id_allowed=pushes == 0))
        elif choice <= 6:
            out += draw(_main())
        elif choice <= 8 and depth < 3:
            out += draw(_collection(depth + 1, pushes, st.integers(0, 6)))
        elif pushes < 2:
            out += b"\xa4" + draw(_body(depth, pushes + 1)) + b"\xb4"
    return out


@st.composite
def _collection(draw: st.DrawFn, depth: int, pushes: int, kinds: st.SearchStrategy[int]) -> bytes:
    usage = draw(_usage()) if draw(st.integers(0, 3)) else b""
    body = draw(_body(depth, pushes))  # may be empty, as the Razer Kraken's Telephony one is
    return usage + draw(_uint_item(0xA0, draw(kinds))) + body + b"\xc0"


@st.composite
def descriptors(draw: st.DrawFn) -> bytes:
    out = draw(_usage_page())
    out += draw(_globals(report_id_allowed=True))
    for _ in range(draw(st.integers(1, 3))):  # top-level application collections
        out += draw(_collection(0, 0, st.just(1)))
        if draw(st.integers(0, 5)) == 0:
            out += draw(_body(0, 0))  # items outside any collection parse too
    return out


@settings(max_examples=200, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(descriptors())
def test_random_wellformed_descriptors_agree_with_hidtools(raw: bytes) -> None:
    assert_same_as_hidtools(raw)


@st.composite
def _random_items(draw: st.DrawFn) -> bytes:
    """Well-framed items with random headers and payloads: reaches deeper than random bytes."""
    out = b""
    for _ in range(draw(st.integers(0, 60))):
        header = draw(st.integers(0, 0xFF))
        out += (
            bytes([header])
            + draw(st.binary(min_size=(0, 1, 2, 4)[header & 3], max_size=4))[
                : (0, 1, 2, 4)[header & 3]
            ]
        )
    return out


@settings(max_examples=200, deadline=1000)
@given(st.one_of(st.binary(max_size=600), _random_items()))
def test_random_bytes_raise_only_descriptor_error(raw: bytes) -> None:
    with contextlib.suppress(DescriptorError):
        parse_report_descriptor(raw)


# --------------------------------------------------------------------------------------------
# Malformed descriptors
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "paths"), DESCRIPTORS)
def test_every_prefix_parses_or_raises_descriptor_error(raw: bytes, paths: list[Path]) -> None:
    for end in range(len(raw) + 1):
        with contextlib.suppress(DescriptorError):
            parse_report_descriptor(raw[:end])


APP = bytes.fromhex("05 0b 09 05 a1 01")  # Usage Page (Telephony), Usage (Headset), Collection
VAR1 = bytes.fromhex("15 00 25 01 75 01 95 01")  # a 1-bit 0..1 field's globals

MALFORMED = {
    "empty": b"",
    "oversized": APP + b"\xa4\xb4" * ((MAX_DESCRIPTOR_BYTES - len(APP)) // 2) + b"\xc0",
    "truncated 1-byte item": APP + b"\x09",
    "truncated 2-byte item": APP + b"\x0a\x20",
    "truncated 4-byte item": APP + b"\x0b\x20\x00\x0b",
    "truncated long item": APP + b"\xfe\x10\x00\x01",
    "Report Size 257": APP + bytes.fromhex("76 01 01") + b"\xc0",
    "Report Size 0xffffffff": APP + bytes.fromhex("77 ff ff ff ff") + b"\xc0",
    "Report Count 0xffffffff": APP + bytes.fromhex("97 ff ff ff ff") + b"\xc0",
    "Report Count 12289": APP + bytes.fromhex("96 01 30") + b"\xc0",
    "report over 16 KiB": APP + bytes.fromhex("09 20 75 20 96 00 30 81 02 81 02") + b"\xc0",
    "usage range 0..0xffffffff": APP
    + bytes.fromhex("1b 00 00 00 00 2b ff ff ff ff")
    + VAR1
    + b"\x81\x00\xc0",
    "usage range 0..0xffffffff on a collection": bytes.fromhex(
        "1b 00 00 00 00 2b ff ff ff ff a1 01 c0"
    ),
    "usage range 1..0xffff": APP + bytes.fromhex("19 01 2a ff ff") + VAR1 + b"\x81\x00\xc0",
    "usage maximum below minimum": APP + bytes.fromhex("19 05 29 01") + VAR1 + b"\x81\x00\xc0",
    "usage minimum without maximum": APP + bytes.fromhex("19 05") + VAR1 + b"\x81\x00\xc0",
    "usage maximum without minimum": APP + bytes.fromhex("29 05") + VAR1 + b"\x81\x00\xc0",
    "collections nested too deep": b"\xa1\x00" * (MAX_COLLECTION_DEPTH + 1)
    + b"\xc0" * (MAX_COLLECTION_DEPTH + 1),
    "Push nested too deep": APP + b"\xa4" * (MAX_GLOBAL_STACK + 1) + b"\xb4" * 17 + b"\xc0",
    "Pop without Push": APP + b"\xb4\xc0",
    "End Collection without Collection": b"\xc0",
    "unbalanced End Collection": APP + b"\xc0\xc0",
    "collection left open": APP,
    "nested collection left open": APP + b"\xa1\x02\xc0",
    "Report ID 0": APP + b"\x85\x00\xc0",
    "Report ID 256": APP + bytes.fromhex("86 00 01") + b"\xc0",
    "reserved item type": APP + b"\x0c\xc0",
    "reserved item type with data": APP + b"\x3d\x00\xc0",
    "reserved main item tag": APP + b"\xd0\xc0",
    "reserved global item tag": APP + b"\xc4\xc0",
    "reserved local item tag": APP + b"\xb8\xc0",
}


@pytest.mark.parametrize("raw", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_descriptor_raises_descriptor_error(raw: bytes) -> None:
    with pytest.raises(DescriptorError):
        parse_report_descriptor(raw)


def test_descriptor_error_names_the_offending_byte() -> None:
    with pytest.raises(DescriptorError, match="at byte 6") as info:
        parse_report_descriptor(APP + b"\x85\x00\xc0")
    assert info.value.offset == 6


def test_descriptor_at_the_size_limit_still_parses() -> None:
    raw = APP + b"\xa4\xb4" * ((MAX_DESCRIPTOR_BYTES - len(APP) - 1) // 2) + b"\xc0"
    assert len(raw) <= MAX_DESCRIPTOR_BYTES
    parse_report_descriptor(raw)


def test_push_at_the_depth_limit_still_parses() -> None:
    raw = APP + b"\xa4" * MAX_GLOBAL_STACK + b"\xb4" * MAX_GLOBAL_STACK + b"\xc0"
    parse_report_descriptor(raw)


def test_trailing_long_item_is_skipped() -> None:
    # Long items (0xFE) have no defined tags; they are skipped, not misread as short items.
    parsed = parse_report_descriptor(APP + b"\xfe\x02\x00\x81\x02\xc0")
    assert parsed.reports == ()


# --------------------------------------------------------------------------------------------
# Specific semantics
# --------------------------------------------------------------------------------------------


def _only_field(raw: bytes, kind: ReportKind = ReportKind.INPUT) -> list[Field]:
    report = parse_report_descriptor(raw).reports_of(kind)
    assert len(report) == 1
    return list(next(iter(report.values())).fields)


def _field_by_usage(d: ReportDescriptor, kind: ReportKind, rid: int, usage: int) -> Field:
    (found,) = [f for f in d.reports_of(kind)[rid].fields if f.usage == usage]
    return found


@pytest.mark.parametrize(
    ("name", "rid", "bit"),
    [
        # anker_powerconf_291a-3301.hid: '09 20 09 97 ... 81 23' (Input Cnst,Var,Abs,NoPref)
        ("anker_powerconf_291a-3301.hid", 2, 0),
        # razer_usb-microphone_1532-0511.hid: Telephony/Headset report 2, '09 20 ... 81 23'
        ("razer_usb-microphone_1532-0511.hid", 2, 0),
    ],
)
def test_constant_field_with_usage_is_data(name: str, rid: int, bit: int) -> None:
    d = _fixture(name)
    hook = _field_by_usage(d, ReportKind.INPUT, rid, u.HOOK_SWITCH)
    assert hook.constant
    assert hook.variable
    assert not hook.is_padding
    assert (hook.bit, hook.size, hook.count) == (bit, 1, 1)
    assert hook.application == u.usage(u.PAGE_TELEPHONY, 0x05)
    assert "hook_switch" in TelephonyDecoder(d).controls


def test_anker_constant_phone_mute_is_relative_data() -> None:
    # anker_powerconf_291a-3301.hid: '09 2f 09 21 09 70 09 50 ... 81 07' (Cnst,Var,Rel)
    mute = _field_by_usage(
        _fixture("anker_powerconf_291a-3301.hid"), ReportKind.INPUT, 2, u.PHONE_MUTE
    )
    assert mute.constant
    assert mute.variable
    assert mute.relative
    assert mute.bit == 2


def test_padding_has_no_usages() -> None:
    # Jabra EVOLVE LINK MS report 2: '75 01 95 05 81 01' after the keypad array.
    d = _fixture("jabra_evolve-link-ms_0b0e-0307.hid")
    padding = [f for f in d.reports_of(ReportKind.INPUT)[2].fields if f.is_padding]
    assert [(f.bit, f.size, f.count, f.usages) for f in padding] == [(11, 1, 5, ())]
    assert padding[0].constant
    assert padding[0].usage is None
    # A variable item without usages is padding too, whatever its flags say.
    (field,) = _only_field(APP + VAR1 + b"\x81\x02\xc0")
    assert field.is_padding
    assert not field.is_array
    assert field.usages == ()


def test_variable_item_with_fewer_usages_repeats_the_last() -> None:
    raw = APP + bytes.fromhex("09 20 09 2f") + VAR1[:-1] + b"\x04\x81\x02\xc0"
    fields = _only_field(raw)
    assert [(f.bit, f.count, f.usages) for f in fields] == [
        (0, 1, (u.HOOK_SWITCH,)),
        (1, 1, (u.PHONE_MUTE,)),
        (2, 1, (u.PHONE_MUTE,)),
        (3, 1, (u.PHONE_MUTE,)),
    ]


def test_variable_item_with_more_usages_than_values_takes_the_first() -> None:
    fields = _only_field(APP + bytes.fromhex("19 20 29 2f") + VAR1 + b"\x81\x02\xc0")
    assert [f.usages for f in fields] == [(u.HOOK_SWITCH,)]


def test_usage_then_usage_page_takes_the_later_page() -> None:
    # Kernel behaviour (hid_concatenate_last_usage_page). Real case: Jabra EVOLVE LINK MS report
    # 2, '09 07 05 09 75 01 95 01 81 02' is Button 7, not Telephony Programmable Button.
    (field,) = _only_field(APP + bytes.fromhex("09 07 05 09") + VAR1 + b"\x81\x02\xc0")
    assert field.usages == (u.usage(u.PAGE_BUTTON, 7),)
    d = _fixture("jabra_evolve-link-ms_0b0e-0307.hid")
    button = _field_by_usage(d, ReportKind.INPUT, 2, u.usage(u.PAGE_BUTTON, 7))
    assert button.bit == 6


def test_usages_under_two_pages_keep_the_page_they_were_declared_under() -> None:
    # Kernel: only the trailing usages declared before the last Usage Page are re-paged
    # (hid_concatenate_last_usage_page stops at the first usage already on the current page).
    raw = APP + bytes.fromhex("09 20 05 08 09 09") + VAR1[:-1] + b"\x02\x81\x02\xc0"
    assert [f.usages for f in _only_field(raw)] == [
        (u.HOOK_SWITCH,),
        (u.usage(u.PAGE_LED, 0x09),),
    ]


def test_extended_usage_keeps_its_own_page() -> None:
    raw = APP + bytes.fromhex("0b 20 00 0b 00 05 08") + VAR1 + b"\x81\x02\xc0"
    (field,) = _only_field(raw)
    assert field.usages == (u.HOOK_SWITCH,)


@pytest.mark.parametrize(
    ("globals_hex", "expected"),
    [
        ("15 81 25 7f", (-127, 127)),
        ("15 ff 25 01", (-1, 1)),
        ("15 ff 25 ff", (-1, -1)),  # 0xff read signed because the minimum is negative
        ("15 00 25 ff", (0, 255)),  # unsigned when the minimum is not negative
        ("16 00 80 26 ff 7f", (-32768, 32767)),
        ("15 ff 26 ff 00", (-1, 255)),  # 2-byte 0x00ff is +255 either way
        ("17 00 00 00 80 27 ff ff ff 7f", (-(1 << 31), (1 << 31) - 1)),
        ("14 24", (0, 0)),  # 0-byte items hold 0
    ],
)
def test_signed_logical_ranges(globals_hex: str, expected: tuple[int, int]) -> None:
    raw = APP + bytes.fromhex("09 30 75 08 95 01" + globals_hex) + b"\x81\x02\xc0"
    (field,) = _only_field(raw)
    assert (field.logical_min, field.logical_max) == expected
    assert field.signed == (expected[0] < 0)


def test_razer_kraken_empty_telephony_collection_has_no_fields() -> None:
    # razer_kraken-kitty-v2_1532-0560.hid ends with '05 0b 09 05 a1 01 c0'.
    d = _fixture("razer_kraken-kitty-v2_1532-0560.hid")
    headset = u.usage(u.PAGE_TELEPHONY, 0x05)
    assert d.applications[-1] == headset
    assert d.has_application_page(u.PAGE_TELEPHONY)
    assert not [f for r in d.reports for f in r.fields if f.application == headset]
    controls = TelephonyDecoder(d).controls
    assert "hook_switch" not in controls
    assert "phone_mute" not in controls


BLACKWIRE_3220 = {
    "plantronics_blackwire-3220_047f-c056_consumer.hid": u.usage(u.PAGE_CONSUMER, 0x01),
    "plantronics_blackwire-3220_047f-c056_telephony.hid": u.usage(u.PAGE_TELEPHONY, 0x05),
    "plantronics_blackwire-3220_047f-c056_vendor-ffa0.hid": 0xFFA0_0003,
}


@pytest.mark.parametrize(("name", "application"), BLACKWIRE_3220.items())
def test_blackwire_3220_collection_files(name: str, application: int) -> None:
    # hidapi stores the Blackwire 3220's interface 3 as one file per top-level collection.
    d = _fixture(name)
    assert d.applications == (application,)
    assert {f.application for r in d.reports for f in r.fields} == {application}


def test_blackwire_3220_several_top_level_collections() -> None:
    # The three collections of the one interface, concatenated (their order on the device is
    # not recorded, see the fixtures' Notes; any order gives the same reports). Synthetic join.
    names = list(BLACKWIRE_3220)
    for order in (names, names[::-1]):
        raw = b"".join(_descriptor_of(FIXTURE_DIR / n) for n in order)
        d = assert_same_as_hidtools(raw)
        assert d.applications == tuple(BLACKWIRE_3220[n] for n in order)
        separately = {(r.kind, r.report_id): r for n in order for r in _fixture(n).reports}
        assert {(r.kind, r.report_id) for r in d.reports} == set(separately)
        # Telephony input report 8: Phone Mute (relative) at bit 0, Hook Switch at bit 1.
        tel = d.reports_of(ReportKind.INPUT)[8]
        assert [(f.usage, f.bit, f.relative) for f in tel.fields if f.usage] == [
            (u.PHONE_MUTE, 0, True),
            (u.HOOK_SWITCH, 1, False),
            (u.FLASH, 2, False),
        ]
        assert all(f.application == BLACKWIRE_3220[names[1]] for f in tel.fields)
        # Output reports: one LED per report ID, 1 bit + 7 bits of padding.
        outputs = d.reports_of(ReportKind.OUTPUT)
        for rid in (0x09, 0x17, 0x18, 0x1E, 0x20, 0x2A):
            assert outputs[rid].bits == 8
            assert outputs[rid].fields[0].usage == u.usage(u.PAGE_LED, rid)


def test_jabra_evolve_several_top_level_collections() -> None:
    d = _fixture("jabra_evolve-link-ms_0b0e-0307.hid")
    assert d.applications == (
        u.usage(u.PAGE_TELEPHONY, 0x05),
        0xFF00_0005,
        u.usage(u.PAGE_CONSUMER, 0x01),
    )
    # Input and output share report 2 and are kept apart.
    assert {ReportKind.INPUT, ReportKind.OUTPUT} <= {r.kind for r in d.reports if r.report_id == 2}


def test_bounded_work_for_a_hostile_descriptor_within_every_limit() -> None:
    # Report Count 12288 of 1-bit variables, repeated under fresh report IDs: every single size
    # is within its limit, but without a bound on the total this makes millions of fields.
    raw = bytearray(bytes.fromhex("05 01 75 01 96 00 30"))
    for rid in range(1, 256):
        chunk = bytes([0x85, rid]) + bytes.fromhex("09 01 81 02") * 10
        if len(raw) + len(chunk) > MAX_DESCRIPTOR_BYTES:
            break
        raw += chunk
    with pytest.raises(DescriptorError):
        parse_report_descriptor(bytes(raw))


def test_bounded_memory_for_many_huge_usage_ranges() -> None:
    raw = bytearray(bytes.fromhex("05 01 75 10 95 01 a1 01"))
    while len(raw) + 8 <= MAX_DESCRIPTOR_BYTES:
        raw += bytes.fromhex("19 01 2a ff 2f 81 00")
    raw += b"\xc0"
    with pytest.raises(DescriptorError):
        parse_report_descriptor(bytes(raw))


# --------------------------------------------------------------------------------------------
# Hostile layouts: a repeated usage, and watched fields that would make a report costly
# --------------------------------------------------------------------------------------------


def _events_per_report(raw: bytes, reports: list[bytes]) -> list[list[Event]]:
    decoder = TelephonyDecoder(parse_report_descriptor(raw))
    state, out = HeadsetState(), []
    for t, report in enumerate(reports):
        state, events = decode_and_step(decoder, state, report, float(t))
        out.append(events)
    return out


def test_repeated_hook_switch_usage_is_one_control_and_the_first_field_wins() -> None:
    # Report Count 2 on one Hook Switch usage: two variable fields with the same usage (bits 0
    # and 1). The first field is the control; the second is ignored, as the kernel's hid-input
    # ignores a usage already mapped on the same input device (HID_STAT_DUP_DETECTED).
    raw = APP + VAR1[:-1] + b"\x02" + bytes.fromhex("09 20 81 02 95 06 81 03 c0")
    decoder = TelephonyDecoder(parse_report_descriptor(raw))
    assert decoder.controls == ("hook_switch",)
    # One call: off hook (bit 0), bit 1 set and cleared by the device (changes nothing), back
    # on hook. Exactly one off-hook and one on-hook, each on the report that made it.
    events = _events_per_report(raw, [b"\x01", b"\x03", b"\x01", b"\x00", b"\x02"])
    assert events == [[HookChanged(True)], [], [], [HookChanged(False)], []]


def test_repeated_usage_across_a_variable_and_an_array_keeps_the_first_in_wire_order() -> None:
    # Phone Mute as a 1-bit variable at bit 0, then again as an array slot (index 1 = Mute).
    raw = (
        APP
        + VAR1
        + bytes.fromhex("09 2f 81 06")  # Phone Mute, Data,Var,Rel
        + bytes.fromhex("75 07 95 01 15 01 25 02 09 20 09 2f 81 00 c0")  # array: Hook, Mute
    )
    decoder = TelephonyDecoder(parse_report_descriptor(raw))
    assert sorted(decoder.controls) == ["hook_switch", "phone_mute"]
    mute_values = [
        [cv.value for cv in decoder.decode(bytes([b])).values if cv.control == "phone_mute"]
        for b in (0x00, 0x01, 0x04)  # nothing; variable bit; array slot = index 1 (Mute)
    ]
    assert mute_values == [[0], [1], [0]]
    # The array still carries Hook Switch (index 1), the control it is first for.
    assert {cv.control: cv.value for cv in decoder.decode(b"\x02").values}["hook_switch"] == 1


def test_a_watched_usage_in_two_reports_is_decoded_in_each() -> None:
    # epos_impact-d_1395-00a9.hid carries Volume Up/Down in input reports 1 (Consumer) and 2
    # (Telephony): a repeated usage is one control per report, not per device.
    d = _fixture("epos_impact-d_1395-00a9.hid")
    decoder = TelephonyDecoder(d)
    for rid in (1, 2):
        report = d.reports_of(ReportKind.INPUT)[rid]
        data = bytes([rid, 0b10]) + bytes(report.wire_bytes - 2)  # bit 1: Volume Up
        values = {cv.control: cv.value for cv in decoder.decode(data).values}
        assert values["volume_up"] == 1


def _hook_bits_and_array(bits: int, slots: int) -> bytes:
    """`bits` 1-bit Hook Switch fields, then an array of `slots` 8-bit slots over Telephony
    usages 0x00..0xff (which holds Hook Switch, Flash, Redial, Drop and Phone Mute)."""
    return (
        APP
        + VAR1[:-1]
        + bytes([bits])
        + bytes.fromhex("09 20 81 02 26 ff 00 75 08 95")
        + bytes([slots])
        + bytes.fromhex("19 00 2a ff 00 81 00 c0")
    )


HOSTILE_COSTLY = {
    # 5 x Report Count 12288 of 1-bit Hook Switch: 61,440 watched fields in one report (every
    # parser bound holds); decoding one report took 83 ms and gave 31,024 events.
    "61440 Hook Switch bits": APP
    + VAR1[:-2]
    + bytes.fromhex("96 00 30")
    + bytes.fromhex("09 20 81 02") * 5
    + b"\xc0",
    # An array of 12,288 slots over Telephony usages: 11 ms per report.
    "array of 12288 slots": APP + bytes.fromhex("26 ff 2f 75 08 96 00 30 19 00 2a ff 2f 81 00 c0"),
    "8 Hook Switch bits and 57 array slots": _hook_bits_and_array(8, 57),
}


@pytest.mark.parametrize("raw", HOSTILE_COSTLY.values(), ids=HOSTILE_COSTLY.keys())
def test_descriptor_whose_watched_fields_cost_too_much_is_rejected(raw: bytes) -> None:
    descriptor = parse_report_descriptor(raw)  # within every bound of the parser
    with pytest.raises(DescriptorError, match="watched fields or array slots"):
        TelephonyDecoder(descriptor)


def test_watched_fields_at_the_bound_decode_with_one_value_per_control() -> None:
    raw = _hook_bits_and_array(8, 56)  # 64 watched values: accepted
    descriptor = parse_report_descriptor(raw)
    (report,) = descriptor.reports_of(ReportKind.INPUT).values()
    decoder = TelephonyDecoder(descriptor)
    state, rng = HeadsetState(), random.Random("bound")
    for _ in range(200):
        data = rng.randbytes(report.wire_bytes)
        controls = [cv.control for cv in decoder.decode(data).values]
        assert len(controls) == len(set(controls)) == 5  # Hook, Flash, Redial, Drop, Mute
        state, events = decode_and_step(decoder, state, data, 0.0)
        assert len(events) <= len(controls)
