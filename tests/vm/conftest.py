"""pytest wiring of the VM test tier.

Owns: keeping tests/vm/guest out of the host's test collection (those tests run only inside the
guest, where HEADSETD_VM_GUEST=1), putting tests/vm on sys.path for the tier's own modules
(vmimage, vmboot, gadget, hidreport) whatever import mode the project uses, and printing the
tier's timings and latency figures at the end of the host run.

Never: boots anything (test_vm.py's session fixture does, once).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

IN_GUEST = os.environ.get("HEADSETD_VM_GUEST") == "1"
collect_ignore = [] if IN_GUEST else ["guest"]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if IN_GUEST:
        return
    summary = terminalreporter.config.stash.get(SUMMARY_KEY, None)
    if not summary:
        return
    terminalreporter.section("headsetd VM tier")
    for line in summary:
        terminalreporter.write_line(line)


SUMMARY_KEY = pytest.StashKey[list[str]]()


def record_summary(config: pytest.Config, lines: list[str]) -> None:
    config.stash[SUMMARY_KEY] = lines


def load_json(path: Path) -> object:
    return json.loads(path.read_text()) if path.exists() else None
