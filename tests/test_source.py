"""The hardware boundary: read-only by construction, errors translated in one place, replay on
loop timers. `HidrawSource` is driven through a FIFO here (a hidraw node's stand-in with the
same read(2) semantics for one report at a time); the VM tier drives it on real hidraw nodes."""

from __future__ import annotations

import ast
import errno
import os
import threading
from pathlib import Path

import pytest

from headsetd.clock import ManualClock, MonotonicClock
from headsetd.events import ErrorKind
from headsetd.hid.recording import RecordedReport
from headsetd.hid.source import (
    DeviceGone,
    HidrawSource,
    ReplaySource,
    TransportError,
    translate_os_error,
)
from headsetd.loop import ReaderLoop
from tests.conftest import REPO

PACKAGE = REPO / "headsetd"
# USB calls that take an interface away from its kernel driver (and so from the softphone).
CLAIMING_CALLS = {
    "detach_kernel_driver",
    "claim_interface",
    "set_configuration",
    "set_interface_altsetting",
    "ctrl_transfer",
}
WRITE_FLAGS = {"O_RDWR", "O_WRONLY", "O_APPEND", "O_CREAT", "O_TRUNC"}


def _imports(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def _attributes(tree: ast.AST) -> set[str]:
    return {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}


def _attribute_calls(tree: ast.AST) -> set[str]:
    return {
        node.func.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
    }


def test_headsetd_is_read_only_by_construction() -> None:
    """No module uses hidapi (whose nodes open read-write) or claims a USB interface; the one
    module that opens device nodes opens them read-only and never calls os.write."""
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        where = path.relative_to(REPO)
        assert not {"hid", "hidraw"} & _imports(tree), f"{where} imports hidapi"
        assert not _attribute_calls(tree) & CLAIMING_CALLS, f"{where} claims a USB interface"
    source = ast.parse((PACKAGE / "hid" / "source.py").read_text())
    assert "O_RDONLY" in _attributes(source)
    assert not _attributes(source) & WRITE_FLAGS
    assert "write" not in _attribute_calls(source)


@pytest.mark.parametrize(
    ("code", "opening", "expected"),
    [
        (errno.EIO, False, DeviceGone),  # hidraw's answer to a read after an unplug
        (errno.ENODEV, True, DeviceGone),
        (errno.ENOENT, True, DeviceGone),
        (errno.EACCES, True, ErrorKind.ACCESS_DENIED),
        (errno.EPERM, True, ErrorKind.ACCESS_DENIED),
        (errno.EINVAL, True, ErrorKind.OPEN),
        (errno.EINVAL, False, ErrorKind.READ),
    ],
)
def test_errno_translation(code: int, opening: bool, expected: object) -> None:
    error = translate_os_error("/dev/hidraw7", OSError(code, os.strerror(code)), opening=opening)
    if expected is DeviceGone:
        assert isinstance(error, DeviceGone)
    else:
        assert isinstance(error, TransportError)
        assert error.kind is expected
        assert "/dev/hidraw7" in str(error)


def test_a_missing_node_is_gone(tmp_path: Path) -> None:
    """(A node without read access is the errno case above; the VM tier shows it for real, with
    headsetd running as an unprivileged user beside a keyboard it may not read.)"""
    with pytest.raises(DeviceGone):
        HidrawSource(str(tmp_path / "hidraw-missing"))


def _loop() -> ReaderLoop:
    def fail(exc: BaseException) -> None:
        raise exc

    return ReaderLoop(MonotonicClock(), fail)


def test_hidraw_source_reads_reports_from_the_loop_and_sees_the_end(tmp_path: Path) -> None:
    fifo = tmp_path / "hidraw0"
    os.mkfifo(fifo)
    source = HidrawSource(str(fifo))  # O_RDONLY | O_NONBLOCK opens a FIFO without a writer
    writer = os.open(fifo, os.O_WRONLY)
    loop = _loop()
    got: list[bytes] = []
    ends: list[object] = []

    def on_report(report: bytes) -> None:
        got.append(report)
        if len(got) == 1:
            os.write(writer, b"\x02\x05\x00")
        else:
            os.close(writer)  # end of file: what an unplugged node looks like to read(2)

    def on_end(end: object) -> None:
        ends.append(end)
        loop.stop()

    source.attach(loop, on_report, on_end)
    os.write(writer, b"\x02\x01\x00")
    loop.run()
    assert got == [b"\x02\x01\x00", b"\x02\x05\x00"]
    assert len(ends) == 1
    assert isinstance(ends[0], DeviceGone)
    source.close()  # idempotent after the end
    loop.close()


def test_replay_source_plays_recorded_spacing_on_simulated_time() -> None:
    clock = ManualClock(100.0)
    loop = ReaderLoop(clock, lambda exc: None, advance_clock=clock.advance_to)
    reports = [RecordedReport(5.0, b"\x01"), RecordedReport(5.2, b"\x02"), RecordedReport(9, b"")]
    seen: list[tuple[float, bytes]] = []
    exhausted: list[float] = []
    source = ReplaySource(reports, 2.0, lambda: exhausted.append(clock.now()))
    source.attach(loop, lambda r: seen.append((clock.now(), r)), lambda end: None)
    loop.run()
    assert seen == [(100.0, b"\x01"), (100.1, b"\x02"), (102.0, b"")]
    assert exhausted == [102.0]


def test_closing_a_replay_source_cancels_its_next_report() -> None:
    clock = ManualClock()
    loop = ReaderLoop(clock, lambda exc: None, advance_clock=clock.advance_to)
    reports = [RecordedReport(0.0, b"\x01"), RecordedReport(60.0, b"\x02")]
    seen: list[bytes] = []
    source = ReplaySource(reports, 1.0, lambda: seen.append(b"exhausted"))

    def on_report(report: bytes) -> None:
        seen.append(report)
        source.close()

    source.attach(loop, on_report, lambda end: None)
    loop.run()
    assert seen == [b"\x01"]
    assert clock.now() == 0.0  # nothing left to wait for: the loop ended without moving on


def test_a_stop_from_another_thread_ends_an_idle_loop_at_once() -> None:
    loop = _loop()
    threading.Timer(0.05, loop.stop).start()
    loop.run()
    loop.close()
