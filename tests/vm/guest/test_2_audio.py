"""Audio path sanity for the next issues: a virtual headset with a USB Audio Class 2 function,
seen by the guest's PulseAudio (system mode, module-udev-detect, as a desktop finds it), and a
tone the gadget plays into the headset's mic measured there at the level it was played.

Owns: checks of the tier's audio path only (patched dummy_hcd iso, f_uac2, snd-usb-audio, udev,
PulseAudio); no headsetd involved.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import gadget
import hidreport
import pulsectl
import pytest
from conftest import RUN, measure, serial_for

PULSE = "unix:/run/pulse/native"
JABRA = "jabra_biz-2400-ii_0b0e-2453"


@pytest.fixture(scope="module")
def audio_headset() -> Iterator[gadget.Gadget]:
    fx = hidreport.load_fixture(hidreport.FIXTURES_DIR / f"{JABRA}.hid")
    g = gadget.Gadget.from_fixture(
        fx, serial_for(fx) + "A", audio=gadget.Audio(), name="audio0"
    ).create()
    g.plug(timeout=60)
    yield g
    g.destroy()


@pytest.fixture(scope="module")
def pulse(audio_headset: gadget.Gadget) -> Iterator[dict[str, str]]:
    exe = shutil.which("pulseaudio")
    if exe is None:
        pytest.fail("pulseaudio is not installed on the host (Debian package pulseaudio)")
    for d in ("/run/pulse", "/var/lib/pulse"):
        os.makedirs(d, exist_ok=True)
        shutil.chown(d, "pulse", "pulse")
    log_path = RUN / "pulseaudio.log" if RUN.is_dir() else "/tmp/pulseaudio.log"
    log = open(log_path, "w")  # noqa: SIM115 - open as long as the daemon runs
    proc = subprocess.Popen(
        [
            exe,
            "--system",
            "--daemonize=no",
            "--disallow-exit",
            "--exit-idle-time=-1",
            "-n",
            "--load=module-udev-detect tsched=0",
            "--load=module-native-protocol-unix auth-anonymous=1",
            "--log-target=stderr",
            "--log-level=notice",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    env = {**os.environ, "PULSE_SERVER": PULSE}

    def source() -> str | None:
        r = subprocess.run(
            ["pactl", "list", "short", "sources"],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        return next((ln.split()[1] for ln in r.stdout.splitlines() if "alsa_input" in ln), None)

    try:
        try:
            name: str | None = gadget.wait_for(
                source, 90, "PulseAudio's source for the virtual headset", interval=0.5
            )
        except gadget.GadgetError as e:
            log.flush()
            cards = Path("/proc/asound/cards").read_text()
            short = subprocess.run(
                ["pactl", "list", "short"], env=env, capture_output=True, text=True, check=False
            )
            pytest.fail(
                f"{e}\n/proc/asound/cards:\n{cards}\npactl: {short.stdout}{short.stderr}\n"
                f"pulseaudio log:\n{Path(log_path).read_text()[-3000:]}"
            )
        assert name is not None
        yield {"source": name, "PULSE_SERVER": PULSE}
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def test_pulseaudio_sees_the_headset_source_with_usb_ids(
    pulse: dict[str, str], audio_headset: gadget.Gadget
) -> None:
    with pulsectl.Pulse("headsetd-vm-test", server=PULSE) as p:
        src = next(s for s in p.source_list() if s.name == pulse["source"])
        props = src.proplist
    print({k: v for k, v in props.items() if k.startswith("device.")})
    assert props.get("device.bus") == "usb"
    assert props.get("device.vendor.id") == "0b0e"
    assert props.get("device.product.id") == "2453"
    assert audio_headset.serial
    assert audio_headset.serial in props.get("device.serial", "")


class Parec:
    """parec on a source, its raw S16LE mono output collected by a thread as it comes."""

    def __init__(self, source: str) -> None:
        self.data = bytearray()
        self.proc = subprocess.Popen(
            [
                "parec",
                "-d",
                source,
                "--raw",
                "--format=s16le",
                "--rate=48000",
                "--channels=1",
                "--latency-msec=50",
            ],
            stdout=subprocess.PIPE,
            env={**os.environ, "PULSE_SERVER": PULSE},
        )
        self._t = threading.Thread(target=self._read, daemon=True)
        self._t.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while chunk := os.read(fd, 65536):
            self.data += chunk

    def first_nonzero(self, start: int = 0) -> int | None:
        """Byte offset of the first sample that is not digital silence, from `start`."""
        view = bytes(self.data[start:])
        stripped = view.lstrip(b"\0")
        return None if not stripped else start + (len(view) - len(stripped)) // 2 * 2

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        self._t.join(5)


RATE_BYTES = 48000 * 2  # bytes per second of S16LE mono


@pytest.mark.parametrize("level", [-20.0, None], ids=["tone-20dBFS", "silence"])
def test_mic_level_measured_in_pulseaudio(
    pulse: dict[str, str], audio_headset: gadget.Gadget, level: float | None
) -> None:
    """The gadget plays a 1 kHz sine of RMS -20 dBFS (or digital silence) into the mic; parec on
    the PulseAudio source measures 1.5 s of it within 1 dB (silence: nothing but zeros)."""
    env = {**os.environ, "PULSE_SERVER": PULSE}
    subprocess.run(["pactl", "set-source-volume", pulse["source"], "100%"], env=env, check=True)
    subprocess.run(["pactl", "set-source-mute", pulse["source"], "0"], env=env, check=True)
    rec = Parec(pulse["source"])
    player = None
    try:
        gadget.wait_for(lambda: len(rec.data) > RATE_BYTES // 4, 60, "parec to deliver audio")
        before = len(rec.data)
        player = audio_headset.play(level, seconds=12.0)
        if level is None:
            # aplay of zeros: measure what arrives once the player has been streaming a while
            gadget.wait_for(lambda: len(rec.data) > before + 3 * RATE_BYTES, 60, "3 s of capture")
            start = before + 2 * RATE_BYTES
        else:
            try:
                onset = gadget.wait_for(
                    lambda: rec.first_nonzero(before), 60, "the tone at the PulseAudio source"
                )
            except gadget.GadgetError as e:
                err = (
                    player.stderr.read().decode()
                    if player.poll() is not None and player.stderr
                    else ""
                )
                pytest.fail(f"{e}; aplay rc={player.poll()} {err}")
            assert onset is not None
            start = onset + RATE_BYTES // 4  # skip the stream's start-up
        gadget.wait_for(
            lambda: len(rec.data) >= start + RATE_BYTES * 3 // 2, 60, "1.5 s of the tone"
        )
        window = bytes(rec.data[start : start + RATE_BYTES * 3 // 2])
    finally:
        rec.stop()
        if player:
            player.terminate()
            player.wait(10)
    rms_db, peak_db = gadget.rms_dbfs_s16(window)
    measure(
        "pulseaudio_mic_level",
        played_dbfs=level,
        rms_dbfs=round(rms_db, 2),
        peak_dbfs=round(peak_db, 2),
        seconds=round(len(window) / RATE_BYTES, 2),
    )
    print(f"played {level} dBFS: measured RMS {rms_db:.2f} dBFS, peak {peak_db:.2f} dBFS")
    if level is None:
        assert rms_db == -math.inf, f"silence measured at {rms_db:.1f} dBFS"
    else:
        assert abs(rms_db - level) <= 1.0, f"played {level} dBFS RMS, measured {rms_db:.2f}"
