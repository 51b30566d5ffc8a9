"""Audio path sanity for the next issues: a virtual headset with a USB Audio Class 2 function,
seen by the guest's PulseAudio (system mode, module-udev-detect, as a desktop finds it), and a
tone the gadget plays into the headset's mic measured there at the level it was played.

Owns: checks of the tier's audio path only (patched dummy_hcd iso, f_uac2, snd-usb-audio, udev,
PulseAudio); no headsetd involved.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from pathlib import Path

import gadget
import hidreport
import pulsectl
import pytest
from conftest import RUN, measure, serial_for
from pulse import PULSE, Parec, PulseAudio, pactl

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
    server = PulseAudio(RUN / "pulseaudio.log" if RUN.is_dir() else Path("/tmp/pulseaudio.log"))
    try:
        try:
            server.wait_ready()
            source = server.wait_source(audio_headset)
        except gadget.GadgetError as e:
            pytest.fail(str(e))
        yield {"source": source["name"], "PULSE_SERVER": PULSE}
    finally:
        server.stop()


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


RATE_BYTES = Parec.RATE_BYTES  # bytes per second of S16LE mono


@pytest.mark.parametrize("level", [-20.0, None], ids=["tone-20dBFS", "silence"])
def test_mic_level_measured_in_pulseaudio(
    pulse: dict[str, str], audio_headset: gadget.Gadget, level: float | None
) -> None:
    """The gadget plays a 1 kHz sine of RMS -20 dBFS (or digital silence) into the mic; parec on
    the PulseAudio source measures 1.5 s of it within 1 dB (silence: nothing but zeros)."""
    pactl("set-source-volume", pulse["source"], "100%")
    pactl("set-source-mute", pulse["source"], "0")
    rec = Parec(pulse["source"], keep=True)
    player = None
    try:
        gadget.wait_for(lambda: len(rec.data) > RATE_BYTES // 4, 60, "parec to deliver audio")
        before, t_before = len(rec.data), time.monotonic()
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
        # the virtual bus's audio clock against the guest's: seconds of audio per second
        clock = (len(rec.data) - before) / RATE_BYTES / (time.monotonic() - t_before)
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
        audio_s_per_s=round(clock, 3),
    )
    print(f"played {level} dBFS: measured RMS {rms_db:.2f} dBFS, peak {peak_db:.2f} dBFS")
    if level is None:
        assert rms_db == -math.inf, f"silence measured at {rms_db:.1f} dBFS"
    else:
        assert abs(rms_db - level) <= 1.0, f"played {level} dBFS RMS, measured {rms_db:.2f}"
