"""The reader loop: one thread that waits on every device at once, and wakes only for work.

Owns: `ReaderLoop`, a selector over file descriptors (hidraw nodes, the udev monitor's netlink
socket) with a wake-up pipe, plus timers (replayed reports, replugs, the systemd watchdog ping)
on the injected clock. Callbacks run on the loop's thread, one at a time, so the state they
touch (the device lifecycle) needs no lock. Other threads (the signal handler, the web server)
hand work in with `call_soon_threadsafe`.

Never does: poll. With no report arriving and no timer due it sleeps in select() without a
timeout, so an idle workstation costs no wake-ups at all; stopping is a byte in the wake pipe,
so it takes effect at once. Never lets one callback's exception end the loop: the callback's
owner is told through `on_error` (the daemon counts and logs it).

On simulated time (given `advance_clock`, e.g. a `ManualClock`'s `advance_to`) the loop does
not sleep until a timer is due: it moves the clock there. That is how
`headsetd replay` runs recordings through this same loop at once, with their recorded timing.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import os
import selectors
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from headsetd.clock import Clock

Callback = Callable[[], None]


@dataclass(order=True, slots=True)
class Timer:
    """A scheduled callback; `cancel()` keeps it from running."""

    when: float
    seq: int
    callback: Callback = field(compare=False)
    cancelled: bool = field(default=False, compare=False)

    def cancel(self) -> None:
        self.cancelled = True


class ReaderLoop:
    """Runs callbacks for readable descriptors and due timers until `stop()`."""

    def __init__(
        self,
        clock: Clock,
        on_error: Callable[[BaseException], None],
        *,
        advance_clock: Callable[[float], None] | None = None,
    ) -> None:
        self.clock = clock
        self._on_error = on_error
        self._advance_clock = advance_clock
        self._selector = selectors.DefaultSelector()
        self._timers: list[Timer] = []
        self._seq = itertools.count()
        self._pending: deque[Callback] = deque()
        self._pending_lock = threading.Lock()
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._stopping = False
        self.thread: threading.Thread | None = None  # the thread running run(), once started

    def add_reader(self, fd: int, callback: Callback) -> None:
        self._selector.register(fd, selectors.EVENT_READ, callback)

    def remove_reader(self, fd: int) -> None:
        # Already gone is fine: removal is idempotent, as unplugs race their own read errors.
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(fd)

    def call_at(self, when: float, callback: Callback) -> Timer:
        timer = Timer(when, next(self._seq), callback)
        heapq.heappush(self._timers, timer)
        return timer

    def call_later(self, delay: float, callback: Callback) -> Timer:
        return self.call_at(self.clock.now() + delay, callback)

    def call_soon_threadsafe(self, callback: Callback) -> None:
        """Run `callback` on the loop's thread soon; safe from any thread and signal handler."""
        with self._pending_lock:
            self._pending.append(callback)
        self._wake()

    def stop(self) -> None:
        """End `run()` after the callback now running; safe from any thread."""
        self._stopping = True
        self._wake()

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"\0")
        except BlockingIOError:
            pass  # the pipe is full: the loop is already due to wake
        except OSError:
            pass  # closed: the loop has ended

    def _next_timeout(self) -> float | None:
        while self._timers and self._timers[0].cancelled:
            heapq.heappop(self._timers)
        if not self._timers:
            return None
        return max(0.0, self._timers[0].when - self.clock.now())

    def _run_callback(self, callback: Callback) -> None:
        try:
            callback()
        except Exception as exc:  # one device's bug must not end every device's reading
            self._on_error(exc)

    def _run_due_timers(self) -> None:
        now = self.clock.now()
        while self._timers and self._timers[0].when <= now and not self._stopping:
            timer = heapq.heappop(self._timers)
            if not timer.cancelled:
                self._run_callback(timer.callback)

    def _run_pending(self) -> None:
        try:
            while os.read(self._wake_r, 4096):
                pass
        except BlockingIOError:
            pass
        with self._pending_lock:
            pending = list(self._pending)
            self._pending.clear()
        for callback in pending:
            self._run_callback(callback)

    def _idle(self) -> bool:
        """Simulated time only: nothing can happen any more (no timer, no descriptor but the
        wake pipe, no pending callback)."""
        return not self._timers and len(self._selector.get_map()) == 1 and not self._pending

    def run(self) -> None:
        """Run until `stop()` (or, on simulated time, until nothing is left to do)."""
        self.thread = threading.current_thread()
        while not self._stopping:
            timeout = self._next_timeout()
            if self._advance_clock is not None:
                if timeout is None and self._idle():
                    break
                ready = self._selector.select(0)
                if not ready and timeout is not None:
                    self._advance_clock(self._timers[0].when)
            else:
                ready = self._selector.select(timeout)
            for key, _ in ready:
                if self._stopping:
                    break
                if key.data is None:
                    self._run_pending()
                else:
                    self._run_callback(key.data)
            self._run_due_timers()

    def close(self) -> None:
        self._selector.close()
        os.close(self._wake_r)
        os.close(self._wake_w)
