"""Real audio servers for the tests: the package's (headsetd/simaudio.py: PulseAudio, or
PipeWire under dbus-run-session, in a private XDG_RUNTIME_DIR, with "headsets" whose source
carries a USB headset's device.* properties, and `Softphone`, parec with media.role=phone),
the same that `headsetd demo` and the e2e stack start, plus what only the tests need: `Tone`,
a 1 kHz sine or digital silence at a known dBFS written by pacat, changeable while it plays.

Owns: `Server` as the tests take it (skipped locally where a Debian package is missing, failed
under CI=true: tests/conftest.py) and `Tone`. Test code only.
"""

from __future__ import annotations

import array
import math
import shutil
import subprocess
import threading
from pathlib import Path

from headsetd import simaudio
from headsetd.simaudio import Softphone, usb_props, wait_until
from tests.conftest import require_tool

__all__ = ["RATE", "Server", "Softphone", "Tone", "usb_props", "wait_until", "which_all"]

RATE = 48000
CHUNK_FRAMES = RATE // 20  # 50 ms per write
# One period of a 1 kHz sine at 48 kHz is 48 samples, and sample 12 is the crest: the peak of
# the written tone is exactly its amplitude.
_PERIOD = [math.sin(2 * math.pi * i / 48) for i in range(48)]


class Server(simaudio.Server):
    """The package's test audio server of `kind` ("pulseaudio" or "pipewire") under `root`."""

    def __init__(self, kind: str, root: Path) -> None:
        for tool in simaudio.TOOLS[kind]:
            require_tool(tool)
        super().__init__(kind, root)


class Tone:
    """pacat playing a 1 kHz sine of peak `level` dBFS (None: digital zero) into a sink, left
    channel only if asked; `level` can be changed while it plays."""

    def __init__(
        self, server: simaudio.Server, sink: str, level: float | None, left_only: bool = False
    ):
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


def which_all(kind: str) -> bool:
    return all(shutil.which(t) for t in simaudio.TOOLS[kind])
