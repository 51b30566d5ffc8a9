"""Session fixtures of the e2e stack: one fleet for the whole test session, every tier
started with it (so every tier sees each workstation up before the scenario stops some).

`fleet_stack` starts: the fleet's daemons, with a real PulseAudio and a stand-in softphone
for each workstation that has an audio server (headsetd/simaudio.py); Prometheus +
Alertmanager (with a webhook sink) as the single tier; and, when Debian's victoria-metrics is
installed, the remote-write tiers (a Prometheus agent and vmagent into a central Prometheus;
vmagent also into VictoriaMetrics with vmalert). Durations of the shipped rules are divided by
headsetd.stack.TIME_FACTOR in rendered copies (headsetd.stack.scale_durations); the shipped
files are not touched.

Never: sleep blindly (everything waits on a condition with a deadline), or leave a process
behind (the stack stops them all at the end of the session).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from headsetd import simaudio
from headsetd import stack as s
from headsetd.scenario import SCENARIO, Scenario
from tests.conftest import require_tool

ALERTS_DEADLINE_SECONDS = 150.0  # the scenario's alerts all fire within ~60 s of t=0
FIRED_WINDOW = "30m"  # "has fired during the session": longer than any session


@dataclass
class FleetStack:
    scenario: Scenario
    stack: s.Stack
    fleet: s.Fleet
    single: s.SingleTier
    sink: s.WebhookSink  # Alertmanager's receivers
    remote: s.RemoteWriteTiers | None  # None without Debian's victoria-metrics
    vmalert_sink: s.WebhookSink  # vmalert's notifier

    def age(self) -> float:
        return time.time() - self.fleet.started_at


@dataclass(frozen=True)
class FleetPrometheus:
    """The interface other tests use: a Prometheus with the scenario's data and rules."""

    url: str
    scenario: Scenario


def fired(url: str, by: str = "") -> set[tuple[str, ...]]:
    """(alert name, workstation or site[, by-label]) of every alert that has fired at `url`
    (ALERTS, as Prometheus and vmalert write it) during the session."""
    extra = f", {by}" if by else ""
    rows = s.query(
        url,
        f"group by (alertname, workstation, site{extra}) "
        f'(max_over_time(ALERTS{{alertstate="firing"}}[{FIRED_WINDOW}]))',
    )
    keys = set()
    for row in rows:
        labels = row["metric"]
        key = (labels["alertname"], labels.get("workstation") or labels.get("site", ""))
        keys.add((*key, labels.get(by, "")) if by else key)
    return keys


def wait_until_fired(url: str, want: set[tuple[str, ...]], by: str = "") -> set[tuple[str, ...]]:
    """Poll until every alert in `want` has fired at `url`; return what has fired."""

    def check() -> set[tuple[str, ...]] | None:
        got = fired(url, by)
        return got if want <= got else None

    try:
        return s.wait_for(check, ALERTS_DEADLINE_SECONDS, f"alerts {sorted(want)} at {url}")
    except s.StackError as exc:
        raise AssertionError(f"{exc}; fired: {sorted(fired(url, by))}") from None


@pytest.fixture(scope="session")
def fleet_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FleetStack]:
    require_tool("prometheus")
    require_tool("prometheus-alertmanager")
    for tool in simaudio.TOOLS["pulseaudio"]:
        require_tool(tool)
    remote_tools = all(s.tool(name) for name in ("vmagent", "victoria-metrics", "vmalert"))
    workdir = Path(tmp_path_factory.mktemp("stack"))
    sink = s.WebhookSink().start()
    vmalert_sink = s.WebhookSink().start()
    stack = s.Stack(workdir)
    try:
        fleet = s.start_fleet(stack, SCENARIO)
        single = s.start_single_tier(stack, fleet, sink.url)
        remote = None
        if remote_tools:
            remote = s.start_remote_write_tiers(stack, fleet, single.rule_files, vmalert_sink.url)
        stack.wait_ready(stack.services)
        s.go(stack, fleet)
        yield FleetStack(SCENARIO, stack, fleet, single, sink, remote, vmalert_sink)
    finally:
        stack.close()
        sink.close()
        vmalert_sink.close()


@pytest.fixture(scope="session")
def fleet_prometheus(fleet_stack: FleetStack) -> FleetPrometheus:
    """Prometheus of the single tier, once every alert of the scenario has fired there."""
    url = fleet_stack.single.prometheus.url
    wait_until_fired(url, set(fleet_stack.scenario.expected()))
    return FleetPrometheus(url, fleet_stack.scenario)
