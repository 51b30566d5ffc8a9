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
Memory stays proportional to the file: a file is read line by line, and the reports are kept
in one bytes blob with arrays of times and offsets (`RecordedReports`), each `RecordedReport`
made on access, so a 16.8 MB recording costs ~11 MB, not 170 MB of objects.
"""

from __future__ import annotations

import os
from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO, overload

MAX_RECORDING_BYTES = 64 * 1024 * 1024  # a day of a busy headset is a few MB; refuse absurd files


class RecordingError(ValueError):
    """A hid-recorder file is malformed; the message names the file and line."""


@dataclass(frozen=True, slots=True)
class RecordedReport:
    """One input report and when it arrived, in seconds since the recording started."""

    t: float
    data: bytes


class RecordedReports(Sequence[RecordedReport]):
    """Timed reports stored compactly: a `RecordedReport` per item is made on access.

    Report i is `blob[offsets[i]:offsets[i + 1]]`, received at `times[i]`: 8 bytes of time and
    4 of offset per report beside its data, instead of ~130 bytes of Python objects. Immutable
    once built (`of` or `_ReportsBuilder`), so a `Recording` stays hashable and shareable.
    """

    __slots__ = ("_blob", "_offsets", "_times")

    def __init__(self, times: array[float], offsets: array[int], blob: bytes) -> None:
        if len(offsets) != len(times) + 1 or offsets[0] != 0 or offsets[-1] != len(blob):
            raise ValueError("offsets do not match times and blob")
        self._times = times
        self._offsets = offsets
        self._blob = blob

    @classmethod
    def of(cls, reports: Iterable[RecordedReport]) -> RecordedReports:
        if isinstance(reports, RecordedReports):
            return reports
        builder = _ReportsBuilder()
        for report in reports:
            builder.append(report.t, report.data)
        return builder.build()

    def __len__(self) -> int:
        return len(self._times)

    @overload
    def __getitem__(self, index: int) -> RecordedReport: ...

    @overload
    def __getitem__(self, index: slice) -> RecordedReports: ...

    def __getitem__(self, index: int | slice) -> RecordedReport | RecordedReports:
        if isinstance(index, slice):
            return RecordedReports.of(self[i] for i in range(*index.indices(len(self))))
        t = self._times[index]  # raises IndexError, and resolves a negative index
        i = index if index >= 0 else index + len(self._times)
        return RecordedReport(t, self._blob[self._offsets[i] : self._offsets[i + 1]])

    def __iter__(self) -> Iterator[RecordedReport]:
        blob, offsets = self._blob, self._offsets
        for i, t in enumerate(self._times):
            yield RecordedReport(t, blob[offsets[i] : offsets[i + 1]])

    def __eq__(self, other: object) -> bool:
        if isinstance(other, RecordedReports):
            return (self._times, self._offsets, self._blob) == (
                other._times,
                other._offsets,
                other._blob,
            )
        if isinstance(other, Sequence):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self._times.tobytes(), self._offsets.tobytes(), self._blob))

    def __repr__(self) -> str:
        return f"RecordedReports({len(self)} reports, {len(self._blob)} bytes)"


class _ReportsBuilder:
    """Appends reports into growing arrays; `build` freezes them into `RecordedReports`."""

    __slots__ = ("_blob", "_offsets", "_times")

    def __init__(self) -> None:
        self._times: array[float] = array("d")
        # 4-byte offsets: a recording is at most MAX_RECORDING_BYTES (< 4 GiB) of text.
        self._offsets: array[int] = array("I", [0])
        self._blob = bytearray()

    @property
    def last_t(self) -> float | None:
        return self._times[-1] if self._times else None

    def append(self, t: float, data: bytes) -> None:
        self._blob += data
        self._times.append(t)
        self._offsets.append(len(self._blob))

    def build(self) -> RecordedReports:
        return RecordedReports(self._times, self._offsets, bytes(self._blob))


@dataclass(frozen=True, slots=True)
class Recording:
    """A recorded device: what `hid-recorder` writes about one hidraw node.

    `reports` may be given as any sequence of `RecordedReport`; it is kept as `RecordedReports`.
    """

    descriptor: bytes
    name: str = ""
    bus: int = 3  # BUS_USB
    vendor_id: int = 0
    product_id: int = 0
    phys: str = ""
    reports: Sequence[RecordedReport] = field(default=())
    source: str = ""  # the file it came from, for messages

    def __post_init__(self) -> None:
        if not isinstance(self.reports, RecordedReports):
            object.__setattr__(self, "reports", RecordedReports.of(self.reports))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Recording:
        """Read a hid-recorder file, or a raw binary descriptor (no reports, no ids)."""
        path = Path(path)
        try:
            if path.stat().st_size > MAX_RECORDING_BYTES:
                raise RecordingError(f"{path}: larger than {MAX_RECORDING_BYTES} bytes")
            with path.open("rb") as file:
                if not _looks_like_text(file.read(4096)):
                    file.seek(0)
                    return cls(descriptor=file.read(MAX_RECORDING_BYTES), source=str(path))
                file.seek(0)
                # A binary file iterates by b"\n" only, like `parse`; each line is decoded alone.
                lines = (line.decode("utf-8", errors="replace") for line in file)
                return cls._parse_lines(lines, str(path))
        except OSError as exc:
            raise RecordingError(f"{path}: {exc.strerror or exc}") from exc

    @classmethod
    def parse(cls, text: str, source: str = "<recording>") -> Recording:
        return cls._parse_lines(_split_lines(text), source)

    @classmethod
    def _parse_lines(cls, lines: Iterable[str], source: str) -> Recording:
        descriptor: bytes | None = None
        name, phys = "", ""
        bus, vendor_id, product_id = 3, 0, 0
        reports = _ReportsBuilder()
        for lineno, raw_line in enumerate(lines, 1):
            line = raw_line.strip()
            if not line or line.startswith("#"):
                continue
            tag, _, rest = line.partition(":")
            rest = rest.strip()
            try:
                if tag == "E":
                    stamp, _, body = rest.partition(" ")
                    t = float(stamp)
                    if not 0 <= t < 1e9:
                        raise RecordingError(f"{source}:{lineno}: timestamp {stamp} out of range")
                    last = reports.last_t
                    if last is not None and t < last:
                        raise RecordingError(f"{source}:{lineno}: timestamps go backwards")
                    reports.append(t, _sized_hex(body, source, lineno))
                elif tag == "R":
                    descriptor = _sized_hex(rest, source, lineno)
                elif tag == "N":
                    name = rest
                elif tag == "P":
                    phys = rest
                elif tag == "I":
                    bus, vendor_id, product_id = _ids(rest, f"{source}:{lineno}")
                elif tag == "D":
                    if int(rest) != 0:
                        raise RecordingError(
                            f"{source}:{lineno}: several devices in one file; "
                            "record one hidraw node per file"
                        )
                else:
                    raise RecordingError(f"{source}:{lineno}: unknown line type {tag!r}")
            except ValueError as exc:
                if isinstance(exc, RecordingError):
                    raise
                raise RecordingError(f"{source}:{lineno}: {exc}") from exc
        if descriptor is None:
            raise RecordingError(f"{source}: no R: (report descriptor) line")
        return cls(descriptor, name, bus, vendor_id, product_id, phys, reports.build(), source)

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


def _split_lines(text: str) -> Iterator[str]:
    """Lines ended by "\n" only (a device name may carry "\r" and other control characters),
    one at a time: no list of a big file's lines is built."""
    start = 0
    while start <= len(text):
        end = text.find("\n", start)
        if end < 0:
            yield text[start:]
            return
        yield text[start:end]
        start = end + 1


