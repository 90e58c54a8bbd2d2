"""The metric watch's cost a sample with many releases in a canary: each release asking Prometheus for itself,
against the releases of one service sharing each query (bot.usecases.shared_readings).

    .venv/bin/python -m bench.watch_batch                  # 200 releases, SQLite, 5 ms a query, 3 samples
    .venv/bin/python -m bench.watch_batch --releases 50 --query-ms 20

In process, on a scratch SQLite file: the real watch, unit of work and incident desk, a leader's lease, and a
stand-in Prometheus that answers after ``--query-ms`` (a round trip to a real one) and counts the queries. Every
release runs the same checklist, so they all watch one service with the same two queries. Prints, for each mode,
the queries, wall time and CPU time of one sample (mean of the samples after the first, which takes baselines).
"""

from __future__ import annotations

import argparse
import importlib
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bot.ports import Reading  # noqa: E402
from bot.usecases.shared_readings import SharedReadings  # noqa: E402
from bot.usecases.watch import MetricWatch  # noqa: E402

# The watch unit tests' world: a scratch database, a leader, the real watch and incident desk with recording alerts.
# Imported by name so that type-checking the bench does not type-check the tests.
unit = importlib.import_module("tests.test_watch_unit")


class SlowPrometheus:
    """Answers every query with a healthy reading after ``delay_s``; counts them."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.count = 0

    def query(self, promql: str, *, at: datetime | None = None) -> Reading:
        self.count += 1
        time.sleep(self.delay_s)
        return Reading(0.05 if "histogram_quantile" in promql else 0.004)


def run(world: Any, releases: int, shared: bool, delay_s: float, samples: int) -> dict[str, float]:
    prometheus = SlowPrometheus(delay_s)
    readings = SharedReadings(prometheus)
    watch = MetricWatch(
        uow=world.uow,
        clock=world.clock,
        services=world.services,
        metrics=readings if shared else prometheus,
        desk=world.desk,
        lang="en",
    )
    tick = readings.per_sample(watch.tick) if shared else watch.tick
    world.clock.advance(60)
    tick()  # the first: a baseline for each release
    queries, wall, cpu = prometheus.count, 0.0, 0.0
    for _ in range(samples):
        world.clock.advance(60)
        began, began_cpu = time.perf_counter(), time.process_time()
        tick()
        wall += time.perf_counter() - began
        cpu += time.process_time() - began_cpu
    return {
        "releases": releases,
        "queries_per_sample": (prometheus.count - queries) / samples,
        "wall_s": round(wall / samples, 3),
        "cpu_s": round(cpu / samples, 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--releases", type=int, default=200)
    parser.add_argument("--query-ms", type=float, default=5.0)
    parser.add_argument("--samples", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        db_url = f"sqlite:///{tmp}/watch.db"
        worlds = unit.world_for(db_url, Path(tmp))
        world = next(worlds)
        try:
            for i in range(args.releases - 1):
                view = world.services.start_release(channel_id=f"C0W{i:05d}", version="v1.4.0", actor=unit.ALICE)
                with world.uow() as uow:
                    uow.releases.update(
                        view.release.id,
                        step="canary-10",
                        step_started_at=world.clock.now(),
                        thread_ts=f"1700000001.{i:06d}",
                    )
                    uow.commit()
            rows = [
                ("each release asks", run(world, args.releases, False, args.query_ms / 1000, args.samples)),
                ("shared per sample", run(world, args.releases, True, args.query_ms / 1000, args.samples)),
            ]
        finally:
            worlds.close()
    print(f"| watch, {args.releases} releases in a canary, {args.query_ms:g} ms a query | queries a sample | "
          "wall s a sample | CPU s a sample |")
    print("|---|---|---|---|")
    for name, row in rows:
        print(f"| {name} | {row['queries_per_sample']:g} | {row['wall_s']} | {row['cpu_s']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
