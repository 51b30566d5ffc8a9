"""Writes grafana/dashboards/*.json from grafana/boards.py, or checks they are current.

    python -m grafana.build            # regenerate the committed JSON
    python -m grafana.build --check    # exit 1 and name the stale files (CI's test does the same)

Owns: the file names and the write. Never does: edit a board (boards.py owns them) or write
anywhere but grafana/dashboards/.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from grafana.boards import boards, dashboard_json

DASHBOARDS = Path(__file__).resolve().parent / "dashboards"


def rendered() -> dict[Path, str]:
    """Each board's file and its current JSON."""
    return {DASHBOARDS / board.file_name(): dashboard_json(board) for board in boards()}


def stale() -> list[Path]:
    """Committed files that differ from the boards, or are missing, or belong to no board."""
    files = rendered()
    extra = sorted(set(DASHBOARDS.glob("*.json")) - set(files))
    return [
        path
        for path, text in files.items()
        if not path.exists() or path.read_text(encoding="utf-8") != text
    ] + extra


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m grafana.build", description=__doc__)
    parser.add_argument("--check", action="store_true", help="only report stale files")
    args = parser.parse_args(argv)
    if args.check:
        paths = stale()
        for path in paths:
            print(f"stale: {path} (run python -m grafana.build)", file=sys.stderr)
        return 1 if paths else 0
    DASHBOARDS.mkdir(exist_ok=True)
    for path, text in rendered().items():
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
