"""A soak: releases started, brought into a canary, their waits run out, and ended, cycle after cycle, on two
replicas on one Postgres, with the replicas' memory and their database connections sampled (issue 20, part 2).

    python -m bench.soak                 # 120 minutes
    python -m bench.soak --minutes 5     # a short look

Not part of CI. The same world as ``bench/org.py`` (fake Slack enforcing its limits in its own process, stand-in
Prometheus, the test checklist with a short canary wait): each cycle starts ``--per-cycle`` releases in as many
channels, ticks and advances them into canary-10 (the watch starts), waits for their canary reminders to fire, then
aborts them with a reason. "Simulated time" is this compression: a cycle is a release's whole life in about half a
minute, so two hours run some 200 cycles. After every cycle it prints the PSS of both replicas' process trees and
each process's own (a replica's serving process and its work process, where the leader's clock, watch, charts and
message sync live), and the connections ``pg_stat_activity`` shows for the scratch database; at the end, after the
warm-up cycles and ``--settle-minutes``, the first and last thirds compared and the drift a least-squares line
fits, per hour, for the trees and for each process, and every release's reminder counted twice over: in the audit
trail and among the posts the fake Slack holds (by their markers), none lost, none twice. Logs:
bench/results/logs/soak-<when it started>/.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from pathlib import Path
from typing import cast

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.driver import builder  # noqa: E402
from bench.fake_proc import FakeSlackProcess  # noqa: E402
from bench.org import (  # noqa: E402
    PHASES_TO_TICK,
    Db,
    by_release,
    fire_phases,
    into_canary,
    say,
    send_all,
    write_checklist,
)
from bench.procs import ScratchPostgres, Server, bot_argv, process_tree, pss_of, spawn  # noqa: E402
from bench.run import RESULTS_DIR, bot_env, migrate  # noqa: E402
from bot.checklist.loading import load_checklist  # noqa: E402
from bot.playground.prometheus import PrometheusStandIn  # noqa: E402

PER_RELEASE = 5  # header + the fast checklist's four flow phases
PROCESSES = ("serving 0", "work 0", "serving 1", "work 1")  # ``each_pss``'s order


def cycle(
    db: Db, fake: FakeSlackProcess, urls: list[str], n: int, per_cycle: int, ticks: dict[str, list[str]]
) -> int:
    """One cycle; how many advance clicks had to be sent again (see ``into_canary``)."""
    user = builder(fake)
    channels = [f"C0SOAK{i:04d}" for i in range(per_cycle)]
    versions = [f"v3.{n}.{i}" for i in range(per_cycle)]
    bodies = [
        cast(str, user.command(f"start {v}", channel=c)) for v, c in zip(versions, channels, strict=True)
    ]
    send_all(urls, bodies, 5)
    db.wait(
        "SELECT count(*) FROM messages m JOIN releases r ON r.id = m.release_id "
        "WHERE r.status = 'active' AND m.ts IS NOT NULL AND m.kind <> 'followup'",
        per_cycle * PER_RELEASE,
        120,
        "the cycle's messages posted",
    )
    rows = db.all("SELECT id, channel_id FROM releases WHERE status = 'active'")
    ts_rid = {
        str(ts): int(r)
        for r, ts in db.all(
            "SELECT m.release_id, m.ts FROM messages m JOIN releases r ON r.id = m.release_id "
            "WHERE r.status = 'active' AND m.ts IS NOT NULL"
        )
    }
    by_rid, headers = by_release(fake.messages(channels), ts_rid)
    channel_of = {int(r): str(c) for r, c in rows}
    resent = into_canary(db, urls, user, by_rid, headers, channel_of, ticks, expect=per_cycle, concurrency=5)
    # Not only claimed ("firing"): posted and recorded. Aborting a release whose reminder is in flight leaves it
    # unposted (rightly: the release has ended), which a soak that means to check every reminder must not cause.
    db.wait(
        "SELECT count(*) FROM timers t JOIN releases r ON r.id = t.release_id "
        "WHERE r.status = 'active' AND t.status IN ('pending', 'firing')",
        0,
        120,
        "the cycle's canary reminders fired",
    )
    aborts = [
        cast(str, user.command(f"abort {v} soak cycle over", channel=c))
        for v, c in zip(versions, channels, strict=True)
    ]
    send_all(urls, aborts, 5)
    db.wait("SELECT count(*) FROM releases WHERE status = 'active'", 0, 120, "the cycle's releases ended")
    return resent


def each_pss(replicas: list[Server]) -> list[float]:
    """PSS of each replica's serving process and its work process (its first child), in that order, MiB."""
    found: list[float] = []
    for replica in replicas:
        tree = process_tree(replica.proc.pid)
        found += [pss_of(tree[0]), sum(pss_of(p) for p in tree[1:])]
    return found


