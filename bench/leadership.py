"""Measure how fast leadership moves: after a silent network cut, after kill -9, and after a clean stop.

Not a test: run ``.venv/bin/python -m bench.leadership [--runs 3]`` from the repository root; Postgres must
answer at ``TEST_DATABASE_URL`` (default ``postgresql+psycopg://postgres@127.0.0.1:5432/test``; a scratch database
is created beside it and dropped afterwards).

Two real ``release-bot serve`` replicas, each polled for ``releasebot_leader`` every 0.1 s:

- **cut**: ``tests/network_cut.py``, alternating the server's side of the cut kept and closed. Cut → the old
  leader shows 0 (it stopped acting), cut → the standby shows 1, whether both ever showed 1, how the probe timers'
  claims split, and SIGTERM → exit of the cut-off replica.
- **kill -9** of the leader's whole process: → the standby shows 1 (the lease has to run out).
- **SIGTERM** of the leader: → the standby shows 1 (the lease is given up).
"""

from __future__ import annotations

import argparse
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.db.migrate import upgrade  # noqa: E402
from bot.domain.leadership import LeaseTiming  # noqa: E402
from tests.conftest import FAST_CHECKLIST, PG_URL, postgres_available, pytest_sessionfinish, reset_postgres  # noqa: E402
from tests.fakes.slack_api import FakeSlack  # noqa: E402
from tests.network_cut import leader_gauge, run_cut  # noqa: E402
from tests.proc import BotProcess, bot_env  # noqa: E402


def _wait(predicate: Callable[[], bool], timeout: float) -> float | None:
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        if predicate():
            return time.monotonic() - began
        time.sleep(0.05)
    return None


def handover(fake: FakeSlack, workdir: Path, how: str) -> float | None:
    """Seconds from the leader's end (``kill`` or ``term``) until the standby shows it leads."""
    reset_postgres()
    upgrade(PG_URL)
    env = bot_env(PG_URL, fake.base_url, FAST_CHECKLIST)
    a = BotProcess(env, workdir / f"{how}-a.log").start()
    b: BotProcess | None = None
    try:
        if _wait(lambda: leader_gauge(a) == 1.0, 20) is None:
            raise RuntimeError("the first replica was not elected")
        b = BotProcess(env, workdir / f"{how}-b.log").start()
        standby = b
        time.sleep(2.0)
        assert a.proc is not None
        a.proc.send_signal(signal.SIGKILL if how == "kill" else signal.SIGTERM)
        took = _wait(lambda: leader_gauge(standby) == 1.0, 20)
        a.proc.wait(30)
        return took
    finally:
        for bot in (a, b):
            if bot is not None and bot.proc is not None and bot.proc.poll() is None:
                bot.terminate()


def _summary(name: str, values: list[float | None]) -> str:
    got = [v for v in values if v is not None]
    missed = len(values) - len(got)
    if not got:
        return f"| {name} | – | – | – | {missed} of {len(values)} never |"
    return (
        f"| {name} | {min(got):.2f} | {statistics.median(got):.2f} | {max(got):.2f} |"
        f" {missed} of {len(values)} never |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="runs of each scenario (cut: per server side)")
    args = parser.parse_args()
    reason = postgres_available()
    if reason is not None:
        raise SystemExit(reason)
    timing = LeaseTiming()
    down: list[float | None] = []
    up: list[float | None] = []
    term: list[float | None] = []
    overlaps = 0
    interleaved = 0
    try:
        with tempfile.TemporaryDirectory(prefix="bench-leadership-") as tmp, FakeSlack() as fake:
            workdir = Path(tmp)
            for run in range(args.runs * 2):
                server_side = "closed" if run % 2 else "kept"
                fake.reset()
                rundir = workdir / f"cut-{run}"
                rundir.mkdir()
                out = run_cut(rundir, fake, close_server_side=server_side == "closed")
                down.append(out.stepped_down_s)
                up.append(out.took_over_s)
                term.append(out.sigterm_s)
                overlaps += len(out.both_leading)
                mixed = bool(out.a_claims and out.b_claims and max(out.a_claims) > min(out.b_claims))
                interleaved += mixed
                print(
                    f"cut {run + 1} ({server_side}): old leader stopped after {out.stepped_down_s} s, standby led "
                    f"after {out.took_over_s} s, both leading in {len(out.both_leading)} samples, claims "
                    f"{len(out.a_claims)} then {len(out.b_claims)}{' INTERLEAVED' if mixed else ''}, "
                    f"SIGTERM {out.sigterm_s:.2f} s",
                    flush=True,
                )
            killed = [handover(fake, workdir, "kill") for _ in range(args.runs)]
            stopped = [handover(fake, workdir, "term") for _ in range(args.runs)]
    finally:
        pytest_sessionfinish(None, 0)  # type: ignore[arg-type]
    print()
    print(
        f"Lease {timing.lease_s:g} s, renewed every {timing.renew_s:g} s, statement deadline {timing.statement_s:g} s: "
        f"bounds {timing.step_down_bound_s:g} s to step down, {timing.takeover_bound_s:g} s to take over."
    )
    print()
    print("| seconds | min | median | max | |")
    print("|---|---|---|---|---|")
    print(_summary("silent cut → old leader stops", down))
    print(_summary("silent cut → standby leads", up))
    print(_summary("SIGTERM of the cut-off replica → exit", term))
    print(_summary("kill -9 of the leader → standby leads", killed))
    print(_summary("SIGTERM of the leader → standby leads", stopped))
    print()
    print(f"samples with two leaders: {overlaps}; runs whose leader-only claims interleaved: {interleaved}")


if __name__ == "__main__":
    main()
