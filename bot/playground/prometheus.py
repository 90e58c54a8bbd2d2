"""A simulated Prometheus for the playground: the checklist's two queries answered from a metric trace.

The bot's real ``PrometheusMetrics`` adapter queries it over loopback HTTP (``/api/v1/query``), so the metric watch,
the stage gates, the baseline and the rollback criteria all run as in production. It evaluates no PromQL: it knows
the checklist's error-rate and p95 queries (the baseline's wider window included) and answers each from a trace
that is healthy with a little noise until the person at the terminal pushes it into a breach (``breach errors
7%``, ``breach latency 400ms``) or back (``recover``). Any other query gets an empty vector, as a series that
does not exist would.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

_WINDOW = re.compile(r"\[[^\]]*\]")
HEALTHY_ERROR_RATE = 0.003
HEALTHY_P95_S = 0.120


@dataclass(frozen=True)
class Level:
    """What the service does from ``since`` (a time.time() value) on."""

    since: float
    error_rate: float
    p95_s: float


def _shape(query: str) -> str:
    """A query with its range windows blanked: the baseline asks the p95 query over a wider window."""
    return _WINDOW.sub("[]", " ".join(query.split()))


class PrometheusStandIn:
    """Serves instant queries for one service; ``levels`` is the trace, newest last."""

    def __init__(
        self,
        *,
        error_rate_query: str,
        p95_query: str,
        on_sample: Callable[[float | None, float | None], None] = lambda _e, _p: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._error_shape = _shape(error_rate_query)
        self._p95_shape = _shape(p95_query)
        self._on_sample = on_sample
        self._clock = clock
        self._lock = threading.Lock()
        self.levels = [Level(0.0, HEALTHY_ERROR_RATE, HEALTHY_P95_S)]
        self.queries = 0
        self._pending_error: float | None = None
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return None

            def _serve(self, params: dict[str, list[str]]) -> None:
                status, body = stand_in.answer(params)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._serve(parse_qs(urlsplit(self.path).query))

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length") or 0))
                self._serve(parse_qs(raw.decode()))

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, daemon=True, name="prometheus-stand-in"
        )

    def start(self) -> PrometheusStandIn:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # --- the trace ------------------------------------------------------------------------------------

    def breach(self, *, error_rate: float | None = None, p95_s: float | None = None) -> Level:
        """From now on the service fails (or is slow) at this level; the other figure keeps its level."""
        with self._lock:
            last = self.levels[-1]
            level = Level(
                self._clock(),
                last.error_rate if error_rate is None else error_rate,
                last.p95_s if p95_s is None else p95_s,
            )
            self.levels.append(level)
            return level

    def recover(self) -> Level:
        with self._lock:
            level = Level(self._clock(), HEALTHY_ERROR_RATE, HEALTHY_P95_S)
            self.levels.append(level)
            return level

    def at(self, when: float) -> tuple[float, float]:
        """(error rate, p95 seconds) at ``when``: the level then, with a little steady noise."""
        with self._lock:
            level = next(lv for lv in reversed(self.levels) if lv.since <= when)
        wobble = math.sin(when / 7.0)
        return (
            max(level.error_rate * (1 + 0.12 * wobble), 0.0),
            max(level.p95_s * (1 + 0.06 * math.sin(when / 5.0)), 0.001),
        )

    # --- the API --------------------------------------------------------------------------------------

    def answer(self, params: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        query = (params.get("query") or [""])[0]
        raw_time = (params.get("time") or [""])[0]
        try:
            when = float(raw_time) if raw_time else self._clock()
        except ValueError:
            return 400, {"status": "error", "errorType": "bad_data", "error": f"invalid time {raw_time!r}"}
        shape = _shape(query)
        error_rate, p95 = self.at(when)
        if shape == self._error_shape:
            value: float | None = error_rate
            self._note(error=error_rate, live=not raw_time)
        elif shape == self._p95_shape:
            value = p95
            self._note(p95=p95, live=not raw_time)
        else:
            value = None
        result = [] if value is None else [{"metric": {}, "value": [when, f"{value:.6f}"]}]
        with self._lock:
            self.queries += 1
        return 200, {"status": "success", "data": {"resultType": "vector", "result": result}}

    def _note(self, *, error: float | None = None, p95: float | None = None, live: bool) -> None:
        """The watch asks for the error rate, then the p95: report the pair once both are in."""
        if not live:
            return
        if error is not None:
            self._pending_error = error
        elif p95 is not None:
            self._on_sample(self._pending_error, p95)
            self._pending_error = None
