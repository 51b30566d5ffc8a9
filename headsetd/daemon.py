"""The daemon: discovery and devices on the reader loop, the fleet between, the web server out.

Owns: composing the parts (`Daemon`): discovery and the device lifecycle on the reader loop,
the audio side (`AudioWatcher`, its own two threads, told which devices to watch and their hook
states whenever those change; its events counted in the fleet and logged), the web server; the
order of start-up (port bound, discovery running, audio started, then systemd READY=1), the
watchdog ping (a loop timer: a stuck loop stops the pings and systemd restarts the daemon),
signals (SIGTERM/SIGINT stop the loop at once; SIGHUP reloads the
configuration), the reload itself (the reloadable settings swapped as one immutable `Config`;
counters untouched; a bad new file rejected and the old one kept) and the order of shutdown
(every device's unplug counted, the web server stopped, `daemon_stopped` logged).

Never does: any device or HTTP work of its own; the loop thread that runs `run()` is the only
thread that touches devices, so nothing here needs a lock.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from types import FrameType
from typing import TYPE_CHECKING, Any

import structlog
from prometheus_client import CollectorRegistry, ProcessCollector, make_wsgi_app

from headsetd import __version__
from headsetd.clock import Clock
from headsetd.collector import HeadsetCollector
from headsetd.config import Config, ConfigError, Listen, reload_changes
from headsetd.devices import Devices, LogSink
from headsetd.discovery import Discovery
from headsetd.errors import ErrorKind
from headsetd.events import (
    DeviceClassified,
    DeviceConnected,
    DeviceDisconnected,
    Event,
    HookChanged,
)
from headsetd.fleet import DeviceRecord, Fleet, FleetSnapshot
from headsetd.logs import LogOutput, set_level
from headsetd.loop import ReaderLoop
from headsetd.notify import sd_notify, watchdog_interval
from headsetd.seat import seat_active
from headsetd.status import status_of
from headsetd.web import Routes, WebServer
from headsetd.webconfig import BasicAuth, load_web_config

if TYPE_CHECKING:
    from headsetd.audio.model import AudioEvent, ServerEvent
    from headsetd.audio.watcher import AudioWatcher

log = structlog.get_logger("headsetd")
# Events after which the audio side must hear of the devices again (who, and their hook state).
_TARGET_EVENTS = (DeviceConnected, DeviceDisconnected, DeviceClassified, HookChanged)


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
        self._log_sink = LogSink()
        self.devices = Devices(self.loop, discovery, self.fleet, self._device_events)
        self._discovery = discovery
        self.audio: AudioWatcher | None = None
        if config.audio.enabled:
            from headsetd.audio.watcher import AudioWatcher  # noqa: PLC0415 - only with audio

            self.audio = AudioWatcher(config.audio, clock, self._audio_events)
        web = load_web_config(config.web_config_file)
        self._auth = BasicAuth(web.users) if web.users else None
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(
            HeadsetCollector(
                self.snapshot,
                __version__,
                lambda: self.config.workstation_labels,
                lambda: self.config.policy,
                seat_active,
                self.audio.status if self.audio is not None else None,
                (lambda: log_output.errors) if log_output is not None else (lambda: 0),
            )
        )
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
        if self.audio is not None:
            self._tell_audio()
            self.audio.start()
        log.info("watching_started", devices=self.devices.count, audio=self.audio is not None)
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
                # Certificates are read again too: rotating them needs no restart.
                web = load_web_config(new.web_config_file)
            except ConfigError as exc:
                log.error("config_reload_failed", error=str(exc), kept=self.config.source)
                return
            changed, restart = reload_changes(self.config, new)
            self.config = replace(self.config, **changed)
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

    def _device_events(self, record: DeviceRecord, events: Sequence[Event], now: float) -> None:
        """After the fleet: the log, and the audio side when who or what is in a call moved."""
        self._log_sink(record, events, now)
        if self.audio is not None and any(isinstance(e, _TARGET_EVENTS) for e in events):
            self._tell_audio()

    def _tell_audio(self) -> None:
        """The devices the audio side matches sources to, with their hook states."""
        if self.audio is None:
            return
        from headsetd.audio.model import AudioTarget  # noqa: PLC0415 - only with audio

        targets = [
            AudioTarget(
                r.device_id,
                r.identity.sys_path,
                r.identity.bus_path,
                r.identity.vendor_id,
                r.identity.product_id,
                r.identity.serial,
                r.state.off_hook,
            )
            for r in self.snapshot().devices
            if r.connected
        ]
        self.audio.set_targets(targets)

    def _audio_events(
        self, device: str | None, events: Sequence[AudioEvent | ServerEvent], now: float
    ) -> None:
        """The audio thread's sink: counted in the fleet, then logged (levels are not)."""
        from headsetd.audio.model import audio_event_fields  # noqa: PLC0415 - only with audio

        if device is not None:
            self.fleet.apply_audio(device, events, now)  # type: ignore[arg-type]
        bound = log.bind(device=device) if device is not None else log
        for event in events:
            fields = audio_event_fields(event)
            if fields is not None:
                bound.info(fields.pop("event"), **fields)

    def _ping_watchdog(self, interval: float) -> None:
        sd_notify("WATCHDOG=1")
        self.loop.call_later(interval, lambda: self._ping_watchdog(interval))

    def _loop_failed(self, exc: BaseException) -> None:
        """A loop callback that is not a device's raised (devices count their own)."""
        self.fleet.count_discovery_error(ErrorKind.INTERNAL)
        log.error("loop_callback_failed", exc_info=exc)

    def _shut_down(self) -> None:
        sd_notify("STOPPING=1")
        if self.audio is not None:
            self.audio.stop()
        self._discovery.stop()
        self.devices.stop("stopped")
        self.web.stop()
        self.loop.close()
        log.info("daemon_stopped")
