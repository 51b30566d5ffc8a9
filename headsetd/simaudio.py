"""Real audio servers standing in for a workstation's desktop session: one implementation of
"an audio server with a headset on it" for `headsetd demo` and the e2e stack
(headsetd/stack.py), the audio tests (tests/audio/servers.py) and bench/audio.py.

A `Server` is PulseAudio, or PipeWire (pipewire, then wireplumber and pipewire-pulse under
dbus-run-session), in a private XDG_RUNTIME_DIR and HOME. A headset on it (`Server.headset`)
is a null sink whose monitor feeds a module-remap-source carrying a USB headset's device.*
properties, which is what headsetd matches a device's microphone by (a replayed device by
vendor and product id); optionally a second null sink carries them too, as the headset's
speaker. The microphone hears whatever plays into the first null sink: nothing (digital
silence, a dead capsule), or a 1 kHz tone at a set peak from the server's own module-sine
(`Server.play_tone`). `Softphone` records from a source as a softphone does (parec,
media.role=phone).

Owns: the command lines, the modules loaded, readiness (`pactl info` polled with a deadline),
and ending what it started (each process in a session of its own, ended by its process group
id). Processes are created through the `Spawn` seam, so that a stack can own them (a
parent-death signal, stopped with the rest).

Never does: touch the user's own audio server (children get PULSE_SERVER and a private
runtime dir), sleep blindly, or keep audio: every child's stdout goes to /dev/null (the
softphone's recording with it), a log holds stderr only.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Protocol

# Debian packages: pulseaudio, pulseaudio-utils; pipewire, pipewire-pulse, wireplumber,
# dbus-daemon (dbus-run-session).
TOOLS = {
    "pulseaudio": ("pulseaudio", "pactl", "pacat", "parec"),
    "pipewire": (
        "pipewire",
        "pw-cli",
        "wireplumber",
        "pipewire-pulse",
        "dbus-run-session",
        "pactl",
        "pacat",
        "parec",
    ),
}
# pipewire first; wireplumber and pipewire-pulse once it answers (bounded wait). Not "once its
# socket exists": a killed instance leaves its socket behind, and a wireplumber started before
# the new pipewire listens gives up, so nothing links streams (softphones record nothing).
_PIPEWIRE_SCRIPT = """
pipewire &
i=0
until pw-cli info 0 >/dev/null 2>&1 || [ $i -ge 200 ]; do sleep 0.05; i=$((i+1)); done
wireplumber &
pipewire-pulse &
wait
"""
# module-sine writes a float sine of amplitude 0.5 (PulseAudio 16: module-sine.c), measured
# here as a -6.02 dBFS peak through a null sink's monitor: play_tone attenuates from it.
SINE_DBFS = -6.02
START_SECONDS = 30.0
# sun_path of a unix socket holds 108 bytes with its NUL: the server's socket must fit.
_SOCKET_PATH_MAX = 107


class AudioServerError(RuntimeError):
    """A test audio server did not start, or a tool it needs is missing."""


def wait_until(
    condition: Callable[[], object], what: str, timeout: float, interval: float = 0.02
) -> object:
    """Poll `condition` until it is true (returned) or `timeout` seconds pass
    (AudioServerError)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AudioServerError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


class Spawn(Protocol):
    """Starts `argv` in a session of its own with `env`, stdin and stdout on /dev/null, and
    stderr appended to `log` (None: dropped)."""

    def __call__(
        self, argv: Sequence[str], env: Mapping[str, str], log: Path | None
    ) -> subprocess.Popen[bytes]: ...


def spawn_session(
    argv: Sequence[str], env: Mapping[str, str], log: Path | None
) -> subprocess.Popen[bytes]:
    """The plain `Spawn`: a child in a new session, which its owner ends by its group id."""
    with contextlib.ExitStack() as files:
        err = files.enter_context(log.open("ab")) if log is not None else subprocess.DEVNULL
        return subprocess.Popen(
            list(argv),
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,
        )


def usb_props(
    kind: str, vid: int, pid: int, port: str = "", serial: str = "", *, description: str = ""
) -> dict[str, str]:
    """A USB headset's device.* properties as `kind` writes them (ids 046d vs 0x046d); the bus
    path and serial only when given (a replayed device has neither: it matches by ids)."""
    ids = "{:04x}" if kind == "pulseaudio" else "0x{:04x}"
    props = {
        "device.bus": "usb",
        "device.vendor.id": ids.format(vid),
        "device.product.id": ids.format(pid),
    }
    if port:
        props["device.bus_path"] = f"pci-0000:00:14.0-usb-0:{port}:1.0"
    if serial:
        props["device.serial"] = f"Test_Headset_{serial}"
    props["device.description"] = description or f"Test Headset {serial or port}".strip()
    return props


