"""One level, bot against floor, for many rounds: each round's p99 and the pooled ratio.

    .venv/bin/python -m bench.level                       # SQLite, c=50, 8 rounds of 200 clicks
    .venv/bin/python -m bench.level --engine postgres --concurrency 10 --rounds 12

The full bench pools three rounds a level. At c=50 a round lasts ~0.2 s, and a stall of the machine inside one
moves the pooled p99 of either side; many rounds of one level show whether a ratio is the code or the stall.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.driver import (  # noqa: E402
    LevelResult,
    channel_of,
    click_bodies,
    click_targets,
    drive,
    pooled,
    start_bodies,
)
from bench.fake_proc import FakeSlackProcess  # noqa: E402
from bench.procs import bot_argv, floor_argv, spawn  # noqa: E402
from bench.run import RESULTS_DIR, bot_env, floor_env, scratch_database  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--engine", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--clicks", type=int, default=200, help="requests a round")
    parser.add_argument(
        "--request",
        choices=("click", "start"),
        default="click",
        help="start: /release start bursts, the floor's first, each on the backlog of paced posts the ones "
        "before left (as in run.py)",
    )
    parser.add_argument(
        "--bot-env", action="append", default=[], metavar="KEY=VALUE", help="extra environment for the bot"
    )
    parser.add_argument("--new-connections", action="store_true", help="a new connection per request")
    args = parser.parse_args(argv)
    extra = dict(kv.split("=", 1) for kv in args.bot_env)
    reuse = not args.new_connections
    log_dir = RESULTS_DIR / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    fake = FakeSlackProcess().start()
    with contextlib.ExitStack() as stack:
        stack.callback(fake.stop)
        url = scratch_database(args.engine, log_dir, stack)
        bot = spawn(f"bot-{args.engine}", bot_argv(), bot_env(url, fake, extra), log_dir)
        stack.callback(bot.stop)
        floor = spawn("floor", floor_argv(), floor_env(fake), log_dir)
        stack.callback(floor.stop)
        setup = start_bodies(fake, 16, "level-warm")
        drive(bot.url, setup, 1)
        drive(floor.url, start_bodies(fake, 16, "level-floor-warm"), 1)
        channels = [channel_of(b) for b in setup]
        bot_parts: list[LevelResult] = []
        floor_parts: list[LevelResult] = []
        # Round 0 is not counted: the first clicks after start-up run cold code on both sides (run.py's c=1 level
        # does that before its c=50 one).
        for n in range(args.rounds + 1):
            if args.request == "start":
                fake.wait_quiet(2.5, 30)
                f = drive(
                    floor.url, start_bodies(fake, args.clicks, f"floor-{n}"), args.concurrency, reuse=reuse
                )
                b = drive(bot.url, start_bodies(fake, args.clicks, f"bot-{n}"), args.concurrency, reuse=reuse)
            else:
                fake.wait_quiet(2.5, 90)
                bodies = click_bodies(fake, click_targets(fake.messages(channels), args.clicks))
                b = drive(bot.url, bodies, args.concurrency, reuse=reuse)
                # The bot's work follows its acks: the floor's burst waits for the redraws to end, as in run.py.
                fake.wait_quiet(2.5, 60, since=time.monotonic())
                f = drive(floor.url, bodies, args.concurrency, reuse=reuse)
            if n == 0:
                continue
            bot_parts.append(b)
            floor_parts.append(f)
            print(
                f"round {n}: bot p50 {b.p50_ms:.1f} p99 {b.p99_ms:.1f} ms, floor p50 {f.p50_ms:.1f} "
                f"p99 {f.p99_ms:.1f} ms, p99 ratio {b.p99_ms / f.p99_ms:.2f}",
                flush=True,
            )
        b, f = pooled(bot_parts), pooled(floor_parts)
        print(
            f"pooled over {args.rounds} rounds, {args.request}, {args.engine}, c={args.concurrency}: "
            f"bot p99 {b.p99_ms:.1f} ms, "
            f"floor p99 {f.p99_ms:.1f} ms, ratio {b.p99_ms / f.p99_ms:.2f}; p50 bot {b.p50_ms:.1f} floor "
            f"{f.p50_ms:.1f} ms, ratio {b.p50_ms / f.p50_ms:.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
