"""The USB descriptors parser's proof, data-driven over tests/fixtures/usb.

1. Every .desc has a row in the fixtures' README (and every row a .desc), with the ids parsed.
2. The published dump beside each .desc (lsusb -v text, or a hex dump) agrees with what is parsed
   from the bytes: idVendor, idProduct, every AudioControl terminal type and bcdADC.
3. Audio functions: IAD, UAC1 header and UAC3 BADD grouping on real devices; the active
   configuration chosen by bConfigurationValue.
4. Read-only: pyusb reads the descriptors through a backend that records every call, and only
   descriptor reads happen; every I/O method and every pyusb I/O path raises `IoRefused`.
5. Malformed input raises `UsbDescriptorError` with the byte offset, and nothing else (specific
   cases, then hypothesis over random and mutated fixture bytes).
"""

from __future__ import annotations

import inspect
import re
from collections import Counter
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import usb.backend
import usb.core
import usb.util
from hypothesis import given, settings
from hypothesis import strategies as st

from headsetd.classify import classify
from headsetd.usb.describe import describe, render_table
from headsetd.usb.descriptors import (
    MAX_DESCRIPTORS_BYTES,
    DescriptorBackend,
    IoRefused,
    UsbDescription,
    UsbDescriptorError,
    parse_usb_descriptors,
    read_description,
    scan,
)

USB_FIXTURES = Path(__file__).resolve().parent / "fixtures" / "usb"
DESC_FILES = sorted(USB_FIXTURES.glob("*.desc"))


class ReadmeRow(NamedTuple):
    ids: str  # "vvvv:pppp"
    kind: str
    person: str
    note: str


def readme_rows() -> dict[str, ReadmeRow]:
    """The fixtures' README table: file stem -> its row."""
    rows: dict[str, ReadmeRow] = {}
    text = (USB_FIXTURES / "README.md").read_text(encoding="utf-8")
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and re.fullmatch(r"[0-9a-f]{4}:[0-9a-f]{4}", cells[1]):
            rows[cells[0]] = ReadmeRow(*cells[1:])
    return rows


@cache
def fixture(stem: str, configuration_value: int | None = None) -> UsbDescription:
    return parse_usb_descriptors((USB_FIXTURES / f"{stem}.desc").read_bytes(), configuration_value)


def _id(path: Path) -> str:
    return path.stem


# --- 1. the README table and the files ---


def test_the_readme_has_rows() -> None:
    assert len(readme_rows()) >= len(DESC_FILES) > 0


@pytest.mark.parametrize("path", DESC_FILES, ids=_id)
def test_every_desc_has_a_readme_row_with_its_ids(path: Path) -> None:
    rows = readme_rows()
    assert path.stem in rows, f"{path.name}: no row in tests/fixtures/usb/README.md"
    parsed = fixture(path.stem)
    assert rows[path.stem].ids == f"{parsed.vendor_id:04x}:{parsed.product_id:04x}"


@pytest.mark.parametrize("stem", sorted(readme_rows()))
def test_every_readme_row_has_a_desc(stem: str) -> None:
    assert (USB_FIXTURES / f"{stem}.desc").is_file()


# --- 2. the published dumps agree with the bytes ---


def _dump_of(path: Path) -> Path:
    dumps = [
        p for p in (path.with_suffix(".lsusb.txt"), path.with_suffix(".desc.hex")) if p.exists()
    ]
    assert len(dumps) == 1, f"{path.name}: expected one published dump beside it, found {dumps}"
    return dumps[0]


class DumpFacts(NamedTuple):
    ids: str  # from the "# USB VID:PID:" header line
    terminals: Counter[tuple[str, int]]  # ("input"|"output", wTerminalType)
    bcd_adc: Counter[int]


