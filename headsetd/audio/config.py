"""The `[audio]` section of the configuration: whether headsetd watches the audio server, and
the level thresholds it classifies 100 ms microphone peaks with.

Owns: `AudioConfig`, its defaults, and `audio_config(table, where)`, which validates the parsed
TOML table (the daemon's `load_config` calls it for `[audio]`). Never does: read a file, or
accept thresholds that are not strictly increasing (a peak must fall in exactly one class).

    [audio]
    enabled = true              # false: no audio connection, no audio series (the system unit)
    silent_below_dbfs = -60.0   # 100 ms peaks below this are "silent"
    quiet_below_dbfs = -40.0    # ... below this (and not silent) "quiet"
    low_below_dbfs = -30.0      # ... below this "low"; at or above it "speech"
    silence_seconds = 30.0      # silent this long while in use: mic_silent_started

The thresholds are a first calibration (docs/audio-server.md §5): ITU-T P.56 speech at the
nominal -26 dBov reads a median 100 ms peak of -16 dBFS and a 90th percentile of -10 dBFS; at
-46 dBov (20 dB under nominal) the 90th percentile is -30 dBFS.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from headsetd.errors import ConfigError

LEVELS = ("silent", "quiet", "low", "speech")
_KEYS = ("enabled", "silent_below_dbfs", "quiet_below_dbfs", "low_below_dbfs", "silence_seconds")
# A float32 peak of 1e-6 is -120 dBFS, the floor headsetd reports digital zero as.
FLOOR_DBFS = -120.0


@dataclass(frozen=True, slots=True)
class AudioConfig:
    enabled: bool = True
    silent_below_dbfs: float = -60.0
    quiet_below_dbfs: float = -40.0
    low_below_dbfs: float = -30.0
    silence_seconds: float = 30.0

    def level_of(self, peak_dbfs: float) -> str:
        """The class of one 100 ms peak: silent, quiet, low or speech."""
        if peak_dbfs < self.silent_below_dbfs:
            return "silent"
        if peak_dbfs < self.quiet_below_dbfs:
            return "quiet"
        if peak_dbfs < self.low_below_dbfs:
            return "low"
        return "speech"


def _dbfs(table: Mapping[str, Any], key: str, default: float, where: str) -> float:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{where}: [audio] {key}: must be a number (dBFS)")
    if not FLOOR_DBFS < value <= 0:
        raise ConfigError(f"{where}: [audio] {key}: must be above {FLOOR_DBFS:g} and at most 0")
    return float(value)


def audio_config(table: Mapping[str, Any], where: str) -> AudioConfig:
    """The `[audio]` table (already parsed TOML) as a checked `AudioConfig`."""
    unknown = sorted(set(table) - set(_KEYS))
    if unknown:
        raise ConfigError(f"{where}: [audio] unknown key(s): {', '.join(unknown)}")
    enabled = table.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ConfigError(f"{where}: [audio] enabled: must be true or false")
    silent = _dbfs(table, "silent_below_dbfs", -60.0, where)
    quiet = _dbfs(table, "quiet_below_dbfs", -40.0, where)
    low = _dbfs(table, "low_below_dbfs", -30.0, where)
    if not silent < quiet < low:
        raise ConfigError(
            f"{where}: [audio] thresholds must increase: silent_below_dbfs < quiet_below_dbfs"
            " < low_below_dbfs"
        )
    seconds = table.get("silence_seconds", 30.0)
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, int | float)
        or not 1 <= seconds <= 86400  # finite, and at most a day
    ):
        raise ConfigError(f"{where}: [audio] silence_seconds: must be a number from 1 to 86400")
    return AudioConfig(enabled, silent, quiet, low, float(seconds))
