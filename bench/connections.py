"""How many Postgres connections one replica of ``release-bot serve`` holds: idle, and at its peak under load.

    python -m bench.connections [--clicks 400] [--starts 60]

From the repository root, with the local Postgres (BENCH_PG_ADMIN, default postgres@127.0.0.1:5432). It starts the
real ``serve`` (both processes) on a scratch database against the fake Slack in its own process, samples
``pg_stat_activity`` for that database every 20 ms, and drives what makes a replica open connections: a burst of
``/release start`` (each one posts a dozen messages and redraws them), then bursts of checkbox clicks at c=50 across
those releases, while the leader's clock, metric watch and outbox run. It prints the idle count, the peak and the
ceiling the configuration allows (each process's pool, plus the leader's lock connection), for POSTGRES.md.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import threading
import time
from pathlib import Path

from bench.driver import channel_of, click_bodies, click_targets, drive, start_bodies
from bench.fake_proc import FakeSlackProcess
from bench.procs import PG_ADMIN_URL, ScratchPostgres, bot_argv, spawn
from bench.run import RESULTS_DIR, bot_env, migrate

POOL = 10 + 10  # bot/db/engine.py: pool_size + max_overflow, per process that builds a bot


class Counter:
    """Samples the connections to one database until stopped; keeps the peak and the last value."""

    def __init__(self, database: str, interval_s: float = 0.02) -> None:
        self.database, self.interval_s = database, interval_s
        self.peak = self.last = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import psycopg

        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            while not self._stop.is_set():
                row = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (self.database,)
                ).fetchone()
                self.last = int(row[0]) if row else 0
                self.peak = max(self.peak, self.last)
                time.sleep(self.interval_s)

    def __enter__(self) -> Counter:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(2)


def _first_call_after(fake: FakeSlackProcess, count: int, timeout_s: float = 30.0) -> float:
    """Wait until the bot has called Slack since ``count`` calls; the moment it was seen (time.monotonic())."""
    deadline = time.monotonic() + timeout_s
    while fake.count() <= count and time.monotonic() < deadline:
        time.sleep(0.05)
    return time.monotonic()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--starts", type=int, default=60, help="releases started in the first burst (c=10)")
    parser.add_argument("--clicks", type=int, default=400, help="checkbox clicks afterwards (c=50)")
    args = parser.parse_args(argv)
    log_dir = RESULTS_DIR / "logs"
    fake = FakeSlackProcess().start()
    try:
        with contextlib.ExitStack() as stack:
            scratch = stack.enter_context(ScratchPostgres())
            migrate(scratch.url)
            counter = stack.enter_context(Counter(scratch.name))
            bot = spawn("bot-connections", bot_argv(), bot_env(scratch.url, fake, {}), log_dir)
            stack.callback(bot.stop)
            time.sleep(3.0)  # the leader's first jobs have run: what a replica holds at rest
            idle = counter.last
            starts = start_bodies(fake, args.starts, "connections")
            before = fake.count()
            started = drive(bot.url, starts, 10)
            if started.errors:
                raise SystemExit(f"bench: starts failed: {started.failures}; see {bot.log_path}")
            fake.wait_quiet(2.0, 300, since=_first_call_after(fake, before))
            posted = fake.messages([channel_of(b) for b in starts])
            targets = click_targets(posted, args.clicks)
            if not targets:
                raise SystemExit(f"bench: no checklist was posted ({sum(map(len, posted.values()))} messages)")
            for _round in range(3):
                drive(bot.url, click_bodies(fake, targets), 50)
            fake.wait_quiet(2.0, 120)
            after = counter.last
            peak = counter.peak
    finally:
        fake.stop()
    ceiling = 2 * POOL + 1
    print(f"connections of one replica (serving + work process) to its database, {Path(sys.argv[0]).name}:")
    print(f"  idle after start: {idle}")
    print(f"  peak under {args.starts} starts and {3 * len(targets)} clicks at c=50: {peak}")
    print(f"  after the load: {after}")
    print(f"  ceiling by configuration: {ceiling} (two pools of {POOL}, one leader lock)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
