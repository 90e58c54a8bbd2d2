"""The metric watch asks Prometheus each expression once a sample, however many releases watch the same service and
query (bot.usecases.shared_readings), and every release still gets its sample and its verdict."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from bot.ports import Reading
from bot.usecases.shared_readings import SharedReadings
from tests.test_watch_batch import canaries
from tests.test_watch_unit import BAD, World, world_for


@pytest.fixture
def world(db_url: str, tmp_path: Path) -> Iterator[World]:
    yield from world_for(db_url, tmp_path)


def canary_releases(world: World, n: int) -> list[int]:
    """``n`` more releases of the same checklist (the same service) in the first canary stage, and the first."""
    return [world.release_id, *canaries(world, n)]


FRESHNESS = "max(timestamp("


def sampled_queries(world: World) -> list[str]:
    return [q for q, at in world.metrics.queries if at is None]


def test_releases_on_one_service_share_each_query_and_each_gets_its_verdict(world: World) -> None:
    releases = canary_releases(world, 4)
    readings = SharedReadings(world.metrics)
    watch = world.watch_with(metrics=readings)
    sample = readings.per_sample(watch.tick)
    sample()  # the baselines and the first sample
    # The five canaries began at the same moment: one baseline query, and every release has its baseline.
    assert len([q for q, at in world.metrics.queries if at is not None]) == 1
    for rid in releases:
        assert world.services.view(rid).release.baseline_p95_s == pytest.approx(0.05)
    world.metrics.queries.clear()
    for _ in range(3):  # a sustained breach, as the script reads it once a sample
        world.metrics.error_rate.append(BAD)
        world.clock.advance(1)
        sample()
    queries = sampled_queries(world)
    # The error rate and the p95 (and the scrape-time probe the sampling follows), once each a sample, for five
    # releases: three samples ask each distinct expression three times, not fifteen or more.
    asked = Counter(queries)
    assert any(q.startswith(FRESHNESS) for q in asked) and len(asked) == 3, asked
    assert set(asked.values()) == {3}, asked
    fired = {i.release_id for i in _incidents(world, releases)}
    assert fired == set(releases)  # the one reading reached every release's judgement


def test_without_sharing_each_release_asks_for_itself(world: World) -> None:
    # The same world through the watch as the tests above build it: the count the sharing saves.
    canary_releases(world, 4)
    world.sample()
    world.metrics.queries.clear()
    world.sample()
    asked = Counter(q for q in sampled_queries(world) if not q.startswith(FRESHNESS))
    # Each of the five releases asks for itself, every sample the helper takes.
    assert len(asked) == 2 and all(n >= 5 and n % 5 == 0 for n in asked.values()), asked


def test_outside_a_sample_every_query_reaches_prometheus() -> None:
    asked: list[tuple[str, datetime | None]] = []

    class Counting:
        def query(self, promql: str, *, at: datetime | None = None) -> Reading:
            asked.append((promql, at))
            return Reading(float(len(asked)))

    readings = SharedReadings(Counting())
    assert readings.query("up").value == 1.0
    assert readings.query("up").value == 2.0  # a gate's figures, a baseline: always fresh
    with readings.one_sample():
        assert readings.query("up").value == 3.0
        assert readings.query("up").value == 3.0
        assert readings.query("errors").value == 4.0  # another service's query is its own
        assert readings.query("up", at=datetime(2026, 1, 1)).value == 5.0  # and so is another moment
    assert readings.query("up").value == 6.0
    assert len(asked) == 6


def _incidents(world: World, releases: list[int]) -> list:  # type: ignore[type-arg]
    with world.uow() as uow:  # type: ignore[operator]
        return [i for rid in releases for i in uow.watch.incidents.for_release(rid)]
