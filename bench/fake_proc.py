"""The fake Slack Web API in its own process, so its threads never share a GIL with the load driver.

The bench asks it questions over a multiprocessing pipe: how many calls it has answered, when the last one
came, and which messages it holds.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import time
from collections import Counter
from multiprocessing.connection import Connection
from typing import Any


def _serve(conn: Connection) -> None:
    from tests.fakes.slack_api import FakeSlack

    with FakeSlack() as fake:
        conn.send(fake.port)
        while True:
            op, arg = conn.recv()
            if op == "stop":
                conn.send(None)
                return
            if op == "enforce":
                # Slack's limits as the fake knows them: posts 1/s per channel, Tier 3 and Tier 4 per workspace.
                fake.enforce_rate_limits(post_per_channel_per_s=1.0, burst=2)
                fake.enforce_tiers()
                conn.send(None)
                continue
            if op == "rate_limited":
                conn.send(fake.rate_limited())
                continue
            if op == "bind":
                name, channel, ts = arg
                conn.send(fake.response_url(name, channel=channel, message_ts=ts))
                continue
            calls = fake.calls()
            if op == "count":
                conn.send(len(calls))
            elif op == "last_call_at":
                # The fake records with time.monotonic, which is system-wide on Linux.
                conn.send(calls[-1].at if calls else 0.0)
            elif op == "methods_since":
                conn.send(dict(Counter(c.method for c in calls[arg:])))
            elif op == "messages":
                snapshot = fake.messages
                conn.send({ch: snapshot.get(ch, []) for ch in arg})
            else:
                conn.send(ValueError(f"unknown op {op!r}"))


class FakeSlackProcess:
    """``start()`` → the fake listens on 127.0.0.1:<port>; ``stop()`` ends the process."""

    def __init__(self) -> None:
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(child,), name="fake-slack", daemon=True)
        self.port = 0

    def start(self) -> FakeSlackProcess:
        self._proc.start()
        if not self._conn.poll(30):
            raise RuntimeError("the fake Slack did not start within 30 s")
        self.port = self._conn.recv()
        return self

    def _ask(self, op: str, arg: Any = None) -> Any:
        self._conn.send((op, arg))
        if not self._conn.poll(60):
            raise RuntimeError(f"the fake Slack did not answer {op!r} within 60 s")
        answer = self._conn.recv()
        if isinstance(answer, Exception):
            raise answer
        return answer

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    def response_url(self, name: str, *, channel: str | None = None, message_ts: str | None = None) -> str:
        if channel is not None and message_ts is not None:
            # Bound to its message, as a click's is, so replace_original redraws it: one round trip.
            return str(self._ask("bind", (name, channel, message_ts)))
        # The fake registers unknown response URL names on first use, so no round trip is needed here.
        return f"http://127.0.0.1:{self.port}/response/{name}"

    def enforce_limits(self) -> None:
        self._ask("enforce")

    def rate_limited(self) -> dict[str, int]:
        return dict(self._ask("rate_limited"))

    def count(self) -> int:
        return int(self._ask("count"))

    def methods_since(self, index: int) -> dict[str, int]:
        return dict(self._ask("methods_since", index))

    def messages(self, channels: list[str]) -> dict[str, list[dict[str, Any]]]:
        return dict(self._ask("messages", channels))

    def wait_quiet(self, quiet_s: float, timeout_s: float, *, since: float = 0.0) -> bool:
        """Wait until no call has arrived for ``quiet_s`` (counting from ``since`` at the earliest, a
        ``time.monotonic()`` value); False when the bot is still busy at ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            idle = time.monotonic() - max(since, float(self._ask("last_call_at")))
            if idle >= quiet_s:
                return True
            time.sleep(min(0.2, quiet_s - idle + 0.01))
        return False

    def stop(self) -> None:
        if self._proc.is_alive():
            with contextlib.suppress(RuntimeError, OSError, EOFError):
                self._ask("stop")
            self._proc.join(5)
        if self._proc.is_alive():
            self._proc.terminate()
            self._proc.join(5)
