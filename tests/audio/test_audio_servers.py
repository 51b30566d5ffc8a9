"""The audio side against REAL servers: PulseAudio 16 and PipeWire (pipewire-pulse), each
started here in a private runtime dir with sources carrying USB headset properties, fed with
tones and digital silence at known dBFS, and a stand-in softphone (parec, media.role=phone).

Checks: levels within 1 dB and their classes; mute, volume, default; in-use and the meter
stream (there only while the softphone records, named honestly); a call on another
microphone (mismatch); the server killed and restarted mid-call; a source that appears
before or after its device's target; what crosses the meter's callback (floats only).
Skipped locally without the Debian packages, failed under CI=true (tests/conftest.py).
"""

from __future__ import annotations

import inspect
import threading
import time
import typing
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pulsectl
import pytest

from headsetd.audio.collect import (
    AudioSnapshot,
    AudioStatus,
    AudioTally,
    render_audio,
    tally_audio,
)
from headsetd.audio.config import AudioConfig
from headsetd.audio.meter import MeterRequest, PulseMeter
from headsetd.audio.model import (
    METER_APPLICATION_ID,
    METER_APPLICATION_NAME,
    AudioDefaultChanged,
    AudioEvent,
    AudioFunctionsChanged,
    AudioServerConnected,
    AudioServerLost,
    AudioTarget,
    CallDeviceMismatchChanged,
    MicInUseChanged,
    MicLevelMeasured,
    MicMutedChanged,
    MicMutedInCallChanged,
    MicVolumeChanged,
    ServerEvent,
)
from headsetd.audio.watcher import AudioWatcher
from headsetd.clock import MonotonicClock
from tests.audio.servers import Server, Softphone, Tone, usb_props, wait_until

KINDS = ["pulseaudio", "pipewire"]


def target(n: int, off_hook: bool | None = None) -> AudioTarget:
    """Test headset n: 0b0e:2453, serial SN<n>, on USB port n (matched by its bus path)."""
    return AudioTarget(
        f"0b0e:2453:SN{n}",
        bus_path=f"pci-0000:00:14.0-usb-0:{n}",
        vendor_id=0x0B0E,
        product_id=0x2453,
        serial=f"SN{n}",
        off_hook=off_hook,
    )


def add_headset(server: Server, n: int) -> str:
    return server.headset(f"hs{n}", usb_props(server.kind, 0x0B0E, 0x2453, str(n), f"SN{n}"))


