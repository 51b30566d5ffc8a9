"""Least privilege on the real kernel (issue 9): the udev rule installed as an administrator
installs it, and `headsetd run` as the unprivileged system user with nothing but the rule's
access to hidraw nodes.

Owns: the install in the guest, as the README's service section says (this venv's `headsetd
install-units`, `systemd-sysusers`, `udevadm control --reload`, `udevadm trigger`, `udevadm
settle`); what udev then makes of each hidraw node (the HEADSETD_TELEPHONY property in
`udevadm info`, the node's owner, group and mode) for every fixture, every keyboard fixture and
the Blackwire 3220's three interfaces; the probe's cost per node and the time from a plug to the
node's group; and headsetd as the `headsetd` user, no capability, no other group: what it reads
(hook and mute through /metrics, `headsetd_device_readable`), what it cannot (a keyboard's node,
the headset's other interfaces), what it and `headsetd list` say of a headset whose node is not
readable.

Never: loosens a permission so that headsetd works (one headset's node is put back to the
kernel's default on purpose, to see what headsetd says of it); opens a keyboard's node as root;
leaves the rule installed for a later module (the module removes it and reloads udev).

This module runs last: it changes the guest's users, groups and udev rules. The session's root
daemon (test_3, test_4) keeps running beside the service user's own.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import resource
import shlex
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gadget
import hidreport
import pytest
from conftest import RUN, Plugged, UdevRecorder, measure
from desk import BLACKWIRE, CONSUMER, TELEPHONY, VENDOR, blackwire_headset, vtest_gadget
from running import (
    IN_ATTRIB,
    IN_CREATE,
    Daemon,
    FdSampler,
    NodeWatch,
    credentials,
    device_id,
    is_event,
    launch_daemon,
    list_rows,
    metric,
    scrape,
    start_list,
    wait_serving,
)

SERVICE_USER = "headsetd"  # systemd/headsetd.sysusers.conf
PROPERTY = "HEADSETD_TELEPHONY"  # what the probe prints and the rule matches
SHIPPED_RULE = hidreport.REPO / "systemd" / "70-headsetd.rules"
SHIPPED_COMMAND = "/usr/local/bin/headsetd"  # the path the shipped files name
RULE = Path("/usr/local/lib/udev/rules.d/70-headsetd.rules")
DROP_IN = Path("/usr/local/lib/systemd/system/headsetd.service.d/50-install-paths.conf")
VENV_HEADSETD = Path(sys.executable).parent / "headsetd"  # this venv's command
USER_LISTEN = "127.0.0.1:9478"  # beside the session daemon's port
HOME_ROOTS = ("/home", "/root", "/run/user")  # what ProtectHome= hides
BINDS_DIR = "/run/headsetd-vm-binds"
BEFORE_INSTALL = "jabra_biz-2400-ii_0b0e-2453"  # plugged before the install: the trigger's job
PUT_BACK = "yealink_wh66_6993-b02b"  # its node put back to the kernel's default mode
PROBE_RUNS = 2  # per node measured (one granted, one keyboard); each is a Python start-up
OPEN_ATTEMPTS = """\
import errno, json, sys
out = {}
for mode in ("rb", "r+b"):
    for path in sys.argv[1:]:
        try:
            open(path, mode, buffering=0).close()
            out[f"{mode} {path}"] = "ok"
        except OSError as e:
            out[f"{mode} {path}"] = errno.errorcode.get(e.errno, str(e.errno))
