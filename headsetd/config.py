"""Configuration: a TOML file plus command-line overrides, every key checked.

Owns: the `Config` record and its defaults, `load_config(path)` (refusing a path that is not a
regular file or is over 1 MiB before reading it), `parse_listen()`, `RELOADABLE` (what a SIGHUP
may change without a restart) and `ConfigError`, whose message names the file, the section and
the key. Never does: read the file again by itself (a reload is the daemon's SIGHUP), accept a
key it does not know (a misspelt `listen` must not silently serve on all interfaces), or accept
a value it has not checked (label names and values, port range, finite and sane numbers).

    [workstation]
    name = "ws-0042"                 # default: the hostname
    labels = { site = "ber1", team = "support", desk = "D17" }

    [web]
    listen = "0.0.0.0:10481"         # HOST:PORT; [::]:PORT for IPv6
    config_file = "/etc/headsetd/web.yml"   # TLS and basic auth, exporter-toolkit's format

    [devices]
    retention_seconds = 86400        # keep an unplugged device's series (connected 0) this long

    [log]
    format = "auto"                  # auto (pretty on a terminal, else JSON) | json | console
    level = "info"

    [policy]
    approved = ["0b0e:0307", "047f:*"]   # vendor:product patterns; no [policy]: nothing judged

    [audio]                          # checked by headsetd.audio.config
    enabled = true                   # false: no audio server, no audio series (the system unit)
"""

from __future__ import annotations

import math
import os
import re
import socket
import stat
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from headsetd.audio.config import AudioConfig, audio_config
from headsetd.errors import ConfigError
from headsetd.identity import clean_text
from headsetd.policy import Policy, parse_pattern

__all__ = ["RELOADABLE", "Config", "ConfigError", "Listen", "load_config", "parse_listen"]

DEFAULT_PORT = 10481
MAX_CONFIG_BYTES = 1024 * 1024
MAX_RETENTION_SECONDS = 366 * 86400.0  # a year: longer keeps forgotten devices for no one
MAX_LABELS = 16
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
# Labels headsetd sets itself, or that Prometheus sets on every series of a target.
_RESERVED_LABELS = frozenset({"workstation", "device", "kind", "instance", "job", "le"})
_LOG_FORMATS = ("auto", "json", "console")
_LOG_LEVELS = ("debug", "info", "warning", "error")
# What a SIGHUP may change in a running daemon; the rest needs a restart.
RELOADABLE = (
    "workstation",
    "static_labels",
    "retention_seconds",
    "log_level",
    "policy",
    "web_config_file",
)


@dataclass(frozen=True, slots=True)
class Listen:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Config:
    workstation: str
    static_labels: tuple[tuple[str, str], ...] = ()
    listen: Listen = field(default_factory=lambda: Listen("0.0.0.0", DEFAULT_PORT))  # noqa: S104 - scraped from the network
    web_config_file: str | None = None
    retention_seconds: float = 86400.0
    log_format: str = "auto"
    log_level: str = "info"
    policy: Policy | None = None
    audio: AudioConfig = field(default_factory=AudioConfig)
    source: str = "defaults"  # the file it came from, for messages

    @property
    def workstation_labels(self) -> dict[str, str]:
        return {"workstation": self.workstation, **dict(self.static_labels)}


def parse_listen(text: str) -> Listen:
    """'HOST:PORT', '[V6]:PORT' or ':PORT' (all addresses)."""
    host, sep, port_text = text.rpartition(":")
    if not sep:
        raise ConfigError(f"listen address {text!r} is not HOST:PORT")
    host = host.strip("[]") or "0.0.0.0"  # noqa: S104 - an exporter is scraped from the network
    try:
        port = int(port_text)
    except ValueError:
        raise ConfigError(f"listen address {text!r}: port {port_text!r} is not a number") from None
    if not 0 <= port <= 65535:
        raise ConfigError(f"listen address {text!r}: port out of range")
    return Listen(host, port)


