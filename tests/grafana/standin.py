"""STAND-IN, REMOVE AT MERGE: a minimal `fleet_prometheus` session fixture for the grafana
branch, until the ops branch's tests/stack (the real e2e fleet) is merged. At the merge: delete
this file and tests/grafana/standin_rules/, and in tests/test_grafana.py drop the import of
`fleet_prometheus` (tests/conftest.py loads the real one) and replace `rules_dir()` with
`REPO / "prometheus" / "rules"`.

What it starts: a few real `headsetd run --replay ... --loop` daemons on loopback ports, each
with its own workstation name, site and team, and a real Debian Prometheus 2.42 scraping them
every second (site/team as target labels, as file_sd would set them) with the recording and
alert rules loaded (their `for:` shortened to seconds in a rendered copy). It yields once the
recording rules and at least one alert have values, polling with a deadline.

Same interface as the real fixture: an object with `.url` and `.scenario`.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import RECORDINGS, REPO, require_tool

SNAPSHOT_RULES = Path(__file__).resolve().parent / "standin_rules"


def rules_dir() -> Path:
    """The shipped rules once prometheus/ is merged, else the snapshot beside this file."""
    shipped = REPO / "prometheus" / "rules"
    return shipped if shipped.is_dir() else SNAPSHOT_RULES


@dataclass(frozen=True, slots=True)
class Workstation:
    name: str
    site: str
    team: str
    recordings: tuple[str, ...]
    speed: float
    story: str
    config_extra: str = ""


@dataclass(frozen=True, slots=True)
class Fleet:
    url: str
    scenario: tuple[Workstation, ...]


SCENARIO = (
    Workstation(
        "ws-ber1-01",
        "ber1",
        "support",
        (
            "jabra_evolve-link-ms_0b0e-0307_call.hid",
            "plantronics_poly-voyager-base-cd_047f-02ec_call.hid",
        ),
        1.0,
        "two headsets, calls with mute presses, each replugged at the end of its recording",
    ),
    Workstation(
        "ws-ber1-02",
        "ber1",
        "sales",
        ("sennheiser_sc-660-anc-usb_1395-0082_hook-flap.hid",),
        4.0,
        "a flapping cable: unplugged and replugged every 2-3 seconds",
    ),
    Workstation(
        "ws-muc1-01",
        "muc1",
        "support",
        ("yealink_wh66_6993-b02b_truncated.hid", "dell_pro-sp325-speakerphone_413c-8223_call.hid"),
        1.0,
        "a DECT base sending a truncated report each cycle, and a speakerphone not on the"
        " approved list",
        '[policy]\napproved = ["6993:*"]\n',
    ),
)
SCRAPE_INTERVAL = "1s"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback http
        return json.loads(response.read())


def wait_until(what: str, ready: Callable[[], bool], timeout: float) -> None:
    """Poll `ready` until it is true, failing after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            pytest.fail(f"stand-in fleet: {what} not within {timeout:.0f}s")
        time.sleep(0.2)


def instant(url: str, expr: str) -> list[dict[str, Any]]:
    query = urllib.parse.urlencode({"query": expr})
    try:
        body = get_json(f"{url}/api/v1/query?{query}")
    except OSError:
        return []
    return list(body["data"]["result"])


def render_rules(target: Path) -> list[str]:
    """Copies of the rule files with every `for:` at 2s, so alerts fire within the fixture."""
    paths = []
    for path in sorted(rules_dir().glob("*.yml")):
        text = re.sub(r"^(\s+for:\s*)\S+", r"\g<1>2s", path.read_text(encoding="utf-8"), flags=re.M)
        (target / path.name).write_text(text, encoding="utf-8")
        paths.append(str(target / path.name))
    return paths


def start_daemon(workdir: Path, ws: Workstation, port: int) -> subprocess.Popen[bytes]:
    config = workdir / f"{ws.name}.toml"
    config.write_text(f'[workstation]\nname = "{ws.name}"\n{ws.config_extra}', encoding="utf-8")
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "headsetd",
            "run",
            "--listen",
            f"127.0.0.1:{port}",
            "--config",
            str(config),
            "--log-format",
            "json",
            "--loop",
            "--speed",
            str(ws.speed),
            "--replay",
            *(str(RECORDINGS / name) for name in ws.recordings),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=REPO,
    )


@pytest.fixture(scope="session")
def fleet_prometheus() -> Iterator[Fleet]:
    prometheus = require_tool("prometheus")
    processes: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="headsetd-standin-") as tmp:
        workdir = Path(tmp)
        try:
            targets = []
            for ws in SCENARIO:
                port = free_port()
                processes.append(start_daemon(workdir, ws, port))
                targets.append(
                    {"targets": [f"127.0.0.1:{port}"], "labels": {"site": ws.site, "team": ws.team}}
                )
            config = {
                "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": "1s"},
                "rule_files": render_rules(workdir),
                "scrape_configs": [{"job_name": "headsetd", "static_configs": targets}],
            }
            (workdir / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
            port = free_port()
            processes.append(
                subprocess.Popen(
                    [
                        prometheus,
                        f"--config.file={workdir / 'prometheus.yml'}",
                        f"--storage.tsdb.path={workdir / 'data'}",
                        f"--web.listen-address=127.0.0.1:{port}",
                        "--log.level=warn",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
            )
            url = f"http://127.0.0.1:{port}"
            wait_until(
                "every target up",
                lambda: len(instant(url, 'up{job="headsetd"} == 1')) == len(SCENARIO),
                30,
            )
            # Rates need two samples in their window. The flapping alert needs 3 unplugs within
            # 10 minutes; with fewer samples than that, increase() extrapolates around 3 and the
            # alert flickers. So wait for 6 unplugs counted (the raw counter, no extrapolation),
            # then for the alert to have been firing at each of the last 3 evaluations.
            wait_until(
                "recording rules, 6 unplugs and a steady alert",
                lambda: (
                    bool(instant(url, "site_team:headsetd_device_disconnects:rate5m > 0"))
                    and bool(instant(url, 'headsetd_device_disconnects_total{job="headsetd"} >= 6'))
                    and bool(instant(url, 'count_over_time(ALERTS{alertstate="firing"}[3s]) >= 3'))
                ),
                60,
            )
            yield Fleet(url, SCENARIO)
        finally:
            for process in processes:
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
            for process in processes:
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
