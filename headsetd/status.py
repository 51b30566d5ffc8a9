"""What a running daemon sees now, for the desk technician: `/status` and `headsetd status`.

Owns: `status_of(snapshot, config, version)`, the JSON the daemon serves on /status (every
known device with its kind, model, connection, hook, mute and readability, its microphone as
the audio server shows it, plus the workstation and the approved list's verdict), and
`render_status(...)`, the table `headsetd status` prints.

Never does: I/O, or show anything the metrics do not (it is the same snapshot, shaped for a
person at the desk rather than for Prometheus).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from headsetd.config import Config
from headsetd.events import facts_fields
from headsetd.fleet import DeviceRecord, FleetSnapshot
from headsetd.identity import identity_fields
from headsetd.policy import judge

if TYPE_CHECKING:
    from headsetd.audio.collect import AudioTally


def _device(record: DeviceRecord, config: Config) -> dict[str, Any]:
    identity, policy = record.identity, config.policy
    return {
        **identity_fields(identity),
        **facts_fields(record.facts),
        "approved": judge(policy, identity.vendor_id, identity.product_id),
        "connected": record.connected,
        "readable": record.readable if record.controls else None,
        "off_hook": record.state.off_hook if record.connected else None,
        "muted": record.state.muted if record.connected else None,
        "mute_presses": record.mute_presses,
        "connects": record.connects,
        "disconnects": record.disconnects,
        "disconnects_in_call": record.disconnects_in_call,
        "errors": {str(kind): count for kind, count in sorted(record.errors.items())},
    }


def _mic(tally: AudioTally | None) -> dict[str, Any] | None:
    """The microphone as the audio server shows it; None without one (or without audio)."""
    if tally is None or tally.mic is None:
        return None
    return {
        "muted": tally.mic_muted,
        "volume": None if tally.mic_volume is None else round(tally.mic_volume, 2),
        "volume_db": None if tally.mic_volume_db is None else round(tally.mic_volume_db, 1),
        "in_use": tally.in_use,
        "default": tally.mic_default,
        "other_device_in_call": tally.mismatch,
        "level_seconds": {k: round(v, 1) for k, v in sorted(tally.level_seconds.items())},
    }


def status_of(snapshot: FleetSnapshot, config: Config, version: str) -> dict[str, Any]:
    audio = dict(snapshot.audio)
    devices = []
    for record in snapshot.devices:
        device = _device(record, config)
        if config.audio.enabled:
            device["mic"] = _mic(audio.get(record.device_id))
        devices.append(device)
    return {
        "version": version,
        "workstation": config.workstation_labels,
        "audio": config.audio.enabled,
        "devices": devices,
    }


def _yes_no(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _mic_cell(mic: dict[str, Any] | None) -> str:
    if not mic:
        return "-"
    parts = ["muted" if mic["muted"] else f"{round((mic['volume'] or 0) * 100)} %"]
    if mic["in_use"]:
        parts.append("in use")
    if mic["other_device_in_call"]:
        parts.append("call on another mic")
    return ", ".join(parts)


def render_status(status: dict[str, Any]) -> str:
    """The status as a short table for a person."""
    labels = status.get("workstation", {})
    lines = [
        f"headsetd {status.get('version', '?')} on "
        + ", ".join(f"{k}={v}" for k, v in sorted(labels.items()))
    ]
    devices = status.get("devices", [])
    if not devices:
        lines.append("no devices seen (is the headset plugged in? `headsetd list` shows why)")
        return "\n".join(lines)
    header = (
        "device", "kind", "model", "connected", "readable", "in call", "muted", "mic",
        "approved",
    )  # fmt: skip
    rows = [header] + [
        (
            d["device"],
            d["kind"],
            (d["product"] or "(no name)")[:32],
            _yes_no(d["connected"]),
            _yes_no(d["readable"]),
            _yes_no(d["off_hook"]),
            _yes_no(d["muted"]),
            _mic_cell(d.get("mic")),
            _yes_no(d["approved"]),
        )
        for d in devices
    ]
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(header))]
    for row in rows:
        cells = (str(cell).ljust(width) for cell, width in zip(row, widths, strict=True))
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)
