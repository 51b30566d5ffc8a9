"""The VM tier's own proof that its virtual headsets are real to the guest's kernel and udev.

Owns: checks of the test infrastructure only (gadget library, dummy_hcd, usbhid/hidraw, udev,
snd-usb-audio, PulseAudio), with no headsetd involved, so that a headsetd failure elsewhere in
the tier can be trusted to be headsetd's.
"""

from __future__ import annotations

import os
import time

import gadget
import hidraw  # hidapi's hidraw backend: the one headsetd uses
import hidreport
import pytest
from conftest import Plugged, UdevRecorder, measure


def test_every_fixture_is_a_usb_hid_device(all_plugged: Plugged) -> None:
    """Each fixture enumerates with its own ids, strings and serial, and the kernel's copy of its
    report descriptor is byte-for-byte the fixture's."""
    by_path = {
        d["path"].decode() if isinstance(d["path"], bytes) else d["path"]: d
        for d in hidraw.enumerate()
    }
    problems = []
    for stem, g in all_plugged.gadgets.items():
        fx = all_plugged.fixtures[stem]
        nodes = g.hidraw_nodes()
        if len(nodes) != 1:
            problems.append(f"{stem}: hidraw nodes {nodes}")
            continue
        info = by_path.get(nodes[0])
        if info is None:
            problems.append(f"{stem}: hidapi does not list {nodes[0]}")
            continue
        want = (fx.vendor_id, fx.product_id, g.serial, g.manufacturer, g.product)
        got = (
            info["vendor_id"],
            info["product_id"],
            info["serial_number"],
            info["manufacturer_string"],
            info["product_string"],
        )
        if want != got:
            problems.append(f"{stem}: hidapi {got} != {want}")
        rd = (g.hid_devices()[0] / "report_descriptor").read_bytes()
        if rd != fx.descriptor:
            problems.append(
                f"{stem}: kernel report descriptor differs "
                f"({len(rd)} vs {len(fx.descriptor)} bytes)"
            )
        print(
            f"{stem}: {nodes[0]} port {g.port_path} driver {g.hid_driver()} "
            f"usage_page {info['usage_page']:#x}"
        )
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(("vendor", "driver"), [(0x047F, "plantronics"), (0x045E, "microsoft")])
def test_vendor_drivers_bind_by_modalias(all_plugged: Plugged, vendor: int, driver: str) -> None:
    """udevd loaded the vendor's HID driver by modalias and the kernel rebound the device to it."""
    seen = {
        s: g.hid_driver()
        for s, g in all_plugged.gadgets.items()
        if all_plugged.fixtures[s].vendor_id == vendor
    }
    assert seen, f"no fixture of vendor {vendor:04x}"
    assert all(d == driver for d in seen.values()), seen


def test_udev_reports_every_hidraw_add(all_plugged: Plugged, udev_events: UdevRecorder) -> None:
    nodes = {n for g in all_plugged.gadgets.values() for n in g.hidraw_nodes()}
    added = {
        e.device_node
        for e in udev_events.snapshot()
        if e.subsystem == "hidraw" and e.action == "add" and e.t >= all_plugged.t_plug
    }
    assert nodes <= added, f"no udev add event for {sorted(nodes - added)}"


def test_no_report_written_by_the_kernel_alone(all_plugged: Plugged) -> None:
    """Enumeration, driver binding and udev write nothing to the devices, so any write seen while
    headsetd runs is headsetd's. (Positive control: test_host_writes_reach_the_gadget.)"""
    writes = {s: g.host_writes() for s, g in all_plugged.gadgets.items()}
    assert not {s: w for s, w in writes.items() if w}


def test_host_writes_reach_the_gadget(all_plugged: Plugged) -> None:
    """The read-only check can see a write: an output report written to hidraw arrives at the
    gadget (here: the Plantronics Blackwire 3220 Mute LED, report 0x09)."""
    g = all_plugged.gadgets["plantronics_blackwire-3220_047f-c056_telephony"]
    (node,) = g.hidraw_nodes()
    dev = hidraw.device()
    dev.open_path(node.encode())
    try:
        dev.write([0x09, 0x01])
        got = gadget.wait_for(g.host_writes, 5, "the output report at the gadget")
    finally:
        dev.close()
    assert got == [bytes([0x09, 0x01])]


def test_two_readers_get_every_report(all_plugged: Plugged) -> None:
    """Every hidraw reader gets its own copy of each input report (the softphone and headsetd
    coexist): two readers, 20 hook/mute reports, both see all, in order."""
    fx = all_plugged.fixtures["jabra_biz-2400-ii_0b0e-2453"]
    g = all_plugged.gadgets[fx.stem]
    (node,) = g.hidraw_nodes()
    readers = []
    for _ in range(2):
        d = hidraw.device()
        d.open_path(node.encode())
        readers.append(d)
    rb = hidreport.ReportBuilder(fx.parsed())
    sent = []
    lat = []
    try:
        for i in range(10):
            for usage, value in ((hidreport.HOOK_SWITCH, i % 2 == 0), (hidreport.PHONE_MUTE, 1)):
                report = rb.set(usage, int(value))
                t = g.send(report)
                sent.append(report)
                for d in readers:
                    got = bytes(d.read(64, 2000))
                    assert got == report
                lat.append(time.time() - t)
            rb.set(hidreport.PHONE_MUTE, 0)
    finally:
        for d in readers:
            d.close()
    lat.sort()
    measure(
        "gadget_to_two_hidraw_readers_ms",
        p50=round(lat[len(lat) // 2] * 1000, 1),
        max=round(lat[-1] * 1000, 1),
        n=len(lat),
    )
    assert len(sent) == 20


def test_consumer_volume_reports_reach_hidraw(all_plugged: Plugged) -> None:
    """The gadget writes any usage the descriptor has, not only telephony ones: volume up/down
    on the Logitech H540's Consumer collection arrive as built."""
    fx = all_plugged.fixtures["logitech_h540-usb-headset_046d-0a37"]
    g = all_plugged.gadgets[fx.stem]
    (node,) = g.hidraw_nodes()
    rb = hidreport.ReportBuilder(fx.parsed())
    dev = hidraw.device()
    dev.open_path(node.encode())
    try:
        for usage in (hidreport.VOLUME_UP, hidreport.VOLUME_DOWN):
            for value in (1, 0):
                report = rb.set(usage, value)
                g.send(report)
                assert bytes(dev.read(64, 2000)) == report
    finally:
        dev.close()


def test_hidraw_nodes_are_udev_managed(all_plugged: Plugged) -> None:
    """udevd (not just devtmpfs) handled the nodes: its database knows them."""
    for g in all_plugged.gadgets.values():
        for node in g.hidraw_nodes():
            rdev = os.stat(node).st_rdev
            assert os.path.exists(f"/run/udev/data/c{os.major(rdev)}:{os.minor(rdev)}"), node
