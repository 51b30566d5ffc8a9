"""Virtual USB headsets for the VM tier: configfs gadgets on dummy_hcd, seen by the guest's own
USB host stack (usbhid, hidraw, snd-usb-audio, udev) as real hardware.

Owns (inside the guest, as root): creating a gadget from any HID report descriptor with its own
vendor/product ids, strings and serial, optionally with a USB Audio Class 2 function (mic +
speaker); plugging and unplugging it (binding/unbinding a UDC: one UDC is one USB bus with one
port, `dummy_hcd num=N` gives N); writing the input reports the headset would send; playing a
tone or silence into its microphone; and reading everything the host wrote to it (output and
feature reports: the HID function has no OUT endpoint, so every host write arrives as a
SET_REPORT that the gadget side reads from /dev/hidgN).

Never: writes to anything on the host side (the code under test's side); sleeps to wait for the
kernel or udev: every wait is a bounded poll on a condition, with a clear error when it expires.
"""

from __future__ import annotations

import array
import errno
import math
import os
import select
import shutil
import subprocess
import time
from collections.abc import Callable
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


def wait_for(cond: Callable[[], T], timeout: float, what: str, interval: float = 0.02) -> T:
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


def free_udcs() -> list[str]:
    used = used_udcs()
    return sorted((u for u in all_udcs() if u not in used), key=lambda n: int(n.rsplit(".", 1)[1]))


@dataclass(frozen=True)
class Audio:
    """A UAC2 function: the host's capture is the headset's mic (the gadget plays into it)."""

    mic_channels: int = 1
    speaker_channels: int = 2
    rate: int = 48000
    sample_bytes: int = 2


def split_name(name: str) -> tuple[str, str]:
    """Manufacturer and product strings from a fixture's `N:` line ("Jabra BIZ 2400 II (...)")."""
    base = name.split(" (", maxsplit=1)[0].split(" - ", maxsplit=1)[0].strip()
    maker, _, product = base.partition(" ")
    return maker, product or base


