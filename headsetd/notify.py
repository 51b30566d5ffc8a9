"""systemd's notify protocol: readiness, reload, stopping and the watchdog, from the daemon.

Owns: `sd_notify(message)` (a datagram to $NOTIFY_SOCKET; a no-op outside systemd) and
`watchdog_interval()`, how often the watchdog wants a ping (half of $WATCHDOG_USEC, when it is
meant for this process).

Never does: fail the daemon. A notification that cannot be sent (systemd restarted, socket
gone) is dropped: systemd's own timeouts then say what is wrong.
"""

from __future__ import annotations

import os
import socket


def sd_notify(message: str) -> bool:
    """Tell systemd (Type=notify) about our state; False when not sent."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]  # abstract namespace
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(message.encode())
    except OSError:
        return False
    return True


def watchdog_interval() -> float | None:
    """Seconds between watchdog pings (half the timeout, as sd_watchdog_enabled(3) advises), or
    None when systemd's watchdog is not watching this process."""
    try:
        usec = int(os.environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    pid = os.environ.get("WATCHDOG_PID")
    if usec <= 0 or (pid and pid != str(os.getpid())):
        return None
    return usec / 2e6
