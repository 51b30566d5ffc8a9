"""Scenario recordings (tests/recordings/*.hid) replayed through `headsetd replay --json`.

Data-driven: every .hid file in tests/recordings is a test case, with no code change. Each file
is a hid-recorder recording whose `# expect:` comment lines, in order, give the events headsetd
must print, one per line:

    # expect: <t> <event> [key=value ...]

<t> is seconds since the first E: report (3 decimals, compared within 0.001). <event> is one of
device_connected (first, t=0.000), hook_changed (off_hook=true|false), mute_pressed,
mute_changed (muted=true|false; absolute Phone Mute only), button_pressed
(button=flash|redial|drop|consumer_mute|volume_up|volume_down), report_rejected
(reason=unknown_report_id|wrong_length) and device_disconnected (last, at the last report's t).
A value is read as a JSON literal (true, 3, "x") and otherwise as a bare string.

Semantics the expectations follow: Hook Switch is absolute and unknown until the first report
carrying it (so a first report with hook 0 is a change to on-hook), no event when a value
repeats; relative Phone Mute and the buttons are events on a rising edge only; a report with an
unknown ID or a length other than the descriptor's is rejected and changes no state.

The recordings themselves are checked too: each names its fixture by file-name prefix
(`<fixture-stem>_<scenario>.hid`) and copies that fixture's R:, N: and I: lines verbatim; the
ones tests/recordings/make_recordings.py makes must equal its output.
"""

from __future__ import annotations

import importlib.util
import io
import json
import sys
import tracemalloc
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from headsetd.hid.recording import RecordedReport, RecordedReports, Recording

TESTS = Path(__file__).resolve().parent
RECORDINGS = TESTS / "recordings"
FIXTURES = TESTS / "fixtures" / "hid"
RECORDING_FILES = sorted(RECORDINGS.glob("*.hid"))
EVENTS = {
    "device_connected",
    "device_disconnected",
    "hook_changed",
    "mute_pressed",
    "mute_changed",
    "button_pressed",
    "report_rejected",
}
T_TOLERANCE = 0.001 + 1e-9  # the expectations have 3 decimals


@dataclass(frozen=True)
class Expected:
    t: float
    event: str
    keys: dict[str, Any]
    line: str

    def __str__(self) -> str:
        return self.line


