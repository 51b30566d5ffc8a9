"""PromQL of the Grafana boards, as Grafana would send it: variables substituted, then parsed
(promql-parser) and walked for metric names, job matchers and range windows.

(No __init__.py in tests/grafana/: with one, pytest's rootdir-relative imports would make this
folder a regular package named `grafana` that shadows the project's grafana/ package.)

Owns: the substitution of $site, $team, $workstation, $instance, $__range, $__rate_interval, the
PromQL walk, and the names that rule files record. Never does: talk to a server.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import promql_parser
import yaml

# Sentinel windows: after substitution, a range of exactly this many seconds came from the
# variable, so the lint can tell `[$__rate_interval]` from a hard-coded `[5m]`.
RATE_INTERVAL_SENTINEL = 7777
RANGE_SENTINEL = 8888
LINT_VALUES = {
    "__rate_interval": f"{RATE_INTERVAL_SENTINEL}s",
    "__range": f"{RANGE_SENTINEL}s",
    "site": ".*",
    "team": ".*",
    "workstation": "ws-lint",
    "instance": "127.0.0.1:1",
}
_VARIABLE = re.compile(r"\$(\w+)|\$\{(\w+)\}")


def substitute(expr: str, values: Mapping[str, str]) -> str:
    """`expr` with each $name / ${name} replaced; an unknown variable is an error."""

    def one(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in values:
            raise KeyError(f"no value for ${name} in {expr!r}")
        return values[name]

    return _VARIABLE.sub(one, expr)


@dataclass(frozen=True, slots=True)
class Selector:
    name: str
    matchers: tuple[tuple[str, str, str], ...]  # (label, op, value)


@dataclass(frozen=True, slots=True)
class Walked:
    selectors: tuple[Selector, ...]
    ranges: tuple[float, ...]  # seconds of every range vector and subquery


def walk(expr: str) -> Walked:
    """Selectors and ranges of a PromQL expression (no Grafana variables left in it)."""
    selectors: list[Selector] = []
    ranges: list[float] = []

    def visit(node: object) -> bool:
        if isinstance(node, promql_parser.VectorSelector):
            matchers = tuple(
                (m.name, str(m.op).rsplit(".", 1)[-1], m.value) for m in node.matchers.matchers
            )
            selectors.append(Selector(node.name or "", matchers))
        elif isinstance(node, promql_parser.MatrixSelector | promql_parser.SubqueryExpr):
            ranges.append(node.range.total_seconds())
        return True

    promql_parser.walk(promql_parser.parse(expr), visit)
    return Walked(tuple(selectors), tuple(ranges))


_LABEL_VALUES = re.compile(r"^label_values\((?P<selector>.+),\s*(?P<label>\w+)\)$")


def label_values(query: str) -> tuple[str, str]:
    """(selector, label) of a Grafana `label_values(selector, label)` variable query."""
    match = _LABEL_VALUES.match(query)
    if match is None:
        raise ValueError(f"not a label_values(selector, label) query: {query!r}")
    return match["selector"], match["label"]


def recording_rule_names(rules: Path) -> frozenset[str]:
    """The series names the rule files in `rules` record."""
    names: set[str] = set()
    for path in sorted(rules.glob("*.yml")):
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            names.update(rule["record"] for rule in group["rules"] if "record" in rule)
    return frozenset(names)
