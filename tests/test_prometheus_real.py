"""The shipped PromQL, PrometheusMetrics and the rollback judge against a real Prometheus (1 s scrapes).

Set PROM_TEST_WINDOW (default 10s) to measure detection with another rate window; run with ``-s`` to see the
measured detection time.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from bot.adapters.prometheus import (
    DEFAULT_ERROR_RATE_QUERY,
    DEFAULT_P95_QUERY,
    PrometheusMetrics,
    render_query,
)
from bot.domain.analysis import Action, CriterionWatch, Direction, Sample, Verdict, explain, judge
from bot.domain.checklist import Criterion, CriterionKind
from tests.prom.exporter import Exporter, Step
from tests.prom.harness import PrometheusServer, exporter, prometheus, wait_for_samples

__all__ = ("exporter", "prometheus")  # the harness's fixtures, used by name below
pytestmark = pytest.mark.slow

WINDOW = os.environ.get("PROM_TEST_WINDOW", "10s")
WINDOW_S = int(timedelta(seconds=int(WINDOW[:-1]) * {"s": 1, "m": 60}[WINDOW[-1]]).total_seconds())
ERRORS = Criterion("error-rate", "Error rate at or above 5 %", CriterionKind.ERROR_RATE, threshold=0.05)
# Evaluate each sample this long after the scrape it should see: later than ingestion, earlier than the next.
EVAL_DELAY_S = 0.5


@pytest.fixture(scope="module", autouse=True)
def traffic(exporter: Exporter, prometheus: PrometheusServer) -> None:
    """Start every service's traffic at once, so their rate windows fill while the first tests run."""
    exporter.set("mixed", error_ratio=0.2, per_scrape=200, latencies=[(0.05, 0.9), (0.3, 0.1)])
    exporter.set("clean", error_ratio=0.0, per_scrape=100)
    exporter.set("idle", per_scrape=0)
    exporter.set("split", per_scrape=10)
    exporter.set("canary", error_ratio=0.005, per_scrape=200)


def queries(service: str) -> tuple[str, str]:
    selector = f'service="{service}"'
    return (
        render_query(DEFAULT_ERROR_RATE_QUERY, selector=selector, window=WINDOW),
        render_query(DEFAULT_P95_QUERY, selector=selector, window=WINDOW),
    )


def test_shipped_queries_read_the_ratio_and_p95_the_service_produces(
    prometheus: PrometheusServer, exporter: Exporter
) -> None:
    wait_for_samples(prometheus, service="mixed", scrapes=WINDOW_S + 2)
    error_query, p95_query = queries("mixed")

    with PrometheusMetrics(prometheus.url) as metrics:
        ratio, p95 = metrics.query(error_query), metrics.query(p95_query)
        chart = metrics.query_range(
            error_query, datetime.now(UTC) - timedelta(seconds=5), datetime.now(UTC), timedelta(seconds=1)
        )

    assert ratio.value == pytest.approx(0.2, rel=0.01)
    # 90 % at 50 ms and 10 % at 300 ms: the 95th percentile lies half-way into the (0.25, 0.5] bucket.
    assert exporter.expected_p95("mixed") == pytest.approx(0.375)
    assert p95.value == pytest.approx(0.375, rel=0.01)
    assert len(chart) >= 5
    assert all(value == pytest.approx(0.2, rel=0.01) for _, value in chart)


def test_a_service_that_never_failed_reads_zero_not_no_data(
    prometheus: PrometheusServer, exporter: Exporter
) -> None:
    wait_for_samples(prometheus, service="clean", scrapes=3)
    error_query, _ = queries("clean")
    naive = error_query.replace(" or vector(0)", "")

    with PrometheusMetrics(prometheus.url) as metrics:
        reading, without_fallback = metrics.query(error_query), metrics.query(naive)

    assert reading.value == 0.0
    # Why the shipped query carries "or vector(0)": there is no 5xx series to divide.
    assert without_fallback.value is None
    assert without_fallback.no_data_reason == "no series matched (empty result)"


def test_unknown_service_is_empty_and_idle_service_is_nan(
    prometheus: PrometheusServer, exporter: Exporter
) -> None:
    wait_for_samples(prometheus, service="idle", scrapes=3)

    with PrometheusMetrics(prometheus.url) as metrics:
        unknown = [metrics.query(q) for q in queries("nobody")]
        idle = [metrics.query(q) for q in queries("idle")]

    assert [(r.value, r.no_data_reason, r.is_error) for r in unknown] == [
        (None, "no series matched (empty result)", False)
    ] * 2
    assert [(r.value, r.no_data_reason, r.is_error) for r in idle] == [
        (None, "NaN: no traffic in the window", False)
    ] * 2


