"""Fixture files and report layouts for the VM tier's virtual headsets.

Owns: reading the hid-recorder files in tests/fixtures/hid and tests/fixtures/keyboards (`R:`
descriptor, `N:` name, `I:` bus, vendor, product, `E:` recorded input reports), and a
deliberately small HID report-descriptor walker that tells the gadget where a usage's bits are,
so that an input report ("hook off", "mute pressed", "volume up") can be built for any
descriptor, and which top-level application collections a descriptor has (the tier's own oracle
for "is this a telephony device").

Never: imports headsetd (the tier checks headsetd against the kernel and an independent reading
of the descriptor, not against itself); decodes reports the host received (the gadget only
writes); handles hostile descriptors: the fixtures are trusted, unlike in headsetd.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
FIXTURES_DIR = REPO / "tests" / "fixtures" / "hid"
# Keyboards headsetd must never be able to read (the udev probe's tests use the same folder);
# their files carry no USB ids (0000:0000): the tier plugs them under test ids.
KEYBOARDS_DIR = REPO / "tests" / "fixtures" / "keyboards"

PAGE_TELEPHONY = 0x0B
PAGE_CONSUMER = 0x0C
HOOK_SWITCH = 0x000B0020
PHONE_MUTE = 0x000B002F
VOLUME_UP = 0x000C00E9
VOLUME_DOWN = 0x000C00EA

FLAG_CONSTANT = 0x01
FLAG_VARIABLE = 0x02
FLAG_RELATIVE = 0x04


@dataclass(frozen=True)
class Field:
    """One main item's data: `count` values of `size` bits from `bit` (after the report-ID byte)."""

    kind: str  # "input" | "output" | "feature"
    report_id: int  # 0 when the descriptor uses no report IDs
    bit: int
    size: int
    count: int
    usages: tuple[int, ...]  # extended usages (page << 16 | id)
    flags: int
    logical_min: int
    application: int  # the top-level application collection's extended usage

    @property
    def variable(self) -> bool:
        return bool(self.flags & FLAG_VARIABLE)

    def usage_at(self, index: int) -> int:
        """The usage of value `index` of a variable field (the last usage repeats)."""
        return self.usages[min(index, len(self.usages) - 1)]


@dataclass
class Descriptor:
    raw: bytes
    fields: list[Field] = field(default_factory=list)
    applications: list[int] = field(default_factory=list)  # top-level application usages, in order
    uses_report_ids: bool = False

    def report_bytes(self, kind: str, report_id: int) -> int:
        """Length of a report's data, without the report-ID byte."""
        bits = max(
            (
                f.bit + f.size * f.count
                for f in self.fields
                if f.kind == kind and f.report_id == report_id
            ),
            default=0,
        )
        return (bits + 7) // 8

    def max_report_length(self, kind: str | None = None) -> int:
        """Longest report on the wire, report-ID byte included (the endpoint's packet size)."""
        ids = {(f.kind, f.report_id) for f in self.fields if kind is None or f.kind == kind}
        return max((self.report_bytes(k, r) + (1 if r else 0) for k, r in ids), default=1)

    def has_application_page(self, page: int) -> bool:
        return any(app >> 16 == page for app in self.applications)

    def find(self, usage: int, kind: str = "input") -> tuple[Field, int] | None:
        """The first field carrying `usage` (as a variable value or in an array's usage list),
        preferring fields under a Telephony application collection; with the value's index."""
        hits: list[tuple[Field, int]] = []
        for f in self.fields:
            if f.kind != kind or not f.usages:
                continue
            if f.variable:
                for i in range(f.count):
                    if f.usage_at(i) == usage:
                        hits.append((f, i))
                        break
            elif usage in f.usages:
                hits.append((f, -1))
        hits.sort(key=lambda h: h[0].application >> 16 != PAGE_TELEPHONY)
        return hits[0] if hits else None


def _signed(value: int, nbytes: int) -> int:
    bits = nbytes * 8
    return value - (1 << bits) if nbytes and value >= 1 << (bits - 1) else value


