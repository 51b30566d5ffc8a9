"""Runs inside the systemd-nspawn container (tests/test_nspawn.py boots it), as a oneshot service
of the container's PID 1: installs headsetd's units with `install-units`, then drives the real
system unit through start, scrape, reload, watchdog and stop, and writes what it saw.

Usage (from the probe unit): python probe.py OUT_DIR PORT RECORDING...

Every check is a key in OUT_DIR/results.json, rewritten after each step, so a hang or a crash
still leaves what was seen before it; test_nspawn.py asserts on the keys. It waits only by
polling a condition with a deadline. Standard library only: it runs under the test's
interpreter, with no test dependencies imported.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

UNIT = "headsetd.service"
TEST_DROP_IN = Path("/etc/systemd/system/headsetd.service.d/60-test.conf")
GROUP_FILE = "group-readable"  # root:headsetd 0640, read by the service's ExecStartPre
WATCHDOG_SECONDS = 3
SHOW = (
    "ActiveState",
    "SubState",
    "Result",
    "MainPID",
    "NRestarts",
    "ExecMainStatus",
    "ExecMainCode",
    "ExecMainStartTimestampMonotonic",
    "ActiveEnterTimestampMonotonic",
)


class Probe:
    def __init__(self, out: Path, port: int, recordings: list[str]) -> None:
        self.out = out
        self.port = port
        self.recordings = recordings
        self.results: dict[str, Any] = {"probe_started_realtime": time.time()}
        self.save()

    def save(self) -> None:
        partial = self.out / "results.json.partial"
        partial.write_text(json.dumps(self.results, indent=2, sort_keys=True))
        partial.replace(self.out / "results.json")

    def record(self, key: str, value: Any) -> None:
        self.results[key] = value
        self.save()

    # --- tools -------------------------------------------------------------------------------

    @staticmethod
    def run(*args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)

    def show(self) -> dict[str, str]:
        out = self.run("systemctl", "show", UNIT, *(f"--property={p}" for p in SHOW)).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def scrape(self) -> str | None:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.port}/metrics", timeout=2
            ) as response:
                return str(response.read().decode())
        except OSError:
            return None

    @staticmethod
    def poll(condition: Callable[[], Any], seconds: float, every: float = 0.02) -> Any:
        """The condition's first truthy value within `seconds`, else None."""
        deadline = time.monotonic() + seconds
        while True:
            value = condition()
            if value or time.monotonic() > deadline:
                return value or None
            time.sleep(every)

    @staticmethod
    def total(metrics: str | None, name: str) -> float:
        """Sum of a metric's samples in an exposition (0 when absent)."""
        if metrics is None:
            return 0.0
        pattern = re.compile(rf"^{re.escape(name)}(?:{{[^}}]*}})? (\S+)$", re.MULTILINE)
        return sum(float(v) for v in pattern.findall(metrics))

    def counters(self, metrics: str | None) -> dict[str, float]:
        return {
            name: self.total(metrics, name)
            for name in ("headsetd_device_connects_total", "headsetd_device_hook_changes_total")
        }

    def journal(self, since_cursor: str | None = None) -> list[dict[str, Any]]:
        args = ["journalctl", f"--unit={UNIT}", "--output=json", "--no-pager"]
        if since_cursor:
            args.append(f"--after-cursor={since_cursor}")
        lines = self.run(*args).stdout.splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]

    def cursor(self) -> str:
        entries = self.run("journalctl", "--output=json", "--lines=1", "--no-pager").stdout
        return str(json.loads(entries.splitlines()[-1])["__CURSOR"]) if entries else ""

    @staticmethod
    def messages(entries: list[dict[str, Any]]) -> list[str]:
        return [str(e.get("MESSAGE", "")) for e in entries]

    def daemon_events(self, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        events = []
        for message in self.messages(entries):
            try:
                event = json.loads(message)
            except ValueError:
                continue
            if isinstance(event, dict) and "event" in event:
                events.append(event)
        return events

    def notifications(self, entries: list[dict[str, Any]]) -> list[str]:
        """What the service sent on NOTIFY_SOCKET, from PID 1's debug log."""
        found = []
        for message in self.messages(entries):
            match = re.search(r"Got notification message from PID \d+ \((.*)\)", message)
            if match:
                found.append(match.group(1))
        return found

    def write_drop_in(self, executable: str, watchdog: int) -> None:
        # The shipped unit with a replayed fleet on a test port; the sandbox is left alone.
        # ExecStartPre reads a root:headsetd 0640 file, under the same sandbox and groups.
        group_file = self.out / GROUP_FILE
        TEST_DROP_IN.parent.mkdir(parents=True, exist_ok=True)
        TEST_DROP_IN.write_text(
            "[Service]\n"
            f"ExecStartPre=/bin/sh -c 'head -c1 {group_file} >/dev/null 2>&1"
            " && echo group_read=ok || echo group_read=denied'\n"
            "ExecStart=\n"
            f"ExecStart={executable} run --listen 127.0.0.1:{self.port} --loop --speed 4"
            f" --replay {' '.join(self.recordings)}\n"
            f"WatchdogSec={watchdog}\n"
        )
        self.run("systemctl", "daemon-reload")

    # --- steps -------------------------------------------------------------------------------

    def install(self) -> str:
        result = self.run(sys.executable, "-m", "headsetd.install_units")
        self.record("install_rc", result.returncode)
        self.record("install_output", result.stdout + result.stderr)
        sysusers = self.run("systemd-sysusers")
        self.record("sysusers_rc", sysusers.returncode)
        group = self.run("getent", "group", "headsetd").stdout.strip()
        self.record("headsetd_group", group)
        group_file = self.out / GROUP_FILE
        group_file.write_text("x")
        os.chown(group_file, 0, int(group.split(":")[2]))
        group_file.chmod(0o640)
        # udev's own parser on the installed rule (no hidraw node here: the rule is only read).
        udev = self.run("udevadm", "test", "--action=add", "/sys/class/net/lo")
        self.record(
            "udev_rule_lines",
            [line for line in (udev.stdout + udev.stderr).splitlines() if "70-headsetd" in line],
        )
        unit = Path("/usr/local/lib/systemd/system/headsetd.service").read_text()
        match = re.search(r"^ExecStart=(\S+)", unit, re.MULTILINE)
        executable = match.group(1) if match else ""
        self.record("installed_executable", executable)
        return executable

    def start(self, prefix: str) -> dict[str, str]:
        """Start without blocking and watch the state: activating until READY=1, then active."""
        began = time.monotonic()
        self.run("systemctl", "start", "--no-block", UNIT)
        states: list[str] = []
        active_at: list[float] = []
        metrics_at_active: list[bool] = []

        def active() -> bool:
            state = self.show().get("ActiveState", "")
            if not states or states[-1] != state:
                states.append(state)
            if state == "active":
                active_at.append(time.monotonic() - began)
                metrics_at_active.append(self.scrape() is not None)
                return True
            return state == "failed"

        self.poll(active, 20)
        shown = self.show()
        self.record(f"{prefix}_states", states)
        self.record(f"{prefix}_start_seconds", active_at[0] if active_at else None)
        self.record(
            f"{prefix}_metrics_when_active", bool(metrics_at_active and metrics_at_active[0])
        )
        ready_us = int(shown.get("ActiveEnterTimestampMonotonic") or 0) - int(
            shown.get("ExecMainStartTimestampMonotonic") or 0
        )
        self.record(f"{prefix}_exec_to_ready_seconds", ready_us / 1e6)
        self.record(f"{prefix}_show_after_start", shown)
        return shown

    def sandbox(self, pid: str) -> None:
        status = Path(f"/proc/{pid}/status").read_text()
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        self.record(
            "sandbox",
            {
                k: fields.get(k, "").strip()
                for k in ("Uid", "Gid", "Groups", "CapEff", "CapBnd", "NoNewPrivs", "Seccomp")
            },
        )
        online = self.run("systemd-analyze", "security", UNIT, "--no-pager").stdout
        match = re.search(r"Overall exposure level for \S+: ([\d.]+)", online)
        self.record("online_exposure", float(match.group(1)) if match else None)

    def scrape_until_counting(self) -> dict[str, float]:
        metrics = self.poll(
            lambda: (
                (m := self.scrape())
                and self.total(m, "headsetd_device_hook_changes_total") > 0
                and m
            ),
            20,
            0.2,
        )
        self.record("scraped", metrics is not None)
        self.record("build_info", "headsetd_build_info{" in (metrics or ""))
        started = self.total(metrics, "process_start_time_seconds")
        self.record("process_started_seconds_ago", time.time() - started)
        self.record(
            "devices_connected_seen", int(self.total(metrics, "headsetd_device_connects_total"))
        )
        return self.counters(metrics)

    def reload(self, before_pid: str) -> None:
        before = self.counters(self.scrape())
        began = time.monotonic()
        result = self.run("systemctl", "reload", UNIT)
        back = self.poll(self.scrape, 5, 0.05)
        self.record("reload_rc", result.returncode)
        self.record("reload_seconds", time.monotonic() - began)
        shown = self.show()
        after = self.counters(back)
        self.record("reload_same_pid", shown.get("MainPID") == before_pid)
        self.record("reload_state", shown.get("ActiveState"))
        self.record("reload_counters", {"before": before, "after": after})
        self.record(
            "reload_counters_kept",
            back is not None and all(after[k] >= before[k] for k in before),
        )

    def stop(self, prefix: str) -> None:
        began = time.monotonic()
        result = self.run("systemctl", "stop", UNIT)
        self.record(f"{prefix}_stop_rc", result.returncode)
        self.record(f"{prefix}_stop_seconds", time.monotonic() - began)
        self.record(f"{prefix}_show_after_stop", self.show())

    def phase_a(self, executable: str) -> None:
        """No watchdog: start, READY, sandbox, scrape, clean stop."""
        self.write_drop_in(executable, 0)
        cursor = self.cursor()
        shown = self.start("a")
        if shown.get("ActiveState") == "active":
            self.sandbox(shown.get("MainPID", "0"))
            self.scrape_until_counting()
        self.stop("a")
        entries = self.journal(cursor)
        self.record("a_events", [e["event"] for e in self.daemon_events(entries)])
        self.record("a_notifications", self.notifications(entries))
        self.record("a_group_read", [m for m in self.messages(entries) if "group_read=" in m])
        self.record("a_journal_tail", self.messages(entries)[-40:])

    def phase_r(self) -> None:
        """Reload: SIGHUP, the same process and its counters afterwards."""
        cursor = self.cursor()
        shown = self.start("r")
        if shown.get("ActiveState") == "active":
            self.poll(
                lambda: self.counters(self.scrape())["headsetd_device_hook_changes_total"], 20
            )
            self.reload(shown.get("MainPID", "0"))
        self.stop("r")
        entries = self.journal(cursor)
        self.record("r_notifications", self.notifications(entries))
        self.record("r_journal_tail", self.messages(entries)[-40:])

    def phase_b(self, executable: str) -> None:
        """WatchdogSec=3: pings keep it alive; a stopped (hung) process is killed, restarted."""
        self.write_drop_in(executable, WATCHDOG_SECONDS)
        self.run("systemctl", "reset-failed", UNIT)
        cursor = self.cursor()
        shown = self.start("b")
        first_pid = shown.get("MainPID", "0")
        # Two pings seen, and no restart: the loop pings every WatchdogSec/2.
        pinged = self.poll(
            lambda: self.notifications(self.journal(cursor)).count("WATCHDOG=1") >= 2,
            2 * WATCHDOG_SECONDS + 1,
            0.25,
        )
        shown = self.show()
        self.record("b_pinged", bool(pinged))
        self.record("b_restarts_before_hang", int(shown.get("NRestarts") or 0))
        hung_pid = shown.get("MainPID", "0")
        began = time.monotonic()
        self.run("kill", "-STOP", hung_pid)

        def restarted() -> dict[str, str] | None:
            now = self.show()
            back = now.get("ActiveState") == "active" and now.get("MainPID") not in (hung_pid, "0")
            return now if back else None

        after = self.poll(restarted, WATCHDOG_SECONDS + 15, 0.05)
        self.record("b_watchdog_restart_seconds", time.monotonic() - began if after else None)
        self.record("b_show_after_restart", after or self.show())
        self.record("b_first_pid", first_pid)
        self.stop("b")
        entries = self.journal(cursor)
        self.record(
            "b_watchdog_messages",
            [m for m in self.messages(entries) if "atchdog" in m and "notification" not in m],
        )
        self.record("b_notifications", sorted(set(self.notifications(entries))))


def main() -> int:
    out, port, recordings = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
    probe = Probe(out, port, recordings)
    try:
        executable = probe.install()
        # PID 1 logs each sd_notify message at debug level: the evidence for READY, RELOADING,
        # WATCHDOG and STOPPING.
        probe.run("systemd-analyze", "log-level", "debug")
        probe.phase_a(executable)
        probe.phase_r()
        probe.phase_b(executable)
    except Exception as exc:  # recorded for the test to show, then the container powers off
        probe.record("probe_error", repr(exc))
    probe.record("probe_finished_realtime", time.time())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
