"""The HID hardware seam: where a device's input reports come from, read-only by construction.

Owns: the `HidSource` protocol (a source attaches itself to the reader loop and hands each
report to a callback), the error vocabulary of the hardware boundary (`DeviceGone`,
`TransportError` and its kinds), the production `HidrawSource` and the `ReplaySource` that plays
a hid-recorder file's reports at their recorded times. OS errors are translated here and
nowhere else (`translate_os_error`).

Never does: write. `HidrawSource` opens the kernel's hidraw node `O_RDONLY` (as Solaar and
hid-tools do), so even a bug could not send an output or feature report, and a least-privilege
service needs nothing but read access (a udev rule granting read, `DeviceAllow=... r`). Every
reader of a hidraw node gets its own copy of each input report, so the softphone, reading the
same node, loses nothing. hidapi is not the reader: its `hidraw` module opens nodes read-write
and gives no descriptor to wait on in one loop with every other device (see README).

Never waits either: a hidraw source is a non-blocking descriptor in the loop's selector, a
replayed one is a timer; neither holds a thread.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Sequence
from typing import Protocol

from headsetd.events import ErrorKind
from headsetd.hid.recording import RecordedReport
from headsetd.loop import ReaderLoop, Timer

# Large enough for any report the kernel accepts from a full- or high-speed HID device.
MAX_REPORT_BYTES = 16384
# Reports read per wake-up before the loop serves other devices: a burst is drained in one
# wake-up, but one chattering device cannot starve the rest.
MAX_REPORTS_PER_WAKE = 64
# The node or the device behind it is gone. hidraw answers a read on an unplugged device with
# EIO (drivers/hid/hidraw.c: `if (!list->hidraw->exist) ret = -EIO`), an open with ENODEV.
_GONE = frozenset({errno.EIO, errno.ENODEV, errno.ENXIO, errno.ENOENT})
_DENIED = frozenset({errno.EACCES, errno.EPERM})


class TransportError(Exception):
    """Reading failed for another reason than the device being gone; `kind` labels it."""

    def __init__(self, kind: ErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class DeviceGone(Exception):
    """The device was unplugged (or its recording ended); `reason` says which."""

    def __init__(self, reason: str = "unplugged") -> None:
        super().__init__(reason)
        self.reason = reason


ReportCallback = Callable[[bytes], None]
EndCallback = Callable[[DeviceGone | TransportError], None]


class HidSource(Protocol):
    """A device's input reports. `attach` registers the source with the loop; from then on
    every report goes to `on_report`, and the end of the source (unplug, read error) to
    `on_end`, once. `close` detaches and releases the source; it is idempotent."""

    def attach(self, loop: ReaderLoop, on_report: ReportCallback, on_end: EndCallback) -> None: ...

    def close(self) -> None: ...


def translate_os_error(path: str, exc: OSError, *, opening: bool) -> DeviceGone | TransportError:
    """The one place that turns a failed open/read of a hidraw node into our vocabulary."""
    if exc.errno in _GONE:
        return DeviceGone("unplugged")
    detail = f"{path}: {exc.strerror or exc}"
    if exc.errno in _DENIED:
        return TransportError(ErrorKind.ACCESS_DENIED, f"{detail} (no read access: udev rule?)")
    return TransportError(ErrorKind.OPEN if opening else ErrorKind.READ, detail)


class HidrawSource:
    """A hidraw node opened read-only and non-blocking; one report per read(2)."""

    def __init__(self, path: str) -> None:
        self._path = path
        try:
            self._fd: int | None = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            raise translate_os_error(path, exc, opening=True) from exc
        self._loop: ReaderLoop | None = None
        self._on_report: ReportCallback | None = None
        self._on_end: EndCallback | None = None

    def attach(self, loop: ReaderLoop, on_report: ReportCallback, on_end: EndCallback) -> None:
        if self._fd is None:
            raise RuntimeError("attach after close")
        self._loop, self._on_report, self._on_end = loop, on_report, on_end
        loop.add_reader(self._fd, self._readable)

    def _readable(self) -> None:
        for _ in range(MAX_REPORTS_PER_WAKE):
            fd, on_report, on_end = self._fd, self._on_report, self._on_end
            if fd is None or on_report is None or on_end is None:
                return  # closed by a callback of the previous report
            try:
                report = os.read(fd, MAX_REPORT_BYTES)
            except BlockingIOError:
                return
            except OSError as exc:
                self.close()
                on_end(translate_os_error(self._path, exc, opening=False))
                return
            if not report:  # end of file: the node went away
                self.close()
                on_end(DeviceGone("unplugged"))
                return
            on_report(report)

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        if self._loop is not None:
            self._loop.remove_reader(fd)
        os.close(fd)


class ReplaySource:
    """Plays recorded reports at their recorded spacing (divided by `speed`) as loop timers.

    The first report arrives as soon as the source is attached ("plugged"), each later one when
    its recorded offset from the first has passed. After the last one `on_exhausted` runs (the
    replay discovery unplugs the device then). An idle replayed device costs no wake-up.
    """

    def __init__(
        self,
        reports: Sequence[RecordedReport],
        speed: float,
        on_exhausted: Callable[[], None],
    ) -> None:
        if not speed > 0:
            raise ValueError("speed must be positive")
        self._reports = reports
        self._speed = speed
        self._on_exhausted = on_exhausted
        self._next = 0
        self._start = 0.0
        self._first = reports[0].t if reports else 0.0
        self._timer: Timer | None = None
        self._loop: ReaderLoop | None = None
        self._on_report: ReportCallback | None = None

    def attach(self, loop: ReaderLoop, on_report: ReportCallback, on_end: EndCallback) -> None:
        self._loop, self._on_report = loop, on_report
        self._start = loop.clock.now()
        self._schedule()

    def _schedule(self) -> None:
        loop = self._loop
        if loop is None:
            return
        if self._next >= len(self._reports):
            self._timer = loop.call_at(loop.clock.now(), self._on_exhausted)
            return
        due = self._start + (self._reports[self._next].t - self._first) / self._speed
        self._timer = loop.call_at(due, self._fire)

    def _fire(self) -> None:
        report = self._reports[self._next]
        self._next += 1
        on_report = self._on_report
        if on_report is not None:
            on_report(report.data)
        if self._loop is not None:  # not closed by that report's callback
            if self._next >= len(self._reports):
                self._loop = None
                self._on_exhausted()
            else:
                self._schedule()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._loop = None
        self._on_report = None
