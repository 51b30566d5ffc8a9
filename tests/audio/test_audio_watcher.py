"""AudioWatcher's thread over a fake audio server built from a real dump (the Plantronics
Blackwire 3225's complete `pacmd list-sources/list-sinks`) and a fake meter: what reaches the
sink, when the server is re-read, the meter asked for streams only while a program records,
the server lost and back, targets coming and going, and stop() within 100 ms.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace

import pytest

from headsetd.audio.config import AudioConfig
from headsetd.audio.loop import AudioServerError, Waker
from headsetd.audio.meter import MeterRequest
from headsetd.audio.model import (
    AudioEvent,
    AudioFunctionsChanged,
    AudioServerConnected,
    AudioServerLost,
    AudioTarget,
    CallDeviceMismatchChanged,
    MicInUseChanged,
    MicLevelMeasured,
    MicVolumeChanged,
    Program,
    ServerEvent,
    ServerState,
    SourceOutput,
)
from headsetd.audio.watcher import AudioWatcher
from headsetd.clock import ManualClock, MonotonicClock
from tests.audio.pactl_text import DUMPS, load

BLACKWIRE = next(p for p in DUMPS if "blackwire" in p.name)
SERIAL = "1129BBD004004FF4BD2E6F2248C0D73E"
MIC_NAME = f"alsa_input.usb-Plantronics_Plantronics_Blackwire_3225_Series_{SERIAL}-00.analog-stereo"
TARGET = AudioTarget(
    "047f:c058:1129BBD004004FF4BD2E6F2248C0D73E",
    sys_path="/devices/pci0000:00/0000:00:14.0/usb2/2-2/2-2.2",
    bus_path="pci-0000:00:14.0-usb-0:2.2",
    vendor_id=0x047F,
    product_id=0xC058,
    serial="1129BBD004004FF4BD2E6F2248C0D73E",
)
SOFTPHONE = SourceOutput(
    40, 5, client=12, program=Program("Softphone", "phone", "softphone")
)  # on source #5, the headset mic


CLOCK = ManualClock()  # moved by the tests that need it; the watcher's waits are poll()s


class World:
    """The fake server's state, shared by every connection made to it."""

    def __init__(self, state: ServerState) -> None:
        self.lock = threading.Lock()
        self.state = state
        self.up = True
        self.generation = 0  # bumped by each change; a connection reports ones it has not seen
        self.queries = 0
        self.attempts = 0
        self.servers: list[FakeServer] = []

    def change(self, **fields: object) -> None:
        with self.lock:
            self.state = replace(self.state, **fields)
            self.generation += 1
            servers = list(self.servers)
        for server in servers:
            server.waker.wake()

    def go_down(self) -> None:
        with self.lock:
            self.up = False
            servers = list(self.servers)
        for server in servers:
            server.waker.wake()

    def connect(self, waker: Waker) -> FakeServer:
        server = FakeServer(self, waker)
        with self.lock:
            self.servers.append(server)
        return server


class FakeServer:
    def __init__(self, world: World, waker: Waker) -> None:
        self.world, self.waker = world, waker
        self.seen = -1

    def connect(self) -> str:
        with self.world.lock:
            self.world.attempts += 1
            if not self.world.up:
                raise AudioServerError("connection refused")
        return "fake 1.0"

    def state(self) -> ServerState:
        with self.world.lock:
            if not self.world.up:
                raise AudioServerError("lost")
            self.world.queries += 1
            self.seen = self.world.generation
            return self.world.state

    def wait(self, timeout: float | None) -> bool:
        with self.world.lock:
            if not self.world.up:
                raise AudioServerError("the audio server closed the connection")
            if self.seen != self.world.generation:
                return True
        self.waker.wait(timeout)
        with self.world.lock:
            if not self.world.up:
                raise AudioServerError("the audio server closed the connection")
            return self.seen != self.world.generation

    def close(self) -> None:
        with self.world.lock:
            self.world.servers.remove(self)


