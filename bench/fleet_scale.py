"""Fleet scale: one Prometheus 2.42 scraping 500 and 2,000 headsetd-shaped targets with the
shipped rules, at production intervals.

What it measures, per fleet size:
  - series per workstation: `count({job="headsetd"})` / N (the scraped series, Prometheus'
    own up/scrape_* five included), and the samples of one scrape;
  - scrape duration p99: the 99th percentile over the run of `scrape_duration_seconds` of
    every target, for the real daemons and the recorded-body targets apart;
  - Prometheus RSS: /proc/<pid>/status VmRSS, sampled every 5 s (max and last), and the head
    series in all (recording rules and ALERTS included);
  - rule evaluation time: `prometheus_rule_group_last_duration_seconds` of both shipped
    groups, median and max over the run, and the slowest rules at the end (/api/v1/rules).

How: real `headsetd run --replay` daemons (a 10-minute shift recording, looped) for the first
`--real` targets; the rest are RECORDED targets: one asyncio server in this process listens on
one loopback port per target and serves the /metrics body recorded from a real daemon at the
start, with the workstation name, site and team of that target. A real daemon costs ~29 MB RSS
and Python startup, so a few hundred of them would crowd out the 2-core machine this runs on;
the recorded body gives Prometheus the same series and labels at a fraction of the cost (the
daemon's own scrape cost is what the real ones measure). file_sd labels each target with
site, team and source="daemon"|"recorded". Scrape interval 15 s and rule evaluation 30 s, as
prometheus/examples/central.yml; the shipped rule files, not shortened.

    .venv/bin/python bench/fleet_scale.py [--sizes 500 2000] [--real 100] [--seconds 120]

Run it on an otherwise idle machine: every figure here is a CPU-contention figure too.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from headsetd import stack as s
from headsetd.scenario import SHIFTS, Scenario, Workstation

SCRAPE = "15s"
EVALUATE = "30s"


def site_team(index: int) -> tuple[str, str]:
    """100 workstations per site, 20 per team."""
    return f"site{index // 100:03d}", f"team{index // 20 % 5}"


class RecordedTargets:
    """One asyncio server per port, all in one thread, each serving a recorded /metrics body."""

    def __init__(self, bodies: dict[int, bytes]) -> None:
        self._bodies = bodies
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="recorded", daemon=True)

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(60):
            raise s.StackError("recorded targets did not start")

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        servers = [
            self._loop.run_until_complete(
                asyncio.start_server(self._handler(port), "127.0.0.1", port, backlog=16)
            )
            for port in self._bodies
        ]
        self._ready.set()
        self._loop.run_forever()
        for server in servers:
            server.close()
        tasks = asyncio.all_tasks(self._loop)
        for task in tasks:
            task.cancel()
        self._loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        self._loop.close()

    def _handler(self, port: int) -> Any:
        body = self._bodies[port]
        head = (
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n"
        )

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while await reader.readuntil(b"\r\n\r\n"):  # keep-alive, as Prometheus scrapes
                    writer.write(head + body)
                    await writer.drain()
            except (
                asyncio.IncompleteReadError,
                asyncio.LimitOverrunError,
                asyncio.CancelledError,  # stop(): end quietly, the loop is closing
                ConnectionError,
            ):
                pass
            finally:
                writer.close()

        return serve

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


def personalise(body: str, name: str, site: str, team: str) -> bytes:
    """The recorded body as another workstation would serve it."""
    return re.sub(
        r"^headsetd_workstation_info\{[^}]*\}",
        f'headsetd_workstation_info{{site="{site}",team="{team}",workstation="{name}"}}',
        body,
        flags=re.MULTILINE,
    ).encode()


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def value(url: str, promql: str) -> float:
    rows = s.query(url, promql)
    return float(rows[0]["value"][1]) if rows else float("nan")


def slowest_rules(url: str, count: int = 3) -> str:
    body = s.http_get(f"{url}/api/v1/rules")
    if body is None:
        return "?"
    rules = [r for g in json.loads(body)["data"]["groups"] for r in g["rules"]]
    rules.sort(key=lambda r: -float(r.get("evaluationTime", 0)))
    return ", ".join(
        f"{r['name']} {1000 * float(r['evaluationTime']):.0f} ms" for r in rules[:count]
    )


@dataclass
class Result:
    targets: int
    real: int
    series_per_workstation: float
    samples_per_scrape: float
    head_series: float
    p99_daemon_ms: float
    p99_recorded_ms: float
    rss_max_mb: float
    rss_last_mb: float
    rules_ms: tuple[float, float]  # median and max of the group's evaluations
    alerts_ms: tuple[float, float]
    startup_s: float
    slowest: str  # the slowest rules at the end of the run, from /api/v1/rules
    load: float  # 1-minute load average at the end (other work on the machine)


def run(size: int, real: int, seconds: float, workdir: Path) -> Result:
    real = min(real, size)
    started = time.monotonic()
    with s.Stack(workdir) as stack:
        workstations = []
        for i in range(max(real, 1)):
            site, team = site_team(i)
            workstations.append(Workstation(f"ws{i:05d}", site, team, "", (SHIFTS[i % 3],)))
        fleet = s.start_fleet(stack, Scenario(tuple(workstations)))
        stack.wait_ready(stack.services, timeout=600)
        recorded_body = s.http_get(fleet.targets[0].service.url + "/metrics")
        if recorded_body is None:
            raise s.StackError("could not record a /metrics body")
        daemons = fleet.targets[:real]
        for extra in fleet.targets[real:]:  # --real 0: the one daemon only recorded the body
            stack.stop(extra.service)
        bodies = {}
        groups: dict[tuple[str, str, str], list[str]] = {}
        for t in daemons:
            key = (t.workstation.site, t.workstation.team, "daemon")
            groups.setdefault(key, []).append(t.service.address)
        for i in range(real, size):
            site, team = site_team(i)
            port = stack.ports.take()
            bodies[port] = personalise(recorded_body.decode(), f"ws{i:05d}", site, team)
            groups.setdefault((site, team, "recorded"), []).append(f"127.0.0.1:{port}")
        recorded = RecordedTargets(bodies)
        recorded.start()
        sd = stack.workdir / "targets.json"
        sd.write_text(
            json.dumps(
                [
                    {"targets": a, "labels": {"site": si, "team": te, "source": so}}
                    for (si, te, so), a in sorted(groups.items())
                ]
            )
        )
        prometheus = s.start_prometheus(
            stack,
            "prometheus",
            scrape=[{"job_name": "headsetd", "file_sd_configs": [{"files": [str(sd)]}]}],
            rule_files=s.shipped_rules(),
            interval=SCRAPE,
            evaluation_interval=EVALUATE,
            scrape_itself=True,
        )
        stack.wait_ready([prometheus])
        url = prometheus.url

        def all_up() -> bool | None:
            return True if value(url, 'count(up{job="headsetd"} == 1)') >= size else None

        s.wait_for(all_up, 120, f"{size} targets up")
        startup = time.monotonic() - started
        rss: list[int] = []
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            rss.append(rss_bytes(prometheus.process.pid))
            time.sleep(5)
        window = f"{int(seconds)}s"

        def p99(source: str) -> float:
            return 1000 * value(
                url,
                f"quantile(0.99, quantile_over_time(0.99, "
                f'scrape_duration_seconds{{job="headsetd", source="{source}"}}[{window}]))',
            )

        def group_ms(group: str, quantile: float) -> float:
            return 1000 * value(
                url,
                f"max(quantile_over_time({quantile}, prometheus_rule_group_last_duration_seconds"
                f'{{rule_group=~".*;{group}"}}[{window}]))',
            )

        result = Result(
            targets=size,
            real=real,
            series_per_workstation=value(url, 'count({job="headsetd"})') / size,
            samples_per_scrape=value(url, 'avg(scrape_samples_scraped{job="headsetd"})'),
            head_series=value(url, 'prometheus_tsdb_head_series{job="prometheus"}'),
            p99_daemon_ms=p99("daemon") if real else float("nan"),
            p99_recorded_ms=p99("recorded") if size > real else float("nan"),
            rss_max_mb=max(rss) / 2**20,
            rss_last_mb=rss[-1] / 2**20,
            rules_ms=(group_ms("headsetd.rules", 0.5), group_ms("headsetd.rules", 1)),
            alerts_ms=(group_ms("headsetd.alerts", 0.5), group_ms("headsetd.alerts", 1)),
            startup_s=startup,
            slowest=slowest_rules(url),
            load=os.getloadavg()[0],
        )
        recorded.stop()
        return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[500, 2000])
    parser.add_argument("--real", type=int, default=100, help="real daemons (the rest recorded)")
    parser.add_argument("--seconds", type=float, default=120.0, help="measured run per size")
    args = parser.parse_args()
    if s.tool("prometheus") is None:
        print("fleet_scale: Debian's prometheus is not installed", file=sys.stderr)
        return 2
    print(f"# {platform.python_version()}, {platform.machine()}, {time.strftime('%F %T %Z')}")
    print(
        "| targets | real daemons | series/workstation | samples/scrape | head series | "
        "scrape p99 daemon (ms) | scrape p99 recorded (ms) | Prometheus RSS max/last (MB) | "
        "rules eval median/max (ms) | alerts eval median/max (ms) | up after (s) | load |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    slowest = []
    for size in args.sizes:
        with tempfile.TemporaryDirectory(prefix="fleet-scale-") as workdir:
            r = run(size, args.real, args.seconds, Path(workdir))
        print(
            f"| {r.targets} | {r.real} | {r.series_per_workstation:.1f} | "
            f"{r.samples_per_scrape:.0f} | {r.head_series:.0f} | {r.p99_daemon_ms:.1f} | "
            f"{r.p99_recorded_ms:.1f} | {r.rss_max_mb:.0f}/{r.rss_last_mb:.0f} | "
            f"{r.rules_ms[0]:.0f}/{r.rules_ms[1]:.0f} | "
            f"{r.alerts_ms[0]:.0f}/{r.alerts_ms[1]:.0f} | {r.startup_s:.0f} | {r.load:.1f} |",
            flush=True,
        )
        slowest.append(f"{size} targets, slowest rules: {r.slowest}")
    print("\n".join(slowest))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
