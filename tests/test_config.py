"""Configuration: defaults, a full file, and a clear error for each kind of mistake."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from headsetd.config import (
    DEFAULT_PORT,
    ConfigError,
    Listen,
    load_config,
    parse_listen,
    reload_changes,
)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "headsetd.toml"
    path.write_text(text)
    return path


def test_defaults() -> None:
    config = load_config(None)
    assert config.listen == Listen("0.0.0.0", DEFAULT_PORT)
    assert config.workstation
    assert config.workstation_labels == {"workstation": config.workstation}


def test_full_file(tmp_path: Path) -> None:
    config = load_config(
        write(
            tmp_path,
            """
[workstation]
name = "ws-0042"
labels = { site = "ber1", team = "support", desk = "D17" }
[web]
listen = "[::1]:9999"
[devices]
retention_seconds = 600
[log]
format = "json"
level = "debug"
""",
        )
    )
    assert config.workstation_labels == {
        "workstation": "ws-0042",
        "desk": "D17",
        "site": "ber1",
        "team": "support",
    }
    assert config.listen == Listen("::1", 9999)
    assert str(config.listen) == "[::1]:9999"
    assert config.retention_seconds == 600.0
    assert (config.log_format, config.log_level) == ("json", "debug")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[workstation", "not valid TOML"),
        ("[webb]\nlisten = ':1'", "unknown section"),
        ("[workstation]\nlabels = { 'bad-name' = 'x' }", "not a usable label name"),
        ("[workstation]\nlabels = { workstation = 'x' }", "not a usable label name"),
        ("[workstation]\nlabels = { __meta = 'x' }", "not a usable label name"),
        ("[workstation]\nlabels = { site = 3 }", r"labels.site: must be a string"),
        ('[workstation]\nlabels = { site = "a\\nb" }', r"labels.site: must be printable"),
        ("[workstation]\nlabels = { site = '" + "x" * 65 + "' }", "at most 64 characters"),
        ("[workstation]\nlabels = { instance = 'x' }", "not a usable label name"),
        ("[workstation]\nname = ''", r"\[workstation\] name: must not be empty"),
        ('[workstation]\nname = "ws\\u001b[31m"', r"\[workstation\] name: must be printable"),
        ("[web]\nlisten = 'localhost'", "not HOST:PORT"),
        ("[web]\nlisten = ':70000'", "out of range"),
        ("[devices]\nretention_seconds = -1", "retention_seconds"),
        ("[devices]\nretention_seconds = true", "retention_seconds"),
        ("[log]\nformat = 'xml'", r"\[log\] format: must be one of"),
        ("[web]\nlisen = ':9100'", r"\[web\] unknown key\(s\): lisen"),
        ("[devices]\nretention_secs = 5", r"\[devices\] unknown key\(s\): retention_secs"),
        ("[workstation]\nlabel = {}", r"\[workstation\] unknown key\(s\): label"),
        ("[policy]\napproved = []\nextra = 1", r"\[policy\] unknown key\(s\): extra"),
        ("[devices]\nretention_seconds = inf", "must be a number from 0"),
        ("[devices]\nretention_seconds = nan", "must be a number from 0"),
        ("[devices]\nretention_seconds = 1e300", "must be a number from 0"),
        ("web = 3", "must be a table"),
    ],
)
def test_mistakes_are_named(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=message) as caught:
        load_config(path)
    assert str(path) in str(caught.value)


@pytest.mark.parametrize("kind", ["directory", "fifo", "device", "huge"])
def test_what_is_not_a_small_regular_file_is_refused_before_reading(
    tmp_path: Path, kind: str
) -> None:
    """A FIFO would block the daemon's start forever, /dev/zero would fill its memory."""
    path = tmp_path / "headsetd.toml"
    if kind == "directory":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "device":
        path = Path("/dev/zero")
    else:
        path.write_bytes(b"# " + b"x" * (1024 * 1024) + b"\n")
    message = "larger than" if kind == "huge" else "not a regular file"
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_invalid_utf8_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "headsetd.toml"
    path.write_bytes(b"[workstation]\nname = '\xff'\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path)


@pytest.mark.parametrize(
    ("text", "listen"),
    [(":9100", Listen("0.0.0.0", 9100)), ("127.0.0.1:0", Listen("127.0.0.1", 0))],
)
def test_parse_listen(text: str, listen: Listen) -> None:
    assert parse_listen(text) == listen


def test_policy_patterns_approve_by_vendor_and_product(tmp_path: Path) -> None:
    path = tmp_path / "headsetd.toml"
    path.write_text('[policy]\napproved = ["0b0e:0307", "047F:*", "1395:00?9"]\n')
    policy = load_config(path).policy
    assert policy is not None
    assert policy.approves(0x0B0E, 0x0307)
    assert not policy.approves(0x0B0E, 0x0308)
    assert policy.approves(0x047F, 0xC056)
    assert policy.approves(0x1395, 0x00A9)
    assert load_config(None).policy is None  # no policy: nothing is judged


@pytest.mark.parametrize(
    "approved", ['"0b0e-0307"', '["0b0e"]', '["0b0e:03070"]', '["vend:prod"]', "[1]"]
)
def test_bad_policy_patterns_are_errors(tmp_path: Path, approved: str) -> None:
    path = tmp_path / "headsetd.toml"
    path.write_text(f"[policy]\napproved = {approved}\n")
    with pytest.raises(ConfigError, match=r"\[policy\] approved"):
        load_config(path)


def test_what_a_reload_changes_and_what_needs_a_restart(tmp_path: Path) -> None:
    old = load_config(write(tmp_path, '[workstation]\nname = "a"\n[web]\nlisten = ":1"\n'))
    new = load_config(
        write(tmp_path, '[workstation]\nname = "b"\n[web]\nlisten = ":2"\n[log]\nlevel = "debug"')
    )
    changed, restart = reload_changes(old, new)
    assert changed == {"workstation": "b", "log_level": "debug"}
    assert restart == ["listen"]
