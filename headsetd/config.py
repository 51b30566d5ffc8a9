"""Configuration: a TOML file plus command-line overrides, validated once at start-up.

Owns: the `Config` records and their defaults, `load_config(path)`, `parse_listen()`, and
`ConfigError`, whose message names the file and the key. Never does: read the file again at
run time, or accept a value it has not checked (label names, port range, durations).

    [workstation]
    name = "ws-0042"                 # default: the hostname
    labels = { site = "ber1", team = "support", desk = "D17" }

    [web]
    listen = "0.0.0.0:10481"         # HOST:PORT; [::]:PORT for IPv6

    [devices]
    retention_seconds = 86400        # keep an unplugged device's series (connected 0) this long

    [log]
    format = "auto"                  # auto (pretty on a terminal, else JSON) | json | console
    level = "info"

    [policy]
    approved = ["0b0e:0307", "047f:*"]   # vendor:product patterns; no [policy]: nothing judged
"""

from __future__ import annotations

import re
import socket
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from headsetd.policy import Policy, parse_pattern

DEFAULT_PORT = 10481
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_LOG_FORMATS = ("auto", "json", "console")
_LOG_LEVELS = ("debug", "info", "warning", "error")


class ConfigError(ValueError):
    """The configuration is invalid; the message says where and why."""


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
    retention_seconds: float = 86400.0
    log_format: str = "auto"
    log_level: str = "info"
    policy: Policy | None = None

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


def _table(data: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: [{key}] must be a table")
    return value


def _number(table: dict[str, Any], key: str, default: float, where: str, low: float) -> float:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < low:
        raise ConfigError(f"{where}: {key} must be a number >= {low}")
    return float(value)


def _choice(
    table: dict[str, Any], key: str, default: str, choices: tuple[str, ...], where: str
) -> str:
    value = table.get(key, default)
    if value not in choices:
        raise ConfigError(f"{where}: {key} must be one of {', '.join(choices)}")
    return str(value)


def _policy(data: dict[str, Any], where: str) -> Policy | None:
    if "policy" not in data:
        return None
    approved = _table(data, "policy", where).get("approved", [])
    if not isinstance(approved, list) or not all(isinstance(p, str) for p in approved):
        raise ConfigError(f"{where}: policy.approved must be a list of strings")
    try:
        return Policy(tuple(parse_pattern(p) for p in approved))
    except ValueError as exc:
        raise ConfigError(f"{where}: policy.approved: {exc}") from None


def load_config(path: str | Path | None) -> Config:
    """The configuration from `path` (None: defaults only)."""
    data: dict[str, Any] = {}
    where = str(path) if path else "defaults"
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"{path}: {exc.strerror}") from exc
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    unknown = set(data) - {"workstation", "web", "devices", "log", "policy"}
    if unknown:
        raise ConfigError(f"{where}: unknown section(s) {', '.join(sorted(unknown))}")
    ws = _table(data, "workstation", where)
    name = ws.get("name", socket.gethostname())
    if not isinstance(name, str) or not name.strip() or len(name) > 128:
        raise ConfigError(f"{where}: workstation.name must be a non-empty string")
    labels = ws.get("labels", {})
    if not isinstance(labels, dict):
        raise ConfigError(f"{where}: workstation.labels must be a table")
    static: list[tuple[str, str]] = []
    for key, value in sorted(labels.items()):
        if not _LABEL_NAME.match(key) or key.startswith("__") or key == "workstation":
            raise ConfigError(f"{where}: workstation.labels: {key!r} is not a usable label name")
        if not isinstance(value, str) or len(value) > 128 or not value.isprintable():
            raise ConfigError(f"{where}: workstation.labels.{key} must be a short printable string")
        static.append((key, value))
    web = _table(data, "web", where)
    try:
        listen = parse_listen(str(web.get("listen", f":{DEFAULT_PORT}")))
    except ConfigError as exc:
        raise ConfigError(f"{where}: web.{exc}") from None
    devices = _table(data, "devices", where)
    log = _table(data, "log", where)
    return Config(
        policy=_policy(data, where),
        workstation=name.strip(),
        static_labels=tuple(static),
        listen=listen,
        retention_seconds=_number(devices, "retention_seconds", 86400.0, where, 0.0),
        log_format=_choice(log, "format", "auto", _LOG_FORMATS, where),
        log_level=_choice(log, "level", "info", _LOG_LEVELS, where),
    )
