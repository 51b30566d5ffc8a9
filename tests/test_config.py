"""Configuration: defaults, a full file, and a clear error for each kind of mistake."""

from __future__ import annotations

from pathlib import Path

import pytest

from headsetd.config import DEFAULT_PORT, ConfigError, Listen, load_config, parse_listen


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
        ("[workstation]\nlabels = { site = 3 }", "short printable string"),
        ("[workstation]\nname = ''", "workstation.name"),
        ("[web]\nlisten = 'localhost'", "not HOST:PORT"),
        ("[web]\nlisten = ':70000'", "out of range"),
        ("[devices]\nretention_seconds = -1", "retention_seconds"),
        ("[devices]\nretention_seconds = true", "retention_seconds"),
        ("[log]\nformat = 'xml'", "format must be one of"),
        ("web = 3", "must be a table"),
    ],
)
def test_mistakes_are_named(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=message) as caught:
        load_config(path)
    assert str(path) in str(caught.value)


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
    with pytest.raises(ConfigError, match=r"policy\.approved"):
        load_config(path)
