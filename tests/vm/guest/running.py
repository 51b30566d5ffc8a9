"""The real headsetd, as the guest tests run and observe it: its process, log lines and /metrics.

Owns: starting `headsetd run` (the repo's, with this Python, or any command line in front of
it: another user's) with JSON logs on a loopback port and `headsetd list --json`; collecting the
daemon's log lines as they come (with the time the test read each one); bounded waits for a
line; /metrics fetched and parsed into samples; the `device` id the contract promises for a
gadget; and what the kernel says about the daemon: what it holds open (its fd table), how often
its threads were switched out (its wake-ups), its user, groups and capabilities; and what
happens to /dev nodes (created, opened, permissions changed), whoever does it.

Never: reaches into headsetd's modules (only its command line, its log lines, /metrics and
/proc), or waits blindly: every wait is on a condition, with a deadline.
"""

from __future__ import annotations

import ctypes
import json
import os
import select
import stat
import struct
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import gadget
from prometheus_client.parser import text_string_to_metric_families

HEADSETD = [sys.executable, "-m", "headsetd"]
LISTEN = "127.0.0.1:9477"  # the session's daemon; another one is given its own

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def device_id(g: gadget.Gadget) -> str:
    """The id the contract promises for a gadget: vid:pid:serial, or vid:pid@port."""
    ids = f"{g.vendor_id:04x}:{g.product_id:04x}"
    return f"{ids}:{g.serial}" if g.serial else f"{ids}@{g.port_path}"


@dataclass
class Line:
    received: float  # time.time() when the test read the line
    record: dict[str, Any]

    @property
    def event(self) -> str:
        return str(self.record.get("event"))

    @property
    def stamped(self) -> float:
        """The daemon's own timestamp of the event (same clock: the guest's)."""
        return datetime.fromisoformat(
            str(self.record["timestamp"]).replace("Z", "+00:00")
        ).timestamp()


@dataclass
class Daemon:
    """A running `headsetd run` and every log line it wrote so far."""

    proc: subprocess.Popen[str]
    listen: str = LISTEN
    lines: list[Line] = field(default_factory=list)
    other: list[str] = field(default_factory=list)
    lock: threading.Condition = field(default_factory=threading.Condition)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            t = time.time()
            try:
                rec = json.loads(raw)
            except json.JSONDecodeError:
                self.other.append(raw.rstrip())
                continue
            with self.lock:
                self.lines.append(Line(t, rec))
                self.lock.notify_all()

    def mark(self) -> int:
        with self.lock:
            return len(self.lines)

    def wait(
        self, pred: Callable[[Line], bool], since: int = 0, timeout: float = 30.0, what: str = ""
    ) -> Line:
        """The first log line from index `since` matching pred (bounded wait, no polling)."""
        end = time.monotonic() + timeout
        with self.lock:
            while True:
                for line in self.lines[since:]:
                    if pred(line):
                        return line
                left = end - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    tail = "\n".join(json.dumps(x.record) for x in self.lines[-15:])
                    raise AssertionError(
                        f"headsetd logged no {what or 'matching line'} within {timeout}s "
                        f"(rc={self.proc.poll()}); last lines:\n{tail}\n"
                        + "\n".join(self.other[-10:])
                    )
                self.lock.wait(left)

    def events(self, name: str, since: int = 0) -> list[Line]:
        with self.lock:
            return [x for x in self.lines[since:] if x.event == name]

    def device_events(self, name: str, dev: str, since: int = 0) -> list[Line]:
        return [x for x in self.events(name, since) if x.record.get("device") == dev]

    def device_lines(self, dev: str, since: int = 0) -> list[Line]:
        """Every line about device `dev` from index `since`."""
        with self.lock:
            return [x for x in self.lines[since:] if x.record.get("device") == dev]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()

    def keep_log(self, path: Path) -> None:
        """Every line it wrote, into `path` (for a look after the run, beside the console's)."""
        if path.parent.is_dir():
            with open(path, "w", encoding="utf-8") as f:
                f.writelines(json.dumps(x.record) + "\n" for x in self.lines)
                f.writelines(json.dumps({"not_json": x}) + "\n" for x in self.other)


# The session's daemon and the service user's run as headsetd.service does (`--no-audio`: HID
# and USB only). With audio on and no audio server, headsetd retries the connection every 5 s
# (about 4 context switches a second: MEASURED.md), which is not what test_4's idle figure is
# about; test_5_microphone runs a daemon with audio, beside a server.
NO_AUDIO = ("--no-audio",)


