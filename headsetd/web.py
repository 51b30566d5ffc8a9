"""The web server: /metrics and /status over HTTP or HTTPS, with bounded cost.

Owns: `WebServer`, which binds the listen address (so a taken port fails at start-up, not
later) and runs one accept thread that waits in select() on the socket, a wake-up pipe and the
connections not yet ready. A new connection waits there, non-blocking, until its TLS handshake
is done and its request has started to arrive; only then is it handed, through a bounded queue,
to a fixed pool of handler threads. So a client that connects and says nothing, or stalls its
handshake, holds no thread and delays no scrape; it is closed after a timeout. The listen
backlog holds a burst of concurrent scrapers without dropped SYNs; the number of threads is
constant whatever the clients do. Also `Routes`, the WSGI app: /metrics (prometheus_client's),
/status (the daemon's view as JSON, for `headsetd status`), basic auth when configured.

Never does: render anything itself (the apps do, from snapshots), wake while idle (no
connection pending: select() has no timeout), or let one client hold the others.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import queue
import selectors
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from headsetd.config import Listen
from headsetd.webconfig import BasicAuth

LISTEN_BACKLOG = 128  # 20 concurrent scrapers (and a burst from a load balancer) fit
HANDLER_THREADS = 3
CONNECTION_TIMEOUT_SECONDS = 10.0  # a scrape takes milliseconds; an idle connection is closed
MAX_PENDING = 64  # connections waiting for their handshake or request; the oldest go first
TEXT_FORMAT = "text/plain; version=0.0.4"
GZIP_LEVEL = 1  # a 64-device page: 15x smaller in 0.15 ms (level 9: 20x in 1.5 ms)

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
WsgiApp = Callable[[Environ, StartResponse], Iterable[bytes]]


class _Handler(WSGIRequestHandler):
    # None: StreamRequestHandler leaves the connection's timeout as the server set it (the
    # server's `timeout`), instead of setting a class-wide one of its own.
    timeout = None

    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes are not events; access logs would flood journald."""


