"""HttpHealthChecker against a local threaded HTTP server (and a TLS one it does not trust)."""

from __future__ import annotations

import contextlib
import json
import socket
import socketserver
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import httpx
import pytest

from bot.adapters.health import HttpHealthChecker, summarise_body
from tests.fakes.tls import make_tls_files

HUGE = 5 * 1024 * 1024


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Keep pytest output for failures."""

    def do_GET(self) -> None:
        self.server.hits.append(self.path)
        if self.path == "/healthz":
            body = {"status": "ok", "version": "1.4.2", "db": {"primary": "up"}, "ready": True, "lag": None}
            self._send(200, json.dumps(body).encode(), "application/json")
        elif self.path == "/broken":
            self._send(500, b'{"status": "error", "error": "database\\nunreachable"}', "application/json")
        elif self.path == "/slow":
            self.server.release.wait(5)  # released at teardown, so the thread ends at once
            self._send(200, b'{"status": "ok"}', "application/json")
        elif self.path == "/text":
            self._send(200, b"OK\n  all   systems\tgo\n", "text/plain")
        elif self.path == "/huge":
            self._send(200, b"A" * HUGE, "text/plain")
        elif self.path == "/moved":
            self.send_response(302)
            self.send_header("Location", "/login")
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            self._send(404, b"404 page not found\n", "text/plain")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        # The checker reads only the first 64 KB of a huge body and hangs up.
        with contextlib.suppress(OSError):
            self.wfile.write(body)


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.hits: list[str] = []
        self.release = threading.Event()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client hanging up mid-body is expected here."""


@pytest.fixture(scope="module")
def server() -> Iterator[_Server]:
    srv = _Server()
    thread = threading.Thread(target=srv.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield srv
    srv.release.set()
    srv.shutdown()
    srv.server_close()
    thread.join(timeout=5)


@pytest.fixture
def base(server: _Server) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


@pytest.fixture
def checker() -> Iterator[HttpHealthChecker]:
    c = HttpHealthChecker(timeout_s=2.0)
    yield c
    c.close()


def test_healthy_json_is_ok_with_scalar_summary(checker: HttpHealthChecker, base: str) -> None:
    result = checker.check(f"{base}/healthz")
    assert result.ok is True
    assert result.status_code == 200
    assert result.url == f"{base}/healthz"
    assert result.summary == "status=ok version=1.4.2 ready=true lag=null"  # the nested "db" is left out
    assert result.latency_ms > 0


def test_server_error_is_not_ok_and_summarised_on_one_line(checker: HttpHealthChecker, base: str) -> None:
    result = checker.check(f"{base}/broken")
    assert result.ok is False
    assert result.status_code == 500
    assert result.summary == "status=error error=database unreachable"


def test_not_found_plain_text(checker: HttpHealthChecker, base: str) -> None:
    result = checker.check(f"{base}/nope")
    assert (result.ok, result.status_code, result.summary) == (False, 404, "404 page not found")


def test_slow_endpoint_times_out_in_plain_words(base: str, server: _Server) -> None:
    checker = HttpHealthChecker(timeout_s=0.3)
    try:
        result = checker.check(f"{base}/slow")
    finally:
        checker.close()
    assert result.ok is False
    assert result.status_code is None
    assert result.summary == "no answer within 0.3 s"
    assert "/slow" in server.hits  # it did connect: this is a read timeout, not a refusal


def test_refused_connection(checker: HttpHealthChecker) -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    result = checker.check(f"http://127.0.0.1:{port}/healthz")  # the port is closed now
    assert (result.ok, result.status_code, result.summary) == (False, None, "connection refused")


def test_non_json_body_is_first_line_of_text(checker: HttpHealthChecker, base: str) -> None:
    result = checker.check(f"{base}/text")
    assert result.ok is True
    assert result.summary == "OK all systems go"


def test_huge_body_is_cut_to_a_short_summary(checker: HttpHealthChecker, base: str) -> None:
    result = checker.check(f"{base}/huge")
    assert result.ok is True
    assert len(result.summary) == 200
    assert result.summary == "A" * 199 + "…"


def test_redirect_is_not_followed_and_not_ok(checker: HttpHealthChecker, base: str) -> None:
    result = checker.check(f"{base}/moved")
    assert (result.ok, result.status_code, result.summary) == (False, 302, "redirects to /login")


def test_untrusted_tls_is_reported_as_tls_error(checker: HttpHealthChecker, tmp_path: Any) -> None:
    tls = make_tls_files(tmp_path)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    context = tls.server_context()

    def serve_one() -> None:
        conn, _ = listener.accept()
        try:
            with context.wrap_socket(conn, server_side=True):
                pass
        except (ssl.SSLError, OSError):
            pass  # the client refuses our certificate: that is the point
        finally:
            conn.close()

    thread = threading.Thread(target=serve_one, daemon=True)
    thread.start()
    try:
        result = checker.check(f"https://127.0.0.1:{port}/healthz")
    finally:
        thread.join(timeout=5)
        listener.close()
    assert (result.ok, result.status_code) == (False, None)
    assert result.summary == "TLS error: certificate not trusted"


def test_dns_failure_is_reported_in_plain_words() -> None:
    # No resolver is reachable offline, so the transport raises what httpcore raises for a failed lookup.
    def resolve_fails(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno -2] Name or service not known", request=request)

    client = httpx.Client(transport=httpx.MockTransport(resolve_fails))
    try:
        result = HttpHealthChecker(client=client).check("http://web.prod.internal/healthz")
    finally:
        client.close()
    assert (result.ok, result.status_code, result.summary) == (False, None, "DNS lookup failed")


def test_invalid_url_does_not_raise(checker: HttpHealthChecker) -> None:
    result = checker.check("ftp://example.invalid/health")
    assert result.ok is False
    assert result.summary.startswith("invalid URL")


@pytest.mark.parametrize(
    ("body", "content_type", "summary"),
    [
        (b"", "text/plain", "(empty body)"),
        (b"[1, 2, 3]", "application/json", "JSON list of 3 items"),
        (b'{"checks": {"db": "up"}}', "application/json", "JSON object with keys checks"),
        (
            b"<html><body>Maintenance</body></html>",
            "text/html",
            "HTML page: <html><body>Maintenance</body></html>",
        ),
        (b'"ok"', "application/json", "ok"),
    ],
)
def test_summarise_body_shapes(body: bytes, content_type: str, summary: str) -> None:
    assert summarise_body(body, content_type) == summary
