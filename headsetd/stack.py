"""Loopback monitoring stacks around a simulated fleet: the building blocks of `headsetd demo`
and of the e2e tests (tests/stack), one implementation for both.

Owns: starting and stopping processes (each in its own session, killed with its parent, all
stopped by `Stack.close()`), readiness polling with a deadline, the fleet of `headsetd run
--replay` daemons of a `Scenario` with the audio server of each workstation that has one (a
real PulseAudio, headsetd/simaudio.py) and its stand-in softphone (`Softphones`), Prometheus
(server, agent, remote-write receiver), Alertmanager, vmagent, VictoriaMetrics and vmalert
configured from the shipped files in prometheus/, the rendering of those files for short test
intervals (`scale_durations`), and a webhook sink that records Alertmanager's notifications.

Never does: change the shipped files (rendered copies go to the stack's work directory), bind
anything but 127.0.0.1, sleep to wait for a server (it polls a condition with a deadline), or
run outside a headsetd checkout (the recordings and rules live there, not in the package).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from prometheus_client.parser import text_string_to_metric_families

from headsetd import simaudio
from headsetd.cli import UsageError, replayed_device
from headsetd.scenario import Scenario, Workstation

RULE_FILES = ("headsetd.rules.yml", "headsetd.alerts.yml")  # in prometheus/rules

# Rules' durations are production values (minutes); a stack runs them this many times faster.
# With 1 s scrapes the shortest window, AGENT_SILENT's 2m, becomes 6 s: still 6 scrapes.
TIME_FACTOR = 20.0
MIN_WINDOW_SECONDS = 3.0  # no range window below 3 scrapes
SCRAPE_INTERVAL = "1s"
POLL_SECONDS = 0.1
START_DEADLINE_SECONDS = 60.0
# How often a stand-in softphone looks at its headset's hook state: a softphone answers or
# hangs up within a fraction of a second of the headset's button.
SOFTPHONE_POLL_SECONDS = 0.2

T = TypeVar("T")


class StackError(RuntimeError):
    """A server did not start, or the checkout lacks a file the stack needs."""


# --- small pieces ---------------------------------------------------------------------------


def wait_for(check: Callable[[], T | None], timeout: float, what: str) -> T:
    """Poll `check` until it returns something other than None, or raise after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result is not None:
            return result
        if time.monotonic() > deadline:
            raise StackError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(POLL_SECONDS)


def http_get(url: str, timeout: float = 2.0) -> bytes | None:
    """The body of a 200 answer, or None (connection refused, timeout, other status)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - loopback
            body: bytes = response.read()
            return body if response.status == 200 else None
    except (OSError, urllib.error.URLError):
        return None


def query(base_url: str, promql: str, at: float | None = None) -> list[dict[str, Any]]:
    """An instant query against a Prometheus-compatible API; the result vector."""
    params = {"query": promql}
    if at is not None:
        params["time"] = f"{at:.3f}"
    body = http_get(f"{base_url}/api/v1/query?{urllib.parse.urlencode(params)}", timeout=10.0)
    if body is None:
        raise StackError(f"query failed at {base_url}: {promql}")
    answer = json.loads(body)
    if answer.get("status") != "success":
        raise StackError(f"query error at {base_url}: {answer}")
    result: list[dict[str, Any]] = answer["data"]["result"]
    return result


class Ports:
    """Free loopback ports, never the same one twice within a stack."""

    def __init__(self) -> None:
        self._given: set[int] = set()

    def take(self) -> int:
        while True:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.bind(("127.0.0.1", 0))
                port = int(sock.getsockname()[1])
            if port not in self._given:
                self._given.add(port)
                return port


PR_SET_PDEATHSIG = 1


def _parent_death_signal() -> Callable[[], None]:
    """A preexec_fn that has the child SIGTERMed when the stack's process dies (no orphans,
    even if the demo is killed with SIGKILL). libc is looked up here, in the parent: the child
    between fork and exec only makes the one C call, taking no lock another thread may hold."""
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    return lambda: prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def checkout() -> Path:
    """The headsetd checkout holding prometheus/ and tests/recordings (they are not installed
    with the package): the package's own tree (editable install), else the current directory."""
    for root in (Path(__file__).resolve().parents[1], Path.cwd()):
        if (root / "prometheus" / "rules").is_dir() and (root / "tests" / "recordings").is_dir():
            return root
    raise StackError("run it from a headsetd checkout (prometheus/, tests/recordings)")


