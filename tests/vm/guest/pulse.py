"""The guest's PulseAudio, as the audio guest tests run it, and the programs around it.

Owns: starting PulseAudio in system mode (module-udev-detect, as a desktop finds USB audio;
the native protocol on its system socket, anonymous) and stopping it; pactl against it (short
lists, JSON lists); the source PulseAudio made for a gadget, told by the sysfs path of the
gadget's USB device (not by ids: twins have the same); `Parec`, a recording client (the
stand-in softphone with media.role=phone, or a test's own capture it keeps); `ServerEvents`,
every subscription event the server sends (`pactl subscribe`) with the time it arrived.

Never: plays into a source (the gadget does: gadget.MicStream), reaches into headsetd, or
waits blindly: every wait is a bounded poll on a condition.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gadget

PULSE = "unix:/run/pulse/native"  # the system instance's socket
ENV = {**os.environ, "PULSE_SERVER": PULSE}


def pactl(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["pactl", *args], env=ENV, capture_output=True, text=True, check=check, timeout=30
    )


def listed(what: str) -> list[dict[str, Any]]:
    """`pactl -f json list <what>` (sources, source-outputs, cards, ...)."""
    return list(json.loads(pactl("-f", "json", "list", what).stdout or "[]"))


class PulseAudio:
    """PulseAudio in system mode, started now; `stop()` ends it (started here, ended by id)."""

    def __init__(self, log_path: Path) -> None:
        exe = shutil.which("pulseaudio")
        if exe is None:
            raise gadget.GadgetError("pulseaudio is not installed (Debian package pulseaudio)")
        for d in ("/run/pulse", "/var/lib/pulse"):
            os.makedirs(d, exist_ok=True)
            shutil.chown(d, "pulse", "pulse")
        self.log_path = log_path
        self._log = open(log_path, "w")  # noqa: SIM115 - open as long as the daemon runs
        self.proc = subprocess.Popen(
            [
                exe,
                "--system",
                "--daemonize=no",
                "--disallow-exit",
                "--exit-idle-time=-1",
                "-n",
                "--load=module-udev-detect tsched=0",
                "--load=module-native-protocol-unix auth-anonymous=1",
                "--log-target=stderr",
                "--log-level=notice",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = 60) -> None:
        def answers() -> bool:
            if self.proc.poll() is not None:
                raise gadget.GadgetError(f"pulseaudio exited: {self.describe()}")
            return pactl("info", check=False).returncode == 0

        gadget.wait_for(answers, timeout, "PulseAudio to answer pactl info", interval=0.2)

    def source_of(self, g: gadget.Gadget) -> dict[str, Any] | None:
        """The (non-monitor) source PulseAudio made for gadget `g`'s card, found by the sysfs
        path of its USB device; None while there is none."""
        usb = g.usb_device()
        if usb is None:
            return None
        under = str(usb).removeprefix("/sys") + "/"
        for s in listed("sources"):
            props = s.get("properties", {})
            monitor = props.get("device.class") == "monitor"
            if not monitor and props.get("sysfs.path", "").startswith(under):
                return s
        return None

    def wait_source(self, g: gadget.Gadget, timeout: float = 90) -> dict[str, Any]:
        """The source of gadget `g`, once PulseAudio has made it (the server answers already:
        `wait_ready`)."""
        try:
            return gadget.wait_for(
                lambda: self.source_of(g), timeout, f"PulseAudio's source for {g.name}", 0.5
            )
        except gadget.GadgetError as e:
            cards = Path("/proc/asound/cards").read_text()
            raise gadget.GadgetError(
                f"{e}\n/proc/asound/cards:\n{cards}\n{self.describe()}"
            ) from None

    def describe(self) -> str:
        """What the server lists now, and its log's tail (for a failure's message)."""
        self._log.flush()
        lists = [
            f"{what}:\n{pactl('list', 'short', what, check=False).stdout}"
            for what in ("cards", "sources", "source-outputs", "clients")
        ]
        tail = self.log_path.read_text(errors="replace")[-3000:]
        return "\n".join(lists) + f"\npulseaudio log:\n{tail}"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        self._log.close()


class Parec:
    """parec recording mono S16LE at 48 kHz from a source, with the stream properties given
    (a softphone: media.role=phone). `keep`: its audio is collected by a thread as it comes
    (a test's own capture); otherwise dropped, as the stand-in softphone's is."""

    RATE_BYTES = 48000 * 2  # bytes per second

    def __init__(self, source: str, keep: bool = False, properties: Sequence[str] = ()) -> None:
        self.data = bytearray()
        self.started = time.time()  # just before the process starts
        self.proc = subprocess.Popen(
            [
                "parec",
                "-d",
                source,
                "--raw",
                "--format=s16le",
                "--rate=48000",
                "--channels=1",
                "--latency-msec=50",
                *(f"--property={p}" for p in properties),
            ],
            stdout=subprocess.PIPE if keep else subprocess.DEVNULL,
            env=ENV,
        )
        self._t: threading.Thread | None = None
        if keep:
            self._t = threading.Thread(target=self._read, daemon=True)
            self._t.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while chunk := os.read(fd, 65536):
            self.data += chunk

    def first_nonzero(self, start: int = 0) -> int | None:
        """Byte offset of the first sample that is not digital silence, from `start`."""
        view = bytes(self.data[start:])
        stripped = view.lstrip(b"\0")
        return None if not stripped else start + (len(view) - len(stripped)) // 2 * 2

    def stop(self) -> float:
        """End it; returns time.time() just before the signal."""
        t = time.time()
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait(10)
        if self._t is not None:
            self._t.join(5)
        return t


_EVENT = re.compile(r"Event '(\w+)' on ([\w-]+) #(\d+)")


@dataclass(frozen=True)
class ServerEvent:
    t: float  # time.time() when the line arrived here
    kind: str  # new, change, remove
    facility: str  # source-output, source, client, card, ...
    index: int


class ServerEvents:
    """Every event the server sends a subscriber from now on (`pactl subscribe`), in order:
    a source output made and gone however briefly is in here (`pactl list` at a moment could
    miss it)."""

    def __init__(self) -> None:
        self._events: list[ServerEvent] = []
        self._lock = threading.Lock()
        self.proc = subprocess.Popen(
            ["pactl", "subscribe"], stdout=subprocess.PIPE, text=True, bufsize=1, env=ENV
        )
        self._t = threading.Thread(target=self._read, daemon=True)
        self._t.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            m = _EVENT.match(line.strip())
            if m:
                with self._lock:
                    self._events.append(
                        ServerEvent(time.time(), m.group(1), m.group(2), int(m.group(3)))
                    )

    def of(self, facility: str, kind: str | None = None, since: float = 0.0) -> list[ServerEvent]:
        with self._lock:
            return [
                e
                for e in self._events
                if e.facility == facility and (kind is None or e.kind == kind) and e.t >= since
            ]

    def when(self, facility: str, kind: str, index: int, timeout: float) -> float:
        """When event `kind` of `facility` #index arrived (waiting up to `timeout` for it)."""
        hit = gadget.wait_for(
            lambda: next((e for e in self.of(facility, kind) if e.index == index), None),
            timeout,
            f"the server's '{kind}' event of {facility} #{index}",
        )
        return hit.t

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        self._t.join(5)
