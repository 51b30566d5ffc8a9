"""The pure per-device transition (`audio_step`), the tally and its rendering, and [audio]."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.openmetrics import exposition as openmetrics
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from headsetd.audio.collect import (
    AudioSnapshot,
    AudioStatus,
    AudioTally,
    render_audio,
    tally_audio,
)
from headsetd.audio.config import AudioConfig, audio_config
from headsetd.audio.model import (
    AudioDefaultChanged,
    AudioEvent,
    AudioFunctionsChanged,
    AudioState,
    AudioTarget,
    CallDeviceMismatchChanged,
    Card,
    DeviceProps,
    DeviceView,
    JackChanged,
    MicInUseChanged,
    MicLevelMeasured,
    MicMutedChanged,
    MicMutedInCallChanged,
    MicSilentEnded,
    MicSilentStarted,
    MicView,
    MicVolumeChanged,
    Peak,
    Port,
    Program,
    ServerState,
    Source,
    SourceOutput,
    SpeakerMutedChanged,
    SpeakerView,
    SpeakerVolumeChanged,
    audio_event_fields,
    audio_step,
    is_recording,
    meter_wanted,
    observe,
)
from headsetd.config import ConfigError
from tests.conftest import GOLDEN

SOFTPHONE = Program("Softphone", "phone", "softphone")
MIC = MicView("alsa_input.usb-hs", False, 1.0, 1.0, ("mono",))
SPEAKER = SpeakerView("alsa_output.usb-hs", False, 0.5)
IDLE = DeviceView(mic=MIC, speaker=SPEAKER, mic_default=True, speaker_default=True)
IN_CALL = replace(IDLE, recorders=(SOFTPHONE,), off_hook=True)
DEFAULT = AudioConfig()


def run(
    observations: Iterable[tuple[float, DeviceView | Peak]],
    config: AudioConfig = DEFAULT,
    state: AudioState | None = None,
) -> tuple[AudioState, list[tuple[float, AudioEvent]]]:
    state = state or AudioState()
    out: list[tuple[float, AudioEvent]] = []
    for now, obs in observations:
        state, events = audio_step(state, obs, now, config)
        out.extend((now, e) for e in events)
    return state, out


def kinds(events: list[tuple[float, AudioEvent]]) -> list[str]:
    return [e.event for _, e in events if not isinstance(e, MicLevelMeasured)]


def test_a_headset_appears_then_a_call_records_from_it() -> None:
    _, events = run([(0.0, IDLE), (5.0, IN_CALL)])
    assert [e for _, e in events] == [
        AudioFunctionsChanged("alsa_input.usb-hs", "alsa_output.usb-hs"),
        MicMutedChanged(False),
        MicVolumeChanged(1.0, 0.0, 0.0),
        SpeakerMutedChanged(False),
        SpeakerVolumeChanged(0.5),
        AudioDefaultChanged(True, True),
        MicInUseChanged(True, (SOFTPHONE,)),
        CallDeviceMismatchChanged(False),
    ]


@pytest.mark.parametrize(
    ("dbfs", "level"),
    [
        (-120.0, "silent"),
        (-60.01, "silent"),
        (-60.0, "quiet"),
        (-40.01, "quiet"),
        (-40.0, "low"),
        (-30.01, "low"),
        (-30.0, "speech"),
        (0.0, "speech"),
        (3.0, "speech"),
    ],
)
def test_level_classes_include_their_lower_bound(dbfs: float, level: str) -> None:
    _, events = run([(0.0, IN_CALL), (0.1, Peak(dbfs))])
    assert events[-1][1] == MicLevelMeasured(dbfs, level, 0.1)


def test_thresholds_are_configurable() -> None:
    config = AudioConfig(silent_below_dbfs=-70.0, quiet_below_dbfs=-50.0, low_below_dbfs=-20.0)
    _, events = run([(0.0, IN_CALL), (0.1, Peak(-65.0)), (0.2, Peak(-25.0))], config)
    assert [e.level for _, e in events if isinstance(e, MicLevelMeasured)] == ["quiet", "low"]


def test_peaks_count_the_time_they_stand_for() -> None:
    """The first peak of a call is one 100 ms window; then the time since the last peak
    (PipeWire delivers ~11.7 a second), and a gap counts at most 0.5 s."""
    _, events = run([(0.0, IN_CALL), (1.0, Peak(-20)), (1.085, Peak(-20)), (9.0, Peak(-20))])
    seconds = [e.seconds for _, e in events if isinstance(e, MicLevelMeasured)]
    assert seconds == pytest.approx([0.1, 0.085, 0.5])


def test_peaks_while_nobody_records_are_dropped() -> None:
    _, events = run([(0.0, IDLE), (0.1, Peak(-20.0))])
    assert not any(isinstance(e, MicLevelMeasured) for _, e in events)


def silent_call(seconds: float, start: float = 1.0) -> Iterator[tuple[float, Peak]]:
    for i in range(round(seconds * 10)):
        yield start + (i + 1) / 10, Peak(-120.0)


def test_silence_is_debounced_and_ends_on_sound() -> None:
    state, events = run([(0.0, IN_CALL), *silent_call(29.9)])
    assert "mic_silent_started" not in kinds(events)
    state, events = run([*silent_call(0.1, start=30.9), (31.1, Peak(-75.0))], state=state)
    started = [e for _, e in events if isinstance(e, MicSilentStarted)]
    assert len(started) == 1
    assert started[0].seconds == pytest.approx(30.0)
    assert kinds(events) == ["mic_silent_started"]
    _, events = run([(31.2, Peak(-45.0))], state=state)
    assert [e for _, e in events if isinstance(e, MicSilentEnded)] == [
        MicSilentEnded(pytest.approx(30.1), "sound")
    ]


def test_silence_ends_when_the_call_stops_recording() -> None:
    state, _ = run([(0.0, IN_CALL), *silent_call(31.0)])
    assert state.silent
    state, events = run([(40.0, replace(IDLE, off_hook=False))], state=state)
    assert kinds(events) == ["mic_in_use_changed", "mic_silent_ended"]
    assert not state.silent
    assert state.silent_for == 0.0
    # The next call starts its silence count from zero.
    state, events = run([(50.0, IN_CALL), *silent_call(29.0, start=50.0)], state=state)
    assert "mic_silent_started" not in kinds(events)


def test_muted_in_call_by_hook_or_by_recording() -> None:
    muted = replace(MIC, muted=True)
    _, events = run([(0.0, IDLE), (1.0, replace(IDLE, mic=muted, off_hook=True))])
    assert MicMutedInCallChanged(True) in [e for _, e in events]
    _, events = run([(0.0, replace(IDLE, mic=muted, recorders=(SOFTPHONE,)))])
    assert MicMutedInCallChanged(True) in [e for _, e in events]
    _, events = run([(0.0, replace(IDLE, mic=muted, off_hook=False))])
    assert "mic_muted_in_call_changed" not in kinds(events)


def test_mismatch_needs_a_known_hook_state() -> None:
    elsewhere = replace(IDLE, elsewhere=(SOFTPHONE,))
    cases = [
        (replace(elsewhere, off_hook=None), None),
        (replace(elsewhere, off_hook=False), False),
        (replace(elsewhere, off_hook=True), True),
        # Recording from the headset too: the call is on the headset.
        (replace(elsewhere, off_hook=True, recorders=(SOFTPHONE,)), False),
        # Off-hook with nobody recording anywhere (ringing, held): no mismatch.
        (replace(IDLE, off_hook=True), False),
    ]
    for view, expected in cases:
        state, events = run([(0.0, view)])
        assert state.mismatch is expected, view
    state, events = run([(0.0, replace(elsewhere, off_hook=True))])
    assert CallDeviceMismatchChanged(True, (SOFTPHONE,)) in [e for _, e in events]


def test_unplugged_in_a_call_closes_everything() -> None:
    state, _ = run([(0.0, IN_CALL), (0.1, Peak(-20.0))])
    state, events = run([(1.0, DeviceView(off_hook=True))], state=state)
    assert [e for _, e in events] == [
        MicInUseChanged(False),
        AudioFunctionsChanged(None, None),
    ]
    assert state.last_peak_at is None


def test_jacks_come_and_go() -> None:
    plugged = DeviceView(jacks=(("analog-input-headset-mic", True),))
    unplugged = DeviceView(jacks=(("analog-input-headset-mic", False),))
    _, events = run([(0.0, plugged), (1.0, unplugged), (2.0, DeviceView())])
    assert [e for _, e in events] == [
        JackChanged("analog-input-headset-mic", True),
        JackChanged("analog-input-headset-mic", False),
        JackChanged("analog-input-headset-mic", None),
    ]


def test_in_use_rule() -> None:
    base = SourceOutput(1, 7, client=12)
    assert is_recording(base)
    assert not is_recording(replace(base, client=0xFFFFFFFF))  # a module's own stream
    assert not is_recording(replace(base, corked=True))  # a held call
    assert not is_recording(replace(base, resample_method="peaks"))  # a meter on PulseAudio
    assert not is_recording(replace(base, stream_monitor=True))  # a meter on PipeWire
    for mixer in (
        "org.PulseAudio.pavucontrol",
        "org.gnome.VolumeControl",
        "org.kde.kmixd",
        "org.kde.plasma-pa",
        "org.headsetd.LevelMeter",
    ):
        assert not is_recording(replace(base, application_id=mixer))


def usb(vid: int, pid: int, port: str) -> DeviceProps:
    return DeviceProps("usb", f"pci-0000:00:14.0-usb-0:{port}:1.0", "", vid, pid, "")


def test_observe_two_headsets_a_laptop_mic_and_an_onboard_card() -> None:
    hs1 = Source(1, "hs1", device=usb(0x0B0E, 0x0307, "1"))
    hs2 = Source(2, "hs2", device=usb(0x0B0E, 0x0307, "2"))
    laptop = Source(3, "laptop", device=DeviceProps("pci", "pci-0000:00:1f.3"), card=9)
    monitor = Source(4, "hs1.monitor", monitor=True, device=usb(0x0B0E, 0x0307, "1"))
    hda = Card(
        9,
        "alsa_card.pci-0000_00_1f.3",
        DeviceProps("pci", "pci-0000:00:1f.3", card_name="HDA Intel PCH"),
        (
            Port("analog-input-headset-mic", "Headset Microphone", False, "input"),
            Port("analog-output-headphones", "Headphones", True, "output"),
            Port("analog-input-internal-mic", "Internal Microphone", None, "input"),
            Port("hdmi-output-0", "HDMI / DisplayPort", True, "output"),
        ),
    )
    state = ServerState(
        sources=(hs1, hs2, laptop, monitor),
        source_outputs=(
            SourceOutput(1, 3, client=5, program=SOFTPHONE),  # the call, on the laptop mic
            SourceOutput(2, 4, client=6, program=Program("OBS")),  # desktop audio: no mic
            SourceOutput(3, 1, client=7, resample_method="peaks"),  # a meter
        ),
        cards=(hda,),
        default_source="hs2",
    )
    targets = [
        AudioTarget(
            "a",
            bus_path="pci-0000:00:14.0-usb-0:1",
            vendor_id=0x0B0E,
            product_id=0x0307,
            off_hook=True,
        ),
        AudioTarget(
            "b",
            bus_path="pci-0000:00:14.0-usb-0:2",
            vendor_id=0x0B0E,
            product_id=0x0307,
            off_hook=False,
        ),
    ]
    views = observe(state, targets)
    assert set(views) == {"a", "b", "card:pci-0000_00_1f.3"}
    assert views["a"].mic == MicView("hs1", False, 1.0, 1.0, ("mono",))
    assert views["a"].recorders == ()
    assert views["a"].elsewhere == (SOFTPHONE,)
    assert not views["a"].mic_default
    assert views["b"].mic_default
    assert views["card:pci-0000_00_1f.3"].jacks == (
        ("analog-input-headset-mic", False),
        ("analog-output-headphones", True),
    )
    assert meter_wanted(views) == {}
    _, events = run([(0.0, views["a"])])
    assert CallDeviceMismatchChanged(True, (SOFTPHONE,)) in [e for _, e in events]
    # The softphone moves to headset a: it is in use, metered, and nothing is amiss.
    moved = replace(state, source_outputs=(replace(state.source_outputs[0], source=1),))
    views = observe(moved, targets)
    assert views["a"].in_use
    assert views["a"].elsewhere == ()
    assert views["b"].elsewhere == (SOFTPHONE,)
    assert meter_wanted(views) == {"a": ("hs1", ("mono",))}


def test_no_server_means_nothing_known() -> None:
    views = observe(None, [AudioTarget("a", off_hook=True)])
    assert views == {"a": DeviceView()}


def test_log_fields_leave_out_levels_and_sanitise_strings() -> None:
    assert audio_event_fields(MicLevelMeasured(-20.0, "speech", 0.1)) is None
    fields = audio_event_fields(MicInUseChanged(True, (Program("Soft\nphone", "phone", "x"),)))
    assert fields == {
        "event": "mic_in_use_changed",
        "in_use": True,
        "programs": [{"name": "Soft phone", "role": "phone", "binary": "x"}],
    }
    fields = audio_event_fields(MicVolumeChanged(0.5, -18.0617997, 0.0))
    assert fields == {"event": "mic_volume_changed", "ratio": 0.5, "db": -18.06, "base_db": 0.0}


# --- tally and rendering ---


def scenario() -> dict[str, AudioTally]:
    """A headset through a call (speech, a quiet stretch, a muted stretch, silence), a second
    one idle and not the default, an onboard card's jacks."""
    timeline: list[tuple[float, DeviceView | Peak]] = [(0.0, IDLE), (10.0, IN_CALL)]
    timeline += [(10.0 + (i + 1) / 10, Peak(-12.0)) for i in range(50)]
    timeline += [(15.0 + (i + 1) / 10, Peak(-45.0)) for i in range(20)]
    timeline += [(17.0, replace(IN_CALL, mic=replace(MIC, muted=True)))]
    timeline += [(17.0 + (i + 1) / 10, Peak(-120.0)) for i in range(30)]
    timeline += [(20.0, replace(IDLE, mic=replace(MIC, muted=True), off_hook=False))]
    tallies: dict[str, AudioTally] = {}
    for device_id, observations in (
        ("0b0e:0307:A1", timeline),
        ("047f:c058:B2", [(0.0, replace(IDLE, mic_default=False, speaker_default=False))]),
        ("card:pci-0000_00_1f.3", [(0.0, DeviceView(jacks=(("analog-output-headphones", True),)))]),
    ):
        tally = AudioTally()
        for now, event in run(observations)[1]:
            tally = tally_audio(tally, event, now)
        tallies[device_id] = tally
    return tallies


