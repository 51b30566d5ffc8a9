"""Virtual USB headsets for the VM tier: configfs gadgets on dummy_hcd, seen by the guest's own
USB host stack (usbhid, hidraw, snd-usb-audio, udev) as real hardware.

Owns (inside the guest, as root): creating a gadget with its own vendor/product ids, strings and
serial from any number of HID functions (each with any report descriptor, boot keyboards
included) and optionally a USB Audio Class 2 function (mic, speaker, or both); plugging and
unplugging it (binding/unbinding a UDC: one UDC is one USB bus with one port, `dummy_hcd num=N`
gives N); writing the input reports the device would send on any of its HID interfaces; playing
a tone or silence into its microphone; and reading everything the host wrote to it (output and
feature reports: the HID functions have no OUT endpoint, so every host write arrives as a
SET_REPORT that the gadget side reads from /dev/hidgN).

Never: writes to anything on the host side (the code under test's side); sleeps to wait for the
kernel or udev: every wait is a bounded poll on a condition, with a clear error when it expires.
"""

from __future__ import annotations

import array
import collections
import errno
import fcntl
import functools
import math
import os
import select
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from hidreport import Fixture

CONFIGFS = Path("/sys/kernel/config/usb_gadget")
UDC_CLASS = Path("/sys/class/udc")
PLATFORM = Path("/sys/devices/platform")


T = TypeVar("T")


class GadgetError(RuntimeError):
    """The kernel did not do what the gadget asked within the time allowed."""


def wait_for(cond: Callable[[], T | None], timeout: float, what: str, interval: float = 0.02) -> T:
    """Poll `cond()` until it returns a truthy value (returned), or fail after `timeout` s."""
    end = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > end:
            raise GadgetError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def udev_settle(timeout: float = 30.0) -> None:
    """Wait until udevd has handled every queued event (module loads by modalias included)."""
    subprocess.run(["udevadm", "settle", f"--timeout={int(timeout)}"], check=True)


def all_udcs() -> list[str]:
    return sorted(p.name for p in UDC_CLASS.iterdir()) if UDC_CLASS.is_dir() else []


def used_udcs() -> set[str]:
    used = set()
    if CONFIGFS.is_dir():
        for g in CONFIGFS.iterdir():
            u = (g / "UDC").read_text().strip() if (g / "UDC").exists() else ""
            if u:
                used.add(u)
    return used


def audio_gadgets_plugged() -> list[str]:
    """The gadgets plugged now that have a UAC2 function (see Audio: one with feature units
    goes alone)."""
    out = []
    for g in sorted(CONFIGFS.iterdir()) if CONFIGFS.is_dir() else []:
        bound = (g / "UDC").exists() and (g / "UDC").read_text().strip()
        if bound and any((g / "functions").glob("uac2.*")):
            out.append(g.name)
    return out


def free_udcs() -> list[str]:
    used = used_udcs()
    return sorted((u for u in all_udcs() if u not in used), key=lambda n: int(n.rsplit(".", 1)[1]))


@dataclass(frozen=True)
class Audio:
    """A UAC2 function: the host's capture is the headset's mic (the gadget plays into it).

    0 channels leave a direction out (f_uac2 then declares neither its terminals nor its
    endpoint): speaker_channels=0 is a microphone, mic_channels=0 headphones. f_uac2 (6.1)
    declares its terminals as Microphone (0x0201) and Speaker (0x0301).

    `controls` gives each direction a feature unit (mute, volume). f_uac2 (6.1) keeps its
    clock and unit ids and the feature units' descriptors in file-global variables, not per
    function: with several UAC2 gadgets bound at once, one's requests are matched against the
    ids of the one bound last (they fail: "TODO!" in dmesg, and the host's mixer lacks them),
    and unbinding any frees the feature units of all (a later volume request to another would
    dereference NULL). Gadgets bound together therefore go without (controls=False)."""

    mic_channels: int = 1
    speaker_channels: int = 2
    rate: int = 48000
    sample_bytes: int = 2
    controls: bool = True


