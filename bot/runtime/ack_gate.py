"""Acks first: the work process holds its low-priority transactions while the serving process answers Slack.

The work process's payload and redraw threads run under SCHED_IDLE (see ``bot.runtime.work_process``), so its own code
yields to an ack at once. The statements it sends do not: when Postgres shares the machine, its backends run them
at normal priority beside the acks. ``bench.level`` (starts, Postgres, c=10) measured the bot's p99 at 1.18-1.45x
the floor's, and 1.02-1.09x with those backends moved to SCHED_IDLE by hand: one start costs ~33 statements, and
they ran inside the very burst whose acks were being timed.

So the serving process counts the Slack requests it is answering, in memory the forked work process shares, and a
low-priority thread waits for the count to reach zero before it takes a connection for a transaction. The wait is
capped: a steady stream of requests slows the work but cannot stop it. Threads at normal priority (the clock, the
metric watch, the outbox) never wait: a reminder or a page is not held for a click.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

from bot.observability import WORK_HELD

# Long enough to cover one request's answer at c=50 on two cores (the floor's own p99 is ~150 ms there), short
# enough that the work behind a burst is late by a fraction of a second, not by the burst's length.
HOLD_CAP_S = 0.1
POLL_S = 0.002
SLACK_PATH = "/slack/events"  # bot.runtime.web routes Slack's requests here; health and metrics are not acks

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class AckGate:
    """A count of requests in flight that the serving process writes and a forked work process reads.

    Create it before the fork: the count lives in a shared anonymous mapping, not in either process's heap."""

    def __init__(self) -> None:
        self._count = multiprocessing.RawValue(ctypes.c_int, 0)
        self._lock = threading.Lock()  # only the serving process's request threads write

    @property
    def in_flight(self) -> int:
        return int(self._count.value)

    @contextlib.contextmanager
    def answering(self) -> Any:
        with self._lock:
            self._count.value += 1
        try:
            yield
        finally:
            with self._lock:
                self._count.value -= 1

    def track(self, app: WsgiApp) -> WsgiApp:
        """``app`` with its Slack requests counted while they are answered (the body is built by then)."""

        def counted(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
            if environ.get("PATH_INFO") != SLACK_PATH:
                return app(environ, start_response)
            with self.answering():
                return app(environ, start_response)

        return counted

    def hold(self, cap: float = HOLD_CAP_S, poll: float = POLL_S) -> float:
        """Wait while requests are in flight, for at most ``cap`` seconds; return how long it waited (also counted
        in ``releasebot_work_held_seconds_total``)."""
        if self._count.value <= 0:
            return 0.0
        began = time.monotonic()
        deadline = began + cap
        while self._count.value > 0 and time.monotonic() < deadline:
            time.sleep(poll)
        waited = time.monotonic() - began
        WORK_HELD.inc(waited)
        return waited

    def hold_low_priority_transactions(self, engine: Engine, cap: float = HOLD_CAP_S) -> None:
        """Make every connection that a SCHED_IDLE thread takes from ``engine`` wait for the acks first.

        Register it before the engine's threads start: SQLAlchemy's event registration is not thread-safe."""

        def on_connect(_conn: Any) -> None:
            if self._count.value > 0 and _low_priority():
                self.hold(cap)

        # A session takes a connection for each transaction, before it begins: SQLite's begin hook
        # (bot.db.engine) takes the write lock, and a held transaction must not hold it. (``insert=True`` on the
        # begin event still ran after that hook.)
        event.listen(engine, "engine_connect", on_connect)


def _low_priority() -> bool:
    """Whether the calling thread runs under SCHED_IDLE (Linux reads the policy per thread for pid 0)."""
    try:
        return os.sched_getscheduler(0) == os.SCHED_IDLE
    except (AttributeError, OSError):  # not Linux: nothing runs under SCHED_IDLE
        return False
