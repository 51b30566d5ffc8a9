"""The audio side inside the real daemon (`headsetd run --replay`, a real PulseAudio): a source
that appears after its HID device is matched then; the server killed and restarted mid-call
leaves the HID counts alone and the audio comes back within seconds."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from headsetd.simaudio import Softphone, usb_props, wait_until
from tests.audio.servers import Server
from tests.conftest import REPO
from tests.test_daemon import free_port
from tests.test_edges import presses_recording, scrape
from tests.test_edges import samples as samples_of

DEVICE = "0b0e:0307@replay-0"


def samples(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The daemon's samples now; none while it is not listening yet."""
    try:
        return samples_of(scrape(port))
    except OSError:
        return {}


def wait(condition, what: str, timeout: float = 20.0):  # type: ignore[no-untyped-def]
    return wait_until(condition, what, timeout, interval=0.1)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    started = Server("pulseaudio", tmp_path / "pa").start()
    yield started
    started.stop()


def test_a_restarted_server_leaves_hid_counts_alone_and_audio_comes_back(
    server: Server, tmp_path: Path
) -> None:
    # Off-hook at once, then a Phone Mute press every 0.2 s.
    recording = presses_recording(tmp_path / "call.hid", 600, step=0.1)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "headsetd", "run", "--listen", f"127.0.0.1:{port}",
         "--log-format", "json", "--replay", str(recording)],
        env={**os.environ, "PULSE_SERVER": server.address},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=REPO,
    )  # fmt: skip
    presses = ("headsetd_device_mute_presses_total", (("device", DEVICE),))
    up = ("headsetd_audio_server_up", ())
    mic_muted = ("headsetd_mic_muted", (("device", DEVICE),))
    try:
        wait(lambda: samples(port).get(up) == 1.0, "the audio server connected")
        # The headset's source appears after its HID device: matched then.
        server.headset("headset", usb_props("pulseaudio", 0x0B0E, 0x0307))
        wait(lambda: mic_muted in samples(port), "the microphone matched to the HID device")
        phone = Softphone(server, "headset")
        in_use = ("headsetd_mic_in_use", (("device", DEVICE),))
        wait(lambda: samples(port).get(in_use) == 1.0, "the microphone in use")
        before = samples(port)[presses]

        server.kill()  # mid-call
        down = wait(lambda: (s := samples(port)).get(up) == 0.0 and s, "the server seen lost")
        assert mic_muted not in down  # unknown while there is no server: no sample
        wait(lambda: samples(port)[presses] > before + 5, "HID counting going on without audio")

        server.start()
        server.headset("headset", usb_props("pulseaudio", 0x0B0E, 0x0307))
        restarted = time.monotonic()
        wait(lambda: samples(port).get(up) == 1.0 and mic_muted in samples(port), "audio back")
        back_after = time.monotonic() - restarted
        assert back_after < 10
        got = samples(port)
        assert got[("headsetd_device_connects_total", (("device", DEVICE),))] == 1.0
        errors = ("headsetd_audio_errors_total", (("kind", "connection_lost"),))
        assert got[errors] >= 1
        phone.stop()
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err.decode()
