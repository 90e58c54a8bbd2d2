"""A tiny instrumented "service" for Prometheus to scrape: ``/metrics`` on 127.0.0.1 with the counters and the
histogram the shipped queries read, for any number of ``service`` label values.

Counters advance once per scrape (``per_scrape`` requests, split by the error ratio and latency mix the test
sets), so every ratio Prometheus computes over a window is exact whatever the scrape jitter: rate()'s
extrapolation scales numerator and denominator alike. ``script`` queues one-off scrapes (a burst, a surge) to
shape a blip precisely. The 5xx series appears only after the first error, as with prometheus_client's
labelled counters, so the queries are exercised on a service that never failed.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

# prometheus_client's default buckets: what most Python services expose.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)


@dataclass(frozen=True)
class Step:
    """One scripted scrape: this many good and failed requests, at the service's latency mix."""

    ok: float
    errors: float


@dataclass
class _Service:
    per_scrape: float = 100.0
    error_ratio: float = 0.0
    latencies: tuple[tuple[float, float], ...] = ((0.05, 1.0),)  # (seconds, share of requests)
    script: deque[Step] = field(default_factory=deque)
    ok: float = 0.0
    errors: float = 0.0
    buckets: list[float] = field(default_factory=lambda: [0.0] * (len(BUCKETS) + 1))
    total_seconds: float = 0.0
    scrapes: list[float] = field(default_factory=list)  # wall-clock time of each scrape

    def advance(self) -> None:
        if self.script:
            step = self.script.popleft()
            ok, errors = step.ok, step.errors
        else:
            errors = self.per_scrape * self.error_ratio
            ok = self.per_scrape - errors
        self.ok += ok
        self.errors += errors
        for seconds, share in self.latencies:
            count = (ok + errors) * share
            self.total_seconds += seconds * count
            for i, bound in enumerate((*BUCKETS, float("inf"))):
                if seconds <= bound:
                    self.buckets[i] += count
        self.scrapes.append(time.time())


@dataclass
class _Pod:
    """One pod's container as cAdvisor (use) and kube-state-metrics (limits) show it."""

    cpu_cores: float
    cpu_limit: float
    memory_bytes: float
    memory_limit: float
    cpu_seconds: float = 0.0
    last: float = field(default_factory=time.time)

    def advance(self) -> None:
        now = time.time()
        self.cpu_seconds += self.cpu_cores * (now - self.last)
        self.last = now


