"""tests/fixtures/hid is a copy of the shared fixtures (../shared/fixtures/hid next to the repo),
so that a standalone clone still has them. The copy must not drift from its source, and every
fixture keeps the header that says where its bytes came from.
"""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
COPY = REPO / "tests" / "fixtures" / "hid"
SHARED = REPO.parent / "shared" / "fixtures" / "hid"

COPIES = sorted(COPY.glob("*.hid"))
# A fixture only the project has (none yet) is allowed; the ones in both folders must match.
IN_BOTH = [p for p in COPIES if (SHARED / p.name).is_file()] if SHARED.is_dir() else COPIES

# The shared folder is a sibling checkout, not a part of headsetd: in a standalone clone it is
# simply absent, so the comparison is skipped (rightly so even under CI=true).
needs_shared = pytest.mark.skipif(
    not SHARED.is_dir(), reason=f"no shared fixtures at {SHARED} (standalone clone)"
)


def test_the_copy_has_fixtures() -> None:
    assert COPIES, f"no *.hid files in {COPY}"


@needs_shared
def test_every_shared_fixture_has_a_copy() -> None:
    shared = {p.name for p in SHARED.iterdir() if p.is_file()}
    copied = {p.name for p in COPY.iterdir() if p.is_file()}
    assert sorted(shared - copied) == []


@needs_shared
@pytest.mark.parametrize("path", IN_BOTH, ids=lambda p: p.name)
def test_copy_matches_shared_byte_for_byte(path: Path) -> None:
    source = SHARED / path.name
    assert path.read_bytes() == source.read_bytes(), f"{path} differs from {source}"


@pytest.mark.parametrize("path", COPIES, ids=lambda p: p.name)
def test_fixture_keeps_its_source_header(path: Path) -> None:
    lines = path.read_text(encoding="utf-8").splitlines()
    header = []
    for line in lines:  # the '#' comment block before the first data line
        if not line.startswith("#"):
            break
        header.append(line)
    assert any(line.startswith("# Source:") for line in header), f"{path.name}: no '# Source:'"
    # The source line is followed by where the bytes came from (a URL or repository path).
    after = header[[h.startswith("# Source:") for h in header].index(True) :]
    assert any("http" in line or "repo " in line for line in after), path.name


# tests/fixtures/pulse: real audio-server dumps, copied from ../shared/fixtures/pulse the same
# way (README.md included); each dump's first line says where it comes from.
PULSE_COPY = REPO / "tests" / "fixtures" / "pulse"
PULSE_SHARED = REPO.parent / "shared" / "fixtures" / "pulse"
PULSE_FILES = sorted(p for p in PULSE_COPY.iterdir() if p.is_file())
needs_pulse_shared = pytest.mark.skipif(
    not PULSE_SHARED.is_dir(), reason=f"no shared fixtures at {PULSE_SHARED} (standalone clone)"
)


def test_the_pulse_copy_has_dumps() -> None:
    assert any(p.suffix == ".txt" for p in PULSE_FILES), f"no dumps in {PULSE_COPY}"


@needs_pulse_shared
def test_every_shared_pulse_file_has_a_copy() -> None:
    shared = {p.name for p in PULSE_SHARED.iterdir() if p.is_file()}
    assert sorted(shared - {p.name for p in PULSE_FILES}) == []


@needs_pulse_shared
@pytest.mark.parametrize("path", PULSE_FILES, ids=lambda p: p.name)
def test_pulse_copy_matches_shared_byte_for_byte(path: Path) -> None:
    source = PULSE_SHARED / path.name
    if source.is_file():  # a dump only the project has is allowed
        assert path.read_bytes() == source.read_bytes(), f"{path} differs from {source}"


@pytest.mark.parametrize(
    "path", [p for p in PULSE_FILES if p.suffix == ".txt"], ids=lambda p: p.name
)
def test_pulse_dump_names_its_source(path: Path) -> None:
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith("# source: "), path.name
    assert "http" in first, path.name