class _Server(WSGIServer):
    """wsgiref's server for its WSGI plumbing (environ, handler); we accept and dispatch."""

    request_queue_size = LISTEN_BACKLOG

    def __init__(self, listen: Listen) -> None:
        self.address_family = socket.AF_INET6 if ":" in listen.host else socket.AF_INET
        super().__init__((listen.host, listen.port), _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind would resolve the host's FQDN (a DNS query, which can take
        # seconds on a workstation without DNS); the name is not used.
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind(self.server_address)
        self.server_address = self.socket.getsockname()
        self.server_name, self.server_port = str(self.server_address[0]), self.server_address[1]
        self.setup_environ()


class _Pending:
    """A connection not yet ready: its handshake (TLS) and first request bytes."""

    __slots__ = ("address", "deadline", "handshaken", "socket")

    def __init__(self, sock: socket.socket, address: Any, deadline: float, tls: bool) -> None:
        self.socket = sock
        self.address = address
        self.deadline = deadline
        self.handshaken = not tls


class WebServer:
    """Serves `app` on `listen` (TLS with `tls`) once `start()`ed; `stop()` returns promptly."""

    def __init__(
        self,
        listen: Listen,
        app: WsgiApp,
        tls: ssl.SSLContext | None = None,
        handlers: int = HANDLER_THREADS,
        timeout: float = CONNECTION_TIMEOUT_SECONDS,
    ) -> None:
        self._server = _Server(listen)  # binds now: OSError if the address is taken
        self._server.set_app(app)
        self._tls = tls
        self._timeout = timeout
        self._queue: queue.Queue[tuple[socket.socket, Any] | None] = queue.Queue(handlers)
        self._wake_r, self._wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self._pending: dict[int, _Pending] = {}
        self._threads = [threading.Thread(target=self._accept, name="http", daemon=True)] + [
            threading.Thread(target=self._handle, name=f"http-{n}", daemon=True)
            for n in range(handlers)
        ]

    @property
    def listen(self) -> Listen:
        host, port = self._server.server_address[:2]
        return Listen(str(host), int(port))

    def set_tls(self, tls: ssl.SSLContext | None) -> None:
        """Serve new connections with `tls` (a reload: new certificates, no restart)."""
        self._tls = tls

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    # --- the accept thread -------------------------------------------------------------------

    def _accept(self) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(self._server.socket, selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            while True:
                timeout = None
                if self._pending:
                    soonest = min(p.deadline for p in self._pending.values())
                    timeout = max(0.0, soonest - time.monotonic())
                for key, _ in selector.select(timeout):
                    if key.fd == self._wake_r:
                        for pending in list(self._pending.values()):
                            self._drop(selector, pending)
                        return
                    if key.fileobj is self._server.socket:
                        self._new(selector)
                    else:
                        self._advance(selector, key.data)
                now = time.monotonic()
                for pending in [p for p in self._pending.values() if p.deadline <= now]:
                    self._drop(selector, pending)

    def _new(self, selector: selectors.BaseSelector) -> None:
        try:
            sock, address = self._server.socket.accept()
        except OSError:
            return  # the client gave up before we accepted (ECONNABORTED...)
        sock.setblocking(False)
        if self._tls is not None:
            try:
                sock = self._tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
            except (OSError, ValueError):
                sock.close()
                return
        if len(self._pending) >= MAX_PENDING:
            self._drop(selector, min(self._pending.values(), key=lambda p: p.deadline))
        pending = _Pending(sock, address, time.monotonic() + self._timeout, self._tls is not None)
        self._pending[sock.fileno()] = pending
        selector.register(sock, selectors.EVENT_READ, pending)
        self._advance(selector, pending)

    def _advance(self, selector: selectors.BaseSelector, pending: _Pending) -> None:
        """Drive a pending connection on: its handshake, then wait for its request."""
        sock = pending.socket
        if isinstance(sock, ssl.SSLSocket):
            if not pending.handshaken:
                try:
                    sock.do_handshake()
                except ssl.SSLWantReadError:
                    selector.modify(sock, selectors.EVENT_READ, pending)
                    return
                except ssl.SSLWantWriteError:
                    selector.modify(sock, selectors.EVENT_WRITE, pending)
                    return
                except (OSError, ValueError):
                    self._drop(selector, pending)  # failed: no client cert, plain HTTP...
                    return
                pending.handshaken = True
                selector.modify(sock, selectors.EVENT_READ, pending)
                if not sock.pending():
                    return  # the request has not started yet: wait until it does
            # Readable after the handshake: the request has started.
        else:
            try:
                if not sock.recv(1, socket.MSG_PEEK):
                    self._drop(selector, pending)  # closed before sending anything
                    return
            except BlockingIOError:
                return  # connected, nothing sent yet: wait until it is
            except OSError:
                self._drop(selector, pending)
                return
        selector.unregister(sock)
        del self._pending[sock.fileno()]
        sock.settimeout(self._timeout)
        # Blocks while every handler is busy: later clients wait, accepted, among the pending
        # sockets or in the kernel's backlog.
        self._queue.put((sock, pending.address))

    def _drop(self, selector: selectors.BaseSelector, pending: _Pending) -> None:
        self._pending.pop(pending.socket.fileno(), None)
        with contextlib.suppress(KeyError, ValueError):
            selector.unregister(pending.socket)
        pending.socket.close()

    # --- the handler threads -----------------------------------------------------------------

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


class Routes:
    """The daemon's WSGI app: /metrics, /status (JSON), basic auth when configured."""

    def __init__(
        self,
        metrics: WsgiApp,
        status: Callable[[], dict[str, Any]],
        auth: Callable[[], BasicAuth | None],
    ) -> None:
        self._metrics = metrics
        self._status = status
        self._auth = auth

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        auth = self._auth()
        if auth is not None and not auth.allows(environ.get("HTTP_AUTHORIZATION")):
            start_response(
                "401 Unauthorized",
                [("Content-Type", "text/plain"), ("WWW-Authenticate", 'Basic realm="headsetd"')],
            )
            return [b"Unauthorized\n"]
        path = environ.get("PATH_INFO", "/")
        if path == "/metrics":
            # The text format, whatever the scraper prefers: Prometheus asks for OpenMetrics
            # first, and prometheus_client writes that at twice the cost (a 64-device page:
            # 10 ms against 5). node_exporter does the same (OpenMetrics is opt-in in Go's
            # client), and nothing headsetd exports needs OpenMetrics.
            return self._text_metrics(environ, start_response)
        if path == "/status":
            body = json.dumps(self._status(), indent=2).encode() + b"\n"
            start_response("200 OK", [("Content-Type", "application/json")])
            return [body]
        if path == "/":
            start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
            return [
                b"<html><head><title>headsetd</title></head><body><h1>headsetd</h1>"
                b'<p><a href="/metrics">Metrics</a> <a href="/status">Status</a></p>'
                b"</body></html>\n"
            ]
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"Not Found\n"]

    def _text_metrics(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        """/metrics in the text format, gzipped at level 1 when the scraper accepts gzip
        (prometheus_client compresses at 9: ten times the time for a page 30 % smaller)."""
        plain = {**environ, "HTTP_ACCEPT": TEXT_FORMAT, "HTTP_ACCEPT_ENCODING": ""}
        answer: list[Any] = []
        body = b"".join(
            self._metrics(plain, lambda status, headers, *_: answer.extend((status, headers)))
        )
        status, headers = answer
        if "gzip" in environ.get("HTTP_ACCEPT_ENCODING", ""):
            body = gzip.compress(body, compresslevel=GZIP_LEVEL)
            headers = [*headers, ("Content-Encoding", "gzip")]
        start_response(status, [*headers, ("Content-Length", str(len(body)))])
        return [body]
