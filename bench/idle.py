"""Idle cost: CPU seconds and wake-ups of `headsetd run --replay` with 4 plugged, idle devices.

What it measures: over a WINDOW (default 60 s) of a running daemon whose devices send nothing,
  - CPU: utime + stime of the process from /proc/<pid>/stat (clock ticks, CLK_TCK per second),
    and, because a tick is 10 ms and the target is 8.3 ms per minute, also the scheduler's
    exact run time (sum of the first field of /proc/<pid>/task/*/schedstat, in ns);
  - wake-ups: the sum of voluntary_ctxt_switches + nonvoluntary_ctxt_switches over
    /proc/<pid>/task/*/status (each voluntary switch is one sleep, so one wake-up after it);
reported per minute and extrapolated to CPU seconds per hour; then per thread (tid, name,
wake-ups/min, run time, the syscall it sleeps in from /proc/<pid>/task/<tid>/syscall).

How: 4 recordings in a temporary directory, each the R:/N:/I: lines of a fixture descriptor with
one all-zero input report (the device's first report carrying a watched control) at t=0 and
the same report at t=3600 s, so each device is plugged at start and stays plugged and idle.
Then `.venv/bin/headsetd run --replay <4 files> --listen 127.0.0.1:<free port> --log-format
json` as a subprocess (stdout to a file: no terminal). The script waits for the 4
device_connected log lines (it does not touch the port), lets the daemon settle SETTLE s
(default 5), samples /proc, sleeps the window, samples again, and only then scrapes /metrics
once to prove the daemon was serving (4 devices with headsetd_device_connected 1).

With --read-timeout S the daemon runs with a config file that sets [devices]
read_timeout_seconds = S (to see how the idle cost scales with it).

Python 3.11 does not give its threads OS names (every /proc/<pid>/task/*/comm is "headsetd").
With --name-threads the daemon is started through a tiny launcher that prctl(PR_SET_NAME)s
each thread with its Python name (main, http, replay-N, session-replay-N) before running the
same `headsetd.cli.main`; no other behaviour changes. Use it to attribute wake-ups.

Target: < 0.5 s CPU per hour (extrapolated from the window).

    .venv/bin/python bench/idle.py [--seconds N] [--settle N] [--name-threads] [--read-timeout S]
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from headsetd.hid.decoder import TelephonyDecoder
from headsetd.hid.descriptor import ReportKind, parse_report_descriptor
from headsetd.hid.recording import RecordedReport, Recording

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "hid"
HEADSETD = ROOT / ".venv" / "bin" / "headsetd"
PYTHON = ROOT / ".venv" / "bin" / "python"
DEVICES = (
    "jabra_evolve-link-ms_0b0e-0307",
    "jabra_biz-2400-ii_0b0e-2453",
    "epos_impact-d_1395-00a9",
    "sennheiser_sc-660-anc-usb_1395-0082",
)
TARGET_CPU_S_PER_HOUR = 0.5
TICK = os.sysconf("SC_CLK_TCK")
SYSCALLS = {7: "poll", 23: "select", 202: "futex", 232: "epoll_wait", 270: "pselect6", 0: "read"}

LAUNCHER = """
import ctypes, sys, threading
_prctl = ctypes.CDLL(None).prctl
def _name(name):
    _prctl(15, name[:15].encode(), 0, 0, 0)  # PR_SET_NAME
_inner = threading.Thread._bootstrap_inner
def _bootstrap_inner(self):
    _name(self.name.replace("session-", "sess-"))
    _inner(self)
threading.Thread._bootstrap_inner = _bootstrap_inner
_name("main")
from headsetd.cli import main
sys.exit(main(sys.argv[1:]))
"""


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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ThreadSample:
    name: str
    ticks: int
    run_ns: int
    voluntary: int
    involuntary: int
    syscall: str


def sample(pid: int) -> tuple[int, dict[int, ThreadSample]]:
    """Process utime+stime in ticks, and per-thread figures."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    process_ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    threads: dict[int, ThreadSample] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text().rpartition(")")[2].split()
            status = (task / "status").read_text().splitlines()
            run_ns = int((task / "schedstat").read_text().split()[0])
            name = (task / "comm").read_text().strip()
            nr = (task / "syscall").read_text().split()[0]
        except (FileNotFoundError, ProcessLookupError):
            continue  # the thread ended between listing and reading
        switches = {
            key: int(value)
            for key, _, value in (line.partition(":") for line in status)
            if key in ("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")
        }
        syscall = SYSCALLS.get(int(nr), nr) if nr.lstrip("-").isdigit() else nr
        threads[int(task.name)] = ThreadSample(
            name,
            int(stat[11]) + int(stat[12]),
            run_ns,
            switches["voluntary_ctxt_switches"],
            switches["nonvoluntary_ctxt_switches"],
            syscall,
        )
    return process_ticks, threads


def wait_connected(log: Path, count: int, proc: subprocess.Popen[bytes], limit: float) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"headsetd exited ({proc.returncode}):\n{log.read_text()}")
        if log.read_text(errors="replace").count('"device_connected"') >= count:
            return
        time.sleep(0.1)
    raise SystemExit(f"headsetd did not connect {count} devices in {limit} s:\n{log.read_text()}")


