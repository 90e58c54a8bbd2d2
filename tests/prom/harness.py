"""Run the real Prometheus server (Debian's binary, unpacked by scripts/fetch-prometheus.sh) against the
fake exporter, on loopback, with a 1 s scrape interval and a throw-away TSDB.

Import the ``exporter`` and ``prometheus`` fixtures into a test module to use them; they are module-scoped,
so one server serves a whole module. Without the binary the tests skip with the command that fetches it; under
CI (``CI`` set and not "false"/"0") a missing binary is a failure, so the suite cannot go green by skipping.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import httpx
import pytest

from tests.prom.exporter import Exporter

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_BINARY = REPO_ROOT / ".cache/prometheus/usr/bin/prometheus"
SCRAPE_INTERVAL_S = 1
T = TypeVar("T")


def find_binary() -> Path | None:
    """The prometheus binary from $PROMETHEUS_BIN, else the fetch script's default location."""
    configured = os.environ.get("PROMETHEUS_BIN")
    path = Path(configured) if configured else DEFAULT_BINARY
    return path if path.is_file() and os.access(path, os.X_OK) else None


def require_binary() -> Path:
    """Return the binary, or skip (locally) / fail (in CI) saying how to get it."""
    binary = find_binary()
    if binary is not None:
        return binary
    where = os.environ.get("PROMETHEUS_BIN") or str(DEFAULT_BINARY)
    message = (
        f"prometheus binary not found at {where}: run scripts/fetch-prometheus.sh (or set PROMETHEUS_BIN)"
    )
    if os.environ.get("CI", "").lower() not in ("", "0", "false"):
        pytest.fail(message)
    pytest.skip(message)


def poll(probe: Callable[[], T | None], *, timeout: float, what: str, interval: float = 0.2) -> T:
    """Call ``probe`` until it returns something other than None, or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result is not None:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up after {timeout} s waiting for {what}")
        time.sleep(interval)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class PrometheusServer:
    """A running Prometheus: its URL, process and log file."""

    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def is_ready(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"prometheus exited with {self.process.returncode}:\n{self.log_tail()}")
        try:
            return httpx.get(f"{self.url}/-/ready", timeout=1.0).status_code == 200
        except httpx.TransportError:
            return False

    def ready_or_none(self) -> bool | None:
        return True if self.is_ready() else None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def start_prometheus(binary: Path, *, targets: list[str], workdir: Path) -> PrometheusServer:
    """Start Prometheus scraping ``targets`` every second; return once /-/ready answers."""
    config = {
        "global": {
            "scrape_interval": f"{SCRAPE_INTERVAL_S}s",
            "evaluation_interval": f"{SCRAPE_INTERVAL_S}s",
        },
        "scrape_configs": [{"job_name": "exporter", "static_configs": [{"targets": targets}]}],
    }
    config_path = workdir / "prometheus.yml"
    config_path.write_text(json.dumps(config))  # JSON is YAML
    # The free port can be taken between our probe and Prometheus's bind; try a few.
    for attempt in range(3):
        port = _free_port()
        log_path = workdir / f"prometheus-{attempt}.log"
        with log_path.open("wb") as log_file:
            process = subprocess.Popen(
                [
                    str(binary),
                    f"--config.file={config_path}",
                    f"--storage.tsdb.path={workdir / f'data-{attempt}'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                ],
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        server = PrometheusServer(f"http://127.0.0.1:{port}", process, log_path)
        try:
            poll(server.ready_or_none, timeout=30, what="Prometheus /-/ready")
            return server
        except RuntimeError:
            if "address already in use" not in server.log_tail():
                raise
        except TimeoutError:
            server.stop()
            raise
    raise RuntimeError("could not find a free port for Prometheus in 3 attempts")


def wait_for_samples(server: PrometheusServer, *, service: str, scrapes: int) -> None:
    """Wait until Prometheus holds ``scrapes`` samples of a service: rate() needs two in its window."""
    lookback = scrapes * SCRAPE_INTERVAL_S + 30
    query = f'count_over_time(http_requests_total{{service="{service}",code="200"}}[{lookback}s])'

    def enough() -> bool | None:
        body = httpx.get(f"{server.url}/api/v1/query", params={"query": query}, timeout=2.0).json()
        result = body["data"]["result"]
        return True if result and float(result[0]["value"][1]) >= scrapes else None

    poll(enough, timeout=lookback, what=f"{scrapes} scrapes of service={service}")


@pytest.fixture(scope="module")
def exporter() -> Iterator[Exporter]:
    """The fake service's /metrics server, on a free loopback port."""
    server = Exporter().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def prometheus(exporter: Exporter, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    """A real Prometheus scraping the exporter every second; stopped with SIGTERM afterwards."""
    binary = require_binary()
    server = start_prometheus(
        binary, targets=[exporter.target], workdir=tmp_path_factory.mktemp("prometheus")
    )
    yield server
    server.stop()