def _lsusb_facts(text: str) -> tuple[str, Counter[tuple[str, int]], Counter[int]]:
    """idVendor:idProduct, AudioControl terminals and bcdADC values from `lsusb -v` text."""
    vendor = re.search(r"^\s*idVendor\s+0x([0-9a-f]{4})", text, re.M)
    product = re.search(r"^\s*idProduct\s+0x([0-9a-f]{4})", text, re.M)
    assert vendor
    assert product
    terminals: Counter[tuple[str, int]] = Counter()
    bcd_adc: Counter[int] = Counter()
    in_audio_control = False
    subtype = None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.endswith("Descriptor:"):  # a new block of any kind
            in_audio_control = stripped == "AudioControl Interface Descriptor:"
            subtype = None
        elif in_audio_control:
            if m := re.match(r"bDescriptorSubtype\s+(\d+)", stripped):
                subtype = int(m[1])
            elif (m := re.match(r"wTerminalType\s+0x([0-9a-f]{4})", stripped)) and subtype:
                terminals[("input" if subtype == 2 else "output", int(m[1], 16))] += 1
            elif m := re.match(r"bcdADC\s+(\d+)\.(\d\d)", stripped):
                bcd_adc[int(m[1], 16) << 8 | int(m[2], 16)] += 1
    return f"{vendor[1]}:{product[1]}", terminals, bcd_adc


def _parsed_facts(parsed: UsbDescription) -> tuple[Counter[tuple[str, int]], Counter[int]]:
    terminals: Counter[tuple[str, int]] = Counter()
    bcd_adc: Counter[int] = Counter()
    for configuration in parsed.configurations:
        for function in configuration.audio_functions:
            for direction, found in (("input", function.inputs), ("output", function.outputs)):
                # Terminal ID 0: implied by a BADD profile, so in no dump.
                terminals.update((direction, t.terminal_type) for t in found if t.terminal_id)
            if function.bcd_adc is not None:
                bcd_adc[function.bcd_adc] += 1
    return terminals, bcd_adc


@pytest.mark.parametrize("path", DESC_FILES, ids=_id)
def test_the_published_dump_agrees_with_the_bytes(path: Path) -> None:
    dump = _dump_of(path)
    text = dump.read_text(encoding="utf-8")
    header = re.search(r"^# USB VID:PID: ([0-9a-f]{4}:[0-9a-f]{4})", text, re.M)
    parsed = fixture(path.stem)
    ids = f"{parsed.vendor_id:04x}:{parsed.product_id:04x}"
    assert header is not None
    assert header[1] == ids
    if dump.name.endswith(".desc.hex"):
        # A hex dump is the bytes themselves: it must be the .desc exactly.
        data = [line for line in text.splitlines() if not line.startswith("#")]
        assert bytes.fromhex(" ".join(data)) == path.read_bytes()
        return
    lsusb_ids, terminals, bcd_adc = _lsusb_facts(text)
    assert lsusb_ids == ids
    assert terminals, f"{dump.name}: no AudioControl terminals found in the text"
    assert (terminals, bcd_adc) == _parsed_facts(parsed)


@pytest.mark.parametrize("path", DESC_FILES, ids=_id)
def test_the_uac_version_agrees_with_bcd_adc(path: Path) -> None:
    """The version comes from bInterfaceProtocol (as snd-usb-audio decides it); where a header
    carries bcdADC (UAC 1 and 2), its major number says the same."""
    for configuration in fixture(path.stem).configurations:
        for function in configuration.audio_functions:
            if function.bcd_adc is not None:
                assert function.bcd_adc >> 8 == function.uac


# --- 3. audio functions and the active configuration ---


def test_an_iad_makes_each_function_of_a_two_function_dongle() -> None:
    config = fixture("jbl_quantum-810-wireless-dongle_0ecb-2069").active
    assert config is not None
    chat, game = config.audio_functions
    assert (chat.interfaces, chat.output_types) == ((0, 1), (0x0301,))
    assert game.interfaces == (2, 3, 4)
    assert (0x0201 in game.input_types, 0x0402 in game.output_types) == (True, True)
    assert (chat.string_index, game.string_index) == (1, 2)  # "Chat" / "Game" in sysfs


def test_a_uac1_header_lists_the_streaming_interfaces_of_a_webcam() -> None:
    config = fixture("logitech_c270-webcam_046d-0825").active
    assert config is not None
    (function,) = config.audio_functions
    assert (function.interfaces, function.control_interface, function.uac) == ((2, 3), 2, 1)
    assert config.video_interfaces == (0, 1)
    assert function.input_types == (0x0201,)


