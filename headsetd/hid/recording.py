"""The hid-recorder file format (hid-tools), read and written.

Owns: `Recording` (a device's descriptor, name, ids and its timed input reports) and the text
format users already produce with `sudo hid-recorder /dev/hidrawN`:

    # comments are allowed anywhere
    D: 0                                  (device index; one device per file here)
    R: 49 05 0b 09 05 a1 01 ...           (descriptor length, then its bytes)
    N: Jabra EVOLVE LINK MS               (the kernel's HID_NAME)
    P: usb-0000:00:14.0-1/input3          (physical path, optional)
    I: 3 0b0e 0307                        (bus type, vendor id, product id, in hex)
    E: 000001.500000 3 02 01 00           (seconds.microseconds, length, report bytes)

Never does: touch a device, or decide what a report means. Bad input raises `RecordingError`
with the line number; device-supplied text is kept as read (sanitising is the exporter's job).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

MAX_RECORDING_BYTES = 64 * 1024 * 1024  # a day of a busy headset is a few MB; refuse absurd files


class RecordingError(ValueError):
    """A hid-recorder file is malformed; the message names the file and line."""


@dataclass(frozen=True, slots=True)
class RecordedReport:
    """One input report and when it arrived, in seconds since the recording started."""

    t: float
    data: bytes


@dataclass(frozen=True, slots=True)
class Recording:
    """A recorded device: what `hid-recorder` writes about one hidraw node."""

    descriptor: bytes
    name: str = ""
    bus: int = 3  # BUS_USB
    vendor_id: int = 0
    product_id: int = 0
    phys: str = ""
    reports: tuple[RecordedReport, ...] = ()
    source: str = ""  # the file it came from, for messages

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Recording:
        """Read a hid-recorder file, or a raw binary descriptor (no reports, no ids)."""
        path = Path(path)
        try:
            if path.stat().st_size > MAX_RECORDING_BYTES:
                raise RecordingError(f"{path}: larger than {MAX_RECORDING_BYTES} bytes")
            data = path.read_bytes()
        except OSError as exc:
            raise RecordingError(f"{path}: {exc.strerror or exc}") from exc
        if _looks_like_text(data):
            return cls.parse(data.decode("utf-8", errors="replace"), source=str(path))
        return cls(descriptor=data, source=str(path))

    @classmethod
    def parse(cls, text: str, source: str = "<recording>") -> Recording:
        descriptor: bytes | None = None
        name, phys = "", ""
        bus, vendor_id, product_id = 3, 0, 0
        reports: list[RecordedReport] = []
        # Only "\n" ends a line: a device name may carry "\r" and other control characters.
        for lineno, raw_line in enumerate(text.split("\n"), 1):
            line = raw_line.strip()
            if not line or line.startswith("#"):
                continue
            tag, _, rest = line.partition(":")
            rest = rest.strip()
            where = f"{source}:{lineno}"
            try:
                if tag == "R":
                    descriptor = _sized_hex(rest, where)
                elif tag == "N":
                    name = rest
                elif tag == "P":
                    phys = rest
                elif tag == "I":
                    parts = rest.split()
                    if len(parts) != 3:
                        raise RecordingError(f"{where}: I: wants 'bus vendor product'")
                    bus, vendor_id, product_id = (int(p, 16) for p in parts)
                    if not (0 <= vendor_id <= 0xFFFF and 0 <= product_id <= 0xFFFF):
                        raise RecordingError(f"{where}: vendor/product id out of range")
                elif tag == "E":
                    stamp, _, body = rest.partition(" ")
                    t = float(stamp)
                    if not 0 <= t < 1e9:
                        raise RecordingError(f"{where}: timestamp {stamp} out of range")
                    if reports and t < reports[-1].t:
                        raise RecordingError(f"{where}: timestamps go backwards")
                    reports.append(RecordedReport(t, _sized_hex(body, where)))
                elif tag == "D":
                    if int(rest) != 0:
                        raise RecordingError(
                            f"{where}: several devices in one file; record one hidraw node per file"
                        )
                else:
                    raise RecordingError(f"{where}: unknown line type {tag!r}")
            except ValueError as exc:
                if isinstance(exc, RecordingError):
                    raise
                raise RecordingError(f"{where}: {exc}") from exc
        if descriptor is None:
            raise RecordingError(f"{source}: no R: (report descriptor) line")
        return cls(descriptor, name, bus, vendor_id, product_id, phys, tuple(reports), source)

    def dump(self, out: TextIO) -> None:
        """Write in hid-recorder's format (what `hid-replay` and `headsetd` read back)."""
        out.write(f"R: {len(self.descriptor)} {self.descriptor.hex(' ')}\n")
        out.write(f"N: {self.name}\n")
        if self.phys:
            out.write(f"P: {self.phys}\n")
        out.write(f"I: {self.bus:x} {self.vendor_id:04x} {self.product_id:04x}\n")
        for report in self.reports:
            seconds, micros = divmod(round(report.t * 1_000_000), 1_000_000)
            out.write(f"E: {seconds:06d}.{micros:06d} {len(report.data)} {report.data.hex(' ')}\n")


def _sized_hex(text: str, where: str) -> bytes:
    """'3 01 02 03' -> b'\\x01\\x02\\x03', checking the declared length."""
    parts = text.split()
    if not parts:
        raise RecordingError(f"{where}: missing length")
    size = int(parts[0])
    data = bytes(int(p, 16) for p in parts[1:])
    if len(data) != size:
        raise RecordingError(f"{where}: declares {size} bytes but has {len(data)}")
    return data


def _looks_like_text(data: bytes) -> bool:
    """hid-recorder files start with '#', 'D:' or 'R:'; a binary descriptor starts with an item."""
    head = data.lstrip()[:2]
    return head[:1] == b"#" or head in (b"R:", b"D:", b"N:", b"I:")
