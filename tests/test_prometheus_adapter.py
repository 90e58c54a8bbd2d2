"""PrometheusMetrics over httpx.MockTransport, with response bodies as Prometheus 2.42 writes them."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from bot.adapters.prometheus import (
    DEFAULT_ERROR_RATE_QUERY,
    DEFAULT_P95_QUERY,
    PrometheusMetrics,
    render_query,
)
from bot.errors import MetricsError
from bot.ports import Reading

URL = "http://prometheus.test:9090"


def vector(*values: str) -> dict[str, Any]:
    result = [{"metric": {"service": "backend"}, "value": [1717171717.123, v]} for v in values]
    return {"status": "success", "data": {"resultType": "vector", "result": result}}


def error(error_type: str, message: str) -> dict[str, Any]:
    return {"status": "error", "errorType": error_type, "error": message}


def metrics_answering(
    status: int, body: dict[str, Any] | str, seen: list[httpx.Request] | None = None
) -> PrometheusMetrics:
    def handle(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        if isinstance(body, str):
            return httpx.Response(status, text=body, headers={"Content-Type": "text/plain; charset=utf-8"})
        return httpx.Response(status, json=body)

    return PrometheusMetrics(URL, client=httpx.Client(transport=httpx.MockTransport(handle)))


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (vector("0.0123"), Reading(0.0123)),
        (vector("0"), Reading(0.0)),
        (vector("+Inf"), Reading(float("inf"))),
        (vector(), Reading(None, "no series matched (empty result)")),
        (vector("NaN"), Reading(None, "NaN: no traffic in the window")),
        (vector("0.1", "0.2", "0.3"), Reading(None, "ambiguous: 3 series, aggregate the query to one", True)),
        (
            {"status": "success", "data": {"resultType": "scalar", "result": [1717171717.1, "0.25"]}},
            Reading(0.25),
        ),
        (
            {"status": "success", "data": {"resultType": "scalar", "result": [1717171717.1, "NaN"]}},
            Reading(None, "NaN: no traffic in the window"),
        ),
    ],
    ids=["value", "zero", "inf", "empty", "nan", "ambiguous", "scalar", "scalar-nan"],
)
def test_query_reads_one_number_or_says_why_not(body: dict[str, Any], expected: Reading) -> None:
    assert metrics_answering(200, body).query("q") == expected


def test_matrix_answer_is_an_error_not_a_number() -> None:
    body = {
        "status": "success",
        "data": {"resultType": "matrix", "result": [{"metric": {}, "values": [[1.0, "1"], [2.0, "2"]]}]},
    }
    reading = metrics_answering(200, body).query("up[1m]")
    assert reading == Reading(
        None, "the query returned a matrix, not one number: drop the [range] selector", is_error=True
    )


@pytest.mark.parametrize(
    ("status", "body", "reason"),
    [
        (
            400,
            error("bad_data", 'invalid parameter "query": 1:28: parse error: unclosed left parenthesis'),
            'Prometheus answered HTTP 400 bad_data: invalid parameter "query": 1:28: parse error: '
            "unclosed left parenthesis",
        ),
        (
            422,
            error("execution", 'found duplicate series for the match group {service="backend"}'),
            "Prometheus answered HTTP 422 execution: "
            'found duplicate series for the match group {service="backend"}',
        ),
        (
            503,
            error("timeout", "query timed out in expression evaluation"),
            "Prometheus answered HTTP 503 timeout: query timed out in expression evaluation",
        ),
        (404, "404 page not found\n", "Prometheus answered HTTP 404: 404 page not found"),
        (502, "", "Prometheus answered HTTP 502: empty body"),
        (200, "<html>Grafana</html>", "Prometheus answered HTTP 200: <html>Grafana</html>"),
        (
            200,
            {"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}}]}},
            "Prometheus answered in an unexpected shape (KeyError: 'value')",
        ),
        (200, {"status": "success"}, "Prometheus answered without a result (is this a Prometheus API URL?)"),
    ],
    ids=[
        "400-bad-data",
        "422-execution",
        "503-timeout",
        "404-plain",
        "502-empty",
        "html",
        "shape",
        "no-data",
    ],
)
def test_provider_failures_are_error_readings_never_exceptions(
    status: int, body: dict[str, Any] | str, reason: str
) -> None:
    assert metrics_answering(status, body).query("q") == Reading(None, reason, is_error=True)


def test_query_sends_the_expression_time_and_a_server_side_timeout() -> None:
    seen: list[httpx.Request] = []
    metrics = metrics_answering(200, vector("0.5"), seen)
    metrics.query("sum(up)", at=datetime(2024, 6, 1, 12, 0, 0, 500000, tzinfo=UTC))

    (request,) = seen
    assert request.method == "GET"
    assert request.url.path == "/api/v1/query"
    assert dict(request.url.params) == {"query": "sum(up)", "time": "1717243200.500", "timeout": "5s"}
    assert request.extensions["timeout"] == {"connect": 5.0, "read": 5.0, "write": 5.0, "pool": 5.0}


def test_long_queries_are_posted_as_a_form() -> None:
    seen: list[httpx.Request] = []
    long_query = "sum(" + " + ".join(f'up{{instance="host-{i}"}}' for i in range(200)) + ")"
    assert metrics_answering(200, vector("1"), seen).query(long_query) == Reading(1.0)

    (request,) = seen
    assert request.method == "POST"
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert httpx.QueryParams(request.content.decode())["query"] == long_query


def test_naive_time_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        metrics_answering(200, vector("1")).query("up", at=datetime(2024, 6, 1, 12, 0))


def raising(exc: Exception) -> PrometheusMetrics:
    def handle(request: httpx.Request) -> httpx.Response:
        raise exc

    return PrometheusMetrics(
        "https://reader:s3cret@prom.internal:9090/",
        client=httpx.Client(transport=httpx.MockTransport(handle)),
    )


def test_timeout_is_an_error_reading_naming_the_budget() -> None:
    reading = raising(httpx.ReadTimeout("timed out")).query("up")
    assert reading == Reading(None, "Prometheus did not answer within 5 s", is_error=True)


def test_unreachable_server_is_named_without_its_credentials() -> None:
    reading = raising(httpx.ConnectError("[Errno 111] Connection refused")).query("up")
    assert reading == Reading(None, "cannot reach Prometheus at https://prom.internal:9090", is_error=True)
    assert "s3cret" not in (reading.no_data_reason or "")


def test_refused_loopback_port_over_the_real_transport() -> None:
    with socket.socket() as sock:  # bind and close: nothing listens on the port afterwards
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with PrometheusMetrics(f"http://127.0.0.1:{port}", timeout_s=2.0) as metrics:
        reading = metrics.query("up")
    assert reading == Reading(None, f"cannot reach Prometheus at http://127.0.0.1:{port}", is_error=True)


def matrix(*values: tuple[float, str], series: int = 1) -> dict[str, Any]:
    result = [{"metric": {"i": str(i)}, "values": [list(v) for v in values]} for i in range(series)]
    return {"status": "success", "data": {"resultType": "matrix", "result": result}}


def test_query_range_returns_points_with_nan_as_none() -> None:
    seen: list[httpx.Request] = []
    metrics = metrics_answering(200, matrix((1717243200, "0.01"), (1717243215, "NaN")), seen)
    start = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)

    points = metrics.query_range("q", start, start + timedelta(seconds=15), timedelta(seconds=15))

    assert points == [(start, 0.01), (start + timedelta(seconds=15), None)]
    assert dict(seen[0].url.params) == {
        "query": "q",
        "start": "1717243200.000",
        "end": "1717243215.000",
        "step": "15s",
        "timeout": "5s",
    }


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (
            400,
            error("bad_data", "exceeded maximum resolution of 11,000 points per timeseries"),
            "Could not read metrics: Prometheus answered HTTP 400 bad_data: exceeded maximum resolution",
        ),
        (200, matrix((1.0, "1"), series=2), "Could not read metrics: ambiguous: 2 series"),
    ],
)
def test_query_range_failures_raise_metrics_error(status: int, body: dict[str, Any], message: str) -> None:
    start = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
    with pytest.raises(MetricsError) as raised:
        metrics_answering(status, body).query_range("q", start, start, timedelta(seconds=15))
    assert raised.value.user_message.startswith(message)


def test_query_range_empty_is_no_points() -> None:
    start = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
    assert metrics_answering(200, matrix()).query_range("q", start, start, timedelta(seconds=1)) == []


def test_default_queries_render_to_one_series_per_value() -> None:
    selector = 'service="backend"'
    assert render_query(DEFAULT_ERROR_RATE_QUERY, selector=selector) == (
        '(sum(rate(http_requests_total{service="backend",code=~"5.."}[1m])) or vector(0))'
        ' / sum(rate(http_requests_total{service="backend"}[1m]))'
    )
    assert render_query(DEFAULT_P95_QUERY, selector=selector, window="30s") == (
        "histogram_quantile(0.95, sum by (le) "
        '(rate(http_request_duration_seconds_bucket{service="backend"}[30s])))'
    )


@pytest.mark.parametrize(
    ("selector", "window"),
    [("", "1m"), ('service="a"}', "1m"), ('service="a"', "1 minute"), ('service="a"', "")],
)
def test_render_query_refuses_what_would_not_parse(selector: str, window: str) -> None:
    with pytest.raises(ValueError, match=r"selector|window"):
        render_query(DEFAULT_P95_QUERY, selector=selector, window=window)
