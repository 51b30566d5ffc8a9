"""`headsetd inspect`: the JSON shape, the table, and the three kinds of input file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

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


def _check_shape(d: Description) -> None:
    assert set(d) == {"name", "vendor_id", "product_id", "reports"}
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