def _ids(text: str, where: str) -> tuple[int, int, int]:
    parts = text.split()
    if len(parts) != 3:
        raise RecordingError(f"{where}: I: wants 'bus vendor product'")
    bus, vendor_id, product_id = (int(p, 16) for p in parts)
    if not (0 <= vendor_id <= 0xFFFF and 0 <= product_id <= 0xFFFF):
        raise RecordingError(f"{where}: vendor/product id out of range")
    return bus, vendor_id, product_id


def _sized_hex(text: str, source: str, lineno: int) -> bytes:
    """'3 01 02 03' -> b'\\x01\\x02\\x03', checking the declared length."""
    parts = text.split(None, 1)
    if not parts:
        raise RecordingError(f"{source}:{lineno}: missing length")
    size = int(parts[0])
    hex_text = parts[1] if len(parts) > 1 else ""
    try:
        data = bytes.fromhex(hex_text)  # hid-recorder's two digits a byte, space-separated
    except ValueError:
        data = bytes(int(p, 16) for p in hex_text.split())  # lenient: '1' or '0x01' a byte
    if len(data) != size:
        raise RecordingError(f"{source}:{lineno}: declares {size} bytes but has {len(data)}")
    return data


def _looks_like_text(head: bytes) -> bool:
    """hid-recorder files start with '#', 'D:' or 'R:'; a binary descriptor starts with an item."""
    head = head.lstrip()[:2]
    return head[:1] == b"#" or head in (b"R:", b"D:", b"N:", b"I:")