print(json.dumps(out))
"""


@dataclass(frozen=True)
class Node:
    """A hidraw node as the kernel and udev have it: owner, group, mode, udev properties."""

    path: str
    uid: int
    gid: int
    mode: int
    properties: dict[str, str] = field(compare=False)

    @property
    def granted(self) -> bool:
        return self.properties.get(PROPERTY) == "1"

    def describe(self) -> str:
        owner = f"{pwd.getpwuid(self.uid).pw_name}:{self.gid}"
        return f"{self.path} {owner} {self.mode:04o} {PROPERTY}={self.properties.get(PROPERTY)}"


def nodes(paths: list[str]) -> dict[str, Node]:
    """stat() and `udevadm info --query=property` of each node (one udevadm for all)."""
    r = subprocess.run(
        ["udevadm", "info", "--query=property", *paths],
        capture_output=True,
        text=True,
        check=True,
    )
    blocks: list[dict[str, str]] = []
    for line in r.stdout.splitlines():
        if line.startswith("DEVPATH="):  # each device's properties begin with its DEVPATH
            blocks.append({})
        if "=" in line and blocks:
            key, _, value = line.partition("=")
            blocks[-1][key] = value
    props = {p["DEVNAME"]: p for p in blocks if "DEVNAME" in p}
    out = {}
    for path in paths:
        st = os.stat(path)
        assert path in props, f"udevadm info printed nothing for {path}:\n{r.stdout[-3000:]}"
        out[path] = Node(path, st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode), props[path])
    return out


def run(argv: list[str], timeout: float = 120) -> str:
    """The command's stdout; it must exit 0."""
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    assert r.returncode == 0, f"{shlex.join(argv)}: exit {r.returncode}\n{r.stdout}\n{r.stderr}"
    return r.stdout


def as_service_user(drop_in: str | None) -> list[str]:
    """The command line prefix that runs a program as headsetd.service runs its ExecStart, as
    far as files and devices go: user and group `headsetd`, no other group (the sysusers user
    is in none), no capability in any set, no_new_privs; the home directories as the unit sees
    them (ProtectHome: an empty tmpfs, plus the paths the install-paths drop-in binds, read
    only), in a mount namespace of its own. Not emulated (no systemd in the guest; the nspawn
    tests run the unit itself): DeviceAllow, PrivateUsers, the system-call filter."""
    binds = re.findall(r"^BindReadOnlyPaths=(\S+)$", drop_in or "", re.MULTILINE)
    homes = [h for h in HOME_ROOTS if os.path.isdir(h)]
    q = shlex.quote
    lines = ["set -eu"]
    for i, path in enumerate(binds):  # kept aside before the tmpfs hides them
        lines.append(f"mkdir -p {BINDS_DIR}/{i} && mount --rbind {q(path)} {BINDS_DIR}/{i}")
    lines += [f"mount -t tmpfs -o mode=0755 tmpfs {q(h)}" for h in homes]
    for i, path in enumerate(binds):
        lines += [
            f"mkdir -p {q(path)} && mount --rbind {BINDS_DIR}/{i} {q(path)}",
            f"mount -o remount,bind,ro {q(path)} && umount -l {BINDS_DIR}/{i}",
        ]
    lines += [f"mount -o remount,ro {q(h)}" for h in homes]
    lines.append("export HOME=/")  # the sysusers user's home, as systemd would set it
    lines.append(
        f"exec setpriv --reuid={SERVICE_USER} --regid={SERVICE_USER} --init-groups "
        '--inh-caps=-all --bounding-set=-all --no-new-privs -- "$@"'
    )
    script = "\n".join(lines)
    return ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script, "sh"]


# ------------------------------------------------------------------------------------------------
# the install


@dataclass
class Install:
    output: str  # what install-units printed
    rule: str  # the installed rule's text
    drop_in: str | None
    before: Node  # the headset plugged before the install: its node then
    after: Node  # and once the rule is loaded and triggered
    seconds: dict[str, float]  # each step's wall time
    udevd_log: str  # what udevd wrote from the reload to the settle


