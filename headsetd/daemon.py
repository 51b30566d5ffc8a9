"""The daemon: discovery and devices on the reader loop, the fleet between, the web server out.

Owns: composing the parts (`Daemon`), the order of start-up (port bound, discovery running,
then systemd READY=1), the watchdog ping (a loop timer: a stuck loop stops the pings and
systemd restarts the daemon), signals (SIGTERM/SIGINT stop the loop at once) and the order of
shutdown (every device's unplug counted, the web server stopped, `daemon_stopped` logged).

Never does: any device or HTTP work of its own; the loop thread that runs `run()` is the only
thread that touches devices, so nothing here needs a lock.
"""

from __future__ import annotations

import signal
from types import FrameType

import structlog
from prometheus_client import CollectorRegistry, ProcessCollector, make_wsgi_app

from headsetd import __version__
from headsetd.clock import Clock
from headsetd.collector import HeadsetCollector
from headsetd.config import Config, Listen
from headsetd.devices import Devices, LogSink
from headsetd.discovery import Discovery
from headsetd.events import ErrorKind
from headsetd.fleet import Fleet
from headsetd.loop import ReaderLoop
from headsetd.notify import sd_notify, watchdog_interval
from headsetd.seat import seat_active
from headsetd.web import WebServer

log = structlog.get_logger("headsetd")


class Daemon:
    """`run()` serves until `stop()` (from any thread) or, with `run_until_signalled()`, a
    SIGTERM or SIGINT. The constructor binds the listen address (OSError if taken)."""

    def __init__(self, config: Config, discovery: Discovery, clock: Clock) -> None:
        self.config = config
        self.clock = clock
        self.fleet = Fleet(config.retention_seconds)
        self.loop = ReaderLoop(clock, self._loop_failed)
        self.devices = Devices(self.loop, discovery, self.fleet, LogSink())
        self._discovery = discovery
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(
            HeadsetCollector(
                lambda: self.fleet.snapshot(self.clock.now()),
                __version__,
                lambda: self.config.workstation_labels,
                lambda: self.config.policy,
                seat_active,
            )
        )
        ProcessCollector(registry=self.registry)
        self.web = WebServer(config.listen, make_wsgi_app(self.registry))

    @property
    def listen(self) -> Listen:
        return self.web.listen

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
        """`run()`, stopped by SIGTERM or SIGINT (handled on this thread, which runs the loop:
        the handler only asks the loop to stop, between two callbacks)."""
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._signalled)
        self.run()

    def _signalled(self, signum: int, frame: FrameType | None) -> None:
        self.loop.stop()

    def stop(self) -> None:
        """Ask `run()` to return; safe from any thread."""
        self.loop.stop()

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
