"""Cold start and idle footprint: spawn → healthy, and the idle PSS of each of the bot's two processes.

    .venv/bin/python -m bench.startup                     # SQLite, 5 starts
    .venv/bin/python -m bench.startup --engines sqlite,postgres --runs 8

Each run spawns the real ``release-bot serve`` on an already migrated database (as a replica after its migrate Job
starts) against the fake Slack, times spawn → first ``200`` on ``/healthz``, waits 0.5 s for start-up allocations
to settle, and reads the PSS of the serving process and of the work process it forked (``/proc/PID/smaps_rollup``),
each and summed. Runs are sequential and the machine is shared, so it prints every run and the spread (min, median,
max); a target is met when the median is within it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.fake_proc import FakeSlackProcess  # noqa: E402
from bench.procs import bot_argv, cpu_s, process_tree, pss_of, spawn  # noqa: E402

# Issue 20, part 3: idle PSS within 70 MB, healthy within a second (on SQLite). The 93-104 MB was the two
# processes summed; the brief asked for 70 MB each. Both are checked.
IDLE_PSS_MAX_MB = 70.0
HEALTHY_MAX_S = 1.0
SETTLE_S = 0.5  # as bench/run.py: start-up allocations settle before the process is called idle
KEYS = ("healthy_s", "cpu_to_healthy_s", "serving_pss_mb", "work_pss_mb", "pss_mb")


def one_start(name: str, env: dict[str, str], log_dir: Path) -> dict[str, float]:
    """Spawn the bot once: seconds to healthy, and the idle PSS (MiB) of its serving and work processes."""
    server = spawn(name, bot_argv(), env, log_dir)
    try:
        # CPU the two processes used to get there: unlike the wall clock, it hardly moves with the machine's load.
        cpu = sum(cpu_s(p) for p in process_tree(server.proc.pid))
        time.sleep(SETTLE_S)
        pids = process_tree(server.proc.pid)
        serving = pss_of(server.proc.pid)
        work = sum(pss_of(p) for p in pids if p != server.proc.pid)
        return {
            "healthy_s": round(server.healthy_after_s, 3),
            "cpu_to_healthy_s": round(cpu, 3),
            "serving_pss_mb": round(serving, 1),
            "work_pss_mb": round(work, 1),
            "pss_mb": round(serving + work, 1),
            "processes": len(pids),
        }
    finally:
        server.stop()


def spread(runs: list[dict[str, float]], key: str) -> dict[str, float]:
    values = [r[key] for r in runs]
    return {
        "min": round(min(values), 3),
        "median": round(statistics.median(values), 3),
        "max": round(max(values), 3),
    }


def measure(
    engine: str, fake: FakeSlackProcess, runs: int, log_dir: Path, extra: dict[str, str]
) -> dict[str, Any]:
    """``runs`` cold starts of the bot on one fresh, migrated database of ``engine``; each run and the spread."""
    from bench.run import bot_env, scratch_database

    with contextlib.ExitStack() as stack:
        url = scratch_database(engine, log_dir, stack)
        env = bot_env(url, fake, extra)
        done = [one_start(f"startup-{engine}", env, log_dir) for _ in range(runs)]
    return {
        "runs": done,
        **{key: spread(done, key) for key in KEYS},
    }


def targets(engine: str, res: dict[str, Any]) -> list[tuple[str, float, float]]:
    """(target, median value, limit): healthy is a target on SQLite only (Postgres adds its connection set-up)."""
    rows = [
        ("idle PSS, serving process (MB)", res["serving_pss_mb"]["median"], IDLE_PSS_MAX_MB),
        ("idle PSS, work process (MB)", res["work_pss_mb"]["median"], IDLE_PSS_MAX_MB),
        ("idle PSS, both processes summed (MB)", res["pss_mb"]["median"], IDLE_PSS_MAX_MB),
    ]
    if engine == "sqlite":
        rows.append(("spawn → healthy (s)", res["healthy_s"]["median"], HEALTHY_MAX_S))
    return rows


def brief(res: dict[str, Any]) -> str:
    def cell(key: str) -> str:
        c = res[key]
        return f"{c['median']} ({c['min']}–{c['max']})"

    return (
        f"healthy {cell('healthy_s')} s (CPU {cell('cpu_to_healthy_s')} s); idle PSS serving "
        f"{cell('serving_pss_mb')}, work {cell('work_pss_mb')}, both {cell('pss_mb')} MB "
        f"(median, min–max of {len(res['runs'])})"
    )


def render(results: dict[str, dict[str, Any]]) -> str:
    lines = table(results)
    lines += ["", "| target (median of the runs) | engine | value | limit | met |", "|---|---|---|---|---|"]
    for engine, res in results.items():
        for name, value, limit in targets(engine, res):
            met = "yes" if value <= limit else "**MISSED**"
            lines.append(f"| {name} | {engine} | {value} | ≤ {limit} | {met} |")
    return "\n".join(lines)


def table(results: dict[str, dict[str, Any]]) -> list[str]:
    """Every cold start, and each engine's min / median / max."""
    lines = [
        "| engine | run | spawn → healthy s | CPU to healthy s | serving PSS MB | work PSS MB | both PSS MB |",
        "|---|---|---|---|---|---|---|",
    ]
    for engine, res in results.items():
        for i, run in enumerate(res["runs"], 1):
            lines.append(
                f"| {engine} | {i} | {run['healthy_s']:.2f} | {run['cpu_to_healthy_s']:.2f} | {run['serving_pss_mb']:.1f} "
                f"| {run['work_pss_mb']:.1f} | {run['pss_mb']:.1f} |"
            )
        cells = [res[k] for k in KEYS]
        lines.append(
            f"| {engine} | min / median / max | "
            + " | ".join(f"{c['min']:.2f} / {c['median']:.2f} / {c['max']:.2f}" for c in cells)
            + " |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--engines", default="sqlite", help="comma-separated: sqlite, postgres")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--bot-env", action="append", default=[], metavar="KEY=VALUE", help="extra environment for the bot"
    )
    parser.add_argument("--json", metavar="PATH", help="also write every run's figures there")
    args = parser.parse_args(argv)
    extra = dict(kv.split("=", 1) for kv in args.bot_env)
    from bench.run import RESULTS_DIR

    log_dir = RESULTS_DIR / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    fake = FakeSlackProcess().start()
    try:
        results = {
            engine.strip(): measure(engine.strip(), fake, args.runs, log_dir, extra)
            for engine in args.engines.split(",")
            if engine.strip()
        }
    finally:
        fake.stop()
    print(render(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    met = all(v <= lim for e, r in results.items() for _, v, lim in targets(e, r))
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