@pytest.fixture(scope="module")
def installed(all_plugged: Plugged) -> Iterator[Install]:
    """One fixture plugged (the others not), then the install as the README's service section
    gives it. `udevadm trigger --action=change` is what grants a headset plugged before."""
    g = all_plugged.gadgets[BEFORE_INSTALL]
    others = [x for s, x in all_plugged.gadgets.items() if s != BEFORE_INSTALL and x.udc]
    for x in others:
        x.unplug_nowait()
    for x in others:
        x.wait_gone()
    if not g.udc:
        g.plug()
    node = g.hidraw_node(0)
    before = nodes([node])[node]
    udevd_err = RUN / "udevd.err"
    log_from = udevd_err.stat().st_size if udevd_err.exists() else 0
    seconds: dict[str, float] = {}
    output = ""
    for step, argv in [
        ("install_units", [str(VENV_HEADSETD), "install-units"]),
        ("sysusers", ["systemd-sysusers"]),
        ("reload", ["udevadm", "control", "--reload"]),
        ("trigger", ["udevadm", "trigger", "--subsystem-match=hidraw", "--action=change"]),
        ("settle", ["udevadm", "settle", "--timeout=60"]),
    ]:
        t0 = time.monotonic()
        out = run(argv)
        seconds[step] = round(time.monotonic() - t0, 2)
        if step == "install_units":
            output = out
    udevd_log = (
        udevd_err.read_bytes()[log_from:].decode(errors="replace") if udevd_err.exists() else ""
    )
    measure("install_s", **seconds)
    yield Install(
        output,
        RULE.read_text(),
        DROP_IN.read_text() if DROP_IN.exists() else None,
        before,
        nodes([node])[node],
        seconds,
        udevd_log,
    )
    RULE.unlink(missing_ok=True)  # later modules: the guest's udev as before
    subprocess.run(["udevadm", "control", "--reload"], check=False)


@pytest.fixture(scope="module")
def service_user(installed: Install) -> list[str]:
    return as_service_user(installed.drop_in)


def test_install_units_points_the_rule_at_this_headsetd(installed: Install) -> None:
    """install-units rewrites /usr/local/bin/headsetd to this venv's command and nothing else;
    systemd-sysusers makes the system user and group; udevd loads the rule without a word."""
    print(installed.output)
    print(f"steps (s): {installed.seconds}; drop-in:\n{installed.drop_in}")
    shipped = SHIPPED_RULE.read_text()
    assert installed.rule == shipped.replace(SHIPPED_COMMAND, str(VENV_HEADSETD))
    assert f'IMPORT{{program}}="{VENV_HEADSETD} udev-probe %S%p"' in installed.rule
    interpreter = Path(sys.base_prefix).resolve()
    if any(interpreter.is_relative_to(h) for h in HOME_ROOTS):
        assert installed.drop_in is not None
        assert f"BindReadOnlyPaths={interpreter}\n" in installed.drop_in
    user = pwd.getpwnam(SERVICE_USER)
    assert 0 < user.pw_uid < 1000, user  # a system user
    assert user.pw_gid == group_id(), user
    assert user.pw_shell.endswith("nologin"), user
    assert "70-headsetd" not in installed.udevd_log, installed.udevd_log


def group_id() -> int:
    import grp  # noqa: PLC0415  (the group exists once the install ran)

    return grp.getgrnam(SERVICE_USER).gr_gid


def kernel_default(n: Node) -> bool:
    """What devtmpfs makes a hidraw node (hidraw sets no mode): root:root 0600."""
    return (n.uid, n.gid, n.mode) == (0, 0, 0o600)


def granted_as_the_rule_says(n: Node) -> bool:
    tags = n.properties.get("TAGS", "")
    return n.granted and (n.uid, n.gid, n.mode) == (0, group_id(), 0o640) and ":uaccess:" in tags


def test_trigger_grants_a_headset_plugged_before_the_install(installed: Install) -> None:
    print(f"before: {installed.before.describe()}\nafter: {installed.after.describe()}")
    assert kernel_default(installed.before)
    assert not installed.before.granted
    assert granted_as_the_rule_says(installed.after), installed.after.properties