class FakeMeter:
    def __init__(self, on_error: Callable[[str], None]) -> None:
        self.lock = threading.Lock()
        self.wanted: dict[str, MeterRequest] = {}
        self.started = self.stopped = False

    def start(self) -> None:
        self.started = True

    def set_streams(self, wanted: Mapping[str, MeterRequest]) -> None:
        with self.lock:
            self.wanted = dict(wanted)

    def stop(self, timeout: float) -> None:
        self.stopped = True


class Sink:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events: list[tuple[str | None, AudioEvent | ServerEvent]] = []

    def __call__(
        self, device_id: str | None, events: Sequence[AudioEvent | ServerEvent], now: float
    ) -> None:
        with self.lock:
            self.events.extend((device_id, e) for e in events)

    def of(self, kind: type) -> list[tuple[str | None, AudioEvent | ServerEvent]]:
        with self.lock:
            return [(d, e) for d, e in self.events if isinstance(e, kind)]


def wait_for(condition: Callable[[], object], what: str, timeout: float = 5.0) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.005)  # polling a condition with a deadline, not waiting blindly
    pytest.fail(f"timed out waiting for {what}")


@pytest.fixture
def rig() -> Iterator[tuple[AudioWatcher, World, FakeMeter, Sink]]:
    world = World(load(BLACKWIRE)[1])
    meters: list[FakeMeter] = []

    def make_meter(on_error: Callable[[str], None]) -> FakeMeter:
        meters.append(FakeMeter(on_error))
        return meters[-1]

    sink = Sink()
    watcher = AudioWatcher(
        AudioConfig(),
        CLOCK,
        sink,
        server_factory=world.connect,
        meter_factory=make_meter,
    )
    watcher.set_targets([TARGET])
    watcher.start()
    yield watcher, world, meters[0], sink
    watcher.stop()


def test_the_headset_is_found_and_reported(
    rig: tuple[AudioWatcher, World, FakeMeter, Sink],
) -> None:
    watcher, _world, meter, sink = rig
    wait_for(lambda: sink.of(MicVolumeChanged), "the mic's volume")
    assert sink.of(AudioServerConnected) == [(None, AudioServerConnected("fake 1.0"))]
    assert sink.of(AudioFunctionsChanged) == [
        (TARGET.device_id, AudioFunctionsChanged(MIC_NAME, MIC_NAME.replace("input", "output")))
    ]
    volume = sink.of(MicVolumeChanged)[0][1]
    assert isinstance(volume, MicVolumeChanged)
    assert volume.db == pytest.approx(-3.0, abs=0.01)
    assert volume.base_db == pytest.approx(-5.0, abs=0.01)
    assert watcher.status().server_up
    assert meter.started
    assert meter.wanted == {}


def test_hook_changes_need_no_query(rig: tuple[AudioWatcher, World, FakeMeter, Sink]) -> None:
    watcher, world, _meter, sink = rig
    wait_for(lambda: sink.of(MicVolumeChanged), "the mic")
    queries = world.queries
    watcher.set_targets([replace(TARGET, off_hook=True)])
    wait_for(lambda: sink.of(CallDeviceMismatchChanged), "mismatch known")
    assert sink.of(CallDeviceMismatchChanged)[0][1] == CallDeviceMismatchChanged(False)
    assert world.queries == queries


def test_a_call_is_metered_and_its_levels_reach_the_sink(
    rig: tuple[AudioWatcher, World, FakeMeter, Sink],
) -> None:
    _watcher, world, meter, sink = rig
    wait_for(lambda: sink.of(MicVolumeChanged), "the mic")
    world.change(source_outputs=(SOFTPHONE,))
    wait_for(lambda: meter.wanted, "a meter request")
    request = meter.wanted[TARGET.device_id]
    assert (request.source, request.channel_map) == (MIC_NAME, ("front-left", "front-right"))
    in_use = sink.of(MicInUseChanged)
    assert [e for _, e in in_use] == [MicInUseChanged(True, (SOFTPHONE.program,))]
    # Peaks are stepped in batches: the meter's callback wakes the audio thread once the
    # oldest queued peak is a second old.
    CLOCK.t = 100.0
    request.on_level(-23.5)
    CLOCK.t = 100.5
    request.on_level(-61.0)
    assert sink.of(MicLevelMeasured) == []
    CLOCK.t = 101.0
    request.on_level(-45.0)
    wait_for(lambda: len(sink.of(MicLevelMeasured)) == 3, "the levels")
    assert [e for _, e in sink.of(MicLevelMeasured)] == [
        MicLevelMeasured(-23.5, "speech", 0.1),
        MicLevelMeasured(-61.0, "silent", 0.5),
        MicLevelMeasured(-45.0, "quiet", 0.5),
    ]
    world.change(source_outputs=())
    wait_for(lambda: not meter.wanted, "the meter closed")
    assert [e for _, e in sink.of(MicInUseChanged)][-1] == MicInUseChanged(False)


