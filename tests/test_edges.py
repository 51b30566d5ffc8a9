"""Hard edges of the running daemon, each reproduced against the real process: a broken stdout,
a reload (good and bad), a stop while recordings load, and the desk technician's commands
(`status`, `check-config`)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from headsetd.hid.recording import RecordedReport, Recording
from tests.conftest import FIXTURES, REPO
from tests.test_daemon import Daemon, free_port

JABRA = FIXTURES / "jabra_evolve-link-ms_0b0e-0307.hid"
HOOK_ON, MUTE_DOWN, HOOK_OFF = bytes([2, 1, 0]), bytes([2, 5, 0]), bytes([2, 0, 0])


def presses_recording(path: Path, presses: int, step: float = 0.001) -> Path:
    """A call with `presses` Phone Mute presses, a report every `step` seconds."""
    fixture = Recording.load(JABRA)
    reports = [RecordedReport(0.0, HOOK_ON)]
    for n in range(presses):
        reports += [
            RecordedReport((2 * n + 1) * step, MUTE_DOWN),
            RecordedReport((2 * n + 2) * step, HOOK_ON),
        ]
    reports.append(RecordedReport((2 * presses + 1) * step + 3600, HOOK_OFF))  # then idle
    recording = Recording(
        fixture.descriptor, fixture.name, fixture.bus, fixture.vendor_id, fixture.product_id,
        reports=tuple(reports),
    )  # fmt: skip
    with path.open("w") as out:
        recording.dump(out)
    return path


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return str(response.read().decode())


def test_a_broken_stdout_loses_no_count(tmp_path: Path) -> None:
    """journald restarted or the pipe closed: every press is still counted, /metrics still
    answers, and the lost log lines are counted. (Before: 94 % of the counts were lost.)"""
    recording = presses_recording(tmp_path / "presses.hid", 2000)
    port = free_port()
    read, write = os.pipe()
    proc = subprocess.Popen(
        [sys.executable, "-m", "headsetd", "run", "--listen", f"127.0.0.1:{port}",
         "--log-format", "json", "--replay", str(recording)],
        stdout=write, stderr=subprocess.PIPE, cwd=REPO,
    )  # fmt: skip
    os.close(write)
    os.close(read)  # nobody reads the log any more: every line meets EPIPE
    try:
        deadline = time.monotonic() + 60
        key = ("headsetd_device_mute_presses_total", (("device", "0b0e:0307@replay-0"),))
        while True:
            try:
                got = samples(scrape(port))
            except OSError:
                got = {}
            if got.get(key) == 2000.0 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert got.get(key) == 2000.0
        assert got[("headsetd_log_errors_total", ())] >= 2000
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0


def test_sighup_reloads_labels_policy_and_level_keeping_counters(tmp_path: Path) -> None:
    config = tmp_path / "headsetd.toml"
    config.write_text('[workstation]\nname = "ws-1"\nlabels = { site = "ber1" }\n')
    recording = presses_recording(tmp_path / "presses.hid", 3, step=0.01)
    d = Daemon("--config", str(config), "--replay", str(recording), "--log-format", "json")
    try:
        d.wait_for("watching_started")
        key = ("headsetd_device_mute_presses_total", (("device", "0b0e:0307@replay-0"),))
        deadline = time.monotonic() + 20
        while samples(d.metrics()).get(key) != 3.0 and time.monotonic() < deadline:
            time.sleep(0.05)
        config.write_text(
            '[workstation]\nname = "ws-1"\nlabels = { site = "muc2", team = "t" }\n'
            '[policy]\napproved = ["0b0e:*"]\n[log]\nlevel = "debug"\n[web]\nlisten = ":1"\n'
        )
        d.proc.send_signal(signal.SIGHUP)
        (reloaded,) = d.wait_for("config_reloaded")
        assert set(reloaded["changed"]) == {"static_labels", "policy", "log_level"}  # type: ignore[arg-type]
        assert reloaded["restart_needed"] == []  # the command line's --listen still wins
        got = samples(d.metrics())
        info = (("site", "muc2"), ("team", "t"), ("workstation", "ws-1"))
        assert got[("headsetd_workstation_info", info)] == 1.0
        assert got[("headsetd_device_approved", (("device", "0b0e:0307@replay-0"),))] == 1.0
        assert got[key] == 3.0  # counters kept
        # A bad file is rejected and the running configuration kept.
        config.write_text("[workstation]\nname = 3\n")
        d.proc.send_signal(signal.SIGHUP)
        (failed,) = d.wait_for("config_reload_failed")
        assert "name" in str(failed["error"])
        assert samples(d.metrics())[("headsetd_workstation_info", info)] == 1.0
    finally:
        assert d.stop() == 0


def test_a_stop_while_recordings_load_exits_cleanly(tmp_path: Path) -> None:
    """SIGTERM and SIGINT are handled from the start: loading a big recording is cut short."""
    recording = presses_recording(tmp_path / "big.hid", 150_000)
    for signum in (signal.SIGTERM, signal.SIGINT):
        proc = subprocess.Popen(
            [sys.executable, "-m", "headsetd", "run", "--listen", "127.0.0.1:0",
             "--log-format", "json", "--replay", str(recording)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
        )  # fmt: skip
        assert proc.stdout is not None
        assert json.loads(proc.stdout.readline())["event"] == "replay_loading"
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert "Traceback" not in err
        assert "metrics_served" not in out  # it stopped before serving, while loading


def test_status_shows_what_the_running_daemon_sees(tmp_path: Path) -> None:
    recording = presses_recording(tmp_path / "call.hid", 1, step=0.01)
    usb = REPO / "tests" / "fixtures" / "usb" / "logitech_usb-headset-h340_046d-0a38.desc"
    d = Daemon("--replay", f"{recording}+{usb}", "--log-format", "json")
    try:
        d.wait_for("watching_started")
        url = f"http://127.0.0.1:{d.port}/status"
        result = subprocess.run(
            [sys.executable, "-m", "headsetd", "status", "--url", url, "--json"],
            capture_output=True, text=True, check=True, cwd=REPO,
        )  # fmt: skip
        (device,) = json.loads(result.stdout)["devices"]
        assert (device["device"], device["kind"], device["connected"]) == (
            "0b0e:0307@replay-0",
            "headset",
            True,
        )
        table = subprocess.run(
            [sys.executable, "-m", "headsetd", "status", "--url", url],
            capture_output=True, text=True, check=True, cwd=REPO,
        ).stdout  # fmt: skip
        assert "0b0e:0307@replay-0" in table
        assert "headset" in table
    finally:
        assert d.stop() == 0


def test_status_without_a_daemon_is_one_clear_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "headsetd", "status", "--url", f"http://127.0.0.1:{free_port()}/"],
        capture_output=True, text=True, check=False, cwd=REPO,
    )  # fmt: skip
    assert result.returncode == 2
    assert "is headsetd running?" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("text", "code", "out"),
    [
        ('[workstation]\nname = "ws-9"\n', 0, "OK"),
        ("[web]\nlisen = ':1'\n", 2, "unknown key(s): lisen"),
    ],
)
def test_check_config(tmp_path: Path, text: str, code: int, out: str) -> None:
    path = tmp_path / "headsetd.toml"
    path.write_text(text)
    result = subprocess.run(
        [sys.executable, "-m", "headsetd", "check-config", str(path)],
        capture_output=True, text=True, check=False, cwd=REPO,
    )  # fmt: skip
    assert result.returncode == code
    assert out in result.stdout + result.stderr


def test_metrics_are_text_format_even_when_openmetrics_is_asked_for(tmp_path: Path) -> None:
    """Prometheus asks for OpenMetrics first; headsetd answers in the text format, which costs
    half (bench/peer.py), as node_exporter does."""
    d = Daemon("--no-audio", "--log-format", "json")
    try:
        d.wait_for("watching_started")
        request = urllib.request.Request(
            f"http://127.0.0.1:{d.port}/metrics",
            headers={
                "Accept": "application/openmetrics-text;version=1.0.0,application/openmetrics-"
                "text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
            },
        )
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - loopback
            assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            assert b"# EOF" not in response.read()
    finally:
        assert d.stop() == 0