def shipped_rules() -> list[Path]:
    return [checkout() / "prometheus" / "rules" / name for name in RULE_FILES]


def tool(name: str) -> str | None:
    """The path of a Debian-packaged server binary, or None."""
    return shutil.which(name)


def _binary(name: str, package: str) -> str:
    path = tool(name)
    if path is None:
        raise StackError(f"{name} is not installed (Debian: {package})")
    return path


# --- processes ------------------------------------------------------------------------------


@dataclass
class Service:
    name: str
    url: str  # http://127.0.0.1:PORT
    process: subprocess.Popen[bytes]
    log: Path
    ready_path: str = "/"

    @property
    def address(self) -> str:
        return self.url.removeprefix("http://")

    def ready(self) -> bool | None:
        if self.process.poll() is not None:
            tail = self.log.read_text(errors="replace")[-2000:]
            raise StackError(f"{self.name} exited with {self.process.returncode}:\n{tail}")
        return True if http_get(self.url + self.ready_path) is not None else None


class Stack:
    """The processes of one stack, in a work directory. Use as a context manager, or call
    close(): what runs on its own threads stops first (`on_close`), then every process still
    running is sent SIGTERM, then SIGKILL after a grace period."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.ports = Ports()
        self.services: list[Service] = []
        self._processes: list[subprocess.Popen[bytes]] = []
        self._lock = threading.Lock()  # _processes: the softphones' thread starts some too
        self._timers: list[threading.Timer] = []
        self._closers: list[Callable[[], None]] = []
        self._preexec = _parent_death_signal()
        workdir.mkdir(parents=True, exist_ok=True)

    def __enter__(self) -> Stack:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def spawn(
        self,
        argv: Sequence[str],
        env: Mapping[str, str] | None,
        log: Path | None,
        *,
        with_stdout: bool = False,
    ) -> subprocess.Popen[bytes]:
        """Start a process of the stack (a `simaudio.Spawn`): stderr, and with `with_stdout`
        stdout too, appended to `log`; stdout otherwise goes to /dev/null (a softphone's is
        audio). The parent-death signal follows the thread that forks: the main thread for
        the servers, the softphones' thread (which lives until close) for the softphones."""
        with self._lock, contextlib.ExitStack() as files:
            out = files.enter_context(log.open("ab")) if log is not None else subprocess.DEVNULL
            process = subprocess.Popen(
                list(argv),
                env=None if env is None else dict(env),
                stdin=subprocess.DEVNULL,
                stdout=out if with_stdout else subprocess.DEVNULL,
                stderr=out,
                cwd=self.workdir,
                start_new_session=True,  # a Ctrl-C reaches the stack, which stops them in order
                preexec_fn=self._preexec,  # noqa: PLW1509 - one C call, see _parent_death_signal
            )
            # Forget the ones that ended (a long demo starts a softphone per call).
            self._processes = [p for p in self._processes if p.poll() is None]
            self._processes.append(process)
            return process

    def start(
        self,
        name: str,
        argv: Sequence[str],
        port: int,
        ready_path: str,
        env: Mapping[str, str] | None = None,
    ) -> Service:
        """Start a server (not waiting for it: see wait_ready)."""
        log = self.workdir / f"{name}.log"
        log.write_bytes(b"")
        process = self.spawn(argv, env, log, with_stdout=True)
        service = Service(name, f"http://127.0.0.1:{port}", process, log, ready_path)
        self.services.append(service)
        return service

    def wait_ready(
        self, services: Iterable[Service], timeout: float = START_DEADLINE_SECONDS
    ) -> None:
        pending = list(services)

        def all_ready() -> bool | None:
            pending[:] = [s for s in pending if not s.ready()]
            return True if not pending else None

        wait_for(all_ready, timeout, "servers to be ready")

    def stop(self, service: Service, sig: int = signal.SIGTERM) -> None:
        if service.process.poll() is None:
            os.killpg(service.process.pid, sig)
            service.process.wait(10)

    def after(self, seconds: float, action: Callable[[], None]) -> None:
        """Run `action` once, `seconds` from now, unless the stack closes first."""
        timer = threading.Timer(seconds, action)
        timer.daemon = True
        self._timers.append(timer)
        timer.start()

    def on_close(self, action: Callable[[], None]) -> None:
        """Run `action` first when the stack closes (a thread that starts processes ends
        before the processes are stopped)."""
        self._closers.append(action)

    def close(self) -> None:
        for timer in self._timers:
            timer.cancel()
        for action in self._closers:
            action()
        with self._lock:
            running = [p for p in self._processes if p.poll() is None]
        for process in running:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10.0
        for process in running:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()


