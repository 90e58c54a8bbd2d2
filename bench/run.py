"""Benchmark the real ``release-bot serve`` against the Bolt floor, over loopback, in one command.

    .venv/bin/python bench/run.py            # full: SQLite and Postgres, then the org (bench/org.py), ~50 min
    .venv/bin/python bench/run.py --quick    # smaller counts, about a minute (add --org for the org's quick run)
    .venv/bin/python bench/run.py --engines sqlite --detection 2

The three parts of issue 20 in one run: the bot against the fastest Bolt floor (part 1), the org on one Postgres
with two replicas (part 2, bench/org.py; its soak, bench/soak.py, runs on its own for hours) and the cold starts
(part 3, bench/startup.py, first on each engine).

See bench/README.md for what is measured and how to read the table.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import report, startup  # noqa: E402
from bench.driver import channel_of, click_bodies, click_targets, drive, pooled, start_bodies  # noqa: E402
from bench.fake_proc import FakeSlackProcess  # noqa: E402
from bench.hostile import SlowClients, bombs, probe  # noqa: E402
from bench.procs import (  # noqa: E402
    RssSampler,
    ScratchPostgres,
    Server,
    bot_argv,
    cpu_s,
    floor_argv,
    pss_mb,
    rss_mb,
    spawn,
)
from tests.slack_user import BOT_TOKEN, SECRET  # noqa: E402

RESULTS_DIR = ROOT / "bench" / "results"
# Full runs are committed: RESULTS.md sets the last ones side by side, and a fresh clone must still have them.
RUNS_DIR = ROOT / "bench" / "runs"
HTTP_THREADS = 16  # the bot's default HTTP_THREADS; the floor's server starts a thread per connection
SLOW_CLIENTS = 200  # held open against each server during the "slow" levels (bench/hostile.py)


@dataclass(frozen=True)
class Level:
    """One load level: ``c`` clients, each keeping its connection (``reuse``) or opening one per request, with
    ``slow`` slow clients (one header line every 5 s, never finishing) held against the server meanwhile."""

    c: int
    reuse: bool = True
    slow: int = 0

    @property
    def key(self) -> str:
        return f"{self.c}" + ("" if self.reuse else " new") + (" slow" if self.slow else "")


LEVELS = (
    Level(1),
    Level(10),
    Level(50),
    Level(10, reuse=False),
    Level(50, reuse=False),
    Level(10, slow=SLOW_CLIENTS),
    Level(50, slow=SLOW_CLIENTS),
)


@dataclass(frozen=True)
class Plan:
    clicks: int  # clicks a round
    click_rounds: tuple[int, ...]  # bot-then-floor burst pairs at each level, in LEVELS' order
    starts: tuple[
        int, ...
    ]  # /release start requests a round at each level (for the bot, and as many for the floor)
    start_rounds: tuple[int, ...]  # floor-then-bot burst pairs at each start level
    quiet_s: float  # no Slack call for this long = the bot has gone quiet
    warmup: int  # releases started before measuring; their checkboxes are what gets clicked
    hostile_s: float  # how long bench/hostile.py's probes run while slow clients are held
    cold_starts: int  # bench/startup.py: cold starts a server, for spawn → healthy and idle PSS of each process


# c=10 and c=50 with kept connections get eight rounds. A round there lasts 0.1-0.3 s, and a stall of the VM inside
# it delays up to c round trips at once: with three rounds, whether the p99 of a side held a stall was chance
# (single rounds of one level ranged from 0.63x to 1.40x the floor). The levels with new connections and with
# slow clients get five click rounds (1,000 clicks, stable run to run). Their starts had three rounds (120-150
# starts, so a p99 was the second-slowest start), and runs 6 and 7 each missed a different start ratio there; eight
# rounds (320-400) cost a few minutes. c=50 starts go 50 a round.
FULL = Plan(
    clicks=200,
    click_rounds=(3, 8, 8, 5, 5, 5, 5),
    starts=(100, 40, 50, 40, 50, 40, 50),
    start_rounds=(3, 8, 8, 8, 8, 8, 8),
    quiet_s=2.5,
    warmup=42,
    hostile_s=20.0,
    cold_starts=5,
)
QUICK = Plan(
    clicks=80,
    click_rounds=(1,) * len(LEVELS),
    starts=(40,) * len(LEVELS),
    start_rounds=(1,) * len(LEVELS),
    quiet_s=1.5,
    warmup=2,
    hostile_s=5.0,
    cold_starts=2,
)


def bot_env(database_url: str, fake: FakeSlackProcess, extra: dict[str, str]) -> dict[str, str]:
    return {
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_API_URL": fake.base_url,
        "DATABASE_URL": database_url,
        "RELEASE_BOT_CHECKLIST": str(ROOT / "bot" / "checklist" / "deployment.yaml"),
        "RELEASE_BOT_LANGUAGE": "en",
        "RELEASE_MANAGERS": "*",
        "LOG_LEVEL": "WARNING",
        "HTTP_THREADS": str(HTTP_THREADS),
        **extra,
    }


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _chunks(items: list[str], parts: int) -> list[list[str]]:
    size = -(-len(items) // parts)
    return [items[i : i + size] for i in range(0, len(items), size)]


class Burst:
    """Bursts against one server at one level: their round trips, and the CPU its serving process spent."""

    def __init__(self, server: Server, level: Level) -> None:
        self.server, self.level = server, level
        self.parts: list[Any] = []
        self.cpu_s = 0.0

    def run(self, bodies: list[str]) -> None:
        with contextlib.ExitStack() as stack:
            if self.level.slow:
                stack.enter_context(SlowClients(self.server.port, self.level.slow))
            before = cpu_s(self.server.proc.pid)
            self.parts.append(drive(self.server.url, bodies, self.level.c, reuse=self.level.reuse))
            self.cpu_s += cpu_s(self.server.proc.pid) - before

    def result(self) -> dict[str, Any]:
        row = pooled(self.parts).as_dict()
        # CPU of the process that acks (not of the bot's work process): what each request costs the ack path.
        row["serve_cpu_ms_per_request"] = round(self.cpu_s * 1000 / max(row["requests"], 1), 3)
        return row


def _idle(server: Server) -> dict[str, Any]:
    return {
        "healthy_s": round(server.healthy_after_s, 3),
        "idle_rss_mb": round(rss_mb(server.proc.pid), 1),
        "idle_pss_mb": round(pss_mb(server.proc.pid), 1),
    }


def measure(
    bot: Server, floor: Server, fake: FakeSlackProcess, plan: Plan
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Every level against the bot and the floor, interleaved: each level is a few rounds (``plan``), each a
    pair of a bot burst and a floor burst of the same requests, each begun on a quiet machine. Noise from the machine (CPU
    steal on a shared VM comes and goes by the minute) then falls on both alike; percentiles pool the rounds."""
    time.sleep(0.5)  # let start-up allocations settle before calling it idle
    out_bot, out_floor = _idle(bot), _idle(floor)

    def quiet(before: str) -> None:
        if not fake.wait_quiet(plan.quiet_s, 90):
            say(f"  warning: the bot was still calling Slack when the {before} burst began")

    with RssSampler(bot.proc.pid) as rss, RssSampler(floor.proc.pid) as floor_rss:
        setup = start_bodies(fake, plan.warmup, f"{bot.name}-warm")
        drive(bot.url, setup, 1)
        drive(floor.url, start_bodies(fake, plan.warmup, "floor-warm"), 1)
        channels = [channel_of(b) for b in setup]
        # The warm-up releases' posts are paced per channel and go out ~8 at a time: over a minute of them.
        if not fake.wait_quiet(plan.quiet_s, 300):
            say("  warning: the warm-up releases were still being posted when the clicks began")
        # Clicks first: the starts leave a backlog of paced posts that would blur the calls-per-click count.
        out_bot["click"], out_floor["click"] = {}, {}
        for level, rounds in zip(LEVELS, plan.click_rounds, strict=True):
            quiet("next")
            targets = click_targets(fake.messages(channels), plan.clicks * rounds)
            if len(targets) < plan.clicks * rounds:
                raise RuntimeError(f"only {len(targets)} checkbox items were posted; see {bot.log_path}")
            bot_burst, floor_burst, calls = Burst(bot, level), Burst(floor, level), Counter[str]()
            for part in _chunks(click_bodies(fake, targets), rounds):
                quiet("bot")
                before = fake.count()
                bot_burst.run(part)
                went_quiet = fake.wait_quiet(plan.quiet_s, 60, since=time.monotonic())
                calls.update(fake.methods_since(before))
                floor_burst.run(part)  # the very bodies the bot was sent
            row = bot_burst.result()
            row["went_quiet"] = went_quiet
            row["slack_calls"] = dict(calls)
            row["calls_per_click"] = round(sum(calls.values()) / row["requests"], 3)
            row["releases"] = len({t.channel for t in targets})
            row["messages"] = len({t.message["ts"] for t in targets})
            out_bot["click"][level.key] = row
            out_floor["click"][level.key] = floor_burst.result()
            say(f"  click c={level.key}: bot {_brief(row)}; floor {_brief(out_floor['click'][level.key])}")
        out_bot["start"], out_floor["start"] = {}, {}
        for level, n, rounds in zip(LEVELS, plan.starts, plan.start_rounds, strict=True):
            bot_burst, floor_burst = Burst(bot, level), Burst(floor, level)
            on_quiet = True
            for _ in range(rounds):
                # Each start leaves ~14 s of paced posts behind it, 8 releases at a time: waiting for silence
                # would take many minutes. The floor goes first, after at most 15 s, and the bot's burst follows.
                on_quiet &= fake.wait_quiet(plan.quiet_s, 15)
                floor_burst.run(start_bodies(fake, n, f"floor-c{level.c}"))
                bot_burst.run(start_bodies(fake, n, f"{bot.name}-c{level.c}"))
            out_floor["start"][level.key] = floor_burst.result() | {"began_quiet": on_quiet}
            out_bot["start"][level.key] = bot_burst.result()
            say(
                f"  start c={level.key}: bot {_brief(out_bot['start'][level.key])}; "
                f"floor {_brief(out_floor['start'][level.key])}"
            )
    for out, sampler in ((out_bot, rss), (out_floor, floor_rss)):
        out["peak_rss_mb"] = round(sampler.peak_mb, 1)
        out["peak_pss_mb"] = round(sampler.peak_pss_mb, 1)
    out_bot["hostile"] = hostile(bot, fake, plan)
    return out_bot, out_floor


