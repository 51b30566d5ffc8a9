"""Fuzz smoke: hostile bytes through everything that reads device- or user-supplied data.

Surfaces: the descriptor parser, the decoder and state machine (random reports for every
fixture's decoder, and for every fuzzed descriptor that parses), the hid-recorder reader, and
`inspect` (describe, render_table, the JSON). The only exceptions allowed are the documented
typed errors (`ALLOWED`); anything else fails, and so does an input costing over
`CPU_LIMIT_SECONDS` of CPU. Seeded with every fixture and recording (a file added to either
folder is a seed with no code change), mutated by hypothesis, derandomized so CI is repeatable.

The checks (`check_*`) are shared with the long campaign, bench/fuzz.py (atheris, >= 1 M
inputs; `--reproduce FILE` replays a crash it saved). A crash found becomes a regression test
beside the code it breaks (test_descriptor.py, test_recordings.py, test_inspect.py) and a fix.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from headsetd.hid.decoder import MalformedReport, TelephonyDecoder
from headsetd.hid.descriptor import (
    DescriptorError,
    ReportDescriptor,
    ReportKind,
    parse_report_descriptor,
)
from headsetd.hid.recording import Recording, RecordingError, _looks_like_text
from headsetd.inspect import describe, render_table
from headsetd.session import HeadsetState, decode_and_step

TESTS = Path(__file__).resolve().parent
SEED_FILES = sorted((TESTS / "fixtures" / "hid").glob("*.hid")) + sorted(
    (TESTS / "recordings").glob("*.hid")
)
ALLOWED = (DescriptorError, MalformedReport, RecordingError)
CPU_LIMIT_SECONDS = 1.0
REPORTS_PER_DESCRIPTOR = 8  # reports decoded for each fuzzed descriptor that parses


def seed_texts() -> list[bytes]:
    return [path.read_bytes() for path in SEED_FILES]


def seed_descriptors() -> list[bytes]:
    return list(dict.fromkeys(Recording.load(path).descriptor for path in SEED_FILES))


# --- the checks (bench/fuzz.py runs the same) ------------------------------------------------


def _inspect(recording: Recording, descriptor: ReportDescriptor) -> None:
    described = describe(recording, descriptor)
    json.dumps(described)
    table = render_table(described)
    if any(not (c.isprintable() or c == "\n") for c in table):
        raise AssertionError("render_table let a control character through")


def _reports_for(descriptor: ReportDescriptor, data: bytes) -> list[bytes]:
    """Reports of each input report's exact wire length, filled from `data`, plus ones of a
    wrong length or ID: what a hostile device could send for this descriptor."""
    pool = data or b"\x00"
    out: list[bytes] = [b"", pool[:1], pool]
    inputs = sorted(descriptor.reports_of(ReportKind.INPUT).items(), key=lambda kv: kv[0] or 0)
    for i, (report_id, report) in enumerate(inputs[:REPORTS_PER_DESCRIPTOR]):
        body = (pool[i:] + pool) * (report.wire_bytes // len(pool) + 1)
        wire = body[: report.wire_bytes]
        if report_id is not None:
            wire = bytes([report_id]) + wire[1:]
        out.append(wire)
    return out


def _decode_all(decoder: TelephonyDecoder, reports: list[bytes]) -> None:
    state = HeadsetState()
    for t, report in enumerate(reports):
        state, _ = decode_and_step(decoder, state, report, float(t))
        with contextlib.suppress(MalformedReport):
            decoder.decode(report)


def check_descriptor(data: bytes) -> None:
    """Parse as a report descriptor; if it parses, inspect it and decode reports with it."""
    try:
        descriptor = parse_report_descriptor(data)
    except DescriptorError:
        return
    _inspect(Recording(descriptor=data), descriptor)
    try:
        decoder = TelephonyDecoder(descriptor)
    except DescriptorError:
        return
    _decode_all(decoder, _reports_for(descriptor, data))


def check_recording(data: bytes) -> None:
    """Read as a hid-recorder file, from text and from a file (which must agree); if it reads,
    check its descriptor and replay its reports."""
    try:
        recording = Recording.parse(data.decode("utf-8", errors="replace"), source="<fuzz>")
    except RecordingError:
        recording = None
    if _looks_like_text(data[:4096]):  # what load() tells a recording from a raw descriptor by
        with tempfile.NamedTemporaryFile(suffix=".hid") as file:
            file.write(data)
            file.flush()
            try:
                loaded = replace(Recording.load(file.name), source="<fuzz>")
            except RecordingError:
                loaded = None
        if loaded != recording:
            raise AssertionError("Recording.load and Recording.parse disagree")
    if recording is None:
        return
    try:
        descriptor = parse_report_descriptor(recording.descriptor)
    except DescriptorError:
        return
    _inspect(recording, descriptor)
    try:
        decoder = TelephonyDecoder(descriptor)
    except DescriptorError:
        return
    _decode_all(decoder, [r.data for r in recording.reports[:1000]])


def check_reports(decoder: TelephonyDecoder, data: bytes) -> None:
    """Split `data` into reports (each prefixed by its length byte) for a fixture's decoder."""
    reports, i = [], 0
    while i < len(data):
        size = data[i]
        reports.append(data[i + 1 : i + 1 + size])
        i += 1 + size
    _decode_all(decoder, reports)


