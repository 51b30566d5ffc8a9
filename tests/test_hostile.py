"""Device-supplied strings are hostile until sanitised: control characters, 10 KB, invalid
UTF-8, quotes and newlines must never reach a label or a log line as they came."""

from __future__ import annotations

import json
import re
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from headsetd.identity import MAX_TEXT, DeviceIdentity, clean_text
from tests.conftest import FIXTURES
from tests.test_daemon import Daemon

HOSTILE_NAME = (
    b'Evil "Headset"\x1b[31m\x07 \\ {label="x"} \xff\xfe\xc3' + b"A" * 10_000 + b"\r\x00end"
)


def _safe(text: str) -> bool:
    return text.isprintable() and len(text) <= MAX_TEXT


@given(st.one_of(st.text(max_size=20_000), st.binary(max_size=20_000)))
def test_clean_text_is_printable_bounded_and_one_line(value: str | bytes) -> None:
    assert _safe(clean_text(value))


@given(st.text(max_size=300))
def test_device_ids_are_label_safe_whatever_the_serial(serial: str) -> None:
    info = DeviceIdentity("usb1/1-1", 0x0B0E, 0x0307, serial=clean_text(serial), port="1-1")
    assert re.fullmatch(r"[0-9a-f]{4}:[0-9a-f]{4}[:@][A-Za-z0-9._\-…]*", info.device_id)
    assert len(info.device_id) <= 10 + MAX_TEXT


def test_hostile_device_name_is_sanitised_in_logs_and_metrics(tmp_path: Path) -> None:
    fixture = FIXTURES / "jabra_evolve-link-ms_0b0e-0307.hid"
    lines = [
        line for line in fixture.read_bytes().splitlines() if not line.startswith((b"N:", b"#"))
    ]
    recording = tmp_path / "hostile.hid"
    recording.write_bytes(
        b"\n".join([b"N: " + HOSTILE_NAME, *lines, b"E: 000000.000000 3 02 01 00"]) + b"\n"
    )
    daemon = Daemon("--replay", str(recording), "--loop", "--speed", "1", "--log-format", "json")
    try:
        (connected, *_) = daemon.wait_for("device_connected")
        raw_lines = [json.dumps(line) for line in daemon.lines]
        assert all("\\u001b" not in line and "\\n" not in line for line in raw_lines)
        assert _safe(str(connected["product"]))
        assert str(connected["product"]).startswith('Evil "Headset"')
        families = {f.name: f for f in text_string_to_metric_families(daemon.metrics())}
        (sample,) = families["headsetd_device_info"].samples
        for value in sample.labels.values():
            assert _safe(value), value
    finally:
        assert daemon.stop() == 0
