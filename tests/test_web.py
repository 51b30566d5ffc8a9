"""The web server's hard edges, with real sockets and real TLS: concurrent scrapers, idle and
stalled clients that must hold no thread and delay no scrape, TLS, mTLS and basic auth from an
exporter-toolkit web config (checked by Prometheus' own `promtool check web-config`)."""

from __future__ import annotations

import base64
import concurrent.futures
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import bcrypt
import pytest

from headsetd.config import ConfigError, Listen
from headsetd.web import Routes, WebServer
from headsetd.webconfig import BasicAuth, load_web_config
from tests.conftest import require_tool


def _metrics(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"up 1\n"]


def _routes(auth: BasicAuth | None = None) -> Routes:
    return Routes(_metrics, lambda: {"devices": []}, lambda: auth)


@pytest.fixture
def server() -> Iterator[WebServer]:
    web = WebServer(Listen("127.0.0.1", 0), _routes(), timeout=2.0)
    web.start()
    yield web
    web.stop()


def _get(url: str, context: ssl.SSLContext | None = None, **headers: str) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 - loopback test server
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as response:  # noqa: S310
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_twenty_concurrent_scrapers_are_all_answered_without_a_dropped_syn(
    server: WebServer,
) -> None:
    """A dropped SYN costs a client a 1 s retransmission: none may take that long."""
    url = f"http://127.0.0.1:{server.listen.port}/metrics"

    def scrape(_: int) -> float:
        start = time.monotonic()
        assert _get(url) == (200, b"up 1\n")
        return time.monotonic() - start

    for _ in range(3):
        with concurrent.futures.ThreadPoolExecutor(20) as pool:
            durations = list(pool.map(scrape, range(20)))
        assert max(durations) < 0.9, sorted(durations)


def test_idle_clients_hold_no_thread_and_delay_no_scrape(server: WebServer) -> None:
    url = f"http://127.0.0.1:{server.listen.port}/metrics"
    threads = threading.active_count()
    idle = [socket.create_connection(("127.0.0.1", server.listen.port)) for _ in range(50)]
    try:
        start = time.monotonic()
        assert _get(url) == (200, b"up 1\n")
        assert time.monotonic() - start < 0.9
        assert threading.active_count() == threads  # no thread per connection
        # They are closed after the timeout (2 s here).
        idle[0].settimeout(5)
        assert idle[0].recv(1) == b""
    finally:
        for sock in idle:
            sock.close()


def test_routes_status_and_not_found(server: WebServer) -> None:
    base = f"http://127.0.0.1:{server.listen.port}"
    assert _get(f"{base}/status") == (200, b'{\n  "devices": []\n}\n')
    assert _get(f"{base}/nothing")[0] == 404
    assert b"/metrics" in _get(f"{base}/")[1]


# --- TLS --------------------------------------------------------------------------------------


