"""The real headsetd, as the guest tests run and observe it: its process, log lines and /metrics.

Owns: starting `headsetd run` (the repo's, with this Python) with JSON logs on a fixed loopback
port and `headsetd list --json`; collecting the daemon's log lines as they come (with the time
the test read each one); bounded waits for a line; /metrics fetched and parsed into samples; the
`device` id the contract promises for a gadget; and what the kernel says the daemon holds open
(its fd table) and how often its threads were switched out (its wake-ups).

Never: reaches into headsetd's modules (only its command line, its log lines, /metrics and
/proc), or waits blindly: every wait is on a condition, with a deadline.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import gadget
from prometheus_client.parser import text_string_to_metric_families

HEADSETD = [sys.executable, "-m", "headsetd"]
LISTEN = "127.0.0.1:9477"

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def device_id(g: gadget.Gadget) -> str:
    """The id the contract promises for a gadget: vid:pid:serial, or vid:pid@port."""
    ids = f"{g.vendor_id:04x}:{g.product_id:04x}"
    return f"{ids}:{g.serial}" if g.serial else f"{ids}@{g.port_path}"


@dataclass
class Line:
    received: float  # time.time() when the test read the line
    record: dict[str, Any]

    @property
    def event(self) -> str:
        return str(self.record.get("event"))

    @property
    def stamped(self) -> float:
        """The daemon's own timestamp of the event (same clock: the guest's)."""
        return datetime.fromisoformat(
            str(self.record["timestamp"]).replace("Z", "+00:00")
        ).timestamp()


@dataclass
class Daemon:
    """A running `headsetd run` and every log line it wrote so far."""

    proc: subprocess.Popen[str]
    lines: list[Line] = field(default_factory=list)
    other: list[str] = field(default_factory=list)
    lock: threading.Condition = field(default_factory=threading.Condition)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            t = time.time()
            try:
                rec = json.loads(raw)
            except json.JSONDecodeError:
                self.other.append(raw.rstrip())
                continue
            with self.lock:
                self.lines.append(Line(t, rec))
                self.lock.notify_all()

    def mark(self) -> int:
        with self.lock:
            return len(self.lines)

    def wait(
        self, pred: Callable[[Line], bool], since: int = 0, timeout: float = 30.0, what: str = ""
    ) -> Line:
        """The first log line from index `since` matching pred (bounded wait, no polling)."""
        end = time.monotonic() + timeout
        with self.lock:
            while True:
                for line in self.lines[since:]:
                    if pred(line):
                        return line
                left = end - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    tail = "\n".join(json.dumps(x.record) for x in self.lines[-15:])
                    raise AssertionError(
                        f"headsetd logged no {what or 'matching line'} within {timeout}s "
                        f"(rc={self.proc.poll()}); last lines:\n{tail}\n"
                        + "\n".join(self.other[-10:])
                    )
                self.lock.wait(left)

    def events(self, name: str, since: int = 0) -> list[Line]:
        with self.lock:
            return [x for x in self.lines[since:] if x.event == name]

    def device_events(self, name: str, dev: str, since: int = 0) -> list[Line]:
        return [x for x in self.events(name, since) if x.record.get("device") == dev]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def start_daemon() -> Daemon:
    """`headsetd run`, JSON logs read by a thread; returns once /metrics answers."""
    proc = subprocess.Popen(
        [*HEADSETD, "run", "--listen", LISTEN, "--log-format", "json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
    )
    d = Daemon(proc)
    threading.Thread(target=d._read, daemon=True).start()

    def up() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"headsetd run exited with {proc.returncode}: {d.other[-20:]}")
        try:
            fetch()
        except OSError:
            return False
        return True

    gadget.wait_for(up, 120, "headsetd's /metrics", interval=0.2)
    return d


def start_list() -> subprocess.Popen[str]:
    """`headsetd list --json`, started now, collected later (Python start-up under TCG takes
    many seconds: start it beside other work)."""
    return subprocess.Popen(
        [*HEADSETD, "list", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def list_rows(proc: subprocess.Popen[str], timeout: float = 300) -> list[dict[str, Any]]:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    return list(json.loads(out))


def is_event(name: str, dev: str) -> Callable[[Line], bool]:
    """A predicate for Daemon.wait: event `name` of device `dev`."""
    return lambda x: x.event == name and x.record.get("device") == dev


def fetch() -> str:
    with urllib.request.urlopen(f"http://{LISTEN}/metrics", timeout=10) as r:
        return str(r.read().decode())


def parse(text: str) -> Samples:
    """/metrics text as {(sample name, sorted labels): value}."""
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def scrape() -> Samples:
    return parse(fetch())


def metric(m: Samples, name: str, **labels: str) -> float | None:
    """The one sample of `name` whose labels include `labels`; None if none, NaN if several."""
    want = set(labels.items())
    hits = [v for (n, lab), v in m.items() if n == name and want <= set(lab)]
    return hits[0] if len(hits) == 1 else None if not hits else float("nan")


def samples(m: Samples, name: str, **labels: str) -> list[dict[str, str]]:
    """The label sets of every sample of `name` whose labels include `labels`."""
    want = set(labels.items())
    return [dict(lab) for (n, lab), _ in m.items() if n == name and want <= set(lab)]


def open_files(pid: int) -> set[str]:
    """What process `pid` holds open now: the targets of its /proc/<pid>/fd links (a file that
    closes while the table is read is skipped)."""
    out = set()
    fd_dir = Path(f"/proc/{pid}/fd")
    for fd in os.listdir(fd_dir):
        try:
            out.add(os.readlink(fd_dir / fd))
        except FileNotFoundError:
            continue
    return out


def context_switches(pid: int) -> dict[str, int]:
    """Voluntary + involuntary context switches of each thread of `pid`, by "tid name": a
    thread that sleeps in a wait and is woken counts one voluntary switch per wake-up."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            status = (task / "status").read_text()
        except FileNotFoundError:
            continue  # the thread ended while the table was read
        fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
        total = int(fields["voluntary_ctxt_switches"]) + int(fields["nonvoluntary_ctxt_switches"])
        out[f"{task.name} {fields['Name'].strip()}"] = total
    return out
