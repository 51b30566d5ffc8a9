"""TLS and basic auth for the web server, from a web config file in exporter-toolkit's format.

Owns: `load_web_config(path)`, which reads the YAML that Prometheus, Alertmanager and
node_exporter take with `--web.config.file` (so one file and one `promtool check web-config`
serve the whole stack) into a `WebConfig`: a server `ssl.SSLContext` (certificate, key, client
CA for mTLS, minimum and maximum TLS version) and the basic-auth users with their bcrypt
hashes; and `BasicAuth`, which checks a request's credentials (a successful check is
remembered by a hash of the credentials, as exporter-toolkit does, so a scrape every 15 s does
not pay bcrypt's deliberate cost each time).

Never does: accept a key it does not know or a setting it cannot honour (it says which), keep a
password in memory (only a SHA-256 of user and password, after a successful bcrypt check), or
load PyYAML and bcrypt when there is no web config.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ssl
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from headsetd.config import ConfigError

_TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
# exporter-toolkit's client_auth_type values that Python's ssl can honour.
_CLIENT_AUTH = {
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
_TLS_KEYS = {
    "cert_file",
    "key_file",
    "client_auth_type",
    "client_ca_file",
    "min_version",
    "max_version",
}
_CACHE_LIMIT = 64  # remembered successful logins (distinct user:password pairs)


@dataclass(frozen=True, slots=True)
class WebConfig:
    tls: ssl.SSLContext | None = None
    users: Mapping[str, bytes] = field(default_factory=dict)  # user -> bcrypt hash
    source: str = ""


class BasicAuth:
    """Checks `Authorization: Basic ...` against the users' bcrypt hashes."""

    def __init__(self, users: Mapping[str, bytes]) -> None:
        self._users = dict(users)
        self._ok: set[bytes] = set()
        self._lock = threading.Lock()

    def allows(self, header: str | None) -> bool:
        if not header or not header.startswith("Basic "):
            return False
        try:
            user, sep, password = base64.b64decode(header[6:], validate=True).partition(b":")
        except (binascii.Error, ValueError):
            return False
        hashed = self._users.get(user.decode("utf-8", errors="replace"))
        if not sep or hashed is None:
            return False
        key = hashlib.sha256(user + b"\0" + password).digest()
        with self._lock:
            if any(hmac.compare_digest(key, ok) for ok in self._ok):
                return True
        import bcrypt  # noqa: PLC0415 - only with basic auth configured

        if not bcrypt.checkpw(password, hashed):
            return False
        with self._lock:
            if len(self._ok) < _CACHE_LIMIT:
                self._ok.add(key)
        return True


def _file(base: Path, value: Any, key: str, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}: tls_server_config.{key} must be a file path")
    path = Path(value) if Path(value).is_absolute() else base / value
    if not path.is_file():
        raise ConfigError(f"{where}: tls_server_config.{key}: {path} is not a readable file")
    return str(path)


def _tls(section: Any, base: Path, where: str) -> ssl.SSLContext:
    if not isinstance(section, dict):
        raise ConfigError(f"{where}: tls_server_config must be a mapping")
    unknown = set(section) - _TLS_KEYS
    if unknown:
        raise ConfigError(f"{where}: tls_server_config: unsupported key(s) {sorted(unknown)}")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(
            _file(base, section.get("cert_file"), "cert_file", where),
            _file(base, section.get("key_file"), "key_file", where),
        )
    except ssl.SSLError as exc:
        raise ConfigError(f"{where}: tls_server_config: certificate or key: {exc}") from exc
    auth = section.get("client_auth_type", "NoClientCert")
    if auth not in _CLIENT_AUTH:
        raise ConfigError(
            f"{where}: tls_server_config.client_auth_type {auth!r}: one of {sorted(_CLIENT_AUTH)}"
        )
    context.verify_mode = _CLIENT_AUTH[auth]
    if "client_ca_file" in section:
        context.load_verify_locations(
            _file(base, section["client_ca_file"], "client_ca_file", where)
        )
    elif context.verify_mode != ssl.CERT_NONE:
        raise ConfigError(f"{where}: tls_server_config: {auth} needs client_ca_file")
    for key, attribute in (("min_version", "minimum_version"), ("max_version", "maximum_version")):
        if key in section:
            version = _TLS_VERSIONS.get(section[key])
            if version is None:
                choices = sorted(_TLS_VERSIONS)
                raise ConfigError(f"{where}: tls_server_config.{key}: one of {choices}")
            setattr(context, attribute, version)
    if "min_version" not in section:
        context.minimum_version = ssl.TLSVersion.TLSv1_2  # exporter-toolkit's default
    return context


def load_web_config(path: str | Path | None) -> WebConfig:
    """Read an exporter-toolkit web config (None: none, plain HTTP and no auth); ConfigError
    names the file and the key."""
    if path is None:
        return WebConfig()
    import yaml  # noqa: PLC0415 - only with a web config

    where = str(path)
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise ConfigError(f"{where}: {exc.strerror or exc}") from exc
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{where}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: must be a mapping")
    unknown = set(data) - {"tls_server_config", "basic_auth_users"}
    if unknown:
        raise ConfigError(f"{where}: unsupported key(s) {sorted(unknown)}")
    base = Path(path).parent
    tls = _tls(data["tls_server_config"], base, where) if "tls_server_config" in data else None
    users = data.get("basic_auth_users") or {}
    if not isinstance(users, dict) or not all(
        isinstance(u, str) and isinstance(h, str) and h.startswith("$2") for u, h in users.items()
    ):
        raise ConfigError(f"{where}: basic_auth_users must map user names to bcrypt hashes")
    return WebConfig(tls, {user: hashed.encode() for user, hashed in users.items()}, where)