def _openssl(*args: str, cwd: Path) -> None:
    openssl = require_tool("openssl")
    subprocess.run([openssl, *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, all signed by it."""
    d = tmp_path_factory.mktemp("pki")
    key = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes")
    _openssl("req", "-x509", *key, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
             "-subj", "/CN=headsetd test CA", cwd=d)  # fmt: skip
    for name, san in (("server", "IP:127.0.0.1"), ("client", "DNS:scraper")):
        _openssl("req", *key, "-keyout", f"{name}.key", "-out", f"{name}.csr",
                 "-subj", f"/CN={name}", cwd=d)  # fmt: skip
        (d / f"{name}.ext").write_text(f"subjectAltName={san}\n")
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                 "-CAcreateserial", "-out", f"{name}.crt", "-days", "2",
                 "-extfile", f"{name}.ext", cwd=d)  # fmt: skip
    return d


def _web_config(d: Path, text: str) -> Path:
    path = d / "web.yml"
    path.write_text(text)
    return path


def _promtool_checks(path: Path) -> None:
    promtool = require_tool("promtool")
    result = subprocess.run(
        [promtool, "check", "web-config", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _client(pki: Path, cert: bool) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    if cert:
        context.load_cert_chain(str(pki / "client.crt"), str(pki / "client.key"))
    return context


def test_tls_and_a_stalled_handshake_that_blocks_nobody(pki: Path, tmp_path: Path) -> None:
    path = _web_config(
        tmp_path,
        f"tls_server_config:\n  cert_file: {pki}/server.crt\n  key_file: {pki}/server.key\n",
    )
    _promtool_checks(path)
    web = load_web_config(path)
    server = WebServer(Listen("127.0.0.1", 0), _routes(), web.tls, handlers=1, timeout=2.0)
    server.start()
    try:
        url = f"https://127.0.0.1:{server.listen.port}/metrics"
        # Clients that connect and never handshake: with a single handler thread, any of them
        # holding it would block the scrape below.
        stalled = [socket.create_connection(("127.0.0.1", server.listen.port)) for _ in range(5)]
        start = time.monotonic()
        assert _get(url, _client(pki, cert=False)) == (200, b"up 1\n")
        assert time.monotonic() - start < 0.9
        for sock in stalled:
            sock.close()
        # Plain HTTP on the TLS port is refused, not answered in clear.
        with pytest.raises((urllib.error.URLError, ConnectionError)):
            _get(f"http://127.0.0.1:{server.listen.port}/metrics")
    finally:
        server.stop()


def test_mutual_tls_needs_a_client_certificate_from_the_ca(pki: Path, tmp_path: Path) -> None:
    path = _web_config(
        tmp_path,
        f"tls_server_config:\n  cert_file: {pki}/server.crt\n  key_file: {pki}/server.key\n"
        f"  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {pki}/ca.crt\n"
        "  min_version: TLS12\n",
    )
    _promtool_checks(path)
    web = load_web_config(path)
    server = WebServer(Listen("127.0.0.1", 0), _routes(), web.tls, timeout=2.0)
    server.start()
    try:
        url = f"https://127.0.0.1:{server.listen.port}/metrics"
        assert _get(url, _client(pki, cert=True)) == (200, b"up 1\n")
        with pytest.raises((urllib.error.URLError, ssl.SSLError, ConnectionError)):
            _get(url, _client(pki, cert=False))
    finally:
        server.stop()


def test_basic_auth_with_bcrypt_hashes(tmp_path: Path) -> None:
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode()
    path = _web_config(tmp_path, f"basic_auth_users:\n  prometheus: {hashed}\n")
    _promtool_checks(path)
    web = load_web_config(path)
    server = WebServer(Listen("127.0.0.1", 0), _routes(BasicAuth(web.users)), timeout=2.0)
    server.start()

    def auth(user: str, password: str) -> str:
        return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    try:
        url = f"http://127.0.0.1:{server.listen.port}/metrics"
        assert _get(url)[0] == 401
        assert _get(url, Authorization=auth("prometheus", "wrong"))[0] == 401
        assert _get(url, Authorization=auth("nobody", "s3cret"))[0] == 401
        assert _get(url, Authorization=auth("prometheus", "s3cret")) == (200, b"up 1\n")
        assert _get(url, Authorization=auth("prometheus", "s3cret")) == (200, b"up 1\n")
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("tls_server_config:\n  cert_file: /nonexistent.crt\n  key_file: x\n", "not a readable"),
        ("basic_auth_users:\n  u: plaintext\n", "bcrypt hashes"),
        ("http_server_config:\n  http2: true\nextra: 1\n", "unsupported key"),
        ("tls_server_config:\n  cipher_suites: [x]\n", "unsupported key"),
        ("[unclosed", "not valid YAML"),
    ],
)
def test_web_config_mistakes_are_named(tmp_path: Path, text: str, message: str) -> None:
    path = _web_config(tmp_path, text)
    with pytest.raises(ConfigError, match=message) as caught:
        load_web_config(path)
    assert str(path) in str(caught.value)


EXAMPLES = Path(__file__).resolve().parent.parent / "systemd"


def test_the_shipped_examples_pass_promtool_and_check_config(pki: Path, tmp_path: Path) -> None:
    """systemd/web-config.example.yml (with certificates where it names them) passes
    `promtool check web-config` and headsetd's own reading of it; the example configuration
    passes `headsetd check-config`."""
    tls = tmp_path / "tls"
    tls.mkdir()
    for name, source in (
        ("headsetd.crt", "server.crt"),
        ("headsetd.key", "server.key"),
        ("scrapers-ca.crt", "ca.crt"),
    ):
        (tls / name).write_bytes((pki / source).read_bytes())
    web = tmp_path / "web.yml"
    web.write_text((EXAMPLES / "web-config.example.yml").read_text())
    _promtool_checks(web)
    loaded = load_web_config(web)
    assert loaded.tls is not None
    assert loaded.tls.verify_mode == ssl.CERT_REQUIRED
    assert BasicAuth(loaded.users).allows(
        "Basic " + base64.b64encode(b"prometheus:change-me").decode()
    )
    config = tmp_path / "headsetd.toml"
    config.write_text((EXAMPLES / "headsetd.toml.example").read_text())
    result = subprocess.run(
        [sys.executable, "-m", "headsetd", "check-config", str(config)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
