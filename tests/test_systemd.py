"""The service files: systemd's own checks of the units, the udev probe over every descriptor,
`install-units`, and the wheel that carries them.

- `systemd-analyze security --offline=yes`: the system unit's exposure <= 1.5. Its --threshold
  takes 0-100 (exposure x 10), so 1.5 is `--threshold=15`; the printed level is checked too.
- `systemd-analyze verify --man=no` on the units as installed (ExecStart must exist): exit 0
  AND nothing on stderr, since verify reports bad values on stderr and still exits 0.
- udev-probe: every HID fixture gets HEADSETD_TELEPHONY=1 exactly when the daemon would watch
  it; every descriptor in tests/fixtures/keyboards gets nothing; bad input prints nothing.
Needs systemd-analyze (Debian: systemd) and pip's network for the wheel's build backend.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path, PurePosixPath

import pytest

from headsetd import install_units
from headsetd.hid.decoder import has_telephony_inputs
from headsetd.hid.descriptor import MAX_DESCRIPTOR_BYTES, parse_report_descriptor
from headsetd.hid.recording import Recording
from headsetd.install_units import (
    Installation,
    InstallError,
    check_paths,
    install_paths_drop_in,
    writable_by_others,
)
from headsetd.udev_probe import PROPERTY, grants_read_access
from headsetd.udev_probe import main as probe_main
from tests.conftest import FIXTURES, REPO, require_tool

UNITS = REPO / "systemd"
KEYBOARDS = REPO / "tests" / "fixtures" / "keyboards"
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
    assert f'IMPORT{{program}}="{install_units.SHIPPED_EXECUTABLE} udev-probe %S%p"' in rule
    assert f'ENV{{{PROPERTY}}}!="1", GOTO="headsetd_end"' in rule
    assert 'GROUP="headsetd", MODE="0640"' in rule
    assert 'TAG+="uaccess"' in rule
    seat_late = "73-seat-late.rules"
    assert sorted([seat_late, "70-headsetd.rules"])[0] == "70-headsetd.rules"
    assert re.search(r"^u headsetd ", sysusers, re.MULTILINE)
    assert re.search(r"^User=headsetd$", service, re.MULTILINE)
    assert re.search(r"^DeviceAllow=char-hidraw r$", service, re.MULTILINE)
    # The system unit has no user session, so no audio server to watch.
    for name, audio in (("headsetd.service", "--no-audio "), ("headsetd-user.service", "")):
        text = (UNITS / name).read_text()
        assert f"ExecStart={install_units.SHIPPED_EXECUTABLE} run {audio}$ARGS" in text
        assert "ExecReload=/bin/kill -HUP $MAINPID" in text


# --- install-units ------------------------------------------------------------------------------


@pytest.fixture
def installed(tmp_path: Path) -> Path:
    """A system install under tmp_path, as `headsetd install-units --root` makes it."""
    assert install_units.main(["--root", str(tmp_path)]) == 0
    return tmp_path


def _verify(unit_dir: Path, unit: str) -> subprocess.CompletedProcess[str]:
    # SYSTEMD_UNIT_PATH (trailing colon: then the usual paths) also loads the unit's drop-ins.
    return subprocess.run(
        [require_tool("systemd-analyze"), "verify", "--man=no", unit],
        env={**os.environ, "SYSTEMD_UNIT_PATH": f"{unit_dir}:"},
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.parametrize(
    ("unit_dir", "unit"),
    [("systemd/system", "headsetd.service"), ("systemd/user", "headsetd-user.service")],
)
def test_installed_units_verify_without_a_word(installed: Path, unit_dir: str, unit: str) -> None:
    result = _verify(installed / "usr/local/lib" / unit_dir, unit)
    assert (result.returncode, result.stderr, result.stdout) == (0, "", "")


def test_verify_would_report_a_bad_value(installed: Path) -> None:
    """What the test above relies on: a bad value is reported on stderr, with exit status 0."""
    unit_dir = installed / "usr/local/lib/systemd/system"
    drop_in = unit_dir / "headsetd.service.d" / "99-bad.conf"
    drop_in.parent.mkdir(exist_ok=True)
    drop_in.write_text("[Service]\nProtectSystem=sometimes\n")
    result = _verify(unit_dir, "headsetd.service")
    assert result.returncode == 0
    assert "ignoring: sometimes" in result.stderr


def test_install_places_every_file_pointing_at_this_headsetd(installed: Path) -> None:
    executable = str(Installation.current().executable)
    for name, target in install_units.SYSTEM_PLACES:
        text = (installed / target.lstrip("/")).read_text()
        shipped = (UNITS / name).read_text()
        assert text == shipped.replace(install_units.SHIPPED_EXECUTABLE, executable)
        if install_units.SHIPPED_EXECUTABLE in shipped:
            assert executable in text


def test_install_again_replaces_and_drops_a_stale_drop_in(installed: Path) -> None:
    drop_in = installed / install_units.INSTALL_PATHS_DROP_IN.lstrip("/")
    drop_in.parent.mkdir(parents=True, exist_ok=True)
    drop_in.write_text("stale")
    unit = installed / install_units.SYSTEM_PLACES[0][1].lstrip("/")
    unit.write_text("old")
    assert install_units.main(["--root", str(installed)]) == 0
    assert unit.read_text() != "old"
    expected = install_paths_drop_in(Installation.current())
    assert (drop_in.read_text() if drop_in.exists() else None) == expected


def test_user_install_places_only_the_user_unit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    assert install_units.main(["--user"]) == 0
    placed = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert placed == [tmp_path / "config/systemd/user/headsetd-user.service"]
    assert "systemctl --user enable --now headsetd-user.service" in capsys.readouterr().out


def test_install_says_what_to_run_next(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert install_units.main(["--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"systemd-sysusers --root={tmp_path}" in out
    assert f"systemctl --root={tmp_path} enable headsetd.service" in out
    steps = install_units.next_steps(Path("/"), user=False)
    assert steps[0].startswith("systemd-sysusers")  # the group exists before udev uses it
    assert any(s.startswith("udevadm control --reload") for s in steps)
    assert any("systemctl enable --now headsetd.service" in s for s in steps)
    assert any("systemctl --global enable headsetd-user.service" in s for s in steps)


def test_install_refuses_a_missing_root(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert install_units.main(["--root", str(tmp_path / "nowhere")]) == 2
    assert "not a directory" in capsys.readouterr().err


def _installation(*paths: str) -> Installation:
    return Installation(
        PurePosixPath(paths[0]) / "bin" / "headsetd", tuple(map(PurePosixPath, paths))
    )


def test_home_paths_get_a_drop_in_that_shows_them() -> None:
    assert install_paths_drop_in(_installation("/opt/headsetd", "/usr")) is None
    drop_in = install_paths_drop_in(_installation("/opt/headsetd", "/root/.pyenv/versions/3.11"))
    assert drop_in is not None
    assert "ProtectHome=tmpfs\nBindReadOnlyPaths=/root/.pyenv/versions/3.11\n" in drop_in
    assert "/opt/headsetd" not in drop_in


@pytest.mark.parametrize(
    "path", ["/tmp/venv", "/var/tmp/venv", "/opt/my venv", "/opt/100%", "/opt/$HOME"]
)
def test_unusable_paths_are_refused(path: str) -> None:
    with pytest.raises(InstallError):
        check_paths(_installation("/opt/headsetd", path), system=True)


def test_a_user_install_may_live_in_tmp() -> None:
    """No PrivateTmp in the user unit, and nothing runs as root."""
    check_paths(_installation("/tmp/venv"), system=False)
    with pytest.raises(InstallError):
        check_paths(_installation("/tmp/my venv"), system=False)


def test_code_others_can_change_is_found(tmp_path: Path) -> None:
    real = os.lstat(tmp_path)

    def fake_lstat(path: str) -> os.stat_result:
        fields = list(real)
        if path.startswith("/opt/user-venv"):
            fields[4] = 1000  # st_uid
        if path == "/opt/open":
            fields[0] = real.st_mode | 0o777
        if path.startswith("/opt"):
            return os.stat_result(fields)
        return os.lstat(path)

    assert writable_by_others(_installation("/opt/fine"), fake_lstat) == []
    found = writable_by_others(_installation("/opt/user-venv"), fake_lstat)
    assert any("/opt/user-venv belongs to uid 1000" in f for f in found)
    found = writable_by_others(_installation("/opt/open/venv"), fake_lstat)
    assert any("/opt/open is writable" in f for f in found)


# --- the wheel ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel `pip wheel` builds from a copy of the sources (so that the build's own files,
    build/ and *.egg-info, stay out of the tree)."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(REPO / name, source)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for folder in ("headsetd", "systemd"):
        shutil.copytree(REPO / folder, source / folder, ignore=ignore)
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(work), source],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    (built,) = work.glob("headsetd-*.whl")
    return built


def test_the_wheel_carries_the_units_the_license_and_every_package(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in SHIPPED:
        assert f"headsetd/units/{name}" in names
    # setuptools >= 75 files it under .dist-info/licenses/ (PEP 639), older ones beside METADATA.
    assert any(".dist-info/" in n and n.endswith("/LICENSE") for n in names)
    assert (REPO / "LICENSE").read_text().startswith("MIT License\n")
    assert 'license = { text = "MIT" }' in (REPO / "pyproject.toml").read_text()
    # pyproject lists its packages (systemd/ needs the mapping): a new one must be listed too.
    modules = {p.relative_to(REPO).as_posix() for p in (REPO / "headsetd").rglob("*.py")}
    assert sorted(modules - names) == []


def test_install_units_works_from_an_installed_wheel(wheel: Path, tmp_path: Path) -> None:
    """pip install of the wheel (no editable checkout behind it) into a fresh venv, then its
    install-units: the unit comes out of the installed package, pointing at that venv."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps", wheel],
        check=True,
        capture_output=True,
    )
    result = subprocess.run(
        [python, "-I", "-m", "headsetd.install_units", "--user"],  # -I: no checkout on the path
        env={**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "config")},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    unit = (tmp_path / "config/systemd/user/headsetd-user.service").read_text()
    assert f"ExecStart={venv}/bin/headsetd run $ARGS" in unit


@pytest.mark.parametrize("path", sorted(KEYBOARDS.glob("*.hid")), ids=lambda p: p.name)
def test_a_keyboard_is_never_watched(path: Path) -> None:
    """The daemon and the udev rule agree: a descriptor that can type is never read, even one
    that also declares a Telephony collection with inputs."""
    descriptor = parse_report_descriptor(Recording.load(path).descriptor)
    assert not has_telephony_inputs(descriptor)
    assert not grants_read_access(descriptor)
