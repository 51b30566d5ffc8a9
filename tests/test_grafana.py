"""The Grafana boards (grafana/): the committed JSON is what grafana/boards.py generates; each
board validates against Grafana 11.6's dashboard and panel JSON schemas; a lint of datasources,
refIds, job selectors, rate windows and metric names against the contract; every query parsed
and run against a real Prometheus holding the e2e scenario's data; and the preview page
screenshotted by a real headless Chromium, with no console error and no unexplained empty panel.
"""

from __future__ import annotations

import copy
import functools
import http.server
import json
import os
import re
import shutil
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from grafana.boards import Board, boards, dashboard_json
from grafana.build import DASHBOARDS, stale
from tests.conftest import GOLDEN, REPO, require_tool
from tests.grafana.chromium import chromium
from tests.grafana.live import Prometheus, resolve, variables
from tests.grafana.promql import (
    LINT_VALUES,
    RANGE_SENTINEL,
    RATE_INTERVAL_SENTINEL,
    label_values,
    recording_rule_names,
    substitute,
    walk,
)

SCHEMAS = REPO.parent / "shared" / "schemas" / "grafana-dashboard-11.6"
RULES = REPO / "prometheus" / "rules"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}

# Metrics of the contract (common.md) that the daemon does not export yet: ONE set. Boards may
# use them (their queries are marked empty in the scenario); the lead removes a name here when
# its feature lands, and test_pending_metrics_are_not_exported_yet says when.
PENDING: frozenset[str] = frozenset()  # contract metrics not exported yet: none now
# Series that Prometheus itself writes.
PROMETHEUS_SERIES = frozenset({"up", "ALERTS"})
# headsetd's own series carry the scrape job; recording rules and ALERTS are selected by name.
JOB_SCOPED = re.compile(r"^(headsetd_|process_|up$)")

BOARDS = boards()
BOARD_IDS = [board.uid for board in BOARDS]


def committed(board: Board) -> dict[str, Any]:
    return dict(json.loads((DASHBOARDS / board.file_name()).read_text(encoding="utf-8")))


def exported_metrics() -> frozenset[str]:
    """Sample names the daemon exports, from the golden expositions' TYPE lines."""
    names: set[str] = set()
    for path in GOLDEN.glob("*.prom"):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.startswith("# TYPE "):
                _, _, name, kind = line.split(" ", 3)
                suffixes = {
                    "histogram": ("_bucket", "_sum", "_count"),
                    "summary": ("_sum", "_count"),
                }
                names.update([name, *(name + s for s in suffixes.get(kind, ()))])
    return frozenset(names)