def snapshots(folder: Path, pids: list[int], timeout_s: float = 120.0) -> dict[int, Path]:
    """Ask each process for a tracemalloc snapshot (``--trace-memory``) and wait for them: pid → its file."""
    before = set(folder.glob("*.snap"))
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGUSR2)
    deadline = time.monotonic() + timeout_s
    found: dict[int, Path] = {}
    while len(found) < len(pids) and time.monotonic() < deadline:
        time.sleep(0.5)
        for path in set(folder.glob("*.snap")) - before:
            found[int(path.name.split("-")[0])] = path
    return found


def growth(first: Path, last: Path, top: int = 12) -> list[str]:
    """What the process's Python heap gained between two snapshots, by where it was allocated, largest first."""
    old, new = tracemalloc.Snapshot.load(str(first)), tracemalloc.Snapshot.load(str(last))
    keep = [tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, "<frozen importlib._bootstrap>")]
    old, new = old.filter_traces(keep), new.filter_traces(keep)
    total = sum(s.size for s in new.statistics("filename")) - sum(s.size for s in old.statistics("filename"))
    lines = [f"Python heap {total / 1024:+.0f} KiB"]
    for stat in new.compare_to(old, "traceback")[:top]:
        # Kept frames run from the oldest to the newest: the newest (where it was allocated) first.
        frames = " ← ".join(f"{Path(f.filename).name}:{f.lineno}" for f in list(stat.traceback)[::-1][:5])
        lines.append(f"  {stat.size_diff / 1024:+8.0f} KiB {stat.count_diff:+7d} blocks  {frames}")
    return lines


def reminder_tally(db: Db, fake: FakeSlackProcess, channels: list[str]) -> dict[str, int]:
    """Every release's reminder, once: the audit trail's records against the posts Slack holds (by their markers)."""
    markers = Counter(
        str(marker)
        for messages in fake.messages(channels).values()
        for m in messages
        if str(marker := (m.get("metadata") or {}).get("event_payload", {}).get("marker", "")).startswith("timer:")
    )
    posted, not_posted = db.all(
        "SELECT count(*) FILTER (WHERE details->>'ts' IS NOT NULL), count(*) FILTER (WHERE details->>'ts' IS NULL)"
        " FROM audit_events WHERE action = 'reminder_fired'"
    )[0]
    return {
        "recorded": int(posted) + int(not_posted),
        "posted": int(posted),
        "not_posted": int(not_posted),
        "not_one": int(
            db.one(
                "SELECT count(*) FROM (SELECT r.id FROM releases r LEFT JOIN audit_events a ON a.release_id = r.id"
                " AND a.action = 'reminder_fired' WHERE r.status <> 'active' GROUP BY r.id HAVING count(a.id) <> 1) AS s"
            )
        ),
        "in_slack": sum(markers.values()),
        "twice": sum(1 for n in markers.values() if n > 1),
    }


