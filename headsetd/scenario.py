"""The simulated fleet: workstations replaying recordings, each with a scripted shift, and the
alerts the shipped rules must raise for it. `headsetd demo` runs it; the e2e tests
(tests/stack, tests/test_stack.py) run it against real Prometheus, Alertmanager, agents and
VictoriaMetrics.

Owns: the `Workstation` and `Expect` records, the fleet `SCENARIO`, and `PENDING`: the ONE
place that names the daemon features the scenario needs but the daemon does not have yet. A
workstation needing a pending feature is described but not started; an expected alert needing
one is not expected. When a feature lands, delete its line from PENDING: the e2e test then
starts that workstation and expects its alerts.

Never does: start a process or decide an alert itself (the rules do); it only describes. Paths
are relative to a headsetd checkout (the recordings live in tests/recordings).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

# Features the scenario needs that the daemon does not have yet, and who is building them.
# Delete a line when its feature lands.
PENDING: dict[str, str] = {}

# Stopped daemons run this long first: every tier (VictoriaMetrics' vmalert included, which
# sees data a few seconds late) must have recorded their workstation name before they go down.
STOP_AFTER_SECONDS = 12.0

SHIFTS = (
    "tests/recordings/jabra_biz-2400-ii_0b0e-2453_shift.hid",
    "tests/recordings/plantronics_blackwire-c5220_047f-c053_shift.hid",
    "tests/recordings/epos_impact-d_1395-00a9_shift.hid",
)


@dataclass(frozen=True, slots=True)
class Expect:
    """An alert the rules must fire for a workstation (or, with scope site, for its site)."""

    alert: str
    needs: str = ""  # a PENDING feature without which it cannot fire


@dataclass(frozen=True, slots=True)
class Audio:
    """The workstation's audio server (a real PulseAudio the stack starts, see
    headsetd/simaudio.py) and what its headset's microphone picks up there. A stand-in
    softphone records from that microphone during each call of the shift (headsetd.stack
    says how it knows the calls)."""

    # Peak of the 1 kHz tone that stands in for the agent's voice, in dBFS (speech peaks at
    # about -16, ITU-T P.56); None: digital silence, a dead capsule or a broken wire.
    voice_dbfs: float | None = None
    # The microphone's input volume at the server (0-1, the desktop's slider: PulseAudio's
    # cubic scale, so 0.2 attenuates by 60*log10(0.2) = -41.9 dB).
    mic_volume: float = 1.0
    # Seconds after the fleet started: the audio server is killed (a crash, or the user's
    # session ended) and nothing restarts it.
    server_stops_after: float | None = None


@dataclass(frozen=True, slots=True)
class Workstation:
    name: str
    site: str
    team: str
    story: str  # what happens to it, for people
    replay: tuple[str, ...]  # recordings, USB descriptors files, or RECORDING+DESCRIPTORS
    speed: float = 1.0
    loop: bool = True
    stop_after: float | None = None  # seconds after the fleet started: the daemon is stopped
    config_extra: str = ""  # TOML appended to its generated configuration
    # An audio server runs for it (the microphone's story), with a source carrying the USB
    # ids of its first replayed device; without one its daemon runs with [audio] enabled =
    # false, as a workstation without a user session would.
    audio: Audio | None = None
    needs: str = ""  # a PENDING feature without which it cannot run at all
    expect: tuple[Expect, ...] = ()

    @property
    def pending(self) -> bool:
        return self.needs in PENDING


@dataclass(frozen=True, slots=True)
class Scenario:
    workstations: tuple[Workstation, ...]
    # Site-wide alerts (key: the site), e.g. HeadsetdSiteDown when most of a site is stopped.
    site_expect: dict[str, tuple[Expect, ...]] = field(default_factory=dict)

    def running(self) -> tuple[Workstation, ...]:
        """The workstations that can run with the daemon as it is."""
        return tuple(ws for ws in self.workstations if not ws.pending)

    def expected(self) -> frozenset[tuple[str, str]]:
        """(alert name, workstation or site) of every alert the rules must fire."""
        return frozenset(self._expected())

    def _expected(self) -> Iterator[tuple[str, str]]:
        for ws in self.running():
            for e in ws.expect:
                if e.needs not in PENDING:
                    yield e.alert, ws.name
        for site, expects in self.site_expect.items():
            for e in expects:
                if e.needs not in PENDING:
                    yield e.alert, site

    def notified(self) -> frozenset[tuple[str, str]]:
        """What reaches Alertmanager's receivers: the expected alerts less those that a
        site-wide alert inhibits (every workstation alert of that site)."""
        sites_out = set(self.site_expect)
        by_name = {ws.name: ws for ws in self.workstations}
        return frozenset(
            (alert, key)
            for alert, key in self.expected()
            if key in sites_out or by_name[key].site not in sites_out
        )


def _quiet(name: str, site: str, team: str, number: int) -> Workstation:
    return Workstation(
        name,
        site,
        team,
        "a quiet shift: calls with mutes, no alert",
        (SHIFTS[number % len(SHIFTS)],),
    )


def _stopped(name: str, site: str, team: str, number: int, story: str) -> Workstation:
    return Workstation(
        name,
        site,
        team,
        story,
        (SHIFTS[number % len(SHIFTS)],),
        stop_after=STOP_AFTER_SECONDS,
        expect=(Expect("HeadsetdDown"),),
    )


SCENARIO = Scenario(
    workstations=(
        _quiet("ber1-ws01", "ber1", "support", 0),
        _quiet("ber1-ws02", "ber1", "support", 1),
        Workstation(
            "ber1-ws03",
            "ber1",
            "support",
            "the headset is unplugged 6 s into a call and stays out",
            ("tests/recordings/jabra_evolve-link-ms_0b0e-0307_unplug-in-call.hid",),
            loop=False,
            expect=(
                Expect("HeadsetDisconnectedInCall"),
                Expect("HeadsetDisconnected"),
            ),
        ),
        _stopped("ber1-ws04", "ber1", "support", 0, "its daemon stops after 12 s (PC off)"),
        _quiet("ber1-ws05", "ber1", "sales", 2),
        Workstation(
            "ber1-ws06",
            "ber1",
            "sales",
            "headphones without a microphone are the only audio device",
            ("tests/fixtures/usb/smsl_d6s-usb-dac_152a-85dd.desc",),
            expect=(Expect("HeadsetWithoutMicrophone"),),
        ),
        _quiet("ber1-ws07", "ber1", "sales", 0),
        Workstation(
            "ber1-ws08",
            "ber1",
            "support",
            "the mic's input volume is at 20 %: a normal voice (-12 dBFS) reaches calls at -54",
            (SHIFTS[1],),
            audio=Audio(voice_dbfs=-12.0, mic_volume=0.2),
            expect=(Expect("MicrophoneVolumeLow"), Expect("MicrophoneLevelLow")),
        ),
        Workstation(
            "muc2-ws01",
            "muc2",
            "support",
            "a worn cable: the headset drops out and back every ~1.2 s",
            ("tests/recordings/plantronics_blackwire-3220_047f-c056_telephony_call.hid",),
            speed=8.0,
            expect=(Expect("HeadsetConnectionFlapping"),),
        ),
        _quiet("muc2-ws02", "muc2", "support", 1),
        Workstation(
            "muc2-ws03",
            "muc2",
            "support",
            "in calls with a microphone that picks up nothing (digital silence)",
            (SHIFTS[0],),
            audio=Audio(),
            expect=(Expect("MicrophoneSilentInCall"),),
        ),
        _quiet("muc2-ws04", "muc2", "support", 2),
        Workstation(
            "muc2-ws05",
            "muc2",
            "support",
            "breaks: the headset is out for 4 s after each 40 s call (one unplug: not flapping)",
            ("tests/recordings/jabra_biz-2400-ii_0b0e-2453_call.hid",),
            speed=0.25,
        ),
        _quiet("muc2-ws06", "muc2", "support", 0),
        Workstation(
            "ham3-ws01",
            "ham3",
            "sales",
            "after one call the headset is unplugged on-hook and not plugged back",
            ("tests/recordings/yealink_wh66_6993-b02b_call.hid",),
            loop=False,
            expect=(Expect("HeadsetDisconnected"),),
        ),
        _quiet("ham3-ws02", "ham3", "sales", 1),
        _quiet("ham3-ws03", "ham3", "sales", 2),
        Workstation(
            "ham3-ws04",
            "ham3",
            "sales",
            "an EPOS headset, not on the workstation's approved list (Jabra and Poly only)",
            (SHIFTS[2],),
            config_extra='[policy]\napproved = ["0b0e:*", "047f:*"]\n',
            expect=(Expect("HeadsetUnapproved"),),
        ),
        Workstation(
            "ham3-ws05",
            "ham3",
            "sales",
            "a good mic, until PulseAudio dies 12 s in (mid-call) and nothing restarts it",
            (SHIFTS[0],),
            audio=Audio(voice_dbfs=-16.0, server_stops_after=STOP_AFTER_SECONDS),
            expect=(Expect("HeadsetdAudioServerDown"),),
        ),
        _quiet("ham3-ws06", "ham3", "sales", 1),
        _stopped("lis4-ws01", "lis4", "sales", 0, "site outage: its daemon stops after 12 s"),
        _stopped("lis4-ws02", "lis4", "sales", 1, "site outage: its daemon stops after 12 s"),
        _stopped("lis4-ws03", "lis4", "sales", 2, "site outage: its daemon stops after 12 s"),
        _quiet("lis4-ws04", "lis4", "sales", 0),
        _quiet("lis4-ws05", "lis4", "sales", 1),
    ),
    site_expect={"lis4": (Expect("HeadsetdSiteDown"),)},
)