# ------------------------------------------------------------------------------------------------
# every node plugged after it


@dataclass
class Plug:
    """Gadgets plugged together with the rule loaded, and what became of their nodes."""

    gadgets: dict[str, gadget.Gadget]  # every fixture by stem, every keyboard by "kbd:<stem>"
    fixtures: dict[str, hidreport.Fixture]
    nodes: dict[str, Node]  # just after udev settled
    t_plug: float


def plug_and_time(
    where: str, gadgets: list[gadget.Gadget], udev_events: UdevRecorder
) -> tuple[float, dict[str, Node]]:
    """Plug `gadgets` together; for every node udev granted: when devtmpfs made it, when its
    permissions last changed (devtmpfs sets them as it makes the node, then udevd applies the
    rule's GROUP/MODE once the probe has answered) and when udevd passed its add event on (ms
    after the plug); returns the plug's time.time() and every node once udev settled."""
    watch = NodeWatch("/dev", IN_CREATE | IN_ATTRIB)
    t_plug = time.time()
    try:
        gadget.plug_all(gadgets, timeout=180)
    finally:
        watch.stop()
    plug_s = time.time() - t_plug
    paths = [n for g in gadgets for n in g.hidraw_nodes()]
    got = nodes(paths)
    created, changed, passed_on = [], [], []
    for path, n in got.items():
        if not n.granted:
            continue
        made, attrib = watch.times(path, IN_CREATE, t_plug), watch.times(path, IN_ATTRIB, t_plug)
        udev = [
            e.t
            for e in udev_events.snapshot()
            if e.action == "add" and e.device_node == path and e.t >= t_plug
        ]
        if made and attrib and udev:
            created.append(round((made[0] - t_plug) * 1000))
            changed.append(round((attrib[-1] - t_plug) * 1000))
            passed_on.append(round((udev[0] - t_plug) * 1000))
    measure(
        "plug_to_group_ms",
        where=where,
        gadgets=len(gadgets),
        nodes=len(paths),
        granted=len(changed),
        plug_until_settled_s=round(plug_s, 2),
        node_created=created,
        group_set=changed,
        udev_add_passed_on=passed_on,
        root_only_window=[c - m for c, m in zip(changed, created, strict=True)],
    )
    return t_plug, got


@pytest.fixture(scope="module")
def plugged(installed: Install, all_plugged: Plugged, udev_events: UdevRecorder) -> Iterator[Plug]:
    """The other fixtures and every keyboard fixture (under test ids), plugged together."""
    keyboards = {
        f"kbd:{fx.stem}": vtest_gadget(
            fx.name[:60], f"VTKB5{i:03d}", f"kbd{i}", hid=[gadget.HidFunction.of(fx)]
        ).create()
        for i, fx in enumerate(hidreport.keyboard_fixtures())
    }
    fixtures = {
        **all_plugged.fixtures,
        **{f"kbd:{fx.stem}": fx for fx in hidreport.keyboard_fixtures()},
    }
    rest = [g for s, g in all_plugged.gadgets.items() if s != BEFORE_INSTALL]
    t_plug, got = plug_and_time("fixtures_and_keyboards", [*rest, *keyboards.values()], udev_events)
    pre = all_plugged.gadgets[BEFORE_INSTALL].hidraw_node(0)
    got[pre] = installed.after
    yield Plug({**all_plugged.gadgets, **keyboards}, fixtures, got, t_plug)
    for g in keyboards.values():
        g.destroy()