def panels(model: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield from model["panels"]


def exprs(model: dict[str, Any]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for panel in panels(model):
        for target in panel["targets"]:
            yield panel, target


# --- generated and current -------------------------------------------------------------------


def test_committed_json_is_current() -> None:
    assert stale() == [], "regenerate with: .venv/bin/python -m grafana.build"


def test_exactly_the_two_boards_are_committed() -> None:
    assert sorted(p.name for p in DASHBOARDS.glob("*.json")) == [
        "headsetd-fleet.json",
        "headsetd-workstation.json",
    ]


def test_generation_is_deterministic() -> None:
    assert [dashboard_json(b) for b in boards()] == [dashboard_json(b) for b in BOARDS]


# --- schema ----------------------------------------------------------------------------------


def load_schema(name: str) -> dict[str, Any]:
    path = SCHEMAS / f"{name}.jsonschema.json"
    if not path.exists():
        message = f"{path} is missing (shared/schemas, see its README)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return dict(json.loads(path.read_text(encoding="utf-8")))


def dashboard_schema() -> dict[str, Any]:
    """The 11.6 dashboard schema with the known gaps our boards meet, mended narrowly:
    - Grafana writes the base threshold step as `"value": null` (the schema's own description
      says so) while the schema types it `number` (shared/schemas/README.md);
    - an override's `matcher.options` and `properties[].value` are `_` (any) in Grafana's CUE,
      but the generated schema says `object`: the SDK's own override_by_query() writes the refId
      string there, and Grafana writes numbers and strings (not in the README yet; found here).
    The README's other gap, an export's `__inputs` block, does not apply: the boards use a
    datasource variable, never `__inputs`, so the schema still rejects one."""
    schema = copy.deepcopy(load_schema("dashboard"))
    definitions = schema["definitions"]
    mended = (
        (definitions["Threshold"]["properties"], "value", {"type": "number"}, ["number", "null"]),
        (definitions["MatcherConfig"]["properties"], "options", {"type": "object"}, None),
        (definitions["DynamicConfigValue"]["properties"], "value", {"type": "object"}, None),
    )
    for properties, name, was, now in mended:
        assert {"type": properties[name].get("type")} == was, f"schema changed: review {name}"
        if now is None:
            del properties[name]["type"]
            properties[name].pop("additionalProperties", None)
        else:
            properties[name]["type"] = now
    return schema


def panel_schema(name: str, definition: str) -> dict[str, Any]:
    schema = load_schema(name)
    return {"$ref": f"#/definitions/{definition}", "definitions": schema["definitions"]}


def validate(instance: object, schema: dict[str, Any]) -> list[str]:
    """Schema errors as 'path: message'. For a panel (anyOf Panel, RowPanel) the errors of the
    branch that came closest, not the opaque 'is not valid under any of the given schemas'."""
    problems = []
    for error in jsonschema.Draft7Validator(schema).iter_errors(instance):
        errors = [error]
        if error.context:
            branches: dict[object, list[jsonschema.ValidationError]] = {}
            for sub in error.context:
                branches.setdefault(sub.relative_schema_path[0], []).append(sub)
            errors = min(branches.values(), key=len)
        problems += [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors]
    return problems


@pytest.mark.parametrize("board", BOARDS, ids=BOARD_IDS)
def test_board_validates_against_the_dashboard_schema(board: Board) -> None:
    model = committed(board)
    assert "__inputs" not in model
    assert validate(model, dashboard_schema()) == []


@pytest.mark.parametrize("board", BOARDS, ids=BOARD_IDS)
def test_panels_validate_against_their_plugin_schemas(board: Board) -> None:
    problems = []
    target_schema = load_schema("prometheus")
    for panel in panels(committed(board)):
        plugin = panel["type"].replace("-", "")  # state-timeline -> statetimeline.jsonschema.json
        where = f"panel {panel['id']} {panel['title']!r}"
        problems += [
            f"{where} options {p}"
            for p in validate(panel["options"], panel_schema(plugin, "Options"))
        ]
        custom = panel["fieldConfig"]["defaults"].get("custom")
        if custom is not None:
            problems += [
                f"{where} custom {p}" for p in validate(custom, panel_schema(plugin, "FieldConfig"))
            ]
        for target in panel["targets"]:
            problems += [f"{where} target {p}" for p in validate(target, target_schema)]
    assert problems == []


def test_the_schema_check_catches_a_broken_board() -> None:
    """The validation is not vacuous: a string gridPos and an unknown panel key are caught."""
    model = committed(BOARDS[0])
    model["panels"][0]["gridPos"]["w"] = "6"
    model["panels"][1]["colour"] = "red"
    problems = validate(model, dashboard_schema())
    assert any("gridPos/w" in p for p in problems)
    assert any("colour" in p for p in problems)


# --- lint ------------------------------------------------------------------------------------


@pytest.mark.parametrize("board", BOARDS, ids=BOARD_IDS)
def test_every_panel_target_and_variable_uses_the_datasource_variable(board: Board) -> None:
    model = committed(board)
    variables = {v["name"]: v for v in model["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for panel, target in exprs(model):
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert target["datasource"] == DATASOURCE, panel["title"]
    for variable in variables.values():
        if variable["type"] == "query":
            assert variable["datasource"] == DATASOURCE, variable["name"]

    def uids(node: object, path: str) -> Iterator[tuple[str, object]]:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "uid":
                    yield path, value
                yield from uids(value, f"{path}/{key}")
        elif isinstance(node, list):
            for index, value in enumerate(node):
                yield from uids(value, f"{path}/{index}")

    # No hard-coded datasource uid anywhere: the only other uid is the board's own.
    assert {(p, u) for p, u in uids(model, "") if u != "${datasource}"} == {("", board.uid)}


@pytest.mark.parametrize("board", BOARDS, ids=BOARD_IDS)
def test_panel_ids_ref_ids_and_layout(board: Board) -> None:
    model = committed(board)
    ids = [panel["id"] for panel in panels(model)]
    assert len(ids) == len(set(ids))
    cells: dict[tuple[int, int], str] = {}
    for panel in panels(model):
        refs = [target["refId"] for target in panel["targets"]]
        assert refs, panel["title"]
        assert all(refs), panel["title"]
        assert len(refs) == len(set(refs)), panel["title"]
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]


def lint_expr(expr: str, panel_type: str, known: frozenset[str]) -> list[str]:
    """What is wrong with one query of a panel of this type (empty: nothing)."""
    walked = walk(substitute(expr, LINT_VALUES))
    problems = []
    for selector in walked.selectors:
        if selector.name not in known:
            problems.append(f"{selector.name!r} is not in the metrics contract or the rules")
        if (
            JOB_SCOPED.match(selector.name)
            and ("job", "Equal", "headsetd") not in selector.matchers
        ):
            problems.append(f'{selector.name} has no job="headsetd" matcher')
    # Graphs follow the zoom ($__rate_interval); stats and tables cover the time range
    # ($__range). Fixed windows (5m, 10m) belong in the recording rules.
    window = (
        RATE_INTERVAL_SENTINEL if panel_type in ("timeseries", "state-timeline") else RANGE_SENTINEL
    )
    problems += [
        f"range [{r:g}s] is not the panel's window variable" for r in walked.ranges if r != window
    ]
    if (
        panel_type == "stat"
        and re.search(r"\b(sum|increase)\(", expr)
        and not expr.startswith("round(")
    ):
        problems.append("a count on a stat panel wants round() (increase() extrapolates)")
    return problems


def known_metrics() -> frozenset[str]:
    return exported_metrics() | PENDING | PROMETHEUS_SERIES | recording_rule_names(RULES)


@pytest.mark.parametrize("board", BOARDS, ids=BOARD_IDS)
def test_every_query_parses_and_passes_the_lint(board: Board) -> None:
    known = known_metrics()
    problems = []
    for panel, target in exprs(committed(board)):
        problems += [
            f"{panel['title']} {target['refId']}: {p}"
            for p in lint_expr(target["expr"], panel["type"], known)
        ]
    for variable in committed(board)["templating"]["list"]:
        if variable["type"] == "query":
            selector, _label = label_values(variable["query"])
            problems += [
                f"variable {variable['name']}: {p}" for p in lint_expr(selector, "table", known)
            ]
    assert problems == []


@pytest.mark.parametrize(
    ("expr", "panel_type", "problem"),
    [
        ('rate(headsetd_device_connects_total{job="headsetd"}[5m])', "timeseries", "range [300s]"),
        ("headsetd_device_connected", "table", 'no job="headsetd"'),
        ('headsetd_device_conected{job="headsetd"}', "table", "not in the metrics contract"),
        (
            'sum(increase(headsetd_device_connects_total{job="headsetd"}[$__range]))',
            "stat",
            "round()",
        ),
    ],
)
def test_the_lint_catches(expr: str, panel_type: str, problem: str) -> None:
    assert any(problem in p for p in lint_expr(expr, panel_type, known_metrics()))


def test_an_unclosed_paren_does_not_parse() -> None:
    with pytest.raises(ValueError, match=r"unclosed|unexpected|EOF|paren"):
        walk('sum(headsetd_device_connected{job="headsetd"}')


def test_pending_metrics_are_not_exported_yet() -> None:
    landed = PENDING & exported_metrics()
    assert not landed, f"exported now: remove {sorted(landed)} from PENDING and their marks"


# --- provisioning ----------------------------------------------------------------------------


def test_provisioning_files() -> None:
    provisioning = REPO / "grafana" / "provisioning"
    datasources = yaml.safe_load((provisioning / "datasources" / "headsetd.yml").read_text())
    assert datasources["apiVersion"] == 1
    (source,) = datasources["datasources"]
    assert source["type"] == "prometheus"
    assert "uid" not in source, "the boards select the datasource by variable"
    providers = yaml.safe_load((provisioning / "dashboards" / "headsetd.yml").read_text())
    (provider,) = providers["providers"]
    assert provider["type"] == "file"
    assert provider["allowUiUpdates"] is False, "boards are generated: edit grafana/boards.py"
    assert Path(provider["options"]["path"]).is_absolute()


# --- live: every query against a Prometheus holding the e2e scenario -------------------------

# (board uid, panel id, refId) -> series returned, per $workstation ("" on the Fleet board).
Outcomes = dict[tuple[str, int, str], dict[str, int]]


def choices(board: Board, prometheus: Prometheus) -> list[dict[str, str]]:
    """Grafana's variable values to try: the Workstation board once per workstation."""
    if not any(v.name == "workstation" for v in board.variables):
        return [{}]
    names = prometheus.label_values('headsetd_workstation_info{job="headsetd"}', "workstation")
    return [{"workstation": name} for name in names]


@pytest.fixture(scope="module")
def outcomes(fleet_prometheus: Any) -> Outcomes:
    prometheus = Prometheus(fleet_prometheus.url)
    window = prometheus.window()
    found: Outcomes = {}
    for board in BOARDS:
        model = committed(board)
        for chosen in choices(board, prometheus):
            values = resolve(model, prometheus, chosen) | window.values()
            for panel, target in exprs(model):
                key = (board.uid, panel["id"], target["refId"])
                expr = substitute(target["expr"], values)
                walk(expr)  # parses, or raises with the position
                series = prometheus.run(expr, instant=target.get("instant", False), window=window)
                found.setdefault(key, {})[chosen.get("workstation", "")] = len(series)
    return found


def richest(board: Board, outcomes: Outcomes) -> str:
    """The $workstation whose own queries fill the most panels (the first by name of those):
    a workstation with a microphone story, since only those have an audio server."""
    per_panel: dict[int, dict[str, int]] = {}
    for panel_id, _panel, ref, _query in board.queries():
        for name, count in outcomes[(board.uid, panel_id, ref)].items():
            per_panel.setdefault(panel_id, {}).setdefault(name, 0)
            per_panel[panel_id][name] += count
    names = sorted({name for counts in per_panel.values() for name in counts})
    return max(names, key=lambda n: sum(1 for c in per_panel.values() if c.get(n, 0) > 0))


@pytest.mark.parametrize("board", BOARDS, ids=BOARD_IDS)
def test_every_query_returns_data_unless_marked_empty(board: Board, outcomes: Outcomes) -> None:
    problems = []
    for panel_id, panel, ref, query in board.queries():
        count = max(outcomes[(board.uid, panel_id, ref)].values())
        if not count and not query.empty_in_scenario:
            problems.append(f"{panel.title} {ref}: no data in the scenario: {query.expr}")
        if count and query.empty_in_scenario:
            problems.append(
                f"{panel.title} {ref}: returns data now: remove its mark "
                f"({query.empty_in_scenario!r})"
            )
    assert problems == []


@pytest.mark.parametrize("board", BOARDS, ids=BOARD_IDS)
def test_every_variable_has_values_in_the_scenario(board: Board, fleet_prometheus: Any) -> None:
    prometheus = Prometheus(fleet_prometheus.url)
    model = committed(board)
    for chosen in choices(board, prometheus):
        for name, (_value, options) in variables(model, prometheus, chosen).items():
            assert options, f"${name} has no values with {chosen}"


# --- the preview page, screenshotted by a real headless Chromium ------------------------------


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """No access log on the test output."""


@pytest.fixture(scope="module")
def preview_server() -> Iterator[str]:
    """grafana/ over HTTP on loopback: the page fetches ../dashboards/ as it would when served."""
    handler = functools.partial(QuietHandler, directory=str(REPO / "grafana"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    thread.join()
    server.server_close()


def keep_artifact(path: Path) -> None:
    print(f"screenshot: {path}")
    artifacts = os.environ.get("HEADSETD_ARTIFACTS")
    if artifacts:
        Path(artifacts).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(artifacts) / path.name)


@pytest.mark.parametrize("board", BOARDS, ids=BOARD_IDS)
def test_preview_draws_every_panel_with_no_console_error(
    board: Board,
    fleet_prometheus: Any,
    preview_server: str,
    outcomes: Outcomes,
    tmp_path: Path,
) -> None:
    executable = require_tool("chromium")
    prometheus = Prometheus(fleet_prometheus.url)
    window = prometheus.window()
    query = {
        "dashboard": f"../dashboards/{board.file_name()}",
        "prometheus": fleet_prometheus.url,
        "from": f"{window.start * 1000:.0f}",
        "to": f"{window.end * 1000:.0f}",
        "scrape": f"{window.scrape_seconds:g}s",
    }
    where = richest(board, outcomes)
    if where:
        query["var-workstation"] = where
    url = f"{preview_server}/preview/index.html?{urllib.parse.urlencode(query)}"
    with chromium(executable) as browser:
        page = browser.open(url, width=1600, height=1000)
        title = page.wait_for("document.title !== 'preview: loading' && document.title", timeout=30)
        report = page.evaluate("window.previewReport")
        shot = tmp_path / f"{board.uid}.png"
        shot.write_bytes(page.screenshot(width=1600))
        problems = list(page.problems)
    keep_artifact(shot)
    assert title == "preview: done", report["errors"]
    assert problems == []
    assert [entry["id"] for entry in report["panels"]] == list(range(1, len(board.panels) + 1))
    empty = [
        f"{entry['title']}: no data, and not every query is marked empty in the scenario"
        for entry, panel in zip(report["panels"], board.panels, strict=True)
        if entry["series"] == 0 and not all(q.empty_in_scenario for q in panel.queries)
    ]
    assert empty == []
