"""Idle cost beside a peer: headsetd with 1, 4, 16 and 64 idle devices next to node_exporter.

What it measures, for each process, in ONE run:
  - wake-ups/s: voluntary + involuntary context switches summed over every thread
    (/proc/<pid>/task/*/status) over a WINDOW (default 60 s); a voluntary switch is a sleep, so
    one wake-up after it;
  - CPU s/hour: the scheduler's exact run time over the window (first field of
    /proc/<pid>/task/*/schedstat, ns), extrapolated to an hour;
  - threads (/proc/<pid>/task) at the window's end and after the scrapes;
  - RSS and PSS (/proc/<pid>/smaps_rollup) at the window's start and end (flat: an idle process
    allocates nothing), then after every round of scrapes: their peak is what a scraped
    exporter holds;
  - scrape median and p99 of N (default 200) sequential GETs of /metrics after the window, one
    connection each, of each of two kinds (interleaved): plain (no Accept headers: text format
    0.0.4, uncompressed) and as Prometheus asks (its scrape Accept header, so OpenMetrics from
    prometheus_client, and `Accept-Encoding: gzip`);
  - SIGTERM-to-exit: from os.kill() to waitpid() returning (the process reaped); for headsetd
    the log's last line must be `daemon_stopped` and every connected device must have its
    `device_disconnected`.
For a process that woke in the window (every process with --threads), each thread's wake-ups/s,
CPU and the call it sleeps in (/proc/<pid>/task/<tid>/syscall) follow, to say who woke.
Threads that end inside the window take their switches with them (/proc keeps no per-thread
figures of dead threads); neither process starts threads while idle.

How: every process runs at once, so all see the same machine load over the same window (idle
processes do not disturb each other). headsetd is the real command,
`<venv>/bin/headsetd run --no-audio --replay FILE... --listen 127.0.0.1:<free port>
--log-format json` (HID and USB only, as the system unit runs it: node_exporter watches no
audio server either; bench/audio.py measures the audio side);
each FILE is one of 4 fixtures' descriptors (cycled over the devices) with one watched
all-zero input report at t=0 and the same report at t=3600 s, so every device plugs at start
and stays plugged and idle. node_exporter is Debian's `prometheus-node-exporter` package
(1.5.0 on Debian 12: `apt-get install -y --no-install-recommends prometheus-node-exporter`),
run as `prometheus-node-exporter --web.listen-address=127.0.0.1:<free port>` with its default
collectors. Readiness is read without touching the processes: the port in LISTEN state in
/proc/net/tcp and, for headsetd, one `device_connected` log line per device; then SETTLE s
(default 5) before the window. Scrapes, then the SIGTERMs, come one process at a time.

Then (unless --no-imports) what the daemon imports and what that costs:
  - `python -X importtime -c "import headsetd.cli"` (every command) and a real
    `headsetd run --replay` under `-X importtime`, served one scrape and stopped (the daemon
    imports its module lazily): microseconds of import and module count per top-level
    package;
  - RSS/PSS of fresh interpreters after importing each heavy package alone, and after it when
    every other heavy one is already loaded (its marginal cost inside the daemon); pyudev is
    what `headsetd run` imports for udev, which `--replay` does not.

Targets (printed met / NOT met): with 4 devices wake-ups/s <= node_exporter's + 0.05 and
SIGTERM-to-exit < 100 ms; with 64 devices <= 8 threads, scrape p99 < 10 ms (the slower of
the two scrape kinds) and RSS <= 30 MB (the largest sample, the peak over the scrapes
included); each device < 20 kB (least-squares slope over the device counts of the median RSS
over the scrape rounds, a scraped daemon's steady RSS; the idle slope is printed too); RSS flat
(growth <= 64 kB for every headsetd) over the window, and over the scrapes: the median RSS of
the second half of the rounds at most 64 kB above that of the first half, where a leak per
scrape would show (from 0.7 kB a round). Medians, because with 64 devices the allocator makes
RSS jump by 256-700 kB for a round or a few and back, so single samples or peaks would call
that a leak.

    .venv/bin/python bench/peer.py [--window S] [--settle S] [--scrapes N]
        [--devices 1,4,16,64] [--venv PATH] [--no-imports] [--threads]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from headsetd.hid.decoder import TelephonyDecoder
from headsetd.hid.descriptor import ReportKind, parse_report_descriptor
from headsetd.hid.recording import RecordedReport, Recording

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "hid"
NODE_EXPORTER = "prometheus-node-exporter"
# Children run here, so `python -c` (whose sys.path starts with the working directory) imports
# headsetd from --venv, never from a checkout it happens to start in.
NEUTRAL_CWD = "/"
DEVICES = (
    "jabra_evolve-link-ms_0b0e-0307",
    "jabra_biz-2400-ii_0b0e-2453",
    "epos_impact-d_1395-00a9",
    "sennheiser_sc-660-anc-usb_1395-0082",
)
# Prometheus 2.42's own scrape request (scrape/scrape.go: scrapeAcceptHeader, and gzip).
PROMETHEUS_HEADERS = {
    "Accept": "application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
    "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
    "Accept-Encoding": "gzip",
    "User-Agent": "Prometheus/2.42.0",
    "X-Prometheus-Scrape-Timeout-Seconds": "10",
}
SCRAPE_KINDS = {"plain": {}, "prometheus": PROMETHEUS_HEADERS}
HEAVY = ("structlog", "prometheus_client", "pyudev", "usb", "pulsectl")
ATTRIBUTION = ("asyncio", "ssl")  # what structlog and prometheus_client pull from the stdlib
# x86-64 numbers of the calls idle threads sleep in (/proc/<pid>/task/<tid>/syscall).
SYSCALLS = {
    "0": "read",
    "7": "poll",
    "23": "select",
    "202": "futex",
    "232": "epoll_wait",
    "270": "pselect6",
    "281": "epoll_pwait",
    "271": "ppoll",
    "35": "nanosleep",
    "230": "clock_nanosleep",
}
START_LIMIT_S = 60.0
RSS_ROWS = (
    ("start", "window start"),
    ("end", "window end"),
    ("scraped", "after the scrapes"),
)
FLAT_KB = 64
TARGETS = {
    "wakeups_over_peer": 0.05,
    "sigterm_ms": 100.0,
    "threads": 8,
    "scrape_p99_ms": 10.0,
    "rss_mb": 30.0,
    "per_device_kb": 20.0,
}

MEMORY_SNIPPET = """
import importlib, sys
def mem():
    out = {}
    with open('/proc/self/smaps_rollup') as f:
        for line in f:
            key, _, rest = line.partition(':')
            if key in ('Rss', 'Pss'):
                out[key] = int(rest.split()[0])
    return out['Rss'], out['Pss']
