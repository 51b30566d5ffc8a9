"""Classification's proof, data-driven over tests/fixtures/usb and tests/fixtures/hid.

1. Every .desc gets the kind its README row gives (a .desc without a row fails), from its USB
   descriptors alone.
2. The rules table: every rule names fixtures, and each named fixture gets that kind by that rule.
3. HID evidence: Game Pad / Joystick collections, call control, devices with no USB parent.
4. `describe` gives exactly the `inspect --json` shape; `render_table` and the file sniffing.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from headsetd.classify import FALLBACK, RULES, Classification, Kind, classify
from headsetd.hid.descriptor import ReportDescriptor, parse_report_descriptor
from headsetd.hid.recording import Recording
from headsetd.usb.describe import describe, is_usb_descriptors, render_table
from headsetd.usb.descriptors import UsbDescription, parse_usb_descriptors
from tests.test_usb_descriptors import (
    DESC_FILES,
    USB_FIXTURES,
    config_bytes,
    device_bytes,
    fixture,
    interface_bytes,
    readme_rows,
)

HID_FIXTURES = Path(__file__).resolve().parent / "fixtures" / "hid"

# The wired DualSense's own HID report descriptor (interface 3 of the USB fixture, 289 bytes, as
# its HID class descriptor says), from the same capture as the USB fixture:
#   https://github.com/Macle57/ds5-virtual-cable/blob/26259138a8dc6ccdeafb5556fe4fdae1d131bc54/docs/usb-ground-truth.md
#   (repo Macle57/ds5-virtual-cable, path docs/usb-ground-truth.md, section "HID report
#   descriptor, interface 3 (289 bytes) -- verbatim from the device")
DUALSENSE_DUMP = """
0000  05 01 09 05 a1 01 85 01 09 30 09 31 09 32 09 35
0010  09 33 09 34 15 00 26 ff 00 75 08 95 06 81 02 06
0020  00 ff 09 20 95 01 81 02 05 01 09 39 15 00 25 07
0030  35 00 46 3b 01 65 14 75 04 95 01 81 42 65 00 05
0040  09 19 01 29 0f 15 00 25 01 75 01 95 0f 81 02 06
0050  00 ff 09 21 95 0d 81 02 06 00 ff 09 22 15 00 26
0060  ff 00 75 08 95 34 81 02 85 02 09 23 95 2f 91 02
0070  85 05 09 33 95 28 b1 02 85 08 09 34 95 2f b1 02
0080  85 09 09 24 95 13 b1 02 85 0a 09 25 95 1a b1 02
0090  85 0b 09 41 95 29 b1 02 85 0c 09 42 95 29 b1 02
00a0  85 20 09 26 95 3f b1 02 85 21 09 27 95 04 b1 02
00b0  85 22 09 40 95 3f b1 02 85 80 09 28 95 3f b1 02
00c0  85 81 09 29 95 3f b1 02 85 82 09 2a 95 09 b1 02
00d0  85 83 09 2b 95 3f b1 02 85 84 09 2c 95 3f b1 02
00e0  85 85 09 2d 95 02 b1 02 85 a0 09 2e 95 01 b1 02
00f0  85 e0 09 2f 95 3f b1 02 85 f0 09 30 95 3f b1 02
0100  85 f1 09 31 95 3f b1 02 85 f2 09 32 95 0f b1 02
0110  85 f4 09 35 95 3f b1 02 85 f5 09 36 95 03 b1 02
0120  c0
"""
DUALSENSE_REPORT_DESCRIPTOR = bytes.fromhex(
    " ".join(line[6:] for line in DUALSENSE_DUMP.strip().splitlines())
)
# USB fixtures whose HID report descriptors the tests have: they join the USB descriptors when a
# rule names the fixture (the README test classifies from USB descriptors alone).
REPORT_DESCRIPTORS_OF = {"sony_dualsense-controller_054c-0ce6": (DUALSENSE_REPORT_DESCRIPTOR,)}


def hid_fixture(stem: str) -> ReportDescriptor:
    return parse_report_descriptor(Recording.load(HID_FIXTURES / f"{stem}.hid").descriptor)


def resolve(proof: str) -> tuple[UsbDescription | None, list[ReportDescriptor]]:
    """A rule's fixture name: "usb/<stem>[@<bConfigurationValue>]" or "hid/<stem>"."""
    folder, _, name = proof.partition("/")
    if folder == "hid":
        return None, [hid_fixture(name)]
    assert folder == "usb", proof
    stem, _, value = name.partition("@")
    assert (USB_FIXTURES / f"{stem}.desc").is_file(), f"{proof}: no such fixture"
    reports = [parse_report_descriptor(r) for r in REPORT_DESCRIPTORS_OF.get(stem, ())]
    return fixture(stem, int(value) if value else None), reports


