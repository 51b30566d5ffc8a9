"""The shipped Prometheus rules, Alertmanager configuration and scrape examples (prometheus/),
checked by the real tools and against the daemon's metrics contract.

- promtool check rules, and promtool test rules over every prometheus/tests/*.test.yml (a file
  added there is run with no code change);
- coverage: every alert rule has a firing case and a not-firing case, severity, scope, a static
  summary, a templated description naming the site, and a runbook_url whose anchor exists in
  RUNBOOK.md; the alert names are exactly issue 8's (plus the site-wide one);
- the thresholds named in the alerts file's header agree with the lines tagged with them;
- amtool check-config and every `amtool config routes test` case of
  prometheus/alertmanager.routes-test.yml;
- promtool check config on the examples (--agent for the agent), vmagent/vmalert -dryRun;
- every metric name the rules use is in the daemon's contract: exported by the daemon (the
  golden expositions tests/golden/*.prom and a live /metrics of `headsetd run --replay` with a
  real PulseAudio) or in PENDING below: a unit test only sees the series its author wrote,
  so this is what catches a rule naming `headsetd_device_disconnects` where the daemon serves
  `..._total`.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from headsetd import simaudio
from headsetd import stack as s
from headsetd.scenario import SHIFTS, Audio, Scenario, Workstation
from tests.conftest import GOLDEN, REPO, require_tool

PROMETHEUS = REPO / "prometheus"
RULE_FILES = [PROMETHEUS / "rules" / name for name in s.RULE_FILES]
ALERTS_FILE = PROMETHEUS / "rules" / "headsetd.alerts.yml"
UNIT_TESTS = sorted((PROMETHEUS / "tests").glob("*.test.yml"))
ROUTE_CASES = yaml.safe_load((PROMETHEUS / "alertmanager.routes-test.yml").read_text())
RUNBOOK = PROMETHEUS / "RUNBOOK.md"

ISSUE_ALERTS = {
    "HeadsetDisconnectedInCall",
    "HeadsetDisconnected",
    "HeadsetConnectionFlapping",
    "HeadsetMissing",
    "HeadsetWithoutMicrophone",
    "HeadsetUnapproved",
    "HeadsetUnreadable",
    "MicrophoneSilentInCall",
    "MicrophoneLevelLow",
    "MicrophoneVolumeLow",
    "MicrophoneMutedLong",
    "HeadsetdDown",
    "HeadsetdAudioServerDown",
}
SITE_ALERTS = {"HeadsetdSiteDown"}  # many workstations of a site down; inhibits the rest

# The metrics contract is what the daemon exports (its golden expositions and a live /metrics),
# plus THE pending set: metrics of the contract (issues 6 and 7) the daemon does not export yet.
# When one lands, test_pending_metrics_are_not_exported_yet fails: delete its line here.
PENDING: set[str] = set()  # metrics of the contract the daemon does not export yet: none now
NOT_HEADSETD = {"up", "ALERTS"}  # written by Prometheus itself
# A metric name, not part of a recording rule's name (level:metric:operations).
_METRIC = re.compile(r"(?<![\w:])(headsetd_[a-z0-9_]+|up|ALERTS)(?![\w:])")


def _rules() -> Iterator[dict[str, Any]]:
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            yield from group["rules"]


ALERT_RULES = [r for r in _rules() if "alert" in r]


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=False, cwd=REPO)


# --- the real tools ------------------------------------------------------------------------


def test_promtool_check_rules() -> None:
    result = _run(require_tool("promtool"), "check", "rules", *map(str, RULE_FILES))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", UNIT_TESTS, ids=[p.name for p in UNIT_TESTS])
def test_promtool_unit_tests(path: Path) -> None:
    result = _run(require_tool("promtool"), "test", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_vmalert_accepts_the_rules() -> None:
    """The same files run on VictoriaMetrics (vmalert 1.79 rejects keep_firing_for, say)."""
    argv = [require_tool("vmalert"), "-dryRun", *(f"-rule={p}" for p in RULE_FILES)]
    result = _run(*argv)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(("config", "agent"), [("central.yml", False), ("agent.yml", True)])
def test_promtool_checks_the_example_configs(config: str, agent: bool) -> None:
    argv = [require_tool("promtool"), "check", "config", *(["--agent"] if agent else [])]
    result = _run(*argv, str(PROMETHEUS / "examples" / config))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("config", ["vmagent.yml", "vmagent-workstation.yml"])
def test_vmagent_checks_the_example_configs(config: str) -> None:
    path = PROMETHEUS / "examples" / config
    result = _run(require_tool("vmagent"), f"-promscrape.config={path}", "-dryRun")
    assert result.returncode == 0, result.stdout + result.stderr


def test_amtool_check_config() -> None:
    config = PROMETHEUS / "alertmanager.yml"
    result = _run(require_tool("amtool"), "check-config", str(config))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    "case",
    ROUTE_CASES,
    ids=[f"{c['labels']['alertname']}-{c['labels']['site']}" for c in ROUTE_CASES],
)
def test_alertmanager_routes(case: dict[str, Any]) -> None:
    labels = [f"{k}={v}" for k, v in case["labels"].items()]
    result = _run(
        require_tool("amtool"),
        "config",
        "routes",
        "test",
        f"--config.file={PROMETHEUS / 'alertmanager.yml'}",
        f"--verify.receivers={','.join(case['receivers'])}",
        *labels,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- coverage and style of the alerts ------------------------------------------------------


def test_alert_names_are_the_issues() -> None:
    assert {r["alert"] for r in ALERT_RULES} == ISSUE_ALERTS | SITE_ALERTS


@pytest.mark.parametrize("rule", ALERT_RULES, ids=[r["alert"] for r in ALERT_RULES])
def test_alert_has_severity_scope_and_annotations(rule: dict[str, Any]) -> None:
    labels, notes = rule["labels"], rule["annotations"]
    assert labels["severity"] in {"critical", "warning", "info"}
    assert labels["scope"] in {"workstation", "site", "agent"}
    assert "{{" not in notes["summary"], "summary is static: shared by a notification group"
    assert notes["summary"].endswith(".")
    assert "$labels.site" in notes["description"]
    if labels["scope"] == "workstation":
        assert "$labels.workstation" in notes["description"]
        if "device" in rule["expr"] and "instance_device:headsetd_device_info" in rule["expr"]:
            assert "$labels.product" in notes["description"], "name the device model"
    anchor = f"prometheus/RUNBOOK.md#alert-name-{rule['alert'].lower()}"
    assert notes["runbook_url"] == anchor


def _slug(heading: str) -> str:
    """GitHub's anchor of a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_every_runbook_url_anchor_exists() -> None:
    anchors = {
        _slug(line.lstrip("#")) for line in RUNBOOK.read_text().splitlines() if line[:2] == "##"
    }
    for rule in ALERT_RULES:
        assert rule["annotations"]["runbook_url"].split("#")[1] in anchors, rule["alert"]


