"""The daemon: discovery -> descriptor -> decoder -> sessions -> fleet -> /metrics.

Owns: wiring one `Session` thread per telephony HID node that discovery reports, logging each
event (one JSON line, context bound per device), the /metrics HTTP server, start-up readiness
(systemd `READY=1` once the port is bound and discovery is running) and clean shutdown.

Never does: write to a device, let one device's failure touch another's session or counts,
or make a scrape wait on a device (the collector renders a fleet snapshot). The HTTP server
waits in select() on its socket and a wake-up pipe, so an idle daemon does not wake up to poll.
"""

from __future__ import annotations

import os
import selectors
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import structlog
from prometheus_client import CollectorRegistry, ProcessCollector, make_wsgi_app

from headsetd import __version__
from headsetd.clock import Clock
from headsetd.collector import HeadsetCollector
from headsetd.config import Config, Listen
from headsetd.discovery import DeviceInfo, Discovery
from headsetd.fleet import Fleet
from headsetd.hid.decoder import TelephonyDecoder, has_telephony_inputs
from headsetd.hid.descriptor import DescriptorError, parse_report_descriptor
from headsetd.hid.transport import DeviceGone, TransportError
from headsetd.session import (
    DeviceConnected,
    DeviceDisconnected,
    Event,
    ReadFailed,
    ReportRejected,
    Session,
)
from headsetd.session import event_fields as _event_fields

log = structlog.get_logger("headsetd")

SHUTDOWN_GRACE_SECONDS = 1.0


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes are not events; access logs would flood journald."""


class _MetricsServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


def _ipv6_server(host: str) -> type[_MetricsServer]:
    if ":" not in host:
        return _MetricsServer

    class _V6(_MetricsServer):
        address_family = socket.AF_INET6

    return _V6


def sd_notify(message: str) -> None:
    """Tell systemd (Type=notify) about our state; a no-op outside systemd."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]  # abstract namespace
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.connect(address)
        sock.sendall(message.encode())


@dataclass
class _Watched:
    device_id: str
    # Records the device's unplug (fleet and log, as its session would); None until connected.
    on_exit: Callable[[DeviceDisconnected, float], None] | None
    session: Session | None
    thread: threading.Thread | None