def test_prometheus_refusals_are_error_readings(prometheus: PrometheusServer, exporter: Exporter) -> None:
    wait_for_samples(prometheus, service="split", scrapes=2)

    with PrometheusMetrics(prometheus.url) as metrics:
        broken = metrics.query("sum(rate(http_requests_total[1m])")
        several = metrics.query('http_requests_total{service="split"} or http_requests_total{service="idle"}')

    assert broken.is_error
    assert broken.value is None
    assert broken.no_data_reason is not None
    assert broken.no_data_reason.startswith("Prometheus answered HTTP 400 bad_data: invalid parameter")
    assert several.is_error
    assert several.no_data_reason is not None
    assert several.no_data_reason.startswith("ambiguous: ")


class Sampler:
    """One watch sample per scrape of ``service``, evaluated just after that scrape: every 1 s."""

    def __init__(self, prometheus: PrometheusServer, exporter: Exporter, service: str) -> None:
        self.exporter, self.service = exporter, service
        self.metrics = PrometheusMetrics(prometheus.url)
        self.query = queries(service)[0]
        self.watch = CriterionWatch.for_criterion(ERRORS, None)
        self.seen = len(exporter.scrape_times(service))

    def next(self) -> tuple[Verdict, Action, float]:
        scraped = self.exporter.wait_for_scrape(self.service, after=self.seen)
        self.seen += 1
        at = scraped + EVAL_DELAY_S
        time.sleep(max(0.0, at - time.time()))
        reading = self.metrics.query(self.query, at=datetime.fromtimestamp(at, UTC))
        sample = Sample(
            datetime.fromtimestamp(at, UTC), reading.value, reading.no_data_reason, reading.is_error
        )
        verdict = judge(ERRORS, sample, baseline_p95_s=None)
        return verdict, self.watch.observe(sample, verdict).action, time.time()


def test_sustained_errors_fire_once_and_a_one_sample_blip_does_not(
    prometheus: PrometheusServer, exporter: Exporter, record_property: Callable[[str, object], None]
) -> None:
    wait_for_samples(prometheus, service="canary", scrapes=WINDOW_S + 2)
    sampler = Sampler(prometheus, exporter, "canary")
    assert [sampler.next()[:2] for _ in range(3)] == [(Verdict.PASS, Action.NONE)] * 3

    # A blip the window shows for exactly one sample: a burst of errors drowned by a surge of good traffic
    # on the next scrape. (A burst alone would stay in the rate window for the whole window.)
    burst = 200.0 * WINDOW_S  # as many failures as the window's whole traffic: ~50 %
    exporter.script("canary", [Step(ok=0, errors=burst), Step(ok=100 * burst, errors=0)])
    after_blip = [sampler.next()[:2] for _ in range(WINDOW_S + 2)]
    assert [v for v, _ in after_blip].count(Verdict.BREACH) == 1
    assert all(action is Action.NONE for _, action in after_blip)

    exporter.set("canary", error_ratio=0.10)
    switched = time.time()
    outcomes = [sampler.next() for _ in range(WINDOW_S + 5)]
    sampler.metrics.close()

    actions = [action for _, action, _ in outcomes]
    assert actions.count(Action.FIRE) == 1
    fired = actions.index(Action.FIRE)
    assert [v for v, _, _ in outcomes[fired - 1 : fired + 1]] == [Verdict.BREACH, Verdict.BREACH]
    assert all(v is Verdict.BREACH for v, _, _ in outcomes[fired:])
    why = explain(ERRORS, sampler.watch, baseline_p95_s=None, window=timedelta(seconds=WINDOW_S))
    assert why.value is not None
    assert why.value >= 0.05
    assert why.direction in (Direction.RISING, Direction.STEADY)

    detection_s = outcomes[fired][2] - switched
    record_property("detection_s", round(detection_s, 1))
    print(
        f"\ndetection: FIRE {detection_s:.1f} s after the switch to 10 % errors "
        f"(sample {fired + 1} after the switch; 1 s scrape, window {WINDOW}, K=2)"
    )


def test_the_watch_reads_when_prometheus_last_scraped_a_service(
    prometheus: PrometheusServer, exporter: Exporter
) -> None:
    """The freshness query behind scrape-aligned sampling: the newest scrape of the series the rate reads, also
    for a service that never answered 5xx (its 5xx series does not exist), and nothing for an unknown one."""
    from bot.usecases.watch import freshness_query

    wait_for_samples(prometheus, service="clean", scrapes=3)
    error_query, _ = queries("clean")
    fresh = freshness_query(error_query)
    assert fresh is not None
    with PrometheusMetrics(prometheus.url) as metrics:
        first = metrics.query(fresh).value
        assert first is not None and time.time() - 5 < first <= time.time() + 1
        deadline = time.monotonic() + 5
        later = first
        while later == first and time.monotonic() < deadline:
            time.sleep(0.2)
            later = metrics.query(fresh).value or first
        unknown = metrics.query(freshness_query(queries("no-such-service")[0]) or "")
    assert later > first  # the next 1 s scrape moved it
    assert unknown.value is None