# --- rendering the shipped files for short intervals ---------------------------------------

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_DURATION = r"(?:\d+(?:ms|s|m|h|d|w))+"
_PART = re.compile(r"(\d+)(ms|s|m|h|d|w)")
_FOR = re.compile(rf"^(\s*for:\s*)({_DURATION})", re.MULTILINE)
_RANGE = re.compile(rf"\[({_DURATION})(:{_DURATION})?\]")


def seconds(duration: str) -> float:
    return sum(int(n) * _UNITS[unit] for n, unit in _PART.findall(duration))


def _format(value: float) -> str:
    millis = round(value * 1000)
    return f"{millis // 1000}s" if millis % 1000 == 0 else f"{millis}ms"


def scale_durations(text: str, factor: float, min_window: float = MIN_WINDOW_SECONDS) -> str:
    """A rules file with every `for:` and every range window divided by `factor` (windows no
    shorter than `min_window`). Thresholds, expressions and annotations stay as shipped."""

    def scale_for(match: re.Match[str]) -> str:
        return match.group(1) + _format(seconds(match.group(2)) / factor)

    def scale_range(match: re.Match[str]) -> str:
        window = max(min_window, seconds(match.group(1)) / factor)
        step = match.group(2)
        rest = ":" + _format(seconds(step[1:]) / factor) if step else ""
        return f"[{_format(window)}{rest}]"

    return _RANGE.sub(scale_range, _FOR.sub(scale_for, text))


def render_rules(into: Path, factor: float) -> list[Path]:
    """The shipped rule files, durations scaled, written under `into`."""
    paths = []
    for source in shipped_rules():
        target = into / source.name
        target.write_text(scale_durations(source.read_text(), factor))
        paths.append(target)
    return paths


def render_alertmanager(webhook: str, group_wait: str = "1s", group_interval: str = "2s") -> str:
    """The shipped alertmanager.yml with every receiver's URL pointing at `webhook`/<receiver>,
    short group timers, and no time-of-day muting (a test runs at any hour)."""
    shipped = checkout() / "prometheus" / "alertmanager.yml"
    text = shipped.read_text()
    rendered, urls = re.subn(
        r"url: http://alerts\.example\.invalid/([\w-]+)", rf"url: {webhook}/\1", text
    )
    rendered = re.sub(r"group_wait: \S+", f"group_wait: {group_wait}", rendered)
    rendered = re.sub(r"group_interval: \S+", f"group_interval: {group_interval}", rendered)
    rendered = re.sub(r"^\s*mute_time_intervals: .*\n", "", rendered, flags=re.MULTILINE)
    if not urls:
        raise StackError(f"{shipped}: no receiver URL to point at the webhook")
    return rendered


# --- the fleet ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Target:
    workstation: Workstation
    service: Service


@dataclass(frozen=True, slots=True)
class Desk:
    """The audio side of one workstation: its audio server and the source standing in for its
    headset's microphone (the daemon watching them is the target of the same workstation)."""

    server: simaudio.Server
    source: str


@dataclass
class Fleet:
    targets: list[Target]
    sd_file: Path  # file_sd targets of every daemon, grouped by site and team
    desks: dict[str, Desk] = field(default_factory=dict)  # by workstation name
    started_at: float = 0.0  # time.time() at go(): the scenario's t=0
    softphones: Softphones | None = None  # started by go() where there are desks

    def scrape_job(self) -> dict[str, Any]:
        return {"job_name": "headsetd", "file_sd_configs": [{"files": [str(self.sd_file)]}]}


