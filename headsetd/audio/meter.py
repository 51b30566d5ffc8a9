"""The microphone level meter: one persistent peak-detect record stream per metered source, on
a pulsectl connection and thread of its own.

Owns: `MeterRequest` (which source to meter, and where its levels go), the `LevelMeter`
protocol (the seam the watcher drives), and `PulseMeter`, its libpulse implementation.

Never does: let anything but a level leave this module. The server computes the peaks
(PA_STREAM_PEAK_DETECT: each float is max |sample| over a 100 ms window, per channel); the
read callback turns each window into ONE number, the max over channels in dBFS (digital zero
reads -120), and passes it to `MeterRequest.on_level(float)`. No sample is copied, stored,
logged or sent; the window's buffer is dropped in the callback that peeked at it. Never opens
a stream the watcher did not ask for: the watcher asks only while a program records from the
source, so headsetd never keeps a microphone open, never lights the desktop's microphone
indicator on its own, and never lowers the source's latency below the softphone's.

The stream (docs/audio-server.md §1): float32, as many channels as the source with the
source's own channel map (the server averages channels it has to remix, and a one-sided mic
would read 6 dB low), rate 10, fragsize 4*channels (one window per read), flags
PEAK_DETECT|DONT_MOVE|ADJUST_LATENCY|DONT_INHIBIT_AUTO_SUSPEND, named honestly:
application.id=org.headsetd.LevelMeter, application.name="headsetd level meter". pulsectl has
no persistent-stream API (only `get_peak_sample()`, which makes and drops a stream per call:
~9 % of a core in PipeWire at 10 Hz), so the stream is built with pulsectl's ctypes bindings as
`Pulse.get_peak_sample` builds its own, plus three libpulse functions pulsectl does not bind
(pa_stream_peek with its real size_t*, pa_stream_get_state, pa_stream_set_state_callback). The
ctypes callbacks are kept referenced by their stream, cleared before the stream is
disconnected and unreferenced.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog

from headsetd.audio.loop import AudioServerError, PulseLink, Waker
from headsetd.audio.model import METER_APPLICATION_ID, METER_APPLICATION_NAME, METER_RATE, peak_dbfs
from headsetd.clock import Clock

log = structlog.get_logger("headsetd.audio")

_PA_STREAM_FAILED, _PA_STREAM_TERMINATED = 3, 4
_UINT32_DEFAULT = 0xFFFFFFFF  # "server default" for a buffer attribute


@dataclass(frozen=True, slots=True)
class MeterRequest:
    """Meter `source` (its channel map as the server lists it) and pass each 100 ms peak, in
    dBFS, to `on_level`: a float, and nothing else."""

    source: str
    channel_map: tuple[str, ...]
    on_level: Callable[[float], None] = field(compare=False, repr=False)


class LevelMeter(Protocol):
    def start(self) -> None: ...

    def set_streams(self, wanted: Mapping[str, MeterRequest]) -> None:
        """The streams there should be, by key (thread-safe; returns at once)."""
        ...

    def stop(self, timeout: float) -> None: ...


class Backoff:
    """Seconds to wait before the next attempt: doubling from `first` up to `limit`. A restarted
    server is back within seconds (0.25, 0.5, 1, 2, 4 s...); a workstation whose session has no
    server is asked once every 30 s, not woken every 5 s for a whole shift."""

    def __init__(self, first: float = 0.25, limit: float = 30.0) -> None:
        self._first, self._limit = first, limit
        self._next = first

    def next(self) -> float:
        delay = self._next
        self._next = min(self._limit, self._next * 2)
        return delay

    def reset(self) -> None:
        self._next = self._first


class _Libpulse:
    """pulsectl's bindings, and the three stream functions it lacks, on the same library."""

    def __init__(self) -> None:
        from pulsectl import _pulsectl  # noqa: PLC0415 - lazily, with the first connection

        self.c: Any = _pulsectl
        lib = ctypes.CDLL(ctypes.util.find_library("pulse") or "libpulse.so.0")
        stream_p = ctypes.POINTER(_pulsectl.PA_STREAM)
        self.state_cb_t: Any = ctypes.CFUNCTYPE(None, stream_p, ctypes.c_void_p)
        self.peek = lib.pa_stream_peek
        self.peek.argtypes = [
            stream_p,
            ctypes.POINTER(ctypes.c_void_p),
            ctypes.POINTER(ctypes.c_size_t),
        ]
        self.peek.restype = ctypes.c_int
        self.get_state = lib.pa_stream_get_state
        self.get_state.argtypes = [stream_p]
        self.get_state.restype = ctypes.c_int
        self.set_state_callback = lib.pa_stream_set_state_callback
        self.set_state_callback.argtypes = [stream_p, self.state_cb_t, ctypes.c_void_p]
        self.set_state_callback.restype = None


