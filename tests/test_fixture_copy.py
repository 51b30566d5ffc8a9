"""tests/fixtures/{hid,usb} are copies of the shared fixtures (../shared/fixtures/{hid,usb} next to
the repo), so that a standalone clone still has them. A copy must not drift from its source, and
every published dump keeps the header that says where its bytes came from.

Data-driven: a file added to a shared folder is checked with no code change; a folder is one row
of FOLDERS.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
COPIES = REPO / "tests" / "fixtures"
SHARED = REPO.parent / "shared" / "fixtures"

# folder -> the globs of its published dumps, each of which starts with a '#' source header.
# usb/*.desc are raw bytes converted from the dumps beside them (no header possible), and the
# README is prose: both are still compared byte for byte.
FOLDERS: dict[str, tuple[str, ...]] = {
    "hid": ("*.hid",),
    "usb": ("*.lsusb.txt", "*.desc.hex"),
}

# Where a dump came from, on or after its '# Source:' line: a URL, a repository named as
# "repo owner/name", a stored "owner/name:path@commit", or a mailing-list Message-ID.
_WHERE = re.compile(
    r"https?://|\brepo \S+/|[\w.-]+/[\w.-]+:\S+@[0-9a-f]{40}|Message: <[^>\s]+@[^>\s]+>"
)


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []


COPIED = [p for name in FOLDERS for p in _files(COPIES / name)]
# A fixture only the project has is allowed; the ones in both folders must match.
IN_BOTH = [p for p in COPIED if (SHARED / p.parent.name / p.name).is_file()]
DUMPS = [
    p for name, globs in FOLDERS.items() for g in globs for p in sorted((COPIES / name).glob(g))
]

# The shared folder is a sibling checkout, not a part of headsetd: in a standalone clone it is
# simply absent, so the comparison is skipped (rightly so even under CI=true).
needs_shared = pytest.mark.skipif(
    not SHARED.is_dir(), reason=f"no shared fixtures at {SHARED} (standalone clone)"
)


def _id(path: Path) -> str:
    return f"{path.parent.name}/{path.name}"


@pytest.mark.parametrize("name", sorted(FOLDERS))
def test_the_copy_has_fixtures(name: str) -> None:
    folder = COPIES / name
    assert any(p for g in FOLDERS[name] for p in folder.glob(g)), f"no fixtures in {folder}"


@needs_shared
@pytest.mark.parametrize("name", sorted(FOLDERS))
def test_every_shared_fixture_has_a_copy(name: str) -> None:
    shared = {p.name for p in _files(SHARED / name)}
    copied = {p.name for p in _files(COPIES / name)}
    assert sorted(shared - copied) == []


@needs_shared
@pytest.mark.parametrize("path", IN_BOTH, ids=_id)
def test_copy_matches_shared_byte_for_byte(path: Path) -> None:
    source = SHARED / path.parent.name / path.name
    assert path.read_bytes() == source.read_bytes(), f"{path} differs from {source}"


@pytest.mark.parametrize("path", DUMPS, ids=_id)
def test_fixture_keeps_its_source_header(path: Path) -> None:
    lines = path.read_text(encoding="utf-8").splitlines()
    header = []
    for line in lines:  # the '#' comment block before the first data line
        if not line.startswith("#"):
            break
        header.append(line)
    assert any(line.startswith("# Source:") for line in header), f"{path.name}: no '# Source:'"
    # The source line is followed by where the bytes came from.
    after = header[[h.startswith("# Source:") for h in header].index(True) :]
    assert any(_WHERE.search(line) for line in after), path.name
