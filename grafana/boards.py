"""The two headsetd Grafana boards, Fleet and Workstation, as code (grafana-foundation-sdk,
Grafana 11.6 flavour), and what each query is expected to show in the e2e scenario.

Owns: every panel, query, variable and layout of both boards, as frozen records (`Board`,
`Panel`, `Query`) that `dashboard_json()` turns into the committed JSON through the SDK's
builders; and, per query, the reason it returns nothing in the e2e scenario, when it does
(`Query.empty_in_scenario`: data, so the live test and the preview know which empty panel is
expected and why).

Never does: name a datasource uid (every panel, target and variable points at
`${datasource}`), hold alert logic (a "problem" is a firing alert from prometheus/rules, read
through ALERTS or a recording rule), or use a metric outside the contract in README / common.md.
Selectors of headsetd's own series name `job="headsetd"`; rates computed here use
`$__rate_interval`, fixed windows live in the recording rules.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import prometheus, stat, statetimeline, table, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models import prometheus as prometheus_model

PanelKind = Literal["stat", "table", "timeseries", "state-timeline"]

DATASOURCE = model.DataSourceRef(type_val="prometheus", uid="${datasource}")

# Reasons a query is empty in the e2e scenario. A metric of an open issue is empty until the
# daemon exports it (then the test fails and asks for the mark to be removed).
NO_LOGIND = "the test machine runs no logind: headsetd exports no seat sample there"
NO_MUTE_STATE = (
    "no replayed device reports mute as a state (every fixture's Phone Mute is relative)"
)

# Scopes: every headsetd selector carries the job; the Fleet board filters by site and team, the
# Workstation board by the one scrape target (instance) of the chosen workstation.
FLEET = 'job="headsetd", site=~"$site", team=~"$team"'
RULES = 'site=~"$site", team=~"$team"'
ONE = 'job="headsetd", instance="$instance"'

GREEN, RED, ORANGE, BLUE = "green", "red", "orange", "blue"


@dataclass(frozen=True, slots=True)
class Query:
    """One target; stat and table panels read it instant, the others as a range."""

    expr: str
    legend: str = ""
    # Why this query returns no series in the e2e scenario ("" = it must return data there).
    empty_in_scenario: str = ""


@dataclass(frozen=True, slots=True)
class Panel:
    title: str
    kind: PanelKind
    grid: tuple[int, int, int, int]  # x, y, w, h on Grafana's 24-column grid
    queries: tuple[Query, ...]
    description: str = ""
    unit: str = "short"
    # value -> (text, color): state names for 0/1 gauges.
    mappings: tuple[tuple[int, str, str], ...] = ()
    # Threshold steps above the base colour: (from value, color).
    base_color: str = GREEN
    steps: tuple[tuple[float, str], ...] = ()
    bars: bool = False
    stacked: bool = False
    # Tables: label columns hidden, and column renames (merged tables name values "Value #A").
    hide_columns: tuple[str, ...] = ("Time", "__name__", "job")
    rename: tuple[tuple[str, str], ...] = ()
    # A timeseries target drawn as shaded 0/1 spans (calls) rather than a line.
    spans_ref: str = ""

    def ref(self, index: int) -> str:
        return chr(ord("A") + index)

    def targets(self) -> Iterator[tuple[str, Query]]:
        for index, query in enumerate(self.queries):
            yield self.ref(index), query


@dataclass(frozen=True, slots=True)
class Variable:
    name: str
    label: str
    query: str  # label_values(selector, label)
    multi: bool = True  # multi-select with All (= ".*")
    hidden: bool = False


@dataclass(frozen=True, slots=True)
class Board:
    uid: str
    title: str
    description: str
    time_from: str
    variables: tuple[Variable, ...]
    panels: tuple[Panel, ...]
    tags: tuple[str, ...] = field(default=("headsetd",))

    def file_name(self) -> str:
        return f"{self.uid}.json"

    def queries(self) -> Iterator[tuple[int, Panel, str, Query]]:
        """(panel id, panel, refId, query) of every target; ids count from 1 in panel order."""
        for panel_id, panel in enumerate(self.panels, start=1):
            for ref, query in panel.targets():
                yield panel_id, panel, ref, query


SITE = Variable("site", "Site", 'label_values(up{job="headsetd"}, site)')
TEAM = Variable("team", "Team", 'label_values(up{job="headsetd", site=~"$site"}, team)')

CONNECTED_MAP = ((0, "unplugged", RED), (1, "connected", GREEN))
HOOK_MAP = ((0, "on hook", BLUE), (1, "in a call", GREEN))
MUTE_MAP = ((0, "unmuted", GREEN), (1, "muted", ORANGE))
UP_MAP = ((0, "down", RED), (1, "up", GREEN))
ACTIVE_MAP = ((0, "no session", BLUE), (1, "session active", GREEN))


def _unplugs_in_range(selector: str) -> Panel:
    """The top-right stat of both boards: unplugs of the selected devices in the time range."""
    return Panel(
        "Unplugs in the time range",
        "stat",
        (20, 0, 4, 4),
        (
            Query(
                f"round(sum(increase(headsetd_device_disconnects_total{{{selector}}}[$__range])))"
            ),
        ),
        steps=((1, ORANGE),),
    )


def fleet() -> Board:
    """Every workstation of the chosen sites and teams: problems now, trends, models, mic health."""
    alerting = f"site_team:headsetd_workstations_alerting:count{{{RULES}}}"
    firing = f'ALERTS{{alertstate="firing", {RULES}}}'
    return Board(
        uid="headsetd-fleet",
        title="headsetd / Fleet",
        description="Headsets of every workstation: problems now, unplugs, models, mic health.",
        time_from="now-6h",
        variables=(SITE, TEAM),
        panels=(
            Panel(
                "Workstations up",
                "stat",
                (0, 0, 4, 4),
                (Query(f"round(sum(site_team:headsetd_workstations_up:sum{{{RULES}}}))"),),
                "Scrape targets whose headsetd answers.",
            ),
            Panel(
                "Workstations down",
                "stat",
                (4, 0, 4, 4),
                (
                    Query(
                        f"round(sum(site_team:headsetd_workstations:count{{{RULES}}})"
                        f" - sum(site_team:headsetd_workstations_up:sum{{{RULES}}}))"
                    ),
                ),
                "Scrape targets whose headsetd does not answer (up == 0).",
                steps=((1, RED),),
            ),
            Panel(
                "Workstations with a problem",
                "stat",
                (8, 0, 4, 4),
                (Query(f"round(sum({alerting})) or vector(0)"),),
                "Workstations with at least one headset or microphone alert firing.",
                steps=((1, ORANGE),),
            ),
            Panel(
                "Headsets connected",
                "stat",
                (12, 0, 4, 4),
                (Query(f"round(sum(site_team:headsetd_devices_connected:sum{{{RULES}}}))"),),
            ),
            Panel(
                "In a call now",
                "stat",
                (16, 0, 4, 4),
                (Query(f"round(sum(site_team:headsetd_devices_off_hook:sum{{{RULES}}}))"),),
                "Devices off-hook now (a device whose hook state is unknown counts nowhere).",
                base_color=BLUE,
            ),
            _unplugs_in_range(FLEET),
            Panel(
                "Sites and teams",
                "table",
                (0, 4, 10, 8),
                # sum by (site, team) drops __name__, so the merge joins the rows of the five
                # rules (Grafana's table keeps __name__ as a column, and rows differ by it).
                tuple(
                    Query(f"sum by (site, team) ({expr})")
                    for expr in (
                        f"site_team:headsetd_workstations:count{{{RULES}}}",
                        f"site_team:headsetd_workstations_up:sum{{{RULES}}}",
                        f"{alerting} or site_team:headsetd_workstations:count{{{RULES}}} * 0",
                        f"site_team:headsetd_devices_connected:sum{{{RULES}}}",
                        f"site_team:headsetd_devices_off_hook:sum{{{RULES}}}",
                    )
                ),
                "Workstations with a problem now (an alert firing), by site and team.",
                rename=(
                    ("Value #A", "workstations"),
                    ("Value #B", "up"),
                    ("Value #C", "with a problem"),
                    ("Value #D", "headsets connected"),
                    ("Value #E", "in a call"),
                ),
            ),
            Panel(
                "Alerts firing",
                "table",
                (10, 4, 14, 8),
                (Query(firing),),
                "ALERTS from the Prometheus that evaluates prometheus/rules/headsetd.alerts.yml.",
                hide_columns=("Time", "__name__", "alertstate", "Value", "job"),
            ),
            Panel(
                "Unplugs per hour, by site",
                "timeseries",
                (0, 12, 12, 8),
                (
                    Query(
                        "sum by (site) (site_team:headsetd_device_disconnects:rate5m"
                        f"{{{RULES}}}) * 3600",
                        "{{site}}",
                    ),
                    Query(
                        "sum by (site) (site_team:headsetd_device_disconnects_in_call:rate5m"
                        f"{{{RULES}}}) * 3600",
                        "{{site}} in a call",
                    ),
                ),
                "Unplugs per hour (5-minute rate), and those while off-hook.",
            ),
            Panel(
                "Connection alerts firing",
                "timeseries",
                (12, 12, 12, 8),
                (
                    Query(
                        'count by (alertname) (ALERTS{alertstate="firing", alertname=~'
                        '"HeadsetDisconnected|HeadsetDisconnectedInCall|HeadsetConnectionFlapping"'
                        f", {RULES}}})",
                        "{{alertname}}",
                    ),
                ),
                "Headsets unplugged, unplugged in a call, and flapping (>= 3 unplugs in 10 min).",
                bars=True,
                stacked=True,
            ),
            Panel(
                "Models in use",
                "table",
                (0, 20, 12, 8),
                (
                    Query(
                        "sum by (vendor_id, product_id, product) ("
                        f"site_team_model:headsetd_devices_connected:sum{{{RULES}}})"
                    ),
                ),
                "Connected devices per model.",
                rename=(("Value", "connected"),),
            ),
            Panel(
                "Unapproved models in use",
                "table",
                (12, 20, 12, 8),
                (
                    Query(
                        "sum by (vendor_id, product_id, product) ("
                        f"site_team_model:headsetd_devices_unapproved:sum{{{RULES}}}) > 0",
                    ),
                ),
                "Connected devices not on their workstation's approved list.",
                rename=(("Value", "connected"),),
            ),
            Panel(
                "Mic level in calls, share of time",
                "timeseries",
                (0, 28, 12, 8),
                (
                    Query(
                        "sum by (level) (site_team_level:headsetd_mic_level_seconds:rate5m"
                        f"{{{RULES}}}) / ignoring (level) group_left () sum("
                        f"site_team_level:headsetd_mic_level_seconds:rate5m{{{RULES}}})",
                        "{{level}}",
                    ),
                ),
                "While a mic is in use: silent < -60 dBFS, quiet, low, speech > -30 dBFS.",
                unit="percentunit",
                stacked=True,
            ),
            Panel(
                "Microphone alerts firing",
                "timeseries",
                (12, 28, 12, 8),
                (
                    Query(
                        'count by (alertname) (ALERTS{alertstate="firing", alertname=~'
                        f'"Microphone.*|HeadsetWithoutMicrophone", {RULES}}})',
                        "{{alertname}}",
                    ),
                    Query(
                        f"sum(site_team:headsetd_mic_muted_in_call_seconds:rate5m{{{RULES}}})",
                        "share of call time muted",
                    ),
                ),
                "Silent or low mic in calls, muted too long, headphones without a microphone.",
                bars=True,
                stacked=True,
            ),
        ),
    )


def workstation() -> Board:
    """One workstation: its devices, their state over time, unplugs and errors."""
    return Board(
        uid="headsetd-workstation",
        title="headsetd / Workstation",
        description="One workstation's headsets: devices, connection, hook, mute, mic, errors.",
        time_from="now-3h",
        variables=(
            SITE,
            TEAM,
            Variable(
                "workstation",
                "Workstation",
                'label_values(headsetd_workstation_info{job="headsetd", site=~"$site",'
                ' team=~"$team"}, workstation)',
                multi=False,
            ),
            Variable(
                "instance",
                "Scrape target",
                'label_values(headsetd_workstation_info{job="headsetd",'
                ' workstation="$workstation"}, instance)',
                multi=False,
                hidden=True,
            ),
        ),
        panels=(
            Panel("headsetd", "stat", (0, 0, 4, 4), (Query(f"up{{{ONE}}}"),), mappings=UP_MAP),
            Panel(
                "Devices connected",
                "stat",
                (4, 0, 4, 4),
                (Query(f"round(sum(headsetd_device_connected{{{ONE}}}))"),),
            ),
            Panel(
                "In a call",
                "stat",
                (8, 0, 4, 4),
                (Query(f"max(headsetd_device_off_hook{{{ONE}}})"),),
                "Any device off-hook now.",
                mappings=HOOK_MAP,
            ),
            Panel(
                "Seat",
                "stat",
                (12, 0, 4, 4),
                (Query(f"headsetd_workstation_seat_active{{{ONE}}}", empty_in_scenario=NO_LOGIND),),
                "A user session active on seat0 (absent where logind is absent).",
                mappings=ACTIVE_MAP,
            ),
            Panel(
                "Alerts firing",
                "stat",
                (16, 0, 4, 4),
                (Query('count(ALERTS{alertstate="firing", instance="$instance"}) or vector(0)'),),
                steps=((1, ORANGE),),
            ),
            _unplugs_in_range(ONE),
            Panel(
                "Devices",
                "table",
                (0, 4, 24, 6),
                (
                    Query(
                        f"headsetd_device_info{{{ONE}}}"
                        f" * on (instance, device) group_left () headsetd_device_connected{{{ONE}}}"
                    ),
                ),
                "Every device headsetd knows here (kind, model, firmware), plugged in or not.",
                mappings=CONNECTED_MAP,
                hide_columns=("Time", "__name__", "job", "instance", "site", "team"),
                rename=(("Value", "connected"),),
            ),
            Panel(
                "Connected",
                "state-timeline",
                (0, 10, 12, 6),
                (Query(f"headsetd_device_connected{{{ONE}}}", "{{device}}"),),
                mappings=CONNECTED_MAP,
            ),
            Panel(
                "Hook",
                "state-timeline",
                (12, 10, 12, 6),
                (Query(f"headsetd_device_off_hook{{{ONE}}}", "{{device}}"),),
                "No value while the hook state is unknown (before the first report).",
                mappings=HOOK_MAP,
            ),
            Panel(
                "Mute",
                "state-timeline",
                (0, 16, 12, 6),
                (
                    Query(
                        f"headsetd_device_muted{{{ONE}}}",
                        "{{device}} headset",
                        empty_in_scenario=NO_MUTE_STATE,
                    ),
                    Query(
                        f"headsetd_mic_muted{{{ONE}}}",
                        "{{device}} audio server",
                    ),
                ),
                "Mute as a state, from the headset (where it reports one) and the audio server.",
                mappings=MUTE_MAP,
            ),
            Panel(
                "Mute and button presses",
                "timeseries",
                (12, 16, 12, 6),
                (
                    Query(
                        "sum by (device) (increase(headsetd_device_mute_presses_total"
                        f"{{{ONE}}}[$__rate_interval]))",
                        "{{device}} mute",
                    ),
                    Query(
                        "sum by (device, button) (increase(headsetd_device_button_presses_total"
                        f"{{{ONE}}}[$__rate_interval]))",
                        "{{device}} {{button}}",
                    ),
                ),
                "Presses per interval (the softphone owns the mute state).",
                bars=True,
            ),
            Panel(
                "Mic level in calls",
                "timeseries",
                (0, 22, 24, 8),
                (
                    Query(
                        "histogram_quantile(0.5, sum by (device, le) (rate("
                        f"headsetd_mic_peak_dbfs_bucket{{{ONE}}}[$__rate_interval])))",
                        "{{device}} median peak",
                    ),
                    Query(
                        f"headsetd_device_off_hook{{{ONE}}}",
                        "{{device}} in a call",
                    ),
                ),
                "Median 100 ms peak (dBFS) while the mic is in use; shaded: calls (off-hook).",
                unit="dB",
                spans_ref="B",
            ),
            Panel(
                "Unplugs",
                "timeseries",
                (0, 30, 12, 7),
                (
                    Query(
                        "sum by (device) (increase(headsetd_device_disconnects_total"
                        f"{{{ONE}}}[$__rate_interval]))",
                        "{{device}}",
                    ),
                    Query(
                        "sum by (device) (increase(headsetd_device_disconnects_in_call_total"
                        f"{{{ONE}}}[$__rate_interval]))",
                        "{{device}} in a call",
                    ),
                ),
                "Disconnect events per interval.",
                bars=True,
            ),
            Panel(
                "Errors",
                "timeseries",
                (12, 30, 12, 7),
                (
                    Query(
                        "sum by (kind) (increase(headsetd_device_errors_total"
                        f"{{{ONE}}}[$__rate_interval]))",
                        "device {{kind}}",
                    ),
                    Query(
                        "sum by (kind) (increase(headsetd_discovery_errors_total"
                        f"{{{ONE}}}[$__rate_interval]))",
                        "discovery {{kind}}",
                    ),
                    Query(
                        "sum by (kind) (increase(headsetd_audio_errors_total"
                        f"{{{ONE}}}[$__rate_interval]))",
                        "audio {{kind}}",
                    ),
                    Query(
                        f"increase(headsetd_log_errors_total{{{ONE}}}[$__rate_interval])",
                        "log lines lost",
                    ),
                ),
                "Errors per interval: device reads and reports, discovery, audio server, logs.",
                bars=True,
            ),
            Panel(
                "Mic and speaker volume",
                "timeseries",
                (0, 37, 12, 7),
                (
                    Query(
                        f"headsetd_mic_volume_ratio{{{ONE}}}",
                        "{{device}} mic",
                    ),
                    Query(
                        f"headsetd_speaker_volume_ratio{{{ONE}}}",
                        "{{device}} speaker",
                    ),
                ),
                "Input and output volume at the audio server (0-100 %).",
                unit="percentunit",
            ),
            Panel(
                "Devices by kind",
                "table",
                (12, 37, 12, 7),
                (
                    Query(
                        f"headsetd_workstation_devices{{{ONE}}}",
                    ),
                ),
                "Connected devices by kind (headset, headphones, speakerphone, ...).",
                hide_columns=("Time", "__name__", "job", "instance", "site", "team"),
                rename=(("Value", "connected"),),
            ),
        ),
    )


def boards() -> tuple[Board, ...]:
    return (fleet(), workstation())


def _mappings(panel: Panel) -> list[model.ValueMapping]:
    if not panel.mappings:
        return []
    options = {
        str(value): model.ValueMappingResult(text=text, color=color, index=index)
        for index, (value, text, color) in enumerate(panel.mappings)
    }
    return [model.ValueMap(options=options)]


def _thresholds(panel: Panel) -> dash.ThresholdsConfig:
    steps = [model.Threshold(value=None, color=panel.base_color)]
    steps += [model.Threshold(value=value, color=color) for value, color in panel.steps]
    return dash.ThresholdsConfig().mode(model.ThresholdsMode.ABSOLUTE).steps(steps)


def _target(panel: Panel, ref: str, query: Query) -> prometheus.Dataquery:
    target = prometheus.Dataquery().expr(query.expr).ref_id(ref).datasource(DATASOURCE)
    if query.legend:
        target = target.legend_format(query.legend)
    if panel.kind in ("stat", "table"):
        target = target.instant()
        if panel.kind == "table":
            target = target.format(prometheus_model.PromQueryFormat.TABLE)
    else:
        target = target.range()
    return target


def _legend() -> common_builders.VizLegendOptions:
    return (
        common_builders.VizLegendOptions()
        .display_mode(common.LegendDisplayMode.LIST)
        .placement(common.LegendPlacement.BOTTOM)
        .show_legend(True)
        .calcs([])
    )


def _tooltip() -> common_builders.VizTooltipOptions:
    return (
        common_builders.VizTooltipOptions()
        .mode(common.TooltipDisplayMode.MULTI)
        .sort(common.SortOrder.DESCENDING)
    )


def _stat() -> stat.Panel:
    return (
        stat.Panel()
        .graph_mode(common.BigValueGraphMode.NONE)
        .color_mode(common.BigValueColorMode.VALUE)
        .text_mode(common.BigValueTextMode.VALUE)
        .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
    )


def _table(panel: Panel) -> table.Panel:
    builder = table.Panel().show_header(True).cell_height(common.TableCellHeight.SM)
    if len(panel.queries) > 1:
        # One row per label set, a column per query (Grafana names them "Value #<refId>").
        builder = builder.with_transformation(
            model.DataTransformerConfig(id_val="merge", options={})
        )
    organize = {
        "excludeByName": dict.fromkeys(panel.hide_columns, True),
        "renameByName": dict(panel.rename),
    }
    return builder.with_transformation(
        model.DataTransformerConfig(id_val="organize", options=organize)
    )


def _timeseries(panel: Panel) -> timeseries.Panel:
    builder = (
        timeseries.Panel()
        .legend(_legend())
        .tooltip(_tooltip())
        .line_width(1)
        .fill_opacity(60 if panel.bars else 10)
        .draw_style(common.GraphDrawStyle.BARS if panel.bars else common.GraphDrawStyle.LINE)
        .span_nulls(False)
    )
    if panel.stacked:
        builder = builder.stacking(
            common_builders.StackingConfig().mode(common.StackingMode.NORMAL).group("A")
        )
    if panel.spans_ref:
        # The call spans: a 0/1 gauge drawn as shaded steps on a hidden 0-1 axis.
        builder = builder.override_by_query(
            panel.spans_ref,
            [
                model.DynamicConfigValue(id_val="custom.lineInterpolation", value="stepAfter"),
                model.DynamicConfigValue(id_val="custom.fillOpacity", value=15),
                model.DynamicConfigValue(id_val="custom.axisPlacement", value="hidden"),
                model.DynamicConfigValue(id_val="unit", value="none"),
                model.DynamicConfigValue(id_val="max", value=1),
                model.DynamicConfigValue(id_val="min", value=0),
            ],
        )
    return builder


def _state_timeline(panel: Panel) -> statetimeline.Panel:
    return (
        statetimeline.Panel()
        .show_value(common.VisibilityMode.NEVER)
        .row_height(0.8)
        .merge_values(True)
        .legend(_legend())
        .tooltip(_tooltip())
        .fill_opacity(80)
    )


def _panel(panel: Panel, panel_id: int) -> dash.Panel:
    builder: stat.Panel | table.Panel | timeseries.Panel | statetimeline.Panel
    if panel.kind == "stat":
        builder = _stat()
    elif panel.kind == "table":
        builder = _table(panel)
    elif panel.kind == "timeseries":
        builder = _timeseries(panel)
    else:
        builder = _state_timeline(panel)
    x, y, w, h = panel.grid
    builder = (
        builder.id(panel_id)
        .title(panel.title)
        .datasource(DATASOURCE)
        .grid_pos(model.GridPos(h=h, w=w, x=x, y=y))
        .unit(panel.unit)
        .thresholds(_thresholds(panel))
        .mappings(_mappings(panel))
    )
    if panel.description:
        builder = builder.description(panel.description)
    for ref, query in panel.targets():
        builder = builder.with_target(_target(panel, ref, query))
    return builder  # type: ignore[return-value]  # every panel builder builds a dashboard.Panel


def _variable(variable: Variable) -> dash.QueryVariable:
    builder = (
        dash.QueryVariable(variable.name)
        .label(variable.label)
        .datasource(DATASOURCE)
        .query(variable.query)
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(model.VariableSort.ALPHABETICAL_ASC)
        .multi(variable.multi)
        .include_all(variable.multi)
    )
    if variable.multi:
        builder = builder.all_value(".*").current(
            model.VariableOption(selected=True, text=["All"], value=["$__all"])
        )
    if variable.hidden:
        builder = builder.hide(model.VariableHide.HIDE_VARIABLE)
    return builder


def dashboard(board: Board) -> dash.Dashboard:
    builder = (
        dash.Dashboard(board.title)
        .uid(board.uid)
        .description(board.description)
        .tags(list(board.tags))
        .time(board.time_from, "now")
        .refresh("1m")
        .timezone("browser")
        .tooltip(model.DashboardCursorSync.CROSSHAIR)
        .link(
            dash.DashboardLink("headsetd")
            .type(model.DashboardLinkType.DASHBOARDS)
            .tags(["headsetd"])
            .as_dropdown(False)
            .include_vars(True)
            .keep_time(True)
        )
        .with_variable(
            dash.DatasourceVariable("datasource").label("Data source").type("prometheus")
        )
    )
    for variable in board.variables:
        builder = builder.with_variable(_variable(variable))
    for panel_id, panel in enumerate(board.panels, start=1):
        builder = builder.with_panel(_panel(panel, panel_id))
    return builder


def dashboard_json(board: Board) -> str:
    """The committed form: sorted keys, 2-space indent, a final newline (stable diffs)."""
    model_dict = json.loads(JSONEncoder().encode(dashboard(board).build()))
    return json.dumps(model_dict, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
