"""The service files: systemd's own check of the units, the udev probe over every descriptor.

- `systemd-analyze security --offline=yes`: the system unit's exposure <= 1.5. Its --threshold
  takes 0-100 (exposure x 10), so 1.5 is `--threshold=15`; the printed level is checked too.
- udev-probe: every HID fixture gets HEADSETD_TELEPHONY=1 exactly when the daemon would watch
  it; every descriptor in tests/fixtures/keyboards gets nothing; bad input prints nothing.
Needs systemd-analyze (Debian: systemd).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from headsetd.hid.decoder import has_telephony_inputs
from headsetd.hid.descriptor import MAX_DESCRIPTOR_BYTES, parse_report_descriptor
from headsetd.hid.recording import Recording
from headsetd.udev_probe import PROPERTY
from headsetd.udev_probe import main as probe_main
from tests.conftest import FIXTURES, REPO, require_tool

UNITS = REPO / "systemd"
KEYBOARDS = REPO / "tests" / "fixtures" / "keyboards"
SHIPPED_EXECUTABLE = "/usr/local/bin/headsetd"  # the shipped files' path, rewritten on install
MAX_EXPOSURE = 1.5
USER_UNIT_EXPOSURE = 6.2  # measured; a user manager cannot sandbox much without user namespaces
SHIPPED = (
    "headsetd.service",
    "headsetd-user.service",
    "headsetd.sysusers.conf",
    "70-headsetd.rules",
)


# --- udev-probe ---------------------------------------------------------------------------------


def _sysfs_node(root: Path, descriptor: bytes | None) -> Path:
    """A hidraw node's sysfs directory as udev's %S%p names it, its HID parent as `device`."""
    hid = root / "devices" / "pci0000:00" / "usb1" / "1-1" / "1-1:1.3" / "0003:0B0E:0307.0001"
    node = hid / "hidraw" / "hidraw0"
    node.mkdir(parents=True)
    (node / "device").symlink_to(hid)
    if descriptor is not None:
        (hid / "report_descriptor").write_bytes(descriptor)
    return node


def _probe(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert probe_main(list(argv)) == 0
    out, err = capsys.readouterr()
    assert err == ""
    return out


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*.hid")), ids=lambda p: p.name)
def test_probe_grants_what_the_daemon_watches(
    path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    descriptor = Recording.load(path).descriptor
    watched = has_telephony_inputs(parse_report_descriptor(descriptor))
    out = _probe(capsys, str(_sysfs_node(tmp_path, descriptor)))
    assert out == (f"{PROPERTY}=1\n" if watched else "")


def test_probe_anchors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Two fixtures by name, so the comparison above cannot be vacuous."""
    for i, (name, expected) in enumerate(
        [
            ("jabra_evolve-link-ms_0b0e-0307.hid", f"{PROPERTY}=1\n"),
            ("razer_kraken-kitty-v2_1532-0560.hid", ""),  # an empty Telephony collection
        ]
    ):
        descriptor = Recording.load(FIXTURES / name).descriptor
        assert _probe(capsys, str(_sysfs_node(tmp_path / str(i), descriptor))) == expected