def main() -> int:  # noqa: PLR0915 - one linear measurement
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="measurement window")
    parser.add_argument("--settle", type=float, default=5.0, help="wait before the window")
    parser.add_argument(
        "--read-timeout",
        type=float,
        help="run with a config setting [devices] read_timeout_seconds (default: headsetd's)",
    )
    parser.add_argument(
        "--name-threads", action="store_true", help="name OS threads after Python threads"
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="headsetd-idle-") as tmp:
        files = []
        for stem in DEVICES:
            path = Path(tmp, f"{stem}_idle.hid")
            with path.open("w") as out:
                idle_recording(stem).dump(out)
            files.append(str(path))
        port = free_port()
        daemon_args = ["run", "--replay", *files, "--listen", f"127.0.0.1:{port}"]
        daemon_args += ["--log-format", "json"]
        if args.read_timeout is not None:
            config = Path(tmp, "headsetd.toml")
            config.write_text(f"[devices]\nread_timeout_seconds = {args.read_timeout}\n")
            daemon_args += ["--config", str(config)]
        if args.name_threads:
            command = [str(PYTHON), "-c", LAUNCHER, *daemon_args]
        else:
            command = [str(HEADSETD), *daemon_args]
        log = Path(tmp, "headsetd.log")
        with log.open("wb") as out:
            proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        try:
            wait_connected(log, len(files), proc, 30.0)
            time.sleep(args.settle)
            load_before = os.getloadavg()[0]
            t0 = time.monotonic()
            ticks0, threads0 = sample(proc.pid)
            time.sleep(args.seconds)
            ticks1, threads1 = sample(proc.pid)
            window = time.monotonic() - t0
            load_after = os.getloadavg()[0]
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                metrics = r.read().decode()
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        connected = sum(
            1
            for line in metrics.splitlines()
            if line.startswith("headsetd_device_connected{") and line.endswith(" 1.0")
        )

    per_min = 60.0 / window
    per_hour = 3600.0 / window
    cpu_ticks_s = (ticks1 - ticks0) / TICK
    empty = ThreadSample("", 0, 0, 0, 0, "")
    deltas = {
        tid: ThreadSample(
            t1.name,
            t1.ticks - threads0.get(tid, empty).ticks,
            t1.run_ns - threads0.get(tid, empty).run_ns,
            t1.voluntary - threads0.get(tid, empty).voluntary,
            t1.involuntary - threads0.get(tid, empty).involuntary,
            t1.syscall,
        )
        for tid, t1 in sorted(threads1.items())
    }
    run_s = sum(d.run_ns for d in deltas.values()) / 1e9
    voluntary = sum(d.voluntary for d in deltas.values())
    wakeups = voluntary + sum(d.involuntary for d in deltas.values())

    print(
        f"window {window:.1f} s after {args.settle:.0f} s settle; {len(files)} idle devices; "
        f"{len(threads1)} threads; /metrics connected devices: {connected}"
    )
    print(f"{'figure':40} {'per minute':>12} {'per hour':>12}")
    rows = (
        ("CPU s, utime+stime (10 ms ticks)", cpu_ticks_s, 4),
        ("CPU s, schedstat run time (exact)", run_s, 4),
        ("wake-ups (vol.+invol. ctxt switches)", wakeups, 1),
        ("  of which voluntary (sleeps)", voluntary, 1),
    )
    for label, value, digits in rows:
        print(f"{label:40} {value * per_min:12.{digits}f} {value * per_hour:12.{digits}f}")
    print(
        f"(one tick in this window is {per_hour / TICK:.2f} CPU s/hour: the tick figure is "
        "too coarse to judge the target; the verdict uses schedstat)"
    )
    print(
        f"\n{'tid':>8} {'thread':16} {'wakeups/min':>11} {'vol.':>6} {'invol.':>6} "
        f"{'CPU s/hour':>10} {'ticks':>5}  sleeps in"
    )
    for tid, d in deltas.items():
        print(
            f"{tid:8d} {d.name:16} {(d.voluntary + d.involuntary) * per_min:11.1f} "
            f"{d.voluntary:6d} {d.involuntary:6d} {d.run_ns / 1e9 * per_hour:10.4f} "
            f"{d.ticks:5d}  {d.syscall}"
        )
    verdict = "met" if run_s * per_hour < TARGET_CPU_S_PER_HOUR else "NOT met"
    print(
        f"\ntarget < {TARGET_CPU_S_PER_HOUR} CPU s/hour: {verdict} "
        f"({run_s * per_hour:.3f} s/hour by schedstat, {cpu_ticks_s * per_hour:.3f} by ticks); "
        f"loadavg {load_before:.2f} -> {load_after:.2f}; CLK_TCK {TICK}; "
        f"python {platform.python_version()}; nproc {os.cpu_count()}"
    )
    if connected != len(files):
        print(f"WARNING: /metrics shows {connected} connected devices, expected {len(files)}")
    print(f"command: .venv/bin/python bench/idle.py {' '.join(sys.argv[1:])}".rstrip())
    return 0 if connected == len(files) else 1


if __name__ == "__main__":
    sys.exit(main())