class Server:
    """One audio server of `kind` ("pulseaudio" or "pipewire") under `root`."""

    def __init__(self, kind: str, root: Path, spawn: Spawn = spawn_session) -> None:
        missing = [tool for tool in TOOLS[kind] if shutil.which(tool) is None]
        if missing:
            raise AudioServerError(f"not installed: {', '.join(missing)} (Debian: {kind})")
        self.kind = kind
        self.spawn = spawn
        self.runtime = root / "run"
        self.home = root / "home"
        self.address = f"unix:{self.runtime}/pulse/native"
        if len(os.fsencode(self.address.removeprefix("unix:"))) > _SOCKET_PATH_MAX:
            raise AudioServerError(f"{root}: too long a path for the server's unix socket")
        self.env = {
            key: value
            for key, value in os.environ.items()
            if key not in ("DISPLAY", "WAYLAND_DISPLAY", "DBUS_SESSION_BUS_ADDRESS")
        }
        self.env.update(
            XDG_RUNTIME_DIR=str(self.runtime),
            HOME=str(self.home),
            XDG_CONFIG_HOME=str(self.home / ".config"),
            XDG_STATE_HOME=str(self.home / ".state"),
            PULSE_SERVER=self.address,
        )
        self.log = root / f"{kind}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Server:
        """Start the server and wait until `pactl info` answers (AudioServerError if not)."""
        self.launch()
        try:
            wait_until(self.ready, f"{self.kind} to answer pactl info", START_SECONDS)
        except AudioServerError as exc:
            raise AudioServerError(f"{exc}\n{self.log_tail(3000)}") from exc
        return self

    def launch(self) -> None:
        """Start the server, not waiting for it (see ready)."""
        for d in (self.runtime, self.home):
            d.mkdir(parents=True, exist_ok=True)
            d.chmod(0o700)
        if self.kind == "pulseaudio":
            command = [
                "pulseaudio",
                "-n",  # no default.pa: only the modules loaded here, no suspend-on-idle
                "--daemonize=no",
                "--exit-idle-time=-1",
                "--disallow-exit",
                "--use-pid-file=no",
                "--load=module-native-protocol-unix",
                "--log-target=stderr",
                "--log-level=error",
            ]
        else:
            command = ["dbus-run-session", "--", "sh", "-c", _PIPEWIRE_SCRIPT]
        self.proc = self.spawn(command, self.env, self.log)

    def ready(self) -> bool:
        """Whether it answers `pactl info` now (AudioServerError once it has exited)."""
        if self.proc is not None and self.proc.poll() is not None:
            raise AudioServerError(
                f"{self.kind} exited with {self.proc.returncode}\n{self.log_tail(3000)}"
            )
        return self.run("info", check=False).returncode == 0

    def running(self) -> bool:
        proc = self.proc  # kill() may clear it from another thread
        return proc is not None and proc.poll() is None

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["pactl", *args], env=self.env, capture_output=True, text=True, check=check, timeout=10
        )

    def log_tail(self, size: int) -> str:
        return self.log.read_text(errors="replace")[-size:] if self.log.exists() else ""

    def describe(self) -> str:
        """What the server lists now, and its log's tail (for a failing test's message)."""
        lists = [
            f"{what}:\n{self.run('list', 'short', what, check=False).stdout}"
            for what in ("sources", "source-outputs", "sink-inputs", "clients")
        ]
        return "\n".join(lists) + f"\nlog tail:\n{self.log_tail(2000)}"

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """End the server's whole process group (started here, ended by its id)."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)
        self.proc.wait(10)
        self.proc = None

    def stop(self) -> None:
        self.kill(signal.SIGTERM)

    def headset(
        self, name: str, props: Mapping[str, str], channels: int = 2, speaker: bool = False
    ) -> str:
        """A source `name` with the given device.* properties, on a null sink `name`_out whose
        monitor carries what plays into it (nothing: digital silence); with `speaker`, a null
        sink `name`_speaker with the same properties, the headset's speaker. Returns the name
        of the sink that feeds the microphone."""
        sink = f"{name}_out"
        self.run("load-module", "module-null-sink", f"sink_name={sink}", f"channels={channels}")
        proplist = " ".join(f'{k}="{v}"' for k, v in props.items())
        self.run(
            "load-module",
            "module-remap-source",
            f"master={sink}.monitor",
            f"source_name={name}",
            f"channels={channels}",
            f"source_properties='{proplist}'",
        )
        wanted = [name]
        if speaker:
            wanted.append(f"{name}_speaker.monitor")
            self.run(
                "load-module",
                "module-null-sink",
                f"sink_name={name}_speaker",
                f"channels={channels}",
                f"sink_properties='{proplist}'",
            )
        wait_until(lambda: _listed(self.run("list", "short", "sources").stdout, wanted), name, 10)
        return sink

    def play_tone(self, sink: str, peak_dbfs: float) -> None:
        """A 1 kHz sine of `peak_dbfs` (at most SINE_DBFS) into `sink`, generated by the server
        itself (module-sine, no client process): the sink's volume attenuates module-sine's
        own level, and its monitor carries the attenuated signal (PulseAudio)."""
        if peak_dbfs > SINE_DBFS:
            raise AudioServerError(f"a tone above {SINE_DBFS} dBFS: {peak_dbfs}")
        self.run("load-module", "module-sine", f"sink={sink}", "frequency=1000")
        # A linear factor (pactl reads a number with a '.' as one): amplitude, not cubic.
        factor = 10 ** ((peak_dbfs - SINE_DBFS) / 20)
        self.run("set-sink-volume", sink, f"{factor:.6f}")


def _listed(short_list: str, names: Sequence[str]) -> bool:
    present = {line.split("\t")[1] for line in short_list.splitlines() if "\t" in line}
    return all(name in present for name in names)


class Softphone:
    """parec recording from a source as a softphone does (media.role=phone); what it records
    goes to /dev/null."""

    def __init__(self, server: Server, source: str, name: str = "Softphone") -> None:
        log = server.log.with_name("softphone.log")
        self._proc = server.spawn(
            [
                "parec",
                f"--device={source}",
                "--raw",
                "--latency-msec=20",
                "--property=media.role=phone",
                f"--property=application.name={name}",
            ],
            server.env,
            log,
        )

    @property
    def pid(self) -> int:
        return self._proc.pid

    def stop(self) -> None:
        if self._proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, signal.SIGTERM)
        self._proc.wait(10)

    def alive(self) -> bool:
        return self._proc.poll() is None
