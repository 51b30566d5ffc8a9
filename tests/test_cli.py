"""The command line's other commands: replay (readable form), inspect wiring, list on a machine
with no hidraw devices (the real pyudev scan), and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from headsetd.cli import main
from tests.conftest import FIXTURES, RECORDINGS


def test_replay_readable(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", str(RECORDINGS / "jabra_evolve-link-ms_0b0e-0307_call.hid")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["0.000", "device_connected"]
    assert any("hook_changed" in line and "off_hook=true" in line for line in out)
    assert "device_disconnected" in out[-1]


def test_inspect_json_is_wired(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", str(FIXTURES / "jabra_evolve-link-ms_0b0e-0307.hid"), "--json"]) == 0
    described = json.loads(capsys.readouterr().out)
    assert (described["vendor_id"], described["product_id"]) == ("0b0e", "0307")


def test_list_scans_udev(capsys: pytest.CaptureFixture[str]) -> None:
    # The real pyudev scan; this machine (and CI's) has no hidraw nodes, the VM tier has.
    assert main(["list", "--json"]) == 0
    assert isinstance(json.loads(capsys.readouterr().out), list)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"R: 2 05 0b\nI: 3 zz 0307\n", "invalid literal"),
        (b"R: 4 05 0b\n", "declares 4 bytes"),
        (b"N: no descriptor\n", "no R:"),
        (b"R: 2 05 0b\nE: 1.0 1 01\nE: 0.5 1 01\n", "backwards"),
        (b"R: 2 a1 01\n", "collection(s) left open"),
    ],
)
def test_bad_recordings_are_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, message: str
) -> None:
    path = tmp_path / "bad.hid"
    path.write_bytes(content)
    assert main(["replay", str(path)]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert str(path) in err
