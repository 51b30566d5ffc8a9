"""Real audio servers for the tests: PulseAudio, or PipeWire (pipewire + wireplumber +
pipewire-pulse under dbus-run-session), each in a private XDG_RUNTIME_DIR, with "headsets":
a null sink whose monitor feeds a module-remap-source carrying a USB headset's device.*
properties, fed with a tone or digital silence at a known dBFS by `Tone` (pacat), and
recorded from by a stand-in softphone (`Softphone`: parec, media.role=phone).

Owns: starting, killing and restarting those processes (each in its own process group,
ended by its id), and readiness by polling `pactl info` with a deadline. Test code only.
"""

from __future__ import annotations

import array
import contextlib
import math
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

from tests.conftest import require_tool

RATE = 48000
CHUNK_FRAMES = RATE // 20  # 50 ms per write
# One period of a 1 kHz sine at 48 kHz is 48 samples, and sample 12 is the crest: the peak of
# the written tone is exactly its amplitude.
_PERIOD = [math.sin(2 * math.pi * i / 48) for i in range(48)]
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


def wait_until(condition: Callable[[], object], what: str, timeout: float) -> object:
    """Poll `condition` until it is true (returned) or `timeout` seconds pass (RuntimeError)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.02)


class Server:
    """One test audio server of `kind` ("pulseaudio" or "pipewire") under `root`."""

    def __init__(self, kind: str, root: Path) -> None:
        for tool in TOOLS[kind]:
            require_tool(tool)
        self.kind = kind
        self.runtime = root / "run"
        self.home = root / "home"
        self.address = f"unix:{self.runtime}/pulse/native"
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
        for d in (self.runtime, self.home):
            d.mkdir(parents=True, exist_ok=True)
            d.chmod(0o700)
        if self.kind == "pulseaudio":
            command = [
                "pulseaudio",
                "-n",
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
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                command, env=self.env, stdout=log, stderr=log, start_new_session=True
            )
        try:
            wait_until(self._ready, f"{self.kind} to answer pactl info", 30)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}\n{self.log.read_text(errors='replace')[-3000:]}") from exc
        return self

    def _ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"{self.kind} exited with {self.proc.returncode}")
        return self.run("info", check=False).returncode == 0

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["pactl", *args], env=self.env, capture_output=True, text=True, check=check, timeout=10
        )

    def describe(self) -> str:
        """What the server lists now, and its log's tail (for a failing test's message)."""
        lists = [
            f"{what}:\n{self.run('list', 'short', what, check=False).stdout}"
            for what in ("sources", "source-outputs", "sink-inputs", "clients")
        ]
        tail = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
        return "\n".join(lists) + f"\nlog tail:\n{tail}"

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """End the server's whole process group (started by us, ended by its id)."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)
        self.proc.wait(10)
        self.proc = None

    def stop(self) -> None:
        self.kill(signal.SIGTERM)

    def headset(self, name: str, props: dict[str, str], channels: int = 2) -> str:
        """A source `name` with the given device.* properties, on a null sink `name`_out whose
        monitor carries what a `Tone` plays. Returns the sink's name."""
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
        wait_until(lambda: name in self.run("list", "short", "sources").stdout, name, 10)
        return sink


class Tone:
    """pacat playing a 1 kHz sine of peak `level` dBFS (None: digital zero) into a sink, left
    channel only if asked; `level` can be changed while it plays."""

    def __init__(self, server: Server, sink: str, level: float | None, left_only: bool = False):
        self.level = level
        self.left_only = left_only
        self._proc = subprocess.Popen(
            [
                "pacat",
                "--playback",
                f"--device={sink}",
                "--raw",
                "--format=float32le",
                f"--rate={RATE}",
                "--channels=2",
                "--latency-msec=40",
            ],
            stdin=subprocess.PIPE,
            env=server.env,
        )
        self._running = True
        self._thread = threading.Thread(target=self._write, daemon=True)
        self._thread.start()

    def _chunk(self) -> bytes:
        level, left_only = self.level, self.left_only
        amplitude = 0.0 if level is None else 10 ** (level / 20)
        frames = array.array("f")
        for i in range(CHUNK_FRAMES):
            x = amplitude * _PERIOD[i % 48]
            frames.append(x)
            frames.append(0.0 if left_only else x)
        return frames.tobytes()

    def _write(self) -> None:
        assert self._proc.stdin is not None
        try:
            while self._running:
                self._proc.stdin.write(self._chunk())  # blocks: pacat reads in real time
                self._proc.stdin.flush()
        except (BrokenPipeError, ValueError, OSError):
            return  # the server (and so pacat) went away

    def stop(self) -> None:
        self._running = False
        self._proc.terminate()
        self._proc.wait(10)
        self._thread.join(5)


class Softphone:
    """parec recording from a source as a softphone would (media.role=phone), output dropped."""

    def __init__(self, server: Server, source: str) -> None:
        self._proc = subprocess.Popen(
            [
                "parec",
                f"--device={source}",
                "--raw",
                "--latency-msec=20",
                "--property=media.role=phone",
                "--property=application.name=Softphone",
            ],
            stdout=subprocess.DEVNULL,
            env=server.env,
        )

    def stop(self) -> None:
        self._proc.terminate()
        self._proc.wait(10)

    def alive(self) -> bool:
        return self._proc.poll() is None


def usb_props(kind: str, vid: int, pid: int, port: str, serial: str) -> dict[str, str]:
    """A USB headset's device.* properties as `kind` writes them (ids 046d vs 0x046d)."""
    ids = "{:04x}" if kind == "pulseaudio" else "0x{:04x}"
    return {
        "device.bus": "usb",
        "device.bus_path": f"pci-0000:00:14.0-usb-0:{port}:1.0",
        "device.vendor.id": ids.format(vid),
        "device.product.id": ids.format(pid),
        "device.serial": f"Test_Headset_{serial}",
        "device.description": f"Test Headset {serial}",
    }


def which_all(kind: str) -> bool:
    return all(shutil.which(t) for t in TOOLS[kind])
