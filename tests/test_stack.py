"""End to end: the simulated fleet (headsetd/scenario.py) against real Prometheus 2.42,
Alertmanager 0.25, a Prometheus agent, vmagent, VictoriaMetrics and vmalert (Debian packages),
all with the shipped rule files and Alertmanager configuration, on loopback.

What must hold: exactly the scenario's alerts fire (in Prometheus, and per agent at the
central Prometheus of the two-tier setup, and in VictoriaMetrics through vmalert), exactly the
non-inhibited ones reach Alertmanager's webhook receivers, and a dead agent is itself alerted.
The workstations with an audio server (a real PulseAudio each, headsetd/simaudio.py) meter
their headset's microphone during calls only, in the level class the scenario gives it.
Pending daemon features (headsetd.scenario.PENDING) leave their workstations and alerts out.

The stack is one session fixture (tests/stack/fixtures.py); the tests run in file order and the
last one kills the Prometheus agent. `headsetd demo` is tested as a person would run it.
"""

from __future__ import annotations

import math
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from headsetd import stack as s
from headsetd.audio.config import AudioConfig
from headsetd.scenario import PENDING, SCENARIO, Audio
from tests.conftest import REPO, require_tool
from tests.stack.fixtures import FleetPrometheus, FleetStack, fired, wait_until_fired

# After this long from t=0 every alert of the scenario has been notified with room to spare
# (the slowest, HeadsetdDown: a stop at 12 s + DOWN_FOR/20 = 30 s + group timers): a later
# notification would be one too many.
SETTLE_SECONDS = 60.0


def test_scenario_runs_at_least_20_workstations_and_marks_pending_in_one_place() -> None:
    running = SCENARIO.running()
    assert len(running) >= 20
    assert {ws.needs for ws in SCENARIO.workstations if ws.needs} <= set(PENDING)
    for ws in running:
        for path in ws.replay:
            assert (REPO / path).exists(), f"{ws.name}: {path} is missing"


@pytest.mark.parametrize(
    ("shipped", "rendered"),
    [
        ("    for: 10m  # DOWN_FOR", "    for: 30s  # DOWN_FOR"),
        ("increase(x[10m]) >= 3", "increase(x[30s]) >= 3"),
        ("last_over_time(y[1h])", "last_over_time(y[180s])"),
        ("max_over_time(up[2m])", "max_over_time(up[6s])"),
        ("rate(z[1m])", "rate(z[3s])"),  # no window under MIN_WINDOW_SECONDS
        ("max_over_time(rate(z[5m])[1h:1m])", "max_over_time(rate(z[15s])[180s:3s])"),
        ("    for: 1m30s", "    for: 4500ms"),
        ("annotation: more than 3 minutes", "annotation: more than 3 minutes"),
    ],
)
def test_scale_durations_shortens_for_and_windows_only(shipped: str, rendered: str) -> None:
    assert s.scale_durations(shipped, s.TIME_FACTOR) == rendered


def test_every_workstation_is_scraped_with_site_and_team(
    fleet_prometheus: FleetPrometheus,
) -> None:
    def all_scraped() -> list[dict[str, str]] | None:
        rows = s.query(fleet_prometheus.url, 'max_over_time(up{job="headsetd"}[30m]) == 1')
        return [r["metric"] for r in rows] if len(rows) == len(SCENARIO.running()) else None

    labels = s.wait_for(all_scraped, 30, "every target scraped once")
    workstations = s.query(fleet_prometheus.url, "max_over_time(headsetd_workstation_info[30m])")
    names = {r["metric"]["workstation"]: r["metric"] for r in workstations}
    for ws in SCENARIO.running():
        assert names[ws.name]["site"] == ws.site
        assert names[ws.name]["team"] == ws.team
    assert all({"site", "team", "instance"} <= set(m) for m in labels)


def test_prometheus_fires_exactly_the_expected_alerts(fleet_prometheus: FleetPrometheus) -> None:
    assert fired(fleet_prometheus.url) == set(SCENARIO.expected())


def test_in_call_reads_the_hook_state_of_an_exposition() -> None:
    head = "# TYPE headsetd_device_off_hook gauge\n"
    assert s.in_call(head + 'headsetd_device_off_hook{device="a"} 1.0\n')
    assert not s.in_call(head + 'headsetd_device_off_hook{device="a"} 0.0\n')
    assert not s.in_call(head)  # hook state unknown: no sample, not a call


