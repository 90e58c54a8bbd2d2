"""PrometheusMetrics: the ``Metrics`` port over Prometheus's HTTP API (reference/integrations.md §4).

``query`` never raises for a provider failure: a timeout, a refused connection, an error envelope or an
ambiguous answer comes back as a ``Reading`` with ``is_error=True`` and the reason in plain words, so the
metric watch counts it as NO_DATA (blind) rather than as a pass. Quiet answers (empty vector, NaN) are
``Reading(None, reason)`` without ``is_error``. Only programming errors (a naive datetime) raise.

The shipped queries aggregate to exactly one series and are templates: ``{selector}`` is the label matchers
that pick the service (``service="backend"``), ``{window}`` the rate window. The window bounds detection time:
after a step change the ratio over the window crosses a threshold part-way through it (at 10 % errors against
a 5 % line, half-way), so a 1m window with 15 s scrapes costs ~30 s before the first breaching sample.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Self, TypeVar
from urllib.parse import urlencode, urlsplit, urlunsplit

import httpx

from bot.errors import MetricsError
from bot.ports import Reading

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_WINDOW = "1m"
# "or vector(0)": an instrumented service that has never answered 5xx has no 5xx series at all, and without it
# a healthy service would read as "no series matched" forever. The denominator still makes the ratio empty
# when the selector matches nothing, and NaN (0/0) when there is no traffic.
DEFAULT_ERROR_RATE_QUERY = (
    '(sum(rate(http_requests_total{{selector},code=~"5.."}[{window}])) or vector(0))'
    " / sum(rate(http_requests_total{{selector}}[{window}]))"
)
DEFAULT_P95_QUERY = (
    "histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket{{selector}}[{window}])))"
)

_DURATION = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")
_POST_ABOVE = 1500  # bytes of encoded query string: proxies commonly cap request lines near 4-8 KiB
_BODY_EXCERPT = 200


def render_query(template: str, *, selector: str, window: str = DEFAULT_WINDOW) -> str:
    """Fill ``{selector}`` and ``{window}`` in a query template; other braces are PromQL's own."""
    if not selector.strip() or any(ch in selector for ch in "{}"):
        raise ValueError(f'selector must be label matchers such as service="backend", got {selector!r}')
    if not _DURATION.match(window):
        raise ValueError(f"window must be a Prometheus duration such as 1m or 30s, got {window!r}")
    return template.replace("{selector}", selector).replace("{window}", window)


class _ProviderFailure(Exception):
    """Internal: Prometheus failed; ``reason`` is in plain words and free of secrets."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _redacted(url: str) -> str:
    """Drop user:password@ and the query string, which may carry credentials."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _number(text: Any) -> float:
    # Prometheus sends sample values as strings because JSON has no NaN or Inf; float() parses "NaN", "+Inf".
    if not isinstance(text, str):
        raise _ProviderFailure(f"unexpected sample value {text!r} in Prometheus's answer")
    try:
        return float(text)
    except ValueError as e:
        raise _ProviderFailure(f"unexpected sample value {text!r} in Prometheus's answer") from e