def test_the_dualsense_report_descriptor_is_the_one_its_usb_descriptors_announce() -> None:
    """Its HID class descriptor (0x21) gives the report descriptor's length: 289 bytes."""
    config = fixture("sony_dualsense-controller_054c-0ce6").active
    assert config is not None
    hid = next(i for i in config.interfaces if i.interface_class == 3).extra
    assert hid[1] == 0x21
    assert hid[7] | hid[8] << 8 == len(DUALSENSE_REPORT_DESCRIPTOR) == 289
    offsets = [int(line[:4], 16) for line in DUALSENSE_DUMP.strip().splitlines()]
    assert offsets == list(range(0, 289, 16))  # copied whole, line by line


# --- 1. the README's kinds ---


@pytest.mark.parametrize("path", DESC_FILES, ids=lambda p: p.stem)
def test_every_fixture_gets_the_kind_its_readme_row_gives(path: Path) -> None:
    rows = readme_rows()
    assert path.stem in rows, f"{path.name}: no row in tests/fixtures/usb/README.md"
    assert classify(fixture(path.stem), []).kind == Kind(rows[path.stem].kind)


# --- 2. the rules table ---


def test_every_rule_names_fixtures_and_has_its_own_name() -> None:
    names = [r.name for r in RULES]
    assert len(set(names)) == len(names)
    assert FALLBACK not in names
    assert all(r.fixtures for r in RULES), [r.name for r in RULES if not r.fixtures]


PROOFS = [(rule.name, proof) for rule in RULES for proof in rule.fixtures]


@pytest.mark.parametrize(("rule", "proof"), PROOFS, ids=[f"{r}-{p}" for r, p in PROOFS])
def test_each_named_fixture_gets_its_rules_kind_by_that_rule(rule: str, proof: str) -> None:
    expected = next(r for r in RULES if r.name == rule)
    usb, hid = resolve(proof)
    classification = classify(usb, hid)
    assert (classification.kind, classification.rule) == (expected.kind, expected.name)


def test_the_usb_rules_follow_the_readme_precedence() -> None:
    """The README's eight rules, in its order, after the two that read HID evidence."""
    usb_rules = [*[r.name for r in RULES][2:], FALLBACK]
    assert usb_rules == [
        "no_audio_function",
        "speakerphone_terminal",
        "external_connector",
        "video_with_microphone",
        "microphone_and_speaker",
        "speaker_only",
        "microphone_only",
        "no_typed_terminal",
    ]


FALLBACK_CASES = {
    # No fixture reaches the fallback; these two synthetic devices show what does.
    "a USB-MIDI instrument (AudioControl header, no terminals)": config_bytes(
        interface_bytes(0),
        bytes([9, 0x24, 1, 0, 1, 9, 0, 1, 1]),
        interface_bytes(1, sub=3),
    ),
    "a UAC3 BADD Generic I/O function": config_bytes(
        bytes([8, 0x0B, 0, 2, 1, 0x20, 0x30, 0]),  # IAD: audio, BADD Generic I/O, UAC3
        interface_bytes(0, proto=0x30),
        interface_bytes(1, sub=2, proto=0x30),
    ),
}


@pytest.mark.parametrize("case", sorted(FALLBACK_CASES))
def test_an_audio_function_without_typed_terminals_falls_back_to_other(case: str) -> None:
    usb = parse_usb_descriptors(device_bytes() + FALLBACK_CASES[case])
    classification = classify(usb, [])
    assert (classification.kind, classification.rule) == (Kind.OTHER, FALLBACK)
    assert classification.audio_functions


# --- 3. HID evidence ---


