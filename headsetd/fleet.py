"""The workstation's fleet of headsets: per-device counters, and snapshots for the exporter.

Owns: `DeviceRecord` (everything exported about one device: identity, connected, state,
counters, seconds in state), the pure `tally(record, event, now)` that counts one event, the
counts of discovery errors, and `Fleet`, a lock-guarded map of immutable records that the reader
loop updates and scrapes snapshot.

Never does: I/O, logging, or anything slow under its lock: a scrape copies a tuple and never
waits on a device. Counters are never reset while a device is known; a device that is
unplugged keeps its series (connected 0) for `retention` seconds, then is forgotten.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import TYPE_CHECKING

from headsetd.errors import ErrorKind
from headsetd.events import (
    ButtonPressed,
    DeviceClassified,
    DeviceConnected,
    DeviceDisconnected,
    Event,
    HookChanged,
    MuteChanged,
    MutePressed,
    ReadFailed,
    ReadingResumed,
    ReportRejected,
)
from headsetd.hid.decoder import Control
from headsetd.identity import DeviceFacts, DeviceIdentity
from headsetd.session import HeadsetState

if TYPE_CHECKING:  # the audio side is loaded only where audio is watched
    from headsetd.audio.collect import AudioTally
    from headsetd.audio.model import AudioEvent

_EMPTY: Mapping[str, int] = MappingProxyType({})


def _plus(counts: Mapping[str, int], key: str) -> Mapping[str, int]:
    return MappingProxyType({**counts, key: counts.get(key, 0) + 1})


@dataclass(frozen=True, slots=True)
class DeviceRecord:
    """One device as exported. Times are on the fleet's clock (monotonic seconds)."""

    identity: DeviceIdentity
    facts: DeviceFacts
    connected: bool = False
    readable: bool = False
    state: HeadsetState = field(default_factory=HeadsetState)
    connects: int = 0
    disconnects: int = 0
    disconnects_in_call: int = 0  # unplugged while off-hook
    hook_changes: Mapping[str, int] = field(
        default_factory=lambda: _EMPTY
    )  # "off_hook"/"on_hook" -> changes into it
    off_hook_seconds: float = 0.0  # closed off-hook intervals
    off_hook_since: float | None = None  # start of the open one
    mute_presses: int = 0
    button_presses: Mapping[str, int] = field(default_factory=lambda: _EMPTY)
    errors: Mapping[str, int] = field(default_factory=lambda: _EMPTY)
    disconnected_at: float | None = None

    @property
    def device_id(self) -> str:
        return self.identity.device_id

    @property
    def controls(self) -> tuple[Control, ...]:
        return self.facts.controls

    def off_hook_seconds_at(self, now: float) -> float:
        if self.off_hook_since is None:
            return self.off_hook_seconds
        return self.off_hook_seconds + max(0.0, now - self.off_hook_since)


def _close_off_hook(record: DeviceRecord, now: float) -> DeviceRecord:
    if record.off_hook_since is None:
        return record
    return replace(record, off_hook_seconds=record.off_hook_seconds_at(now), off_hook_since=None)


def tally(record: DeviceRecord, event: Event, now: float) -> DeviceRecord:
    """Count one event into the device's record (pure)."""
    match event:
        case HookChanged(off_hook=off_hook):
            record = _close_off_hook(record, now)
            state = replace(record.state, off_hook=off_hook)
            return replace(
                record,
                state=state,
                hook_changes=_plus(record.hook_changes, "off_hook" if off_hook else "on_hook"),
                off_hook_since=now if off_hook else None,
            )
        case MutePressed():
            return replace(record, mute_presses=record.mute_presses + 1)
        case MuteChanged(muted=muted):
            return replace(record, state=replace(record.state, muted=muted))
        case ButtonPressed(button=button):
            return replace(record, button_presses=_plus(record.button_presses, button.value))
        case ReportRejected():
            return replace(record, errors=_plus(record.errors, ErrorKind.MALFORMED_REPORT))
        case ReadFailed(kind=kind):
            # A bug met by one report does not stop the reading; every other failure does.
            readable = record.readable and kind is ErrorKind.INTERNAL
            return replace(record, errors=_plus(record.errors, kind), readable=readable)
        case DeviceClassified(facts=facts):
            return replace(record, facts=facts)
        case ReadingResumed():
            return replace(record, readable=True)
        case DeviceConnected():
            return replace(
                record,
                connected=True,
                readable=True,
                connects=record.connects + 1,
                state=HeadsetState(),
                disconnected_at=None,
            )
        case DeviceDisconnected():
            in_call = record.state.off_hook is True
            record = _close_off_hook(record, now)
            return replace(
                record,
                connected=False,
                readable=False,
                disconnects=record.disconnects + 1,
                disconnects_in_call=record.disconnects_in_call + in_call,
                # The hook state of an unplugged headset is unknown, not on-hook.
                state=HeadsetState(),
                disconnected_at=now,
            )
    return record


