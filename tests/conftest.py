"""Shared test fixtures: paths, real external tools, and log capture.

Tests that need a real part (promtool, PulseAudio, the VM) call `require_tool()`: it skips
locally when the part is missing, and fails under CI=true, where .ci/run installs everything.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

# The e2e stack's session fixtures (fleet_stack, fleet_prometheus): see tests/stack.
pytest_plugins = ["tests.stack.fixtures"]

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
FIXTURES = TESTS / "fixtures" / "hid"
RECORDINGS = TESTS / "recordings"
GOLDEN = TESTS / "golden"


def require_tool(name: str) -> str:
    """The path of a real tool the test needs; fail under CI=true, skip elsewhere."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (Debian: see .ci/run)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture
def log_capture() -> Iterator[structlog.testing.LogCapture]:
    """structlog events as dicts (never with cache_logger_on_first_use, which escapes capture)."""
    capture = structlog.testing.LogCapture()
    structlog.configure(processors=[capture], cache_logger_on_first_use=False)
    yield capture
    structlog.reset_defaults()