def test_a_game_pad_collection_makes_a_headset_jack_controller_other() -> None:
    stem = "sony_dualsense-controller_054c-0ce6"
    from_usb = classify(fixture(stem), [])
    assert (from_usb.kind, from_usb.rule) == (Kind.HEADSET, "microphone_and_speaker")
    pad = parse_report_descriptor(DUALSENSE_REPORT_DESCRIPTOR)
    both = classify(fixture(stem), [pad])
    assert (both.kind, both.rule) == (Kind.OTHER, "game_controller")
    # The capabilities stay what the descriptors show.
    assert (both.has_microphone, both.has_speaker, both.call_control) == (True, True, False)


def test_a_joystick_collection_does_the_same() -> None:
    joystick = bytearray(DUALSENSE_REPORT_DESCRIPTOR)
    assert joystick[:4] == b"\x05\x01\x09\x05"  # Usage Page (Generic Desktop), Usage (Game Pad)
    joystick[3] = 0x04  # Usage (Joystick)
    classification = classify(
        fixture("scuf_envision-pro-controller_2e95-434d"),
        [parse_report_descriptor(bytes(joystick))],
    )
    assert (classification.kind, classification.rule) == (Kind.OTHER, "game_controller")


def test_call_control_sits_beside_the_kind() -> None:
    telephony = hid_fixture("plantronics_blackwire-3220_047f-c056_telephony")
    consumer = hid_fixture("plantronics_blackwire-3220_047f-c056_consumer")
    headset = classify(fixture("plantronics_usb-headset_047f-c001"), [consumer, telephony])
    assert (headset.kind, headset.call_control) == (Kind.HEADSET, True)
    assert classify(fixture("plantronics_usb-headset_047f-c001"), [consumer]).call_control is False
    speakerphone = classify(
        fixture("dell_mh3021p-speakerphone_413c-81e3"),
        [hid_fixture("dell_pro-sp325-speakerphone_413c-8223")],
    )
    assert (speakerphone.kind, speakerphone.call_control) == (Kind.SPEAKERPHONE, True)


def test_call_buttons_without_a_usb_audio_function_stay_other() -> None:
    """A USB device that cannot carry a call's audio is not counted as a headset."""
    buttons = classify(
        fixture("apple_iphone-6s_05ac-12a8"), [hid_fixture("jabra_biz-2400-ii_0b0e-2453")]
    )
    assert (buttons.kind, buttons.rule, buttons.call_control) == (
        Kind.OTHER,
        "no_audio_function",
        True,
    )


def test_an_empty_telephony_collection_is_not_call_control() -> None:
    kitty = hid_fixture("razer_kraken-kitty-v2_1532-0560")
    assert kitty.has_application_page(0x0B)
    assert classify(None, [kitty]) == Classification(
        Kind.OTHER, False, False, False, None, (), "no_audio_function"
    )


@pytest.mark.parametrize("path", sorted(HID_FIXTURES.glob("*.hid")), ids=lambda p: p.stem)
def test_a_hid_device_without_usb_is_a_headset_exactly_when_it_has_call_control(
    path: Path,
) -> None:
    classification = classify(None, [hid_fixture(path.stem)])
    expected = Kind.HEADSET if classification.call_control else Kind.OTHER
    assert classification.kind == expected
    # A headset is both (its audio travels over Bluetooth); anything else has neither shown.
    headset = classification.kind is Kind.HEADSET
    assert (classification.has_microphone, classification.has_speaker) == (headset, headset)
    assert (classification.uac, classification.audio_functions) == (None, ())


def test_names_come_from_the_interface_strings() -> None:
    jbl = classify(fixture("jbl_quantum-810-wireless-dongle_0ecb-2069"), [], {0: "Chat", 2: "Game"})
    assert [(f.interfaces, f.name) for f in jbl.audio_functions] == [
        ((0, 1), "Chat"),
        ((2, 3, 4), "Game"),
    ]
    assert [
        f.name
        for f in classify(fixture("jbl_quantum-810-wireless-dongle_0ecb-2069"), []).audio_functions
    ] == ["", ""]


def test_the_uac_version_is_the_highest_of_the_active_configuration() -> None:
    stem = "apple_usb-c-to-3.5mm-headphone-jack-adapter_05ac-110a"
    assert [classify(fixture(stem, v), []).uac for v in (1, 2, 3)] == [2, 3, 3]
    assert classify(fixture("apple_iphone-6s_05ac-12a8"), []).uac is None


# --- 4. describe, render_table, is_usb_descriptors ---

