"""Make the synthetic scenario recordings in this directory (hid-recorder format).

    .venv/bin/python tests/recordings/make_recordings.py           # (re)write the .hid files
    .venv/bin/python tests/recordings/make_recordings.py --check   # exit 1 if any is stale

Each recording takes the R:, N: and I: lines of a real descriptor in tests/fixtures/hid verbatim
and adds E: input reports for a scenario (a call: answer, mute twice, hang up; or an edge case).
The report bytes are encoded by hid-tools (`hidtools.hid.ReportDescriptor.from_bytes` and
`HidField.fill_values`), an implementation independent of headsetd's: headsetd's descriptor
parser and decoder are not imported here, so a recording cannot inherit their mistakes. The
only hand-made bytes are the deliberately malformed reports (unknown ID, truncated, too long),
each derived from a hid-tools report or spelled out next to its reason.

The `# expect:` lines are written by hand next to the report that should cause them, from the
semantics in tests/test_recordings.py's docstring; nothing here computes them from the bytes.

Output is deterministic: times are integer milliseconds, files are written in a fixed order.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from hidtools.hid import HidField, ReportDescriptor

HERE = Path(__file__).resolve().parent
FIXTURES = HERE.parent / "fixtures" / "hid"

# Extended usages (page << 16 | id), HID Usage Tables 1.5.
HOOK = 0x0B0020  # Telephony Hook Switch
FLASH = 0x0B0021
REDIAL = 0x0B0024
DROP = 0x0B0026
MUTE = 0x0B002F  # Telephony Phone Mute
BUSY = 0x0B0097  # Telephony Line Busy Tone (not watched by headsetd)
PROG = 0x0B0007  # Telephony Programmable Button (not watched)
VOL_UP = 0x0C00E9
VOL_DOWN = 0x0C00EA
CMUTE = 0x0C00E2  # Consumer Mute
JABRA_VENDOR_HOOK = 0xFF300020  # Jabra's vendor-page mirror of Hook Switch (not watched)
JABRA_VENDOR_MUTE = 0xFF30002F
JABRA_VENDOR_08 = 0xFF600002  # the one data bit of the Jabra EVOLVE LINK MS vendor report 8

NAMES = {
    HOOK: "Hook Switch",
    FLASH: "Flash",
    REDIAL: "Redial",
    DROP: "Drop",
    MUTE: "Phone Mute",
    BUSY: "Line Busy Tone",
    PROG: "Programmable Button",
    VOL_UP: "Volume Increment",
    VOL_DOWN: "Volume Decrement",
    CMUTE: "Consumer Mute",
    JABRA_VENDOR_HOOK: "vendor 0xff30:0x20 (Hook Switch mirror)",
    JABRA_VENDOR_MUTE: "vendor 0xff30:0x2f (Phone Mute mirror)",
    JABRA_VENDOR_08: "vendor 0xff60:0x02",
}


@dataclass(frozen=True)
class Fixture:
    stem: str
    r_line: str
    n_line: str
    i_line: str
    descriptor: ReportDescriptor

    @classmethod
    def load(cls, stem: str) -> Fixture:
        lines = {"R": "", "N": "", "I": ""}
        for line in (FIXTURES / f"{stem}.hid").read_text().splitlines():
            tag = line[:2]
            if tag in ("R:", "N:", "I:") and not lines[tag[0]]:
                lines[tag[0]] = line
        if not all(lines.values()):
            raise SystemExit(f"{stem}: fixture lacks an R:, N: or I: line")
        r_bytes = bytes(int(x, 16) for x in lines["R"].split()[2:])
        if len(r_bytes) != int(lines["R"].split()[1]):
            raise SystemExit(f"{stem}: R: length does not match its bytes")
        descriptor = ReportDescriptor.from_bytes(r_bytes)
        return cls(stem, lines["R"], lines["N"], lines["I"], descriptor)


@dataclass
class Recording:
    """One scenario on one fixture: its reports (t in ms from the first report) and expectations."""

    fixture: Fixture
    scenario: str
    description: list[str]
    start_ms: int = 0  # file timestamp of the first report (hid-recorder starts at 0)
    reports: list[tuple[int, bytes, str]] = field(default_factory=list)
    expected: list[str] = field(default_factory=list)
    _state: dict[int, dict[int, int]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.fixture.stem}_{self.scenario}.hid"

    # -- reports ----------------------------------------------------------------------------

    def _field(self, report_id: int, usage: int) -> HidField:
        report = self.fixture.descriptor.input_reports[report_id]
        found = [f for f in report.fields if f.usage == usage and f.count == 1 and f.size == 1]
        if len(found) != 1:
            raise SystemExit(
                f"{self.name}: input report {report_id} has {len(found)} 1-bit fields of "
                f"usage 0x{usage:08x}, want exactly one"
            )
        return found[0]

    def encode(self, report_id: int, values: dict[int, int]) -> bytes:
        """The whole input report `report_id` with `values`, every other field 0, by hid-tools."""
        report = self.fixture.descriptor.input_reports[report_id]
        if report.bitsize % 8:
            raise SystemExit(f"{self.name}: report {report_id} is not a whole number of bytes")
        data = [0] * report.size  # hid-tools' size includes the report-ID byte
        data[0] = report_id
        for usage, value in values.items():
            # fill_values also writes fields flagged Constant (the Anker's and Razer mic's
            # Hook Switch); create_report would skip them.
            self._field(report_id, usage).fill_values(data, [value])
        return bytes(data)

    def send(self, t_ms: int, report_id: int, **changes: int) -> bytes:
        """The device sends report `report_id` because some of its fields changed.

        A report carries all its fields, so fields not named keep their last value (0 at first).
        Keys are NAMES' short forms: hook, mute, flash, redial, drop, busy, prog, vol_up,
        vol_down, cmute, vendor_hook, vendor_mute, vendor_08.
        """
        state = self._state.setdefault(report_id, {})
        for key, value in changes.items():
            state[_USAGE_BY_KEY[key]] = value
        data = self.encode(report_id, state)
        shown = ", ".join(f"{NAMES[u]}={v}" for u, v in state.items()) or "all fields 0"
        self.add(t_ms, data, f"report {report_id}: {shown}")
        return data

    def add(self, t_ms: int, data: bytes, note: str) -> None:
        if self.reports and t_ms < self.reports[-1][0]:
            raise SystemExit(f"{self.name}: reports out of order at {t_ms} ms")
        self.reports.append((t_ms, data, note))

    # -- expectations (written by hand next to the report that causes them) ------------------

    def expect(self, t_ms: int, event: str, **keys: object) -> None:
        parts = [f"{t_ms // 1000}.{t_ms % 1000:03d}", event]
        for key, value in keys.items():
            parts.append(f"{key}={json.dumps(value) if isinstance(value, bool) else value}")
        self.expected.append(" ".join(str(p) for p in parts))

    # -- output -----------------------------------------------------------------------------

    def text(self) -> str:
        out = [
            "# headsetd-made recording: SYNTHETIC, not captured from hardware.",
            "# Made by tests/recordings/make_recordings.py: the E: report bytes are encoded by",
            "#   hid-tools (HidField.fill_values) from the descriptor below; headsetd's decoder",
            "#   was not used. Regenerate: .venv/bin/python tests/recordings/make_recordings.py",
            f"# Descriptor: tests/fixtures/hid/{self.fixture.stem}.hid (R:, N:, I: lines copied",
            "#   verbatim; where the descriptor comes from is in that file's header).",
            "# Scenario:",
            *(f"#   {line}" for line in self.description),
            "# Expected headsetd events (t = seconds since the first E: report):",
            *(f"# expect: {line}" for line in self.expected),
            self.fixture.r_line,
            self.fixture.n_line,
            self.fixture.i_line,
        ]
        for t_ms, data, note in self.reports:
            stamp_ms = self.start_ms + t_ms
            stamp = f"{stamp_ms // 1000:06d}.{stamp_ms % 1000 * 1000:06d}"  # as hid-recorder
            out.append(f"# {t_ms / 1000:.3f} {note}")
            out.append(f"E: {stamp} {len(data)} {data.hex(' ')}")
        return "\n".join(out) + "\n"


_USAGE_BY_KEY = {
    "hook": HOOK,
    "mute": MUTE,
    "flash": FLASH,
    "redial": REDIAL,
    "drop": DROP,
    "busy": BUSY,
    "prog": PROG,
    "vol_up": VOL_UP,
    "vol_down": VOL_DOWN,
    "cmute": CMUTE,
    "vendor_hook": JABRA_VENDOR_HOOK,
    "vendor_mute": JABRA_VENDOR_MUTE,
    "vendor_08": JABRA_VENDOR_08,
}


# --- the main scenario: a call ------------------------------------------------------------------


@dataclass(frozen=True)
class CallDevice:
    stem: str
    telephony: int  # input report ID of the Telephony collection's Hook Switch / Phone Mute
    volume: int | None  # input report ID with Consumer Volume Increment, used for a press
    idle: bool  # sends an all-released report when it starts (so the recording begins on-hook)


CALL_DEVICES = (
    CallDevice("anker_powerconf_291a-3301", 2, 1, idle=True),
    CallDevice("dell_pro-sp325-speakerphone_413c-8223", 5, 12, idle=True),
    CallDevice("epos_impact-d_1395-00a9", 2, 1, idle=True),
    CallDevice("jabra_biz-2400-ii_0b0e-2453", 2, 1, idle=True),
    CallDevice("jabra_evolve-link-ms_0b0e-0307", 2, None, idle=False),
    CallDevice("plantronics_blackwire-3220_047f-c056_telephony", 8, None, idle=False),
    CallDevice("plantronics_blackwire-c5220_047f-c053", 8, 2, idle=True),
    CallDevice("plantronics_poly-voyager-base-cd_047f-02ec", 1, None, idle=True),
    CallDevice("sennheiser_sc-660-anc-usb_1395-0082", 8, None, idle=False),
    CallDevice("yealink_wh66_6993-b02b", 2, 1, idle=True),
)


def call(dev: CallDevice) -> Recording:
    if dev.idle:
        words = ["A call. At 0.000 the device sends an all-released report (on-hook); at 1.000 it"]
    else:
        words = ["A call. The device sends nothing before the call; at 0.000 it"]
    words += [
        "answers (Hook Switch 1). Phone Mute (Relative) is pressed twice, each a 1 then 0",
        "pulse 80 ms apart while Hook Switch stays 1.",
    ]
    if dev.volume is not None:
        words.append(
            f"Volume Increment is pressed once (1 then 0) in Consumer report {dev.volume}."
        )
    words.append("Then the call is hung up (Hook Switch 0) and the recording ends (unplug).")
    rec = Recording(Fixture.load(dev.stem), "call", words)
    tel = dev.telephony
    rec.expect(0, "device_connected")
    # With an idle report the timeline is 0 idle, 1 answer, 3/6 mute, 8 volume, 10 hang up;
    # without one, the answer is the first report and everything is 1 s earlier.
    base = 0
    if dev.idle:
        rec.send(0, tel, hook=0, mute=0)
        rec.expect(0, "hook_changed", off_hook=False)  # unknown -> on-hook counts as a change
        base = 1000
    rec.send(base, tel, hook=1)
    rec.expect(base, "hook_changed", off_hook=True)
    rec.send(base + 2000, tel, mute=1)
    rec.expect(base + 2000, "mute_pressed")
    rec.send(base + 2080, tel, mute=0)  # release: no event
    rec.send(base + 5000, tel, mute=1)
    rec.expect(base + 5000, "mute_pressed")
    rec.send(base + 5080, tel, mute=0)
    if dev.volume is not None:
        rec.send(base + 7000, dev.volume, vol_up=1)
        rec.expect(base + 7000, "button_pressed", button="volume_up")
        rec.send(base + 7060, dev.volume, vol_up=0)
    rec.send(base + 9000, tel, hook=0)
    rec.expect(base + 9000, "hook_changed", off_hook=False)
    rec.expect(base + 9000, "device_disconnected")
    return rec


# --- edge cases ---------------------------------------------------------------------------------


def unknown_report_id() -> Recording:
    rec = Recording(
        Fixture.load("plantronics_blackwire-3220_047f-c056_telephony"),
        "unknown-report-id",
        [
            "A call with a report of an unknown input ID in the middle. The stray report has ID",
            "0x09, which this descriptor defines only as an OUTPUT report (the Mute LED, 1 bit +",
            "7 padding = 2 bytes), so it is rejected even though its length would fit that output",
            "report; the mute press after it still decodes.",
        ],
    )
    rec.expect(0, "device_connected")
    rec.send(0, 8, hook=0)
    rec.expect(0, "hook_changed", off_hook=False)
    rec.send(1000, 8, hook=1)
    rec.expect(1000, "hook_changed", off_hook=True)
    rec.add(3000, bytes([0x09, 0x01]), "stray report ID 0x09 (output-only ID): rejected")
    rec.expect(3000, "report_rejected", reason="unknown_report_id")
    rec.send(3500, 8, mute=1)
    rec.expect(3500, "mute_pressed")
    rec.send(3580, 8, mute=0)
    rec.send(6000, 8, hook=0)
    rec.expect(6000, "hook_changed", off_hook=False)
    rec.expect(6000, "device_disconnected")
    return rec


def truncated() -> Recording:
    rec = Recording(
        Fixture.load("yealink_wh66_6993-b02b"),
        "truncated",
        [
            "A call in which the first Phone Mute press arrives truncated: report 2 is 3 bytes,",
            "the press comes with its last byte missing (2 bytes). It is rejected, so that press",
            "is lost (no mute_pressed), the release after it is no event (mute was 0 and stays",
            "0), and the second, complete press decodes.",
        ],
    )
    rec.expect(0, "device_connected")
    rec.send(0, 2, hook=0)
    rec.expect(0, "hook_changed", off_hook=False)
    rec.send(1000, 2, hook=1)
    rec.expect(1000, "hook_changed", off_hook=True)
    press = rec.encode(2, {HOOK: 1, MUTE: 1})
    rec.add(3000, press[:-1], "report 2 mute press (Hook Switch=1, Phone Mute=1), last byte cut")
    rec.expect(3000, "report_rejected", reason="wrong_length")
    rec.send(3080, 2, hook=1, mute=0)
    rec.send(6000, 2, mute=1)
    rec.expect(6000, "mute_pressed")
    rec.send(6080, 2, mute=0)
    rec.send(10000, 2, hook=0)
    rec.expect(10000, "hook_changed", off_hook=False)
    rec.expect(10000, "device_disconnected")
    return rec


def too_long() -> Recording:
    rec = Recording(
        Fixture.load("dell_pro-sp325-speakerphone_413c-8223"),
        "too-long",
        [
            "The answer report (ID 5, 2 bytes) arrives with one stray trailing 0x00 byte (3",
            "bytes): right ID, 1 byte too long, rejected, so the hook state stays on-hook. 8 ms",
            "later the same report arrives with the right length and the off-hook is seen then.",
            "One mute press, then hang up.",
        ],
    )
    rec.expect(0, "device_connected")
    rec.send(0, 5, hook=0)
    rec.expect(0, "hook_changed", off_hook=False)
    answer = rec.encode(5, {HOOK: 1})
    rec.add(1000, answer + b"\x00", "report 5 (Hook Switch=1) plus a stray 0x00 byte")
    rec.expect(1000, "report_rejected", reason="wrong_length")
    rec.send(1008, 5, hook=1)
    rec.expect(1008, "hook_changed", off_hook=True)
    rec.send(3000, 5, mute=1)
    rec.expect(3000, "mute_pressed")
    rec.send(3080, 5, mute=0)
    rec.send(7000, 5, hook=0)
    rec.expect(7000, "hook_changed", off_hook=False)
    rec.expect(7000, "device_disconnected")
    return rec


def constant_hook() -> Recording:
    rec = Recording(
        Fixture.load("razer_usb-microphone_1532-0511"),
        "constant-hook",
        [
            "The Razer USB microphone flags its only Telephony field, Hook Switch (report 2, bit",
            "0), Constant (Input 0x23); it is data all the same. Hook Switch 1, a Consumer Mute",
            "press (report 1, Relative: 1 then 0), Hook Switch 0.",
        ],
    )
    rec.expect(0, "device_connected")
    rec.send(0, 2, hook=0)
    rec.expect(0, "hook_changed", off_hook=False)
    rec.send(1000, 2, hook=1)
    rec.expect(1000, "hook_changed", off_hook=True)
    rec.send(3000, 1, cmute=1)
    rec.expect(3000, "button_pressed", button="consumer_mute")
    rec.send(3100, 1, cmute=0)
    rec.send(8000, 2, hook=0)
    rec.expect(8000, "hook_changed", off_hook=False)
    rec.expect(8000, "device_disconnected")
    return rec


def first_off_hook() -> Recording:
    rec = Recording(
        Fixture.load("plantronics_poly-voyager-base-cd_047f-02ec"),
        "first-off-hook",
        [
            "headsetd starts (or the base is plugged in) during a call: the first report already",
            "says Hook Switch 1, so the unknown hook state becomes off-hook at once. One mute",
            "press, a Flash press (Absolute in this descriptor; 1 then 0) and the hang-up.",
        ],
    )
    rec.expect(0, "device_connected")
    rec.send(0, 1, hook=1)
    rec.expect(0, "hook_changed", off_hook=True)
    rec.send(2000, 1, mute=1)
    rec.expect(2000, "mute_pressed")
    rec.send(2080, 1, mute=0)
    rec.send(4000, 1, flash=1)
    rec.expect(4000, "button_pressed", button="flash")
    rec.send(4120, 1, flash=0)
    rec.send(6000, 1, hook=0)
    rec.expect(6000, "hook_changed", off_hook=False)
    rec.expect(6000, "device_disconnected")
    return rec


def hook_flap() -> Recording:
    rec = Recording(
        Fixture.load("sennheiser_sc-660-anc-usb_1395-0082"),
        "hook-flap",
        [
            "A worn cable or a fumbled hook: Hook Switch goes 1/0/1/0/1 within 0.6 s, then the",
            "call settles. Each change is an event. A report where only the unwatched",
            "Programmable Button changes repeats Hook Switch 1: no event. One mute press, then",
            "hang-up. The first E: report is at file time 1.250 (as when hid-recorder records",
            "several devices and another one spoke first): t counts from the first report.",
        ],
        start_ms=1250,
    )
    rec.expect(0, "device_connected")
    rec.send(0, 8, hook=0)
    rec.expect(0, "hook_changed", off_hook=False)
    for t_ms, hook in ((1000, 1), (1150, 0), (1270, 1), (1450, 0), (1580, 1)):
        rec.send(t_ms, 8, hook=hook)
        rec.expect(t_ms, "hook_changed", off_hook=bool(hook))
    rec.send(2000, 8, prog=1)  # Hook Switch repeats 1: no event
    rec.send(2100, 8, prog=0)
    rec.send(4000, 8, mute=1)
    rec.expect(4000, "mute_pressed")
    rec.send(4080, 8, mute=0)
    rec.send(8000, 8, hook=0)
    rec.expect(8000, "hook_changed", off_hook=False)
    rec.expect(8000, "device_disconnected")
    return rec


def unwatched_reports() -> Recording:
    rec = Recording(
        Fixture.load("jabra_evolve-link-ms_0b0e-0307"),
        "unwatched-reports",
        [
            "Valid reports that must cause no event: Line Busy Tone toggling in the Telephony",
            "report (Hook Switch repeats 1), the 2-byte vendor report 8, and vendor report 4,",
            "which mirrors Hook Switch and Phone Mute on vendor page 0xff30 (a vendor collection",
            "that mirrors the telephony usages must not be counted). Then one real mute press",
            "(report 2) and the hang-up.",
        ],
    )
    rec.expect(0, "device_connected")
    rec.send(0, 2, hook=1)
    rec.expect(0, "hook_changed", off_hook=True)
    rec.send(2000, 2, busy=1)
    rec.send(2500, 2, busy=0)
    rec.send(3000, 8, vendor_08=1)
    rec.send(3500, 8, vendor_08=0)
    rec.send(4000, 4, vendor_hook=1, vendor_mute=1)
    rec.send(4080, 4, vendor_mute=0)
    rec.send(4500, 4, vendor_hook=0)
    rec.send(5000, 2, mute=1)
    rec.expect(5000, "mute_pressed")
    rec.send(5080, 2, mute=0)
    rec.send(7000, 2, hook=0)
    rec.expect(7000, "hook_changed", off_hook=False)
    rec.expect(7000, "device_disconnected")
    return rec


def buttons() -> Recording:
    rec = Recording(
        Fixture.load("epos_impact-d_1395-00a9"),
        "buttons",
        [
            "The other telephony buttons, all in Telephony report 2: Redial while on-hook, then",
            "answer, Flash, Volume Decrement (a Consumer usage inside this Telephony collection,",
            "Absolute), Drop (each a 1 then 0 press, Hook Switch unchanged), then hang-up.",
        ],
    )
    rec.expect(0, "device_connected")
    rec.send(0, 2, hook=0)
    rec.expect(0, "hook_changed", off_hook=False)
    rec.send(1000, 2, redial=1)
    rec.expect(1000, "button_pressed", button="redial")
    rec.send(1100, 2, redial=0)
    rec.send(3000, 2, hook=1)
    rec.expect(3000, "hook_changed", off_hook=True)
    rec.send(5000, 2, flash=1)
    rec.expect(5000, "button_pressed", button="flash")
    rec.send(5090, 2, flash=0)
    rec.send(7000, 2, vol_down=1)
    rec.expect(7000, "button_pressed", button="volume_down")
    rec.send(7070, 2, vol_down=0)
    rec.send(9000, 2, drop=1)
    rec.expect(9000, "button_pressed", button="drop")
    rec.send(9080, 2, drop=0)
    rec.send(9200, 2, hook=0)
    rec.expect(9200, "hook_changed", off_hook=False)
    rec.expect(9200, "device_disconnected")
    return rec


EDGE_CASES: tuple[Callable[[], Recording], ...] = (
    unknown_report_id,
    truncated,
    too_long,
    constant_hook,
    first_off_hook,
    hook_flap,
    unwatched_reports,
    buttons,
)


# --- the simulated fleet's scenarios (headsetd/scenario.py) ----------------------------------

SHIFT_CALLS = 15  # a 10-minute stretch of a shift: a call every 40 s
SHIFT_DEVICES = (
    CallDevice("jabra_biz-2400-ii_0b0e-2453", 2, 1, idle=True),
    CallDevice("plantronics_blackwire-c5220_047f-c053", 8, 2, idle=True),
    CallDevice("epos_impact-d_1395-00a9", 2, 1, idle=True),
)


def shift(dev: CallDevice) -> Recording:
    """Calls back to back, as an agent's shift: what a quiet workstation of the fleet replays."""
    rec = Recording(
        Fixture.load(dev.stem),
        "shift",
        [
            f"Ten minutes of a shift: {SHIFT_CALLS} calls, one every 40 s. At 0.000 the device",
            "sends an all-released report (on-hook). Each call: answer (Hook Switch 1), two",
            "Phone Mute presses (1 then 0, 80 ms apart) 5 s and 12 s in, hang-up (Hook Switch 0)",
            "25 s in. The recording ends 10 s after the last hang-up (unplug, on-hook).",
        ],
    )
    tel = dev.telephony
    rec.expect(0, "device_connected")
    rec.send(0, tel, hook=0, mute=0)
    rec.expect(0, "hook_changed", off_hook=False)
    end = 0
    for number in range(SHIFT_CALLS):
        start = 5000 + number * 40000
        rec.send(start, tel, hook=1)
        rec.expect(start, "hook_changed", off_hook=True)
        for offset in (5000, 12000):
            rec.send(start + offset, tel, mute=1)
            rec.expect(start + offset, "mute_pressed")
            rec.send(start + offset + 80, tel, mute=0)
        rec.send(start + 25000, tel, hook=0)
        rec.expect(start + 25000, "hook_changed", off_hook=False)
        end = start + 35000
    rec.send(end, tel, hook=0)  # an idle report repeating on-hook: no event
    rec.expect(end, "device_disconnected")
    return rec