class _Section:
    """One table of the file: its keys are taken one by one; what is left over is unknown."""

    def __init__(self, data: dict[str, Any], name: str, where: str) -> None:
        value = data.get(name, {})
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: [{name}] must be a table")
        self._values = dict(value)
        self.name = name
        self.where = where

    def error(self, key: str, message: str) -> ConfigError:
        return ConfigError(f"{self.where}: [{self.name}] {key}: {message}")

    def take(self, key: str, default: Any) -> Any:
        return self._values.pop(key, default)

    def take_all(self) -> dict[str, Any]:
        """Every key at once, for a part that checks its own section."""
        values, self._values = self._values, {}
        return values

    def done(self) -> None:
        if self._values:
            keys = ", ".join(sorted(self._values))
            raise ConfigError(f"{self.where}: [{self.name}] unknown key(s): {keys}")

    def number(self, key: str, default: float, low: float, high: float) -> float:
        value = self.take(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error(key, "must be a number")
        if not math.isfinite(value) or not low <= value <= high:
            raise self.error(key, f"must be a number from {low:g} to {high:g}")
        return float(value)

    def choice(self, key: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.take(key, default)
        if value not in choices:
            raise self.error(key, f"must be one of {', '.join(choices)}")
        return str(value)

    def text(self, key: str, default: str | None, check: Callable[[str], str | None]) -> str | None:
        value = self.take(key, default)
        if value is None:
            return None
        if not isinstance(value, str):
            raise self.error(key, "must be a string")
        problem = check(value)
        if problem:
            raise self.error(key, problem)
        return value


def _label_value(value: str) -> str | None:
    """Workstation names and labels are held to the rule device strings are held to."""
    if not value.strip():
        return "must not be empty"
    if clean_text(value) != value:
        return "must be printable, one line, at most 64 characters, no surrounding spaces"
    return None


def _path(value: str) -> str | None:
    return None if value and "\0" not in value else "must be a file path"


def _read(path: str | Path) -> dict[str, Any]:
    """The file's TOML, refused before reading if it is not a regular file or too large."""
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"{path}: not a regular file")
        if info.st_size > MAX_CONFIG_BYTES:
            raise ConfigError(f"{path}: larger than {MAX_CONFIG_BYTES} bytes")
        with open(path, "rb") as file:
            data = file.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror or exc}") from exc
    if len(data) > MAX_CONFIG_BYTES:  # it grew between stat and read
        raise ConfigError(f"{path}: larger than {MAX_CONFIG_BYTES} bytes")
    try:
        return tomllib.loads(data.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc


def _labels(section: _Section) -> tuple[tuple[str, str], ...]:
    labels = section.take("labels", {})
    if not isinstance(labels, dict):
        raise section.error("labels", "must be a table")
    if len(labels) > MAX_LABELS:
        raise section.error("labels", f"at most {MAX_LABELS} labels")
    static: list[tuple[str, str]] = []
    for key, value in sorted(labels.items()):
        if not _LABEL_NAME.match(key) or key.startswith("__") or key in _RESERVED_LABELS:
            raise section.error("labels", f"{key!r} is not a usable label name")
        problem = _label_value(value) if isinstance(value, str) else "must be a string"
        if problem:
            raise section.error(f"labels.{key}", problem)
        static.append((key, value))
    return tuple(static)


def _policy(data: dict[str, Any], where: str) -> Policy | None:
    if "policy" not in data:
        return None
    section = _Section(data, "policy", where)
    approved = section.take("approved", [])
    section.done()
    if not isinstance(approved, list) or not all(isinstance(p, str) for p in approved):
        raise section.error("approved", "must be a list of strings")
    try:
        return Policy(tuple(parse_pattern(p) for p in approved))
    except ValueError as exc:
        raise section.error("approved", str(exc)) from None


def load_config(path: str | Path | None) -> Config:
    """The configuration from `path` (None: defaults only)."""
    data: dict[str, Any] = _read(path) if path is not None else {}
    where = str(path) if path is not None else "defaults"
    unknown = set(data) - {"workstation", "web", "devices", "log", "policy", "audio"}
    if unknown:
        raise ConfigError(f"{where}: unknown section(s) {', '.join(sorted(unknown))}")
    ws = _Section(data, "workstation", where)
    name = ws.text("name", None, _label_value) or clean_text(socket.gethostname()) or "localhost"
    static = _labels(ws)
    ws.done()
    web = _Section(data, "web", where)
    try:
        listen = parse_listen(str(web.take("listen", f":{DEFAULT_PORT}")))
    except ConfigError as exc:
        raise web.error("listen", str(exc)) from None
    web_config_file = web.text("config_file", None, _path)
    web.done()
    devices = _Section(data, "devices", where)
    retention = devices.number("retention_seconds", 86400.0, 0.0, MAX_RETENTION_SECONDS)
    devices.done()
    log = _Section(data, "log", where)
    log_format = log.choice("format", "auto", _LOG_FORMATS)
    log_level = log.choice("level", "info", _LOG_LEVELS)
    log.done()
    return Config(
        workstation=name,
        static_labels=static,
        listen=listen,
        web_config_file=web_config_file,
        retention_seconds=retention,
        log_format=log_format,
        log_level=log_level,
        policy=_policy(data, where),
        audio=audio_config(_Section(data, "audio", where).take_all(), where),
        source=where,
    )


def reload_changes(old: Config, new: Config) -> tuple[dict[str, Any], list[str]]:
    """What a reload from `old` to `new` changes: the reloadable fields that differ (name ->
    new value, for the log), and the names of the fields that differ but need a restart."""
    changed = {
        key: getattr(new, key) for key in RELOADABLE if getattr(old, key) != getattr(new, key)
    }
    fixed = ("listen", "log_format", "audio")
    restart = [key for key in fixed if getattr(old, key) != getattr(new, key)]
    return changed, restart
