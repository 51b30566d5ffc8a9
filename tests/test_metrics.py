"""Golden exposition tests: a replayed scenario rendered to /metrics text, compared whole.

Characterization tests in prometheus-pve-exporter's manner: any diff against a file in
tests/golden is either a bug or a deliberate, reviewed change of the metrics contract. Set
HEADSETD_UPDATE_GOLDEN=1 to rewrite the files, then review the diff. The golden files are also
linted with Debian's `promtool check metrics`.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from headsetd.collector import HeadsetCollector
from headsetd.fleet import Fleet
from headsetd.hid.recording import Recording
from headsetd.identity import DeviceIdentity, clean_text
from headsetd.policy import Policy
from headsetd.replay import run_simulated
from tests.conftest import GOLDEN, RECORDINGS, REPO, require_tool
from tests.scripted import Plug, ScriptedDiscovery

RENDERED_AT = 200.0
USB_FIXTURES = REPO / "tests" / "fixtures" / "usb"


def scenario() -> Fleet:
    """Three devices: one unplugged after its call, one replugged and in a call, one rejected
    reports; a hostile product string on the second; one device whose descriptor is malformed.
    Run through the daemon's own loop and device lifecycle, on simulated time."""
    jabra = Recording.load(RECORDINGS / "jabra_evolve-link-ms_0b0e-0307_call.hid")
    poly = Recording.load(RECORDINGS / "plantronics_poly-voyager-base-cd_047f-02ec_call.hid")
    yealink = Recording.load(RECORDINGS / "yealink_wh66_6993-b02b_truncated.hid")
    poly_identity = DeviceIdentity(
        "/sys/devices/pci0000:00/0000:00:14.0/usb1/1-1/1-1.2",
        poly.vendor_id,
        poly.product_id,
        manufacturer=clean_text(b"Plantronics\x00\r\n\xff\xfe"),
        product=clean_text('Voyager "Base" CD\n{evil="1"} \\'),
        serial=clean_text("SN 0042"),
        firmware="1.27",
        port="1-1.2",
    )
    poly_call = poly.reports[-1].t - poly.reports[0].t

    def replayed(recording: Recording, index: int) -> DeviceIdentity:
        key = f"replay-{index}"
        return DeviceIdentity(
            key,
            recording.vendor_id,
            recording.product_id,
            product=clean_text(recording.name),
            port=key,
        )

    malformed = Recording(descriptor=b"\x05\x0b\x09\x05\xa1\x01", name="broken")
    in_call = Recording.load(RECORDINGS / "epos_impact-d_1395-00a9_call.hid")
    in_call = replace(in_call, reports=in_call.reports[:3])  # answered, then unplugged
    headphones = (USB_FIXTURES / "edifier_hal0-2.0-se-qr30-speakers_2d99-a101.desc").read_bytes()
    edifier = DeviceIdentity(
        "/sys/devices/pci0000:00/0000:00:14.0/usb1/1-4",
        0x2D99,
        0xA101,
        product="EDIFIER",
        port="1-4",
    )
    plugs = [
        Plug(0.0, replayed(jabra, 0), jabra),
        Plug(100.0, poly_identity, poly, unplug_after=1.0, node="/dev/hidraw1"),
        Plug(100.0 + poly_call + 10, poly_identity, poly, unplug_after=None, node="/dev/hidraw2"),
        Plug(50.0, replayed(yealink, 2), yealink, unplug_after=None),
        Plug(60.0, replayed(malformed, 3), malformed, unplug_after=None),
        Plug(70.0, replayed(in_call, 4), in_call, unplug_after=0.5),
        Plug(80.0, edifier, usb=headphones),
    ]
    return run_simulated(ScriptedDiscovery(plugs), lambda record, events, now: None)


def render(fleet: Fleet) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(
        HeadsetCollector(
            lambda: fleet.snapshot(RENDERED_AT),
            "0.0.0-golden",
            lambda: {"workstation": "ws-0042", "site": "ber1", "desk": "D17"},
            lambda: Policy(("0b0e:*", "047f:02ec")),
            lambda: True,
        )
    )
    return generate_latest(registry)


GOLDEN_FILE = GOLDEN / "replayed_fleet.prom"


def test_replayed_fleet_matches_golden_exposition() -> None:
    text = render(scenario())
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
    text = render(scenario()).decode()
    assert f'headsetd_device_connected{{device="{device}"}} 0.0' in text
    assert f'headsetd_device_off_hook{{device="{device}"}}' not in text