class PrometheusMetrics:
    """Evaluates PromQL on one Prometheus server; ``timeout_s`` bounds every request, connect included."""

    def __init__(self, base_url: str, *, timeout_s: float = 5.0, client: httpx.Client | None = None) -> None:
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        self._base_url = base_url.rstrip("/")
        self._shown_url = _redacted(self._base_url)
        self._timeout_s = timeout_s
        self._timeout = httpx.Timeout(timeout_s)
        self._owns_client = client is None
        self._client = client if client is not None else httpx.Client(timeout=self._timeout)

    def close(self) -> None:
        """Close the HTTP client if this adapter created it."""
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def query(self, promql: str, *, at: datetime | None = None) -> Reading:
        """Evaluate an instant query that should yield one number; failures come back as error readings."""
        params = {"query": promql}
        if at is not None:
            params["time"] = _unix(at)
        try:
            return _shaped(_instant, self._call("/api/v1/query", params))
        except _ProviderFailure as failure:
            log.warning("prometheus query failed: %s", failure.reason)
            return Reading(None, failure.reason, is_error=True)

    def query_range(
        self, promql: str, start: datetime, end: datetime, step: timedelta
    ) -> list[tuple[datetime, float | None]]:
        """Evaluate a range query that should yield one series; NaN points become None.

        Raises ``MetricsError`` when Prometheus fails: charts and baselines have no NO_DATA path.
        """
        if step <= timedelta(0) or end < start:
            raise ValueError("query_range needs start <= end and a positive step")
        params = {
            "query": promql,
            "start": _unix(start),
            "end": _unix(end),
            "step": f"{step.total_seconds():g}s",
        }
        try:
            return _shaped(_series, self._call("/api/v1/query_range", params))
        except _ProviderFailure as failure:
            raise MetricsError(
                f"Could not read metrics: {failure.reason}.", detail=failure.reason
            ) from failure

    def _call(self, path: str, params: dict[str, str]) -> Any:
        # Ask Prometheus to give up at the same moment we would, so it stops the work instead of finishing
        # a query nobody reads.
        params = {**params, "timeout": f"{self._timeout_s:g}s"}
        url = self._base_url + path
        try:
            if len(urlencode(params)) > _POST_ABOVE:
                response = self._client.post(url, data=params, timeout=self._timeout)
            else:
                response = self._client.get(url, params=params, timeout=self._timeout)
        except httpx.TimeoutException as e:
            raise _ProviderFailure(f"Prometheus did not answer within {self._timeout_s:g} s") from e
        except httpx.TransportError as e:
            raise _ProviderFailure(f"cannot reach Prometheus at {self._shown_url}") from e
        return _data(response)


def _unix(at: datetime) -> str:
    if at.tzinfo is None:
        raise ValueError("Prometheus times must be timezone-aware")
    return f"{at.timestamp():.3f}"


def _data(response: httpx.Response) -> Any:
    """Return the envelope's ``data``, or raise _ProviderFailure with Prometheus's own words."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        excerpt = response.text[:_BODY_EXCERPT].strip() or "empty body"
        raise _ProviderFailure(f"Prometheus answered HTTP {response.status_code}: {excerpt}")
    if body.get("status") != "success":
        error_type = body.get("errorType", "unknown")
        error = body.get("error", "no error message")
        raise _ProviderFailure(f"Prometheus answered HTTP {response.status_code} {error_type}: {error}")
    if not response.is_success:
        raise _ProviderFailure(f"Prometheus answered HTTP {response.status_code}")
    for warning in body.get("warnings") or ():
        log.info("prometheus warning: %s", warning)
    data = body.get("data")
    if not isinstance(data, dict) or "resultType" not in data or "result" not in data:
        raise _ProviderFailure("Prometheus answered without a result (is this a Prometheus API URL?)")
    return data


def _shaped(parse: Callable[[dict[str, Any]], T], data: dict[str, Any]) -> T:
    """Run a result parser; a body that lacks the documented fields is a provider failure, not a crash."""
    try:
        return parse(data)
    except (KeyError, IndexError, TypeError) as e:
        raise _ProviderFailure(f"Prometheus answered in an unexpected shape ({type(e).__name__}: {e})") from e


def _instant(data: dict[str, Any]) -> Reading:
    result_type, result = data["resultType"], data["result"]
    if result_type == "scalar":
        return _reading(_number(result[1]))
    if result_type != "vector":
        raise _ProviderFailure(
            f"the query returned a {result_type}, not one number: drop the [range] selector"
        )
    if not result:
        return Reading(None, "no series matched (empty result)")
    if len(result) > 1:
        raise _ProviderFailure(f"ambiguous: {len(result)} series, aggregate the query to one")
    return _reading(_number(result[0]["value"][1]))


def _reading(value: float) -> Reading:
    if math.isnan(value):
        return Reading(None, "NaN: no traffic in the window")
    return Reading(value)


def _series(data: dict[str, Any]) -> list[tuple[datetime, float | None]]:
    if data["resultType"] != "matrix":
        raise _ProviderFailure(f"a range query returned a {data['resultType']}")
    result = data["result"]
    if not result:
        return []
    if len(result) > 1:
        raise _ProviderFailure(f"ambiguous: {len(result)} series, aggregate the query to one")
    points: list[tuple[datetime, float | None]] = []
    for at, text in result[0]["values"]:
        value = _number(text)
        points.append((datetime.fromtimestamp(float(at), UTC), None if math.isnan(value) else value))
    return points