print(*mem(), len(sys.modules))
for name in sys.argv[1:]:
    importlib.import_module(name)
    print(*mem(), len(sys.modules))
"""


# --- the idle devices ------------------------------------------------------------------------


def idle_recording(stem: str) -> Recording:
    """The fixture's descriptor with one all-zero watched report at t=0 and again at t=3600."""
    fixture = Recording.load(FIXTURES / f"{stem}.hid")
    descriptor = parse_report_descriptor(fixture.descriptor)
    decoder = TelephonyDecoder(descriptor)
    for report_id, report in descriptor.reports_of(ReportKind.INPUT).items():
        data = bytes(report.wire_bytes)
        if report_id is not None:
            data = bytes([report_id]) + data[1:]
        if decoder.decode(data).values:
            break
    else:
        raise SystemExit(f"{stem}: no input report with a watched control")
    reports = (RecordedReport(0.0, data), RecordedReport(3600.0, data))
    return Recording(
        fixture.descriptor,
        fixture.name,
        fixture.bus,
        fixture.vendor_id,
        fixture.product_id,
        reports=reports,
    )


def write_idle_recordings(directory: Path) -> list[str]:
    files = []
    for stem in DEVICES:
        path = directory / f"{stem}_idle.hid"
        with path.open("w") as out:
            idle_recording(stem).dump(out)
        files.append(str(path))
    return files


# --- /proc -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Task:
    """One thread at one moment."""

    name: str
    wakeups: int
    run_ns: int
    syscall: str  # what it sleeps in


