"""Golden exposition tests: a replayed scenario rendered to /metrics text, compared whole.

Characterization tests in prometheus-pve-exporter's manner: any diff against a file in
tests/golden is either a bug or a deliberate, reviewed change of the metrics contract. Set
HEADSETD_UPDATE_GOLDEN=1 to rewrite the files, then review the diff. The golden files are also
linted with Debian's `promtool check metrics`.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from headsetd.clock import ManualClock
from headsetd.collector import HeadsetCollector
from headsetd.discovery import DeviceInfo, ReplayDiscovery, clean_text
from headsetd.fleet import Fleet
from headsetd.hid.decoder import TelephonyDecoder
from headsetd.hid.descriptor import parse_report_descriptor
from headsetd.hid.recording import Recording
from headsetd.session import DeviceDisconnected, HeadsetState, decode_and_step
from tests.conftest import GOLDEN, RECORDINGS, require_tool


def replay_into(
    fleet: Fleet, info: DeviceInfo, recording: Recording, start: float
) -> tuple[int, float]:
    """What the daemon does for one plugged device, on a manual clock.

    Returns the plug-in's generation and the time of its last report."""
    decoder = TelephonyDecoder(parse_report_descriptor(recording.descriptor))
    generation = fleet.connect(info, decoder.controls, start)
    state = HeadsetState()
    first = recording.reports[0].t
    now = start
    for report in recording.reports:
        now = start + report.t - first
        state, events = decode_and_step(decoder, state, report.data, now)
        fleet.apply(info.device_id, generation, events, now)
    return generation, now


def scenario() -> tuple[Fleet, ManualClock]:
    """Three devices: one unplugged after its call, one replugged and in a call, one rejected
    reports; with a hostile product string on the second."""
    fleet = Fleet(retention=3600)
    clock = ManualClock()
    jabra = Recording.load(RECORDINGS / "jabra_evolve-link-ms_0b0e-0307_call.hid")
    jabra_info = ReplayDiscovery.info(jabra, 0)
    generation, end = replay_into(fleet, jabra_info, jabra, 0.0)
    fleet.apply(jabra_info.device_id, generation, [DeviceDisconnected("unplugged")], end)

    poly = Recording.load(RECORDINGS / "plantronics_poly-voyager-base-cd_047f-02ec_call.hid")
    poly_info = DeviceInfo(
        "/dev/hidraw1",
        poly.vendor_id,
        poly.product_id,
        poly.descriptor,
        manufacturer=clean_text(b"Plantronics\x00\r\n\xff\xfe"),
        product=clean_text('Voyager "Base" CD\n{evil="1"} \\'),
        serial=clean_text("SN 0042"),
        firmware="1.27",
        port="1-1.2",
    )
    generation, end = replay_into(fleet, poly_info, poly, 100.0)
    fleet.apply(poly_info.device_id, generation, [DeviceDisconnected("unplugged")], end + 1)
    replay_into(fleet, poly_info, poly, end + 10)  # replugged: a second call, still plugged

    yealink = Recording.load(RECORDINGS / "yealink_wh66_6993-b02b_truncated.hid")
    replay_into(fleet, ReplayDiscovery.info(yealink, 2), yealink, 50.0)
    clock.t = 200.0
    return fleet, clock


def render(fleet: Fleet, clock: ManualClock) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(
        HeadsetCollector(
            lambda: fleet.snapshot(clock.now()),
            "0.0.0-golden",
            {"workstation": "ws-0042", "site": "ber1", "desk": "D17"},
            lambda: {"malformed_descriptor": 1},
        )
    )
    return generate_latest(registry)


GOLDEN_FILE = GOLDEN / "replayed_fleet.prom"


def test_replayed_fleet_matches_golden_exposition() -> None:
    text = render(*scenario())
    if os.environ.get("HEADSETD_UPDATE_GOLDEN") == "1":
        GOLDEN_FILE.write_bytes(text)
    assert text.decode() == GOLDEN_FILE.read_text()


def test_golden_files_pass_promtool(tmp_path: Path) -> None:
    promtool = require_tool("promtool")
    for golden in sorted(GOLDEN.glob("*.prom")):
        result = subprocess.run(
            [promtool, "check", "metrics"],
            input=golden.read_bytes(),
            capture_output=True,
            check=False,
        )
        assert result.returncode == 0, f"{golden.name}: {result.stdout!r} {result.stderr!r}"


@pytest.mark.parametrize("device", ["0b0e:0307@replay-0"])
def test_unplugged_device_keeps_its_series_at_zero(device: str) -> None:
    text = render(*scenario()).decode()
    assert f'headsetd_device_connected{{device="{device}"}} 0.0' in text
    assert f'headsetd_device_off_hook{{device="{device}"}}' not in text
