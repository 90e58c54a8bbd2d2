"""Which HTTP server makes the fastest Bolt floor: each candidate of bench/floors.py, the same requests, interleaved.

    python -m bench.candidates                 # clicks and starts at c=10 and c=50, reused and new connections
    python -m bench.candidates --rounds 6 --servers stdlib,waitress

Each round sends one burst to every candidate in turn (the order rotates by round), so the machine's noise falls
on all of them alike; percentiles pool the rounds. The clicks carry a message of the size the bot posts (~9 KB
form-encoded), and every floor acks without doing anything else: the figures are the server's and Bolt's alone.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path
from typing import Any, cast

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.driver import LevelResult, builder, drive, pooled, start_bodies  # noqa: E402
from bench.fake_proc import FakeSlackProcess  # noqa: E402
from bench.floors import SERVERS  # noqa: E402
from bench.procs import Server, spawn  # noqa: E402
from bench.run import RESULTS_DIR, floor_env  # noqa: E402


def sample_message(items: int = 8) -> dict[str, Any]:
    """A checklist message shaped like the bot's: a header and one checkbox section per item."""
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": "v1.2.3 · 배포 전"}}
    ]
    for n in range(items):
        key = f"pre_deploy.checks.item_{n}"
        option = {"text": {"type": "mrkdwn", "text": f"*항목 {n}*: 스테이징에서 확인 완료"}, "value": key}
        blocks.append(
            {
                "type": "section",
                "block_id": f"it.1.1.{n}",
                "text": {
                    "type": "mrkdwn",
                    "text": f"{n}. 모든 테스트 통과 확인 (CI 녹색) — 담당: <@U061F7AUR>",
                },
                "accessory": {"type": "checkboxes", "action_id": f"item-{n}", "options": [option]},
            }
        )
    return {"ts": "1700000000.000100", "text": "v1.2.3", "blocks": blocks}


def click_bodies(fake: Any, count: int) -> list[str]:
    users = [builder(fake, "U061F7AUR", "alice"), builder(fake, "U0BOB00002", "bob")]
    message = sample_message()
    bodies = []
    for i in range(count):
        key = f"pre_deploy.checks.item_{i % 8}"
        body = users[i % 2].click_item("C0B0000001", message, key, action_ts=f"{i}.1")
        bodies.append(cast(str, body))  # BodyBuilder.post returns the body it would have sent
    return bodies


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--servers", default=",".join(SERVERS))
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--requests", type=int, default=200, help="requests a burst")
    args = parser.parse_args(argv)
    kinds = [s.strip() for s in args.servers.split(",") if s.strip()]
    log_dir = RESULTS_DIR / "logs"
    fake = FakeSlackProcess().start()
    parts: dict[tuple[str, str, int, bool], list[LevelResult]] = {}
    with contextlib.ExitStack() as stack:
        stack.callback(fake.stop)
        servers: dict[str, Server] = {}
        for kind in kinds:
            argv_ = [sys.executable, "-m", "bench.floors", "--server", kind]
            servers[kind] = spawn(f"floor-{kind}", argv_, floor_env(fake), log_dir)
            stack.callback(servers[kind].stop)
        for server in servers.values():  # Bolt's first request calls auth.test
            drive(server.url, start_bodies(fake, 20, "warm"), 1)
        for n in range(args.rounds):
            order = kinds[n % len(kinds) :] + kinds[: n % len(kinds)]
            for request in ("click", "start"):
                for c in (10, 50):
                    for reuse in (True, False):
                        if request == "click":
                            bodies = click_bodies(fake, args.requests)
                        else:
                            bodies = start_bodies(fake, args.requests, "cand")
                        for kind in order:
                            result = drive(servers[kind].url, bodies, c, reuse=reuse)
                            parts.setdefault((kind, request, c, reuse), []).append(result)
                            time.sleep(0.2)
            print(f"round {n + 1} of {args.rounds} done", file=sys.stderr, flush=True)
    print("| server | request | c | connections | n | p50 ms | p95 ms | p99 ms | max ms | failed |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for (kind, request, c, reuse), got in sorted(
        parts.items(), key=lambda kv: (kv[0][1], kv[0][2], kv[0][3], kv[0][0])
    ):
        r = pooled(got)
        print(
            f"| {kind} | {request} | {c} | {'reused' if reuse else 'new'} | {r.requests} | {r.p50_ms:.1f} "
            f"| {r.p95_ms:.1f} | {r.p99_ms:.1f} | {r.max_ms:.1f} | {r.errors} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
