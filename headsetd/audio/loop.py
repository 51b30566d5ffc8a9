"""One pulsectl connection, driven by one thread, that other threads can wake.

Owns: `Waker` (a non-blocking pipe: `wake()` from any thread, waited on by one), `PulseLink`
(a `pulsectl.Pulse` connected without autospawn, whose event loop also returns when its waker
is woken) and `AudioServerError`. pulsectl is imported here, lazily, when a link is made: a
daemon with audio disabled never loads it (nor libpulse).

Never does: share a connection between threads (one shared without a lock crashed the process
in a test: docs/audio-server.md §1), start an audio server (no autospawn), or wait without a
way out: `listen()` returns on a server event, a wake-up, or its timeout.

Why a poll function: `Pulse.event_listen_stop()` from another thread is lost when it lands
between two `event_listen()` calls (each one clears the stop flag on entry). So the loop's poll
also watches the waker's pipe, and only while listening; a wake-up during a query stays in the
pipe until the next `listen()`, which then returns at once.
"""

from __future__ import annotations

import contextlib
import math
import os
import select
import threading
from types import TracebackType
from typing import Any

import structlog

log = structlog.get_logger("headsetd.audio")

CONNECT_TIMEOUT_SECONDS = 2.0


class AudioServerError(Exception):
    """The audio server cannot be reached, or the connection to it was lost."""

    def __init__(self, message: str, kind: str = "connection_lost") -> None:
        super().__init__(message)
        self.kind = kind  # the headsetd_audio_errors_total kind, if counted


class Waker:
    """A self-pipe: any thread wakes, one thread waits."""

    def __init__(self) -> None:
        self._read, self._write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._lock = threading.Lock()  # a wake after close() must not write to a reused fd
        self._closed = False

    def fileno(self) -> int:
        return self._read

    def wake(self) -> None:
        with self._lock, contextlib.suppress(BlockingIOError):  # full: already awake
            if not self._closed:
                os.write(self._write, b"\0")

    def drain(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while os.read(self._read, 4096):
                pass

    def wait(self, timeout: float | None) -> bool:
        """Block until woken or `timeout` seconds (None: forever); True if woken."""
        poller = select.poll()
        poller.register(self._read, select.POLLIN)
        woken = bool(poller.poll(None if timeout is None else max(0, math.ceil(timeout * 1000))))
        self.drain()
        return woken

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                os.close(self._read)
                os.close(self._write)


class PulseLink:
    """A pulsectl connection for the calling thread's exclusive use."""

    def __init__(self, client_name: str, server: str | None, waker: Waker) -> None:
        import pulsectl  # noqa: PLC0415 - lazily: only a daemon with audio enabled loads libpulse

        self.pulsectl: Any = pulsectl
        self._waker = waker
        self._listening = False
        self._connecting = True
        self.pulse: Any = pulsectl.Pulse(client_name, server=server, connect=False)
        self.pulse.set_poll_func(self._poll, self._poll_failed)
        try:
            # autospawn=False: headsetd never starts an audio server of its own.
            self.pulse.connect(autospawn=False, timeout=CONNECT_TIMEOUT_SECONDS)
        except pulsectl.PulseError as exc:
            self.pulse.close()
            raise AudioServerError(str(exc)) from exc
        finally:
            self._connecting = False

    def __enter__(self) -> PulseLink:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def connected(self) -> bool:
        return bool(self.pulse.connected)

    def listen(self, timeout: float | None) -> None:
        """Run the event loop until an event callback stops it, the waker is woken, or
        `timeout` seconds pass (None: no timeout). Raises AudioServerError when disconnected."""
        if self.pulse.event_callback is None:
            self.pulse.event_callback_set(lambda _event: None)
        self._listening = True
        try:
            # pulsectl reads a timeout of 0 as "no timeout": never pass one.
            self.pulse.event_listen(timeout=None if timeout is None else max(timeout, 0.001))
        except self.pulsectl.PulseDisconnected as exc:
            raise AudioServerError("the audio server closed the connection") from exc
        finally:
            self._listening = False

    def close(self) -> None:
        self.pulse.close()

    def _poll(self, fds: list[Any], timeout: float) -> int:
        """libpulse's poll(): its descriptors, plus the waker's while listening."""
        # pulsectl's connect(timeout=...) polls on until its timeout even once the context is
        # ready (or failed): end that loop as soon as the state is known.
        connected = self._connecting and self.pulse.connected is not None
        if connected:
            self.pulse.event_listen_stop()
            timeout = 0.0
        poller = select.poll()
        for pollfd in fds:
            poller.register(pollfd.fd, pollfd.events)
        if self._listening:
            poller.register(self._waker.fileno(), select.POLLIN)
        # libpulse passes -1 ms for "forever" (pulsectl divides it by 1000).
        ready = dict(poller.poll(None if timeout < 0 else math.ceil(timeout * 1000)))
        count = 0
        for pollfd in fds:
            pollfd.revents = ready.get(pollfd.fd, 0)
            count += bool(pollfd.revents)
        if self._listening and self._waker.fileno() in ready:
            self._waker.drain()
            self.pulse.event_listen_stop()  # from inside the loop: never lost
        return count

    def _poll_failed(
        self, exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None
    ) -> None:
        log.error("audio_poll_failed", exc_info=(exc_type, exc, tb))