class Gadget:
    """One virtual USB device with a HID function (and optionally UAC2)."""

    _count = 0

    def __init__(
        self,
        descriptor: bytes,
        vendor_id: int,
        product_id: int,
        *,
        manufacturer: str,
        product: str,
        serial: str | None,
        bcd_device: int = 0x0100,
        audio: Audio | None = None,
        report_length: int = 64,
        name: str | None = None,
    ) -> None:
        Gadget._count += 1
        self.name = name or f"g{os.getpid()}_{Gadget._count}"
        self.descriptor = descriptor
        self.vendor_id = vendor_id
        self.product_id = product_id
        self.manufacturer = manufacturer
        self.product = product
        self.serial = serial
        self.bcd_device = bcd_device
        self.audio = audio
        self.report_length = max(8, min(1024, report_length))
        self.dir = CONFIGFS / self.name
        self.udc: str | None = None
        self._hidg: int | None = None

    @classmethod
    def from_fixture(
        cls, fx: Fixture, serial: str | None, audio: Audio | None = None, name: str | None = None
    ) -> Gadget:
        maker, product = split_name(fx.name)
        return cls(
            fx.descriptor,
            fx.vendor_id,
            fx.product_id,
            manufacturer=maker,
            product=product,
            serial=serial,
            audio=audio,
            report_length=fx.parsed().max_report_length("input"),
            name=name,
        )

    # -- configfs --------------------------------------------------------------------------------
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
        f = d / "functions" / "hid.usb0"
        f.mkdir(parents=True)
        w(f / "protocol", "0")
        w(f / "subclass", "0")
        w(f / "report_length", str(self.report_length))
        # no interrupt OUT endpoint: every host write (output or feature report) then comes as a
        # SET_REPORT control request, which f_hid hands to the reader of /dev/hidgN
        w(f / "no_out_endpoint", "1")
        (f / "report_desc").write_bytes(self.descriptor)
        (c / "hid.usb0").symlink_to(f)
        if self.audio:
            a = d / "functions" / "uac2.usb0"
            a.mkdir()
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
            (c / "uac2.usb0").symlink_to(a)
        return self

    def destroy(self) -> None:
        if self.udc:
            self.unplug()
        self._close()
        d = self.dir
        if not d.exists():
            return
        c = d / "configs" / "c.1"
        for link in ("hid.usb0", "uac2.usb0"):
            if (c / link).is_symlink():
                (c / link).unlink()
        for p in (
            c / "strings" / "0x409",
            c,
            d / "functions" / "hid.usb0",
            d / "functions" / "uac2.usb0",
            d / "strings" / "0x409",
            d,
        ):
            if p.exists():
                p.rmdir()

    # -- plug / unplug ---------------------------------------------------------------------------
    def plug(self, udc: str | None = None, timeout: float = 30.0) -> Gadget:
        """Bind to a UDC (a free one if none is given) and wait until the host side has made the
        hidraw node and udevd has handled every event (driver loads and rebinds included)."""
        if udc is None:
            free = free_udcs()
            if not free:
                raise GadgetError("no free UDC: unplug a gadget or boot with more (vmboot.UDCS)")
            udc = free[0]
        _write(self.dir / "UDC", udc)
        self.udc = udc
        wait_for(self.hidraw_nodes, timeout, f"{self.name}'s hidraw node on {udc}")
        if self.audio:
            wait_for(lambda: self.host_card() is not None, timeout, f"{self.name}'s USB audio card")
        udev_settle(timeout)
        wait_for(self.hidraw_nodes, timeout, f"{self.name}'s hidraw node after udev settled")
        self._open()
        return self

    def unplug(self, timeout: float = 30.0) -> None:
        if not self.udc:
            return
        self._close()
        _write(self.dir / "UDC", "")
        self.udc = None
        wait_for(lambda: not self.usb_device(), timeout, f"{self.name} to leave the host")

    def plug_nowait(self, udc: str) -> None:
        """Bind and return at once: for plugging many at once (then `wait_plugged`)."""
        _write(self.dir / "UDC", udc)
        self.udc = udc

    def wait_plugged(self, timeout: float = 60.0) -> None:
        wait_for(self.hidraw_nodes, timeout, f"{self.name}'s hidraw node on {self.udc}")
        if self.audio:
            wait_for(lambda: self.host_card() is not None, timeout, f"{self.name}'s USB audio card")

    def unplug_nowait(self) -> None:
        self._close()
        _write(self.dir / "UDC", "")
        self.udc = None

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
        dev = self.usb_device()
        return (
            sorted(f"/dev/{p.name}" for p in dev.glob("*:*/0003:*/hidraw/hidraw*")) if dev else []
        )

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
    @property
    def hidg_path(self) -> str:
        major_minor = (self.dir / "functions" / "hid.usb0" / "dev").read_text().strip()
        return f"/dev/hidg{major_minor.split(':')[1]}"

    def _open(self) -> None:
        if self._hidg is None:
            wait_for(lambda: os.path.exists(self.hidg_path), 10, "the hidg node")
            self._hidg = os.open(self.hidg_path, os.O_RDWR | os.O_NONBLOCK)

    def _close(self) -> None:
        if self._hidg is not None:
            os.close(self._hidg)
            self._hidg = None

    def send(self, report: bytes, timeout: float = 5.0) -> float:
        """Send one input report as the headset would; returns time.time() just before the write.

        f_hid keeps one report in flight: the next write waits until the host has polled the
        previous one, which only happens while some host program has the hidraw node open."""
        if self._hidg is None:
            raise GadgetError(f"{self.name} is not plugged")
        end = time.monotonic() + timeout
        while True:
            t = time.time()
            try:
                n = os.write(self._hidg, report)
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
                select.select([], [self._hidg], [], min(left, 0.5))

    def host_writes(self) -> list[bytes]:
        """Everything the host wrote to the device (output/feature SET_REPORTs) since last asked."""
        if self._hidg is None:
            return []
        got: list[bytes] = []
        while True:
            try:
                b = os.read(self._hidg, 4096)
            except BlockingIOError:
                return got
            except OSError as e:
                if e.errno in (errno.ESHUTDOWN, errno.ENODEV):
                    return got
                raise
            if not b:
                return got
            got.append(b)

    # -- audio -----------------------------------------------------------------------------------
    def play(
        self, level_dbfs: float | None, seconds: float, freq: float = 1000.0
    ) -> subprocess.Popen[bytes]:
        """Play into the headset's microphone from the gadget side: a sine whose RMS is
        `level_dbfs` (dBFS relative to a full-scale square wave: RMS 1.0 = 0 dBFS), or digital
        silence for None. Returns the running aplay; the caller waits for or stops it."""
        if not self.audio:
            raise GadgetError(f"{self.name} has no audio function")
        wait_for(
            lambda: self.gadget_card() is not None, 10, "the gadget's ALSA card"
        )  # card 0 is falsy
        card = self.gadget_card()
        raw = tone_s16(level_dbfs, seconds, freq, self.audio.rate, self.audio.mic_channels)
        path = Path(f"/tmp/{self.name}-tone.raw")
        path.write_bytes(raw)
        return subprocess.Popen(
            [
                "aplay",
                "-q",
                "-D",
                f"hw:{card},0",
                "-t",
                "raw",
                "-f",
                "S16_LE",
                "-r",
                str(self.audio.rate),
                "-c",
                str(self.audio.mic_channels),
                str(path),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )


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
        g = Gadget(b"", 0, 0, manufacturer="", product="", serial=None, name=d.name)
        if (d / "UDC").exists() and (d / "UDC").read_text().strip():
            g.udc = (d / "UDC").read_text().strip()
        try:
            g.destroy()
        except OSError:
            shutil.rmtree(d, ignore_errors=True)