def unplug_in_call() -> Recording:
    dev = CallDevice("jabra_evolve-link-ms_0b0e-0307", 2, None, idle=False)
    rec = Recording(
        Fixture.load(dev.stem),
        "unplug-in-call",
        [
            "The headset is unplugged during a call: plugged in idle at 0.000 (Hook Switch 0;",
            "20 s on-hook, so a fleet's Prometheus has scraped it before the call), answer at",
            "20.000 (Hook Switch 1), one Phone Mute press at 23.000 (1 then 0), and the recording",
            "ends at 26.000 on a report that still says Hook Switch 1: the unplug comes off-hook.",
        ],
    )
    rec.expect(0, "device_connected")
    rec.send(0, dev.telephony, hook=0)
    rec.expect(0, "hook_changed", off_hook=False)
    rec.send(20000, dev.telephony, hook=1)
    rec.expect(20000, "hook_changed", off_hook=True)
    rec.send(23000, dev.telephony, mute=1)
    rec.expect(23000, "mute_pressed")
    rec.send(23080, dev.telephony, mute=0)
    rec.send(26000, dev.telephony, busy=1)  # Line Busy Tone (not watched): hook repeats 1
    rec.expect(26000, "device_disconnected")
    return rec


def recordings() -> list[Recording]:
    return (
        [call(dev) for dev in CALL_DEVICES]
        + [make() for make in EDGE_CASES]
        + [shift(dev) for dev in SHIFT_DEVICES]
        + [unplug_in_call()]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare, do not write")
    args = parser.parse_args(argv)
    stale = []
    for rec in recordings():
        path = HERE / rec.name
        text = rec.text()
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(rec.name)
        else:
            path.write_text(text)
    for name in stale:
        print(f"stale: {name}", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    raise SystemExit(main())
