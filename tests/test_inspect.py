"""`headsetd inspect`: the JSON shape, the table, and the three kinds of input file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from headsetd.hid.decoder import Control, TelephonyDecoder, has_telephony_inputs
from headsetd.hid.descriptor import parse_report_descriptor
from headsetd.hid.recording import Recording
from headsetd.inspect import Description, describe, render_table

FIXTURES = Path(__file__).parent / "fixtures" / "hid"
FILES = sorted(FIXTURES.glob("*.hid")) + sorted(
    (Path(__file__).parent / "recordings").glob("*.hid")
)

FIELD_KEYS = {
    "page",
    "usage",
    "name",
    "bit",
    "size",
    "count",
    "logical_min",
    "logical_max",
    "variable",
    "relative",
    "constant",
}


def _describe(path: Path) -> Description:
    recording = Recording.load(path)
    return describe(recording, parse_report_descriptor(recording.descriptor))


def _report(d: Description, direction: str, report_id: int | None) -> list[Any]:
    (report,) = [
        r for r in d["reports"] if r["direction"] == direction and r["report_id"] == report_id
    ]
    return list(report["fields"])


CONTROL_KEYS = {"control", "report_id", "bit", "size", "relative"}


def _check_shape(d: Description) -> None:
    # The contract: the first four keys as they always were; `watched` and `controls` added;
    # `rejected` only when the decoder refuses the descriptor.
    keys = {"name", "vendor_id", "product_id", "reports", "watched", "controls"}
    assert set(d) in (keys, keys | {"rejected"})
    assert isinstance(d["watched"], bool)
    assert d["watched"] or d["controls"] == []
    assert "rejected" not in d or not d["watched"]
    for control in d["controls"]:
        assert set(control) == CONTROL_KEYS
        assert control["control"] in {c.value for c in Control}
    assert len(d["vendor_id"]) == 4
    assert len(d["product_id"]) == 4
    for report in d["reports"]:
        assert set(report) == {"direction", "report_id", "fields"}
        assert report["direction"] in ("input", "output", "feature")
        assert report["report_id"] is None or 1 <= report["report_id"] <= 255
        for field in report["fields"]:
            array = not field["variable"] and field["page"] is not None
            assert set(field) == FIELD_KEYS | ({"usages"} if array else set())
            if field["page"] is None:  # padding
                assert field["usage"] is None
                assert field["name"] is None
            else:
                assert 0 <= field["page"] <= 0xFFFF
                assert field["usage"] is not None
                assert 0 <= field["usage"] <= 0xFFFF
            if array:
                assert field["usage"] == field["usages"][0]
    # JSON-ready as it is: a round trip changes nothing.
    assert json.loads(json.dumps(d)) == d


def test_jabra_evolve_link_ms() -> None:
    d = _describe(FIXTURES / "jabra_evolve-link-ms_0b0e-0307.hid")
    _check_shape(d)
    assert d["name"].startswith("Jabra EVOLVE LINK MS")
    assert (d["vendor_id"], d["product_id"]) == ("0b0e", "0307")
    fields = _report(d, "input", 2)
    hook = fields[0]
    assert hook == {
        "page": 0x0B,
        "usage": 0x20,
        "name": "Hook Switch",
        "bit": 0,
        "size": 1,
        "count": 1,
        "logical_min": 0,
        "logical_max": 1,
        "variable": True,
        "relative": False,
        "constant": False,
    }
    (mute,) = [f for f in fields if f["name"] == "Phone Mute"]
    assert (mute["bit"], mute["relative"], mute["variable"]) == (2, True, True)
    # The keypad is an array: first usage in `usage`, all twelve in `usages`.
    (keypad,) = [f for f in fields if "usages" in f]
    assert (keypad["bit"], keypad["size"], keypad["count"]) == (7, 4, 1)
    assert keypad["usages"] == list(range(0xB0, 0xBC))
    assert keypad["usage"] == 0xB0
    assert keypad["name"] == "Phone Key 0"
    # Padding closes the report.
    assert fields[-1]["page"] is None
    assert (fields[-1]["bit"], fields[-1]["count"], fields[-1]["constant"]) == (11, 5, True)
    # Input and output share report ID 2 and stay apart; the LEDs are in the output.
    leds = [f["name"] for f in _report(d, "output", 2) if f["name"]]
    assert leds[:2] == ["Off-Hook", "Mute"]


def test_anker_powerconf_constant_hook_switch_is_shown_as_data() -> None:
    # anker_powerconf_291a-3301.hid: Hook Switch is 'Input 0x23' (Constant set).
    d = _describe(FIXTURES / "anker_powerconf_291a-3301.hid")
    _check_shape(d)
    assert (d["vendor_id"], d["product_id"]) == ("291a", "3301")
    hook = _report(d, "input", 2)[0]
    assert (hook["name"], hook["bit"], hook["constant"], hook["variable"]) == (
        "Hook Switch",
        0,
        True,
        True,
    )
    table = render_table(d)
    assert "Hook Switch" in table
    assert "Const,Var,Abs" in table


def test_unnumbered_report_has_null_report_id() -> None:
    d = _describe(FIXTURES / "microsoft_sidewinder-game-voice_045e-003b.hid")
    _check_shape(d)
    assert {r["report_id"] for r in d["reports"]} == {None}
    assert json.loads(json.dumps(d))["reports"][0]["report_id"] is None
    assert "unnumbered" in render_table(d)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_fixture_describes_and_renders(path: Path) -> None:
    d = _describe(path)
    _check_shape(d)
    table = render_table(d)
    assert d["vendor_id"] in table
    for report in d["reports"]:
        rid = report["report_id"]
        assert f"{report['direction']} {'unnumbered' if rid is None else f'report ID {rid}'}" in (
            table
        )
    named = [f["name"] for r in d["reports"] for f in r["fields"] if f["name"]]
    assert all(name in table for name in named if "(" not in name)


def test_table_lines_carry_bit_size_count_page_usage_flags_range() -> None:
    d = _describe(FIXTURES / "plantronics_blackwire-3220_047f-c056_telephony.hid")
    lines = render_table(d).splitlines()
    (mute,) = [line for line in lines if "Phone Mute" in line]
    assert mute.split() == ["0", "1", "1", "Telephony", "Phone", "Mute", "Data,Var,Rel", "0..1"]


def test_raw_binary_descriptor_file(tmp_path: Path) -> None:
    fixture = Recording.load(FIXTURES / "jabra_evolve-link-ms_0b0e-0307.hid")
    raw = tmp_path / "0b0e-0307.bin"
    raw.write_bytes(fixture.descriptor)
    d = _describe(raw)
    _check_shape(d)
    # No ids in a bare descriptor; the reports are the same as from the recording.
    assert (d["name"], d["vendor_id"], d["product_id"]) == ("", "0000", "0000")
    assert d["reports"] == _describe(FIXTURES / "jabra_evolve-link-ms_0b0e-0307.hid")["reports"]
    assert "(no name)" in render_table(d)


def test_sysfs_report_descriptor_file(tmp_path: Path) -> None:
    # What `cat /sys/class/hidraw/hidrawN/device/report_descriptor` gives: the bare bytes.
    fixture = Recording.load(FIXTURES / "plantronics_blackwire-3220_047f-c056_telephony.hid")
    sysfs = tmp_path / "sys" / "class" / "hidraw" / "hidraw3" / "device"
    sysfs.mkdir(parents=True)
    (sysfs / "report_descriptor").write_bytes(fixture.descriptor)
    d = _describe(sysfs / "report_descriptor")
    _check_shape(d)
    assert [r["report_id"] for r in d["reports"] if r["direction"] == "output"] == [
        0x09,
        0x17,
        0x18,
        0x1E,
        0x20,
        0x2A,
    ]


def test_device_name_cannot_drive_the_terminal() -> None:
    recording = Recording(
        descriptor=Recording.load(FIXTURES / "razer_usb-microphone_1532-0511.hid").descriptor,
        name="Evil\x1b[2J\x1b]0;pwned\x07 headset",
        vendor_id=0x1532,
        product_id=0x0511,
    )
    d = describe(recording, parse_report_descriptor(recording.descriptor))
    assert d["name"] == recording.name  # kept as read in the data
    table = render_table(d)
    assert "\x1b" not in table
    assert "\x07" not in table
    assert "Evil\\x1b[2J" in table


def test_empty_telephony_collection_shows_no_telephony_fields() -> None:
    # razer_kraken-kitty-v2_1532-0560.hid: the Telephony/Headset collection is empty.
    d = _describe(FIXTURES / "razer_kraken-kitty-v2_1532-0560.hid")
    _check_shape(d)
    assert not [f for r in d["reports"] for f in r["fields"] if f["page"] == 0x0B]


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_watched_and_controls_agree_with_the_daemon(path: Path) -> None:
    recording = Recording.load(path)
    descriptor = parse_report_descriptor(recording.descriptor)
    d = describe(recording, descriptor)
    assert d["watched"] == has_telephony_inputs(descriptor)
    if d["watched"]:
        controls = [c["control"] for c in d["controls"]]
        assert tuple(dict.fromkeys(controls)) == TelephonyDecoder(descriptor).controls
        assert "watched: yes" in render_table(d)
    else:
        assert d["controls"] == []
        assert "watched: no" in render_table(d)


def test_jabra_controls_with_report_and_bit() -> None:
    d = _describe(FIXTURES / "jabra_evolve-link-ms_0b0e-0307.hid")
    assert d["watched"] is True
    assert d["controls"] == [
        {"control": "hook_switch", "report_id": 2, "bit": 0, "size": 1, "relative": False},
        {"control": "phone_mute", "report_id": 2, "bit": 2, "size": 1, "relative": True},
        {"control": "flash", "report_id": 2, "bit": 3, "size": 1, "relative": True},
        {"control": "redial", "report_id": 2, "bit": 4, "size": 1, "relative": True},
        {"control": "volume_down", "report_id": 1, "bit": 0, "size": 1, "relative": False},
        {"control": "volume_up", "report_id": 1, "bit": 1, "size": 1, "relative": False},
    ]
    lines = render_table(d).splitlines()
    assert lines[1] == "watched: yes; decoded controls:"
    assert lines[3].split() == ["2", "0", "1", "hook_switch", "Abs"]


def test_device_without_telephony_inputs_is_not_watched() -> None:
    d = _describe(FIXTURES / "plantronics_blackwire-3220_047f-c056_vendor-ffa0.hid")
    assert (d["watched"], d["controls"]) == (False, [])
    assert "watched: no (no input field in a Telephony application collection)" in (render_table(d))


def _recording(descriptor: bytes, name: str = "crafted") -> Recording:
    return Recording(descriptor=descriptor, name=name, vendor_id=0x1234, product_id=0x5678)


def test_descriptor_the_decoder_rejects_is_shown_with_the_reason() -> None:
    # 5 x Report Count 12288 one-bit Hook Switch fields (see test_descriptor.py).
    raw = bytes.fromhex("05 0b 09 05 a1 01 15 00 25 01 75 01 96 00 30")
    raw += bytes.fromhex("09 20 81 02") * 5 + b"\xc0"
    recording = _recording(raw)
    d = describe(recording, parse_report_descriptor(raw))
    _check_shape(d)
    assert (d["watched"], d["controls"]) == (False, [])
    assert "watched fields or array slots" in d["rejected"]
    assert "watched: no (input report unnumbered has 61440 watched" in render_table(d)


# Vendor page 0xff00 application, report 5: 63 vendor-defined 8-bit fields, then Hook Switch
# repeated twice (Report Count 2) in a Telephony collection's report 6.
VENDOR_63 = bytes.fromhex(
    "06 00 ff 09 01 a1 01 85 05 15 00 26 ff 00 75 08 95 3f 09 01 81 02 c0"
    "05 0b 09 05 a1 01 85 06 15 00 25 01 75 01 95 02 09 20 81 02 95 06 81 03 c0"
)


def test_repeated_fields_fold_into_one_row_and_the_json_keeps_every_field() -> None:
    d = describe(_recording(VENDOR_63), parse_report_descriptor(VENDOR_63))
    _check_shape(d)
    (vendor,) = [r for r in d["reports"] if r["report_id"] == 5]
    assert len(vendor["fields"]) == 63
    assert [f["bit"] for f in vendor["fields"]] == list(range(0, 63 * 8, 8))
    table = render_table(d)
    rows = [" ".join(line.split()) for line in table.splitlines() if "0xff00 0x01" in line]
    assert rows == ["0 8 63 Vendor 0xff00 Vendor 0xff00 0x01 Data,Var,Abs 0..255"]
    # Hook Switch twice: two fields, one folded row, and one decoded control (the first).
    hook_rows = [line.split() for line in table.splitlines() if "Hook Switch" in line]
    assert [row[:3] for row in hook_rows] == [["0", "1", "2"]]
    assert d["controls"] == [
        {"control": "hook_switch", "report_id": 6, "bit": 0, "size": 1, "relative": False}
    ]


def test_fields_that_differ_or_are_not_adjacent_are_not_folded() -> None:
    d = _describe(FIXTURES / "jabra_evolve-link-ms_0b0e-0307.hid")
    table = render_table(d)
    (report_2,) = [r for r in d["reports"] if (r["direction"], r["report_id"]) == ("input", 2)]
    block = table.split("input report ID 2\n")[1].split("\n\n")[0].splitlines()
    assert len(block) == 1 + len(report_2["fields"])  # header + one row per field
