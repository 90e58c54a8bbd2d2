"""One Prometheus query per distinct expression per sample of the metric watch, shared by the releases it serves.

Releases of one service run one checklist, whose queries name the service: with 200 releases in a canary the watch
asked Prometheus the same two expressions 200 times each sample. Inside ``one_sample()`` a repeated query (same
PromQL, same ``at``) is answered with the reading the first one got, so each distinct (service, query) costs one
request a sample however many releases watch it; a Prometheus that is down costs one timeout, not one a release.
Outside a sample (a gate's figures, a baseline captured at a transition) every query goes to Prometheus.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime

from bot.ports import Metrics, Reading


class SharedReadings:
    """A ``Metrics`` that shares readings within ``one_sample()``, on the thread that runs the sample."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._local = threading.local()

    @contextmanager
    def one_sample(self) -> Iterator[None]:
        self._local.readings = {}
        try:
            yield
        finally:
            self._local.readings = None

    def per_sample(self, tick: Callable[[], None]) -> Callable[[], None]:
        """``tick`` with its queries shared: what the clock runs each sample interval."""

        def sample() -> None:
            with self.one_sample():
                tick()

        return sample

    def query(self, promql: str, *, at: datetime | None = None) -> Reading:
        readings: dict[tuple[str, datetime | None], Reading] | None = getattr(self._local, "readings", None)
        if readings is None:
            return self._metrics.query(promql, at=at)
        key = (promql, at)
        if key not in readings:
            readings[key] = self._metrics.query(promql, at=at)
        return readings[key]
