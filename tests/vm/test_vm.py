"""Host side of the VM tier: one boot, every guest test's result as a host test.

Owns: preparing the guest image (cached, vmimage.py), booting it once per host session
(vmboot.py) with exactly the guest tests the host run selected, and turning each guest test's
outcome into the outcome of its host counterpart `test_guest[<guest node id>]`, with the guest's
output on failure. Also the tier's figures (prepare, boot, guest run, latencies), printed at the
end of the run and kept in <cache>/runs/last/summary.json.

Never: skips under CI=true (a missing prerequisite fails there; locally it skips with the
reason); boots more than once per session; runs guest tests on the host.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import time

import pytest
import vmboot
import vmimage
from conftest import record_summary

IN_CI = os.environ.get("CI") == "true"
GUEST_DIR = vmboot.GUEST_DIR
REPO = vmboot.REPO
COLLECT_ERROR = "guest-collection-error"


@functools.cache
def _guest_test_ids() -> list[str]:
    """The guest tests' node ids, collected on the host without booting (the guest tests import
    nothing the host lacks: they only act when run)."""
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--collect-only",
            "-q",
            "-p",
            "no:cacheprovider",
            str(GUEST_DIR),
        ],
        cwd=REPO,
        env={**os.environ, "HEADSETD_VM_GUEST": "1", "HEADSETD_VM_RUN": "/nonexistent"},
        capture_output=True,
        text=True,
        check=False,
    )
    ids = [
        line.strip() for line in r.stdout.splitlines() if "::" in line and not line.startswith(" ")
    ]
    if r.returncode != 0 or not ids:
        _COLLECT_OUTPUT.append(r.stdout[-4000:] + r.stderr[-4000:])
        return [COLLECT_ERROR]
    return ids


_COLLECT_OUTPUT: list[str] = []


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "guest_test" in metafunc.fixturenames:
        ids = _guest_test_ids()
        metafunc.parametrize(
            "guest_test", ids, ids=[i.removeprefix(f"{GUEST_DIR.relative_to(REPO)}/") for i in ids]
        )


def _missing(message: str) -> None:
    if IN_CI:
        pytest.fail(f"VM tier cannot run under CI: {message}", pytrace=False)
    pytest.skip(f"VM tier not runnable here: {message}")


@pytest.fixture(scope="session")
def guest_run(request: pytest.FixtureRequest) -> vmboot.GuestResult:
    t0 = time.monotonic()
    try:
        image = vmimage.prepare(install=IN_CI and os.geteuid() == 0)
    except vmimage.MissingPrerequisite as e:
        _missing(str(e))
    except vmimage.PrepareError as e:
        pytest.fail(f"preparing the VM image failed: {e}", pytrace=False)
    prepare_s = time.monotonic() - t0
    selected = [
        item.callspec.params["guest_test"]
        for item in request.session.items
        if hasattr(item, "callspec") and "guest_test" in item.callspec.params
    ]
    every = _guest_test_ids()
    args = [str(GUEST_DIR.relative_to(REPO))] if set(every) <= set(selected) else selected
    run_dir = vmimage.cache_root() / "runs" / "last"
    timeout = float(os.environ.get("HEADSETD_VM_TIMEOUT", vmboot.DEFAULT_TIMEOUT_S))
    result = vmboot.run_guest(
        image, run_dir, args, timeout_s=timeout, echo=os.environ.get("HEADSETD_VM_ECHO") == "1"
    )
    _summarise(request.config, image, prepare_s, result)
    return result


def _summarise(
    config: pytest.Config, image: vmimage.Image, prepare_s: float, result: vmboot.GuestResult
) -> None:
    console = result.console
    marks = {}
    for line in console.splitlines():
        # "[guest 12.19s] udevd up" and friends, for the boot-time breakdown
        if line.startswith("[guest ") and "s] " in line:
            t, _, what = line[7:].partition("s] ")
            for key in ("entry", "udevd up", "modules loaded", "pytest exit code"):
                if what.startswith(key):
                    marks[key] = float(t)
    measurements = []
    mpath = result.run_dir / "measurements.jsonl"
    if mpath.exists():
        measurements = [json.loads(x) for x in mpath.read_text().splitlines() if x.strip()]
    counts: dict[str, int] = {}
    for r in result.reports.values():
        counts[str(r["outcome"])] = counts.get(str(r["outcome"]), 0) + 1
    summary = {
        "kernel": f"{image.kernel_release} ({image.package_version})",
        "image": str(image.directory),
        "image_built_now": image.info.get("built_now"),
        "image_build_timings_s": image.info.get("timings"),
        "prepare_s": round(prepare_s, 1),
        "boot_to_entry_s": marks.get("entry"),
        "guest_setup_done_s": marks.get("modules loaded"),
        "guest_pytest_done_s": marks.get("pytest exit code"),
        "qemu_wall_s": round(result.boot_wall_s, 1),
        "guest_rc": result.rc,
        "guest_outcomes": counts,
        "measurements": measurements,
        "run_dir": str(result.run_dir),
    }
    (result.run_dir / "summary.json").write_text(json.dumps(summary, indent=1))
    lines = [
        f"kernel {summary['kernel']}, "
        f"image {'built now' if summary['image_built_now'] else 'cached'}: "
        f"prepare {summary['prepare_s']}s",
        f"guest: entry script at {marks.get('entry')}s, udevd+modules ready at "
        f"{marks.get('modules loaded')}s, pytest done at {marks.get('pytest exit code')}s; "
        f"qemu wall {summary['qemu_wall_s']}s; guest rc {result.rc}; outcomes {counts}",
    ]
    for m in measurements:
        lines.append("  " + ", ".join(f"{k}={v}" for k, v in m.items()))
    lines.append(f"figures kept in {result.run_dir / 'summary.json'}")
    record_summary(config, lines)


def test_guest(guest_run: vmboot.GuestResult, guest_test: str) -> None:
    """One guest test, run in the VM; its outcome and output, here."""
    if guest_test == COLLECT_ERROR:
        pytest.fail(
            "collecting the guest tests failed:\n" + "\n".join(_COLLECT_OUTPUT), pytrace=False
        )
    rep = guest_run.reports.get(guest_test)
    if rep is None:
        why = "the guest run timed out" if guest_run.timed_out else f"guest rc {guest_run.rc}"
        pytest.fail(
            f"{guest_test} did not run in the guest ({why}); console tail:\n"
            + guest_run.console_tail(),
            pytrace=False,
        )
    detail = f"{rep['longrepr']}\n{rep['sections']}".strip()
    if rep["outcome"] == "skipped":
        if IN_CI:
            pytest.fail(f"skipped in the guest under CI: {detail}", pytrace=False)
        pytest.skip(f"skipped in the guest: {detail[-500:]}")
    if rep["outcome"] != "passed":
        pytest.fail(f"{rep['outcome']} in the guest:\n{detail}", pytrace=False)
    # a passing guest test's output (figures) stays visible with -rP / -s
    if rep["sections"]:
        print(rep["sections"])


def test_guest_run_completed(guest_run: vmboot.GuestResult) -> None:
    """The guest ran to the end: no timeout, its pytest exited, every selected test reported."""
    assert not guest_run.timed_out, guest_run.console_tail()
    assert guest_run.rc is not None, (
        "the guest never reported an exit code:\n" + guest_run.console_tail()
    )
    assert guest_run.rc in (0, 1), (
        f"guest pytest exit code {guest_run.rc}:\n{guest_run.console_tail()}"
    )