def test_the_probe_on_the_real_kernel_costs_per_node(installed: Install, plugged: Plug) -> None:
    """The rule's program exactly as installed, on a granted node and on a keyboard's, against
    the descriptors the kernel holds in sysfs: what udev pays for each hidraw node."""
    (program,) = re.findall(r'IMPORT\{program\}="([^"]+)"', installed.rule)
    cases = {
        "granted": plugged.gadgets[BEFORE_INSTALL],
        "keyboard": next(g for s, g in plugged.gadgets.items() if s.startswith("kbd:")),
    }
    figures: dict[str, Any] = {}
    for case, g in cases.items():
        node = g.hidraw_node(0)
        syspath = f"/sys/class/hidraw/{Path(node).name}"
        argv = program.replace("%S%p", os.path.realpath(syspath)).split()
        walls, cpus = [], []
        for _ in range(PROBE_RUNS):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.monotonic()
            r = subprocess.run(argv, capture_output=True, text=True, check=False)
            walls.append(round((time.monotonic() - t0) * 1000))
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
            cpus.append(round(cpu * 1000))
            assert (r.returncode, r.stderr) == (0, ""), r
            assert r.stdout == (f"{PROPERTY}=1\n" if case == "granted" else ""), r.stdout
        figures[case] = {"wall_ms": walls, "cpu_ms": cpus}
    measure("udev_probe_per_node", runs=PROBE_RUNS, **figures)
    print(figures)


def expected_grant(fx: hidreport.Fixture) -> bool:
    """The tier's own reading of the rule: telephony inputs, and nothing that types."""
    return fx.telephony and not fx.types


def test_udev_grants_exactly_the_telephony_nodes(plugged: Plug, hotplugged: Hotplug) -> None:
    """Every fixture's node, every keyboard fixture's, the Blackwire 3220's three: granted
    (the property, root:headsetd 0640, the uaccess tag) exactly where the descriptor has
    telephony inputs and no keyboard; every other node as the kernel made it."""
    cases = [
        (stem, plugged.nodes[g.hidraw_node(0)], plugged.fixtures[stem])
        for stem, g in plugged.gadgets.items()
    ]
    cases += [
        (f"blackwire interface {i}", hotplugged.nodes[hotplugged.headset.hidraw_node(i)], fx)
        for i, fx in enumerate(BLACKWIRE)
    ]
    problems = []
    for name, n, fx in cases:
        print(f"{name:60} {n.describe()}")
        if expected_grant(fx):
            ok = granted_as_the_rule_says(n)
        else:
            ok = kernel_default(n) and PROPERTY not in n.properties
        if not ok:
            problems.append(f"{name}: {n.describe()} {n.properties.get('TAGS')}")
    assert sum(expected_grant(fx) for _, _, fx in cases) >= 10
    assert any(fx.types and fx.telephony for _, _, fx in cases), "no keyboard with telephony"
    assert not problems, problems


# ------------------------------------------------------------------------------------------------
# headsetd as the service user


@dataclass
class UserRun:
    daemon: Daemon
    fd_table: FdSampler
    rows: dict[str, dict[str, Any]]  # `headsetd list --json` as the user, by device
    put_back: str  # the node put back to the kernel's default before the start


@pytest.fixture(scope="module")
def user_run(plugged: Plug, service_user: list[str]) -> Iterator[UserRun]:
    """`headsetd run` and `headsetd list --json` as the service user, started side by side, one
    headset's node first put back to root:root 0600 (as with no rule)."""
    put_back = plugged.gadgets[PUT_BACK].hidraw_node(0)
    os.chown(put_back, 0, 0)
    os.chmod(put_back, 0o600)
    command = [*service_user, str(VENV_HEADSETD)]
    listing = start_list(command)
    d = launch_daemon(command, USER_LISTEN)
    fds = FdSampler(d.pid)  # from its first instruction: what it ever holds
    t0 = time.monotonic()
    try:
        wait_serving(d)
        measure("service_user_start_to_metrics_s", value=round(time.monotonic() - t0, 2))
        rows = {row["device"]: row for row in list_rows(listing)}
        yield UserRun(d, fds, rows, put_back)
    finally:
        fds.stop()
        d.stop()
        if listing.poll() is None:
            listing.kill()
            listing.wait()
        d.keep_log(RUN / "headsetd-service-user.jsonl")


