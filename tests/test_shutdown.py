"""Stopping the bot closes the connections its own adapters opened, so a replica that stops leaks no sockets."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.conftest import make_settings, start_bot
from tests.fakes.slack_api import FakeSlack


class _KeepAlivePrometheus(ThreadingHTTPServer):
    """Answers every instant query with one sample and counts the client connections still open."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.open = 0
        self.seen = 0
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as Prometheus serves it: the client decides when to hang up
    server: _KeepAlivePrometheus

    def setup(self) -> None:
        super().setup()
        with self.server.lock:
            self.server.open += 1
            self.server.seen += 1

    def finish(self) -> None:
        super().finish()
        with self.server.lock:
            self.server.open -= 1

    def do_GET(self) -> None:
        body = json.dumps(
            {"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": [0, "1"]}]}}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def prometheus() -> Iterator[_KeepAlivePrometheus]:
    server = _KeepAlivePrometheus()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _until(condition: object, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


def test_stop_hangs_up_on_prometheus(db_url: str, fake_slack: FakeSlack, prometheus: _KeepAlivePrometheus) -> None:
    rb = start_bot(make_settings(db_url, fake_slack, prometheus_url=prometheus.url), fake_slack)
    try:
        reading = rb.bot.extras["watch"].metrics.query("up")
        assert reading.value == 1.0
        assert prometheus.seen >= 1 and prometheus.open >= 1  # the adapter keeps its connection for the next sample
    finally:
        rb.stop()
    assert _until(lambda: prometheus.open == 0), f"{prometheus.open} connection(s) to Prometheus left open after stop"