def daemon_config(ws: Workstation, port: int) -> str:
    """The generated TOML of one simulated workstation."""
    extra = f"\n{ws.config_extra}" if ws.config_extra else ""
    return (
        f'[workstation]\nname = "{ws.name}"\n'
        f'labels = {{ site = "{ws.site}", team = "{ws.team}" }}\n\n'
        f'[web]\nlisten = "127.0.0.1:{port}"\n\n'
        '[log]\nformat = "json"\nlevel = "info"\n\n'
        f"[audio]\nenabled = {str(ws.audio is not None).lower()}\n" + extra
    )


def _replay_argument(root: Path, entry: str) -> str:
    """A scenario's replay entry (checkout-relative, parts joined by '+') as the daemon takes
    it: every part made absolute (the daemon runs in the work directory)."""
    return "+".join(str(root / part) for part in entry.split("+"))


def start_desk(stack: Stack, ws: Workstation, root: Path) -> Desk:
    """A real PulseAudio for `ws` (ready), with a headset whose source and speaker carry the
    USB ids of its first replayed device as the daemon reads them (a replayed device matches
    by vendor and product id), what its microphone hears, and its input volume."""
    audio = ws.audio
    if audio is None or not ws.replay:
        raise StackError(f"{ws.name}: no audio server or no replayed device to give it")
    try:
        identity = replayed_device(_replay_argument(root, ws.replay[0])).identity(0)
        server = simaudio.Server("pulseaudio", stack.workdir / f"{ws.name}-audio", stack.spawn)
        server.start()
        props = simaudio.usb_props(
            server.kind, identity.vendor_id, identity.product_id, description=identity.product
        )
        sink = server.headset("headset", props, speaker=True)
        if audio.voice_dbfs is not None:
            server.play_tone(sink, audio.voice_dbfs)
        if audio.mic_volume != 1.0:
            # A percentage is the ratio on the server's (cubic) scale, as a desktop's slider;
            # a bare number would be read as an amplitude factor.
            server.run("set-source-volume", "headset", f"{audio.mic_volume * 100:g}%")
    except (simaudio.AudioServerError, UsageError, subprocess.SubprocessError) as exc:
        raise StackError(f"{ws.name}: its audio server: {exc}") from exc
    return Desk(server, "headset")


def start_fleet(stack: Stack, scenario: Scenario, python: str = sys.executable) -> Fleet:
    """A `headsetd run --replay` daemon per runnable workstation (started, not yet ready),
    after the audio server of each workstation that has one (started and ready: the daemon
    finds it through PULSE_SERVER, as every libpulse client does)."""
    root = checkout()
    targets = []
    desks = {}
    for ws in scenario.running():
        port = stack.ports.take()
        config = stack.workdir / f"{ws.name}.toml"
        config.write_text(daemon_config(ws, port))
        argv = [python, "-m", "headsetd", "run", "--config", str(config), "--replay"]
        argv += [_replay_argument(root, entry) for entry in ws.replay]
        argv += ["--speed", str(ws.speed)] + (["--loop"] if ws.loop else [])
        env = None
        if ws.audio is not None:
            desks[ws.name] = desk = start_desk(stack, ws, root)
            env = {**os.environ, "PULSE_SERVER": desk.server.address}
        targets.append(Target(ws, stack.start(ws.name, argv, port, "/metrics", env)))
    return Fleet(targets, file_sd(stack.workdir / "targets.json", targets), desks)


def go(stack: Stack, fleet: Fleet) -> None:
    """The scenario's t=0: schedule the daemons it stops (a PC switched off, a site outage)
    and the audio servers it kills, and start the softphones."""
    fleet.started_at = time.time()
    phones = []
    for target in fleet.targets:
        ws = target.workstation
        if ws.stop_after is not None:
            stack.after(ws.stop_after, _stopper(stack, target.service))
        desk = fleet.desks.get(ws.name)
        if desk is None or ws.audio is None:
            continue
        phones.append((target.service, desk))
        if ws.audio.server_stops_after is not None:
            stack.after(ws.audio.server_stops_after, desk.server.kill)  # SIGKILL: a crash
    if phones:
        fleet.softphones = Softphones(phones)
        stack.on_close(fleet.softphones.close)
        fleet.softphones.start()