@dataclass(frozen=True)
class HidFunction:
    """One HID interface of a gadget. subclass 1 + protocol 1 is a boot keyboard."""

    descriptor: bytes
    report_length: int = 64  # the interrupt IN endpoint's packet size (8..1024)
    subclass: int = 0
    protocol: int = 0

    @classmethod
    def of(cls, fx: Fixture) -> HidFunction:
        return cls(fx.descriptor, fx.parsed().max_report_length("input"))


def split_name(name: str) -> tuple[str, str]:
    """Manufacturer and product strings from a fixture's `N:` line ("Jabra BIZ 2400 II (...)")."""
    base = name.split(" (", maxsplit=1)[0].split(" - ", maxsplit=1)[0].strip()
    maker, _, product = base.partition(" ")
    return maker, product or base


class Gadget:
    """One virtual USB device: HID functions (interfaces 0..n-1, in order) and optionally UAC2
    (the interfaces after them)."""

    _count = 0

    def __init__(
        self,
        vendor_id: int,
        product_id: int,
        *,
        manufacturer: str,
        product: str,
        serial: str | None,
        hid: Sequence[HidFunction] = (),
        audio: Audio | None = None,
        bcd_device: int = 0x0100,
        name: str | None = None,
    ) -> None:
        Gadget._count += 1
        self.name = name or f"g{os.getpid()}_{Gadget._count}"
        self.vendor_id = vendor_id
        self.product_id = product_id
        self.manufacturer = manufacturer
        self.product = product
        self.serial = serial
        self.bcd_device = bcd_device
        self.hid = tuple(hid)
        self.audio = audio
        self.dir = CONFIGFS / self.name
        self.udc: str | None = None
        self._hidg: list[int] = []  # the gadget side of each HID function, while plugged
        self._left: str | None = None  # the UDC it was last unplugged from

    @classmethod
    def from_fixture(
        cls, fx: Fixture, serial: str | None, audio: Audio | None = None, name: str | None = None
    ) -> Gadget:
        maker, product = split_name(fx.name)
        return cls(
            fx.vendor_id,
            fx.product_id,
            manufacturer=maker,
            product=product,
            serial=serial,
            hid=[HidFunction.of(fx)],
            audio=audio,
            name=name,
        )

    # -- configfs --------------------------------------------------------------------------------
    def _functions(self) -> list[str]:
        return [f"hid.usb{i}" for i in range(len(self.hid))] + (["uac2.usb0"] if self.audio else [])

    def create(self) -> Gadget:
        d = self.dir
        d.mkdir()
        w = _write
        w(d / "idVendor", f"0x{self.vendor_id:04x}")
        w(d / "idProduct", f"0x{self.product_id:04x}")
        w(d / "bcdDevice", f"0x{self.bcd_device:04x}")
        w(d / "bcdUSB", "0x0200")
        if self.audio:  # interface association descriptors: class Misc / Common / IAD
            w(d / "bDeviceClass", "0xEF")
            w(d / "bDeviceSubClass", "0x02")
            w(d / "bDeviceProtocol", "0x01")
        s = d / "strings" / "0x409"
        s.mkdir(parents=True)
        w(s / "manufacturer", self.manufacturer)
        w(s / "product", self.product)
        if self.serial is not None:
            # left unwritten, the serial string is empty and the host stores no serial at all
            # (usb_cache_string drops empty strings): a device without a serial, as many are
            w(s / "serialnumber", self.serial)
        c = d / "configs" / "c.1"
        (c / "strings" / "0x409").mkdir(parents=True)
        w(c / "strings" / "0x409" / "configuration", "headset")
        w(c / "MaxPower", "100")
        for i, h in enumerate(self.hid):
            f = d / "functions" / f"hid.usb{i}"
            f.mkdir(parents=True)
            w(f / "protocol", str(h.protocol))
            w(f / "subclass", str(h.subclass))
            w(f / "report_length", str(max(8, min(1024, h.report_length))))
            # no interrupt OUT endpoint: every host write (output or feature report) then comes
            # as a SET_REPORT control request, which f_hid hands to the reader of /dev/hidgN
            w(f / "no_out_endpoint", "1")
            (f / "report_desc").write_bytes(h.descriptor)
        if self.audio:
            a = d / "functions" / "uac2.usb0"
            a.mkdir(parents=True)
            mic_mask = (1 << self.audio.mic_channels) - 1
            spk_mask = (1 << self.audio.speaker_channels) - 1
            for k, v in (
                ("p_chmask", mic_mask),
                ("p_srate", self.audio.rate),
                ("p_ssize", self.audio.sample_bytes),
                ("c_chmask", spk_mask),
                ("c_srate", self.audio.rate),
                ("c_ssize", self.audio.sample_bytes),
            ):
                w(a / k, str(v))
            if not self.audio.controls:
                for k in (
                    "p_mute_present",
                    "p_volume_present",
                    "c_mute_present",
                    "c_volume_present",
                ):
                    w(a / k, "0")
        # interfaces are numbered in the order the functions are linked: HID first
        for fn in self._functions():
            (c / fn).symlink_to(d / "functions" / fn)
        return self

    def destroy(self) -> None:
        if self.udc:
            self.unplug()
        self._close()
        d = self.dir
        if not d.exists():
            return
        c = d / "configs" / "c.1"
        functions = sorted(p.name for p in (d / "functions").iterdir())
        for fn in functions:
            if (c / fn).is_symlink():
                (c / fn).unlink()
        for p in (
            c / "strings" / "0x409",
            c,
            *(d / "functions" / fn for fn in functions),
            d / "strings" / "0x409",
            d,
        ):
            if p.exists():
                p.rmdir()

    # -- plug / unplug ---------------------------------------------------------------------------
    def plug(self, udc: str | None = None, timeout: float = 30.0) -> Gadget:
        """Bind to a UDC (a free one if none is given) and wait until the host side has made
        every hidraw node and sound card and udevd has handled every event (driver loads and
        rebinds included)."""
        if udc is None:
            free = free_udcs()
            if not free:
                raise GadgetError("no free UDC: unplug a gadget or boot with more (vmboot.UDCS)")
            udc = free[0]
        self.plug_nowait(udc)
        self.wait_plugged(timeout)
        udev_settle(timeout)
        self.wait_plugged(timeout)
        self.open_functions()
        return self

    def unplug(self, timeout: float = 30.0) -> None:
        if not self.udc:
            return
        self.unplug_nowait()
        self.wait_gone(timeout)

    def plug_nowait(self, udc: str) -> None:
        """Bind and return at once: for plugging many at once (then `wait_plugged`)."""
        _write(self.dir / "UDC", udc)
        self.udc = udc

    def wait_plugged(self, timeout: float = 60.0) -> None:
        """Until the host side has every part: a hidraw node per HID function, the sound card."""
        wait_for(
            lambda: (
                self.usb_device() is not None
                and len(self.hidraw_nodes()) == len(self.hid)
                and (self.audio is None or self.host_card() is not None)
            ),
            timeout,
            f"{self.name}'s {len(self.hid)} hidraw node(s)"
            + (" and USB audio card" if self.audio else "")
            + f" on {self.udc}",
        )

    def unplug_nowait(self) -> float:
        """Unbind; returns time.time() just before the unbinding write (the unplug's moment)."""
        self._close()
        t = time.time()
        _write(self.dir / "UDC", "")
        self._left, self.udc = self.udc, None
        return t

    def wait_gone(self, timeout: float = 30.0) -> None:
        """Until the host side no longer has the device unplugged last."""
        if self._left is None:
            return
        hcd = PLATFORM / f"dummy_hcd.{self._left.rsplit('.', 1)[1]}"
        wait_for(lambda: not list(hcd.glob("usb*/*-1")), timeout, f"{self.name} to leave the host")

    # -- the host side, as seen through sysfs ----------------------------------------------------
    @property
    def index(self) -> int:
        if not self.udc:
            raise GadgetError(f"{self.name} is not plugged")
        return int(self.udc.rsplit(".", 1)[1])

    def usb_device(self) -> Path | None:
        """The host side's USB device directory (/sys/devices/platform/dummy_hcd.N/usbB/B-1)."""
        if not self.udc:
            return None
        hits = sorted((PLATFORM / f"dummy_hcd.{self.index}").glob("usb*/*-1"))
        return hits[0] if hits else None

    @property
    def port_path(self) -> str:
        """The USB port path the host gives this device ("3-1"), as in /sys/bus/usb/devices."""
        dev = self.usb_device()
        if dev is None:
            raise GadgetError(f"{self.name} is not enumerated")
        return dev.name

    def hid_devices(self) -> list[Path]:
        dev = self.usb_device()
        return sorted(dev.glob("*:*/0003:*")) if dev else []

    def hidraw_nodes(self) -> list[str]:
        """Every hidraw node of the device, sorted by name."""
        dev = self.usb_device()
        return (
            sorted(f"/dev/{p.name}" for p in dev.glob("*:*/0003:*/hidraw/hidraw*")) if dev else []
        )

    def hidraw_node(self, function: int) -> str:
        """The hidraw node of HID function `function` (its USB interface has that number)."""
        dev = self.usb_device()
        nodes = list(dev.glob(f"*:1.{function}/0003:*/hidraw/hidraw*")) if dev else []
        if len(nodes) != 1:
            raise GadgetError(f"{self.name}: HID function {function} has hidraw nodes {nodes}")
        return f"/dev/{nodes[0].name}"

    def hid_driver(self) -> str | None:
        """The kernel HID driver bound to the device (hid-generic, hid-plantronics, ...)."""
        for h in self.hid_devices():
            if (h / "driver").exists():
                return os.path.basename(os.readlink(h / "driver"))
        return None

    def host_card(self) -> int | None:
        """The ALSA card snd-usb-audio made for this device on the host side."""
        dev = self.usb_device()
        cards = sorted(dev.glob("*:*/sound/card*")) if dev else []
        return int(cards[0].name[4:]) if cards else None

    def gadget_card(self) -> int | None:
        """The gadget side's own ALSA card (UAC2Gadget): playing into it feeds the host's mic."""
        if not self.udc:
            return None
        prefix = str(PLATFORM / self.udc) + "/"
        for card in sorted(Path("/sys/class/sound").glob("card*")):
            if os.path.realpath(card).startswith(prefix):
                return int(card.name[4:])
        return None

    # -- HID traffic -----------------------------------------------------------------------------
    def hidg_path(self, function: int = 0) -> str:
        major_minor = (self.dir / "functions" / f"hid.usb{function}" / "dev").read_text().strip()
        return f"/dev/hidg{major_minor.split(':')[1]}"

    def open_functions(self) -> None:
        """Open the gadget side of every HID function (to send reports, see host writes)."""
        if self._hidg:
            return
        for i in range(len(self.hid)):
            path = self.hidg_path(i)
            wait_for(functools.partial(os.path.exists, path), 10, path)
            self._hidg.append(os.open(path, os.O_RDWR | os.O_NONBLOCK))

    def _close(self) -> None:
        while self._hidg:
            os.close(self._hidg.pop())

    def send(self, report: bytes, timeout: float = 5.0, function: int = 0) -> float:
        """Send one input report on HID function `function` as the device would; returns
        time.time() just before the write.

        f_hid keeps one report in flight: the next write waits until the host has polled the
        previous one, which only happens while some host program has the device open (its
        hidraw node, or the input device the kernel made of it)."""
        if not self._hidg:
            raise GadgetError(f"{self.name} is not plugged")
        fd = self._hidg[function]
        end = time.monotonic() + timeout
        while True:
            t = time.time()
            try:
                n = os.write(fd, report)
                if n != len(report):
                    raise GadgetError(f"short write {n}/{len(report)}")
                return t
            except BlockingIOError:
                left = end - time.monotonic()
                if left <= 0:
                    raise GadgetError(
                        f"{self.name}: the host did not take the previous input report "
                        f"within {timeout}s "
                        "(is any program reading the hidraw node?)"
                    ) from None
                select.select([], [fd], [], min(left, 0.5))

    def host_writes(self) -> list[bytes]:
        """Everything the host wrote to the device (output/feature SET_REPORTs, on any of its
        HID functions) since last asked."""
        got: list[bytes] = []
        for fd in self._hidg:
            while True:
                try:
                    b = os.read(fd, 4096)
                except BlockingIOError:
                    break
                except OSError as e:
                    if e.errno in (errno.ESHUTDOWN, errno.ENODEV):
                        break
                    raise
                if not b:
                    break
                got.append(b)
        return got

    # -- audio -----------------------------------------------------------------------------------
    def gadget_card_ready(self) -> int:
        """The gadget side's ALSA card, once it exists (card 0 is falsy: waited on as not None)."""
        if not self.audio:
            raise GadgetError(f"{self.name} has no audio function")
        wait_for(lambda: self.gadget_card() is not None, 10, "the gadget's ALSA card")
        card = self.gadget_card()
        assert card is not None
        return card

    def stream(self, log: Path) -> MicStream:
        """What its microphone picks up from now on, without a gap (see MicStream); aplay's
        messages (underruns) go to `log`."""
        assert self.audio is not None
        return MicStream(self.gadget_card_ready(), self.audio, log)

    def play(
        self, level_dbfs: float | None, seconds: float, freq: float = 1000.0
    ) -> subprocess.Popen[bytes]:
        """Play into the headset's microphone from the gadget side: a sine whose RMS is
        `level_dbfs` (dBFS relative to a full-scale square wave: RMS 1.0 = 0 dBFS), or digital
        silence for None. Returns the running aplay; the caller waits for or stops it."""
        assert self.audio is not None
        card = self.gadget_card_ready()
        raw = tone_s16(level_dbfs, seconds, freq, self.audio.rate, self.audio.mic_channels)
        path = Path(f"/tmp/{self.name}-tone.raw")
        path.write_bytes(raw)
        return subprocess.Popen(
            [*aplay(card, self.audio), "-q", str(path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )


SQRT2_DB = 20 * math.log10(math.sqrt(2))  # a sine's peak over its RMS, in dB (3.01)


def aplay(card: int, audio: Audio) -> list[str]:
    """aplay playing raw S16LE into the gadget side's card `card`: the headset's microphone."""
    rate, channels = str(audio.rate), str(audio.mic_channels)
    return ["aplay", "-D", f"hw:{card},0", "-t", "raw", "-f", "S16_LE", "-r", rate, "-c", channels]


class MicStream:
    """What a gadget headset's microphone picks up, without a gap: aplay on the gadget's own
    ALSA card reads raw S16LE from a pipe that a thread keeps full, chunk by chunk (100 ms
    each): the chunks `queue()` was given, each once, in order, and otherwise the signal
    `hold()` set (a 1 kHz tone of a given peak level, or digital silence; silence at first).

    One stream for the whole test, because the gadget side does not stop cleanly: between two
    players f_uac2 sends whatever its requests last held. The pipe (16 KiB) and aplay's buffer
    are written ahead, so a change reaches the host side up to about a second later; tests
    find it there, not by waiting. aplay is paced by the virtual USB bus (f_uac2 takes frames
    as the host's isochronous requests complete)."""

    CHUNK_S = 0.1

    def __init__(self, card: int, audio: Audio, log: Path) -> None:
        self.rate, self.channels = audio.rate, audio.mic_channels
        self._lock = threading.Lock()
        self._steady = self.tone(None)
        self._queued: collections.deque[bytes] = collections.deque()
        self._stopping = False
        self.log = log
        self._log = open(log, "wb")  # noqa: SIM115 - open as long as aplay runs
        self.proc = subprocess.Popen(
            [*aplay(card, audio), "-"],  # not -q: it reports underruns
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=self._log,
        )
        assert self.proc.stdin is not None
        fcntl.fcntl(self.proc.stdin.fileno(), fcntl.F_SETPIPE_SZ, 16384)
        self._thread = threading.Thread(target=self._feed, daemon=True)
        self._thread.start()

    def tone(self, peak_dbfs: float | None) -> bytes:
        """One chunk: a 1 kHz sine whose peak is `peak_dbfs` (its RMS is 3.01 dB lower), or
        digital silence for None. 100 ms is 100 whole periods: chunks join without a seam."""
        rms = None if peak_dbfs is None else peak_dbfs - SQRT2_DB
        return tone_s16(rms, self.CHUNK_S, 1000.0, self.rate, self.channels)

    def hold(self, peak_dbfs: float | None) -> None:
        chunk = self.tone(peak_dbfs)
        with self._lock:
            self._steady = chunk

    def queue(self, chunks: Iterable[bytes]) -> None:
        with self._lock:
            self._queued.extend(chunks)

    def queued(self) -> int:
        with self._lock:
            return len(self._queued)

    def _feed(self) -> None:
        assert self.proc.stdin is not None
        while True:
            with self._lock:
                if self._stopping:
                    return
                chunk = self._queued.popleft() if self._queued else self._steady
            try:
                self.proc.stdin.write(chunk)  # blocks while the pipe is full: paced by aplay
                self.proc.stdin.flush()
            except (BrokenPipeError, ValueError, OSError):
                return  # aplay ended (the gadget was unplugged, or stop())

    def underruns(self) -> int:
        """How often aplay ran dry so far (it says so on stderr): the mic got a gap."""
        self._log.flush()
        return self.log.read_text(errors="replace").count("underrun")

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
        self.proc.terminate()
        try:
            self.proc.wait(10)
        finally:
            self._thread.join(5)
            self._log.close()


def peak_dbfs_s16(raw: bytes) -> float:
    """Peak dBFS of S16LE samples (max |sample| / 32768, as PulseAudio's peak detection
    reads them); -inf for digital silence."""
    a = array.array("h")
    a.frombytes(raw[: len(raw) // 2 * 2])
    peak = max(-min(a, default=0), max(a, default=0)) / 32768
    return 20 * math.log10(peak) if peak > 0 else -math.inf


def plug_all(gadgets: Sequence[Gadget], timeout: float = 60.0) -> None:
    """Plug several gadgets at once (each on a free UDC) and wait until the host side has all
    their parts and udevd has handled every event; then open their HID functions' gadget side.
    Plugged together, their enumerations and udev's work overlap."""
    free = free_udcs()
    if len(free) < len(gadgets):
        raise GadgetError(f"{len(gadgets)} gadgets but {len(free)} free UDCs (vmboot.UDCS)")
    for g, udc in zip(gadgets, free, strict=False):
        g.plug_nowait(udc)
    for g in gadgets:
        g.wait_plugged(timeout)
    udev_settle(timeout)
    for g in gadgets:
        g.wait_plugged(timeout)  # a driver rebind (hid-generic to a vendor driver) remakes nodes
        g.open_functions()


def tone_s16(
    level_dbfs: float | None, seconds: float, freq: float, rate: int, channels: int
) -> bytes:
    """S16LE samples: a sine of RMS 10^(dBFS/20), or zeros. One period is computed and repeated
    (freq must divide rate), because a sample-by-sample loop is slow in a TCG guest."""
    frames = int(seconds * rate)
    if level_dbfs is None:
        return bytes(2 * channels * frames)
    period = rate / freq
    if period != int(period):
        raise ValueError("freq must divide the sample rate")
    amp = math.sqrt(2) * 10 ** (level_dbfs / 20) * 32767
    one = array.array(
        "h",
        [
            round(amp * math.sin(2 * math.pi * i / period))
            for i in range(int(period))
            for _ in range(channels)
        ],
    )
    reps = frames // int(period)
    return one.tobytes() * reps


def rms_dbfs_s16(raw: bytes) -> tuple[float, float]:
    """(RMS dBFS, peak dBFS) of mono S16LE samples; -inf for digital silence."""
    a = array.array("h")
    a.frombytes(raw[: len(raw) // 2 * 2])
    if not a:
        return -math.inf, -math.inf
    rms = math.sqrt(math.fsum(x * x for x in a) / len(a)) / 32768
    peak = max(abs(min(a)), abs(max(a))) / 32768

    def to_db(x: float) -> float:
        return 20 * math.log10(x) if x > 0 else -math.inf

    return to_db(rms), to_db(peak)


def _write(path: Path, value: str) -> None:
    # configfs and sysfs strip one trailing newline; an empty write would not reach the store
    with open(path, "w") as f:
        f.write(value if value.endswith("\n") else value + "\n")


def cleanup_all() -> None:
    """Remove every gadget in configfs (after a test that failed half-way)."""
    if not CONFIGFS.is_dir():
        return
    for d in list(CONFIGFS.iterdir()):
        g = Gadget(0, 0, manufacturer="", product="", serial=None, name=d.name)
        if (d / "UDC").exists() and (d / "UDC").read_text().strip():
            g.udc = (d / "UDC").read_text().strip()
        try:
            g.destroy()
        except OSError:
            shutil.rmtree(d, ignore_errors=True)