def test_the_daemon_runs_as_the_service_user_without_privilege(user_run: UserRun) -> None:
    user = pwd.getpwnam(SERVICE_USER)
    creds = credentials(user_run.daemon.pid)
    print(creds)
    fds = Path(f"/proc/{user_run.daemon.pid}/fd")
    print("its fd links:", sorted(os.readlink(fds / fd) for fd in os.listdir(fds)))
    uid, gid = str(user.pw_uid), str(user.pw_gid)
    assert creds["Uid"] == " ".join([uid] * 4), creds
    assert creds["Gid"] == " ".join([gid] * 4), creds
    assert creds["Groups"] == gid, creds
    for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(creds[cap], 16) == 0, creds
    assert creds["NoNewPrivs"] == "1", creds


def granted_fixtures(plugged: Plug) -> dict[str, gadget.Gadget]:
    return {
        s: g
        for s, g in plugged.gadgets.items()
        if expected_grant(plugged.fixtures[s]) and s != PUT_BACK
    }


def test_the_service_user_reads_every_granted_headset(user_run: UserRun, plugged: Plug) -> None:
    """Every granted fixture is connected; each one with controls to decode is read: its node
    in the daemon's fd table, headsetd_device_readable 1. (A descriptor whose telephony inputs
    decode to no control, the SideWinder's, is tracked but never opened.)"""
    d = user_run.daemon
    read, problems = [], []
    for stem, g in granted_fixtures(plugged).items():
        dev, node = device_id(g), g.hidraw_node(0)
        connected = d.wait(is_event("device_connected", dev), timeout=60, what=dev)
        if not connected.record.get("controls"):
            continue
        gadget.wait_for(lambda n=node: user_run.fd_table.held_since(n, 0), 30, f"{dev} held")
        readable = metric(scrape(d.listen), "headsetd_device_readable", device=dev)
        if readable != 1:
            problems.append(f"{stem}: headsetd_device_readable {readable}")
        read.append(stem)
    assert not problems, problems
    assert len(read) >= 10, read
    print(f"{len(read)} granted headsets read by uid {pwd.getpwnam(SERVICE_USER).pw_uid}")


def test_a_headset_without_the_rules_access_shows_as_unreadable(
    user_run: UserRun, plugged: Plug
) -> None:
    """The node put back to root:root 0600: the daemon connects the headset, its open fails
    (access_denied), headsetd_device_readable is 0; `list` as the same user says so, with the
    fix."""
    d, g = user_run.daemon, plugged.gadgets[PUT_BACK]
    dev = device_id(g)
    failed = d.wait(is_event("read_failed", dev), timeout=60, what=f"read_failed for {dev}")
    print(f"log: {failed.record}\nlist: {json.dumps(user_run.rows.get(dev), indent=1)}")
    assert failed.record.get("kind") == "access_denied", failed.record
    assert "Permission denied" in str(failed.record.get("detail")), failed.record
    m = scrape(d.listen)
    assert metric(m, "headsetd_device_connected", device=dev) == 1
    assert metric(m, "headsetd_device_readable", device=dev) == 0
    assert metric(m, "headsetd_device_errors_total", device=dev, kind="access_denied") == 1
    assert user_run.put_back not in user_run.fd_table.seen
    row = user_run.rows.get(dev)
    assert row is not None, sorted(user_run.rows)
    assert row["readable"] is False, row
    assert "install-units" in row["fix"], row
    for s, other in granted_fixtures(plugged).items():
        r = user_run.rows.get(device_id(other))
        assert r is not None, f"{s} not listed"
        assert (r["readable"], "fix" in r) == (True, False), r


@dataclass
class Hotplug:
    headset: gadget.Gadget  # the Blackwire 3220, three HID interfaces
    nodes: dict[str, Node]
    t_plug: float
    mark: int  # the service user's daemon's log index before the plug


