"""The clock seam: every time headsetd measures comes from an injected `Clock`.

Owns: the `Clock` protocol, the production `MonotonicClock`, and `ManualClock`, which moves
only when told (tests, and `headsetd replay`, which runs recordings on simulated time).

Never does: wall-clock arithmetic for durations (wall time jumps; log timestamps are
structlog's business).
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds on a clock that never goes backwards."""
        ...


class MonotonicClock:
    def now(self) -> float:
        return time.monotonic()


class ManualClock:
    """A clock that moves only when told: replaying a recording at its own timestamps."""

    def __init__(self, start: float = 0.0) -> None:
        self.t = start

    def now(self) -> float:
        return self.t

    def advance_to(self, t: float) -> None:
        """Move to `t` (never backwards): the reader loop's simulated time."""
        self.t = max(self.t, t)
