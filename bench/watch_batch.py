"""The metric watch's cost a sample with many releases in a canary: each release asking Prometheus for itself,
against the releases of one service sharing each query (bot.usecases.shared_readings).

    .venv/bin/python -m bench.watch_batch                  # 200 releases, SQLite, 5 ms a query, 3 samples
    .venv/bin/python -m bench.watch_batch --releases 50 --query-ms 20
    .venv/bin/python -m bench.watch_batch --database-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres

In process, on a scratch SQLite file (or, with ``--database-url`` of a Postgres server, a scratch database created
on it for the run and dropped after): the real watch, unit of work and incident desk, a leader's lease, and a
stand-in Prometheus that answers after ``--query-ms`` (a round trip to a real one) and counts the queries. Every
release runs the same checklist, so they all watch one service with the same two queries. Prints, for each mode,
the queries, wall time and CPU time of one sample, and the SQL statements and transactions (commits and rollbacks)
the sample sent to the database (means of the samples after the first, which takes baselines). CPU time is this
process's: on Postgres the server's own work is not in it.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine

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


class StatementCount:
    """Counts the SQL statements and the transactions ended (commit or rollback) on every engine of the process."""

    def __init__(self) -> None:
        self.statements = 0
        self.transactions = 0

    def _statement(self, *_: Any) -> None:
        self.statements += 1

    def _transaction(self, *_: Any) -> None:
        self.transactions += 1

    @contextlib.contextmanager
    def listening(self) -> Iterator[None]:
        hooks = (
            ("before_cursor_execute", self._statement),
            ("commit", self._transaction),
            ("rollback", self._transaction),
        )
        for name, fn in hooks:
            event.listen(Engine, name, fn)
        try:
            yield
        finally:
            for name, fn in hooks:
                event.remove(Engine, name, fn)


@contextlib.contextmanager
def scratch_database(server_url: str | None, tmp: str) -> Iterator[str]:
    """A SQLite file in ``tmp``, or a database of its own on the Postgres server at ``server_url``."""
    if server_url is None:
        yield f"sqlite:///{tmp}/watch.db"
        return
    name = f"watch_batch_{os.getpid()}"
    admin = sa.create_engine(server_url, poolclass=sa.pool.NullPool, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield sa.engine.make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def stage_history(world: Any, samples: int) -> None:
    """``samples`` healthy samples of each metric of every release, 15 s apart from its stage's start; the clock
    moves past them."""
    from bot.db.models import MetricSampleRow, ReleaseRow

    with world.uow() as uow:
        starts = list(uow.session.execute(sa.select(ReleaseRow.id, ReleaseRow.step_started_at)))
        rows = [
            {"release_id": rid, "at": start + timedelta(seconds=15 * k), "metric": metric, "value": value,
             "verdict": "pass"}
            for rid, start in starts
            for k in range(samples)
            for metric, value in (("error_rate", 0.004), ("p95", 0.05))
        ]
        uow.session.execute(sa.insert(MetricSampleRow), rows)
        uow.commit()
    world.clock.advance(15 * samples)


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
    counted = StatementCount()
    with counted.listening():
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
        "statements": counted.statements / samples,
        "transactions": counted.transactions / samples,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--releases", type=int, default=200)
    parser.add_argument("--query-ms", type=float, default=5.0)
    parser.add_argument("--samples", type=int, default=3)
    parser.add_argument(
        "--database-url",
        help="a Postgres server to make a scratch database on (its URL names an existing database, e.g. postgres); "
        "default: a scratch SQLite file",
    )
    parser.add_argument("--only-shared", action="store_true", help="skip the mode where each release asks")
    parser.add_argument(
        "--history",
        type=int,
        default=0,
        help="samples each release already has in its stage, 15 s apart (a stage 30 minutes old: 120); each "
        "sample's gate window reads them all",
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp, scratch_database(args.database_url, tmp) as db_url:
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
            if args.history:
                stage_history(world, args.history)
            rows = [] if args.only_shared else [
                ("each release asks", run(world, args.releases, False, args.query_ms / 1000, args.samples)),
            ]
            rows.append(("shared per sample", run(world, args.releases, True, args.query_ms / 1000, args.samples)))
        finally:
            worlds.close()
    engine = sa.engine.make_url(db_url).get_backend_name()
    history = f", {args.history} samples in the stage" if args.history else ""
    print(f"| watch, {args.releases} releases in a canary, {args.query_ms:g} ms a query, {engine}{history} | "
          "queries a sample | wall s a sample | CPU s a sample | statements a sample | transactions a sample |")
    print("|---|---|---|---|---|---|")
    for name, row in rows:
        print(f"| {name} | {row['queries_per_sample']:g} | {row['wall_s']} | {row['cpu_s']} | "
              f"{row['statements']:g} | {row['transactions']:g} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