def test_server_lost_and_back(rig: tuple[AudioWatcher, World, FakeMeter, Sink]) -> None:
    watcher, world, meter, sink = rig
    world.change(source_outputs=(SOFTPHONE,))
    wait_for(lambda: meter.wanted, "metering")
    world.go_down()
    wait_for(lambda: sink.of(AudioServerLost), "the loss")
    assert not watcher.status().server_up
    assert watcher.status().errors == {"connection_lost": 1}
    assert meter.wanted == {}
    # The devices hear of it right after the loss is reported.
    gone = (TARGET.device_id, AudioFunctionsChanged(None, None))
    wait_for(lambda: gone in sink.of(AudioFunctionsChanged), "the mic gone")
    mine = [e for d, e in sink.events if d == TARGET.device_id]
    assert mine[-2:] == [MicInUseChanged(False), AudioFunctionsChanged(None, None)]
    with world.lock:
        world.up = True
    wait_for(lambda: len(sink.of(AudioServerConnected)) == 2, "reconnected", timeout=10)
    wait_for(lambda: meter.wanted, "metering again")
    assert watcher.status().server_up


def test_a_target_that_goes_gets_its_last_events(
    rig: tuple[AudioWatcher, World, FakeMeter, Sink],
) -> None:
    watcher, _world, _meter, sink = rig
    wait_for(lambda: sink.of(MicVolumeChanged), "the mic")
    watcher.set_targets([])
    wait_for(lambda: len(sink.of(AudioFunctionsChanged)) == 2, "the device's audio gone")
    assert sink.of(AudioFunctionsChanged)[-1] == (
        TARGET.device_id,
        AudioFunctionsChanged(None, None),
    )


def test_stop_is_prompt_connected_or_not() -> None:
    world = World(ServerState())
    for up in (True, False):
        world.up = up
        watcher = AudioWatcher(
            AudioConfig(),
            MonotonicClock(),
            Sink(),
            server_factory=world.connect,
            meter_factory=FakeMeter,
        )
        watcher.start()
        if up:
            wait_for(lambda w=watcher: w.status().server_up, "connected")
        else:
            wait_for(lambda: world.attempts, "a connection attempt")
        start = time.monotonic()
        watcher.stop()
        assert time.monotonic() - start < 0.1
        assert not watcher._thread.is_alive()


def test_a_bug_is_counted_and_the_watcher_goes_on() -> None:
    """An exception the audio thread does not expect (here from the sink) is counted as
    `internal`, logged, and the thread connects afresh instead of dying."""
    world = World(load(BLACKWIRE)[1])
    sink = Sink()
    failures = [RuntimeError("a bug")]

    def flaky(
        device_id: str | None, events: Sequence[AudioEvent | ServerEvent], now: float
    ) -> None:
        if device_id is not None and failures:
            raise failures.pop()
        sink(device_id, events, now)

    watcher = AudioWatcher(
        AudioConfig(), CLOCK, flaky, server_factory=world.connect, meter_factory=FakeMeter
    )
    watcher.set_targets([TARGET])
    watcher.start()
    try:
        wait_for(lambda: sink.of(MicVolumeChanged), "the mic after the bug")
        assert watcher.status().errors == {"internal": 1}
        assert len(sink.of(AudioServerConnected)) == 2
        assert watcher._thread.is_alive()
    finally:
        watcher.stop()