JSON_KEYS = {
    "vendor_id",
    "product_id",
    "kind",
    "has_microphone",
    "has_speaker",
    "uac",
    "audio_functions",
    "interfaces",
}


@pytest.mark.parametrize("path", DESC_FILES, ids=lambda p: p.stem)
def test_describe_gives_exactly_the_inspect_json_shape(path: Path) -> None:
    usb = fixture(path.stem)
    classification = classify(usb, [])
    described = json.loads(json.dumps(describe(usb, classification)))
    assert set(described) == JSON_KEYS
    assert described["vendor_id"] == f"{usb.vendor_id:04x}"
    assert described["product_id"] == f"{usb.product_id:04x}"
    assert described["kind"] == classification.kind.value
    assert isinstance(described["has_microphone"], bool)
    assert isinstance(described["has_speaker"], bool)
    assert described["uac"] in (None, 1, 2, 3)
    for function in described["audio_functions"]:
        assert set(function) == {"interfaces", "name", "inputs", "outputs"}
        assert isinstance(function["name"], str)
        assert all(isinstance(t, int) for t in function["inputs"] + function["outputs"])
    assert usb.active is not None
    assert [i["number"] for i in described["interfaces"]] == list(usb.active.interface_numbers)
    for interface in described["interfaces"]:
        assert set(interface) == {"number", "class", "subclass", "protocol"}


def test_describe_of_one_headset_in_full() -> None:
    usb = fixture("plantronics_usb-headset_047f-c001")
    assert describe(usb, classify(usb, [], {0: "Plantronics Headset"})) == {
        "vendor_id": "047f",
        "product_id": "c001",
        "kind": "headset",
        "has_microphone": True,
        "has_speaker": True,
        "uac": 1,
        "audio_functions": [
            {
                "interfaces": [0, 1, 2],
                "name": "Plantronics Headset",
                "inputs": [0x0101, 0x0201],
                "outputs": [0x0301, 0x0101],
            }
        ],
        "interfaces": [
            {"number": 0, "class": 1, "subclass": 1, "protocol": 0},
            {"number": 1, "class": 1, "subclass": 2, "protocol": 0},
            {"number": 2, "class": 1, "subclass": 2, "protocol": 0},
            {"number": 3, "class": 3, "subclass": 0, "protocol": 0},
        ],
    }


def test_render_table_shows_terminals_kind_and_rule_and_escapes_names() -> None:
    usb = fixture("jbl_quantum-810-wireless-dongle_0ecb-2069")
    table = render_table(usb, classify(usb, [], {0: "Chat\x1b[2J", 2: "Game"}))
    assert "configuration 1 (active)" in table
    assert "output terminal ID 3: 0x0402 Headset" in table
    assert "input  terminal ID 5: 0x0201 Microphone" in table
    assert "kind: headset (rule microphone_and_speaker)" in table
    assert '"Chat\\x1b[2J"' in table
    assert "\x1b" not in table


def test_render_table_marks_badd_and_the_other_configurations() -> None:
    usb = fixture("apple_usb-c-to-3.5mm-headphone-jack-adapter_05ac-110a", 2)
    table = render_table(usb, classify(usb, []))
    assert "configuration 2 (active)" in table
    assert "BADD profile 0x24 Headset" in table
    assert "input  terminal implied by the profile: 0x0402 Headset" in table


@pytest.mark.parametrize("path", DESC_FILES, ids=lambda p: p.stem)
def test_a_descriptors_file_is_told_by_its_content(path: Path) -> None:
    assert is_usb_descriptors(path.read_bytes())


NOT_USB = {
    "empty": b"",
    "a hid-recorder file": (HID_FIXTURES / "jabra_evolve-link-ms_0b0e-0307.hid").read_bytes(),
    "a report descriptor": DUALSENSE_REPORT_DESCRIPTOR,
    "a truncated descriptors file": (
        USB_FIXTURES / "plantronics_usb-headset_047f-c001.desc"
    ).read_bytes()[:100],
    "a device descriptor alone": (
        USB_FIXTURES / "plantronics_usb-headset_047f-c001.desc"
    ).read_bytes()[:18],
}


@pytest.mark.parametrize("name", sorted(NOT_USB))
def test_other_inputs_are_not_descriptors_files(name: str) -> None:
    assert not is_usb_descriptors(NOT_USB[name])
