"""Benchmark the real ``release-bot serve`` against the Bolt floor, over loopback, in one command.

    /work/venv/bin/python bench/run.py            # full: SQLite and Postgres, ~4 min
    /work/venv/bin/python bench/run.py --quick    # smaller counts, < 1 min
    /work/venv/bin/python bench/run.py --engines sqlite --no-detection

See bench/README.md for what is measured and how to read the table.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import report  # noqa: E402
from bench.driver import click_bodies, click_targets, drive, start_bodies  # noqa: E402
from bench.fake_proc import FakeSlackProcess  # noqa: E402
from bench.procs import RssSampler, ScratchPostgres, Server, bot_argv, floor_argv, rss_mb, spawn  # noqa: E402
from tests.slack_user import BOT_TOKEN, SECRET  # noqa: E402

RESULTS_DIR = ROOT / "bench" / "results"
CONCURRENCY = (1, 10, 50)
HTTP_THREADS = 16  # the bot's default HTTP_THREADS; the floor gets the same server


@dataclass(frozen=True)
class Plan:
    starts: int  # /release start requests per concurrency level
    clicks: int  # clicks per concurrency level
    quiet_s: float  # no Slack call for this long = the bot has gone quiet
    warmup: int


FULL = Plan(starts=200, clicks=300, quiet_s=2.5, warmup=10)
QUICK = Plan(starts=40, clicks=80, quiet_s=1.5, warmup=2)


def bot_env(database_url: str, fake: FakeSlackProcess, extra: dict[str, str]) -> dict[str, str]:
    return {
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_API_URL": fake.base_url,
        "DATABASE_URL": database_url,
        "RELEASE_BOT_CHECKLIST": str(ROOT / "checklists" / "deployment.yaml"),
        "RELEASE_BOT_LANGUAGE": "en",
        "LOG_LEVEL": "WARNING",
        "HTTP_THREADS": str(HTTP_THREADS),
        **extra,
    }


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def measure(
    server: Server, fake: FakeSlackProcess, plan: Plan, floor_of: dict[str, list[str]] | None = None
) -> dict[str, Any]:
    """Run every level against one server. The bot makes its own releases to click; the floor, which posts
    nothing, is sent the very click bodies the bot was sent (``floor_of``)."""
    time.sleep(0.5)  # let start-up allocations settle before calling it idle
    out: dict[str, Any] = {
        "healthy_s": round(server.healthy_after_s, 3),
        "idle_rss_mb": round(rss_mb(server.proc.pid), 1),
    }
    sent: dict[str, list[str]] = {}
    with RssSampler(server.proc.pid) as rss:
        setup = start_bodies(fake, plan.warmup, f"{server.name}-warm")
        drive(server.url, setup, 1)
        channels = [f"C0B{_channel_no(b)}" for b in setup]
        # Clicks first: the starts leave a backlog of paced posts that would blur the calls-per-click count.
        out["click"] = {}
        for c in CONCURRENCY:
            row: dict[str, Any]
            if floor_of is not None:
                res = drive(server.url, floor_of[str(c)], c)
                row = res.as_dict()
            else:
                if not fake.wait_quiet(plan.quiet_s, 120):
                    say("  warning: the bot was still calling Slack when this burst began")
                targets = click_targets(fake.messages(channels), plan.clicks)
                if len(targets) < plan.clicks:
                    raise RuntimeError(
                        f"only {len(targets)} checkbox items were posted; see {server.log_path}"
                    )
                bodies = sent[str(c)] = click_bodies(fake, targets)
                before = fake.count()
                res = drive(server.url, bodies, c)
                row = res.as_dict()
                row["went_quiet"] = fake.wait_quiet(plan.quiet_s, 60, since=time.monotonic())
                row["slack_calls"] = fake.methods_since(before)
                row["calls_per_click"] = round(sum(row["slack_calls"].values()) / res.requests, 3)
                row["releases"] = len({t.channel for t in targets})
                row["messages"] = len({t.message["ts"] for t in targets})
            out["click"][str(c)] = row
            say(f"  {server.name} click c={c}: {_brief(row)}")
        out["start"] = {}
        for c in CONCURRENCY:
            res = drive(server.url, start_bodies(fake, plan.starts, f"{server.name}-c{c}"), c)
            out["start"][str(c)] = res.as_dict()
            say(f"  {server.name} start c={c}: {_brief(res.as_dict())}")
    out["peak_rss_mb"] = round(rss.peak_mb, 1)
    out["sent_clicks"] = sent
    return out


def _brief(row: dict[str, Any]) -> str:
    calls = f", Slack calls/click {row['calls_per_click']}" if "calls_per_click" in row else ""
    failed = f", FAILED {row['failures']}" if row["errors"] else ""
    return f"p50 {row['p50_ms']} p99 {row['p99_ms']} max {row['max_ms']} ms, {row['per_s']}/s{calls}{failed}"


def _channel_no(body: str) -> str:
    from urllib.parse import parse_qs

    return parse_qs(body)["channel_id"][0][3:]


def migrate(database_url: str) -> None:
    """Apply migrations first, as a deployment's migrate Job does: start-up time and memory are then the
    steady state of a replica (a replica that finds the schema current never loads Alembic)."""
    subprocess.run(
        [sys.executable, "-m", "bot", "db", "upgrade"],
        env={**os.environ, "DATABASE_URL": database_url},
        check=True,
        capture_output=True,
        cwd=ROOT,
    )


def run_bot(
    engine: str, fake: FakeSlackProcess, plan: Plan, log_dir: Path, tuned: bool, extra: dict[str, str]
) -> dict[str, Any]:
    say(f"bot on {engine}")
    if engine == "sqlite":
        db_path = log_dir / f"bench-{int(time.time())}.db"
        migrate(f"sqlite:///{db_path}")
        server = spawn(
            f"bot-{engine}", bot_argv(tuned), bot_env(f"sqlite:///{db_path}", fake, extra), log_dir
        )
        try:
            return measure(server, fake, plan)
        finally:
            server.stop()
            for suffix in ("", "-wal", "-shm", ".lock"):
                Path(f"{db_path}{suffix}").unlink(missing_ok=True)
    with ScratchPostgres() as pg:
        migrate(pg.url)
        server = spawn(f"bot-{engine}", bot_argv(tuned), bot_env(pg.url, fake, extra), log_dir)
        try:
            return measure(server, fake, plan)
        finally:
            server.stop()


def run_floor(
    fake: FakeSlackProcess, plan: Plan, clicks: dict[str, list[str]], log_dir: Path, tuned: bool
) -> dict[str, Any]:
    say("floor (minimal Bolt app)")
    env = {
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_API_URL": fake.base_url,
        "HTTP_THREADS": str(HTTP_THREADS),
        "BENCH_TUNED_SERVER": "1" if tuned else "0",
    }
    server = spawn("floor", floor_argv(), env, log_dir)
    try:
        return measure(server, fake, plan, clicks)
    finally:
        server.stop()


def run_detection(runs: int, timeout_s: float = 420) -> dict[str, Any]:
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
        help="rewrite bench/RESULTS.md (default: on in full mode, off with --quick)",
    )
    parser.add_argument(
        "--tuned-server",
        action="store_true",
        help="what-if: raise cheroot's listen backlog and keep-alive limit in both servers",
    )
    parser.add_argument(
        "--bot-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="what-if: extra environment for the bot, e.g. LISTENER_THREADS=64 (repeatable)",
    )
    args = parser.parse_args(argv)
    extra = dict(kv.split("=", 1) for kv in args.bot_env)
    plan = QUICK if args.quick else FULL
    chosen = args.engines or ("sqlite" if args.quick else "sqlite,postgres")
    engines = [e.strip() for e in chosen.split(",") if e.strip()]
    unknown = set(engines) - {"sqlite", "postgres"}
    if unknown or not engines:
        parser.error(f"unknown engine(s): {', '.join(sorted(unknown)) or '(none)'}")
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    log_dir = RESULTS_DIR / "logs"
    began = time.perf_counter()
    fake = FakeSlackProcess().start()
    try:
        bots = {engine: run_bot(engine, fake, plan, log_dir, args.tuned_server, extra) for engine in engines}
        clicks = bots[engines[0]]["sent_clicks"]
        for b in bots.values():
            b.pop("sent_clicks")
        floor = run_floor(fake, plan, clicks, log_dir, args.tuned_server)
        floor.pop("sent_clicks")
    finally:
        fake.stop()
    detection = (
        run_detection(args.detection) if args.detection else {"status": "not run (give --detection RUNS)"}
    )
    mode = ("quick" if args.quick else "full") + (", tuned server" if args.tuned_server else "")
    mode += "".join(f", {k}={v}" for k, v in extra.items())
    results = report.assemble(plan.__dict__, mode, bots, floor, detection, time.perf_counter() - began)
    table = report.render(results)
    print(table)
    report.write_json(results, RESULTS_DIR / "latest.json")
    write_md = (not args.quick) if args.write_results_md is None else args.write_results_md
    if write_md:
        report.write_markdown(results, table, ROOT / "bench" / "RESULTS.md")
    say(f"wrote {RESULTS_DIR / 'latest.json'}" + (" and bench/RESULTS.md" if write_md else ""))
    return 0 if results["all_targets_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
