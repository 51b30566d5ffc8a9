"""Running a board's queries the way Grafana would, against a real Prometheus: variables resolved
from label_values() queries in order (All = the variable's allValue, a single-value variable =
the first value or the one asked for), then each target sent as an instant or range query.

The preview page (grafana/preview/preview.js) resolves variables by the same rules, so the
screenshot shows what these tests checked.

Owns: the HTTP calls to Prometheus' query API. Never does: start or stop a server.
"""

from __future__ import annotations

import datetime
import json
import time
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from tests.grafana.promql import label_values, substitute


@dataclass(frozen=True, slots=True)
class Window:
    start: float
    end: float
    step: float
    scrape_seconds: float

    def values(self) -> dict[str, str]:
        """Grafana's built-in variables for this window: $__range and $__rate_interval
        (max($__interval + scrape interval, 4 x scrape interval), as Grafana computes it)."""
        rate = max(self.step + self.scrape_seconds, 4 * self.scrape_seconds)
        return {"__range": f"{round(self.end - self.start)}s", "__rate_interval": f"{rate:g}s"}


class Prometheus:
    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    def get(self, path: str, **params: str) -> Any:
        query = urllib.parse.urlencode(params)
        request = f"{self.url}{path}?{query}"
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback http
            body = json.loads(response.read())
        if body.get("status") != "success":
            raise RuntimeError(f"{path} {params}: {body}")
        return body["data"]

    def label_values(self, selector: str, label: str) -> list[str]:
        return sorted(self.get(f"/api/v1/label/{label}/values", **{"match[]": selector}))

    def scrape_seconds(self, job: str = "headsetd") -> float:
        """The job's scrape interval, from the server's own configuration."""
        config = yaml.safe_load(self.get("/api/v1/status/config")["yaml"])
        default = config.get("global", {}).get("scrape_interval", "1m")
        for scrape in config["scrape_configs"]:
            if scrape["job_name"] == job:
                return seconds(scrape.get("scrape_interval", default))
        return seconds(default)

    def started(self) -> float:
        """When the server started (its data begins there), as a Unix time."""
        text = self.get("/api/v1/status/runtimeinfo")["startTime"]
        return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()

    def window(self, minutes: float = 5, points: int = 150) -> Window:
        """The last `minutes`, or less when the server has not run that long (whole seconds:
        query_range steps then land on whole seconds, as the preview page assumes)."""
        end = float(int(time.time()))
        start = float(int(max(end - minutes * 60, self.started())))
        return Window(start, end, max(1.0, round((end - start) / points)), self.scrape_seconds())

    def run(self, expr: str, *, instant: bool, window: Window) -> list[dict[str, Any]]:
        if instant:
            data = self.get("/api/v1/query", query=expr, time=f"{window.end:.3f}")
        else:
            data = self.get(
                "/api/v1/query_range",
                query=expr,
                start=f"{window.start:.3f}",
                end=f"{window.end:.3f}",
                step=f"{window.step:g}",
            )
        return list(data["result"])


def seconds(duration: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    for unit in ("ms", "s", "m", "h", "d"):
        if duration.endswith(unit) and duration[: -len(unit)].isdigit():
            return int(duration[: -len(unit)]) * units[unit]
    raise ValueError(f"unsupported duration {duration!r}")


def variables(
    model: Mapping[str, Any], prometheus: Prometheus, chosen: Mapping[str, str]
) -> dict[str, tuple[str, list[str]]]:
    """Each query variable's value and options, in order, as Grafana resolves them on load."""
    resolved: dict[str, tuple[str, list[str]]] = {}
    for variable in model["templating"]["list"]:
        if variable["type"] != "query":
            continue
        name = variable["name"]
        selector, label = label_values(variable["query"])
        values = {key: value for key, (value, _options) in resolved.items()}
        options = prometheus.label_values(substitute(selector, values), label)
        wanted = chosen.get(name)
        if wanted is not None and wanted not in options:
            raise LookupError(f"${name}={wanted!r} is not one of {options}")
        if wanted is None and variable.get("includeAll"):
            resolved[name] = (variable["allValue"], options)
        else:
            resolved[name] = (wanted or (options[0] if options else ""), options)
    return resolved


def resolve(
    model: Mapping[str, Any], prometheus: Prometheus, chosen: Mapping[str, str]
) -> dict[str, str]:
    """The values to substitute into the board's queries."""
    return {name: value for name, (value, _) in variables(model, prometheus, chosen).items()}