@pytest.fixture(scope="module")
def hotplugged(user_run: UserRun, udev_events: UdevRecorder) -> Iterator[Hotplug]:
    """The Blackwire 3220 plugged into the running service user's daemon."""
    g = blackwire_headset("VTHS5001", "lp_headset", audio=None).create()
    mark = user_run.daemon.mark()
    t_plug, got = plug_and_time("blackwire_hotplug", [g], udev_events)
    yield Hotplug(g, got, t_plug, mark)
    g.destroy()


def test_a_hotplugged_headset_is_read_by_the_service_user(
    user_run: UserRun, hotplugged: Hotplug
) -> None:
    """udevd passes the add event on only once its rules ran: the daemon's open finds the group
    already set. Only the telephony interface is held; the consumer and vendor ones are not."""
    d, g = user_run.daemon, hotplugged.headset
    dev = device_id(g)
    connected = d.wait(is_event("device_connected", dev), since=hotplugged.mark, timeout=60)
    telephony = g.hidraw_node(TELEPHONY)
    gadget.wait_for(lambda: user_run.fd_table.held_since(telephony, hotplugged.t_plug), 10, "hold")
    measure(
        "service_user_hotplug_ms",
        device_connected=round((connected.stamped - hotplugged.t_plug) * 1000),
    )
    assert not d.device_events("read_failed", dev, hotplugged.mark)
    assert metric(scrape(d.listen), "headsetd_device_readable", device=dev) == 1
    for function in (CONSUMER, VENDOR):
        assert g.hidraw_node(function) not in user_run.fd_table.seen


def call_cycle(d: Daemon, g: gadget.Gadget, fx: hidreport.Fixture, function: int) -> None:
    """Answer, press mute (and release), hang up; each seen in the log and in /metrics."""
    dev = device_id(g)
    rb = hidreport.ReportBuilder(fx.parsed())
    m0 = scrape(d.listen)

    def count(name: str, **labels: str) -> float:
        return metric(m0, name, device=dev, **labels) or 0

    since = d.mark()
    for usage, value in (
        (hidreport.HOOK_SWITCH, 1),
        (hidreport.PHONE_MUTE, 1),
        (hidreport.PHONE_MUTE, 0),
        (hidreport.HOOK_SWITCH, 0),
    ):
        g.send(rb.set(usage, value), function=function)
    d.wait(
        lambda x: is_event("hook_changed", dev)(x) and x.record.get("off_hook") is False,
        since=since,
        what=f"{dev} back on hook",
    )
    hooks = [x.record.get("off_hook") for x in d.device_events("hook_changed", dev, since)]
    assert hooks == [True, False], hooks
    assert len(d.device_events("mute_pressed", dev, since)) == 1
    m = scrape(d.listen)
    changes = "headsetd_device_hook_changes_total"
    assert metric(m, changes, device=dev, state="off_hook") == count(changes, state="off_hook") + 1
    assert metric(m, changes, device=dev, state="on_hook") == count(changes, state="on_hook") + 1
    mutes = "headsetd_device_mute_presses_total"
    assert metric(m, mutes, device=dev) == count(mutes) + 1
    assert metric(m, "headsetd_device_off_hook", device=dev) == 0
    assert metric(m, "headsetd_device_readable", device=dev) == 1


def test_hook_and_mute_reach_the_service_users_metrics(
    user_run: UserRun, plugged: Plug, hotplugged: Hotplug
) -> None:
    """On the headset granted by the install's trigger and on the hot-plugged Blackwire."""
    call_cycle(
        user_run.daemon,
        plugged.gadgets[BEFORE_INSTALL],
        plugged.fixtures[BEFORE_INSTALL],
        function=0,
    )
    call_cycle(user_run.daemon, hotplugged.headset, BLACKWIRE[TELEPHONY], function=TELEPHONY)


