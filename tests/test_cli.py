"""The command line's other commands: replay (readable form), inspect wiring, list on a machine
with no hidraw devices (the real pyudev scan), and bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from headsetd.cli import UsageError, main, replayed_device
from tests.conftest import FIXTURES, RECORDINGS, REPO


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


USB_FIXTURES = FIXTURES.parent / "usb"


def test_inspect_a_usb_descriptors_file(capsys: pytest.CaptureFixture[str]) -> None:
    path = USB_FIXTURES / "jbl_quantum-810-wireless-dongle_0ecb-2069.desc"
    assert main(["inspect", str(path), "--json"]) == 0
    described = json.loads(capsys.readouterr().out)
    assert (described["vendor_id"], described["product_id"], described["kind"]) == (
        "0ecb",
        "2069",
        "headset",
    )
    assert described["has_microphone"] is True
    assert [f["interfaces"] for f in described["audio_functions"]] == [[0, 1], [2, 3, 4]]
    assert {"number", "class", "subclass", "protocol"} <= set(described["interfaces"][0])
    assert main(["inspect", str(path)]) == 0
    assert "headset" in capsys.readouterr().out


def test_a_closed_stdout_ends_inspect_quietly() -> None:
    """`headsetd inspect x | head -1`: no BrokenPipeError traceback, exit 0."""
    fixture = FIXTURES / "yealink_wh66_6993-b02b.hid"  # 170 kB of table: more than a pipe holds
    inspect = subprocess.Popen(
        [sys.executable, "-m", "headsetd", "inspect", str(fixture)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=REPO,
    )
    assert inspect.stdout is not None
    head = subprocess.run(
        ["head", "-1"], stdin=inspect.stdout, capture_output=True, text=True, check=True
    )
    inspect.stdout.close()  # head has exited: inspect's next write meets a closed pipe
    _, err = inspect.communicate(timeout=30)
    assert err == b""
    assert inspect.returncode == 0
    assert len(head.stdout.splitlines()) == 1


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "--speed", "2"], "--speed and --loop go with --replay"),
        (["run", "--loop"], "--speed and --loop go with --replay"),
    ],
)
def test_replay_options_without_replay_are_errors(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("speed", ["nan", "inf", "-1", "0", "fast"])
def test_speed_must_be_finite_and_positive(speed: str) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["run", "--replay", "x.hid", "--speed", speed])
    assert exited.value.code == 2


def test_every_option_has_help_with_its_default(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("run", "list", "inspect", "replay"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = capsys.readouterr().out
        for line in text.splitlines():
            if line.strip().startswith("--") and "--help" not in line and "--json" not in line:
                assert "default" in text[text.index(line) :].split("\n  -")[0], (command, line)


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["-V"])
    assert capsys.readouterr().out.startswith("headsetd ")


def test_replay_argument_joins_a_recording_and_its_usb_descriptors() -> None:
    recording = RECORDINGS / "plantronics_blackwire-3220_047f-c056_telephony_call.hid"
    usb = USB_FIXTURES / "plantronics_usb-headset_047f-c001.desc"
    both = replayed_device(f"{recording}+{usb}")
    assert both.recording is not None
    assert both.usb == usb.read_bytes()
    alone = replayed_device(str(usb))
    assert (alone.recording, alone.usb) == (None, usb.read_bytes())
    with pytest.raises(UsageError, match="two USB descriptors"):
        replayed_device(f"{usb}+{usb}")