class Exporter(Collector):
    """The fake service's metrics plus the HTTP server Prometheus scrapes."""

    def __init__(self) -> None:
        self._services: dict[str, _Service] = {}
        self._pods: dict[tuple[str, str, str], _Pod] = {}
        self._lock = threading.Condition()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._registry = CollectorRegistry(auto_describe=False)
        self._registry.register(self)

    # --- what the test controls ---------------------------------------------------------------------------

    def set(
        self,
        service: str,
        *,
        error_ratio: float | None = None,
        latencies: Sequence[tuple[float, float]] | None = None,
        per_scrape: float | None = None,
    ) -> None:
        """Change a service's behaviour from the next scrape on (creating it if needed)."""
        if latencies is not None and abs(sum(share for _, share in latencies) - 1) > 1e-9:
            raise ValueError("latency shares must add up to 1")
        with self._lock:
            svc = self._services.setdefault(service, _Service())
            if error_ratio is not None:
                svc.error_ratio = error_ratio
            if latencies is not None:
                svc.latencies = tuple(latencies)
            if per_scrape is not None:
                svc.per_scrape = per_scrape

    def set_pod(
        self,
        namespace: str,
        pod: str,
        container: str,
        *,
        cpu_cores: float,
        cpu_limit: float,
        memory_bytes: float,
        memory_limit: float,
    ) -> None:
        """Expose a pod's container CPU use (a counter growing at ``cpu_cores``), memory and their limits."""
        with self._lock:
            key = (namespace, pod, container)
            old = self._pods.get(key)
            self._pods[key] = _Pod(cpu_cores, cpu_limit, memory_bytes, memory_limit)
            if old is not None:
                old.advance()
                self._pods[key].cpu_seconds = old.cpu_seconds

    def script(self, service: str, steps: Sequence[Step]) -> None:
        """Play these scrapes next, then go back to the steady behaviour."""
        with self._lock:
            self._services[service].script.extend(steps)

    def scrape_times(self, service: str) -> list[float]:
        with self._lock:
            return list(self._services[service].scrapes)

    def wait_for_scrape(self, service: str, *, after: int, timeout: float = 10.0) -> float:
        """Block until scrape number ``after + 1`` of ``service`` happened; return its wall-clock time."""
        with self._lock:
            if not self._lock.wait_for(lambda: len(self._services[service].scrapes) > after, timeout):
                raise TimeoutError(f"no scrape of {service} within {timeout} s: is Prometheus running?")
            return self._services[service].scrapes[after]

    def expected_p95(self, service: str) -> float:
        """What histogram_quantile(0.95, ...) gives for the configured mix: linear inside the bucket."""
        with self._lock:
            latencies = self._services[service].latencies
        bounds = (*BUCKETS, float("inf"))
        cumulative = [sum(share for seconds, share in latencies if seconds <= b) for b in bounds]
        rank = 0.95
        for i, count in enumerate(cumulative):
            if count >= rank:
                if bounds[i] == float("inf"):
                    return bounds[i - 1]  # Prometheus answers the highest finite bound
                start, below = (0.0, 0.0) if i == 0 else (bounds[i - 1], cumulative[i - 1])
                return start + (bounds[i] - start) * (rank - below) / (count - below)
        raise AssertionError("cumulative shares never reach 0.95")

    # --- what Prometheus sees ------------------------------------------------------------------------------

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily("http_requests", "Requests served.", labels=["service", "code"])
        latency = HistogramMetricFamily(
            "http_request_duration_seconds", "Request latency.", labels=["service"]
        )
        with self._lock:
            for name, svc in self._services.items():
                requests.add_metric([name, "200"], svc.ok)
                if svc.errors:
                    requests.add_metric([name, "500"], svc.errors)
                labels = [f"{b:g}" for b in BUCKETS] + ["+Inf"]
                latency.add_metric([name], list(zip(labels, svc.buckets, strict=True)), svc.total_seconds)
        yield requests
        yield latency
        pod_labels = ["namespace", "pod", "container"]
        cpu = CounterMetricFamily("container_cpu_usage_seconds", "cAdvisor CPU use.", labels=pod_labels)
        memory = GaugeMetricFamily("container_memory_working_set_bytes", "cAdvisor memory.", labels=pod_labels)
        limits = GaugeMetricFamily(
            "kube_pod_container_resource_limits", "kube-state-metrics limits.", labels=[*pod_labels, "resource"]
        )
        with self._lock:
            for (namespace, pod, container), p in self._pods.items():
                cpu.add_metric([namespace, pod, container], p.cpu_seconds)
                memory.add_metric([namespace, pod, container], p.memory_bytes)
                limits.add_metric([namespace, pod, container, "cpu"], p.cpu_limit)
                limits.add_metric([namespace, pod, container, "memory"], p.memory_limit)
        if self._pods:
            yield cpu
            yield memory
            yield limits

    def _scrape(self) -> bytes:
        with self._lock:
            for svc in self._services.values():
                svc.advance()
            for pod in self._pods.values():
                pod.advance()
            self._lock.notify_all()
        return generate_latest(self._registry)

    # --- lifecycle -----------------------------------------------------------------------------------------

    @property
    def target(self) -> str:
        """host:port for Prometheus's static_configs."""
        assert self._server is not None, "exporter not started"
        host, port = self._server.server_address[:2]
        return f"{host!s}:{port}"

    def start(self) -> Exporter:
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?")[0] != "/metrics":
                    self.send_error(404)
                    return
                body = exporter._scrape()
                self.send_response(200)
                self.send_header("Content-Type", CONTENT_TYPE_PLAIN_0_0_4)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass  # one line per scrape per second drowns the test output

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="exporter", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