def hostile(bot: Server, fake: FakeSlackProcess, plan: Plan) -> dict[str, Any]:
    """bench/hostile.py's two steps against the bot: probes while slow clients are held, then header bombs."""
    fake.wait_quiet(plan.quiet_s, 30)
    if bot.proc.poll() is not None:
        raise RuntimeError(f"{bot.name} exited with {bot.proc.returncode}; see {bot.log_path}")
    with SlowClients(bot.port, SLOW_CLIENTS):
        held = probe(bot, fake, plan.hostile_s)
    bombed = bombs(bot)
    say(
        f"  hostile: slowest probe {held['slowest_ms']} ms with {SLOW_CLIENTS} slow clients held "
        f"({held['failed']} failed); twelve 40 MB headers answered {bombed['answers']}, "
        f"peak PSS {bombed['peak_pss_mb']} MB"
    )
    return {"slow_clients": SLOW_CLIENTS, "probes": held, "bombs": bombed}


def _brief(row: dict[str, Any]) -> str:
    calls = f", Slack calls/click {row['calls_per_click']}" if "calls_per_click" in row else ""
    failed = f", FAILED {row['failures']}" if row["errors"] else ""
    cpu = f", serving CPU {row['serve_cpu_ms_per_request']} ms/req"
    return f"p50 {row['p50_ms']} p99 {row['p99_ms']} max {row['max_ms']} ms, {row['per_s']}/s{cpu}{calls}{failed}"


