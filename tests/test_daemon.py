"""The daemon end to end: `headsetd run --replay` as a process, its JSON log lines and its live
/metrics (linted by Debian's promtool), replugs with --loop, and a clean SIGTERM exit."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest
from prometheus_client.parser import text_string_to_metric_families

from headsetd.clock import MonotonicClock
from headsetd.config import Config, Listen
from headsetd.daemon import Daemon as DaemonInProcess
from headsetd.discovery import ChangeSink, PartAdded
from headsetd.hid.recording import RecordedReport, Recording
from headsetd.hid.source import ReplaySource
from headsetd.identity import DeviceIdentity, HidInterface
from headsetd.loop import ReaderLoop
from tests.conftest import RECORDINGS, REPO, require_tool

CALL = RECORDINGS / "jabra_evolve-link-ms_0b0e-0307_call.hid"
TRUNCATED = RECORDINGS / "yealink_wh66_6993-b02b_truncated.hid"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Daemon:
    def __init__(self, *args: str) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "headsetd", "run", "--listen", f"127.0.0.1:{self.port}", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.lines: list[dict[str, object]] = []

    def wait_for(
        self, event: str, count: int = 1, timeout: float = 20.0
    ) -> list[dict[str, object]]:
        """Read JSON log lines until `count` lines with this event have been seen."""
        deadline = time.monotonic() + timeout
        stdout: IO[str] = self.proc.stdout  # type: ignore[assignment]
        while sum(1 for line in self.lines if line["event"] == event) < count:
            if time.monotonic() > deadline:
                pytest.fail(f"no {count} x {event} within {timeout}s; saw {self.lines}")
            line = stdout.readline()
            if not line:
                pytest.fail(f"daemon exited: {self.proc.wait()} {self.proc.stderr.read()}")  # type: ignore[union-attr]
            self.lines.append(json.loads(line))
        return [line for line in self.lines if line["event"] == event]

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as r:
            return str(r.read().decode())

    def stop(self) -> int:
        """SIGTERM; the exit status (stderr is shown if it is not 0)."""
        self.proc.send_signal(signal.SIGTERM)
        _out, err = self.proc.communicate(timeout=15)
        if self.proc.returncode != 0:
            print(err)
        return self.proc.returncode


@pytest.fixture
def daemon() -> Iterator[type[Daemon]]:
    started: list[Daemon] = []

    def start(*args: str) -> Daemon:
        d = Daemon(*args)
        started.append(d)
        return d

    yield start  # type: ignore[misc]
    for d in started:
        if d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait()


def test_replayed_call_reaches_the_log_and_metrics(daemon, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    d = daemon("--replay", str(CALL), str(TRUNCATED), "--speed", "20", "--log-format", "json")
    d.wait_for("metrics_served")
    d.wait_for("device_disconnected", count=2)
    events = [(line["event"], line.get("device")) for line in d.lines]
    assert ("mute_pressed", "0b0e:0307@replay-0") in events
    assert ("report_rejected", "6993:b02b@replay-1") in events
    for line in d.lines:
        assert "timestamp" in line
        assert "level" in line
    text = d.metrics()
    assert 'headsetd_device_connected{device="0b0e:0307@replay-0"} 0.0' in text
    assert 'headsetd_device_mute_presses_total{device="0b0e:0307@replay-0"} 2.0' in text
    assert (
        'headsetd_device_errors_total{device="6993:b02b@replay-1",kind="malformed_report"} 1.0'
        in text
    )
    promtool = require_tool("promtool")
    lint = subprocess.run(
        [promtool, "check", "metrics"], input=text, text=True, capture_output=True, check=False
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr
    assert d.stop() == 0


def test_loop_replugs_the_same_device_id(daemon) -> None:  # type: ignore[no-untyped-def]
    d = daemon("--replay", str(CALL), "--speed", "50", "--loop", "--log-format", "json")
    connected = d.wait_for("device_connected", count=3)
    assert {line["device"] for line in connected} == {"0b0e:0307@replay-0"}
    text = d.metrics()
    connects = next(
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith("headsetd_device_connects_total")
    )
    assert connects >= 3
    assert d.stop() == 0


def test_no_devices_still_serves_workstation_metrics(daemon, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    config = tmp_path / "headsetd.toml"
    config.write_text('[workstation]\nname = "ws-0042"\nlabels = { site = "ber1" }\n')
    d = daemon("--config", str(config), "--log-format", "json")
    d.wait_for("watching_started")
    text = d.metrics()
    assert 'headsetd_workstation_info{site="ber1",workstation="ws-0042"} 1.0' in text
    assert "headsetd_build_info{" in text
    assert d.stop() == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--listen", "127.0.0.1:notaport"], "not a number"),
        (["--replay", "/nonexistent.hid"], "/nonexistent.hid"),
        (["--config", "/nonexistent.toml"], "/nonexistent.toml"),
    ],
)
def test_bad_input_is_one_clear_line_and_exit_2(args: list[str], message: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "headsetd", "run", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_port_in_use_is_a_clear_error() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "headsetd", "run", "--listen", f"127.0.0.1:{port}"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    assert result.returncode == 2
    assert "cannot listen" in result.stderr


class TwiceDiscovery:
    """Reports each part twice (the monitor and the start-up scan both seeing a node), and two
    devices on two ports that claim the same serial."""

    def __init__(self, parts: list[PartAdded]) -> None:
        self.parts = parts
        self.opened: list[str] = []

    def start(self, loop: ReaderLoop, changes: ChangeSink) -> None:
        for part in self.parts:
            changes(part)
            changes(part)

    def open(self, hid: HidInterface) -> ReplaySource:
        self.opened.append(hid.node)
        return ReplaySource([RecordedReport(0.0, b"\x02\x01\x00")], 1.0, lambda: None)

    def stop(self) -> None:
        pass


def test_a_part_reported_twice_is_read_once_and_shared_serials_stay_two_devices() -> None:
    recording = Recording.load(CALL)
    parts = [
        PartAdded(
            DeviceIdentity(
                f"/sys/devices/usb1/1-{n}", 0x0B0E, 0x0307, serial="SAME", port=f"1-{n}"
            ),
            HidInterface(f"/dev/hidraw{n}", recording.descriptor),
        )
        for n in (1, 2)
    ]
    discovery = TwiceDiscovery(parts)
    daemon_ = DaemonInProcess(
        Config(workstation="t", listen=Listen("127.0.0.1", 0)), discovery, MonotonicClock()
    )
    thread = threading.Thread(target=daemon_.run)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while len(discovery.opened) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert discovery.opened == ["/dev/hidraw1", "/dev/hidraw2"]
        ids = {r.device_id for r in daemon_.fleet.snapshot(0.0).devices}
        assert ids == {"0b0e:0307:SAME", "0b0e:0307:SAME~1-2"}
    finally:
        daemon_.stop()
        thread.join(5)
    assert not thread.is_alive()


USB_FIXTURES = REPO / "tests" / "fixtures" / "usb"


def test_replayed_usb_descriptors_give_devices_their_kind(daemon, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Headphones with no HID at all, and a recording joined to a headset's USB descriptors;
    judged by an approved list."""
    headphones = USB_FIXTURES / "edifier_hal0-2.0-se-qr30-speakers_2d99-a101.desc"
    headset = USB_FIXTURES / "plantronics_usb-headset_047f-c001.desc"
    recording = RECORDINGS / "plantronics_blackwire-3220_047f-c056_telephony_call.hid"
    config = tmp_path / "headsetd.toml"
    config.write_text('[policy]\napproved = ["047f:*"]\n')
    d = daemon(
        "--config",
        str(config),
        "--replay",
        str(headphones),
        f"{recording}+{headset}",
        "--speed",
        "10",
        "--log-format",
        "json",
    )
    d.wait_for("device_connected", count=2)
    families = {f.name: f for f in text_string_to_metric_families(d.metrics())}
    info = {s.labels["device"]: s.labels for s in families["headsetd_device_info"].samples}
    assert info["2d99:a101@replay-0"]["kind"] == "headphones"
    assert info["2d99:a101@replay-0"]["call_control"] == "false"
    assert info["047f:c056@replay-1"]["kind"] == "headset"
    assert info["047f:c056@replay-1"]["has_microphone"] == "true"
    approved = {s.labels["device"]: s.value for s in families["headsetd_device_approved"].samples}
    assert approved == {"2d99:a101@replay-0": 0.0, "047f:c056@replay-1": 1.0}
    kinds = {s.labels["kind"]: s.value for s in families["headsetd_workstation_devices"].samples}
    assert kinds == {
        "headset": 1.0,
        "headphones": 1.0,
        "speakerphone": 0.0,
        "microphone": 0.0,
        "webcam": 0.0,
        "other": 0.0,
    }
    assert d.stop() == 0


KRAKEN = REPO / "tests" / "fixtures" / "hid" / "razer_kraken-kitty-v2_1532-0560.hid"


def test_run_and_replay_agree_on_a_device_they_ignore_and_say_why(daemon) -> None:  # type: ignore[no-untyped-def]
    """The Kraken Kitty's Telephony collection is empty: neither `run --replay` nor `replay`
    watches it, both say so with the same reason, and watching_started counts only the device
    that is watched."""
    d = daemon("--no-audio", "--replay", str(CALL), str(KRAKEN), "--log-format", "json")
    (started,) = d.wait_for("watching_started")
    assert started["devices"] == 1
    ignored = [line for line in d.lines if line["event"] == "device_ignored"]
    assert [line["device"] for line in ignored] == ["1532:0560@replay-1"]
    replayed = subprocess.run(
        [sys.executable, "-m", "headsetd", "replay", str(KRAKEN), "--json"],
        capture_output=True, text=True, check=True, cwd=REPO,
    )  # fmt: skip
    assert replayed.stdout == ""  # no event: the device is not watched
    (said,) = [json.loads(line) for line in replayed.stderr.splitlines()]
    assert (said["event"], said["reason"]) == ("device_ignored", ignored[0]["reason"])
    assert d.stop() == 0