def launch_daemon(
    command: Sequence[str] = HEADSETD,
    listen: str = LISTEN,
    args: Sequence[str] = NO_AUDIO,
    env: dict[str, str] | None = None,
) -> Daemon:
    """`<command> run <args>` serving on `listen`, JSON logs read by a thread; returns at once
    (its pid is the daemon's: `command` may be a chain of programs that exec one another).
    `env`: variables added to this process's environment for it."""
    proc = subprocess.Popen(
        [*command, "run", "--listen", listen, "--log-format", "json", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
        env={**os.environ, **(env or {})},
    )
    d = Daemon(proc, listen)
    threading.Thread(target=d._read, daemon=True).start()
    return d


def wait_serving(d: Daemon) -> Daemon:
    """Until the daemon's /metrics answers (it has bound its port and scanned)."""

    def up() -> bool:
        if d.proc.poll() is not None:
            raise AssertionError(f"headsetd run exited with {d.proc.returncode}: {d.other[-20:]}")
        try:
            fetch(d.listen)
        except OSError:
            return False
        return True

    gadget.wait_for(up, 120, f"headsetd's /metrics on {d.listen}", interval=0.2)
    return d


def start_daemon() -> Daemon:
    """The session's `headsetd run --no-audio` (root, this Python); returns once /metrics
    answers."""
    return wait_serving(launch_daemon())


def start_list(command: Sequence[str] = HEADSETD) -> subprocess.Popen[str]:
    """`<command> list --json`, started now, collected later (Python start-up under TCG takes
    many seconds: start it beside other work)."""
    return subprocess.Popen(
        [*command, "list", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def list_rows(proc: subprocess.Popen[str], timeout: float = 300) -> list[dict[str, Any]]:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    return list(json.loads(out))


def is_event(name: str, dev: str) -> Callable[[Line], bool]:
    """A predicate for Daemon.wait: event `name` of device `dev`."""
    return lambda x: x.event == name and x.record.get("device") == dev


def fetch(listen: str = LISTEN) -> str:
    with urllib.request.urlopen(f"http://{listen}/metrics", timeout=10) as r:
        return str(r.read().decode())


def parse(text: str) -> Samples:
    """/metrics text as {(sample name, sorted labels): value}."""
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def scrape(listen: str = LISTEN) -> Samples:
    return parse(fetch(listen))


def metric(m: Samples, name: str, **labels: str) -> float | None:
    """The one sample of `name` whose labels include `labels`; None if none, NaN if several."""
    want = set(labels.items())
    hits = [v for (n, lab), v in m.items() if n == name and want <= set(lab)]
    return hits[0] if len(hits) == 1 else None if not hits else float("nan")


def samples(m: Samples, name: str, **labels: str) -> list[dict[str, str]]:
    """The label sets of every sample of `name` whose labels include `labels`."""
    want = set(labels.items())
    return [dict(lab) for (n, lab), _ in m.items() if n == name and want <= set(lab)]


def open_files(pid: int, names: dict[int, str] | None = None) -> set[str]:
    """What process `pid` holds open now: the targets of its /proc/<pid>/fd links, a character
    device as its /dev node (a file that closes while the table is read is skipped).

    A device is named from its number, not from the link's text: the link is the path as seen
    from the reader's root, and for a process in a mount namespace of its own (the service
    user's, test_6) that is the path from the top of the guest's initramfs (the guest's root
    is a chroot there), e.g. /newroot/dev/hidraw7. `names` keeps the numbers' names between
    calls (a hidraw minor keeps its name when the number is reused: hidrawN is minor N)."""
    names = {} if names is None else names
    out = set()
    fd_dir = Path(f"/proc/{pid}/fd")
    for fd in os.listdir(fd_dir):
        try:
            target = os.readlink(fd_dir / fd)
            st = os.stat(fd_dir / fd)
        except FileNotFoundError:
            continue
        if stat.S_ISCHR(st.st_mode):
            if st.st_rdev not in names:
                names[st.st_rdev] = char_device_node(st.st_rdev)
            target = names[st.st_rdev]
        out.add(target)
    return out


def char_device_node(rdev: int) -> str:
    """/dev/<DEVNAME> of a character device number, from sysfs."""
    uevent = Path(f"/sys/dev/char/{os.major(rdev)}:{os.minor(rdev)}/uevent").read_text()
    names = [line[8:] for line in uevent.splitlines() if line.startswith("DEVNAME=")]
    return f"/dev/{names[0]}" if names else f"char {os.major(rdev)}:{os.minor(rdev)}"


def credentials(pid: int) -> dict[str, str]:
    """What the kernel says process `pid` runs as: the Uid, Gid, Groups, Cap* and NoNewPrivs
    lines of /proc/<pid>/status (ids: real, effective, saved, filesystem; caps in hex)."""
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    keep = ("Uid", "Gid", "Groups", "NoNewPrivs")
    return {k: " ".join(v.split()) for k, v in fields.items() if k in keep or k.startswith("Cap")}


def context_switches(pid: int) -> dict[str, int]:
    """Voluntary + involuntary context switches of each thread of `pid`, by "tid name": a
    thread that sleeps in a wait and is woken counts one voluntary switch per wake-up."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            status = (task / "status").read_text()
        except FileNotFoundError:
            continue  # the thread ended while the table was read
        fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
        total = int(fields["voluntary_ctxt_switches"]) + int(fields["nonvoluntary_ctxt_switches"])
        out[f"{task.name} {fields['Name'].strip()}"] = total
    return out


class FdSampler:
    """Samples the fd table of process `pid` every `interval` s on a thread, and keeps every
    target it saw with the first and last time it was seen. A sample is a snapshot: an fd held
    for less than `interval` can slip between two (NodeWatch sees every open, by anyone)."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.pid = pid
        self.interval = interval
        self.samples = 0
        self.seen: dict[str, tuple[float, float]] = {}  # target -> (first, last) time.time()
        self._names: dict[int, str] = {}  # device number -> its /dev node (open_files)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        # the sampling is the measurement: this loop is the thing being timed, not a wait
        while not self._stop.wait(self.interval):
            t = time.time()
            try:
                held = open_files(self.pid, self._names)
            except ProcessLookupError:
                return  # the process ended
            for target in held:
                first, _ = self.seen.get(target, (t, t))
                self.seen[target] = (first, t)
            self.samples += 1

    def held_since(self, target: str, t: float) -> bool:
        """Was `target` in the table in any sample taken at or after time.time() `t`?"""
        return target in self.seen and self.seen[target][1] >= t

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


IN_ATTRIB = 0x00000004  # mode, owner, ACL (xattr) or timestamps changed
IN_OPEN = 0x00000020
IN_CREATE = 0x00000100
IN_Q_OVERFLOW = 0x00004000
_EVENT = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len; then the name


class NodeWatch:
    """What happens to the files of `directory` (default /dev) from now on, by any process:
    inotify on the directory reports each of `mask` for its children with the child's name,
    whoever does it and however briefly. IN_OPEN: every open (O_PATH handles, which allow no
    I/O, are not reported; nor is an open the kernel refused). IN_CREATE: a node made (by
    devtmpfs, as the kernel registers the device). IN_ATTRIB: its mode, owner or ACL changed
    (udevd applying its rules' GROUP/MODE, or the seat's ACL)."""

    def __init__(self, directory: str = "/dev", mask: int = IN_OPEN) -> None:
        self._libc = ctypes.CDLL(None, use_errno=True)
        fd = self._libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        if self._libc.inotify_add_watch(fd, directory.encode(), mask) < 0:
            os.close(fd)
            raise OSError(ctypes.get_errno(), f"inotify_add_watch {directory}")
        self._fd = fd
        self.directory = directory
        self.overflowed = False
        self._seen: list[tuple[float, int, str]] = []  # (time.time(), mask, path)
        self._lock = threading.Lock()
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            ready, _, _ = select.select([self._fd, self._wake_r], [], [])
            if self._wake_r in ready:
                return
            try:
                buf = os.read(self._fd, 65536)
            except BlockingIOError:
                continue
            t = time.time()
            i = 0
            while i + _EVENT.size <= len(buf):
                _, mask, _, n = _EVENT.unpack_from(buf, i)
                name = buf[i + _EVENT.size : i + _EVENT.size + n].rstrip(b"\0").decode()
                i += _EVENT.size + n
                with self._lock:
                    if mask & IN_Q_OVERFLOW:
                        self.overflowed = True
                    else:
                        self._seen.append((t, mask, f"{self.directory}/{name}"))

    def times(self, path: str, mask: int, since: float = 0.0) -> list[float]:
        """When one of `mask` happened to `path`, at or after time.time() `since`."""
        with self._lock:
            return [t for t, m, p in self._seen if m & mask and p == path and t >= since]

    def opens(self, path: str, since: float = 0.0) -> list[float]:
        """When `path` was opened, at or after time.time() `since`."""
        return self.times(path, IN_OPEN, since)

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        os.write(self._wake_w, b"x")
        self._thread.join(5)
        for fd in (self._fd, self._wake_r, self._wake_w):
            os.close(fd)


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system, every thread) process `pid` has used so far."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "; field 3 is fields[0]
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