def test_uac3_badd_and_full_configurations_of_one_adapter() -> None:
    stem = "apple_usb-c-to-3.5mm-headphone-jack-adapter_05ac-110a"
    uac2, badd, full = fixture(stem).configurations
    assert [f.uac for c in (uac2, badd, full) for f in c.audio_functions] == [2, 3, 3]
    (function,) = badd.audio_functions
    assert function.badd_profile == 0x24  # HEADSET, from the IAD's bFunctionSubClass
    assert (function.input_types, function.output_types) == ((0x0402,), (0x0402,))
    assert all(t.terminal_id == 0 for t in function.inputs + function.outputs)  # implied
    assert full.audio_functions[0].badd_profile is None
    assert full.audio_functions[0].bcd_adc is None  # a UAC3 header has no bcdADC


def test_the_active_configuration_is_chosen_by_its_value() -> None:
    stem = "apple_iphone-6s_05ac-12a8"
    assert [c.value for c in fixture(stem).configurations] == [1, 2, 3, 4]
    first = fixture(stem).active
    assert first is not None
    assert first.value == 1
    assert not first.audio_functions
    second = fixture(stem, 2).active
    assert second is not None
    assert second.audio_functions[0].input_types == (0x0201,)
    assert fixture(stem, 0).active is None  # unconfigured
    assert fixture(stem, 9).active is None  # no such configuration


def test_without_iad_or_header_list_an_audio_control_takes_the_audio_interfaces_after_it() -> None:
    """A UAC2 function without its IAD (snd-usb-audio refuses it; we still show it)."""
    data = device_bytes() + config_bytes(
        interface_bytes(0, proto=0x20),
        bytes([9, 0x24, 1, 0, 2, 4, 9, 0, 0]),  # UAC2 header, bcdADC 2.00
        bytes([17, 0x24, 2, 1, 0x01, 0x02, 0, 0, 2, 3, 0, 0, 0, 0, 0, 0, 0]),  # IT Microphone
        interface_bytes(1, sub=2, proto=0x20),
        interface_bytes(2, sub=2, proto=0x20),
        interface_bytes(3, cls=3, sub=0),
        interface_bytes(4, sub=2, proto=0x20),
    )
    config = parse_usb_descriptors(data).active
    assert config is not None
    (function,) = config.audio_functions
    assert (function.interfaces, function.uac, function.bcd_adc) == ((0, 1, 2), 2, 0x0200)
    assert function.input_types == (0x0201,)


def test_a_uac1_header_naming_a_missing_interface_keeps_the_ones_there() -> None:
    data = device_bytes() + config_bytes(
        interface_bytes(0),
        bytes([10, 0x24, 1, 0, 1, 10, 0, 2, 1, 7]),  # baInterfaceNr 1 and 7 (absent)
        interface_bytes(1, sub=2),
    )
    config = parse_usb_descriptors(data).active
    assert config is not None
    assert config.audio_functions[0].interfaces == (0, 1)


# --- 4. read-only: only descriptor reads ---

IBACKEND_METHODS = {n for n in vars(usb.backend.IBackend) if not n.startswith("_")}
DESCRIPTOR_READS = {
    "enumerate_devices",
    "get_device_descriptor",
    "get_configuration_descriptor",
    "get_interface_descriptor",
    "get_endpoint_descriptor",
}
NOT_IO = {*DESCRIPTOR_READS, "get_parent"}


