"""The HID transport seam: where input-report bytes come from.

Owns: the `HidTransport` protocol (`read(timeout) -> bytes | None`, `close()`), the error
vocabulary of the hardware boundary (`DeviceGone`, `AccessDenied`, `TransportError`), the
production `HidrawTransport` and the `ReplayTransport` that plays a hid-recorder file's reports
at their recorded times. OS errors are translated to that vocabulary here and nowhere else.

Never does: write a report. `HidrawTransport` uses hidapi's `hidraw` module (the hidraw
backend, which shares the kernel's hidraw node with the softphone) and never its `hid` module
(the libusb backend detaches usbhid and takes the headset away). It never calls `write`,
`send_feature_report`, `get_feature_report` or `get_input_report` (the last two are control
transfers the softphone's firmware dialogue does not expect); tests enforce this.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from typing import Protocol

from headsetd.clock import Clock
from headsetd.hid.recording import RecordedReport

# Large enough for any report the kernel accepts from a full- or high-speed HID device.
MAX_REPORT_BYTES = 4096


class TransportError(Exception):
    """Reading failed for a reason other than the device being gone; `kind` labels it."""

    kind = "read"


class AccessDenied(TransportError):
    """The hidraw node exists but this user may not open it (see systemd/70-headsetd.rules)."""

    kind = "access_denied"


class OpenFailed(TransportError):
    kind = "open"


class DeviceGone(Exception):
    """The device was unplugged (or its recording ended); `reason` says which."""

    def __init__(self, reason: str = "unplugged") -> None:
        super().__init__(reason)
        self.reason = reason


class HidTransport(Protocol):
    def read(self, timeout: float) -> bytes | None:
        """The next input report, or None when `timeout` seconds pass without one."""
        ...

    def close(self) -> None: ...


class HidapiDevice(Protocol):
    """The part of hidapi's `hidraw.device` that headsetd uses: open, read, close, error."""

    def open_path(self, path: bytes) -> None: ...

    def read(self, max_length: int, timeout_ms: int = 0) -> list[int]: ...

    def close(self) -> None: ...

    def error(self) -> str: ...


def _hidraw_device() -> HidapiDevice:
    import hidraw  # noqa: PLC0415 - the Linux-only extension loads when a device is opened

    device: HidapiDevice = hidraw.device()
    return device


def translate_os_error(path: str, message: str, opening: bool) -> Exception:
    """The one place that turns a failed open/read of a hidraw node into our vocabulary.

    hidapi reports failures as `OSError("open failed")` / `OSError("read error")` with no
    errno, so the node itself is asked: gone (ENOENT/ENODEV) or not ours to open (EACCES).
    """
    try:
        os.stat(path)
    except FileNotFoundError:
        return DeviceGone("unplugged")
    except OSError as exc:
        message = f"{message}: {exc.strerror}"
    if not os.access(path, os.R_OK | os.W_OK):
        # hidapi opens O_RDWR even though headsetd never writes.
        return AccessDenied(f"{path}: permission denied ({message})")
    if opening:
        return OpenFailed(f"{path}: {message}")
    if "disconnected" in message or "No such device" in message:
        return DeviceGone("unplugged")
    return TransportError(f"{path}: {message}")


class HidrawTransport:
    """A hidraw node read through hidapi's hidraw backend: blocking reads with a timeout."""

    def __init__(
        self, path: str, device_factory: Callable[[], HidapiDevice] = _hidraw_device
    ) -> None:
        self._path = path
        self._device = device_factory()
        try:
            self._device.open_path(path.encode())
        except OSError as exc:
            raise translate_os_error(path, str(exc), opening=True) from exc

    def read(self, timeout: float) -> bytes | None:
        try:
            # timeout_ms must be > 0: hidapi's 0 means "block forever".
            data = self._device.read(MAX_REPORT_BYTES, max(1, round(timeout * 1000)))
        except (OSError, ValueError) as exc:
            raise translate_os_error(self._path, _hidapi_error(self._device, exc), False) from exc
        return bytes(data) if data else None

    def close(self) -> None:
        self._device.close()


def _hidapi_error(device: HidapiDevice, exc: Exception) -> str:
    try:
        detail = device.error()
    except (OSError, ValueError):
        detail = ""
    return f"{exc}: {detail}" if detail else str(exc)


class ReplayTransport:
    """Plays recorded reports at their recorded spacing (divided by `speed`), then is gone.

    The first report arrives as soon as the device is "plugged"; each later one when its
    recorded offset from the first has passed. Waiting happens on an Event, so `close()`
    ends a wait at once and an idle replayed device costs one wake-up per read timeout,
    like a real one.
    """

    def __init__(self, reports: Sequence[RecordedReport], speed: float, clock: Clock) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self._reports = reports
        self._speed = speed
        self._clock = clock
        self._start = clock.now()
        self._first = reports[0].t if reports else 0.0
        self._next = 0
        self._closed = threading.Event()

    def read(self, timeout: float) -> bytes | None:
        if self._closed.is_set() or self._next >= len(self._reports):
            raise DeviceGone("unplugged")
        report = self._reports[self._next]
        due = self._start + (report.t - self._first) / self._speed
        wait = due - self._clock.now()
        if wait > 0:
            self._closed.wait(min(wait, timeout))
            if self._closed.is_set():
                raise DeviceGone("unplugged")
            if self._clock.now() < due:
                return None
        self._next += 1
        return report.data

    def close(self) -> None:
        self._closed.set()
