"""Audio side cost: CPU of headsetd's audio threads and of the audio server while metering 1
and 4 headsets in calls, against the same calls not metered; and what loading pulsectl costs.

What it measures, per server (PulseAudio, PipeWire) and per N in (1, 4):
  - a real server started as the tests start it (tests/audio/servers.py): N "headsets" (a null
    sink + a remap source with USB device.* properties), each fed a 1 kHz tone at -20 dBFS
    (pacat) and recorded by a stand-in softphone (parec, media.role=phone), so N calls run;
  - a child process running `AudioWatcher` (both its threads, a sink that tallies the events
    as the daemon will) connected to that server. Phase "watching": its targets match no
    source (it watches the server, meters nothing). Phase "metering": its targets match the N
    headsets, so it keeps N peak-detect streams open;
  - over a WINDOW (default 10 s) after SETTLE (default 3 s): the child's CPU and the server's
    (PulseAudio: pulseaudio; PipeWire: pipewire + wireplumber + pipewire-pulse), each the sum
    of the first field of /proc/<pid>/task/*/schedstat (ns on the CPU), as % of one core; and
    the levels the child received per second.
Then, with --import-cost: RSS (VmRSS) and `python -X importtime` of a fresh interpreter that
has loaded what the daemon loads anyway, then imports headsetd.audio.watcher (pulsectl is not
loaded yet), then tries one connection (pulsectl and libpulse loaded).

Targets: headsetd < 0.5 % of a core per metered headset (metering minus watching, divided by
N); the server < +0.5 % of a core (metering minus watching).

    .venv/bin/python bench/audio.py [--seconds N] [--settle N] [--server pulseaudio|pipewire]
                                    [--import-cost [--skip-cpu]]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.audio.servers import Server, Softphone, Tone, usb_props, wait_until  # noqa: E402

PYTHON = ROOT / ".venv" / "bin" / "python"
COUNTS = (1, 4)
TARGET_CLIENT_PER_HEADSET = 0.5
TARGET_SERVER = 0.5
SERVER_PROCESSES = {
    "pulseaudio": ("pulseaudio",),
    "pipewire": ("pipewire", "wireplumber", "pipewire-pulse"),
}

CHILD = """
import json, sys, threading
from headsetd.audio.collect import AudioTally, tally_audio
from headsetd.audio.config import AudioConfig
from headsetd.audio.model import (
    AudioServerConnected, AudioServerLost, AudioTarget, MicLevelMeasured)
from headsetd.audio.watcher import AudioWatcher
from headsetd.clock import MonotonicClock

address, count, product = sys.argv[1], int(sys.argv[2]), int(sys.argv[3], 16)
lock, tallies, levels = threading.Lock(), {}, [0]

def sink(device, events, now):
    with lock:
        for e in events:
            if isinstance(e, AudioServerConnected | AudioServerLost):
                continue
            levels[0] += isinstance(e, MicLevelMeasured)
            tallies[device] = tally_audio(tallies.get(device, AudioTally()), e, now)

watcher = AudioWatcher(AudioConfig(), MonotonicClock(), sink, address)
watcher.set_targets([AudioTarget(f"0b0e:{product:04x}:SN{n}", vendor_id=0x0B0E,
    product_id=product, serial=f"SN{n}", off_hook=True) for n in range(1, count + 1)])
watcher.start()
print("started", flush=True)
for line in sys.stdin:
    with lock:
        print(json.dumps({"levels": levels[0], "in_use": sum(t.in_use for t in tallies.values())}),
              flush=True)
watcher.stop()
"""


def cpu_ns(pid: int) -> int:
    """Nanoseconds on the CPU of every thread of `pid` (0 if it is gone)."""
    total = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return 0
    for tid in tasks:
        try:
            total += int(Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def server_pids(server: Server) -> list[int]:
    """The server's daemons: the processes in its process group named as expected."""
    assert server.proc is not None
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.getpgid(int(entry)) != server.proc.pid:
                continue
            name = Path(f"/proc/{entry}/comm").read_text().strip()
        except (ProcessLookupError, FileNotFoundError):
            continue
        if name in SERVER_PROCESSES[server.kind]:
            pids.append(int(entry))
    return pids


