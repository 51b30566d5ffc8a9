"""The Prometheus collector: renders a fleet snapshot as metric families.

Owns: metric names, types, help texts and labels (the contract with dashboards and alert
rules: see README's metrics table). Each scrape calls `collect()`, which takes one snapshot and
renders it; prometheus-pve-exporter's shape.

Never does: wait on a device or take a lock longer than a snapshot copy, do I/O of its own
(the one file a scrape reads, logind's seat0, is read by the callable the daemon hands in), or
put a device-supplied string anywhere but an `_info` label (strings are sanitised at
discovery).
Records are typed and complete, so rendering has no failure path of its own. Counters of a
known device are rendered from the start at 0 for every state/button the device has, so
`increase()` sees the first change.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)

from headsetd.classify import Kind
from headsetd.errors import DEVICE_ERROR_KINDS, DISCOVERY_ERROR_KINDS
from headsetd.fleet import DeviceRecord, FleetSnapshot
from headsetd.hid.decoder import BUTTONS, Control
from headsetd.identity import hex4
from headsetd.policy import Policy

if TYPE_CHECKING:  # the audio side is loaded only where audio is watched
    from headsetd.audio.collect import AudioStatus


def _no_policy() -> Policy | None:
    return None


def _no_seat() -> bool | None:
    return None


def _no_log_errors() -> int:
    return 0


class HeadsetCollector:
    """Renders `snapshot()` on every scrape, with the workstation facts `workstation()` and the
    approved-models `policy()` of the moment (both change on a configuration reload), whether a
    user session is active (`seat_active()`, None without logind), and the audio side's
    families when it runs (`audio_status`; None: audio disabled, no audio series at all)."""

    def __init__(  # noqa: PLR0917 - the collector's sources, one each
        self,
        snapshot: Callable[[], FleetSnapshot],
        version: str,
        workstation: Callable[[], Mapping[str, str]],
        policy: Callable[[], Policy | None] = _no_policy,
        seat_active: Callable[[], bool | None] = _no_seat,
        audio_status: Callable[[], AudioStatus] | None = None,
        log_errors: Callable[[], int] = _no_log_errors,
    ) -> None:
        self._snapshot = snapshot
        self._version = version
        self._workstation = workstation
        self._policy = policy
        self._seat_active = seat_active
        self._audio_status = audio_status
        self._log_errors = log_errors

    def describe(self) -> list[Metric]:
        # Registering must not take a snapshot (that would run collect() at start-up).
        return []

    def collect(self) -> Iterator[Metric]:
        yield InfoMetricFamily("headsetd_build", "headsetd version.", {"version": self._version})
        yield InfoMetricFamily(
            "headsetd_workstation",
            "The workstation and its configured static facts (site, team, desk).",
            dict(self._workstation()),
        )
        snapshot = self._snapshot()
        discovery = CounterMetricFamily(
            "headsetd_discovery_errors",
            "Devices that could not be examined, by kind "
            "(malformed_descriptor, unreadable, internal).",
            labels=["kind"],
        )
        errors = snapshot.discovery_errors
        for kind in sorted(set(DISCOVERY_ERROR_KINDS) | set(errors)):
            discovery.add_metric([kind], errors.get(kind, 0))
        yield discovery
        log_errors = CounterMetricFamily(
            "headsetd_log_errors",
            "Log lines that could not be written (stdout broken or full) and were dropped.",
        )
        log_errors.add_metric([], self._log_errors())
        yield log_errors
        yield from render_workstation(snapshot, self._seat_active())
        yield from render_devices(snapshot, self._policy())
        if self._audio_status is not None:
            from headsetd.audio.collect import AudioSnapshot, render_audio  # noqa: PLC0415

            status = self._audio_status()
            yield from render_audio(AudioSnapshot(snapshot.taken_at, status, snapshot.audio))


def render_workstation(snapshot: FleetSnapshot, seat_active: bool | None) -> Iterator[Metric]:
    """What the desk has now: connected devices by kind, and whether someone is logged in."""
    devices = GaugeMetricFamily(
        "headsetd_workstation_devices",
        "Connected devices by kind; every kind is present, 0 included.",
        labels=["kind"],
    )
    connected = [r.facts.classification.kind for r in snapshot.devices if r.connected]
    for kind in Kind:
        devices.add_metric([kind.value], connected.count(kind))
    yield devices
    seat = GaugeMetricFamily(
        "headsetd_workstation_seat_active",
        "1 while a user session is active on seat0 (logind); absent without logind.",
    )
    if seat_active is not None:
        seat.add_metric([], float(seat_active))
    yield seat


def render_devices(snapshot: FleetSnapshot, policy: Policy | None = None) -> Iterator[Metric]:
    """The per-device families of one snapshot; `headsetd_device_approved` with a policy."""
    now = snapshot.taken_at
    info = InfoMetricFamily(
        "headsetd_device",
        "A known device, its identity and kind; device-supplied strings are sanitised.",
    )
    approved = GaugeMetricFamily(
        "headsetd_device_approved",
        "1 if the device's vendor:product is on the configured approved list, else 0.",
        labels=["device"],
    )
    connected = GaugeMetricFamily(
        "headsetd_device_connected",
        "1 while the device is plugged in; 0 for a retention period after it is unplugged.",
        labels=["device"],
    )
    readable = GaugeMetricFamily(
        "headsetd_device_readable",
        "1 while headsetd is reading the device's reports (0: unplugged, or open/read failed).",
        labels=["device"],
    )
    connects = CounterMetricFamily(
        "headsetd_device_connects", "Times the device was plugged in.", labels=["device"]
    )
    disconnects = CounterMetricFamily(
        "headsetd_device_disconnects", "Times the device was unplugged.", labels=["device"]
    )
    disconnects_in_call = CounterMetricFamily(
        "headsetd_device_disconnects_in_call",
        "Times the device was unplugged while off-hook (in a call).",
        labels=["device"],
    )
    off_hook = GaugeMetricFamily(
        "headsetd_device_off_hook",
        "1 off-hook (in a call), 0 on-hook; absent while the hook state is unknown.",
        labels=["device"],
    )
    hook_changes = CounterMetricFamily(
        "headsetd_device_hook_changes",
        "Hook switch changes, by the state changed into.",
        labels=["device", "state"],
    )
    off_hook_seconds = CounterMetricFamily(
        "headsetd_device_off_hook_seconds", "Seconds spent off-hook.", labels=["device"]
    )
    mute_presses = CounterMetricFamily(
        "headsetd_device_mute_presses",
        "Phone Mute presses (the softphone owns the mute state; this counts requests).",
        labels=["device"],
    )
    muted = GaugeMetricFamily(
        "headsetd_device_muted",
        "1 muted, 0 not: only for devices that report mute as a state.",
        labels=["device"],
    )
    buttons = CounterMetricFamily(
        "headsetd_device_button_presses",
        "Presses of other call and volume buttons.",
        labels=["device", "button"],
    )
    errors = CounterMetricFamily(
        "headsetd_device_errors",
        "Device errors by kind (read, malformed_report, access_denied, open, internal).",
        labels=["device", "kind"],
    )
    for record in snapshot.devices:
        d = record.device_id
        info.add_metric([], _info_labels(record))
        if policy is not None:
            ids = record.identity
            approved.add_metric([d], float(policy.approves(ids.vendor_id, ids.product_id)))
        connected.add_metric([d], float(record.connected))
        if record.controls:  # a device with call control has something to read
            readable.add_metric([d], float(record.readable))
        connects.add_metric([d], record.connects)
        disconnects.add_metric([d], record.disconnects)
        if Control.HOOK_SWITCH in record.controls:
            disconnects_in_call.add_metric([d], record.disconnects_in_call)
            if record.connected and record.state.off_hook is not None:
                off_hook.add_metric([d], float(record.state.off_hook))
            for state in ("off_hook", "on_hook"):
                hook_changes.add_metric([d, state], record.hook_changes.get(state, 0))
            off_hook_seconds.add_metric([d], record.off_hook_seconds_at(now))
        if Control.PHONE_MUTE in record.controls:
            mute_presses.add_metric([d], record.mute_presses)
        if record.connected and record.state.muted is not None:
            muted.add_metric([d], float(record.state.muted))
        for button in BUTTONS:
            if button in record.controls:
                buttons.add_metric([d, button.value], record.button_presses.get(button.value, 0))
        if record.controls:  # errors of reading: only a device with something to read has them
            for kind in sorted(set(DEVICE_ERROR_KINDS) | set(record.errors)):
                errors.add_metric([d, kind], record.errors.get(kind, 0))
    yield from (info, approved, connected, readable, connects, disconnects, disconnects_in_call)
    yield from (off_hook, hook_changes)
    yield from (off_hook_seconds, mute_presses, muted, buttons, errors)


def _info_labels(record: DeviceRecord) -> dict[str, str]:
    i, c = record.identity, record.facts.classification
    return {
        "device": i.device_id,
        "vendor_id": hex4(i.vendor_id),
        "product_id": hex4(i.product_id),
        "manufacturer": i.manufacturer,
        "product": i.product,
        "serial": i.serial,
        "firmware": i.firmware,
        "kind": c.kind.value,
        "call_control": str(c.call_control).lower(),
        "has_microphone": str(c.has_microphone).lower(),
    }
