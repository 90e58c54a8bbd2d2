"""PromQL the metric watch derives from the checklist's queries: the rate window, the same query over another
window, and when Prometheus last scraped what a query reads (scrape-aligned sampling).

Pure functions; must not import slack_bolt, slack_sdk, httpx or kubernetes.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from bot.domain.checklist import MetricsSpec, format_duration, parse_duration

_RATE_WINDOW = re.compile(r"\[((?:\d+(?:ms|s|m|h|d|w|y))+)\]")


def rate_window(query: str, fallback: timedelta) -> timedelta:
    """The first range selector's duration in a query (``1m`` in ``rate(x[1m])``), for the "why"."""
    match = _RATE_WINDOW.search(query)
    try:
        return parse_duration(match.group(1)) if match else fallback
    except ValueError:  # ms, d, w, y: units checklists do not use for rate windows
        return fallback


def widen(query: str, window: timedelta) -> str:
    """The same query over another window: the baseline is the p95 over the whole baseline window."""
    return _RATE_WINDOW.sub(f"[{format_duration(window)}]", query)


_RANGE_SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*\s*(?:\{[^{}]*\})?)\s*\[[^\]]+\]")
# Alignment spacing: a sample needs this share of ``sample_interval`` since the last one, so several targets
# scraped at different moments (each advances the newest scrape) still give one sample per interval.
MIN_SPACING = 0.75
# Without a new scrape for this many intervals (a scrape interval longer than the sample interval, a stuck
# target) the watch samples anyway, so blindness is still counted and reported.
STALE_AFTER = 4


def freshness_query(query: str) -> str | None:
    """A query for the newest scrape behind ``query``: the latest sample time of its range selectors.

    Every series a rate reads, or-ed: a service that never answered 5xx has no 5xx series, and that must not make
    the watch think Prometheus stopped scraping. None when the query has no range selector to read."""
    selectors = list(dict.fromkeys(m.group(1) for m in _RANGE_SELECTOR.finditer(query)))
    if not selectors:
        return None
    return "max(" + " or ".join(f"timestamp({s})" for s in selectors) + ")"


def sample_due(
    now: datetime,
    last: datetime | None,
    scrape: float | None,
    last_scrape: float | None,
    spec: MetricsSpec,
) -> bool:
    """Whether to take a sample now: on Prometheus's own scrape cadence when it can say when it scraped.

    Sampling right after each new scrape removes the sampling phase from detection (up to one whole interval
    when the watch's clock and Prometheus's drift apart), and two consecutive breaches are then two different
    scrapes, one scrape apart: a blip one scrape shows still reaches one sample only. Without a scrape time
    (a query without range selectors, no series) the watch samples every ``sample_interval``, as before."""
    if last is None:
        return True
    since = now - last
    if scrape is None:
        # A poll's own jitter must not make a sample wait a whole extra interval.
        return since >= spec.sample_interval * 0.9
    if since < spec.sample_interval * MIN_SPACING:
        return False
    return last_scrape is None or scrape > last_scrape or since >= spec.sample_interval * STALE_AFTER