def within_limits(check: Callable[[bytes], None], data: bytes) -> None:
    """Run one check: only the typed errors may escape it (checked by the caller's absence of
    an exception), and it must cost at most CPU_LIMIT_SECONDS of this thread's CPU."""
    start = time.thread_time()
    check(data)
    spent = time.thread_time() - start
    if spent > CPU_LIMIT_SECONDS:
        raise AssertionError(f"{check.__name__} took {spent:.2f} s of CPU on {data[:64]!r}...")


# --- mutation strategies ------------------------------------------------------------------------


@st.composite
def mutated(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    """A seed with a few byte-level edits: flips, extreme values, inserts, deletes, repeats and
    splices with another seed (what coverage-guided fuzzers do, without the guidance)."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(0, 6))):
        op = draw(st.integers(0, 5))
        at = draw(st.integers(0, len(data)))
        if op == 0 and data:
            data[min(at, len(data) - 1)] ^= 1 << draw(st.integers(0, 7))
        elif op == 1 and data:
            data[min(at, len(data) - 1)] = draw(st.sampled_from([0x00, 0x01, 0x7F, 0x80, 0xFF]))
        elif op == 2:
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif op == 3:
            del data[at : at + draw(st.integers(1, 16))]
        elif op == 4:
            chunk = data[at : at + draw(st.integers(1, 32))]
            data[at:at] = chunk * draw(st.integers(1, 64))
        else:
            other = draw(st.sampled_from(seeds))
            cut = draw(st.integers(0, len(other)))
            data = data[:at] + bytearray(other[cut:])
    return bytes(data)


FUZZ = settings(
    derandomize=True,  # repeatable in CI; bench/fuzz.py explores
    database=None,
    deadline=None,  # wall clock is shared with other jobs; CPU time is checked instead
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def fuzz(max_examples: int) -> settings:
    return settings(FUZZ, max_examples=max_examples)


def test_there_are_seeds() -> None:
    assert len(SEED_FILES) >= 30
    assert len(seed_descriptors()) >= 15


@fuzz(12000)
@given(st.one_of(mutated(seed_descriptors()), st.binary(max_size=512)))
def test_fuzz_descriptor_parser_decoder_and_inspect(data: bytes) -> None:
    within_limits(check_descriptor, data)


@fuzz(3500)
@given(mutated(seed_texts()))
def test_fuzz_recording_reader(data: bytes) -> None:
    within_limits(check_recording, data)


_SEED_DESCRIPTORS = [parse_report_descriptor(d) for d in seed_descriptors()]
_DECODERS = [TelephonyDecoder(d) for d in _SEED_DESCRIPTORS]


@st.composite
def report_stream(draw: st.DrawFn) -> tuple[int, bytes]:
    """A fixture's decoder index and reports for it, each prefixed by its length byte: mostly
    of a real input report's ID and length with random contents, some anything at all."""
    index = draw(st.integers(0, len(_DECODERS) - 1))
    inputs = [
        (rid, r.wire_bytes)
        for rid, r in _SEED_DESCRIPTORS[index].reports_of(ReportKind.INPUT).items()
        if r.wire_bytes <= 255
    ]
    stream = bytearray()
    for _ in range(draw(st.integers(1, 12))):
        if inputs and draw(st.integers(0, 3)):
            rid, size = draw(st.sampled_from(inputs))
            report = draw(st.binary(min_size=size, max_size=size))
            if rid is not None:
                report = bytes([rid]) + report[1:]
        else:
            report = draw(st.binary(max_size=255))
        stream += bytes([len(report)]) + report
    return index, bytes(stream)


@fuzz(5000)
@given(report_stream())
def test_fuzz_reports_for_every_fixture_decoder(stream: tuple[int, bytes]) -> None:
    index, data = stream
    within_limits(lambda d: check_reports(_DECODERS[index], d), data)
