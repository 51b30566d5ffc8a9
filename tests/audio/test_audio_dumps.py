"""The pure model over the real audio-server dumps in tests/fixtures/pulse: ids as each server
writes them, matching a card/source/sink to its USB device, the cubic volume scale against the
dB the server printed, base volume, ports. Data-driven: a dump added there is tested with no
code change (its file name ends in _<vid>-<pid>.txt, or _usb-<pid>.txt when the excerpt has
no vendor id).
"""

from __future__ import annotations

import math
import re
from dataclasses import replace
from pathlib import Path

import pytest

from headsetd.audio.model import (
    MATCH_IDS,
    MATCH_PATH,
    MATCH_SERIAL,
    AudioTarget,
    DeviceProps,
    match_score,
    observe,
    usb_device_path,
    usb_id_path,
    volume_db,
)
from tests.audio.pactl_text import DUMPS, load

_IDS = re.compile(r"_(?P<vid>[0-9a-f]{4}|usb)-(?:0x)?(?P<pid>[0-9a-f]{4})\.txt$")


def file_ids(path: Path) -> tuple[int | None, int]:
    found = _IDS.search(path.name)
    assert found, f"{path.name}: name must end in _<vid>-<pid>.txt"
    vid = None if found.group("vid") == "usb" else int(found.group("vid"), 16)
    return vid, int(found.group("pid"), 16)


def identified(path: Path) -> list[DeviceProps]:
    """The device facts of every card/source/sink in the dump that carries any."""
    _blocks, state = load(path)
    objects = [*state.cards, *state.sources, *state.sinks]
    return [o.device for o in objects if o.device.identifies]


def test_there_are_dumps() -> None:
    assert len(DUMPS) >= 9


@pytest.mark.parametrize("path", DUMPS, ids=lambda p: p.name)
def test_ids_parse_from_both_servers_spellings(path: Path) -> None:
    vid, pid = file_ids(path)
    text = path.read_text(encoding="utf-8")
    spelled = re.findall(r'device\.product\.id = "([^"]+)"', text)
    assert spelled, "no device.product.id in the dump"
    # PulseAudio writes 046d, PipeWire 0x046d: the same id either way.
    assert all(s.startswith("0x") == path.name.startswith("pw-") for s in spelled)
    devices = identified(path)
    assert devices
    for device in devices:
        assert device.product_id == pid
        assert device.vendor_id in (vid, None)  # None: the excerpt is cut before the vendor id
        assert device.is_usb


@pytest.mark.parametrize("path", DUMPS, ids=lambda p: p.name)
def test_a_device_matches_its_own_audio_by_path_and_not_the_next_port(path: Path) -> None:
    vid, pid = file_ids(path)
    for device in identified(path):
        target = AudioTarget(
            "dev",
            sys_path=usb_device_path(device.sys_path) if device.sys_path else "",
            bus_path=usb_id_path(device.bus_path) if device.bus_path else "",
            vendor_id=vid or 0,
            product_id=pid,
        )
        assert target.sys_path or target.bus_path
        assert match_score(target, device) == MATCH_PATH
        # The interface part is gone: .../1-3 and pci-...-usb-0:3, not .../1-3:1.0, :3:1.0
        if device.bus_path:
            assert target.bus_path == device.bus_path.rsplit(":", 1)[0]
        if device.sys_path:
            assert target.sys_path == device.sys_path.split(":1.0/sound/")[0].rsplit("/", 1)[0]
        # The same model one port further: the path decides, ids do not make it match.
        moved = replace(
            target,
            sys_path=target.sys_path + "9" if target.sys_path else "",
            bus_path=target.bus_path + "9" if target.bus_path else "",
        )
        assert match_score(moved, device) == 0


@pytest.mark.parametrize("path", DUMPS, ids=lambda p: p.name)
def test_a_replayed_device_matches_by_ids_and_serial(path: Path) -> None:
    """No path on the daemon's side (--replay): vendor+product, and the serial where both have
    one (ID_SERIAL's last '_' part is the USB iSerial)."""
    vid, pid = file_ids(path)
    for device in identified(path):
        replayed = AudioTarget("dev", vendor_id=vid or 0, product_id=pid)
        if device.vendor_id is None:  # cut excerpt: nothing to match a path-less device by
            assert match_score(replayed, device) == 0
            continue
        assert match_score(replayed, device) == MATCH_IDS
        if device.serial:
            last = device.serial.rsplit("_", 1)[-1]
            assert match_score(replace(replayed, serial=last), device) == MATCH_SERIAL
            assert match_score(replace(replayed, serial=last + "0"), device) == 0
        assert match_score(replace(replayed, product_id=pid ^ 1), device) == 0


def test_serials_as_udev_writes_them() -> None:
    device = DeviceProps(vendor_id=0x047F, product_id=0xC058, serial="Plantronics_X_12_34_AB")
    target = AudioTarget("d", vendor_id=0x047F, product_id=0xC058)
    # An iSerial with a space is "12_34_AB" in ID_SERIAL.
    assert match_score(replace(target, serial="12 34 AB"), device) == MATCH_SERIAL
    assert match_score(replace(target, serial="34_AB"), device) == MATCH_SERIAL
    assert match_score(replace(target, serial="4_AB"), device) == 0