@dataclass(frozen=True, slots=True)
class Sample:
    at: float
    wakeups: int
    voluntary: int
    run_ns: int
    threads: int
    rss_kb: int
    pss_kb: int
    tasks: dict[int, Task]


def memory_kb(pid: int) -> tuple[int, int]:
    """(Rss, Pss) in kB from /proc/<pid>/smaps_rollup."""
    found: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("Rss", "Pss"):
            found[key] = int(rest.split()[0])
    return found["Rss"], found["Pss"]


def sample(pid: int) -> Sample:
    at = time.monotonic()
    voluntary = involuntary = run_ns = 0
    tasks = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            status = (task / "status").read_text().splitlines()
            task_ns = int((task / "schedstat").read_text().split()[0])
            name = (task / "comm").read_text().strip()
            number = (task / "syscall").read_text().split()[0]
        except (FileNotFoundError, ProcessLookupError):
            continue  # the thread ended between listing and reading
        switches = {"voluntary_ctxt_switches": 0, "nonvoluntary_ctxt_switches": 0}
        for line in status:
            key, _, value = line.partition(":")
            if key in switches:
                switches[key] = int(value)
        voluntary += switches["voluntary_ctxt_switches"]
        involuntary += switches["nonvoluntary_ctxt_switches"]
        run_ns += task_ns
        syscall = SYSCALLS.get(number, number) if number.isdigit() else number
        tasks[int(task.name)] = Task(name, sum(switches.values()), task_ns, syscall)
    rss, pss = memory_kb(pid)
    return Sample(at, voluntary + involuntary, voluntary, run_ns, len(tasks), rss, pss, tasks)