def render(
    tallies: dict[str, AudioTally],
    now: float,
    status: AudioStatus,
    exposition: Callable[[CollectorRegistry], bytes] = generate_latest,
) -> bytes:
    snapshot = AudioSnapshot(now, status, tuple(sorted(tallies.items())))

    class Collector:
        def describe(self) -> list[Metric]:
            return []

        def collect(self) -> Iterator[Metric]:
            return render_audio(snapshot)

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Collector())
    return exposition(registry)


def test_tally_seconds_and_histogram() -> None:
    tally = scenario()["0b0e:0307:A1"]
    assert tally.in_use_seconds_at(100.0) == pytest.approx(10.0)
    assert tally.muted_in_call_seconds_at(100.0) == pytest.approx(3.0)
    assert dict(tally.level_seconds) == pytest.approx({"speech": 5.0, "quiet": 2.0, "silent": 3.0})
    assert sum(tally.peak_counts) == 100
    assert tally.mic_muted is True  # idle after the call, still muted


AUDIO_GOLDEN = GOLDEN / "audio.prom"


def test_rendered_audio_matches_golden_exposition() -> None:
    """tests/golden/audio.prom: every audio family once (promtool-checked with the others);
    HEADSETD_UPDATE_GOLDEN=1 rewrites it."""
    status = AudioStatus(True, {"connection_lost": 1})
    text = render(scenario(), 100.0, status)
    if os.environ.get("HEADSETD_UPDATE_GOLDEN") == "1":
        AUDIO_GOLDEN.write_bytes(text)
    assert text.decode() == AUDIO_GOLDEN.read_text()


