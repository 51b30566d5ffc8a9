"""The web server: /metrics (and what else the daemon serves) over HTTP, with bounded cost.

Owns: `WebServer`, which binds the listen address (so a taken port fails at start-up, not
later), accepts connections on one thread that waits in select() on the socket and a wake-up
pipe (an idle daemon does not wake), and hands each connection to a fixed pool of handler
threads through a bounded queue. Each connection has a timeout, so idle or slow clients cannot
pile up; the listen backlog holds a burst of concurrent scrapers without dropped SYNs; the
number of threads is constant whatever the clients do.

Never does: render anything itself (the WSGI app does: prometheus_client's, which calls the
collector, which renders a snapshot), or let one slow client hold the others: while every
handler is busy, new connections wait in the kernel's backlog.
"""

from __future__ import annotations

import os
import queue
import selectors
import socket
import threading
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from headsetd.config import Listen

LISTEN_BACKLOG = 128  # 20 concurrent scrapers (and a burst from a load balancer) fit
HANDLER_THREADS = 3
CONNECTION_TIMEOUT_SECONDS = 10.0  # a scrape takes milliseconds; an idle connection is closed


class _Handler(WSGIRequestHandler):
    timeout = CONNECTION_TIMEOUT_SECONDS  # StreamRequestHandler sets it on the connection

    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes are not events; access logs would flood journald."""


class _Server(WSGIServer):
    """wsgiref's server for its WSGI plumbing (environ, handler); we accept and dispatch."""

    request_queue_size = LISTEN_BACKLOG

    def __init__(self, listen: Listen) -> None:
        self.address_family = socket.AF_INET6 if ":" in listen.host else socket.AF_INET
        super().__init__((listen.host, listen.port), _Handler)


class WebServer:
    """Serves `app` on `listen` once `start()`ed; `stop()` returns promptly."""

    def __init__(self, listen: Listen, app: Any, handlers: int = HANDLER_THREADS) -> None:
        self._server = _Server(listen)  # binds now: OSError if the address is taken
        self._server.set_app(app)
        self._queue: queue.Queue[tuple[socket.socket, Any] | None] = queue.Queue(handlers)
        self._wake_r, self._wake_w = os.pipe2(os.O_CLOEXEC)
        self._threads = [threading.Thread(target=self._accept, name="http", daemon=True)] + [
            threading.Thread(target=self._handle, name=f"http-{n}", daemon=True)
            for n in range(handlers)
        ]

    @property
    def listen(self) -> Listen:
        host, port = self._server.server_address[:2]
        return Listen(str(host), int(port))

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def _accept(self) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(self._server.socket, selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            while True:
                for key, _ in selector.select():
                    if key.fd == self._wake_r:
                        return
                    try:
                        connection, address = self._server.socket.accept()
                    except OSError:
                        continue  # the client gave up before we accepted (ECONNABORTED...)
                    # Blocks while every handler is busy: later clients wait in the backlog.
                    self._queue.put((connection, address))

    def _handle(self) -> None:
        while (item := self._queue.get()) is not None:
            connection, address = item
            try:
                self._server.finish_request(connection, address)
            except OSError:
                pass  # the client went away or timed out: nothing to answer
            finally:
                self._server.shutdown_request(connection)

    def stop(self, timeout: float = 1.0) -> None:
        os.write(self._wake_w, b"x")
        self._threads[0].join(timeout)
        for _ in self._threads[1:]:
            try:
                self._queue.put_nowait(None)
            except queue.Full:
                break  # handlers busy with clients: they are daemon threads, exit ends them
        for thread in self._threads[1:]:
            thread.join(timeout)
        self._server.server_close()
        os.close(self._wake_r)
        os.close(self._wake_w)
