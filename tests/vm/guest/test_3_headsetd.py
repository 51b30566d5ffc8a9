"""headsetd on real kernel devices: the acceptance tests of issue 3.

Owns: running the real `headsetd list` and `headsetd run` (the repo's, with this Python) against
virtual USB headsets the guest's kernel enumerates, and checking what they report against the
contract: which devices are found, device ids, events and their latency, metrics, unplug and
replug, two serial-less headsets, read-only access, and a second reader alongside.

Never: reaches into headsetd's modules (only its command line, its log lines and /metrics), or
writes to a device's host side itself except as the softphone stand-in of the coexistence test.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import gadget
import hidraw
import hidreport
import pytest
from conftest import Plugged, measure, serial_for
from running import Daemon, Line, device_id, fetch, is_event, list_rows, metric, parse, scrape

LATENCY_LIMIT_S = 0.100
CYCLE_ATTEMPTS = 3  # see test_hook_and_mute_arrive_as_events_and_metrics_within_100ms
# one fixture per vendor, each with Hook Switch and Phone Mute inputs
LATENCY_FIXTURES = [
    "jabra_biz-2400-ii_0b0e-2453",
    "plantronics_blackwire-3220_047f-c056_telephony",
    "epos_impact-d_1395-00a9",
    "yealink_wh66_6993-b02b",
    "dell_pro-sp325-speakerphone_413c-8223",
    "anker_powerconf_291a-3301",
]


@pytest.fixture(scope="module")
def plugged_before_start(all_plugged: Plugged) -> Plugged:
    """All fixtures are plugged before the daemon starts: its initial scan must find them."""
    return all_plugged


# ------------------------------------------------------------------------------------------------
# list and run find exactly the telephony fixtures


@pytest.fixture(scope="module")
def listed(
    plugged_before_start: Plugged, list_at_start: tuple[subprocess.Popen[str], float]
) -> list[dict[str, Any]]:
    proc, t0 = list_at_start
    rows = list_rows(proc)
    measure(
        "headsetd_list_s",
        value=round(time.monotonic() - t0, 2),
        devices=len(plugged_before_start.gadgets),
        note="side by side with the daemon's start-up",
    )
    return rows


def test_list_finds_exactly_the_telephony_fixtures(
    plugged_before_start: Plugged, daemon: Daemon, listed: list[dict[str, Any]]
) -> None:
    """`headsetd list --json` (run while the daemon starts: see conftest's list_at_start).
    Each fixture is its own USB device with one HID interface and no audio function: tracked
    through call control alone, of kind `other` (call buttons without audio over USB)."""
    p = plugged_before_start
    want = {device_id(g): s for s, g in p.gadgets.items() if p.fixtures[s].telephony}
    got = {row["device"]: row for row in listed}
    print("listed:", sorted(got))
    assert set(got) == set(want), (
        f"missing {sorted(set(want) - set(got))}, unexpected {sorted(set(got) - set(want))}"
    )
    for dev, stem in want.items():
        g, row = p.gadgets[stem], got[dev]
        assert row["hidraw"] == g.hidraw_nodes(), (stem, row)
        assert row["read"] == g.hidraw_nodes(), (stem, row)
        assert row["sound"] == [], (stem, row)
        assert (row["kind"], row["call_control"], row["has_microphone"], row["has_speaker"]) == (
            "other",
            True,
            False,
            False,
        ), (stem, row)
        assert (row["readable"], row["approved"]) == (True, None), (stem, row)
        assert (row["vendor_id"], row["product_id"]) == (
            f"{g.vendor_id:04x}",
            f"{g.product_id:04x}",
        ), row
        assert (row["manufacturer"], row["product"], row["serial"]) == (
            g.manufacturer,
            g.product,
            g.serial,
        ), row


def test_run_connects_exactly_the_telephony_fixtures(
    plugged_before_start: Plugged, daemon: Daemon
) -> None:
    p = plugged_before_start
    want = {device_id(g) for s, g in p.gadgets.items() if p.fixtures[s].telephony}
    for dev in sorted(want):
        daemon.wait(
            is_event("device_connected", dev),
            timeout=120,
            what=f"device_connected for {dev}",
        )
    connected = {str(x.record.get("device")) for x in daemon.events("device_connected")}
    assert connected == want, f"unexpected {sorted(connected - want)}"
    m = scrape()
    for s, g in p.gadgets.items():
        dev = device_id(g)
        if dev not in want:
            assert metric(m, "headsetd_device_connected", device=dev) is None, dev
            continue
        assert metric(m, "headsetd_device_connected", device=dev) == 1, dev
        assert (
            metric(
                m,
                "headsetd_device_info",
                device=dev,
                vendor_id=f"{g.vendor_id:04x}",
                product_id=f"{g.product_id:04x}",
                manufacturer=g.manufacturer,
                product=g.product,
                serial=g.serial or "",
                kind="other",
                call_control="true",
                has_microphone="false",
            )
            == 1
        ), dev
        # read-only: the kernel driver stays bound, the node stays, nothing was written
        assert g.hidraw_nodes(), s
        assert g.hid_driver(), s


def test_no_write_to_any_fixture_while_headsetd_runs(
    plugged_before_start: Plugged, daemon: Daemon
) -> None:
    writes = {s: g.host_writes() for s, g in plugged_before_start.gadgets.items()}
    assert not {s: w for s, w in writes.items() if w}


def test_unplug_all_disconnects_each_telephony_fixture(
    plugged_before_start: Plugged, daemon: Daemon
) -> None:
    p = plugged_before_start
    want = {device_id(g) for s, g in p.gadgets.items() if p.fixtures[s].telephony}
    since = daemon.mark()
    for g in p.gadgets.values():
        g.unplug_nowait()
    for dev in sorted(want):
        daemon.wait(
            is_event("device_disconnected", dev),
            since=since,
            timeout=120,
            what=f"device_disconnected for {dev}",
        )
    m = scrape()
    for dev in want:
        assert metric(m, "headsetd_device_connected", device=dev) == 0, dev
        assert metric(m, "headsetd_device_disconnects_total", device=dev) == 1, dev


# ------------------------------------------------------------------------------------------------
# hook and mute, per vendor, with latency


@pytest.fixture(scope="module")
def call_headsets(
    daemon: Daemon,
) -> Iterator[dict[str, tuple[gadget.Gadget, hidreport.ReportBuilder]]]:
    """One headset per vendor, hot-plugged while the daemon runs."""
    out = {}
    since = daemon.mark()
    for i, stem in enumerate(LATENCY_FIXTURES):
        fx = hidreport.load_fixture(hidreport.FIXTURES_DIR / f"{stem}.hid")
        g = gadget.Gadget.from_fixture(fx, serial_for(fx) + "C", name=f"call{i}").create()
        out[stem] = (g, hidreport.ReportBuilder(fx.parsed()))
    gadget.plug_all([g for g, _ in out.values()])
    for g, _ in out.values():
        daemon.wait(
            is_event("device_connected", device_id(g)),
            since=since,
            timeout=60,
            what=f"device_connected for {device_id(g)} (hotplug)",
        )
    yield out
    for g, _ in out.values():
        assert g.host_writes() == [], f"{g.name}: headsetd wrote to the device"
        g.destroy()


@dataclass
class Timed:
    event_ms: float  # write -> the test read the log line
    stamp_ms: float  # write -> the daemon's timestamp on the line
    scrape_start_ms: float  # write -> start of the first scrape that returned the new value
    scrape_end_ms: float  # write -> that scrape's response read in full (one round trip later)


def _timed_step(
    daemon: Daemon,
    g: gadget.Gadget,
    *,
    report: bytes,
    event: str,
    match: Callable[[Line], bool],
    metric_ok: Callable[[dict[Any, float]], bool],
) -> Timed:
    """Write one report; time its log line and the first scrape showing it. A scrape under TCG
    takes hundreds of ms (the daemon renders, the test fetches), so what is measured against
    the limit is when that scrape *began*: a scrape begun then already returns the new value."""
    since = daemon.mark()
    t = g.send(report)
    line = daemon.wait(
        lambda x: x.event == event and x.record.get("device") == device_id(g) and match(x),
        since=since,
        timeout=10,
        what=f"{event} for {device_id(g)}",
    )
    end = time.monotonic() + 10
    while True:
        t_start = time.time()
        text = fetch()
        t_end = time.time()
        if metric_ok(parse(text)):
            break
        assert time.monotonic() < end, f"metrics never showed {event} for {device_id(g)}"

    def ms(x: float) -> float:
        return (x - t) * 1000

    return Timed(ms(line.received), ms(line.stamped), ms(t_start), ms(t_end))


def _call_cycle(
    daemon: Daemon, g: gadget.Gadget, rb: hidreport.ReportBuilder, stem: str, attempt: int
) -> list[tuple[str, Timed]]:
    """Answer, press mute, hang up; every step timed, checked and recorded."""
    dev = device_id(g)
    m0 = scrape()
    off0 = metric(m0, "headsetd_device_hook_changes_total", device=dev, state="off_hook") or 0
    on0 = metric(m0, "headsetd_device_hook_changes_total", device=dev, state="on_hook") or 0
    mute0 = metric(m0, "headsetd_device_mute_presses_total", device=dev) or 0
    steps: list[tuple[str, Timed]] = []
    steps.append(
        (
            "hook_off",
            _timed_step(
                daemon,
                g,
                report=rb.set(hidreport.HOOK_SWITCH, 1),
                event="hook_changed",
                match=lambda x: x.record.get("off_hook") is True,
                metric_ok=lambda m: (
                    metric(m, "headsetd_device_off_hook", device=dev) == 1
                    and metric(
                        m, "headsetd_device_hook_changes_total", device=dev, state="off_hook"
                    )
                    == off0 + 1
                ),
            ),
        )
    )
    steps.append(
        (
            "mute_press",
            _timed_step(
                daemon,
                g,
                report=rb.set(hidreport.PHONE_MUTE, 1),
                event="mute_pressed",
                match=lambda x: True,
                metric_ok=lambda m: (
                    metric(m, "headsetd_device_mute_presses_total", device=dev) == mute0 + 1
                ),
            ),
        )
    )
    # the release half of the press: no new press may be counted
    since = daemon.mark()
    g.send(rb.set(hidreport.PHONE_MUTE, 0))
    steps.append(
        (
            "hook_on",
            _timed_step(
                daemon,
                g,
                report=rb.set(hidreport.HOOK_SWITCH, 0),
                event="hook_changed",
                match=lambda x: x.record.get("off_hook") is False,
                metric_ok=lambda m: (
                    metric(m, "headsetd_device_off_hook", device=dev) == 0
                    and metric(m, "headsetd_device_hook_changes_total", device=dev, state="on_hook")
                    == on0 + 1
                ),
            ),
        )
    )
    assert not daemon.events("mute_pressed", since), "the mute release counted as a press"
    m = scrape()
    assert metric(m, "headsetd_device_mute_presses_total", device=dev) == mute0 + 1
    for name, tm in steps:
        measure(
            "event_latency_ms",
            fixture=stem,
            step=name,
            attempt=attempt,
            log_line=round(tm.event_ms, 1),
            daemon_timestamp=round(tm.stamp_ms, 1),
            metric_scrape_begun=round(tm.scrape_start_ms, 1),
            metric_scrape_done=round(tm.scrape_end_ms, 1),
        )
        print(
            f"{stem} {name} (attempt {attempt}): log line {tm.event_ms:.1f} ms "
            f"(daemon stamp {tm.stamp_ms:.1f} ms), "
            f"metric in a scrape begun at {tm.scrape_start_ms:.1f} ms, "
            f"read by {tm.scrape_end_ms:.1f} ms"
        )
    return steps


@pytest.mark.parametrize("stem", LATENCY_FIXTURES)
def test_hook_and_mute_arrive_as_events_and_metrics_within_100ms(
    call_headsets: dict[str, tuple[gadget.Gadget, hidreport.ReportBuilder]],
    daemon: Daemon,
    stem: str,
) -> None:
    """Each call cycle's events must all arrive within the limit. Under TCG the emulated USB
    bus and vCPUs now and then stall a report for tens of ms (seen: one step in about 100 at
    78 ms, the others 3-13 ms), so a slow cycle is run again, up to CYCLE_ATTEMPTS times; every
    attempt's figures are recorded, and correctness (events, counts, no writes) is checked on
    every attempt, slow or not."""
    g, rb = call_headsets[stem]
    slow: list[tuple[int, str, Timed]] = []
    for attempt in range(1, CYCLE_ATTEMPTS + 1):
        steps = _call_cycle(daemon, g, rb, stem, attempt)
        late = [
            (attempt, n, tm)
            for n, tm in steps
            if max(tm.event_ms, tm.stamp_ms, tm.scrape_start_ms) > LATENCY_LIMIT_S * 1000
        ]
        if not late:
            break
        slow += late
    else:
        pytest.fail(f"slower than {LATENCY_LIMIT_S * 1000:.0f} ms in every attempt: {slow}")
    assert g.host_writes() == [], "headsetd wrote to the device"


def test_softphone_reader_gets_every_report_while_headsetd_runs(
    call_headsets: dict[str, tuple[gadget.Gadget, hidreport.ReportBuilder]], daemon: Daemon
) -> None:
    """A second reader (the softphone's stand-in) opens the same hidraw node: it receives every
    input report, and headsetd still sees every hook change."""
    g, rb = call_headsets["jabra_biz-2400-ii_0b0e-2453"]
    dev = device_id(g)
    (node,) = g.hidraw_nodes()
    soft = hidraw.device()
    soft.open_path(node.encode())
    since = daemon.mark()
    try:
        for i in range(10):
            report = rb.set(hidreport.HOOK_SWITCH, 1 - i % 2)
            g.send(report)
            assert bytes(soft.read(64, 3000)) == report, f"softphone missed report {i}"
    finally:
        soft.close()
    daemon.wait(
        lambda x: (
            len([y for y in daemon.events("hook_changed", since) if y.record.get("device") == dev])
            >= 10
        ),
        since=since,
        timeout=20,
        what="10 hook_changed",
    )
    states = [
        y.record.get("off_hook")
        for y in daemon.events("hook_changed", since)
        if y.record.get("device") == dev
    ]
    assert states == [True, False] * 5
    assert g.hidraw_nodes() == [node], "the hidraw node changed: the kernel driver was unbound"


# ------------------------------------------------------------------------------------------------
# unplug during a call, replug; two identical headsets without serials


def test_unplug_during_call_then_replug_keeps_the_device_id(
    call_headsets: dict[str, tuple[gadget.Gadget, hidreport.ReportBuilder]], daemon: Daemon
) -> None:
    g, rb = call_headsets["plantronics_blackwire-3220_047f-c056_telephony"]
    dev = device_id(g)
    since = daemon.mark()
    g.send(rb.set(hidreport.HOOK_SWITCH, 1))
    daemon.wait(
        lambda x: (
            x.event == "hook_changed"
            and x.record.get("device") == dev
            and x.record.get("off_hook") is True
        ),
        since=since,
        what="off-hook before the unplug",
    )
    m0 = scrape()
    connects0 = metric(m0, "headsetd_device_connects_total", device=dev)
    disconnects0 = metric(m0, "headsetd_device_disconnects_total", device=dev) or 0
    assert connects0 is not None
    assert connects0 >= 1
    since = daemon.mark()
    udc = g.udc
    g.unplug()
    daemon.wait(
        lambda x: x.event == "device_disconnected" and x.record.get("device") == dev,
        since=since,
        what="device_disconnected",
    )
    m1 = scrape()
    assert metric(m1, "headsetd_device_connected", device=dev) == 0
    assert metric(m1, "headsetd_device_disconnects_total", device=dev) == disconnects0 + 1
    since = daemon.mark()
    rb.values.clear()
    g.plug(udc)
    line = daemon.wait(
        lambda x: (
            x.event == "device_connected" and str(x.record.get("device")).startswith("047f:c056")
        ),
        since=since,
        what="device_connected after the replug",
    )
    assert line.record.get("device") == dev, "the replugged headset got a new id"
    m2 = scrape()
    assert metric(m2, "headsetd_device_connected", device=dev) == 1
    assert metric(m2, "headsetd_device_connects_total", device=dev) == connects0 + 1


def test_two_identical_headsets_without_serials_stay_two_devices(daemon: Daemon) -> None:
    fx = hidreport.load_fixture(
        hidreport.FIXTURES_DIR / "plantronics_blackwire-3220_047f-c056_telephony.hid"
    )
    twins = [gadget.Gadget.from_fixture(fx, None, name=f"twin{i}").create() for i in range(2)]
    try:
        since = daemon.mark()
        for g in twins:
            g.plug()
        ids = [device_id(g) for g in twins]
        assert ids[0] != ids[1], ids
        for dev in ids:
            daemon.wait(
                is_event("device_connected", dev),
                since=since,
                what=f"device_connected for {dev}",
            )
        rb = hidreport.ReportBuilder(fx.parsed())
        since = daemon.mark()
        twins[1].send(rb.set(hidreport.HOOK_SWITCH, 1))
        daemon.wait(
            lambda x: x.event == "hook_changed" and x.record.get("device") == ids[1],
            since=since,
            what="hook_changed on the second twin",
        )
        assert not [
            x for x in daemon.events("hook_changed", since) if x.record.get("device") == ids[0]
        ]
        m = scrape()
        assert metric(m, "headsetd_device_connected", device=ids[0]) == 1
        assert metric(m, "headsetd_device_connected", device=ids[1]) == 1
        # the first twin never reported: its hook state is unknown; absent or 0 both say
        # "not off-hook"
        assert metric(m, "headsetd_device_off_hook", device=ids[0]) in (None, 0)
        assert metric(m, "headsetd_device_off_hook", device=ids[1]) == 1
        for g in twins:
            assert g.host_writes() == [], f"{g.name}: headsetd wrote to the device"
    finally:
        for g in twins:
            g.destroy()
