"""udev-probe cost: what 70-headsetd.rules adds to every hidraw node that appears.

What it measures:
  - process: wall time of one probe as udev runs it, a fresh interpreter per node
    (`python -m headsetd.udev_probe SYSPATH`, SYSPATH a fake sysfs node whose `device/
    report_descriptor` holds a fixture's descriptor), over every HID fixture and keyboard
    descriptor, RUNS rounds; median, p90 and max;
  - baseline: the same interpreter doing nothing (`python -c pass`), for what start-up alone costs;
  - cli: `python -c "import headsetd.cli"`, what `headsetd udev-probe` costs while the command
    line module imports the daemon's dependencies (structlog, pyudev, ...) at the top;
  - in-process: `probe(SYSPATH)` alone (read, parse, decide), per descriptor, best of 5.

Target: the process median under 100 ms on this 2-core machine (udev runs a probe per node, in
parallel workers; its event timeout is 180 s, so the risk is latency at plug-in, not failure).

    .venv/bin/python bench/udev_probe.py [--runs N]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from headsetd.hid.recording import Recording  # noqa: E402 - after the path set-up above
from headsetd.udev_probe import probe  # noqa: E402

DESCRIPTORS = sorted((REPO / "tests" / "fixtures" / "hid").glob("*.hid")) + sorted(
    (REPO / "tests" / "fixtures" / "keyboards").glob("*.hid")
)


def fake_node(root: Path, name: str, descriptor: bytes) -> Path:
    hid = root / name
    node = hid / "hidraw" / "hidraw0"
    node.mkdir(parents=True)
    (node / "device").symlink_to(hid)
    (hid / "report_descriptor").write_bytes(descriptor)
    return node


def wall(argv: Sequence[str]) -> float:
    began = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True)
    return time.perf_counter() - began


def summary(label: str, seconds: list[float]) -> str:
    ms = sorted(s * 1000 for s in seconds)
    p90 = ms[min(len(ms) - 1, int(0.9 * len(ms)))]
    return (
        f"{label:12} n={len(ms):4}  median {statistics.median(ms):6.1f} ms  "
        f"p90 {p90:6.1f} ms  max {ms[-1]:6.1f} ms"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="rounds over all descriptors")
    args = parser.parse_args()
    print(f"Python {platform.python_version()}, {len(DESCRIPTORS)} descriptors, {args.runs} rounds")
    with tempfile.TemporaryDirectory() as tmp:
        nodes = [fake_node(Path(tmp), p.stem, Recording.load(p).descriptor) for p in DESCRIPTORS]
        python = sys.executable
        process, baseline, cli = [], [], []
        for _ in range(args.runs):
            for node in nodes:
                process.append(wall([python, "-m", "headsetd.udev_probe", str(node)]))
                baseline.append(wall([python, "-c", "pass"]))
            cli.append(wall([python, "-c", "import headsetd.cli"]))
        print(summary("process", process))
        print(summary("baseline", baseline))
        print(summary("cli import", cli))
        in_process = []
        for node in nodes:
            best = float("inf")
            for _ in range(5):
                began = time.perf_counter()
                probe(node)
                best = min(best, time.perf_counter() - began)
            in_process.append(best)
        print(summary("in-process", in_process))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
