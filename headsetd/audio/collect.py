"""The audio side's exported numbers: one device's tally of audio events, and their rendering.

Owns: `AudioTally` (everything exported about one device's audio: gauges, seconds counters,
the histogram of 100 ms peaks, seconds per level class), the pure `tally_audio(tally, event,
now)`, `AudioStatus` (the server connection and error counts) and the pure
`render_audio(snapshot)`, which yields exactly the contract's audio metric families.

Never does: I/O, locking, or anything but numbers: no program name, source name or other
server string becomes a label (the only labels are `device`, `level`, `port`, `kind`).
A gauge is absent while its value is not known (no matched source, no server, hook state
unknown); a device's counters and histogram start at 0 from its first microphone on.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from headsetd.audio.config import LEVELS
from headsetd.audio.model import (
    AudioDefaultChanged,
    AudioEvent,
    AudioFunctionsChanged,
    CallDeviceMismatchChanged,
    JackChanged,
    MicInUseChanged,
    MicLevelMeasured,
    MicMutedChanged,
    MicMutedInCallChanged,
    MicVolumeChanged,
    SpeakerMutedChanged,
    SpeakerVolumeChanged,
)

# Upper bounds of the peak histogram's buckets in dBFS (+Inf implied).
PEAK_BUCKETS = (-90.0, -80.0, -70.0, -60.0, -50.0, -40.0, -30.0, -20.0, -10.0, -3.0, 0.0)
# headsetd_audio_errors_total kinds, all rendered from the start at 0.
ERROR_KINDS = ("connection_lost", "query_failed", "meter_failed", "internal")

_NO_JACKS: Mapping[str, bool] = MappingProxyType({})
_NO_LEVELS: Mapping[str, float] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class AudioTally:
    """One device's audio as exported. Times are on the daemon's clock (monotonic seconds)."""

    mic: str | None = None  # the matched source's name; None: no microphone now
    mic_seen: bool = False  # a microphone was matched once: counters are rendered from then on
    mic_muted: bool | None = None
    mic_volume: float | None = None
    mic_volume_db: float | None = None
    speaker: str | None = None
    speaker_muted: bool | None = None
    speaker_volume: float | None = None
    mic_default: bool | None = None
    speaker_default: bool | None = None
    in_use: bool = False
    in_use_seconds: float = 0.0  # closed intervals
    in_use_since: float | None = None  # start of the open one
    muted_in_call_seconds: float = 0.0
    muted_in_call_since: float | None = None
    mismatch: bool | None = None
    jacks: Mapping[str, bool] = field(default_factory=lambda: _NO_JACKS)
    peak_counts: tuple[int, ...] = (0,) * (len(PEAK_BUCKETS) + 1)  # per bucket, last is +Inf
    peak_sum: float = 0.0
    level_seconds: Mapping[str, float] = field(default_factory=lambda: _NO_LEVELS)

    def in_use_seconds_at(self, now: float) -> float:
        return _seconds_at(self.in_use_seconds, self.in_use_since, now)

    def muted_in_call_seconds_at(self, now: float) -> float:
        return _seconds_at(self.muted_in_call_seconds, self.muted_in_call_since, now)


def _seconds_at(closed: float, since: float | None, now: float) -> float:
    return closed if since is None else closed + max(0.0, now - since)


def _bucket(peak_dbfs: float) -> int:
    for i, bound in enumerate(PEAK_BUCKETS):
        if peak_dbfs <= bound:
            return i
    return len(PEAK_BUCKETS)


def _interval(
    closed: float, since: float | None, on: bool, now: float
) -> tuple[float, float | None]:
    """Open or close a seconds interval: (closed seconds, start of the open one)."""
    if on:
        return closed, since if since is not None else now
    return _seconds_at(closed, since, now), None


def tally_audio(tally: AudioTally, event: AudioEvent, now: float) -> AudioTally:
    """Count one audio event into the device's tally (pure)."""
    match event:
        case AudioFunctionsChanged(mic=mic, speaker=speaker):
            if mic is None:
                tally = replace(tally, mic_muted=None, mic_volume=None, mic_volume_db=None)
                tally = replace(tally, mic_default=None)
            if speaker is None:
                tally = replace(tally, speaker_muted=None, speaker_volume=None)
                tally = replace(tally, speaker_default=None)
            return replace(tally, mic=mic, speaker=speaker, mic_seen=tally.mic_seen or bool(mic))
        case MicMutedChanged(muted=muted):
            return replace(tally, mic_muted=muted)
        case MicVolumeChanged(ratio=ratio, db=db):
            return replace(tally, mic_volume=ratio, mic_volume_db=db)
        case SpeakerMutedChanged(muted=muted):
            return replace(tally, speaker_muted=muted)
        case SpeakerVolumeChanged(ratio=ratio):
            return replace(tally, speaker_volume=ratio)
        case AudioDefaultChanged(mic_default=mic_default, speaker_default=speaker_default):
            return replace(
                tally,
                mic_default=mic_default if tally.mic is not None else None,
                speaker_default=speaker_default if tally.speaker is not None else None,
            )
        case MicInUseChanged(in_use=in_use):
            seconds, since = _interval(tally.in_use_seconds, tally.in_use_since, in_use, now)
            return replace(tally, in_use=in_use, in_use_seconds=seconds, in_use_since=since)
        case MicMutedInCallChanged(muted_in_call=on):
            seconds, since = _interval(
                tally.muted_in_call_seconds, tally.muted_in_call_since, on, now
            )
            return replace(tally, muted_in_call_seconds=seconds, muted_in_call_since=since)
        case CallDeviceMismatchChanged(mismatch=mismatch):
            return replace(tally, mismatch=mismatch)
        case JackChanged(port=port, connected=connected):
            jacks = {k: v for k, v in tally.jacks.items() if k != port}
            if connected is not None:
                jacks[port] = connected
            return replace(tally, jacks=MappingProxyType(jacks))
        case MicLevelMeasured(peak_dbfs=dbfs, level=level, seconds=seconds):
            counts = list(tally.peak_counts)
            counts[_bucket(dbfs)] += 1
            levels = dict(tally.level_seconds)
            levels[level] = levels.get(level, 0.0) + seconds
            return replace(
                tally,
                peak_counts=tuple(counts),
                peak_sum=tally.peak_sum + dbfs,
                level_seconds=MappingProxyType(levels),
            )
    return tally  # silence start/end are log events; their seconds are in level_seconds