class Daemon:
    """Runs until `stop()`; `start()` returns once /metrics is served and discovery runs."""

    def __init__(self, config: Config, discovery: Discovery, clock: Clock) -> None:
        self.config = config
        self.clock = clock
        self.fleet = Fleet(config.retention_seconds)
        self._discovery = discovery
        self._lock = threading.Lock()
        self._watched: dict[str, _Watched] = {}  # by node path
        self._discovery_errors: dict[str, int] = {}
        self._stopping = threading.Event()
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(
            HeadsetCollector(
                lambda: self.fleet.snapshot(self.clock.now()),
                __version__,
                config.workstation_labels,
                self.discovery_errors,
            )
        )
        ProcessCollector(registry=self.registry)
        self._server = self._bind(config.listen)
        self._wake_r, self._wake_w = os.pipe()
        self._server_thread = threading.Thread(target=self._serve, name="http", daemon=True)

    @property
    def listen(self) -> Listen:
        host, port = self._server.server_address[:2]
        return Listen(str(host), int(port))

    def discovery_errors(self) -> dict[str, int]:
        with self._lock:
            return dict(self._discovery_errors)

    def _bind(self, listen: Listen) -> _MetricsServer:
        return make_server(
            listen.host,
            listen.port,
            make_wsgi_app(self.registry),
            server_class=_ipv6_server(listen.host),
            handler_class=_QuietHandler,
        )

    def _serve(self) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(self._server.socket, selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            while True:
                for key, _ in selector.select():
                    if key.fd == self._wake_r:
                        return
                    self._server.handle_request()

    def start(self) -> None:
        self._server_thread.start()
        log.info("metrics_served", listen=str(self.listen), version=__version__)
        self._discovery.start(self._on_add, self._on_remove)
        log.info("watching_started", devices=len(self._watched))
        sd_notify("READY=1")

    def run_until_signalled(self) -> None:
        """start(), then serve until SIGTERM or SIGINT."""
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: self._stopping.set())
        self.start()
        self._stopping.wait()
        self.stop()

    def stop(self) -> None:
        sd_notify("STOPPING=1")
        self._stopping.set()
        self._discovery.stop()
        with self._lock:
            watched = list(self._watched.values())
        for w in watched:
            if w.session is not None:
                w.session.stop()
        # A reader blocked in hidapi's read() notices the stop only when the read times out;
        # closing its handle from here would race that read. So wait briefly, then leave the
        # rest to process exit (the threads are daemons; the kernel closes their nodes).
        deadline = time.monotonic() + SHUTDOWN_GRACE_SECONDS
        for w in watched:
            if w.thread is not None:
                w.thread.join(max(0.0, deadline - time.monotonic()))
        os.write(self._wake_w, b"x")
        self._server_thread.join(5.0)
        self._server.server_close()
        os.close(self._wake_r)
        os.close(self._wake_w)
        log.info("daemon_stopped")

    def _count_discovery_error(self, kind: str) -> None:
        with self._lock:
            self._discovery_errors[kind] = self._discovery_errors.get(kind, 0) + 1

    def _on_add(self, info: DeviceInfo) -> None:
        """Called by discovery (the udev monitor's thread): never lets an exception out, or
        that thread would die and hotplug with it."""
        try:
            self._add(info)
        except Exception:  # see the docstring; the device is counted and logged
            self._count_discovery_error("internal")
            log.exception("device_add_failed", path=info.path)

    def _decoder_for(self, info: DeviceInfo) -> TelephonyDecoder | None:
        """The device's decoder, or None if headsetd does not watch it (logged, counted)."""
        try:
            descriptor = parse_report_descriptor(info.descriptor)
        except DescriptorError as exc:
            self._count_discovery_error("malformed_descriptor")
            log.warning("descriptor_rejected", path=info.path, error=str(exc))
            return None
        if not has_telephony_inputs(descriptor):
            log.debug("device_ignored", path=info.path, reason="no telephony inputs")
            return None
        return TelephonyDecoder(descriptor)

    def _add(self, info: DeviceInfo) -> None:
        if self._stopping.is_set():
            return
        decoder = self._decoder_for(info)
        if decoder is None:
            return
        with self._lock:
            # Checked and claimed in one step: the monitor and the initial scan may report
            # the same node at the same time, from two threads.
            if info.path in self._watched:
                return
            info = self._unique(info)
            watched = self._watched[info.path] = _Watched(info.device_id, None, None, None)
        device_log = log.bind(device=info.device_id)
        generation = self.fleet.connect(info, decoder.controls, self.clock.now())
        device_log.info(
            DeviceConnected.event,
            path=info.path,
            vendor_id=f"{info.vendor_id:04x}",
            product_id=f"{info.product_id:04x}",
            manufacturer=info.manufacturer,
            product=info.product,
            serial=info.serial,
            controls=[c.value for c in decoder.controls],
        )

        def sink(events: list[Event], at: float) -> None:
            self.fleet.apply(info.device_id, generation, events, at)
            for event in events:
                fields = _event_fields(event)
                name = fields.pop("event")
                # A rejected report or failed read is worth a look; the rest is routine.
                if isinstance(event, ReportRejected | ReadFailed):
                    device_log.warning(name, **fields)
                else:
                    device_log.info(name, **fields)

        def on_exit(event: DeviceDisconnected, at: float) -> None:
            sink([event], at)

        watched.on_exit = on_exit
        try:
            transport = self._discovery.open(info)
        except DeviceGone:
            on_exit(DeviceDisconnected("unplugged"), self.clock.now())
            with self._lock:
                self._watched.pop(info.path, None)
            return
        except TransportError as exc:
            # Plugged but unreadable (permissions, most often): visible as a metric and a line.
            sink([ReadFailed(exc.kind, str(exc))], self.clock.now())
            return
        session = Session(
            transport, decoder, sink, self.clock, self.config.read_timeout_seconds, on_exit
        )
        thread = threading.Thread(target=session.run, name=f"session-{info.path}", daemon=True)
        watched.session, watched.thread = session, thread
        thread.start()

    def _unique(self, info: DeviceInfo) -> DeviceInfo:
        """Two nodes with one id (a second telephony interface, or a vendor that gives every
        unit the same serial) stay two devices: the later one's id gets its node's name.
        Called with the lock held."""
        if info.device_id not in {w.device_id for w in self._watched.values()}:
            return info
        unique = replace(info, id_suffix=f"~{os.path.basename(info.path)}")
        log.warning("device_id_collided", device=info.device_id, renamed=unique.device_id)
        return unique

    def _on_remove(self, path: str) -> None:
        with self._lock:
            watched = self._watched.pop(path, None)
        if watched is None:
            return
        if watched.session is None:
            # Never read (open failed): the unplug is still an unplug.
            if watched.on_exit is not None:
                watched.on_exit(DeviceDisconnected("unplugged"), self.clock.now())
            return
        watched.session.stop("unplugged")
        # An unplugged node fails the pending read at once; the bound keeps udev events flowing
        # if it ever does not (the session then ends at its read timeout, on its own).
        if watched.thread is not None and watched.thread is not threading.current_thread():
            watched.thread.join(SHUTDOWN_GRACE_SECONDS)
