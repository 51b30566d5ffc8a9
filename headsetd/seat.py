"""Whether someone is at the desk: logind's view of seat0.

Owns: `seat_active(runtime)`, read from logind's state file /run/systemd/seats/seat0 (its
`ACTIVE=` line names the active session), so alert rules can leave empty desks alone.

Never does: guess. logind always has a seat0 (sd-login(3): "seat0 is always present"), so
without /run/systemd/seats/seat0 logind is not running (a container, a minimal image whose
packages left an empty /run/systemd/seats behind): the answer is None and no sample is
exported. A seat file without an active session is False.
"""

from __future__ import annotations

from pathlib import Path

SEATS = Path("/run/systemd/seats")


def seat_active(seats: Path = SEATS) -> bool | None:
    """True while a session is active on seat0; False without one; None without logind."""
    try:
        lines = (seats / "seat0").read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    return any(line.startswith("ACTIVE=") and line.strip() != "ACTIVE=" for line in lines)
