"""The audio side's two threads: the audio-server thread and the level meter's.

Owns: `AudioWatcher`, the daemon's one handle on the audio side. Its thread ("audio") holds
one connection to the user's audio server (`AudioServer`), re-reads the server's state when
the server reports a change, ties it to the daemon's devices (`set_targets`), steps each
device's pure state (`audio_step`) with views of the server and with 100 ms peaks, and hands
the events to the daemon's sink. It asks the meter (`LevelMeter`, its own connection and
thread) for a peak stream on each microphone a program records from, and for none otherwise.
It reconnects with bounded backoff when the server restarts or the session ends.

Never does: touch the HID side (a lost server changes audio series only), sleep to wait for
the server (it waits in poll() on the connection and a wake-up pipe), or block a caller:
`set_targets` and the meter's level callbacks only queue and wake the thread.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Sequence
from types import MappingProxyType

import structlog

from headsetd.audio.collect import AudioStatus
from headsetd.audio.config import AudioConfig
from headsetd.audio.loop import AudioServerError, Waker
from headsetd.audio.meter import Backoff, LevelMeter, MeterRequest, PulseMeter
from headsetd.audio.model import (
    AudioEvent,
    AudioServerConnected,
    AudioServerLost,
    AudioState,
    AudioTarget,
    DeviceView,
    Peak,
    ServerEvent,
    ServerState,
    audio_step,
    meter_wanted,
    observe,
)
from headsetd.audio.server import AudioServer, PulseServer
from headsetd.clock import Clock

log = structlog.get_logger("headsetd.audio")

# sink(device_id, events, now): a device's events; device_id None: the server connection's.
AudioSink = Callable[[str | None, Sequence[AudioEvent | ServerEvent], float], None]
ServerFactory = Callable[[Waker], AudioServer]
# Peaks are stepped in batches: the counters they feed are scraped every 15 s or more.
PEAK_BATCH_SECONDS = 1.0
MeterFactory = Callable[[Callable[[str], None]], LevelMeter]


class AudioWatcher:
    """Watches the user's audio server for the daemon's devices (see the package docstring)."""

    def __init__(
        self,
        config: AudioConfig,
        clock: Clock,
        sink: AudioSink,
        server: str | None = None,
        *,
        server_factory: ServerFactory | None = None,
        meter_factory: MeterFactory | None = None,
    ) -> None:
        self._config = config
        self._clock = clock
        self._sink = sink
        self._server_factory: ServerFactory = server_factory or functools.partial(
            PulseServer, server=server
        )
        make_meter: MeterFactory = meter_factory or (
            lambda on_error: PulseMeter(clock, on_error, server)
        )
        self._meter = make_meter(self._count_error)
        self._waker = Waker()
        self._lock = threading.Lock()
        # Shared with other threads, under the lock:
        self._targets: tuple[AudioTarget, ...] = ()
        self._targets_changed = True
        self._peaks: list[tuple[str, float, float]] = []  # (device, dBFS, when)
        self._stopping = False
        self._server_up = False
        self._errors: dict[str, int] = {}
        # The audio thread's own:
        self._server_state: ServerState | None = None
        self._states: dict[str, AudioState] = {}
        self._level_callbacks: dict[str, Callable[[float], None]] = {}
        self._thread = threading.Thread(target=self._run, name="audio", daemon=True)

    # --- the daemon's side (any thread) ---

    def set_targets(self, targets: Sequence[AudioTarget]) -> None:
        """The devices to watch and their hook states; thread-safe, returns at once."""
        with self._lock:
            self._targets = tuple(targets)
            self._targets_changed = True
        self._waker.wake()

    def start(self) -> None:
        self._meter.start()
        self._thread.start()

    def stop(self, timeout: float = 0.1) -> None:
        """Stop both threads; returns within `timeout` (their loops wake at once)."""
        deadline = self._clock.now() + timeout
        with self._lock:
            self._stopping = True
        self._waker.wake()
        self._meter.stop(timeout / 2)
        if self._thread.is_alive():
            self._thread.join(max(0.0, deadline - self._clock.now()))
        if not self._thread.is_alive():
            self._waker.close()

    def status(self) -> AudioStatus:
        """The server connection and error counts, for the collector (thread-safe)."""
        with self._lock:
            return AudioStatus(self._server_up, MappingProxyType(dict(self._errors)))

    def _count_error(self, kind: str) -> None:
        with self._lock:
            self._errors[kind] = self._errors.get(kind, 0) + 1

    def _on_level(self, device_id: str, dbfs: float) -> None:
        """The meter thread's level callback (bound per device): queue it, and wake the audio
        thread once the oldest queued peak is PEAK_BATCH_SECONDS old (ten wake-ups a second
        per metered headset cost more than the metering; a server event still wakes the
        thread at once, and it steps the queued peaks before the server's change)."""
        now = self._clock.now()
        with self._lock:
            self._peaks.append((device_id, dbfs, now))
            due = now - self._peaks[0][2] >= PEAK_BATCH_SECONDS
        if due:
            self._waker.wake()

    # --- the audio thread ---

    def _stopped(self) -> bool:
        with self._lock:
            return self._stopping

    def _set_up(self, up: bool) -> None:
        with self._lock:
            self._server_up = up

    def _run(self) -> None:
        backoff = Backoff()
        while not self._stopped():
            try:
                self._connection(backoff)
            except Exception:  # a bug: counted and logged, then a fresh connection
                self._count_error("internal")
                log.exception("audio_watcher_failed")
                self._waker.wait(backoff.next())

    def _connection(self, backoff: Backoff) -> None:
        """One connection: made, served until it is lost or the watcher stops, and closed."""
        server = self._server_factory(self._waker)
        try:
            name = server.connect()
        except AudioServerError as exc:
            log.debug("audio_server_unreachable", reason=str(exc))
            self._take_inbox()
            self._refresh(force=False)  # targets still come and go: hook states, unplugs
            self._waker.wait(backoff.next())
            return
        backoff.reset()
        self._set_up(True)
        reason = "stopped"
        try:
            self._sink(None, [AudioServerConnected(name)], self._clock.now())
            self._serve(server)
        except AudioServerError as exc:
            reason = str(exc)
            self._count_error(exc.kind)
        finally:
            server.close()
            self._set_up(False)
            self._server_state = None
            self._meter.set_streams({})
        if not self._stopped():
            self._sink(None, [AudioServerLost(reason)], self._clock.now())
            self._refresh(force=True)

    def _serve(self, server: AudioServer) -> None:
        changed = True
        while not self._stopped():
            self._take_inbox()
            if changed:
                self._server_state = server.state()
            self._refresh(force=changed)
            changed = server.wait(None)

    def _take_inbox(self) -> None:
        """Step the queued peaks (before the server change now seen, as they came first)."""
        with self._lock:
            peaks, self._peaks = self._peaks, []
        for device_id, dbfs, when in peaks:
            if device_id in self._states:
                self._step(device_id, Peak(dbfs), when)

    def _refresh(self, force: bool) -> None:
        """Step every device with its view of the server, when the server or targets changed."""
        with self._lock:
            targets, changed = self._targets, self._targets_changed
            self._targets_changed = False
        if not (force or changed):
            return
        now = self._clock.now()
        views = observe(self._server_state, targets)
        for device_id in sorted(set(self._states) | set(views)):
            self._step(device_id, views.get(device_id, DeviceView()), now)
            if device_id not in views:  # unplugged, or a card gone: its last events are sent
                del self._states[device_id]
                self._level_callbacks.pop(device_id, None)
        self._meter.set_streams(
            {
                device_id: MeterRequest(source, channel_map, self._level_callback(device_id))
                for device_id, (source, channel_map) in meter_wanted(views).items()
            }
        )

    def _level_callback(self, device_id: str) -> Callable[[float], None]:
        if device_id not in self._level_callbacks:
            self._level_callbacks[device_id] = functools.partial(self._on_level, device_id)
        return self._level_callbacks[device_id]

    def _step(self, device_id: str, observation: DeviceView | Peak, now: float) -> None:
        state = self._states.get(device_id, AudioState())
        state, events = audio_step(state, observation, now, self._config)
        if events:
            self._sink(device_id, events, now)
        # Only once the sink has them: after a failure the next view tells them again.
        self._states[device_id] = state
