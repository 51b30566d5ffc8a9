"""The daemon: discovery and devices on the reader loop, the fleet between, the web server out.

Owns: composing the parts (`Daemon`), the order of start-up (port bound, discovery running,
then systemd READY=1), the watchdog ping (a loop timer: a stuck loop stops the pings and
systemd restarts the daemon), signals (SIGTERM/SIGINT stop the loop at once; SIGHUP reloads the
configuration), the reload itself (the reloadable settings swapped as one immutable `Config`;
counters untouched; a bad new file rejected and the old one kept) and the order of shutdown
(every device's unplug counted, the web server stopped, `daemon_stopped` logged).

Never does: any device or HTTP work of its own; the loop thread that runs `run()` is the only
thread that touches devices, so nothing here needs a lock.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from dataclasses import replace
from types import FrameType
from typing import Any

import structlog
from prometheus_client import CollectorRegistry, ProcessCollector, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, Metric

from headsetd import __version__
from headsetd.clock import Clock
from headsetd.collector import HeadsetCollector
from headsetd.config import RELOADABLE, Config, ConfigError, Listen, reload_changes
from headsetd.devices import Devices, LogSink
from headsetd.discovery import Discovery
from headsetd.errors import ErrorKind
from headsetd.fleet import Fleet, FleetSnapshot
from headsetd.logs import LogOutput, set_level
from headsetd.loop import ReaderLoop
from headsetd.notify import sd_notify, watchdog_interval
from headsetd.seat import seat_active
from headsetd.status import status_of
from headsetd.web import Routes, WebServer
from headsetd.webconfig import BasicAuth, WebConfig, load_web_config

log = structlog.get_logger("headsetd")


class _LogErrors:
    """headsetd_log_errors_total: log lines that could not be written (and were dropped)."""

    def __init__(self, output: LogOutput | None) -> None:
        self._output = output

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> list[Metric]:
        family = CounterMetricFamily(
            "headsetd_log_errors", "Log lines that could not be written (stdout broken or full)."
        )
        family.add_metric([], self._output.errors if self._output is not None else 0)
        return [family]


def load_web(config: Config) -> WebConfig:
    """The web config the configuration names (none: plain HTTP, no auth)."""
    return load_web_config(config.web_config_file) if config.web_config_file else WebConfig()


class Daemon:
    """`run()` serves until `stop()` (from any thread) or, with `run_until_signalled()`, a
    SIGTERM or SIGINT. The constructor binds the listen address (OSError if taken).

    `reload` loads the configuration again (the file, with the command line's overrides); None
    means there is nothing to reload from and SIGHUP only says so.
    """

    def __init__(
        self,
        config: Config,
        discovery: Discovery,
        clock: Clock,
        *,
        reload: Callable[[], Config] | None = None,
        log_output: LogOutput | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        self._reload = reload
        self.fleet = Fleet(config.retention_seconds)
        self.loop = ReaderLoop(clock, self._loop_failed)
        self.devices = Devices(self.loop, discovery, self.fleet, LogSink())
        self._discovery = discovery
        web = load_web(config)
        self._auth = BasicAuth(web.users) if web.users else None
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(
            HeadsetCollector(
                self.snapshot,
                __version__,
                lambda: self.config.workstation_labels,
                lambda: self.config.policy,
                seat_active,
            )
        )
        self.registry.register(_LogErrors(log_output))
        ProcessCollector(registry=self.registry)
        routes = Routes(make_wsgi_app(self.registry), self.status, lambda: self._auth)
        self.web = WebServer(config.listen, routes, web.tls)

    @property
    def listen(self) -> Listen:
        return self.web.listen

    def snapshot(self) -> FleetSnapshot:
        return self.fleet.snapshot(self.clock.now())

    def status(self) -> dict[str, Any]:
        return status_of(self.snapshot(), self.config, __version__)

    def run(self) -> None:
        """Start, serve on this thread until stopped, then shut down."""
        self.web.start()
        log.info("metrics_served", listen=str(self.listen), version=__version__)
        self._discovery.start(self.loop, self.devices.on_change)
        log.info("watching_started", devices=self.devices.count)
        sd_notify("READY=1")
        interval = watchdog_interval()
        if interval is not None:
            self._ping_watchdog(interval)
        try:
            self.loop.run()
        finally:
            self._shut_down()

    def run_until_signalled(self) -> None:
        """`run()`, stopped by SIGTERM or SIGINT, reloaded by SIGHUP (handled on this thread,
        which runs the loop: a handler only hands work to the loop, between two callbacks)."""
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._signalled)
        signal.signal(signal.SIGHUP, self._hangup)
        self.run()

    def _signalled(self, signum: int, frame: FrameType | None) -> None:
        self.loop.stop()

    def _hangup(self, signum: int, frame: FrameType | None) -> None:
        self.loop.call_soon_threadsafe(self.reload)

    def stop(self) -> None:
        """Ask `run()` to return; safe from any thread."""
        self.loop.stop()

    def reload(self) -> None:
        """Load the configuration again and apply what can change without a restart."""
        sd_notify(f"RELOADING=1\nMONOTONIC_USEC={time.monotonic_ns() // 1000}")
        try:
            if self._reload is None:
                log.warning("config_reload_failed", error="no configuration file to reload")
                return
            try:
                new = self._reload()
                web = load_web(new)  # certificates are read again too: rotation needs no restart
            except ConfigError as exc:
                log.error("config_reload_failed", error=str(exc), kept=self.config.source)
                return
            changed, restart = reload_changes(self.config, new)
            self.config = replace(self.config, **{key: getattr(new, key) for key in RELOADABLE})
            self.fleet.set_retention(self.config.retention_seconds)
            set_level(self.config.log_level)
            self._auth = BasicAuth(web.users) if web.users else None
            self.web.set_tls(web.tls)
            log.info(
                "config_reloaded",
                source=new.source,
                changed={key: str(value) for key, value in changed.items()},
                restart_needed=restart,
            )
        finally:
            sd_notify("READY=1")

    def _ping_watchdog(self, interval: float) -> None:
        sd_notify("WATCHDOG=1")
        self.loop.call_later(interval, lambda: self._ping_watchdog(interval))

    def _loop_failed(self, exc: BaseException) -> None:
        """A loop callback that is not a device's raised (devices count their own)."""
        self.fleet.count_discovery_error(ErrorKind.INTERNAL)
        log.error("loop_callback_failed", exc_info=exc)

    def _shut_down(self) -> None:
        sd_notify("STOPPING=1")
        self._discovery.stop()
        self.devices.stop("stopped")
        self.web.stop()
        self.loop.close()
        log.info("daemon_stopped")