def test_the_exposition_is_valid_openmetrics() -> None:
    """Prometheus asks for OpenMetrics first: a strict parser must accept the audio families
    (a histogram with negative buckets may carry no _sum, and so no _count)."""
    text = render(scenario(), 100.0, AudioStatus(True), openmetrics.generate_latest).decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    peaks = families["headsetd_mic_peak_dbfs"]
    inf = [s for s in peaks.samples if s.labels.get("le") == "+Inf"]
    assert [s.value for s in inf] == [0.0, 100.0]


def test_gauges_are_absent_while_unknown() -> None:
    gone = tally_audio(scenario()["0b0e:0307:A1"], AudioFunctionsChanged(None, None), 30.0)
    text = render({"d": gone}, 30.0, AudioStatus()).decode()
    assert "headsetd_audio_server_up 0.0" in text
    for absent in (
        "headsetd_mic_muted{",
        "headsetd_mic_volume_ratio{",
        "headsetd_mic_in_use{",
        "headsetd_speaker_muted{",
        "headsetd_mic_default{",
        "headsetd_jack_connected{",
    ):
        assert absent not in text
    # Counters stay (increase() over an unplug must not see a reset).
    assert 'headsetd_mic_in_use_seconds_total{device="d"} 10.0' in text
    assert 'headsetd_mic_level_seconds_total{device="d",level="speech"} 5.0' in text


def test_no_label_carries_a_server_string() -> None:
    text = render(scenario(), 100.0, AudioStatus(True)).decode()
    for word in ("Softphone", "alsa_input", "alsa_output", 'phone"'):
        assert word not in text


# --- [audio] ---


def test_audio_config_defaults_and_checks() -> None:
    assert audio_config({}, "f") == AudioConfig()
    assert audio_config({"enabled": False}, "f").enabled is False
    custom = audio_config({"silent_below_dbfs": -70, "silence_seconds": 10}, "f")
    assert custom.silent_below_dbfs == -70.0
    assert custom.silence_seconds == 10.0
    bad = [
        {"enabled": "yes"},
        {"silent_below_dbfs": -30},  # not below quiet
        {"low_below_dbfs": 3},
        {"quiet_below_dbfs": True},
        {"silence_seconds": 0},
        {"treshold": 1},
    ]
    for table in bad:
        with pytest.raises(ConfigError, match="f: "):
            audio_config(table, "f")