class _Stream:
    """One peak-detect record stream on one source."""

    def __init__(self, lib: _Libpulse, link: PulseLink, request: MeterRequest) -> None:
        c = lib.c
        self.request = request
        self.dead = False
        self._lib = lib
        self._channels = len(request.channel_map)
        if not 1 <= self._channels <= 32:
            raise AudioServerError(f"channel map {request.channel_map!r}", kind="meter_failed")
        spec = c.PA_SAMPLE_SPEC(
            format=c.PA_SAMPLE_FLOAT32NE, rate=METER_RATE, channels=self._channels
        )
        channel_map = c.PA_CHANNEL_MAP()
        try:
            c.pa.channel_map_parse(channel_map, ",".join(request.channel_map))
            map_p = ctypes.byref(channel_map) if channel_map.channels == self._channels else None
        except c.pa.CallError:
            map_p = None  # the server's default map for that many channels
        props = c.pa.proplist_from_string(
            f'application.id = "{METER_APPLICATION_ID}" '
            f'application.name = "{METER_APPLICATION_NAME}"'
        )
        try:
            # The context is pulsectl's private attribute: get_peak_sample uses it the same way.
            stream = c.pa.stream_new_with_proplist(
                link.pulse._ctx, METER_APPLICATION_NAME, ctypes.byref(spec), map_p, props
            )
        finally:
            c.pa.proplist_free(props)
        if not stream:
            raise AudioServerError("pa_stream_new failed", kind="meter_failed")
        self._stream: Any = stream
        # Referenced here for as long as libpulse may call them.
        self._read_cb = c.PA_STREAM_REQUEST_CB_T(self._on_read)
        self._state_cb = lib.state_cb_t(self._on_state)
        c.pa.stream_set_read_callback(stream, self._read_cb, None)
        lib.set_state_callback(stream, self._state_cb, None)
        attr = c.PA_BUFFER_ATTR(
            maxlength=_UINT32_DEFAULT,
            tlength=_UINT32_DEFAULT,
            prebuf=_UINT32_DEFAULT,
            minreq=_UINT32_DEFAULT,
            fragsize=4 * self._channels,  # one float per channel: one window per read
        )
        flags = (
            c.PA_STREAM_PEAK_DETECT
            | c.PA_STREAM_DONT_MOVE
            | c.PA_STREAM_ADJUST_LATENCY
            | c.PA_STREAM_DONT_INHIBIT_AUTO_SUSPEND
        )
        try:
            c.pa.stream_connect_record(stream, request.source, ctypes.byref(attr), flags)
        except c.pa.CallError as exc:
            self.close()
            raise AudioServerError(f"record on {request.source}: {exc}", "meter_failed") from exc

    def _on_read(self, stream: Any, _nbytes: int, _userdata: Any) -> None:
        data, size = ctypes.c_void_p(), ctypes.c_size_t()
        if self._lib.peek(stream, ctypes.byref(data), ctypes.byref(size)) < 0 or not size.value:
            return  # nothing to read: pa_stream_drop must not be called
        try:
            if data.value:  # NULL with a size is a hole in the stream: no windows
                channels = self._channels
                count = size.value // 4 // channels * channels
                windows = ctypes.cast(data, ctypes.POINTER(ctypes.c_float * count)).contents
                for start in range(0, count, channels):
                    peak = max(abs(x) for x in windows[start : start + channels])
                    self.request.on_level(peak_dbfs(peak))
        except Exception:  # a bug must not escape into libpulse's dispatch
            log.exception("audio_meter_callback_failed", source=self.request.source)
        finally:
            with contextlib.suppress(self._lib.c.pa.CallError):
                self._lib.c.pa.stream_drop(stream)

    def _on_state(self, stream: Any, _userdata: Any) -> None:
        if self._lib.get_state(stream) in (_PA_STREAM_FAILED, _PA_STREAM_TERMINATED):
            self.dead = True  # the source went away (unplugged) or the server killed it

    def close(self) -> None:
        if self._stream is None:
            return
        c, stream = self._lib.c, self._stream
        c.pa.stream_set_read_callback(stream, c.PA_STREAM_REQUEST_CB_T(), None)
        self._lib.set_state_callback(stream, self._lib.state_cb_t(), None)
        with contextlib.suppress(c.pa.CallError):  # already failed or terminated
            c.pa.stream_disconnect(stream)
        c.pa.stream_unref(stream)
        self._stream = None


