"""Whether someone is at the desk: logind's view of seat0.

Owns: `seat_active(runtime)`, read from logind's state file /run/systemd/seats/seat0 (its
`ACTIVE=` line names the active session), so alert rules can leave empty desks alone.

Never does: guess. Without logind (no /run/systemd/seats) the answer is None and no sample is
exported; a seat file without an active session is False.
"""

from __future__ import annotations

from pathlib import Path

SEATS = Path("/run/systemd/seats")


def seat_active(seats: Path = SEATS) -> bool | None:
    """True while a session is active on seat0; False without one; None without logind."""
    if not seats.is_dir():
        return None
    try:
        lines = (seats / "seat0").read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return False  # logind runs, but seat0 does not exist (a headless machine)
    return any(line.startswith("ACTIVE=") and line.strip() != "ACTIVE=" for line in lines)