def expected_level(audio: Audio) -> str:
    """The class of the microphone's 100 ms peaks: the voice's peak less the input volume's
    attenuation on the server's cubic scale (60*log10), or silent."""
    if audio.voice_dbfs is None:
        return "silent"
    return AudioConfig().level_of(audio.voice_dbfs + 60 * math.log10(audio.mic_volume))


def test_audio_workstations_meter_their_calls_in_their_level_class(
    fleet_prometheus: FleetPrometheus, fleet_stack: FleetStack
) -> None:
    """Each audio workstation's daemon found its PulseAudio by PULSE_SERVER and matched the
    replayed headset's source by USB ids (its input volume as set); the softphone recorded
    only during calls; nearly all metered time is in the class the scenario gives its
    microphone. The other workstations export no audio series at all."""
    url = fleet_prometheus.url
    workstation = {t.service.address: t.workstation for t in fleet_stack.fleet.targets}

    def per_workstation(promql: str) -> dict[tuple[str, str], float]:
        return {
            (workstation[r["metric"]["instance"]].name, r["metric"].get("level", "")): float(
                r["value"][1]
            )
            for r in s.query(url, promql)
        }

    audio = {ws.name: ws.audio for ws in SCENARIO.running() if ws.audio is not None}
    up = per_workstation("max_over_time(headsetd_audio_server_up[30m])")
    assert {name for name, _ in up} == set(audio), "audio series only where audio is on"
    levels = per_workstation("max_over_time(headsetd_mic_level_seconds_total[30m])")
    in_use = per_workstation("max_over_time(headsetd_mic_in_use_seconds_total[30m])")
    off_hook = per_workstation("max_over_time(headsetd_device_off_hook_seconds_total[30m])")
    volume = per_workstation("min_over_time(headsetd_mic_volume_ratio[30m])")
    phones = fleet_stack.fleet.softphones
    assert phones is not None
    assert phones.failures == []
    assert phones.calls >= len(audio)
    for name, mic in audio.items():
        metered = sum(v for (ws, _), v in levels.items() if ws == name)
        assert metered > 2.0, f"{name}: its microphone was not metered in a call"
        share = levels[(name, expected_level(mic))] / metered
        assert share > 0.9, f"{name}: {expected_level(mic)} {share:.0%} of {metered:.1f} s"
        # In use only in calls: a softphone opens the mic after the answer and closes it at
        # the hang-up, a poll (SOFTPHONE_POLL_SECONDS) late: up to 1 s of slack per call.
        assert 0 < in_use[(name, "")] <= off_hook[(name, "")] + phones.calls, name
        assert volume[(name, "")] == pytest.approx(mic.mic_volume, abs=0.01), name


def test_alertmanager_notifies_exactly_the_expected_alerts(fleet_stack: FleetStack) -> None:
    want = set(SCENARIO.notified())

    def all_notified() -> bool | None:
        return True if want <= fleet_stack.sink.firing() else None

    s.wait_for(all_notified, 150, f"notifications {sorted(want)}")
    s.wait_for(lambda: True if fleet_stack.age() >= SETTLE_SECONDS else None, 90, "settling")
    assert fleet_stack.sink.firing() == want, "inhibited or unexpected alerts were notified"
    for note in fleet_stack.sink.notifications:
        assert note.receiver != "blackhole"
        assert note.annotations["summary"].endswith(".")
        assert note.annotations["runbook_url"].startswith("prometheus/RUNBOOK.md#alert-name-")
        assert note.key[1] in note.annotations["description"]


def _remote(fleet_stack: FleetStack) -> s.RemoteWriteTiers:
    for name in ("vmagent", "victoria-metrics", "vmalert"):
        require_tool(name)
    assert fleet_stack.remote is not None
    return fleet_stack.remote


def test_two_tier_central_fires_the_same_alerts_for_each_agent(fleet_stack: FleetStack) -> None:
    remote = _remote(fleet_stack)
    expected = set(SCENARIO.expected())
    sites = {(alert, key, "") for alert, key in expected if key in SCENARIO.site_expect}
    want = sites | {
        (alert, key, agent)
        for alert, key in expected
        if key not in SCENARIO.site_expect
        for agent in (remote.AGENT, remote.VMAGENT)
    }
    # Site-wide alerts aggregate over both agents' copies (count by site): no agent label.
    assert wait_until_fired(remote.central.url, want, by="agent") == want