def late_reminders(db: Db, over_s: float = 2.0) -> str:
    """How many reminders were posted over ``over_s`` after their due time, and where the late ones' time went."""
    late = db.all(
        "SELECT (details->>'posted_late_s')::float, details->'timing' FROM audit_events"
        " WHERE action = 'reminder_fired' AND (details->>'posted_late_s')::float > %s",
        over_s,
    )
    phases: dict[str, list[float]] = {}
    for _posted, timing in late:
        for key, value in (timing or {}).items():
            phases.setdefault(key, []).append(float(value))
    where = ", ".join(f"{k} mean {sum(v) / len(v):.2f} s max {max(v):.2f} s" for k, v in sorted(phases.items()))
    return f"{len(late)} over {over_s:g} s" + (f" (their phases: {where})" if late else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=120.0)
    parser.add_argument("--per-cycle", type=int, default=10)
    parser.add_argument("--wait", type=int, default=5, help="the canary-10 wait, seconds")
    parser.add_argument(
        "--settle-minutes",
        type=float,
        default=30.0,
        help="flatness is judged on the cycles after this: what the bot keeps for a fixed time fills until then"
        " (the message sync: drawn messages 15 min, click response_urls 25 min)",
    )
    parser.add_argument(
        "--malloc-arena-max",
        type=int,
        help="glibc's MALLOC_ARENA_MAX for the bot processes (each thread may otherwise get an arena of its own)",
    )
    parser.add_argument(
        "--trace-memory",
        action="store_true",
        help="trace each process's Python allocations (tracemalloc) and print what grew between the end of the"
        " warm-up and the end, by where it was allocated (slower; its figures are not the soak's)",
    )
    parser.add_argument(
        "--trace-from", type=int, default=10, help="the cycle after which the first snapshot is taken (warm-up)"
    )
    args = parser.parse_args(argv)
    fake = FakeSlackProcess().start()
    fake.enforce_limits()
    rows: list[tuple[int, float, float, int, int, int, list[float]]] = []
    with contextlib.ExitStack() as stack:
        stack.callback(fake.stop)
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-soak-")))
        checklist, error_q, p95_q = write_checklist(folder, args.wait)
        loaded = load_checklist(checklist)
        ticks = {p: [i.key for i in loaded.phase(p).items] for p in PHASES_TO_TICK}
        prometheus = PrometheusStandIn(error_rate_query=error_q, p95_query=p95_q).start()
        stack.callback(prometheus.stop)
        scratch = stack.enter_context(ScratchPostgres())
        migrate(scratch.url)
        extra = {"RELEASE_BOT_CHECKLIST": str(checklist), "PROMETHEUS_URL": prometheus.url}
        if args.malloc_arena_max:
            extra["MALLOC_ARENA_MAX"] = str(args.malloc_arena_max)
        replicas = []
        # Its own folder: a second soak beside this one must not truncate this one's logs.
        logs = RESULTS_DIR / "logs" / time.strftime("soak-%Y%m%d-%H%M%S")
        traced = logs / "tracemalloc"
        if args.trace_memory:
            traced.mkdir(parents=True)
            extra |= {"PYTHONPATH": f"{ROOT / 'bench' / 'tracemem'}:{ROOT}", "BENCH_TRACEMEM_DIR": str(traced)}
        for n in range(2):
            replica = spawn(f"bot-soak-{n}", bot_argv(), bot_env(scratch.url, fake, extra), logs)
            stack.callback(replica.stop)
            replicas.append(replica)
        urls = [r.url for r in replicas]
        db = Db(scratch.name)
        began = time.monotonic()
        n = 0
        warm_snaps: dict[int, Path] = {}
        traced_pids: list[int] = []
        warm_at = args.trace_from
        print(
            "| cycle | minutes | PSS both replicas MiB | serving 0 / work 0 / serving 1 / work 1 MiB | DB connections"
            " | releases ended | advances sent again |"
        )
        print("|---|---|---|---|---|---|---|")
        while time.monotonic() - began < args.minutes * 60:
            resent = cycle(db, fake, urls, n, args.per_cycle, ticks)
            n += 1
            conns = int(db.one("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", scratch.name)) - 1
            ended = int(db.one("SELECT count(*) FROM releases WHERE status <> 'active'"))
            each = each_pss(replicas)
            row = (n, (time.monotonic() - began) / 60, sum(each), conns, ended, resent, each)
            rows.append(row)
            procs = " / ".join(f"{v:.1f}" for v in each)
            print(f"| {row[0]} | {row[1]:.1f} | {row[2]:.1f} | {procs} | {row[3]} | {row[4]} | {row[5]} |", flush=True)
            if args.trace_memory and n == warm_at:
                traced_pids = [p for r in replicas for p in process_tree(r.proc.pid)]  # serving, work, serving, work
                warm_snaps = snapshots(traced, traced_pids)
        if warm_snaps:
            end_snaps = snapshots(traced, list(warm_snaps))
            for i, pid in enumerate(traced_pids):  # in the table's order, not the order the snapshots came in
                if pid in warm_snaps and pid in end_snaps:
                    grew = growth(warm_snaps[pid], end_snaps[pid])
                    print(f"\n{PROCESSES[i % 4]} (pid {pid}), cycle {warm_at} → {n}: " + "\n".join(grew))
        limited = fake.rate_limited()
        reminders = reminder_tally(db, fake, [f"C0SOAK{i:04d}" for i in range(args.per_cycle)])
        phases = fire_phases(db)
        late = late_reminders(db)
    if not rows:
        raise SystemExit("bench: the soak ran no cycle")
    # The first cycles warm up (imports, pools and caches filled on first use), and what the bot keeps for a fixed
    # time (``--settle-minutes``) fills until it starts to be dropped: flatness is judged after both.
    warmed = rows[max(3, len(rows) // 10) :] or rows
    warm = [r for r in warmed if r[1] >= args.settle_minutes] or warmed
    third = max(1, len(warm) // 3)
    first, last = warm[:third], warm[-third:]

    def mean(values: list[float]) -> float:
        return sum(values) / len(values)

    def slope_per_hour(column: int, process: int | None = None) -> float:
        """Least-squares slope of a column (or of one process's PSS) against the minutes, per hour: the drift a
        leak would show."""
        xs = [r[1] for r in warm]
        ys = [float(cast(float, r[column])) if process is None else r[6][process] for r in warm]
        mx, my = mean(xs), mean(ys)
        var = sum((x - mx) ** 2 for x in xs)
        return 60 * sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var if var else 0.0

    print(
        f"\nsoak: {len(rows)} cycles, {rows[-1][4]} releases started and ended in {rows[-1][1]:.1f} min; "
        f"after {len(rows) - len(warm)} warm-up cycles: PSS first third {mean([r[2] for r in first]):.1f} MiB, "
        f"last third {mean([r[2] for r in last]):.1f} MiB, fitted drift {slope_per_hour(2):+.1f} MiB/h, "
        f"min-max {min(r[2] for r in warm):.1f}-{max(r[2] for r in warm):.1f}; connections first third "
        f"{mean([r[3] for r in first]):.1f}, last third {mean([r[3] for r in last]):.1f}, "
        f"min-max {min(r[3] for r in warm)}-{max(r[3] for r in warm)}; "
        f"advances sent again {sum(r[5] for r in rows)}; 429s {limited or 'none'}"
    )
    print(
        f"reminders: {reminders['recorded']} recorded for {rows[-1][4]} releases, releases without exactly one "
        f"{reminders['not_one']}; posted {reminders['posted']}, not posted {reminders['not_posted']}; Slack holds "
        f"{reminders['in_slack']} reminder posts, {reminders['twice']} of them more than once"
    )
    print(
        "reminder lateness p50 / p99 / max: "
        + "; ".join(f"{k} {v[0]:.2f} / {v[1]:.2f} / {v[2]:.2f} s" for k, v in phases.items())
        + f"; at the post {late}"
    )
    print(
        "each process, first third → last third (fitted drift): "
        + "; ".join(
            f"{name} {mean([r[6][i] for r in first]):.1f} → {mean([r[6][i] for r in last]):.1f} MiB"
            f" ({slope_per_hour(2, i):+.1f} MiB/h)"
            for i, name in enumerate(PROCESSES)
        )
    )
    say("(the bench's own connection is not counted)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