def parse(raw: bytes) -> Descriptor:
    """Walk the items (HID 1.11 section 6.2.2) into fields and top-level applications."""
    d = Descriptor(raw=raw)
    page = lmin = size = count = rid = 0
    stack: list[tuple[int, int, int, int, int]] = []
    # (extended usage, declared short): a 1-2 byte usage takes the page current when declared;
    # at a main item the trailing ones are re-paged as the kernel's
    # hid_concatenate_last_usage_page() does, so `Usage; Usage Page; Input` works like there
    usages: list[tuple[int, bool]] = []
    umin: int | None = None
    depth = 0
    app = 0
    offsets: dict[tuple[str, int], int] = {}
    i = 0
    while i < len(raw):
        prefix = raw[i]
        if prefix == 0xFE:  # long item: skip
            i += 3 + raw[i + 1]
            continue
        n = (0, 1, 2, 4)[prefix & 3]
        data = int.from_bytes(raw[i + 1 : i + 1 + n], "little")
        i += 1 + n
        typ, tag = (prefix >> 2) & 3, prefix >> 4
        if typ == 1:  # global
            if tag == 0:
                page = data
            elif tag == 1:
                lmin = _signed(data, n)
            elif tag == 7:
                size = data
            elif tag == 8:
                rid = data
                d.uses_report_ids = True
            elif tag == 9:
                count = data
            elif tag == 10:
                stack.append((page, lmin, size, count, rid))
            elif tag == 11:
                page, lmin, size, count, rid = stack.pop()
            continue
        if typ == 2:  # local
            if tag == 0:
                usages.append((data if n == 4 else (page << 16) | data, n <= 2))
            elif tag == 1:
                umin = data
            elif tag == 2 and umin is not None:
                lo, hi = umin & 0xFFFF, data & 0xFFFF
                base = data & 0xFFFF0000 if n == 4 else page << 16
                usages.extend((base | u, n <= 2) for u in range(lo, hi + 1))
                umin = None
            continue
        if typ == 0:  # main
            for k in range(len(usages) - 1, -1, -1):
                u, short = usages[k]
                if not short:
                    continue
                if u >> 16 == page:
                    break
                usages[k] = ((page << 16) | (u & 0xFFFF), True)
            resolved = tuple(u for u, _ in usages)
            if tag == 10:  # collection
                if depth == 0 and data == 1:
                    app = resolved[-1] if resolved else page << 16
                    d.applications.append(app)
                depth += 1
            elif tag == 12:  # end collection
                depth -= 1
            elif tag in (8, 9, 11):  # input, output, feature
                kind = {8: "input", 9: "output", 11: "feature"}[tag]
                key = (kind, rid)
                start = offsets.get(key, 0)
                d.fields.append(Field(kind, rid, start, size, count, resolved, data, lmin, app))
                offsets[key] = start + size * count
            usages, umin = [], None
    return d


@dataclass(frozen=True)
class Fixture:
    """One hid-recorder fixture file."""

    path: Path
    name: str
    bus: int
    vendor_id: int
    product_id: int
    descriptor: bytes
    events: tuple[bytes, ...]

    @property
    def stem(self) -> str:
        return self.path.stem

    def parsed(self) -> Descriptor:
        return parse(self.descriptor)

    @property
    def telephony(self) -> bool:
        """Has a Telephony (0x0B) top-level application collection with at least one input field
        that carries usages: what headsetd must find. An empty Telephony collection (Razer Kraken
        Kitty V2) gives the host nothing to read, so that device is not a telephony device."""
        return any(
            f.kind == "input" and f.usages and f.application >> 16 == PAGE_TELEPHONY
            for f in self.parsed().fields
        )

    @property
    def types(self) -> bool:
        """Has a Keyboard or Keypad (Generic Desktop 0x06, 0x07) application collection: a
        reader of its node reads keys, so headsetd must not be able to read it."""
        return any(app in (0x00010006, 0x00010007) for app in self.parsed().applications)


