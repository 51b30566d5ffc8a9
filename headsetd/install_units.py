"""`headsetd install-units [--root DIR] [--user]`: the shipped service files, put where systemd and
udev read them and pointed at this installation of headsetd.

The canonical files live in the repository's systemd/ folder and travel inside the package as
`headsetd.units`. A system install (as root) places:

    headsetd.service        /usr/local/lib/systemd/system/headsetd.service
    headsetd-user.service   /usr/local/lib/systemd/user/headsetd-user.service
    headsetd.sysusers.conf  /usr/local/lib/sysusers.d/headsetd.conf
    70-headsetd.rules       /usr/local/lib/udev/rules.d/70-headsetd.rules

/usr/local/lib is where systemd, udev and systemd-sysusers read files "installed by the
administrator" (systemd.unit(5), udev(7), sysusers.d(5)): a pip install is neither the
distribution's (/usr/lib) nor local configuration (/etc, left to the admin's drop-ins and
overrides, which win over these files). `--user` places only the user unit, for the calling
user, in ~/.config/systemd/user.

Each file's /usr/local/bin/headsetd becomes the headsetd of this installation. The system unit
hides home directories (ProtectHome=yes): when this installation lives under /home, /root or
/run/user, a drop-in (headsetd.service.d/50-install-paths.conf) shows the service exactly those
paths, read-only. Refused: a path systemd or udev would split or expand; for a system install
also an installation under /tmp or /var/tmp (the unit's PrivateTmp hides it) and code that a
user other than root can change (udev runs the probe as root on every hidraw node, and the
service reads the headsets): each of this installation's directories and their parents, and
every file of the headsetd package, must be root's and not group- or world-writable.

Never does: run systemctl, udevadm or systemd-sysusers (it prints what to run next: the admin
decides when a service starts), or write outside the listed paths.
"""

from __future__ import annotations

import argparse
import os
import re
import stat
import sys
import sysconfig
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path, PurePosixPath

import headsetd

SHIPPED_EXECUTABLE = "/usr/local/bin/headsetd"  # the path the shipped files name
SYSTEM_PLACES = (
    ("headsetd.service", "/usr/local/lib/systemd/system/headsetd.service"),
    ("headsetd-user.service", "/usr/local/lib/systemd/user/headsetd-user.service"),
    ("headsetd.sysusers.conf", "/usr/local/lib/sysusers.d/headsetd.conf"),
    ("70-headsetd.rules", "/usr/local/lib/udev/rules.d/70-headsetd.rules"),
)
INSTALL_PATHS_DROP_IN = "/usr/local/lib/systemd/system/headsetd.service.d/50-install-paths.conf"
USER_UNIT = "headsetd-user.service"

_HOME_ROOTS = (PurePosixPath("/home"), PurePosixPath("/root"), PurePosixPath("/run/user"))
# Trees to refuse, never to write to.
_TMP_ROOTS = (PurePosixPath("/tmp"), PurePosixPath("/var/tmp"))  # noqa: S108
# Nothing that systemd (specifiers %, variables $, quoting, spaces) or udev (spaces) would read
# as more than a path.
_PLAIN_PATH = re.compile(r"^/[A-Za-z0-9._+@/-]*$")


class InstallError(Exception):
    """The installation cannot be served by the units as they are; the message says why."""


@dataclass(frozen=True, slots=True)
class Installation:
    """Where this headsetd lives: its command and the directories it reads at run time."""

    executable: PurePosixPath
    paths: tuple[PurePosixPath, ...]

    @classmethod
    def current(cls) -> Installation:
        """This interpreter's headsetd: the console script beside it, its prefixes, its package."""
        executable = Path(sysconfig.get_path("scripts")) / "headsetd"
        if not os.access(executable, os.X_OK):
            raise InstallError(f"no headsetd command at {executable}: install the package first")
        package = Path(headsetd.__file__).resolve().parent
        candidates = {
            Path(p).resolve()
            for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix)
        }
        candidates |= {package.parent, executable.parent.resolve()}
        return cls(PurePosixPath(executable), outermost(PurePosixPath(p) for p in candidates))


def outermost(paths: Iterable[PurePosixPath]) -> tuple[PurePosixPath, ...]:
    """The paths not inside another one, sorted."""
    unique = sorted(set(paths))
    return tuple(p for p in unique if not any(o != p and p.is_relative_to(o) for o in unique))


def _under(path: PurePosixPath, roots: tuple[PurePosixPath, ...]) -> bool:
    return any(path.is_relative_to(root) for root in roots)


def check_paths(installation: Installation, system: bool) -> None:
    """Refuse an installation the units cannot name or (`system`) the system unit cannot see."""
    for path in (installation.executable, *installation.paths):
        if not _PLAIN_PATH.match(str(path)):
            raise InstallError(
                f"{path}: systemd and udev need a path of letters, digits and ._+@-/"
            )
        if system and _under(path, _TMP_ROOTS):
            raise InstallError(
                f"{path} is under a temporary directory, which the service's PrivateTmp hides: "
                "install headsetd elsewhere, e.g. in a venv in /opt/headsetd"
            )