class PulseMeter:
    """The meter thread: its own connection, made when a stream is first wanted and again
    (with bounded backoff) after the server went away while streams are wanted."""

    def __init__(
        self,
        clock: Clock,
        on_error: Callable[[str], None],
        server: str | None = None,
    ) -> None:
        self._clock = clock
        self._on_error = on_error
        self._server = server
        self._lock = threading.Lock()
        self._wanted: dict[str, MeterRequest] = {}
        self._stopping = False
        self._waker = Waker()
        self._thread = threading.Thread(target=self._run, name="audio-meter", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def set_streams(self, wanted: Mapping[str, MeterRequest]) -> None:
        with self._lock:
            if dict(wanted) == self._wanted:
                return  # unchanged: a dead stream is not reopened until its request changes
            self._wanted = dict(wanted)
        self._waker.wake()

    def stop(self, timeout: float) -> None:
        with self._lock:
            self._stopping = True
        self._waker.wake()
        if self._thread.is_alive():
            self._thread.join(timeout)
        if not self._thread.is_alive():
            self._waker.close()

    def _run(self) -> None:
        streams: dict[str, _Stream] = {}
        link: PulseLink | None = None
        lib: _Libpulse | None = None
        backoff, retry_at = Backoff(), 0.0
        try:
            while True:
                with self._lock:
                    if self._stopping:
                        return
                    wanted = dict(self._wanted)
                now = self._clock.now()
                if link is None and wanted and now >= retry_at:
                    try:
                        link = PulseLink(METER_APPLICATION_NAME, self._server, self._waker)
                        lib = lib or _Libpulse()
                        backoff.reset()
                    except AudioServerError as exc:
                        log.debug("audio_meter_connect_failed", reason=str(exc))
                        retry_at = now + backoff.next()
                if link is None or lib is None:
                    self._waker.wait(max(0.0, retry_at - now) if wanted else None)
                    continue
                self._reconcile(lib, link, streams, wanted)
                try:
                    link.listen(None)
                except AudioServerError:
                    _close_all(streams)
                    link.close()
                    link = None
                    retry_at = self._clock.now() + backoff.next()
        finally:
            _close_all(streams)
            if link is not None:
                link.close()

    def _reconcile(
        self,
        lib: _Libpulse,
        link: PulseLink,
        streams: dict[str, _Stream],
        wanted: Mapping[str, MeterRequest],
    ) -> None:
        for key in list(streams):
            # A dead stream (its source went away, or the server killed it) is made anew.
            if wanted.get(key) != streams[key].request or streams[key].dead:
                streams.pop(key).close()
        for key, request in wanted.items():
            if key in streams:
                continue
            try:
                streams[key] = _Stream(lib, link, request)
            except AudioServerError as exc:
                log.warning("audio_meter_failed", source=request.source, reason=str(exc))
                self._on_error(exc.kind)


def _close_all(streams: dict[str, _Stream]) -> None:
    for stream in streams.values():
        stream.close()
    streams.clear()
