"""Clients that never finish: does the bot keep serving Slack and its probes, and within its memory?

    python -m bench.hostile                        # SQLite; 200 slow clients, twelve 40 MB headers
    python -m bench.hostile --engine postgres --slow 400
    python -m bench.hostile --floor cheroot        # the same steps against a Bolt floor on another server

Two steps against the real ``release-bot serve``:

1. **Slow clients.** ``--slow`` connections each send a request line and then one header line every 5 s, never
   finishing (a slow-loris attack). While they are held, signed ``/release start`` requests (each on a new
   connection and on a kept one) and ``GET /healthz`` and ``/livez`` go out one at a time; their slowest round trip
   is the figure (target: under 1 s). The server's own deadline closes the slow connections after 10 s, so they
   reconnect, as an attacker would.
2. **Header bombs.** Twelve connections at once each send a request whose one header is 40 MB, as fast as loopback
   takes it. The bot's memory (PSS of the serving process and its work process, sampled every 50 ms) is the figure
   (target: under 200 MB), with what each bomb was answered.

Figures only: the targets are printed, never asserted in tests (tests/test_http_trust.py checks the answers).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from bench.driver import percentile, start_bodies  # noqa: E402
from bench.fake_proc import FakeSlackProcess  # noqa: E402
from bench.floors import SERVERS  # noqa: E402
from bench.procs import RssSampler, Server, bot_argv, floor_argv, pss_mb, spawn  # noqa: E402
from tests.slack_user import signed_headers  # noqa: E402

SLOW_LINE_EVERY_S = 5.0
BOMB_BYTES = 40 * 1024 * 1024
PROBE_MAX_MS = 1000.0
PSS_MAX_MB = 200.0


@dataclass
class SlowClients:
    """``count`` connections that drip one header line every ``every_s`` and never end their request."""

    port: int
    count: int
    every_s: float = SLOW_LINE_EVERY_S
    opened: int = 0  # connections made in all, reconnections included
    closed_by_server: int = 0
    answers: dict[str, int] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _open(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        sock.sendall(b"POST /slack/events HTTP/1.1\r\nHost: bot\r\nContent-Type: text/plain\r\n")
        sock.setblocking(False)
        self.opened += 1
        return sock

    def __enter__(self) -> SlowClients:
        socks = [self._open() for _ in range(self.count)]
        self._thread = threading.Thread(target=self._drip, args=(socks,), name="slow-clients", daemon=True)
        self._thread.start()
        return self

    def _drip(self, socks: list[socket.socket]) -> None:
        line = 0
        try:
            while not self._stop.wait(self.every_s):
                line += 1
                for i, sock in enumerate(socks):
                    try:
                        with contextlib.suppress(BlockingIOError):
                            answer = sock.recv(4096)
                            if answer:  # the server gave up on this request: note its answer, come back
                                code = (
                                    answer.split(b" ", 2)[1].decode() if answer.startswith(b"HTTP/") else "?"
                                )
                                self.answers[code] = self.answers.get(code, 0) + 1
                            raise ConnectionResetError
                        sock.send(b"X-Drip-%d: %s\r\n" % (line, b"z" * 20))
                    except OSError:
                        self.closed_by_server += 1
                        sock.close()
                        socks[i] = self._open()
        finally:
            for sock in socks:
                sock.close()

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)


def _request(
    conn: http.client.HTTPConnection, method: str, path: str, body: str = "", headers: Any = None
) -> int:
    conn.request(method, path, body=body.encode() or None, headers=headers or {})
    response = conn.getresponse()
    response.read()
    return response.status


def probe(bot: Server, fake: FakeSlackProcess, seconds: float) -> dict[str, Any]:
    """Signed starts and health probes, one at a time, for ``seconds``: their round trips.

    The standard library's client, not httpx: a new httpx client builds a TLS context first (~20 ms), which
    would be timed as the server's."""
    names = ("start (new connection)", "start (kept connection)", "healthz", "livez")
    times: dict[str, list[float]] = {name: [] for name in names}
    failed = 0
    deadline = time.monotonic() + seconds
    kept = http.client.HTTPConnection("127.0.0.1", bot.port, timeout=10)
    try:
        while time.monotonic() < deadline:
            for name in names:
                body, headers, path = "", None, f"/{name}"
                if name.startswith("start"):
                    body = start_bodies(fake, 1, "hostile")[0]
                    headers, path = signed_headers(body), "/slack/events"
                method = "POST" if body else "GET"
                began = time.perf_counter()
                try:
                    if name == "start (kept connection)":
                        status = _request(kept, method, path, body, headers)
                    else:
                        fresh = http.client.HTTPConnection("127.0.0.1", bot.port, timeout=10)
                        try:
                            status = _request(fresh, method, path, body, headers)
                        finally:
                            fresh.close()
                except (OSError, http.client.HTTPException):
                    status = 0
                times[name].append((time.perf_counter() - began) * 1000)
                failed += status != 200
            time.sleep(0.2)
    finally:
        kept.close()
    out: dict[str, Any] = {"failed": failed}
    for name, values in times.items():
        values.sort()
        out[name] = {
            "n": len(values),
            "p50_ms": round(percentile(values, 50), 1),
            "max_ms": round(values[-1], 1),
        }
    out["slowest_ms"] = max(out[name]["max_ms"] for name in times)
    return out


