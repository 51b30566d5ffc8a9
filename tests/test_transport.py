"""The hardware boundary: read-only by construction, errors translated in one place, replay
timing. The production transport runs against hidapi's real `hidraw.device` class where the
machine has no hidraw node (open fails the real way); the VM tier drives it on a real kernel."""

from __future__ import annotations

import ast
import threading
import time
from pathlib import Path

import pytest

from headsetd.clock import MonotonicClock
from headsetd.hid.recording import RecordedReport
from headsetd.hid.transport import (
    DeviceGone,
    HidrawTransport,
    OpenFailed,
    ReplayTransport,
    translate_os_error,
)
from tests.conftest import REPO

PACKAGE = REPO / "headsetd"
# Every hidapi call that sends something to a device, or asks it for a report by control transfer.
WRITING_CALLS = {
    "write",
    "send_feature_report",
    "get_feature_report",
    "get_input_report",
    "send_output_report",
    "set_nonblocking",
}


# USB calls that take an interface away from its kernel driver (and so from the softphone).
CLAIMING_CALLS = {
    "detach_kernel_driver",
    "claim_interface",
    "set_configuration",
    "set_interface_altsetting",
}


def _imports(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def _attribute_calls(tree: ast.AST) -> set[str]:
    return {
        node.func.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
    }


def test_headsetd_is_read_only_by_construction() -> None:
    """Only the transport touches hidapi, through `hidraw` (never `hid`, the libusb backend),
    and it calls nothing that writes a report; no module claims a USB interface."""
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        where = path.relative_to(REPO)
        assert "hid" not in _imports(tree), f"{where} imports hidapi's libusb backend"
        assert not _attribute_calls(tree) & CLAIMING_CALLS, f"{where} claims a USB interface"
        if path.name != "transport.py":
            assert "hidraw" not in _imports(tree), f"{where}: only the transport may use hidapi"
    transport = ast.parse((PACKAGE / "hid" / "transport.py").read_text())
    assert "hidraw" in _imports(transport)
    assert not _attribute_calls(transport) & WRITING_CALLS


class RecordingDevice:
    """Stands where hidapi's device object stands, and records every method called on it."""

    def __init__(self, reports: list[list[int]]) -> None:
        self.calls: list[str] = []
        self._reports = reports

    def __getattr__(self, name: str) -> object:
        raise AssertionError(f"headsetd called hidapi device.{name}")

    def open_path(self, path: bytes) -> None:
        self.calls.append("open_path")

    def read(self, max_length: int, timeout_ms: int = 0) -> list[int]:
        self.calls.append("read")
        assert timeout_ms > 0, "timeout 0 would block forever in hidapi"
        return self._reports.pop(0) if self._reports else []

    def close(self) -> None:
        self.calls.append("close")

    def error(self) -> str:
        self.calls.append("error")
        return ""


def test_hidraw_transport_only_opens_reads_and_closes() -> None:
    device = RecordingDevice([[2, 1, 0], [2, 5, 0]])
    transport = HidrawTransport("/dev/hidraw0", device_factory=lambda: device)
    assert transport.read(0.01) == bytes([2, 1, 0])
    assert transport.read(0.01) == bytes([2, 5, 0])
    assert transport.read(0.01) is None  # hidapi's empty read is a timeout
    transport.close()
    assert set(device.calls) <= {"open_path", "read", "close", "error"}


def test_real_hidapi_open_of_a_missing_node_is_device_gone() -> None:
    with pytest.raises(DeviceGone):
        HidrawTransport("/dev/hidraw-headsetd-test-missing")


def test_real_hidapi_open_of_a_non_hidraw_file_is_an_open_error(tmp_path: Path) -> None:
    node = tmp_path / "hidraw9"
    node.write_bytes(b"")
    with pytest.raises(OpenFailed, match="hidraw9"):
        HidrawTransport(str(node))


def test_translation_of_a_vanished_node_during_read() -> None:
    error = translate_os_error("/dev/hidraw-gone", "read error", opening=False)
    assert isinstance(error, DeviceGone)


def test_replay_transport_keeps_recorded_spacing_and_then_unplugs() -> None:
    reports = [RecordedReport(5.0, b"\x01"), RecordedReport(5.2, b"\x02")]
    transport = ReplayTransport(reports, speed=1.0, clock=MonotonicClock())
    start = time.monotonic()
    assert transport.read(1.0) == b"\x01"  # the first report comes at once
    got = transport.read(1.0)
    assert got == b"\x02"
    assert 0.18 <= time.monotonic() - start < 0.5
    with pytest.raises(DeviceGone):
        transport.read(1.0)


def test_replay_transport_times_out_and_close_interrupts_a_wait() -> None:
    reports = [RecordedReport(0.0, b"\x01"), RecordedReport(60.0, b"\x02")]
    transport = ReplayTransport(reports, speed=1.0, clock=MonotonicClock())
    assert transport.read(1.0) == b"\x01"
    assert transport.read(0.05) is None
    threading.Timer(0.1, transport.close).start()
    start = time.monotonic()
    with pytest.raises(DeviceGone):
        transport.read(30.0)
    assert time.monotonic() - start < 2.0