def writable_by_others(
    installation: Installation, lstat: Callable[[str], os.stat_result] = os.lstat
) -> list[str]:
    """What a user other than root could change: each path and its parents (not followed into
    other trees), and every file of the headsetd package. Empty when the installation is safe
    for code that runs as root."""
    to_check: set[PurePosixPath] = set()
    for path in (installation.executable, *installation.paths):
        to_check.update((path, *path.parents))
    package = PurePosixPath(Path(headsetd.__file__).resolve().parent)
    for directory, _, files in os.walk(package):
        to_check.add(PurePosixPath(directory))
        to_check.update(PurePosixPath(directory, name) for name in files)
    found = []
    for path in sorted(to_check):
        try:
            st = lstat(str(path))
        except FileNotFoundError:
            continue
        if stat.S_ISLNK(st.st_mode):
            continue  # a link's own mode means nothing; its target is checked as a path above
        if st.st_uid != 0:
            found.append(f"{path} belongs to uid {st.st_uid}")
        elif st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            found.append(f"{path} is writable by group {st.st_gid} or by everyone")
    return found


def install_paths_drop_in(installation: Installation) -> str | None:
    """The drop-in that shows a service with ProtectHome=yes the installation's home paths."""
    home = [p for p in installation.paths if _under(p, _HOME_ROOTS)]
    if not home:
        return None
    return (
        "# Written by `headsetd install-units`: this headsetd lives under a home directory,\n"
        "# which ProtectHome=yes hides. The service sees an empty home tree plus these paths,\n"
        "# read-only.\n"
        "[Service]\n"
        "ProtectHome=tmpfs\n" + "".join(f"BindReadOnlyPaths={p}\n" for p in home)
    )


def shipped(name: str) -> str:
    """A shipped file's text, from the package (headsetd.units: the repository's systemd/)."""
    return resources.files("headsetd.units").joinpath(name).read_text(encoding="utf-8")


def point_at(text: str, executable: PurePosixPath) -> str:
    """The shipped text with the installation's headsetd in place of /usr/local/bin/headsetd."""
    return text.replace(SHIPPED_EXECUTABLE, str(executable))


def system_files(installation: Installation) -> dict[PurePosixPath, str | None]:
    """Target path -> content of a system install; None: a file to remove (stale drop-in)."""
    files: dict[PurePosixPath, str | None] = {
        PurePosixPath(target): point_at(shipped(name), installation.executable)
        for name, target in SYSTEM_PLACES
    }
    files[PurePosixPath(INSTALL_PATHS_DROP_IN)] = install_paths_drop_in(installation)
    return files


def user_unit_path() -> PurePosixPath:
    config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return PurePosixPath(config, "systemd", "user", USER_UNIT)


def write_files(root: Path, files: dict[PurePosixPath, str | None]) -> list[Path]:
    """Write (or remove) each file under `root`; returns the paths written."""
    written = []
    for target, content in files.items():
        path = root / target.relative_to("/")
        if content is None:
            path.unlink(missing_ok=True)
            continue
        path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        # Written beside and renamed over: udev or systemd never read half a file.
        partial = path.with_name(f".{path.name}.partial")
        partial.write_text(content, encoding="utf-8")
        partial.chmod(0o644)
        partial.replace(path)
        written.append(path)
    return written


def next_steps(root: Path, user: bool) -> list[str]:
    if user:
        return [
            "systemctl --user daemon-reload",
            f"systemctl --user enable --now {USER_UNIT}",
            "(hidraw access comes from 70-headsetd.rules: `sudo headsetd install-units` once)",
        ]
    if root != Path("/"):
        return [
            f"systemd-sysusers --root={root}",
            f"systemctl --root={root} enable headsetd.service",
            f"  or: systemctl --root={root} --global enable {USER_UNIT}",
        ]
    return [
        "systemd-sysusers                    # the headsetd group (udev rule, system unit)",
        "udevadm control --reload            # load 70-headsetd.rules",
        "udevadm trigger --subsystem-match=hidraw --action=change   # headsets plugged in now",
        "systemctl daemon-reload",
        "then one of:",
        "  systemctl enable --now headsetd.service        # system: HID and USB, no audio",
        f"  systemctl --global enable {USER_UNIT}   # each session: + mic (next login)",
    ]


def install(root: Path, user: bool, installation: Installation) -> list[Path]:
    check_paths(installation, system=not user)
    if user:
        return write_files(
            root,
            {user_unit_path(): point_at(shipped(USER_UNIT), installation.executable)},
        )
    unsafe = writable_by_others(installation)
    if unsafe:
        raise InstallError(
            "udev would run this headsetd as root, but other users can change it ("
            + "; ".join(unsafe[:5])
            + (f"; {len(unsafe) - 5} more" if len(unsafe) > 5 else "")
            + "): install it as root in a root-owned place, e.g. "
            "`python3 -m venv /opt/headsetd && /opt/headsetd/bin/pip install headsetd`"
        )
    return write_files(root, system_files(installation))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="headsetd install-units",
        description="Place headsetd's systemd units, sysusers.d file and udev rule.",
    )
    parser.add_argument("--root", default="/", help="install into this directory tree (default: /)")
    parser.add_argument(
        "--user",
        action="store_true",
        help="only the user unit, for the calling user (~/.config/systemd/user)",
    )
    args = parser.parse_args(argv)
    root = Path(args.root)
    try:
        if not root.is_dir():
            raise InstallError(f"--root {root}: not a directory")
        written = install(root, args.user, Installation.current())
    except (InstallError, OSError) as exc:
        print(f"headsetd: install-units: {exc}", file=sys.stderr)
        return 2
    print("headsetd: installed")
    for path in written:
        print(f"  {path}")
    print("Next:")
    for step in next_steps(root, args.user):
        print(f"  {step}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