@dataclass(frozen=True, slots=True)
class FleetSnapshot:
    """What a scrape renders: every known device, discovery errors, and the time it was taken."""

    taken_at: float
    devices: tuple[DeviceRecord, ...]
    discovery_errors: Mapping[str, int] = field(default_factory=lambda: _EMPTY)
    audio: tuple[tuple[str, AudioTally], ...] = ()  # (device label, tally), sorted by label


class Fleet:
    """Device records by device id; thread-safe, immutable records swapped under a lock."""

    def __init__(self, retention: float) -> None:
        self._retention = retention
        self._lock = threading.Lock()
        self._records: dict[str, DeviceRecord] = {}
        self._discovery_errors: Mapping[str, int] = _EMPTY
        # The audio side's tallies, by device label (a device id, or card:<name> for an onboard
        # card's jacks); kept as long as the device's record, and a card's for good.
        self._audio: dict[str, AudioTally] = {}

    def connect(self, identity: DeviceIdentity, facts: DeviceFacts, now: float) -> DeviceRecord:
        """Record a plug-in (the device's counters go on from where they were)."""
        device_id = identity.device_id
        with self._lock:
            old = self._records.get(device_id)
            base = old if old is not None else DeviceRecord(identity, facts)
            record = replace(base, identity=identity, facts=facts)
            if record.connected:  # a replug seen before the unplug: close the old one first
                record = tally(record, DeviceDisconnected("replugged"), now)
            record = self._records[device_id] = tally(record, DeviceConnected(), now)
            return record

    def apply(self, device_id: str, events: Sequence[Event], now: float) -> DeviceRecord | None:
        """Count a device's events; returns its record after them (None if unknown)."""
        with self._lock:
            record = self._records.get(device_id)
            if record is None:
                return None
            for event in events:
                record = tally(record, event, now)
            self._records[device_id] = record
            return record

    def apply_audio(self, device: str, events: Sequence[AudioEvent], now: float) -> None:
        """Count the audio side's events for a device (the audio thread calls this)."""
        from headsetd.audio.collect import AudioTally, tally_audio  # noqa: PLC0415

        with self._lock:
            tally = self._audio.get(device, AudioTally())
            for event in events:
                tally = tally_audio(tally, event, now)
            self._audio[device] = tally

    def set_retention(self, retention: float) -> None:
        with self._lock:
            self._retention = retention

    def count_discovery_error(self, kind: ErrorKind) -> None:
        with self._lock:
            self._discovery_errors = _plus(self._discovery_errors, kind)

    def snapshot(self, now: float) -> FleetSnapshot:
        """Every device still within retention; forgets those unplugged for longer."""
        with self._lock:
            expired = [
                device_id
                for device_id, r in self._records.items()
                if r.disconnected_at is not None and now - r.disconnected_at > self._retention
            ]
            for device_id in expired:
                del self._records[device_id]
                self._audio.pop(device_id, None)
            devices = tuple(self._records.values())
            errors = self._discovery_errors
            audio = tuple(sorted(self._audio.items()))
        return FleetSnapshot(now, tuple(sorted(devices, key=lambda r: r.device_id)), errors, audio)
