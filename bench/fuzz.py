"""Long fuzz campaign: coverage-guided (atheris, libFuzzer) over every surface the CI smoke
(tests/test_fuzz.py) covers, with the same checks.

What it runs: one atheris target whose first input byte picks the surface: the descriptor
parser with the decoder and `inspect` behind it, the hid-recorder reader (with inspect and a
replay of its reports), or reports for one fixture's compiled decoder. The corpus starts from
every fixture and recording (each as a descriptor, as a recording, and its recorded reports).
Only headsetd's modules are instrumented. An input that raises anything but the documented
typed errors, or costs over 1 s of CPU (tests/test_fuzz.py's `within_limits`), is a crash: it
is saved under --crashes (one file per distinct exception and place) and the campaign goes on.

Printed at the end: inputs run, seconds, inputs/s, distinct crashes (and where they were saved).
Target: >= 1,000,000 inputs and no crash. Each crash found becomes a regression test beside
the code it breaks and a fix; `--reproduce FILE...` runs saved inputs once, tracebacks shown.

    .venv/bin/pip install -e '.[fuzz]'     # atheris, from PyPI
    .venv/bin/python bench/fuzz.py [--runs 1000000] [--seed N] [--crashes DIR] [--corpus DIR]
    .venv/bin/python bench/fuzz.py --reproduce CRASH_FILE...
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
import traceback
from importlib.metadata import version
from pathlib import Path

import atheris

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

with atheris.instrument_imports(include=["headsetd"]):
    from headsetd.hid.decoder import TelephonyDecoder
    from headsetd.hid.descriptor import parse_report_descriptor
    from headsetd.hid.recording import Recording
    from headsetd.inspect import describe  # noqa: F401 - instrumented here, used by the checks

from tests.test_fuzz import (  # noqa: E402 - after instrumenting headsetd's modules
    SEED_FILES,
    check_descriptor,
    check_recording,
    check_reports,
    seed_descriptors,
    within_limits,
)

DESCRIPTOR, RECORDING, REPORTS = 0, 1, 2  # first input byte, modulo 3 (REPORTS: + decoder index)


class Campaign:
    def __init__(self, crashes: Path, runs: int) -> None:
        self.decoders = [TelephonyDecoder(parse_report_descriptor(d)) for d in seed_descriptors()]
        self.crashes = crashes
        self.seen: dict[str, int] = {}
        self.runs = 0
        self.limit = runs
        self.start = time.monotonic()

    def one_input(self, data: bytes) -> None:
        self.runs += 1
        try:
            self._check(data)
        finally:
            # libFuzzer exits without running atexit: the summary comes from here (and as progress)
            if self.runs == self.limit or self.runs % 100_000 == 0:
                self.summary()

    def _check(self, data: bytes) -> None:
        try:
            self.run_one(data)
        except Exception as exc:  # every other exception is a finding; keep going
            self.record(data, exc)

    def run_one(self, data: bytes) -> None:
        """The check the first byte picks; raises what the check raises."""
        if not data:
            return
        surface, body = data[0] % 3, data[1:]
        if surface == DESCRIPTOR:
            within_limits(check_descriptor, body)
        elif surface == RECORDING:
            within_limits(check_recording, body)
        elif body:
            decoder = self.decoders[body[0] % len(self.decoders)]
            within_limits(lambda d: check_reports(decoder, d), body[1:])

    def record(self, data: bytes, exc: Exception) -> None:
        frame = traceback.extract_tb(exc.__traceback__)[-1]
        key = f"{type(exc).__name__} at {Path(frame.filename).name}:{frame.lineno}"
        self.seen[key] = self.seen.get(key, 0) + 1
        if self.seen[key] == 1:
            name = f"crash-{len(self.seen):03d}"
            (self.crashes / name).write_bytes(data)
            print(f"\nCRASH {name}: {key}: {exc!s:.200}", file=sys.stderr, flush=True)

    def summary(self) -> None:
        seconds = time.monotonic() - self.start
        print(f"\ninputs {self.runs:,} in {seconds:.0f} s ({self.runs / seconds:,.0f}/s)")
        print(f"distinct crashes {len(self.seen)} (saved in {self.crashes})")
        for key, count in self.seen.items():
            print(f"  {count:8,d} x {key}")
        verdict = "met" if self.runs >= 1_000_000 and not self.seen else "NOT met"
        print(f"target >= 1,000,000 inputs and no crash: {verdict}")
        print(
            f"python {platform.python_version()}, atheris {version('atheris')}, "
            f"loadavg {os.getloadavg()[0]:.2f}",
            flush=True,
        )


def write_seeds(corpus: Path) -> int:
    """Every fixture and recording as a descriptor, a recording and (for the recordings) its
    reports for its own decoder."""
    descriptors = seed_descriptors()
    seeds = [bytes([DESCRIPTOR]) + d for d in descriptors]
    for path in SEED_FILES:
        recording = Recording.load(path)
        seeds.append(bytes([RECORDING]) + path.read_bytes())
        if recording.reports:
            index = descriptors.index(recording.descriptor)
            body = b"".join(bytes([len(r.data)]) + r.data for r in recording.reports)
            seeds.append(bytes([REPORTS, index]) + body)
    for i, seed in enumerate(seeds):
        (corpus / f"seed-{i:03d}").write_bytes(seed)
    return len(seeds)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--crashes", type=Path, help="default: a fresh temporary directory")
    parser.add_argument("--corpus", type=Path, help="default: a fresh temporary directory")
    parser.add_argument("--reproduce", type=Path, nargs="+", help="run saved inputs once")
    args = parser.parse_args()
    if args.reproduce:
        campaign = Campaign(Path(tempfile.gettempdir()), 0)
        for path in args.reproduce:
            print(f"{path}: ", end="", flush=True)
            campaign.run_one(path.read_bytes())
            print("passes")
        return 0
    crashes = args.crashes or Path(tempfile.mkdtemp(prefix="headsetd-fuzz-crashes-"))
    corpus = args.corpus or Path(tempfile.mkdtemp(prefix="headsetd-fuzz-corpus-"))
    for folder in (crashes, corpus):
        folder.mkdir(parents=True, exist_ok=True)
    print(f"corpus {corpus}: {write_seeds(corpus)} seeds; crashes to {crashes}", flush=True)
    campaign = Campaign(crashes, args.runs)
    libfuzzer = [
        sys.argv[0],
        f"-runs={args.runs}",
        f"-seed={args.seed}",
        "-max_len=8192",
        "-timeout=10",  # libFuzzer's own wall-clock backstop; the CPU limit is within_limits
        "-print_final_stats=1",
        str(corpus),
    ]
    atheris.Setup(libfuzzer, campaign.one_input)
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    sys.exit(main())