def _literal(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _expectations(path: Path) -> list[Expected]:
    expected = []
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not stripped.startswith("#"):
            continue
        body = stripped.lstrip("#").strip()
        if not body.startswith("expect:"):
            continue
        words = body.removeprefix("expect:").split()
        assert len(words) >= 2, f"{path.name}: malformed {line!r}"
        keys = {}
        for word in words[2:]:
            key, sep, value = word.partition("=")
            assert sep, f"{path.name}: {word!r} is not key=value in {line!r}"
            assert key, f"{path.name}: {word!r} has no key in {line!r}"
            keys[key] = _literal(value)
        expected.append(Expected(float(words[0]), words[1], keys, " ".join(words)))
    return expected


def _tagged_lines(path: Path) -> dict[str, list[str]]:
    """The file's R:, N:, I:, E: lines (stripped), by tag, in order."""
    lines: dict[str, list[str]] = {"R": [], "N": [], "I": [], "E": []}
    for line in path.read_text().splitlines():
        tag = line[:2]
        if tag in ("R:", "N:", "I:", "E:"):
            lines[tag[0]].append(line.strip())
    return lines


def _report_times(path: Path) -> list[float]:
    return [float(line.split()[1]) for line in _tagged_lines(path)["E"]]


def _fixture_of(recording: Path) -> Path:
    """The fixture whose stem, plus '_', starts the recording's name (the longest such)."""
    matches = [f for f in FIXTURES.glob("*.hid") if recording.name.startswith(f.stem + "_")]
    assert matches, f"{recording.name}: no fixture in {FIXTURES} is a prefix of its name"
    return max(matches, key=lambda f: len(f.stem))


def _scenario_of(recording: Path) -> str:
    return recording.stem.removeprefix(_fixture_of(recording).stem + "_")


def _ids(paths: list[Path]) -> list[str]:
    return [p.stem for p in paths]


def test_there_are_recordings() -> None:
    assert len(RECORDING_FILES) >= 8


# --- the recordings are well-formed ------------------------------------------------------------


@pytest.mark.parametrize("path", RECORDING_FILES, ids=_ids(RECORDING_FILES))
def test_recording_copies_its_fixture_descriptor(path: Path) -> None:
    fixture = _fixture_of(path)
    mine, theirs = _tagged_lines(path), _tagged_lines(fixture)
    for tag in ("R", "N", "I"):
        assert len(mine[tag]) == 1, f"{path.name}: want exactly one {tag}: line"
        assert mine[tag] == theirs[tag][:1], f"{path.name}: {tag}: differs from {fixture.name}"


@pytest.mark.parametrize("path", RECORDING_FILES, ids=_ids(RECORDING_FILES))
def test_recording_expectations_are_well_formed(path: Path) -> None:
    expected = _expectations(path)
    times = _report_times(path)
    assert times, f"{path.name}: no E: reports"
    assert expected, f"{path.name}: no '# expect:' lines"
    assert {e.event for e in expected} <= EVENTS, f"{path.name}: unknown event name"
    assert expected[0].event == "device_connected"
    assert expected[0].t == 0
    assert expected[-1].event == "device_disconnected"
    assert abs(expected[-1].t - (times[-1] - times[0])) <= T_TOLERANCE, (
        f"{path.name}: device_disconnected should be at the last report's t"
    )
    assert [e.event for e in expected].count("device_connected") == 1
    assert [e.event for e in expected].count("device_disconnected") == 1
    assert [e.t for e in expected] == sorted(e.t for e in expected), "expectations out of order"
    assert all(e.t <= times[-1] - times[0] + T_TOLERANCE for e in expected)


def test_at_least_six_descriptors_have_a_call_recording() -> None:
    calls = [p for p in RECORDING_FILES if _scenario_of(p) == "call"]
    # Count descriptors, not fixture names: two fixtures can carry the same descriptor bytes.
    descriptors = {_tagged_lines(p)["R"][0] for p in calls}
    assert len(descriptors) >= 6, f"call recordings cover {len(descriptors)} descriptors"


def test_generated_recordings_are_up_to_date() -> None:
    """The committed recordings are exactly what make_recordings.py makes (it is deterministic)."""
    pytest.importorskip("hidtools.hid", reason="make_recordings.py needs hid-tools")
    spec = importlib.util.spec_from_file_location(
        "make_recordings", RECORDINGS / "make_recordings.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it executes
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    made = {rec.name: rec.text() for rec in module.recordings()}
    again = {rec.name: rec.text() for rec in module.recordings()}
    assert made == again, "make_recordings.py is not deterministic"
    for name, text in made.items():
        path = RECORDINGS / name
        assert path.exists(), f"{name}: not committed; run make_recordings.py"
        assert path.read_text() == text, f"{name}: stale; run make_recordings.py"


# --- replay through headsetd --------------------------------------------------------------------


def _replay(path: Path, capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    from headsetd.cli import main  # noqa: PLC0415 - `replay` lands separately; fail, not error out

    try:
        status = main(["replay", str(path), "--json"])
    except SystemExit as exc:
        status = exc.code
    out = capsys.readouterr().out
    assert status in (0, None), f"headsetd replay exited {status}; stdout:\n{out}"
    events = []
    for number, line in enumerate(out.splitlines(), 1):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except json.JSONDecodeError as exc:
            pytest.fail(f"stdout line {number} is not JSON ({exc}): {line!r}")
        assert isinstance(event, dict), f"stdout line {number} is not a JSON object: {line!r}"
        for key in ("event", "device", "t"):
            assert key in event, f"stdout line {number} lacks {key!r}: {line!r}"
        events.append(event)
    return events


def _same(got: Any, want: Any) -> bool:
    """JSON equality: true is not 1, 1 is 1.0."""
    if isinstance(got, bool) or isinstance(want, bool):
        return isinstance(got, bool) and isinstance(want, bool) and got == want
    return bool(got == want)


def _show(events: list[dict[str, Any]]) -> str:
    return "\n".join(f"  {json.dumps(e, sort_keys=True)}" for e in events)


@pytest.mark.parametrize("path", RECORDING_FILES, ids=_ids(RECORDING_FILES))
def test_replay_matches_expectations(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    expected = _expectations(path)
    events = _replay(path, capsys)
    context = (
        f"{path.name}\nexpected:\n"
        + "\n".join(f"  {e}" for e in expected)
        + f"\ngot:\n{_show(events)}"
    )
    assert [e["event"] for e in events] == [e.event for e in expected], context
    assert len({json.dumps(e["device"], sort_keys=True) for e in events}) == 1, (
        f"the device key changes within one run\n{context}"
    )
    for want, got in zip(expected, events, strict=True):
        t = got["t"]
        assert isinstance(t, int | float), f"t is not a number in {got}\n{context}"
        assert not isinstance(t, bool), f"t is not a number in {got}\n{context}"
        assert abs(got["t"] - want.t) <= T_TOLERANCE, f"t of '{want}': got {got['t']}\n{context}"
        for key, value in want.keys.items():
            assert key in got, f"'{want}': no {key!r} in {got}\n{context}"
            assert _same(got[key], value), (
                f"'{want}': {key}={got[key]!r}, want {value!r}\n{context}"
            )


# --- the format's reader: memory proportional to the file --------------------------------------


def _big_recording(path: Path, reports: int) -> list[RecordedReport]:
    """A fixture's R:/N:/I: lines and `reports` 3-byte reports, one a millisecond."""
    fixture = FIXTURES / "jabra_evolve-link-ms_0b0e-0307.hid"
    want = [RecordedReport(i / 1000, bytes([2, i & 0xFF, i >> 8 & 0xFF])) for i in range(reports)]
    with path.open("w") as out:
        out.writelines(line + "\n" for line in _tagged_lines(fixture)["R"][:1])
        out.write("N: big\nI: 3 0b0e 0307\n")
        for r in want:
            out.write(f"E: {r.t:013.6f} {len(r.data)} {r.data.hex(' ')}\n")
    return want


def test_recording_memory_is_proportional_to_its_size(tmp_path: Path) -> None:
    # Issue 9: a 16.8 MB recording held 177 MB RSS (~130 bytes of objects per report, plus the
    # whole text and its list of lines while parsing). bench/replay_memory.py measures RSS.
    path = tmp_path / "big.hid"
    want = _big_recording(path, 40_000)
    size = path.stat().st_size
    tracemalloc.start()
    try:
        recording = Recording.load(path)
        kept, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert kept <= size, f"{kept} bytes kept for a {size}-byte file"
    assert peak <= 2 * size, f"{peak} bytes at peak for a {size}-byte file"
    reports = recording.reports
    assert len(reports) == len(want)
    assert (reports[0], reports[-1], reports[1234]) == (want[0], want[-1], want[1234])
    assert list(reports) == want


def test_reports_given_as_any_sequence_are_kept_compact_and_equal() -> None:
    given = (RecordedReport(0.0, b"\x02\x01"), RecordedReport(0.5, b""), RecordedReport(1.5, b"x"))
    recording = Recording(b"\x05\x0b", reports=given)
    assert isinstance(recording.reports, RecordedReports)
    assert recording.reports == given
    assert recording == Recording(b"\x05\x0b", reports=list(given))
    assert hash(recording) == hash(Recording(b"\x05\x0b", reports=list(given)))
    assert recording.reports[-1] == given[-1]
    assert list(recording.reports[1:]) == list(given[1:])
    assert recording.reports[::-1] == given[::-1]
    assert not Recording(b"\x05\x0b").reports
    with pytest.raises(IndexError):
        recording.reports[3]
    out = io.StringIO()
    recording.dump(out)
    assert Recording.parse(out.getvalue()).reports == given