@dataclass(frozen=True, slots=True)
class AudioStatus:
    """The audio side as a whole (AudioWatcher.status())."""

    server_up: bool = False
    errors: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True, slots=True)
class AudioSnapshot:
    """What a scrape renders of the audio side."""

    taken_at: float
    status: AudioStatus
    devices: tuple[tuple[str, AudioTally], ...]  # (device label, tally), sorted by label


def _gauge(name: str, help_text: str, labels: tuple[str, ...] = ("device",)) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, help_text, labels=list(labels))


def _counter(
    name: str, help_text: str, labels: tuple[str, ...] = ("device",)
) -> CounterMetricFamily:
    return CounterMetricFamily(name, help_text, labels=list(labels))


def render_audio(snapshot: AudioSnapshot) -> Iterator[Metric]:
    """The audio metric families of one snapshot (render nothing when audio is disabled)."""
    now = snapshot.taken_at
    up = GaugeMetricFamily(
        "headsetd_audio_server_up", "1 while headsetd is connected to the user's audio server."
    )
    up.add_metric([], float(snapshot.status.server_up))
    errors = _counter(
        "headsetd_audio_errors",
        "Audio side errors by kind (connection_lost, query_failed, meter_failed, internal).",
        ("kind",),
    )
    for kind in sorted(set(ERROR_KINDS) | set(snapshot.status.errors)):
        errors.add_metric([kind], snapshot.status.errors.get(kind, 0))
    mic_muted = _gauge("headsetd_mic_muted", "1 while the device's microphone source is muted.")
    mic_volume = _gauge(
        "headsetd_mic_volume_ratio", "The microphone source's volume, 1 = 100 % (loudest channel)."
    )
    mic_volume_db = _gauge(
        "headsetd_mic_volume_db", "The microphone source's volume in dB (60*log10 of the ratio)."
    )
    speaker_muted = _gauge("headsetd_speaker_muted", "1 while the device's sink is muted.")
    speaker_volume = _gauge(
        "headsetd_speaker_volume_ratio", "The device's sink volume, 1 = 100 % (loudest channel)."
    )
    in_use = _gauge("headsetd_mic_in_use", "1 while a program records from the microphone.")
    in_use_seconds = _counter(
        "headsetd_mic_in_use_seconds", "Seconds a program recorded from the microphone."
    )
    peaks = HistogramMetricFamily(
        "headsetd_mic_peak_dbfs",
        "100 ms peaks of the microphone while in use, in dBFS (digital zero counts as -120).",
        labels=["device"],
    )
    levels = _counter(
        "headsetd_mic_level_seconds",
        "Seconds of microphone peaks in use by level class (silent, quiet, low, speech).",
        ("device", "level"),
    )
    muted_in_call = _counter(
        "headsetd_mic_muted_in_call_seconds",
        "Seconds the microphone source was muted while off-hook or in use.",
    )
    mismatch = _gauge(
        "headsetd_call_device_mismatch",
        "1 while off-hook and a program records from another microphone, none from this one.",
    )
    mic_default = _gauge("headsetd_mic_default", "1 while the microphone is the default source.")
    speaker_default = _gauge("headsetd_speaker_default", "1 while the sink is the default sink.")
    jacks = _gauge(
        "headsetd_jack_connected",
        "Analog jack port availability: 1 plugged, 0 not (absent where the card cannot tell).",
        ("device", "port"),
    )
    for d, t in snapshot.devices:
        if t.mic is not None and t.mic_muted is not None and t.mic_volume is not None:
            mic_muted.add_metric([d], float(t.mic_muted))
            mic_volume.add_metric([d], t.mic_volume)
            mic_volume_db.add_metric([d], t.mic_volume_db if t.mic_volume_db else 0.0)
            in_use.add_metric([d], float(t.in_use))
        if t.mic is not None and t.mic_default is not None:
            mic_default.add_metric([d], float(t.mic_default))
        if t.speaker is not None and t.speaker_muted is not None and t.speaker_volume is not None:
            speaker_muted.add_metric([d], float(t.speaker_muted))
            speaker_volume.add_metric([d], t.speaker_volume)
        if t.speaker is not None and t.speaker_default is not None:
            speaker_default.add_metric([d], float(t.speaker_default))
        if t.mic_seen:
            in_use_seconds.add_metric([d], t.in_use_seconds_at(now))
            muted_in_call.add_metric([d], t.muted_in_call_seconds_at(now))
            cumulative, buckets = 0, []
            for bound, count in zip((*PEAK_BUCKETS, math.inf), t.peak_counts, strict=True):
                cumulative += count
                buckets.append(("+Inf" if bound == math.inf else f"{bound:g}", cumulative))
            # With negative buckets prometheus_client leaves out _sum and _count: OpenMetrics
            # forbids a _sum that can fall, and a _count without a _sum. A strict parser
            # rejects the whole scrape otherwise. The +Inf bucket is the count.
            peaks.add_metric([d], buckets, t.peak_sum)
            for level in LEVELS:
                levels.add_metric([d, level], t.level_seconds.get(level, 0.0))
        if t.mismatch is not None:
            mismatch.add_metric([d], float(t.mismatch))
        for port, connected in sorted(t.jacks.items()):
            jacks.add_metric([d, port], float(connected))
    yield from (up, errors, mic_muted, mic_volume, mic_volume_db, speaker_muted, speaker_volume)
    yield from (in_use, in_use_seconds, peaks, levels, muted_in_call, mismatch, mic_default)
    yield from (speaker_default, jacks)