class Child:
    """The AudioWatcher under test, in a process of its own."""

    def __init__(self, server: Server, count: int, metering: bool) -> None:
        product = 0x2453 if metering else 0x9999  # 9999 matches no headset: watching only
        self.proc = subprocess.Popen(
            [str(PYTHON), "-c", CHILD, server.address, str(count), f"{product:04x}"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline().strip() == "started"

    def stats(self) -> dict[str, int]:
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()
        result: dict[str, int] = json.loads(self.proc.stdout.readline())
        return result

    def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(10)


def measure(server: Server, count: int, metering: bool, seconds: float, settle: float) -> dict:
    child = Child(server, count, metering)
    try:
        if metering:
            wait_until(lambda: child.stats()["in_use"] == count, "the calls seen", 20)
        time.sleep(settle)  # a measurement window, not a wait for a condition
        pids = server_pids(server)
        before = (time.monotonic(), cpu_ns(child.proc.pid), sum(cpu_ns(p) for p in pids))
        levels0 = child.stats()["levels"]
        time.sleep(seconds)
        after = (time.monotonic(), cpu_ns(child.proc.pid), sum(cpu_ns(p) for p in pids))
        levels = child.stats()["levels"] - levels0
    finally:
        child.stop()
    wall = after[0] - before[0]
    return {
        "client_pct": 100 * (after[1] - before[1]) / 1e9 / wall,
        "server_pct": 100 * (after[2] - before[2]) / 1e9 / wall,
        "levels_per_s": levels / wall,
    }


def run_server(kind: str, seconds: float, settle: float) -> list[tuple[int, dict, dict]]:
    rows = []
    with tempfile.TemporaryDirectory(prefix=f"headsetd-bench-{kind}-") as tmp:
        server = Server(kind, Path(tmp)).start()
        calls: list[Tone | Softphone] = []
        try:
            made = 0
            for count in COUNTS:
                while made < count:
                    made += 1
                    props = usb_props(kind, 0x0B0E, 0x2453, str(made), f"SN{made}")
                    sink = server.headset(f"hs{made}", props)
                    calls += [Tone(server, sink, -20.0), Softphone(server, f"hs{made}")]
                watching = measure(server, count, False, seconds, settle)
                metering = measure(server, count, True, seconds, settle)
                rows.append((count, watching, metering))
        finally:
            for call in calls:
                call.stop()
            server.stop()
    return rows


def import_cost() -> None:
    script = (
        "import os, resource\n"
        "def rss():\n"
        "    for line in open('/proc/self/status'):\n"
        "        if line.startswith('VmRSS'): return int(line.split()[1])\n"
        "import prometheus_client, structlog, headsetd.collector, headsetd.discovery\n"
        "a = rss()\n"
        "import headsetd.audio.watcher\n"
        "b = rss()\n"
        "import sys; assert 'pulsectl' not in sys.modules\n"
        "from headsetd.audio.loop import PulseLink, Waker\n"
        "try:\n"
        "    PulseLink('bench', 'unix:/nonexistent', Waker())\n"
        "except Exception:\n"
        "    pass\n"
        "c = rss()\n"
        "print(a, b, c)\n"
    )
    out = subprocess.run(
        [str(PYTHON), "-X", "importtime", "-c", script],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    base, audio, connected = (int(x) for x in out.stdout.split())
    cumulative = {}
    for line in out.stderr.splitlines():
        parts = [p.strip() for p in line.split("|")]
        if len(parts) == 3 and parts[1].isdigit():
            cumulative[parts[2]] = int(parts[1])
    print("\nimport cost (fresh interpreter, VmRSS in KiB):")
    print(
        f"  with what the daemon loads anyway (prometheus_client, structlog, headsetd.collector,"
        f" headsetd.discovery): {base}"
    )
    print(f"  import headsetd.audio.watcher: +{audio - base} (pulsectl not loaded)")
    print(f"  first connection attempt (pulsectl + libpulse loaded): +{connected - audio}")
    for name in ("headsetd.audio.watcher", "pulsectl", "pulsectl.pulsectl", "prometheus_client"):
        if name in cumulative:
            print(f"  importtime cumulative {name}: {cumulative[name] / 1000:.1f} ms")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--settle", type=float, default=3.0)
    parser.add_argument("--server", choices=("pulseaudio", "pipewire"), action="append")
    parser.add_argument("--import-cost", action="store_true")
    parser.add_argument("--skip-cpu", action="store_true", help="with --import-cost: only that")
    args = parser.parse_args(argv)
    met = True
    for kind in [] if args.skip_cpu else args.server or ["pulseaudio", "pipewire"]:
        print(f"\n{kind}: {args.seconds:g} s windows, % of one core")
        print(
            "  N | headsetd watching | metering | per headset"
            " | server watching | metering | + | per headset | levels/s"
        )
        for count, watching, metering in run_server(kind, args.seconds, args.settle):
            per = (metering["client_pct"] - watching["client_pct"]) / count
            extra = metering["server_pct"] - watching["server_pct"]
            met &= per < TARGET_CLIENT_PER_HEADSET and extra < TARGET_SERVER
            print(
                f"  {count} | {watching['client_pct']:17.2f} | {metering['client_pct']:8.2f} |"
                f" {per:11.2f} | {watching['server_pct']:15.2f} | {metering['server_pct']:8.2f}"
                f" | {extra:+.2f} | {extra / count:+11.2f} | {metering['levels_per_s']:.1f}"
            )
    if args.import_cost:
        import_cost()
    print(
        f"\ntargets: headsetd < {TARGET_CLIENT_PER_HEADSET} % per metered headset,"
        f" server < +{TARGET_SERVER} % (in all): {'met' if met else 'NOT met'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
