"""Guest-side pytest wiring (runs only inside the VM, HEADSETD_VM_GUEST=1).

Owns: writing one JSON line per test phase to $HEADSETD_VM_RUN/reports.jsonl, which the host's
tests/vm/test_vm.py turns back into host test results; the shared fixtures of the guest tests.

Never: runs on the host (tests/vm/conftest.py keeps this directory out of host collection).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

RUN = Path(os.environ.get("HEADSETD_VM_RUN", "/nonexistent"))


@pytest.hookimpl(trylast=True)
def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if not RUN.is_dir():
        return
    sections = "\n".join(f"--- {name} ---\n{text}" for name, text in report.sections if text)
    entry = {
        "nodeid": report.nodeid,
        "when": report.when,
        "outcome": report.outcome,
        "duration": report.duration,
        "longrepr": str(report.longrepr) if report.longrepr else "",
        "sections": sections[-20000:],
    }
    with open(RUN / "reports.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps(entry) + "\n")


# --------------------------------------------------------------------------------------------
# shared fixtures of the guest tests

import subprocess  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402

import gadget  # noqa: E402
import hidreport  # noqa: E402
import pyudev  # noqa: E402
import running  # noqa: E402


def measure(name: str, **values: object) -> None:
    """Record a figure (latency, timing) for the host to print and keep: measurements.jsonl."""
    if RUN.is_dir():
        with open(RUN / "measurements.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps({"name": name, **values}) + "\n")


def serial_for(fx: hidreport.Fixture) -> str:
    """A serial unique per fixture, stable across runs (so ids in failures can be compared)."""
    return f"VT{sum(fx.stem.encode()) % 10000:04d}{fx.product_id:04X}"


@dataclass
class UdevEvent:
    t: float
    action: str
    subsystem: str
    sys_name: str
    device_node: str | None
    properties: dict[str, str] = field(default_factory=dict)


class UdevRecorder:
    """Every device event of the hidraw, usb, sound and hid subsystems, in order, with the time
    it arrived here. Source "udev": as udevd passes them on once its rules have run (what
    pyudev and headsetd see); "kernel": the kernel's own uevents, before udevd handles them."""

    SUBSYSTEMS = ("hidraw", "usb", "sound", "hid")

    def __init__(self, source: str = "udev") -> None:
        self.events: list[UdevEvent] = []
        self._lock = threading.Lock()
        self._mon = pyudev.Monitor.from_netlink(pyudev.Context(), source=source)
        for sub in self.SUBSYSTEMS:
            self._mon.filter_by(sub)
        self._mon.start()
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop:
            d = self._mon.poll(timeout=0.2)
            if d is None or d.subsystem not in self.SUBSYSTEMS:
                continue
            ev = UdevEvent(
                time.time(),
                d.action or "",
                d.subsystem or "",
                d.sys_name,
                d.device_node,
                {
                    k: d.properties[k]
                    for k in ("ID_VENDOR_ID", "ID_MODEL_ID", "ID_SERIAL_SHORT", "DEVPATH")
                    if k in d.properties
                },
            )
            with self._lock:
                self.events.append(ev)

    def snapshot(self) -> list[UdevEvent]:
        with self._lock:
            return list(self.events)

    def arrival(self, action: str, devpath: str, since: float) -> float | None:
        """When the first `action` event of `devpath` (sysfs path without /sys) arrived here,
        at or after time.time() `since`."""
        return next(
            (
                e.t
                for e in self.snapshot()
                if e.action == action and e.properties.get("DEVPATH") == devpath and e.t >= since
            ),
            None,
        )

    def stop(self) -> None:
        self._stop = True
        self._thread.join(2)


@pytest.fixture(scope="session")
def udev_events() -> Iterator[UdevRecorder]:
    rec = UdevRecorder()
    yield rec
    rec.stop()


@pytest.fixture(scope="session", autouse=True)
def _no_leftover_gadgets() -> Iterator[None]:
    gadget.cleanup_all()
    yield
    gadget.cleanup_all()


@dataclass
class Plugged:
    """Every fixture plugged at once, one gadget (one USB bus) each."""

    gadgets: dict[str, gadget.Gadget]
    fixtures: dict[str, hidreport.Fixture]
    plug_s: float
    t_plug: float  # time.time() when the first UDC was bound


@pytest.fixture(scope="session")
def all_plugged(udev_events: UdevRecorder) -> Iterator[Plugged]:
    fixtures = {fx.stem: fx for fx in hidreport.all_fixtures()}
    gadgets = {
        stem: gadget.Gadget.from_fixture(fx, serial_for(fx), name=f"fx{i:02d}").create()
        for i, (stem, fx) in enumerate(fixtures.items())
    }
    t0 = time.monotonic()
    t_plug = time.time()
    gadget.plug_all(list(gadgets.values()), timeout=120)
    plug_s = time.monotonic() - t0
    measure("plug_all_fixtures_s", value=round(plug_s, 2), count=len(gadgets))
    yield Plugged(gadgets, fixtures, plug_s, t_plug)
    for g in gadgets.values():
        g.destroy()


@pytest.fixture(scope="session")
def list_at_start(all_plugged: Plugged) -> Iterator[tuple[subprocess.Popen[str], float]]:
    """`headsetd list --json` over every fixture, started just before the daemon so that the
    two start up side by side (each takes 15-30 s of Python start-up under TCG); both only
    read. Yields the process and its start (time.monotonic())."""
    proc = running.start_list()
    yield proc, time.monotonic()
    if proc.poll() is None:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="session")
def daemon(all_plugged: Plugged, list_at_start: object) -> Iterator[running.Daemon]:
    """One `headsetd run --no-audio` (as headsetd.service runs it) for the whole session,
    started with every fixture plugged (its initial scan is tested on them); later modules
    hot-plug their own devices into it."""
    t0 = time.monotonic()
    d = running.start_daemon()
    measure("headsetd_start_to_metrics_s", value=round(time.monotonic() - t0, 2))
    yield d
    d.stop()
    d.keep_log(RUN / "headsetd.jsonl")