class RecordingBackend(DescriptorBackend):
    """Records the name of every backend method called on it, by pyusb or anyone."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.calls: list[str] = []

    def __getattribute__(self, name: str) -> Any:
        value = super().__getattribute__(name)
        if name not in IBACKEND_METHODS:
            return value
        calls = super().__getattribute__("calls")

        def recorded(*args: Any, **kwargs: Any) -> Any:
            calls.append(name)
            return value(*args, **kwargs)

        return recorded


def test_the_interface_has_the_methods_we_expect() -> None:
    """If pyusb adds a backend method, this says so (and the tests below cover it)."""
    assert NOT_IO <= IBACKEND_METHODS
    assert "ctrl_transfer" in IBACKEND_METHODS
    assert "detach_kernel_driver" in IBACKEND_METHODS


@pytest.mark.parametrize("path", DESC_FILES, ids=_id)
def test_pyusb_reads_only_descriptors(path: Path) -> None:
    backend = RecordingBackend(scan(path.read_bytes()))
    parsed = read_description(backend)
    assert parsed == fixture(path.stem)
    assert set(backend.calls) == DESCRIPTOR_READS  # all of them (pyusb is used), nothing else


@pytest.mark.parametrize("method", sorted(IBACKEND_METHODS - NOT_IO))
def test_every_io_method_raises(method: str) -> None:
    backend = DescriptorBackend(scan(fixture_bytes()))
    arity = len(inspect.signature(getattr(usb.backend.IBackend, method)).parameters) - 1
    with pytest.raises(IoRefused):
        getattr(backend, method)(*([0] * arity))


def fixture_bytes() -> bytes:
    return (USB_FIXTURES / "plantronics_usb-headset_047f-c001.desc").read_bytes()


PYUSB_IO: dict[str, Callable[[Any], object]] = {
    "set_configuration": lambda d: d.set_configuration(),
    "get_active_configuration": lambda d: d.get_active_configuration(),
    "claim_interface": lambda d: usb.util.claim_interface(d, 0),
    "is_kernel_driver_active": lambda d: d.is_kernel_driver_active(0),
    "detach_kernel_driver": lambda d: d.detach_kernel_driver(0),
    "ctrl_transfer": lambda d: d.ctrl_transfer(0x80, 6, 0x0300, 0, 255),
    "read": lambda d: d.read(0x83, 8),
    "reset": lambda d: d.reset(),
    # Strings are control requests too: the daemon reads them from sysfs instead.
    "get_string": lambda d: usb.util.get_string(d, 2),
    "langids": lambda d: d.langids,
}


@pytest.mark.parametrize("operation", sorted(PYUSB_IO))
def test_pyusb_io_paths_all_raise(operation: str) -> None:
    backend = RecordingBackend(scan(fixture_bytes()))
    device = usb.core.find(backend=backend)
    with pytest.raises(IoRefused):
        PYUSB_IO[operation](device)
    assert set(backend.calls) - DESCRIPTOR_READS == {"open_device"}  # refused at the first step


# --- 5. malformed input ---


def device_bytes(configurations: int = 1) -> bytes:
    return bytes([18, 1, 0, 2, 0, 0, 0, 64, 0x7F, 0x04, 0x56, 0xC0, 0, 1, 1, 2, 0, configurations])


def config_bytes(*descriptors: bytes, value: int = 1) -> bytes:
    body = b"".join(descriptors)
    total = 9 + len(body)
    return bytes([9, 2, total & 0xFF, total >> 8, 1, value, 0, 0x80, 50]) + body


def interface_bytes(number: int, cls: int = 1, sub: int = 1, proto: int = 0, alt: int = 0) -> bytes:
    return bytes([9, 4, number, alt, 0, cls, sub, proto, 0])


def endpoint_bytes(address: int = 0x81) -> bytes:
    return bytes([7, 5, address, 3, 8, 0, 1])


def test_a_minimal_device_parses() -> None:
    data = device_bytes() + config_bytes(interface_bytes(0, cls=3, sub=0))
    parsed = parse_usb_descriptors(data)
    assert parsed.active is not None
    assert parsed.active.interface_numbers == (0,)


MALFORMED: dict[str, tuple[bytes, int]] = {
    "empty": (b"", 0),
    "truncated device descriptor": (device_bytes()[:10], 10),
    "not a device descriptor": (b"\x09\x02" + device_bytes()[2:], 0),
    "no configuration": (device_bytes(), 18),
    "truncated configuration": (device_bytes() + config_bytes()[:5], 18),
    "wTotalLength past the end": (device_bytes() + config_bytes(interface_bytes(0))[:-1], 18),
    "wTotalLength below bLength": (device_bytes() + bytes([9, 2, 4, 0, 0, 1, 0, 0x80, 50]), 18),
    "bLength 0": (device_bytes() + config_bytes(interface_bytes(0), b"\x00\x24"), 18 + 9 + 9),
    "bLength 1": (device_bytes() + config_bytes(b"\x01\x24"), 18 + 9),
    "descriptor past wTotalLength": (device_bytes() + config_bytes(b"\x20\x24\x01"), 18 + 9),
    "short interface": (device_bytes() + config_bytes(bytes([5, 4, 0, 0, 0])), 18 + 9),
    "short endpoint": (
        device_bytes() + config_bytes(interface_bytes(0), bytes([5, 5, 0x81, 3, 8])),
        36,
    ),
    "short association": (device_bytes() + config_bytes(bytes([6, 0x0B, 0, 2, 1, 0])), 27),
    "nine configurations": (device_bytes(9) + config_bytes() * 9, 18 + 8 * 9),
    "33 interfaces": (
        device_bytes() + config_bytes(*(interface_bytes(n, cls=3) for n in range(33))),
        18 + 9 + 32 * 9,
    ),
    "31 endpoints": (
        device_bytes() + config_bytes(interface_bytes(0), *[endpoint_bytes()] * 31),
        18 + 18 + 30 * 7,
    ),
    "129 alternate settings": (
        device_bytes() + config_bytes(*(interface_bytes(0, cls=3, alt=a) for a in range(129))),
        18 + 9 + 128 * 9,
    ),
    "UAC1 header listing more interfaces than it holds": (
        device_bytes() + config_bytes(interface_bytes(0), bytes([9, 0x24, 1, 0, 1, 9, 0, 3, 1])),
        36,
    ),
    "short UAC2 header": (
        device_bytes()
        + config_bytes(interface_bytes(0, proto=0x20), bytes([8, 0x24, 1, 0, 2, 1, 9, 0])),
        36,
    ),
    "short audio terminal": (
        device_bytes() + config_bytes(interface_bytes(0), bytes([6, 0x24, 2, 1, 1, 2])),
        36,
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_input_raises_with_the_offset(case: str) -> None:
    data, offset = MALFORMED[case]
    with pytest.raises(UsbDescriptorError) as raised:
        parse_usb_descriptors(data)
    assert raised.value.offset == offset, str(raised.value)
    assert f"at byte {offset}" in str(raised.value)


def test_more_than_64_kib_is_refused_unread() -> None:
    with pytest.raises(UsbDescriptorError) as raised:
        parse_usb_descriptors(device_bytes() + bytes(MAX_DESCRIPTORS_BYTES))
    assert raised.value.offset == MAX_DESCRIPTORS_BYTES


def test_the_largest_input_of_tiny_descriptors_parses() -> None:
    """64 KiB of 2-byte descriptors (the most descriptors a file can hold) in one go."""
    room = MAX_DESCRIPTORS_BYTES - 18 - 9 - 9
    data = device_bytes() + config_bytes(interface_bytes(0, cls=3), b"\x02\x24" * (room // 2))
    assert len(data) <= MAX_DESCRIPTORS_BYTES
    parsed = parse_usb_descriptors(data)
    assert parsed.active is not None
    assert len(parsed.active.interfaces[0].extra) == room


def _parses_or_raises_typed(data: bytes) -> None:
    """Either a description (that classifies and describes) or the typed error, nothing else."""
    error: UsbDescriptorError | None = None
    try:
        parsed = parse_usb_descriptors(data)
    except UsbDescriptorError as caught:
        error = caught
    if error is not None:
        assert 0 <= error.offset <= max(len(data), MAX_DESCRIPTORS_BYTES)
        return
    classification = classify(parsed, [])
    assert describe(parsed, classification)["kind"] == classification.kind
    assert render_table(parsed, classification)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(st.binary(max_size=300), st.binary(max_size=300).map(lambda b: device_bytes() + b))
)
def test_random_bytes_only_raise_the_typed_error(data: bytes) -> None:
    _parses_or_raises_typed(data)


@st.composite
def mutated_fixtures(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(DESC_FILES)).read_bytes())
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["set", "insert", "delete", "truncate"]))
        if action == "set" and at < len(data):
            data[at] = draw(st.integers(0, 255))
        elif action == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=12))
        elif action == "delete":
            del data[at : at + draw(st.integers(1, 12))]
        else:
            del data[at:]
    return bytes(data)


@settings(max_examples=400, deadline=None)
@given(mutated_fixtures())
def test_mutated_fixtures_only_raise_the_typed_error(data: bytes) -> None:
    _parses_or_raises_typed(data)