def migrate(database_url: str) -> None:
    """Apply migrations first, as a deployment's migrate Job does: start-up time and memory are then the
    steady state of a replica (a replica that finds the schema current never loads Alembic)."""
    done = subprocess.run(
        [sys.executable, "-m", "bot", "db", "upgrade"],
        env={**os.environ, "DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    if done.returncode != 0:
        raise SystemExit(f"bench: migrating {database_url} failed:\n{done.stderr.strip()}")


def floor_env(fake: FakeSlackProcess) -> dict[str, str]:
    return {
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_API_URL": fake.base_url,
        "HTTP_THREADS": str(HTTP_THREADS),
    }


def run_engine(
    engine: str, fake: FakeSlackProcess, plan: Plan, log_dir: Path, extra: dict[str, str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The bot on one engine and a floor beside it: (bot figures, floor figures)."""
    say(f"bot on {engine}: {plan.cold_starts} cold starts (bench/startup.py)")
    # First, on a machine nothing else of the bench loads: one start at a time, each process's idle PSS.
    cold = startup.measure(engine, fake, plan.cold_starts, log_dir, extra)
    say(f"  {startup.brief(cold)}")
    say(f"bot on {engine}, and the floor (minimal Bolt app) beside it")
    with contextlib.ExitStack() as stack:
        url = scratch_database(engine, log_dir, stack)
        bot = spawn(f"bot-{engine}", bot_argv(), bot_env(url, fake, extra), log_dir)
        stack.callback(bot.stop)
        floor = spawn(f"floor-{engine}", floor_argv(), floor_env(fake), log_dir)
        stack.callback(floor.stop)
        bot_figures, floor_figures = measure(bot, floor, fake, plan)
    bot_figures["cold_start"] = cold
    return bot_figures, floor_figures


def scratch_database(engine: str, log_dir: Path, stack: contextlib.ExitStack) -> str:
    """A fresh, migrated database on ``engine`` for one server, removed when ``stack`` closes; its URL."""
    if engine == "sqlite":
        db_path = log_dir / f"bench-{engine}-{time.time_ns()}.db"
        for suffix in ("", "-wal", "-shm", ".lock"):
            stack.callback(Path(f"{db_path}{suffix}").unlink, missing_ok=True)
        url = f"sqlite:///{db_path}"
    else:
        url = stack.enter_context(ScratchPostgres()).url
    migrate(url)
    return url


def run_detection(runs: int) -> dict[str, Any]:
    # A minute and a quarter for Prometheus's first rate window, then up to ~2 min a run (its breach, the page,
    # and 70 s for the window to forget the errors).
    timeout_s = 120 + 150 * runs
    script = ROOT / "bench" / "detection.py"
    if not script.exists():
        return {"status": "not run: bench/detection.py does not exist yet"}
    say("detection (bench/detection.py)")
    try:
        done = subprocess.run(
            [sys.executable, "-m", "bench.detection", "--runs", str(runs)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"status": f"failed: bench/detection.py ran over {timeout_s} s"}
    return report.parse_detection(done.returncode, done.stdout, done.stderr)


def run_org(quick: bool) -> dict[str, Any]:
    """bench/org.py in this process, after the engines (it starts its own fake Slack, Postgres and replicas)."""
    from bench import org

    say("the org (bench/org.py" + (" --quick" if quick else "") + ")")
    options = org.options(["--quick"] if quick else [])
    figures = org.run(options)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        org.report(figures)
    figures["table"] = printed.getvalue().strip()
    figures["targets"] = org.targets(figures)
    figures["options"] = dict(vars(options))
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small request counts; under a minute")
    parser.add_argument(
        "--engines",
        default=None,
        help="comma-separated: sqlite, postgres (default: both; sqlite only with --quick)",
    )
    parser.add_argument(
        "--detection",
        type=int,
        default=0,
        metavar="RUNS",
        help="also run bench/detection.py with RUNS runs (real Prometheus; ~75 s + ~60 s a run)",
    )
    parser.add_argument(
        "--write-results-md",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="rewrite bench/RESULTS.md (default: on in a full run with part 2, off with --quick or --no-org)",
    )
    parser.add_argument(
        "--bot-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="what-if: extra environment for the bot, e.g. LISTENER_THREADS=64 (repeatable)",
    )
    parser.add_argument(
        "--org",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also run bench/org.py (200 releases, two replicas, a 5-minute storm; ~12 min; its --quick with "
        "--quick). Default: on in full mode, off with --quick",
    )
    args = parser.parse_args(argv)
    extra = dict(kv.split("=", 1) for kv in args.bot_env)
    plan = QUICK if args.quick else FULL
    chosen = args.engines or ("sqlite" if args.quick else "sqlite,postgres")
    engines = [e.strip() for e in chosen.split(",") if e.strip()]
    unknown = set(engines) - {"sqlite", "postgres"}
    if unknown or not engines:
        parser.error(f"unknown engine(s): {', '.join(sorted(unknown)) or '(none)'}")
    log_dir = RESULTS_DIR / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)  # results/ is not committed: a fresh clone has neither
    began = time.perf_counter()
    fake = FakeSlackProcess().start()
    try:
        pairs = {engine: run_engine(engine, fake, plan, log_dir, extra) for engine in engines}
        bots = {engine: pair[0] for engine, pair in pairs.items()}
        floor = {engine: pair[1] for engine, pair in pairs.items()}
    finally:
        fake.stop()
    detection = (
        run_detection(args.detection) if args.detection else {"status": "not run (give --detection RUNS)"}
    )
    with_org = (not args.quick) if args.org is None else args.org
    org_figures = run_org(args.quick) if with_org else None
    mode = "quick" if args.quick else "full" if org_figures is not None else "full plan, part 2 not run"
    mode += "".join(f", {k}={v}" for k, v in extra.items())
    results = report.assemble(
        plan.__dict__, mode, bots, floor, detection, time.perf_counter() - began, org=org_figures
    )
    table = report.render(results)
    print(table)
    report.write_json(results, RESULTS_DIR / "latest.json")
    if not args.quick and org_figures is not None:  # the full runs RESULTS.md sets side by side (all three parts)
        report.write_json(results, RUNS_DIR / f"{time.strftime('%Y%m%d-%H%M%S')}.json")
    write_md = (not args.quick and org_figures is not None) if args.write_results_md is None else args.write_results_md
    if write_md:
        side = report.side_by_side(RUNS_DIR)
        report.write_markdown(results, table + ("\n\n" + side if side else ""), ROOT / "bench" / "RESULTS.md")
    say(f"wrote {RESULTS_DIR / 'latest.json'}" + (" and bench/RESULTS.md" if write_md else ""))
    return 0 if results["all_targets_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