def test_sysfs_paths_without_sys_prefix_and_interface_ids_match() -> None:
    device = DeviceProps(
        sys_path="/devices/pci0000:00/0000:00:14.0/usb2/2-2/2-2.2/2-2.2:1.0/sound/card3",
        bus_path="pci-0000:00:14.0-usb-0:2.2:1.0",
    )
    assert usb_device_path(device.sys_path) == "/devices/pci0000:00/0000:00:14.0/usb2/2-2/2-2.2"
    assert usb_id_path(device.bus_path) == "pci-0000:00:14.0-usb-0:2.2"
    assert usb_id_path("pci-0000:00:14.0-usb-0:2.2") == "pci-0000:00:14.0-usb-0:2.2"
    by_sys = AudioTarget("d", sys_path="/sys/devices/pci0000:00/0000:00:14.0/usb2/2-2/2-2.2")
    assert match_score(by_sys, device) == MATCH_PATH
    hid_interface = AudioTarget("d", bus_path="pci-0000:00:14.0-usb-0:2.2:1.3")
    assert match_score(hid_interface, device) == MATCH_PATH
    hub = AudioTarget("d", sys_path="/devices/pci0000:00/0000:00:14.0/usb2/2-2")
    assert match_score(hub, device) == 0


_TRIPLE = re.compile(r"(\d+) /\s*(\d+)% /\s*(-?\d+[.,]\d+) dB")


@pytest.mark.parametrize("path", DUMPS, ids=lambda p: p.name)
def test_volume_db_is_the_servers_own_figure(path: Path) -> None:
    """Every `N / P% / D dB` the server printed: 60*log10(N/65536) is D (and P the ratio)."""
    for raw, percent, db in _TRIPLE.findall(path.read_text(encoding="utf-8")):
        ratio = int(raw) / 0x10000
        assert volume_db(ratio) == pytest.approx(float(db.replace(",", ".")), abs=0.01)
        assert round(ratio * 100) == int(percent)


def test_base_volume_differs_per_model() -> None:
    """The Blackwire 3225 mic: volume 89 % / -3 dB over a base of 83 % / -5 dB; the Generalplus
    chip 73 % / -8.35 dB over 28 % / -33 dB (so percentages are not comparable)."""
    blackwire = next(p for p in DUMPS if "blackwire" in p.name)
    generalplus = next(p for p in DUMPS if "generalplus" in p.name)
    target = AudioTarget("bw", vendor_id=0x047F, product_id=0xC058)
    view = observe(load(blackwire)[1], [target])["bw"]
    assert view.mic is not None
    assert view.mic.volume == pytest.approx(0.891, abs=0.001)
    assert volume_db(view.mic.volume) == pytest.approx(-3.0, abs=0.01)
    assert volume_db(view.mic.base_volume) == pytest.approx(-5.0, abs=0.01)
    assert view.mic.channel_map == ("front-left", "front-right")
    assert view.speaker is not None
    assert volume_db(view.speaker.volume) == pytest.approx(-8.0, abs=0.01)
    # pacmd's "*": this headset is the default source and sink; its sink's monitor is no mic.
    assert view.mic_default
    assert view.speaker_default
    assert ".monitor" not in view.mic.source
    target = AudioTarget("gp", vendor_id=0x1B3F, product_id=0x2008, serial="13662631792")
    gp = observe(load(generalplus)[1], [target])["gp"].mic
    assert gp is not None
    assert volume_db(gp.volume) == pytest.approx(-8.35, abs=0.01)
    assert volume_db(gp.base_volume) == pytest.approx(-33.0, abs=0.01)


@pytest.mark.parametrize("path", DUMPS, ids=lambda p: p.name)
def test_ports_and_their_availability(path: Path) -> None:
    """Each port line's availability as printed; only a known one becomes a jack."""
    text = path.read_text(encoding="utf-8")
    printed = re.findall(r"^\s+([\w-]+): .*\(.*available: (yes|no|unknown)\)$", text, re.M)
    printed = [(n, a) for n, a in printed if ":" not in n and n != "off"]
    blocks, state = load(path)
    ports = [p for b in blocks for p in b.ports]
    assert [(p.name, {True: "yes", False: "no", None: "unknown"}[p.available]) for p in ports] == [
        (n, a) for n, a in printed
    ]
    views = observe(state, [])
    jacks = {port for v in views.values() for port, _ in v.jacks}
    assert jacks == {
        p.name for b in blocks if b.kind == "card" for p in b.ports if p.available is not None
    }


def test_an_unplugged_headphone_port_is_a_jack_at_zero() -> None:
    """The EPOS dump starts with the previous card's port, `available: no` (its header is cut,
    so it is no USB device as far as the dump tells): headsetd_jack_connected 0."""
    sennheiser = next(p for p in DUMPS if "sennheiser" in p.name)
    views = observe(load(sennheiser)[1], [])
    assert {d: v.jacks for d, v in views.items()} == {
        "card:cut-0": (("analog-output-headphones", False),)
    }


def test_volume_db_of_zero_is_minus_infinity() -> None:
    assert volume_db(0.0) == -math.inf
    assert volume_db(1.0) == 0.0
    assert volume_db(0.5) == pytest.approx(-18.06, abs=0.01)