def listening(port: int) -> bool:
    """Port in LISTEN state on 127.0.0.1 (read from /proc: the process is not touched)."""
    wanted = f"0100007F:{port:04X}"
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == wanted and fields[3] == "0A":
            return True
    return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    rank = max(1, round(p / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def wait_for(condition: Callable[[], bool], what: str, limit: float) -> None:
    """Poll `condition` every 50 ms until true, or fail after `limit` seconds."""
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {limit:.0f} s waiting for {what}")
        time.sleep(0.05)


# --- the processes ---------------------------------------------------------------------------


@dataclass
class Peer:
    """One measured process: node_exporter (devices None) or headsetd with `devices`."""

    name: str
    command: list[str]
    port: int
    log: Path
    devices: int | None = None
    proc: subprocess.Popen[bytes] | None = None
    samples: dict[str, Sample] = field(default_factory=dict)
    scrapes_ms: dict[str, list[float]] = field(default_factory=dict)
    body_bytes: dict[str, int] = field(default_factory=dict)
    memory_trace: list[tuple[int, int]] = field(default_factory=list)  # (RSS, PSS) per round
    exit_ms: float = float("nan")
    problems: list[str] = field(default_factory=list)

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise RuntimeError(f"{self.name} not started")
        return self.proc.pid

    def start(self) -> None:
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                self.command, stdout=out, stderr=subprocess.STDOUT, cwd=NEUTRAL_CWD
            )

    def log_lines(self) -> list[str]:
        return self.log.read_text(errors="replace").splitlines()

    def ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise SystemExit(f"{self.name} exited ({self.proc.returncode}):\n{self.log_text()}")
        if not listening(self.port):
            return False
        if self.devices is None:
            return True
        return self.log.read_text(errors="replace").count('"device_connected"') >= self.devices

    def log_text(self) -> str:
        return "\n".join(self.log_lines()[-30:])

    def scrape(self, headers: dict[str, str]) -> tuple[float, bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            start = time.perf_counter_ns()
            connection.request("GET", "/metrics", headers=headers)
            response = connection.getresponse()
            body = response.read()
            elapsed_ms = (time.perf_counter_ns() - start) / 1e6
        finally:
            connection.close()
        if response.status != 200:
            raise SystemExit(f"{self.name}: /metrics answered {response.status}")
        return elapsed_ms, body

    def scrape_many(self, count: int) -> None:
        """`count` rounds of one scrape of each kind, RSS and PSS read after each round."""
        times: dict[str, list[float]] = {kind: [] for kind in SCRAPE_KINDS}
        for n in range(count):
            for kind, headers in SCRAPE_KINDS.items():
                elapsed, body = self.scrape(headers)
                times[kind].append(elapsed)
                self.body_bytes[kind] = len(body)
                if n == 0 and kind == "plain":
                    self.check_metrics(body.decode())
            self.memory_trace.append(memory_kb(self.pid))
        self.scrapes_ms = {kind: sorted(values) for kind, values in times.items()}
        self.samples["scraped"] = sample(self.pid)

    def peak_kb(self, first: int = 0, last: int | None = None) -> tuple[int, int]:
        """Peak (RSS, PSS) over scrape rounds [first:last]."""
        trace = self.memory_trace[first:last]
        return max(r for r, _ in trace), max(p for _, p in trace)

    def median_kb(self) -> float:
        """Median RSS over the scrape rounds."""
        return statistics.median(r for r, _ in self.memory_trace)

    def median_growth_kb(self) -> int:
        """Median RSS of the second half of the scrape rounds minus that of the first half."""
        half = len(self.memory_trace) // 2
        rss = [r for r, _ in self.memory_trace]
        return int(statistics.median(rss[half:]) - statistics.median(rss[:half]))

    def check_metrics(self, text: str) -> None:
        if self.devices is None:
            return
        connected = sum(
            1
            for line in text.splitlines()
            if line.startswith("headsetd_device_connected{") and line.endswith(" 1.0")
        )
        if connected != self.devices:
            self.problems.append(f"/metrics showed {connected} connected devices")

    def terminate(self) -> None:
        """SIGTERM, timed until the process is reaped; then check headsetd's log."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            self.problems.append("not running at SIGTERM")
            return
        start = time.perf_counter_ns()
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait()  # a blocking waitpid(): returns as the process is reaped
        self.exit_ms = (time.perf_counter_ns() - start) / 1e6
        if self.devices is not None:
            self.check_stop_log()

    def check_stop_log(self) -> None:
        events = []
        for line in self.log_lines():
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                self.problems.append(f"log line not JSON: {line[:120]}")
        if not events or events[-1].get("event") != "daemon_stopped":
            last = events[-1].get("event") if events else None
            self.problems.append(f"last log line is {last!r}, not daemon_stopped")
        connected = {e["device"] for e in events if e.get("event") == "device_connected"}
        gone = {e["device"] for e in events if e.get("event") == "device_disconnected"}
        if len(connected) != self.devices or connected != gone:
            self.problems.append(
                f"{len(connected)} devices connected, {len(gone)} device_disconnected, "
                f"{len(connected - gone)} missing"
            )
        noisy = [e for e in events if e.get("level") in ("warning", "error", "critical")]
        if noisy:
            self.problems.append(f"{len(noisy)} warning/error lines, first: {noisy[0]}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def make_peers(tmp: Path, venv: Path, counts: Sequence[int], node_exporter: str) -> list[Peer]:
    files = write_idle_recordings(tmp)
    port = free_port()
    peers = [
        Peer(
            "node_exporter",
            [node_exporter, f"--web.listen-address=127.0.0.1:{port}"],
            port,
            tmp / "node_exporter.log",
        )
    ]
    for count in counts:
        port = free_port()
        replay = [files[n % len(files)] for n in range(count)]
        command = [str(venv / "bin" / "headsetd"), "run", "--no-audio", "--replay", *replay]
        command += ["--listen", f"127.0.0.1:{port}", "--log-format", "json"]
        peers.append(Peer(f"headsetd x{count}", command, port, tmp / f"h{count}.log", count))
    return peers


def measure(peers: Sequence[Peer], args: argparse.Namespace) -> tuple[float, float, float]:
    """Start, window, scrapes, SIGTERMs; returns (window s, load1 before, load1 after)."""
    for peer in peers:
        peer.start()
    for peer in peers:
        wait_for(peer.ready, f"{peer.name} to be ready", START_LIMIT_S)
    time.sleep(args.settle)
    load_before = os.getloadavg()[0]
    for peer in peers:
        peer.samples["start"] = sample(peer.pid)
    time.sleep(args.window)
    for peer in peers:
        peer.samples["end"] = sample(peer.pid)
    load_after = os.getloadavg()[0]
    window = peers[-1].samples["end"].at - peers[-1].samples["start"].at
    for peer in peers:
        peer.scrape_many(args.scrapes)
    for peer in peers:
        peer.terminate()
    return window, load_before, load_after


# --- imports ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Imported:
    module: str
    self_us: int
    cumulative_us: int


def parse_importtime(text: str) -> list[Imported]:
    out = []
    for line in text.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
        if match:
            out.append(Imported(match[4], int(match[1]), int(match[2])))
    return out


def importtime_of_cli(python: Path) -> list[Imported]:
    result = subprocess.run(
        [str(python), "-X", "importtime", "-c", "import headsetd.cli"],
        capture_output=True,
        text=True,
        check=True,
        cwd=NEUTRAL_CWD,
    )
    return parse_importtime(result.stderr)


def importtime_of_daemon(venv: Path, recording: str, tmp: Path) -> list[Imported]:
    """A real `headsetd run --replay` under -X importtime: started, scraped once, stopped."""
    port = free_port()
    out, err = tmp / "importtime.out", tmp / "importtime.err"
    command = [str(venv / "bin" / "python"), "-X", "importtime", str(venv / "bin" / "headsetd")]
    command += ["run", "--no-audio", "--replay", recording, "--listen", f"127.0.0.1:{port}"]
    command += ["--log-format", "json"]
    peer = Peer("importtime", command, port, out, devices=1)
    with out.open("wb") as stdout, err.open("wb") as stderr:
        peer.proc = subprocess.Popen(command, stdout=stdout, stderr=stderr, cwd=NEUTRAL_CWD)
    try:
        wait_for(peer.ready, "headsetd -X importtime to be ready", START_LIMIT_S)
        peer.scrape(PROMETHEUS_HEADERS)
        peer.terminate()
    finally:
        peer.kill()
    return parse_importtime(err.read_text())


def memory_after(python: Path, modules: Sequence[str]) -> list[tuple[int, int, int]]:
    """(RSS kB, PSS kB, modules loaded) of a fresh interpreter, then after each import."""
    result = subprocess.run(
        [str(python), "-c", MEMORY_SNIPPET, *modules],
        capture_output=True,
        text=True,
        check=True,
        cwd=NEUTRAL_CWD,
    )
    rows = [line.split() for line in result.stdout.splitlines()]
    return [(int(a), int(b), int(c)) for a, b, c in rows]


def importable(python: Path, module: str) -> bool:
    code = f"import importlib.util, sys; sys.exit(importlib.util.find_spec({module!r}) is None)"
    return subprocess.run([str(python), "-c", code], check=False, cwd=NEUTRAL_CWD).returncode == 0


def by_package(imports: Sequence[Imported]) -> dict[str, tuple[int, int]]:
    """Top-level package -> (self microseconds summed, modules)."""
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for item in imports:
        entry = totals[item.module.split(".")[0]]
        entry[0] += item.self_us
        entry[1] += 1
    return {name: (us, n) for name, (us, n) in totals.items()}


def package_kind(name: str) -> str:
    if name == "headsetd":
        return "headsetd"
    if name in sys.stdlib_module_names or name.startswith("_"):
        return "stdlib"
    return "third-party"


def print_importtime(title: str, imports: Sequence[Imported]) -> set[str]:
    packages = by_package(imports)
    total_us = sum(us for us, _ in packages.values())
    print(f"\n{title}: {len(imports)} modules, {total_us / 1000:.1f} ms of import (self sum)")
    kinds: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for name, (us, n) in packages.items():
        kinds[package_kind(name)][0] += us
        kinds[package_kind(name)][1] += n
    for kind, (us, n) in sorted(kinds.items()):
        print(f"  {kind:14} {n:4d} modules {us / 1000:8.1f} ms")
    top = sorted(packages.items(), key=lambda item: -item[1][0])
    shown = [f"{name} {us / 1000:.1f} ms/{n}" for name, (us, n) in top if us >= 1000]
    print("  packages >= 1 ms: " + ", ".join(shown))
    return set(packages)


def run_imports(venv: Path, recording: str, tmp: Path) -> dict[str, int]:
    """Print the import tables; returns figures the summary reuses (kB)."""
    python = venv / "bin" / "python"
    print("\n== imports ==")
    cli = print_importtime(
        'python -X importtime -c "import headsetd.cli"', importtime_of_cli(python)
    )
    daemon = print_importtime(
        "headsetd run --replay (one device, one scrape, SIGTERM) under -X importtime",
        importtime_of_daemon(venv, recording, tmp),
    )
    present = [m for m in HEAVY if importable(python, m)]
    bare = memory_after(python, [])[0]
    print(
        f"\nRSS / PSS of fresh interpreters ({python}), kB; bare interpreter {bare[0]} / "
        f"{bare[1]} ({bare[2]} modules)"
    )
    print(f"{'import':22} {'in':18} {'alone RSS':>10} {'PSS':>7} {'last RSS':>9} {'PSS':>7}")
    figures = {"bare_rss": bare[0]}
    loaded = [m for m in HEAVY if m in daemon or m == "pyudev"]
    for module in (*HEAVY, *ATTRIBUTION):
        where = "cli+run" if module in cli else "run" if module in daemon else "not imported"
        if module == "pyudev" and module not in daemon:
            where = "run without --replay"
        if module in HEAVY and module not in present:
            print(f"{module:22} {'not installed':18}")
            continue
        alone = memory_after(python, [module])[-1]
        line = f"{module:22} {where:18} {alone[0] - bare[0]:10d} {alone[1] - bare[1]:7d}"
        if module in loaded:
            others = [m for m in loaded if m != module]
            steps = memory_after(python, [*others, module])
            last = (steps[-1][0] - steps[-2][0], steps[-1][1] - steps[-2][1])
            line += f" {last[0]:9d} {last[1]:7d}"
            figures[f"last_{module}"] = last[0]
        print(line)
    for modules in (["headsetd.cli"], ["headsetd.daemon"], ["headsetd.daemon", "pyudev"]):
        after = memory_after(python, modules)[-1]
        label = " + ".join(modules)
        print(
            f"{label:41} {after[0] - bare[0]:10d} {after[1] - bare[1]:7d}   "
            f"(total RSS {after[0] / 1024:.1f} MB, {after[2]} modules)"
        )
        figures[label] = after[0]
    print(
        "(alone: that import in a bare interpreter; last: imported after every other heavy one "
        "the daemon loads, i.e. what dropping it would save; pyudev counts as loaded)"
    )
    return figures


# --- report ----------------------------------------------------------------------------------


def per_second(peer: Peer, window: float) -> float:
    return (peer.samples["end"].wakeups - peer.samples["start"].wakeups) / window


def fit(points: Sequence[tuple[float, float]]) -> tuple[float, float]:
    """Least-squares (slope, intercept)."""
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    sxx = sum((x - mean_x) ** 2 for x, _ in points)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in points) / sxx
    return slope, mean_y - slope * mean_x


def print_table(peers: Sequence[Peer], window: float) -> None:
    def row(label: str, cell: Callable[[Peer], str]) -> None:
        print(f"{label:34}" + "".join(f"{cell(p):>15}" for p in peers))

    def mb(kb: int) -> str:
        return f"{kb / 1024:.2f}"

    row("", lambda p: p.name)
    row("wake-ups/s", lambda p: f"{per_second(p, window):.3f}")
    row(
        "  of which voluntary",
        lambda p: f"{(p.samples['end'].voluntary - p.samples['start'].voluntary) / window:.3f}",
    )
    row(
        "CPU s/hour (schedstat)",
        lambda p: (
            f"{(p.samples['end'].run_ns - p.samples['start'].run_ns) / 1e9 * 3600 / window:.4f}"
        ),
    )
    row(
        "threads (window end / scraped)",
        lambda p: f"{p.samples['end'].threads} / {p.samples['scraped'].threads}",
    )
    for key, label in RSS_ROWS:
        row(f"RSS MB, {label}", lambda p, k=key: mb(p.samples[k].rss_kb))
    row("RSS MB, median over the scrapes", lambda p: mb(int(p.median_kb())))
    row("RSS MB, peak over the scrapes", lambda p: mb(p.peak_kb()[0]))
    row("PSS MB, window start", lambda p: mb(p.samples["start"].pss_kb))
    row("PSS MB, peak over the scrapes", lambda p: mb(p.peak_kb()[1]))
    for kind in SCRAPE_KINDS:
        row(f"scrape {kind} p50 ms", lambda p, k=kind: f"{percentile(p.scrapes_ms[k], 50):.2f}")
        row(f"scrape {kind} p99 ms", lambda p, k=kind: f"{percentile(p.scrapes_ms[k], 99):.2f}")
        row(f"  body bytes ({kind})", lambda p, k=kind: str(p.body_bytes[k]))
    row("SIGTERM-to-exit ms", lambda p: f"{p.exit_ms:.1f}")
    row("checks", lambda p: "ok" if not p.problems else f"{len(p.problems)} problem(s)")
    for peer in peers:
        for problem in peer.problems:
            print(f"  {peer.name}: {problem}")


def print_threads(peers: Sequence[Peer], window: float, every: bool) -> None:
    """Each thread's wake-ups and CPU over the window, and the call it sleeps in: for every
    process with --threads, else only for a process that woke. The thread whose tid is the
    pid is the main one (headsetd's reader loop); Python gives its threads no OS names."""
    for peer in peers:
        start, end = peer.samples["start"], peer.samples["end"]
        if not every and end.wakeups == start.wakeups:
            continue
        print(f"\n{peer.name} (pid {peer.pid}) threads over the window:")
        print(f"{'tid':>8} {'name':16} {'wake-ups/s':>10} {'CPU s/hour':>10}  sleeps in")
        for tid, task in sorted(end.tasks.items()):
            before = start.tasks.get(tid, Task("", 0, 0, ""))
            main = " (main)" if tid == peer.pid else ""
            print(
                f"{tid:8d} {task.name[:16]:16} {(task.wakeups - before.wakeups) / window:10.3f} "
                f"{(task.run_ns - before.run_ns) / 1e9 * 3600 / window:10.4f}  "
                f"{task.syscall}{main}"
            )


def verdicts(peers: Sequence[Peer], window: float) -> list[tuple[bool, str]]:
    out: list[tuple[bool, str]] = []

    def target(ok: bool, text: str) -> None:
        out.append((ok, text))

    node, headsetds = peers[0], peers[1:]
    by_count = {p.devices: p for p in headsetds}
    if 4 in by_count:
        peer, peer_rate = by_count[4], per_second(node, window)
        rate, limit = per_second(peer, window), peer_rate + TARGETS["wakeups_over_peer"]
        target(
            rate <= limit,
            f"4 devices: wake-ups/s {rate:.3f} <= {limit:.3f} (node_exporter's {peer_rate:.3f} "
            "+ 0.05)",
        )
        target(
            peer.exit_ms < TARGETS["sigterm_ms"],
            f"4 devices: SIGTERM-to-exit {peer.exit_ms:.1f} ms < 100 ms",
        )
    if 64 in by_count:
        peer = by_count[64]
        threads = max(s.threads for s in peer.samples.values())
        target(threads <= TARGETS["threads"], f"64 devices: threads {threads} <= 8")
        p99 = max(percentile(peer.scrapes_ms[k], 99) for k in SCRAPE_KINDS)
        target(
            p99 < TARGETS["scrape_p99_ms"],
            f"64 devices: scrape p99 {p99:.2f} ms < 10 ms (the slower kind)",
        )
        rss = max(*(s.rss_kb for s in peer.samples.values()), peer.peak_kb()[0]) / 1024
        target(rss <= TARGETS["rss_mb"], f"64 devices: RSS {rss:.2f} MB <= 30 MB (largest sample)")
    if len(headsetds) >= 2:
        slope, intercept = fit([(p.devices or 0, p.median_kb()) for p in headsetds])
        idle_slope, _ = fit([(p.devices or 0, p.samples["end"].rss_kb) for p in headsetds])
        target(
            slope < TARGETS["per_device_kb"],
            f"per device: {slope:.1f} kB < 20 kB (median RSS over the scrapes = "
            f"{intercept / 1024:.2f} MB + {slope:.1f} kB x devices; at the window's end "
            f"{idle_slope:.1f} kB/device)",
        )
    window_growth = {p.name: p.samples["end"].rss_kb - p.samples["start"].rss_kb for p in headsetds}
    target(
        all(g <= FLAT_KB for g in window_growth.values()),
        f"RSS flat over the window (<= {FLAT_KB} kB): "
        + ", ".join(f"{name} {g:+d} kB" for name, g in window_growth.items()),
    )
    scrape_growth = {p.name: p.median_growth_kb() for p in headsetds}
    target(
        all(g <= FLAT_KB for g in scrape_growth.values()),
        f"RSS flat over the scrapes (median of the 2nd half - of the 1st <= {FLAT_KB} kB): "
        + ", ".join(f"{name} {g:+d} kB" for name, g in scrape_growth.items()),
    )
    for peer in headsetds:
        target(
            not peer.problems,
            f"{peer.name}: log ends with daemon_stopped, every device disconnected, /metrics "
            "showed every device, no warning",
        )
    return out


def versions(venv: Path, node_exporter: str) -> str:
    python = venv / "bin" / "python"
    code = (
        "import importlib.metadata as m;"
        "print(*(f'{p} {m.version(p)}' for p in ('prometheus-client', 'structlog')), sep=', ')"
    )
    libs = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=False)
    node = subprocess.run([node_exporter, "--version"], capture_output=True, text=True, check=False)
    first = (node.stdout or node.stderr).splitlines()[:1]
    return f"{libs.stdout.strip()}; {first[0] if first else 'node_exporter ?'}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window", type=float, default=60.0, help="idle window, seconds")
    parser.add_argument("--settle", type=float, default=5.0, help="wait before the window")
    parser.add_argument("--scrapes", type=int, default=200, help="scrapes of each kind")
    parser.add_argument("--devices", default="1,4,16,64", help="headsetd device counts")
    parser.add_argument("--venv", type=Path, default=ROOT / ".venv", help="headsetd's venv")
    parser.add_argument("--no-imports", action="store_true", help="skip the import tables")
    parser.add_argument(
        "--threads",
        action="store_true",
        help="per-thread figures of every process, not only of one that woke",
    )
    args = parser.parse_args()
    counts = [int(n) for n in args.devices.split(",")]
    node_exporter = shutil.which(NODE_EXPORTER)
    if node_exporter is None:
        raise SystemExit(
            f"{NODE_EXPORTER} not found: apt-get install -y --no-install-recommends "
            "prometheus-node-exporter"
        )
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="headsetd-peer-") as tmp_name:
        tmp = Path(tmp_name)
        peers = make_peers(tmp, args.venv, counts, node_exporter)
        try:
            window, load_before, load_after = measure(peers, args)
        finally:
            for peer in peers:
                peer.kill()
        print(
            f"== side by side: {window:.1f} s window after {args.settle:.0f} s settle, "
            f"{args.scrapes} scrapes of each kind, loadavg {load_before:.2f} -> "
            f"{load_after:.2f} =="
        )
        print_table(peers, window)
        print_threads(peers, window, args.threads)
        results = verdicts(peers, window)
        if not args.no_imports:
            run_imports(args.venv, str(tmp / f"{DEVICES[0]}_idle.hid"), tmp)
    print("\ntargets:")
    for ok, text in results:
        print(f"  [{'met' if ok else 'NOT met'}] {text}")
    print(
        f"\n{versions(args.venv, node_exporter)}; python {platform.python_version()}; "
        f"nproc {os.cpu_count()}; loadavg now {os.getloadavg()[0]:.2f}; "
        f"run took {time.monotonic() - began:.0f} s"
    )
    print(f"command: .venv/bin/python bench/peer.py {' '.join(sys.argv[1:])}".rstrip())
    return 0 if all(ok for ok, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