def _stopper(stack: Stack, service: Service) -> Callable[[], None]:
    return lambda: stack.stop(service)


def in_call(exposition: str) -> bool:
    """Whether a device of a daemon's /metrics is off-hook (headsetd_device_off_hook 1)."""
    for family in text_string_to_metric_families(exposition):
        if family.name == "headsetd_device_off_hook":
            return any(sample.value == 1 for sample in family.samples)
    return False


class Softphones:
    """The stand-in softphones of the audio workstations, on one thread: each records from its
    headset's microphone (parec, media.role=phone) exactly while the headset is off-hook, as a
    softphone that answers and hangs up with the headset's hook switch opens the microphone
    for the call and closes it after. Between calls nothing records, so headsetd's level
    meter is closed too.

    The hook state comes from the workstation's daemon (/metrics, headsetd_device_off_hook):
    a replayed headset has no hidraw node a softphone could read beside headsetd, so the
    daemon's reading of the recording is the one place the calls exist. A softphone whose
    audio server is gone is not restarted."""

    def __init__(self, desks: Sequence[tuple[Service, Desk]]) -> None:
        self._desks = desks
        self._phones: dict[str, simaudio.Softphone] = {}
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="softphones", daemon=True)
        self.calls = 0  # softphones started: calls followed
        self.failures: list[str] = []

    def start(self) -> Softphones:
        self._thread.start()
        return self

    def close(self) -> None:
        self._stopping.set()
        self._thread.join(10)

    def _run(self) -> None:
        try:
            while not self._stopping.wait(SOFTPHONE_POLL_SECONDS):
                for daemon, desk in self._desks:
                    try:
                        self._follow(daemon, desk)
                    except (OSError, ValueError, subprocess.SubprocessError) as exc:
                        # Kept for the tests to see; the other desks' calls go on.
                        self.failures.append(f"{daemon.name}: {exc!r}")
        finally:
            for phone in self._phones.values():
                phone.stop()

    def _follow(self, daemon: Service, desk: Desk) -> None:
        phone = self._phones.get(daemon.name)
        if not desk.server.running():
            wanted = False
        else:
            body = http_get(f"{daemon.url}/metrics")
            if body is None:
                return  # not answering (stopped, or busy): keep the call as it is
            wanted = in_call(body.decode())
        if wanted and (phone is None or not phone.alive()):
            self._phones[daemon.name] = simaudio.Softphone(desk.server, desk.source)
            self.calls += 1
        elif not wanted and phone is not None:
            del self._phones[daemon.name]
            phone.stop()


def file_sd(path: Path, targets: Sequence[Target]) -> Path:
    """A file_sd file: one target group per site and team, as an inventory would write it."""
    groups: dict[tuple[str, str], list[str]] = {}
    for t in targets:
        groups.setdefault((t.workstation.site, t.workstation.team), []).append(t.service.address)
    path.write_text(
        json.dumps(
            [
                {"targets": addresses, "labels": {"site": site, "team": team}}
                for (site, team), addresses in sorted(groups.items())
            ],
            indent=2,
        )
    )
    return path


# --- servers --------------------------------------------------------------------------------


def _self_job(address: str, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "job_name": "headsetd-agent",
        "static_configs": [{"targets": [address], "labels": labels}],
    }