@pytest.mark.parametrize("path", sorted(KEYBOARDS.glob("*.hid")), ids=lambda p: p.name)
def test_probe_never_grants_a_keyboard(
    path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    descriptor = Recording.load(path).descriptor
    assert _probe(capsys, str(_sysfs_node(tmp_path, descriptor))) == ""


def test_there_are_keyboards() -> None:
    assert len(list(KEYBOARDS.glob("*.hid"))) >= 2


@pytest.mark.parametrize(
    "descriptor",
    [
        None,  # no report_descriptor file
        b"",
        b"\xff" * 7,  # long items that run past the end
        b"\x05\x0b\x09\x05\xa1\x01",  # a collection never closed
        b"\x05\x0b" * (MAX_DESCRIPTOR_BYTES // 2 + 1),  # oversized
    ],
    ids=["missing", "empty", "garbage", "unclosed", "oversized"],
)
def test_probe_is_silent_on_bad_input(
    descriptor: bytes | None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _probe(capsys, str(_sysfs_node(tmp_path, descriptor))) == ""


def test_probe_is_silent_on_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    assert _probe(capsys) == ""
    assert _probe(capsys, "/nonexistent") == ""
    assert _probe(capsys, "a", "b") == ""


def test_probe_as_udev_runs_it_imports_only_the_parser(tmp_path: Path) -> None:
    """A process of its own, as udev starts it, and none of the daemon's heavy imports."""
    descriptor = Recording.load(FIXTURES / "yealink_wh66_6993-b02b.hid").descriptor
    node = _sysfs_node(tmp_path, descriptor)
    code = (
        "import sys, runpy; sys.argv = ['udev_probe', sys.argv[1]]\n"
        "try: runpy.run_module('headsetd.udev_probe', run_name='__main__')\n"
        "except SystemExit: pass\n"
        "heavy = {'structlog', 'prometheus_client', 'pyudev', 'hid', 'hidraw', 'usb', 'asyncio'}\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(node)], capture_output=True, text=True, check=False
    )
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == f"{PROPERTY}=1\n[]\n"


# --- the units ----------------------------------------------------------------------------------


def _exposure(unit: Path, *extra: str) -> tuple[float, subprocess.CompletedProcess[str]]:
    result = subprocess.run(
        [require_tool("systemd-analyze"), "security", "--offline=yes", *extra, str(unit)],
        capture_output=True,
        text=True,
        check=False,
    )
    match = re.search(r"Overall exposure level for \S+: ([\d.]+)", result.stdout)
    assert match, result.stdout + result.stderr
    return float(match.group(1)), result


def test_system_unit_exposure_is_at_most_1_5() -> None:
    exposure, _ = _exposure(UNITS / "headsetd.service")
    assert exposure <= MAX_EXPOSURE
    _, result = _exposure(UNITS / "headsetd.service", f"--threshold={int(MAX_EXPOSURE * 10)}")
    assert result.returncode == 0, result.stdout


def test_the_threshold_fails_a_weaker_unit() -> None:
    """The check above can fail: the user unit, scored the same way, is over the threshold."""
    exposure, result = _exposure(
        UNITS / "headsetd-user.service", f"--threshold={int(MAX_EXPOSURE * 10)}"
    )
    assert result.returncode != 0
    assert exposure <= USER_UNIT_EXPOSURE


def test_the_files_agree_on_names() -> None:
    """The rule matches what the probe prints and grants the group that sysusers creates and the
    service runs as; it runs before 73-seat-late.rules, which turns uaccess into an ACL."""
    rule = (UNITS / "70-headsetd.rules").read_text()
    service = (UNITS / "headsetd.service").read_text()
    sysusers = (UNITS / "headsetd.sysusers.conf").read_text()
    assert f'IMPORT{{program}}="{SHIPPED_EXECUTABLE} udev-probe %S%p"' in rule
    assert f'ENV{{{PROPERTY}}}!="1", GOTO="headsetd_end"' in rule
    assert 'GROUP="headsetd", MODE="0640"' in rule
    assert 'TAG+="uaccess"' in rule
    seat_late = "73-seat-late.rules"
    assert sorted([seat_late, "70-headsetd.rules"])[0] == "70-headsetd.rules"
    assert re.search(r"^u headsetd ", sysusers, re.MULTILINE)
    assert re.search(r"^User=headsetd$", service, re.MULTILINE)
    assert re.search(r"^DeviceAllow=char-hidraw r$", service, re.MULTILINE)
    for name in ("headsetd.service", "headsetd-user.service"):
        text = (UNITS / name).read_text()
        assert f"ExecStart={SHIPPED_EXECUTABLE} run $ARGS" in text
        assert "ExecReload=/bin/kill -HUP $MAINPID" in text