def load_fixture(path: Path, ids_required: bool = True) -> Fixture:
    desc = b""
    name = ""
    bus = vid = pid = 0
    events: list[bytes] = []
    for line in path.read_text().splitlines():
        if line.startswith("R: "):
            parts = line.split()[1:]
            n = int(parts[0])
            desc = bytes(int(x, 16) for x in parts[1:])
            if len(desc) != n:
                raise ValueError(f"{path.name}: R: says {n} bytes, has {len(desc)}")
        elif line.startswith("N: "):
            name = line[3:].strip()
        elif line.startswith("I: "):
            b, v, p = line.split()[1:4]
            bus, vid, pid = int(b, 16), int(v, 16), int(p, 16)
        elif line.startswith("E: "):
            parts = line.split()
            events.append(bytes(int(x, 16) for x in parts[3:]))
    if not desc or (ids_required and not vid):
        raise ValueError(f"{path.name}: no R: or I: line")
    return Fixture(path, name, bus, vid, pid, desc, tuple(events))


def all_fixtures() -> list[Fixture]:
    return [load_fixture(p) for p in sorted(FIXTURES_DIR.glob("*.hid"))]


def keyboard_fixtures() -> list[Fixture]:
    return [load_fixture(p, ids_required=False) for p in sorted(KEYBOARDS_DIR.glob("*.hid"))]


class ReportBuilder:
    """The state of a headset's input controls, turned into the input reports it would send.

    A report carries every field of its report ID, so pressing mute while off-hook sends the
    hook bit too, as the real device does (its firmware sends the whole report on any change)."""

    def __init__(self, descriptor: Descriptor) -> None:
        self.d = descriptor
        self.values: dict[int, int] = {}

    def supports(self, usage: int) -> bool:
        return self.d.find(usage) is not None

    def set(self, usage: int, value: int) -> bytes:
        """Set a control and return the input report that carries it."""
        hit = self.d.find(usage)
        if hit is None:
            raise KeyError(f"no input field with usage {usage:#010x}")
        self.values[usage] = value
        return self.report(hit[0].report_id)

    def report(self, report_id: int) -> bytes:
        data = bytearray(self.d.report_bytes("input", report_id))
        for f in self.d.fields:
            if f.kind != "input" or f.report_id != report_id:
                continue
            if f.variable:
                for i in range(f.count):
                    v = self.values.get(f.usage_at(i)) if f.usages else None
                    if v is not None:
                        _put(data, f.bit + i * f.size, f.size, v)
            else:  # array: the pressed usages' indices, in the first free slots
                pressed = [u for u in f.usages if self.values.get(u)]
                for slot, u in enumerate(pressed[: f.count]):
                    _put(data, f.bit + slot * f.size, f.size, f.usages.index(u) + f.logical_min)
        return (bytes([report_id]) if report_id else b"") + bytes(data)


def _put(buf: bytearray, bit: int, size: int, value: int) -> None:
    value &= (1 << size) - 1
    for k in range(size):
        byte, b = divmod(bit + k, 8)
        if value >> k & 1:
            buf[byte] |= 1 << b
        else:
            buf[byte] &= ~(1 << b) & 0xFF


# A boot keyboard's report descriptor: the keyboard example of HID 1.11 Appendix E.6, as Linux's
# Documentation/usb/gadget_hid.rst gives it for a g_hid keyboard (63 bytes). Its 8-byte input
# report: modifier bits, a reserved byte, six key codes (Keyboard page 0x07); output: 5 LEDs.
BOOT_KEYBOARD = bytes.fromhex(
    "05 01 09 06 a1 01 05 07 19 e0 29 e7 15 00 25 01 75 01 95 08 81 02"  # modifiers
    "95 01 75 08 81 03"  # reserved byte
    "95 05 75 01 05 08 19 01 29 05 91 02 95 01 75 03 91 03"  # LEDs, padding
    "95 06 75 08 15 00 25 65 05 07 19 00 29 65 81 00 c0"  # six key codes
)
KEY_A = 0x04  # Keyboard page usage of "a"; evdev's KEY_A is 30


def keyboard_report(*keys: int, modifiers: int = 0) -> bytes:
    """A boot keyboard input report with up to six keys down."""
    return bytes([modifiers, 0, *keys[:6], *[0] * (6 - len(keys[:6]))])