def test_the_service_user_cannot_open_a_keyboard_or_another_interface(
    user_run: UserRun, plugged: Plug, hotplugged: Hotplug, service_user: list[str]
) -> None:
    """Opened as the service user: every keyboard's node, the Blackwire's consumer and vendor
    nodes and the node put back: EACCES, read or write. A granted node: read yes, write no.
    From outside: no such node ever in the daemon's fd table. A keyboard whose descriptor also
    has telephony inputs: when the daemon watches it (today it does: it decides on telephony
    inputs alone, the rule also on keyboards), its own open fails with EACCES (read_failed,
    access_denied); what it and `list` said of each keyboard is recorded."""
    keyboards = {s: g.hidraw_node(0) for s, g in plugged.gadgets.items() if s.startswith("kbd:")}
    denied = [
        *keyboards.values(),
        hotplugged.headset.hidraw_node(CONSUMER),
        hotplugged.headset.hidraw_node(VENDOR),
        user_run.put_back,
    ]
    granted = hotplugged.headset.hidraw_node(TELEPHONY)
    out = run([*service_user, sys.executable, "-c", OPEN_ATTEMPTS, *denied, granted])
    results = json.loads(out.strip().splitlines()[-1])
    print(json.dumps(results, indent=1))
    want = {f"{m} {p}": "EACCES" for m in ("rb", "r+b") for p in denied}
    want |= {f"rb {granted}": "ok", f"r+b {granted}": "EACCES"}
    assert results == want
    d = user_run.daemon
    for stem, node in keyboards.items():
        assert node not in user_run.fd_table.seen, f"the service user's daemon held {node}"
        g = plugged.gadgets[stem]
        dev = device_id(g)
        story = [x.record for x in d.device_lines(dev)]
        print(f"{stem}: the daemon's lines for {dev}: {story}")
        measure(
            "keyboard_seen_by_the_service_user",
            keyboard=stem,
            connected=bool(d.device_events("device_connected", dev)),
            read_failed=[str(x.record.get("kind")) for x in d.device_events("read_failed", dev)],
            listed=user_run.rows.get(dev, {}).get("readable", "not listed"),
        )
        if not plugged.fixtures[stem].telephony:  # looked at in sysfs, left alone
            assert {str(x.get("event")) for x in story} <= {"device_ignored"}, story
        elif d.device_events("device_connected", dev):  # watched: its open must have failed
            failed = d.wait(is_event("read_failed", dev), timeout=30, what=f"{dev} refused")
            assert failed.record.get("kind") == "access_denied", failed.record
    assert user_run.fd_table.samples > 0


def test_the_fix_line_works_after_a_replug(user_run: UserRun, plugged: Plug) -> None:
    """What `list` says to do, done: the rule's access back (`udevadm trigger` on the node, as
    after installing the rule), then a replug: the headset is read. The daemon retries a denied
    open on a replug, not on udev's change event: /metrics between the two is recorded."""
    d, g = user_run.daemon, plugged.gadgets[PUT_BACK]
    dev, node = device_id(g), user_run.put_back
    run(["udevadm", "trigger", "--action=change", node])
    run(["udevadm", "settle", "--timeout=60"])
    assert granted_as_the_rule_says(nodes([node])[node])
    after_trigger = metric(scrape(d.listen), "headsetd_device_readable", device=dev)
    since = d.mark()
    g.unplug()
    t_plug = time.time()
    g.plug()
    d.wait(is_event("device_connected", dev), since=since, timeout=60, what=f"{dev} replugged")
    replugged = g.hidraw_node(0)
    gadget.wait_for(lambda: user_run.fd_table.held_since(replugged, t_plug), 30, "the replug read")
    readable = metric(scrape(d.listen), "headsetd_device_readable", device=dev)
    measure("unreadable_headset_fixed", readable_after_trigger=after_trigger, after_replug=readable)
    print(f"headsetd_device_readable: {after_trigger} after the trigger, {readable} after a replug")
    assert readable == 1