def _bomb(port: int, answers: list[str]) -> None:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(b"GET /livez HTTP/1.1\r\nHost: bot\r\nX-Bomb: ")
            chunk = b"b" * (1024 * 1024)
            try:
                for _ in range(BOMB_BYTES // len(chunk)):
                    sock.sendall(chunk)
                sock.sendall(b"\r\n\r\n")
            except OSError:
                pass  # refused part-way: what matters is what it was answered
            answer = b""
            with contextlib.suppress(OSError):
                answer = sock.recv(200)
        answers.append(answer.split(b"\r\n", 1)[0].decode() if answer else "connection closed, no answer")
    except OSError as e:
        answers.append(type(e).__name__)


def bombs(bot: Server, count: int = 12) -> dict[str, Any]:
    answers: list[str] = []
    with RssSampler(bot.proc.pid, interval_s=0.05, pss_every=1) as memory:
        threads = [threading.Thread(target=_bomb, args=(bot.port, answers)) for _ in range(count)]
        began = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        took = time.perf_counter() - began
        after = httpx.get(f"{bot.url}/livez", timeout=5).status_code
    counts: dict[str, int] = {}
    for a in answers:
        counts[a] = counts.get(a, 0) + 1
    return {
        "bombs": count,
        "answers": counts,
        "took_s": round(took, 2),
        "peak_pss_mb": round(memory.peak_pss_mb, 1),
        "livez_after": after,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--engine", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--slow", type=int, default=200, help="slow connections held")
    parser.add_argument("--seconds", type=float, default=30.0, help="how long to probe while they are held")
    parser.add_argument(
        "--floor",
        choices=SERVERS,
        help="aim at the floor of bench/floors.py on this server instead of the bot (e.g. cheroot, as the bot "
        "was served before waitress)",
    )
    args = parser.parse_args(argv)
    from bench.run import (
        RESULTS_DIR,
        bot_env,
        floor_env,
        scratch_database,
    )  # bench.run uses this module's steps

    log_dir = RESULTS_DIR / "logs"
    fake = FakeSlackProcess().start()
    with contextlib.ExitStack() as stack:
        stack.callback(fake.stop)
        if args.floor:
            bot = spawn(f"floor-hostile-{args.floor}", floor_argv(args.floor), floor_env(fake), log_dir)
        else:
            url = scratch_database(args.engine, log_dir, stack)
            bot = spawn(f"bot-hostile-{args.engine}", bot_argv(), bot_env(url, fake, {}), log_dir)
        stack.callback(bot.stop)
        idle_pss = pss_mb(bot.proc.pid)
        quiet = probe(bot, fake, 5)
        with SlowClients(bot.port, args.slow) as slow:
            held = probe(bot, fake, args.seconds)
        bombed = bombs(bot)
        who = f"the floor on {args.floor}" if args.floor else f"release-bot ({args.engine})"
        print(f"{who} under hostile clients; idle PSS {idle_pss:.0f} MB")
        print("")
        print("| step | request | n | p50 ms | max ms |")
        print("|---|---|---|---|---|")
        for step, res in (("quiet", quiet), (f"{args.slow} slow clients held", held)):
            for name, row in res.items():
                if isinstance(row, dict):
                    print(f"| {step} | {name} | {row['n']} | {row['p50_ms']} | {row['max_ms']} |")
        print("")
        print(
            f"Slow clients: {slow.opened} connections opened ({slow.closed_by_server} closed by the server, "
            f"answered {slow.answers or 'nothing'}); failed probes while held: {held['failed']}."
        )
        print(
            f"Header bombs: {bombed['bombs']} × 40 MB in {bombed['took_s']} s, answered {bombed['answers']}; "
            f"peak PSS {bombed['peak_pss_mb']} MB; /livez after: {bombed['livez_after']}."
        )
        print("")
        checks = [
            (
                "slowest signed request or probe while slow clients are held (ms)",
                held["slowest_ms"],
                PROBE_MAX_MS,
            ),
            ("failed requests while slow clients are held", held["failed"], 0),
            ("peak PSS while header bombs arrive (MB)", bombed["peak_pss_mb"], PSS_MAX_MB),
        ]
        print("| target | value | limit | met |")
        print("|---|---|---|---|")
        for name, value, limit in checks:
            print(f"| {name} | {value} | ≤ {limit} | {'yes' if value <= limit else '**MISSED**'} |")
        return 0 if all(v <= lim for _, v, lim in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
