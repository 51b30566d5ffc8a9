"""Boot the VM test guest once and run the guest tests in it.

Owns: the QEMU command line (TCG by default: KVM on these machines is a PVM software hypervisor
that does not boot Debian's kernel, so it is not probed unless HEADSETD_VM_ACCEL=kvm), the run
directory the guest writes its results to, and reading those results back.

Never: changes anything on the host outside the run directory (the guest sees the host's / read
only); starts more than one guest per call; hides the guest's console (it is kept in the run
directory and its tail is shown on failure).

Command line, for working on guest tests (prepares first, cached):
    python3 tests/vm/vmboot.py [guest pytest args, e.g. tests/vm/guest/test_1_infra.py -k two]
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import vmimage

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
GUEST_DIR = HERE / "guest"
ENTRY = HERE / "guest_entry.sh"
# One dummy_hcd instance = one UDC = one USB bus with one port: this many virtual headsets can be
# plugged at once. More costs boot time (each is a platform device and a root hub).
UDCS = 28
DEFAULT_TIMEOUT_S = 900.0


@dataclass
class GuestResult:
    """What one boot produced."""

    run_dir: Path
    rc: int | None  # the guest script's exit code; None if the guest never reported one
    boot_wall_s: float
    reports: dict[str, dict[str, object]] = field(default_factory=dict)  # guest nodeid -> report
    timed_out: bool = False

    @property
    def console(self) -> str:
        p = self.run_dir / "console.log"
        return p.read_text(errors="replace") if p.exists() else ""

    def console_tail(self, lines: int = 60) -> str:
        return "\n".join(self.console.splitlines()[-lines:])


def qemu_command(
    image_vmlinux: Path, initramfs: Path, modules_root: Path, run_dir: Path
) -> list[str]:
    accel = os.environ.get("HEADSETD_VM_ACCEL", "tcg")
    cpu = os.environ.get("HEADSETD_VM_CPU", "max")
    accel_args = (
        ["-accel", "kvm", "-cpu", "host"]
        if accel == "kvm"
        else ["-accel", "tcg,thread=multi", "-cpu", cpu]
    )
    for p in (ENTRY, run_dir, modules_root):
        if " " in str(p):
            raise ValueError(f"path with a space cannot go on the kernel command line: {p}")
    cmdline = (
        "console=ttyS0 quiet loglevel=4 panic=-1 rdinit=/init random.trust_cpu=on "
        f"HVM_ENTRY={ENTRY} HVM_RUN={run_dir} HVM_MODULES={modules_root}"
    )
    return [
        "qemu-system-x86_64",
        *accel_args,
        "-bios",
        "/usr/share/qemu/qboot.rom",
        "-M",
        "q35",
        "-smp",
        "2",
        "-m",
        "3072",
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-serial",
        "stdio",
        "-monitor",
        "none",
        "-no-reboot",
        "-kernel",
        str(image_vmlinux),
        "-initrd",
        str(initramfs),
        "-append",
        cmdline,
        "-virtfs",
        "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap",
        "-virtfs",
        f"local,path={run_dir},mount_tag=run,security_model=none,multidevs=remap",
    ]


def run_guest(
    image: vmimage.Image,
    run_dir: Path,
    pytest_args: list[str],
    timeout_s: float = DEFAULT_TIMEOUT_S,
    echo: bool = False,
) -> GuestResult:
    """Boot once; inside, run `python -m pytest <pytest_args>` from the repo with this Python.

    With echo, the guest console is copied to stderr as it comes."""
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    env_lines = {
        "HVM_PYTHON": sys.executable,
        "HVM_REPO": str(REPO),
        "HVM_UDCS": str(UDCS),
        "HVM_CI": os.environ.get("CI", ""),
        "HVM_BIN": str(Path(sys.executable).parent),
    }
    (run_dir / "env.sh").write_text(
        "".join(f"export {k}={shlex.quote(v)}\n" for k, v in env_lines.items())
    )
    (run_dir / "pytest-args").write_text("".join(a + "\n" for a in pytest_args))
    cmd = qemu_command(image.vmlinux, image.initramfs, image.modules_root, run_dir)
    (run_dir / "qemu-command").write_text(shlex.join(cmd) + "\n")
    t0 = time.monotonic()
    timed_out = False
    with open(run_dir / "console.log", "wb") as console:
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        assert proc.stdout is not None
        os.set_blocking(proc.stdout.fileno(), False)
        deadline = t0 + timeout_s
        while True:
            chunk = proc.stdout.read()
            if chunk:
                console.write(chunk)
                console.flush()
                if echo:
                    sys.stderr.buffer.write(chunk)
                    sys.stderr.flush()
            if proc.poll() is not None:
                rest = proc.stdout.read()
                if rest:
                    console.write(rest)
                    if echo:
                        sys.stderr.buffer.write(rest)
                break
            if time.monotonic() > deadline:
                timed_out = True
                proc.kill()
                proc.wait()
                console.write(f"\n[vmboot] guest killed after {timeout_s:.0f}s\n".encode())
                break
            time.sleep(0.05)
    wall = time.monotonic() - t0
    rc_file = run_dir / "guest-rc"
    rc = (
        int(rc_file.read_text().strip())
        if rc_file.exists() and rc_file.read_text().strip()
        else None
    )
    return GuestResult(
        run_dir=run_dir, rc=rc, boot_wall_s=wall, reports=read_reports(run_dir), timed_out=timed_out
    )


def read_reports(run_dir: Path) -> dict[str, dict[str, object]]:
    """The guest's per-test reports (written by guest/conftest.py), by guest node id; a test's
    entry merges its setup/call/teardown phases: the worst outcome wins, outputs are joined."""
    out: dict[str, dict[str, object]] = {}
    p = run_dir / "reports.jsonl"
    if not p.exists():
        return out
    rank = {"passed": 0, "skipped": 1, "failed": 2}
    for line in p.read_text().splitlines():
        if not line.strip():
            continue
        r = json.loads(line)
        cur = out.setdefault(
            r["nodeid"], {"outcome": "passed", "longrepr": "", "sections": "", "duration": 0.0}
        )
        if rank.get(r["outcome"], 2) > rank.get(str(cur["outcome"]), 0):
            cur["outcome"] = r["outcome"]
            if r["when"] != "call" and r["outcome"] == "failed":
                cur["outcome"] = "error"
        if r.get("longrepr"):
            cur["longrepr"] = f"{cur['longrepr']}\n[{r['when']}] {r['longrepr']}".strip()
        if r.get("sections"):
            cur["sections"] = f"{cur['sections']}\n{r['sections']}".strip()
        cur["duration"] = float(cur["duration"]) + float(r.get("duration", 0.0))  # type: ignore[arg-type]
    return out


def main(argv: list[str]) -> int:
    img = vmimage.prepare(install=False, log=lambda s: print(f"[vmimage] {s}", flush=True))
    run_dir = vmimage.cache_root() / "runs" / "manual"
    args = argv or [str(GUEST_DIR.relative_to(REPO))]
    res = run_guest(img, run_dir, args, echo=True)
    print(f"[vmboot] guest rc={res.rc} wall={res.boot_wall_s:.1f}s run dir {run_dir}")
    return 0 if res.rc == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