class Recorder:
    """The daemon's part, as the lead will wire it: events kept, tallied per device."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events: list[tuple[str | None, AudioEvent | ServerEvent, float]] = []
        self.tallies: dict[str, AudioTally] = {}

    def __call__(
        self, device_id: str | None, events: Sequence[AudioEvent | ServerEvent], now: float
    ) -> None:
        with self.lock:
            for event in events:
                self.events.append((device_id, event, now))
                if device_id is not None and not isinstance(
                    event, AudioServerConnected | AudioServerLost
                ):
                    tally = self.tallies.get(device_id, AudioTally())
                    self.tallies[device_id] = tally_audio(tally, event, now)

    def of(self, kind: type, device_id: str | None = None) -> list[typing.Any]:
        with self.lock:
            return [
                e
                for d, e, _ in self.events
                if isinstance(e, kind) and (device_id is None or d == device_id)
            ]

    def count(self) -> int:
        with self.lock:
            return len(self.events)

    def levels_after(self, start: int, device_id: str) -> list[MicLevelMeasured]:
        with self.lock:
            return [
                e
                for d, e, _ in self.events[start:]
                if d == device_id and isinstance(e, MicLevelMeasured)
            ]


def settled_levels(
    rec: Recorder, device_id: str, expect: float, count: int = 5, timeout: float = 15.0
) -> list[MicLevelMeasured]:
    """The first `count` consecutive peaks within 1 dB of `expect` (the tone has changed by
    then: pacat's buffer and the server's latency sit between the write and the meter)."""
    start = rec.count()

    def found() -> list[MicLevelMeasured] | None:
        levels = rec.levels_after(start, device_id)
        for i in range(len(levels) - count + 1):
            window = levels[i : i + count]
            if all(abs(e.peak_dbfs - expect) <= 1.0 for e in window):
                return window
        return None

    try:
        result = wait_until(found, f"{count} peaks at {expect} dBFS", timeout)
    except RuntimeError as exc:
        with rec.lock:
            recent = [
                (d, e) for d, e, _ in rec.events[start:] if not isinstance(e, MicLevelMeasured)
            ]
        levels = [round(e.peak_dbfs, 1) for e in rec.levels_after(start, device_id)]
        pytest.fail(f"{exc}; levels since: {levels[-30:]}; other events since: {recent}")
    assert isinstance(result, list)
    return result


def meter_streams(server: Server) -> list[typing.Any]:
    """The source outputs headsetd's meter has open (seen from a connection of the test's)."""
    with pulsectl.Pulse("headsetd-test", server=server.address) as pulse:
        return [
            o
            for o in pulse.source_output_list()
            if o.proplist.get("application.id") == METER_APPLICATION_ID
        ]


def source_index(server: Server, name: str) -> int:
    with pulsectl.Pulse("headsetd-test", server=server.address) as pulse:
        return int(next(s.index for s in pulse.source_list() if s.name == name))


@pytest.fixture(scope="module", params=KINDS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    srv = Server(request.param, tmp_path_factory.mktemp(request.param)).start()
    yield srv
    srv.stop()


@pytest.fixture
def watch(server: Server) -> Iterator[Callable[..., tuple[AudioWatcher, Recorder]]]:
    watchers: list[AudioWatcher] = []

    def start(
        *targets: AudioTarget, config: AudioConfig | None = None
    ) -> tuple[AudioWatcher, Recorder]:
        rec = Recorder()
        watcher = AudioWatcher(config or AudioConfig(), MonotonicClock(), rec, server.address)
        watcher.set_targets(list(targets))
        watcher.start()
        watchers.append(watcher)
        wait_until(lambda: watcher.status().server_up, "connected", 10)
        return watcher, rec

    yield start
    for watcher in watchers:
        watcher.stop()


def test_levels_classes_and_the_meter_stream(server: Server, watch: typing.Any) -> None:
    sink = add_headset(server, 1)
    hs = target(1, off_hook=True)
    _watcher, rec = watch(hs)
    wait_until(lambda: rec.of(AudioFunctionsChanged, hs.device_id), "the headset matched", 10)
    assert rec.of(AudioFunctionsChanged, hs.device_id)[0].mic == "hs1"
    # A one-sided tone on a stereo mic: the meter reads its true peak, not 6 dB less.
    tone = Tone(server, sink, -10.0, left_only=True)
    try:
        assert meter_streams(server) == []  # nobody records: no meter
        phone = Softphone(server, "hs1")
        try:
            wait_until(lambda: rec.of(MicInUseChanged, hs.device_id), "in use", 10)
            # PipeWire lists a new stream with no source (4294967295) until it is linked.
            hs1 = source_index(server, "hs1")
            streams = wait_until(
                lambda: [s for s in meter_streams(server) if s.source == hs1], "the meter", 10
            )
            assert isinstance(streams, list)
            assert len(streams) == len(meter_streams(server)) == 1
            assert streams[0].proplist.get("application.name") == METER_APPLICATION_NAME
            for level, klass in (
                (-10.0, "speech"),
                (-35.0, "low"),
                (-50.0, "quiet"),
                (None, "silent"),
            ):
                tone.level = level
                window = settled_levels(rec, hs.device_id, -120.0 if level is None else level)
                assert {e.level for e in window} == {klass}
            tone.left_only = False
            tone.level = -20.0
            settled_levels(rec, hs.device_id, -20.0)
        finally:
            phone.stop()
        wait_until(lambda: len(rec.of(MicInUseChanged, hs.device_id)) == 2, "not in use", 10)
        wait_until(lambda: not meter_streams(server), "the meter stream closed", 10)
    finally:
        tone.stop()
    in_use = rec.of(MicInUseChanged, hs.device_id)
    assert [e.in_use for e in in_use] == [True, False]
    assert [p.name for p in in_use[0].programs] == ["Softphone"]
    assert [p.role for p in in_use[0].programs] == ["phone"]
    # What a scrape would show: every class counted, peaks in the histogram.
    with rec.lock:
        tally = rec.tallies[hs.device_id]
    assert {k for k, v in tally.level_seconds.items() if v > 0} == {
        "speech",
        "low",
        "quiet",
        "silent",
    }
    assert tally.in_use_seconds > 0
    snapshot = AudioSnapshot(0.0, AudioStatus(True), ((hs.device_id, tally),))
    families = {m.name: m for m in render_audio(snapshot)}
    peaks = families["headsetd_mic_peak_dbfs"].samples
    assert any(s.labels["le"] == "+Inf" and s.value > 20 for s in peaks)


def test_mute_volume_default_and_a_call_on_another_mic(server: Server, watch: typing.Any) -> None:
    add_headset(server, 2)
    server.headset("laptop", {"device.bus": "pci", "device.bus_path": "pci-0000:00:1f.3"})
    hs = target(2, off_hook=True)
    watcher, rec = watch(hs)
    wait_until(lambda: rec.of(MicVolumeChanged, hs.device_id), "the headset matched", 10)
    phone = Softphone(server, "laptop")
    try:

        def mismatch() -> typing.Any:
            return rec.of(CallDeviceMismatchChanged, hs.device_id)[-1]

        wait_until(lambda: mismatch().mismatch, "the mismatch", 10)
        assert [p.name for p in mismatch().programs] == ["Softphone"]
        assert rec.of(MicInUseChanged, hs.device_id) == []  # the laptop mic is not the headset
        assert meter_streams(server) == []
        # Hung up: no call, no mismatch.
        watcher.set_targets([target(2, off_hook=False)])
        wait_until(lambda: mismatch().mismatch is False, "mismatch cleared", 10)
    finally:
        phone.stop()
    watcher.set_targets([hs])
    server.run("set-source-mute", "hs2", "1")
    wait_until(lambda: MicMutedChanged(True) in rec.of(MicMutedChanged, hs.device_id), "muted", 10)
    wait_until(lambda: rec.of(MicMutedInCallChanged, hs.device_id), "muted in call", 10)
    assert rec.of(MicMutedInCallChanged, hs.device_id) == [MicMutedInCallChanged(True)]
    server.run("set-source-mute", "hs2", "0")
    server.run("set-source-volume", "hs2", "50%")
    volume = wait_until(
        lambda: [e for e in rec.of(MicVolumeChanged, hs.device_id) if e.ratio == 0.5], "50 %", 10
    )
    assert isinstance(volume, list)
    assert volume[0].db == pytest.approx(-18.06, abs=0.01)
    server.run("set-default-source", "laptop")

    def default() -> bool:
        return bool(rec.of(AudioDefaultChanged, hs.device_id)[-1].mic_default)

    wait_until(lambda: not default(), "another default source", 10)
    server.run("set-default-source", "hs2")
    wait_until(default, "the headset the default source", 10)


def test_a_source_before_or_after_its_device(server: Server, watch: typing.Any) -> None:
    add_headset(server, 3)
    watcher, rec = watch()
    early, late = target(3), target(4)
    watcher.set_targets([early])  # the source was there first
    wait_until(lambda: rec.of(AudioFunctionsChanged, early.device_id), "hs3 matched", 10)
    watcher.set_targets([early, late])  # the device first, its source later
    add_headset(server, 4)
    wait_until(lambda: rec.of(AudioFunctionsChanged, late.device_id), "hs4 matched", 10)
    assert rec.of(AudioFunctionsChanged, late.device_id)[0].mic == "hs4"
    modules = server.run("list", "short", "modules").stdout.splitlines()
    remap = next(line.split()[0] for line in modules if "source_name=hs4" in line)
    server.run("unload-module", remap)
    wait_until(
        lambda: rec.of(AudioFunctionsChanged, late.device_id)[-1].mic is None, "hs4 gone", 10
    )


def test_the_meter_passes_floats_and_nothing_else(server: Server) -> None:
    """What crosses the meter's public callback for a known tone: one float per 100 ms window,
    its peak in dBFS, max over channels (the other channel is silent)."""
    hints = typing.get_type_hints(MeterRequest)
    assert hints["on_level"] == Callable[[float], None]  # a float crosses, and only a float
    assert list(inspect.signature(PulseMeter.set_streams).parameters) == ["self", "wanted"]
    sink = server.headset("floats", usb_props(server.kind, 0x0B0E, 0x2453, "9", "F"))
    crossed: list[object] = []
    errors: list[str] = []
    meter = PulseMeter(MonotonicClock(), errors.append, server.address)
    tone = Tone(server, sink, -20.0, left_only=True)
    phone = Softphone(server, "floats")
    meter.start()
    try:
        request = MeterRequest("floats", ("front-left", "front-right"), crossed.append)
        meter.set_streams({"k": request})
        wait_until(
            lambda: sum(1 for x in crossed if abs(typing.cast(float, x) + 20) < 0.1) >= 10,
            "ten -20 dBFS windows",
            15,
        )
    finally:
        meter.stop(1.0)
        phone.stop()
        tone.stop()
    assert errors == []
    assert all(type(x) is float for x in crossed)
    assert all(-120.0 <= typing.cast(float, x) <= 0.0 for x in crossed)


def test_server_killed_and_restarted_mid_call(server: Server, tmp_path: Path) -> None:
    """Its own server (the module's stays up): killed with SIGKILL mid-call, started again, the
    headset's source and the softphone back: audio is back within seconds."""
    own = Server(server.kind, tmp_path).start()
    rec = Recorder()
    hs, other = target(5, off_hook=True), target(6, off_hook=False)
    watcher = AudioWatcher(AudioConfig(), MonotonicClock(), rec, own.address)
    watcher.set_targets([hs, other])
    watcher.start()
    try:
        sink = own.headset("hs5", usb_props(own.kind, 0x0B0E, 0x2453, "5", "SN5"))
        tone, phone = Tone(own, sink, -20.0), Softphone(own, "hs5")
        settled_levels(rec, hs.device_id, -20.0)
        own.kill()
        phone.stop()
        tone.stop()
        wait_until(lambda: rec.of(AudioServerLost), "the loss", 10)
        assert not watcher.status().server_up
        wait_until(
            lambda: MicInUseChanged(False) in rec.of(MicInUseChanged, hs.device_id),
            "the call's end told",
            10,
        )
        restarted = time.monotonic()
        own.start()
        sink = own.headset("hs5", usb_props(own.kind, 0x0B0E, 0x2453, "5", "SN5"))
        tone, phone = Tone(own, sink, -20.0), Softphone(own, "hs5")
        try:
            wait_until(lambda: len(rec.of(AudioServerConnected)) == 2, "reconnected", 15)
            try:
                settled_levels(rec, hs.device_id, -20.0, timeout=20)
            except BaseException as exc:
                with rec.lock:
                    mine = [e for d, e, _ in rec.events if d == hs.device_id][-8:]
                raise AssertionError(
                    f"{exc}\nsoftphone alive: {phone.alive()}; last events: {mine}\n"
                    f"{own.describe()}"
                ) from exc
            back = time.monotonic() - restarted
        finally:
            phone.stop()
            tone.stop()
        print(f"{own.kind}: audio back {back:.1f} s after the restart began")
        assert back < 15
        assert watcher.status().server_up
        assert watcher.status().errors == {"connection_lost": 1}
        # The other device only ever saw its mismatch state: nothing leaked across.
        assert {type(e) for e in rec.of(object, other.device_id)} <= {CallDeviceMismatchChanged}
    finally:
        watcher.stop()
        own.stop()


def test_no_server_at_all(tmp_path: Path, log_capture: typing.Any) -> None:
    """libpulse finds no server at the address: retried with backoff, nothing counted as an
    error (server_up 0 says it), no device event, stop() at once."""
    rec = Recorder()
    watcher = AudioWatcher(AudioConfig(), MonotonicClock(), rec, f"unix:{tmp_path}/none")
    watcher.set_targets([target(7, off_hook=True)])
    watcher.start()
    try:
        wait_until(
            lambda: [e for e in log_capture.entries if e["event"] == "audio_server_unreachable"],
            "a failed connection attempt",
            10,
        )
        assert not watcher.status().server_up
        assert watcher.status().errors == {}
        assert rec.count() == 0
    finally:
        start = time.monotonic()
        watcher.stop()
        assert time.monotonic() - start < 0.1
