"""`headsetd demo`: the simulated fleet of headsetd/scenario.py with Prometheus and Alertmanager
on loopback, configured with the shipped rules and Alertmanager file (durations shortened, see
headsetd.stack.scale_durations), so that a new user sees alerts fire within a minute on one
machine. It prints the URLs, the scenario, and each alert as Alertmanager notifies it.

Owns: `run_demo(argv) -> int` (the lead wires it into the CLI as `headsetd demo`; `python -m
headsetd.demo` runs it too). The stack itself is headsetd/stack.py, shared with the e2e tests.

Why a module of the package and not a script: it runs the daemon's own entry point for every
workstation with the same interpreter, and it is the stack the tests prove; a separate script
would be a second copy of that wiring. It needs a checkout (the recordings and rules are not
installed with the package: run it in the checkout's directory, or from an editable install)
and Debian's prometheus and prometheus-alertmanager.

The workstations with a microphone story each get a real PulseAudio in the work directory
(Debian's pulseaudio and pulseaudio-utils; never the user's own server) with a stand-in
softphone recording during calls: the demo prints each one's PULSE_SERVER, to look with pactl.

Never does: leave a process behind (Ctrl-C or SIGTERM stops all it started, audio servers and
softphones included; a SIGKILL of the demo takes its children down through their
parent-death signal), bind anything but 127.0.0.1, or touch the shipped files (rendered
copies live in the work directory).
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from headsetd import stack as s
from headsetd.scenario import PENDING, SCENARIO, Scenario


def _describe(scenario: Scenario, fleet: s.Fleet) -> list[str]:
    address = {t.workstation.name: f"{t.service.url}/metrics" for t in fleet.targets}
    lines = []
    for ws in scenario.workstations:
        where = f"{ws.site}/{ws.team}"
        if ws.pending:
            lines.append(f"  {ws.name:10} {where:13} (waits for: {PENDING[ws.needs]}) {ws.story}")
            continue
        lines.append(f"  {ws.name:10} {where:13} {address[ws.name]:32} {ws.story}")
        desk = fleet.desks.get(ws.name)
        if desk is not None:
            lines.append(
                f"  {'':24} its PulseAudio: PULSE_SERVER={desk.server.address} pactl list "
                "source-outputs"
            )
    return lines


class _Printer:
    """Prints each alert once as it starts firing or resolves (Alertmanager re-sends a whole
    group whenever one of its alerts changes)."""

    def __init__(self, started: float) -> None:
        self.started = started
        self._seen: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()

    def __call__(self, note: s.Notification) -> None:
        with self._lock:
            if self._seen.get(note.key) == note.status:
                return
            self._seen[note.key] = note.status
        alert, where = note.key
        elapsed = time.time() - self.started
        print(
            f"{note.status.upper():8} {alert:28} {where:10} +{elapsed:4.0f} s  "
            f"-> {note.receiver}: {note.annotations.get('summary', '')}",
            flush=True,
        )


def run_demo(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="headsetd demo",
        description="A simulated fleet with Prometheus and Alertmanager on loopback.",
    )
    parser.add_argument("--workdir", help="keep configs, data and logs here (default: temporary)")
    args = parser.parse_args(argv)
    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    with tempfile.TemporaryDirectory(prefix="headsetd-demo-") as scratch:
        workdir = Path(args.workdir or scratch)
        printer = _Printer(time.time())
        sink = s.WebhookSink(on_notification=printer).start()
        try:
            with s.Stack(workdir) as stack:
                fleet = s.start_fleet(stack, SCENARIO)
                single = s.start_single_tier(stack, fleet, sink.url)
                stack.wait_ready(stack.services)
                s.go(stack, fleet)
                printer.started = fleet.started_at
                _introduce(fleet, single, workdir)
                stopping.wait()
                print("stopping...", flush=True)
        except s.StackError as exc:
            print(f"headsetd demo: {exc}", file=sys.stderr)
            return 2
        finally:
            sink.close()
    return 0


def _introduce(fleet: s.Fleet, single: s.SingleTier, workdir: Path) -> None:
    running = len(SCENARIO.running())
    waiting = len(SCENARIO.workstations) - running
    print(f"headsetd demo: {running} simulated workstations ({waiting} wait for features)")
    print("\n".join(_describe(SCENARIO, fleet)))
    print(f"Prometheus: {single.prometheus.url}/alerts (targets: /targets, graphs: /graph)")
    print(f"Alertmanager: {single.alertmanager.url}/#/alerts")
    print(f"Work directory (configs, logs): {workdir}")
    print(
        f"Rule durations run {s.TIME_FACTOR:.0f} times faster than shipped (for: 3m is 9 s);"
        " alerts fire within a minute. Ctrl-C stops everything.",
        flush=True,
    )


# The command line's convention for a command with a parser of its own (headsetd.cli).
main = run_demo

if __name__ == "__main__":
    raise SystemExit(run_demo())