def start_prometheus(
    stack: Stack,
    name: str,
    *,
    scrape: Sequence[dict[str, Any]] = (),
    rule_files: Sequence[Path] = (),
    alertmanager: Service | None = None,
    agent: str | None = None,
    remote_write: str | None = None,
    receiver: bool = False,
    interval: str = SCRAPE_INTERVAL,
    evaluation_interval: str = SCRAPE_INTERVAL,
    scrape_itself: bool = False,
) -> Service:
    """A Prometheus 2.42 server (or, with `agent`, one in agent mode that scrapes itself and
    labels what it sends agent=<agent>; with `scrape_itself`, a server scraping itself as job
    "prometheus"). Configs are written as JSON, which YAML reads."""
    binary = _binary("prometheus", "prometheus")
    port = stack.ports.take()
    jobs = list(scrape)
    config: dict[str, Any] = {
        "global": {
            "scrape_interval": interval,
            "scrape_timeout": _format(min(10.0, seconds(interval) * 0.9)),
            "evaluation_interval": evaluation_interval,
        },
        "scrape_configs": jobs,
    }
    if agent is not None:
        config["global"]["external_labels"] = {"agent": agent}
        jobs.append(_self_job(f"127.0.0.1:{port}", {"site": "all"}))
    if scrape_itself:
        jobs.append(
            {"job_name": "prometheus", "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}
        )
    if rule_files:
        config["rule_files"] = [str(p) for p in rule_files]
    if alertmanager is not None:
        config["alerting"] = {
            "alertmanagers": [{"static_configs": [{"targets": [alertmanager.address]}]}]
        }
    if remote_write is not None:
        config["remote_write"] = [
            {"url": remote_write, "queue_config": {"batch_send_deadline": "1s"}}
        ]
    path = stack.workdir / f"{name}.json"
    path.write_text(json.dumps(config, indent=2))
    data = stack.workdir / f"{name}-data"
    argv = [
        binary,
        f"--config.file={path}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warn",
    ]
    if agent is not None:
        argv += ["--enable-feature=agent", f"--storage.agent.path={data}"]
    else:
        # Alerts are re-sent every eval by default only after 1 m; the stack wants seconds.
        argv += [f"--storage.tsdb.path={data}", "--rules.alert.resend-delay=1s"]
    if receiver:
        argv.append("--web.enable-remote-write-receiver")
    return stack.start(name, argv, port, "/-/ready")


def start_alertmanager(stack: Stack, webhook: str) -> Service:
    """Alertmanager 0.25 with the shipped configuration, rendered for `webhook` and short
    group timers; clustering off."""
    binary = _binary("prometheus-alertmanager", "prometheus-alertmanager")
    port = stack.ports.take()
    config = stack.workdir / "alertmanager.yml"
    config.write_text(render_alertmanager(webhook))
    argv = [
        binary,
        f"--config.file={config}",
        f"--storage.path={stack.workdir / 'alertmanager-data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
        "--log.level=warn",
    ]
    return stack.start("alertmanager", argv, port, "/-/ready")


def start_vmagent(
    stack: Stack, scrape: Sequence[dict[str, Any]], remote_writes: Sequence[str], agent: str
) -> Service:
    """vmagent scraping like the Prometheus agent (and itself), writing to every URL given."""
    binary = _binary("vmagent", "victoria-metrics")
    port = stack.ports.take()
    jobs = [*scrape, _self_job(f"127.0.0.1:{port}", {"site": "all"})]
    config = stack.workdir / "vmagent.json"
    config.write_text(
        json.dumps({"global": {"scrape_interval": SCRAPE_INTERVAL}, "scrape_configs": jobs})
    )
    argv = [
        binary,
        f"-promscrape.config={config}",
        f"-httpListenAddr=127.0.0.1:{port}",
        f"-remoteWrite.tmpDataPath={stack.workdir / 'vmagent-data'}",
        f"-remoteWrite.label=agent={agent}",
        "-remoteWrite.flushInterval=500ms",
        "-loggerLevel=WARN",
    ]
    argv += [f"-remoteWrite.url={url}" for url in remote_writes]
    return stack.start("vmagent", argv, port, "/health")


def start_victoria_metrics(stack: Stack) -> Service:
    """VictoriaMetrics single-node; queries see data 1 s after it arrives (30 s by default)."""
    binary = _binary("victoria-metrics", "victoria-metrics")
    port = stack.ports.take()
    argv = [
        binary,
        f"-storageDataPath={stack.workdir / 'victoria-metrics-data'}",
        f"-httpListenAddr=127.0.0.1:{port}",
        "-search.latencyOffset=1s",
        "-search.disableCache",
        "-loggerLevel=WARN",
    ]
    return stack.start("victoria-metrics", argv, port, "/health")


def start_vmalert(
    stack: Stack, store: Service, rule_files: Sequence[Path], notifier: str
) -> Service:
    """vmalert evaluating the rules on `store`, writing recordings and ALERTS back into it."""
    binary = _binary("vmalert", "victoria-metrics")
    port = stack.ports.take()
    argv = [
        binary,
        f"-httpListenAddr=127.0.0.1:{port}",
        f"-datasource.url={store.url}",
        f"-remoteWrite.url={store.url}",
        f"-notifier.url={notifier}",
        f"-evaluationInterval={SCRAPE_INTERVAL}",
        "-remoteWrite.flushInterval=500ms",
        "-loggerLevel=WARN",
    ]
    argv += [f"-rule={path}" for path in rule_files]
    return stack.start("vmalert", argv, port, "/health")


# --- Alertmanager's notifications ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Notification:
    receiver: str  # the webhook path: the shipped config's receiver name
    status: str  # firing | resolved
    labels: dict[str, str]
    annotations: dict[str, str]

    @property
    def key(self) -> tuple[str, str]:
        """(alert name, workstation or, for a site-wide alert, site)."""
        where = self.labels.get("workstation") or self.labels.get("site", "")
        return self.labels.get("alertname", ""), where


@dataclass
class WebhookSink:
    """An HTTP server that records every alert Alertmanager (or vmalert) posts to it."""

    notifications: list[Notification] = field(default_factory=list)
    on_notification: Callable[[Notification], None] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise StackError("the webhook sink is not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> WebhookSink:
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                sink.record(self.path.strip("/"), body)
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the notifications are the record."""

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, name="webhook", daemon=True).start()
        return self

    def record(self, receiver: str, body: bytes) -> None:
        try:
            payload = json.loads(body)
        except ValueError:
            return
        # Alertmanager's webhook: {"alerts": [...]}; vmalert's notifier: a list of alerts.
        alerts = payload.get("alerts", []) if isinstance(payload, dict) else payload
        for alert in alerts if isinstance(alerts, list) else []:
            note = Notification(
                receiver,
                str(alert.get("status", "firing")),
                dict(alert.get("labels", {})),
                dict(alert.get("annotations", {})),
            )
            with self._lock:
                self.notifications.append(note)
            if self.on_notification is not None:
                self.on_notification(note)

    def firing(self, receiver_prefix: str = "") -> set[tuple[str, str]]:
        with self._lock:
            return {
                n.key
                for n in self.notifications
                if n.status == "firing" and n.receiver.startswith(receiver_prefix)
            }

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


# --- ready-made stacks ----------------------------------------------------------------------


@dataclass
class SingleTier:
    """The fleet scraped by one Prometheus with the shipped rules, alerting the shipped
    Alertmanager, whose receivers all post to the sink."""

    prometheus: Service
    alertmanager: Service
    rule_files: list[Path]


def start_single_tier(stack: Stack, fleet: Fleet, webhook: str) -> SingleTier:
    rule_files = render_rules(stack.workdir, TIME_FACTOR)
    alertmanager = start_alertmanager(stack, webhook)
    prometheus = start_prometheus(
        stack,
        "prometheus",
        scrape=[fleet.scrape_job()],
        rule_files=rule_files,
        alertmanager=alertmanager,
    )
    return SingleTier(prometheus, alertmanager, rule_files)


@dataclass
class RemoteWriteTiers:
    """Two tiers: a Prometheus agent and a vmagent both scrape the fleet; both remote-write
    into one central Prometheus (their copies told apart by the `agent` label), and vmagent
    also into VictoriaMetrics, where vmalert runs the same rules."""

    agent: Service
    vmagent: Service
    central: Service
    victoria: Service
    vmalert: Service

    AGENT = "prometheus-agent"
    VMAGENT = "vmagent"


def start_remote_write_tiers(
    stack: Stack, fleet: Fleet, rule_files: Sequence[Path], notifier: str
) -> RemoteWriteTiers:
    central = start_prometheus(stack, "central", rule_files=rule_files, receiver=True)
    victoria = start_victoria_metrics(stack)
    agent = start_prometheus(
        stack,
        "agent",
        scrape=[fleet.scrape_job()],
        agent=RemoteWriteTiers.AGENT,
        remote_write=f"{central.url}/api/v1/write",
    )
    vmagent = start_vmagent(
        stack,
        [fleet.scrape_job()],
        [f"{central.url}/api/v1/write", f"{victoria.url}/api/v1/write"],
        RemoteWriteTiers.VMAGENT,
    )
    vmalert = start_vmalert(stack, victoria, rule_files, notifier)
    return RemoteWriteTiers(agent, vmagent, central, victoria, vmalert)