def test_victoria_metrics_and_vmalert_fire_the_same_alerts(fleet_stack: FleetStack) -> None:
    remote = _remote(fleet_stack)
    want = set(SCENARIO.expected())
    assert wait_until_fired(remote.victoria.url, want) == want
    assert fleet_stack.vmalert_sink.notifications, "vmalert sent no notification"


def test_a_dead_agent_is_alerted_at_the_centre(fleet_stack: FleetStack) -> None:
    """Runs last: kills the Prometheus agent. Remote write has no staleness markers, so only
    HeadsetdDown{scope="agent"} says that its data stopped."""
    remote = _remote(fleet_stack)
    fleet_stack.stack.stop(remote.agent, signal.SIGKILL)
    query = (
        'ALERTS{alertname="HeadsetdDown", scope="agent", alertstate="firing", '
        f'agent="{remote.AGENT}"}}'
    )

    def agent_alert() -> list[dict[str, object]] | None:
        rows = s.query(remote.central.url, query)
        return rows or None

    rows = s.wait_for(agent_alert, 60, "HeadsetdDown for the dead agent")
    assert {r["metric"]["severity"] for r in rows} == {"critical"}  # type: ignore[index]
    live = s.query(remote.central.url, f'ALERTS{{scope="agent", agent="{remote.VMAGENT}"}}')
    assert live == [], "the live vmagent was alerted as silent"


DEMO_ALERT = "MicrophoneSilentInCall"  # the microphone's alert: ~15 s after t=0
DEMO_DEADLINE_SECONDS = 90.0


def test_demo_shows_alerts_and_stops_everything_on_ctrl_c(tmp_path: Path) -> None:
    """`headsetd demo` as a person runs it: URLs first, alerts within a minute (the silent
    microphone's among them), Ctrl-C ends it and every process it started: daemons, servers,
    audio servers and the softphones recording in a call."""
    require_tool("prometheus")
    require_tool("prometheus-alertmanager")
    require_tool("pulseaudio")
    demo = subprocess.Popen(
        [sys.executable, "-m", "headsetd.demo", "--workdir", str(tmp_path)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    introduced, seen = threading.Event(), threading.Event()

    def read() -> None:
        assert demo.stdout is not None
        for line in demo.stdout:
            lines.append(line)
            if "Ctrl-C stops everything" in line:
                introduced.set()
            if line.startswith("FIRING") and DEMO_ALERT in line:
                seen.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        # Everything runs once the demo has introduced itself; by the alert some daemons and
        # an audio server are stopped (the scenario's), and softphones record (a call).
        introduced.wait(DEMO_DEADLINE_SECONDS)
        children = {pid: _comm(pid) for pid in _children(demo.pid)}
        shown = seen.wait(DEMO_DEADLINE_SECONDS)
        children |= {pid: _comm(pid) for pid in _children(demo.pid)}
        demo.send_signal(signal.SIGINT)
        demo.wait(30)
        reader.join(10)
    finally:
        if demo.poll() is None:
            demo.kill()
    output = "".join(lines)
    assert shown, f"no {DEMO_ALERT} within {DEMO_DEADLINE_SECONDS:.0f} s:\n{output}"
    assert demo.returncode == 0, output
    assert "Prometheus: http://127.0.0.1:" in output
    assert "Alertmanager: http://127.0.0.1:" in output
    assert "PULSE_SERVER=unix:" in output
    assert len(children) >= len(SCENARIO.running()) + 2
    names = set(children.values())
    assert {"pulseaudio", "parec"} <= names, f"no audio server or softphone among {names}"
    alive = [pid for pid in children if Path(f"/proc/{pid}").exists() and not _zombie(pid)]
    assert alive == [], f"left running: {[(pid, children[pid]) for pid in alive]}"


def _comm(pid: int) -> str:
    try:
        return (Path(f"/proc/{pid}") / "comm").read_text().strip()
    except OSError:
        return ""


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _zombie(pid: int) -> bool:
    try:
        return (Path(f"/proc/{pid}") / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return False