def _cases() -> Iterator[tuple[str, dict[str, Any]]]:
    for path in UNIT_TESTS:
        for group in yaml.safe_load(path.read_text())["tests"]:
            for case in group.get("alert_rule_test", []):
                yield path.name, case


def test_every_alert_rule_has_a_firing_and_a_not_firing_case() -> None:
    firing: set[tuple[str, str]] = set()
    quiet: set[str] = set()
    for _, case in _cases():
        if case.get("exp_alerts"):
            firing |= {(case["alertname"], a["exp_labels"]["scope"]) for a in case["exp_alerts"]}
        else:
            quiet.add(case["alertname"])
    rules = {(r["alert"], r["labels"]["scope"]) for r in ALERT_RULES}
    assert rules - firing == set(), "alert rules without a case where they fire"
    assert {name for name, _ in rules} - quiet == set(), "alerts without a not-firing case"


# --- named thresholds ------------------------------------------------------------------------


def _thresholds() -> dict[str, str]:
    """NAME -> value from the alerts file's header table."""
    table = {}
    for line in ALERTS_FILE.read_text().splitlines():
        if not line.startswith("#"):
            break
        match = re.match(r"#\s{3}([A-Z][A-Z_]+)\s+(\S+)\s", line)
        if match:
            table[match.group(1)] = match.group(2)
    return table


def test_thresholds_are_named_and_used_as_documented() -> None:
    table = _thresholds()
    assert len(table) >= 20
    used = set()
    body = ALERTS_FILE.read_text().split("groups:", 1)[1]
    for line in body.splitlines():
        if line.lstrip().startswith("#"):
            continue  # prose, not a tagged value
        code, sep, comment = line.partition("  # ")
        names = re.findall(r"\b[A-Z][A-Z_]{3,}\b", comment) if sep else []
        for name in names:
            assert name in table, f"{name} is tagged but not in the header: {line.strip()}"
            value = re.escape(table[name])
            assert re.search(rf"(?<![\w.]){value}(?![\w.])", code), f"{name}={table[name]}: {line}"
            used.add(name)
    assert set(table) - used == set(), "thresholds documented but never tagged"


# --- the metrics contract --------------------------------------------------------------------


def _exposed(text: str) -> set[str]:
    names = set()
    for family in text_string_to_metric_families(text):
        names |= {sample.name for sample in family.samples}
        names.add(family.name + ("_total" if family.type == "counter" else ""))
    return names


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """Every metric name the daemon exports: the golden expositions plus a live /metrics of
    `headsetd run --replay` (devices of three shapes: hook and mute, buttons, a reject) with
    a real PulseAudio whose headset source the first device matches (the audio families)."""
    for tool in simaudio.TOOLS["pulseaudio"]:
        require_tool(tool)
    names: set[str] = set()
    for golden in GOLDEN.glob("*.prom"):
        names |= _exposed(golden.read_text())
    replay = (
        SHIFTS[0],
        "tests/recordings/epos_impact-d_1395-00a9_buttons.hid",
        "tests/recordings/yealink_wh66_6993-b02b_truncated.hid",
    )
    ws = Workstation("ws-contract", "ber1", "support", "exports its metrics", replay, audio=Audio())
    with s.Stack(tmp_path_factory.mktemp("contract")) as stack:
        fleet = s.start_fleet(stack, Scenario((ws,)))
        stack.wait_ready(stack.services)

        def matched() -> str | None:
            body = s.http_get(fleet.targets[0].service.url + "/metrics")
            text = body.decode() if body is not None else ""
            return text if "headsetd_mic_volume_ratio{" in text else None

        text = s.wait_for(matched, 30, "the headset's source matched")
    return names | _exposed(text)


def _rule_metrics() -> set[str]:
    return {name for rule in _rules() for name in _METRIC.findall(rule["expr"])}


def test_rules_use_exported_or_pending_metrics(exported: set[str]) -> None:
    missing = _rule_metrics() - exported - PENDING - NOT_HEADSETD
    assert missing == set(), "rules use metrics the daemon does not export (a typo?)"


def test_pending_metrics_are_not_exported_yet(exported: set[str]) -> None:
    landed = PENDING & exported
    assert landed == set(), "these metrics landed: delete them from PENDING in this file"
