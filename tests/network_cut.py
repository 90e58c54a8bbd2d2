"""Two real ``release-bot serve`` replicas on the real Postgres, one of them behind a relay that cuts it off silently.

Shared by ``tests/test_leadership.py`` (which asserts) and ``bench/leadership.py`` (which repeats and prints).

Replica A leads; its database connections go through ``tests.fakes.tcp_relay``. Replica B connects directly. Probe
timers fall due every half second, so the leader claims and posts one about every second (Slack's pacing): a
steady stream of leader-only writes, each recorded with the worker that claimed it and when. Then the relay
black-holes A's leadership connection (and every one A opens for it later), while A's other connections keep
working: the cut that once left A acting as leader beside B. Each process's ``releasebot_leader`` is polled
throughout.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from bot.db.migrate import upgrade
from bot.db.models import ReleaseRow, TimerRow
from tests.conftest import FAST_CHECKLIST, PG_URL, reset_postgres
from tests.fakes.slack_api import FakeSlack
from tests.fakes.tcp_relay import TcpRelay
from tests.proc import BotProcess, bot_env
from tests.slack_user import SlackUser

CHANNEL = "C0RELEASES"
# The application_name of the leadership connection (bot.runtime.leader.APPLICATION_NAME).
LEADER_MARKER = b"release-bot leader"
PROBES = 24
PROBE_EVERY_S = 0.5


def release_messages(fake: FakeSlack) -> list[dict[str, Any]]:
    """Top-level messages the bot posted in the release channel, oldest first."""
    return [m for m in fake.messages.get(CHANNEL, []) if m.get("thread_ts") in (None, m["ts"])]


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        found.extend(int(child) for child in task.read_text().split())
    return found


def work_pid(bot: BotProcess) -> int:
    assert bot.proc is not None
    [work] = children(bot.proc.pid)
    return work


def leader_gauge(bot: BotProcess) -> float | None:
    """``releasebot_leader`` as /metrics shows it now; None when the process does not answer."""
    try:
        text = httpx.get(f"{bot.url}/metrics", timeout=1).text
    except httpx.HTTPError:
        return None
    for line in text.splitlines():
        if line.startswith("releasebot_leader "):
            return float(line.split()[1])
    return 0.0


def via(relay: TcpRelay, url: str) -> str:
    """``url`` pointed at the relay, with a start-up packet the relay can read (no TLS, no GSSAPI)."""
    parsed = sa.engine.make_url(url)
    return parsed.set(
        host="127.0.0.1",
        port=relay.port,
        query={**parsed.query, "sslmode": "disable", "gssencmode": "disable"},
    ).render_as_string(hide_password=False)


def upstream_of(url: str) -> tuple[str, int]:
    parsed = sa.engine.make_url(url)
    return parsed.host or "127.0.0.1", parsed.port or 5432


@dataclass
class Poller:
    """Samples both replicas' leadership every ``every_s``: (seconds since start, A's gauge, B's gauge)."""

    a: BotProcess
    b: BotProcess
    every_s: float = 0.1
    samples: list[tuple[float, float | None, float | None]] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.monotonic() - self.started, leader_gauge(self.a), leader_gauge(self.b)))
            self._stop.wait(self.every_s)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def first(self, after: float, who: int, value: float) -> float | None:
        """When replica ``who`` (1: A, 2: B) first showed ``value`` at or after ``after``."""
        return next((s[0] for s in self.samples if s[0] >= after and s[who] == value), None)

    def both_leading(self) -> list[float]:
        return [s[0] for s in self.samples if s[1] == 1.0 and s[2] == 1.0]


@dataclass
class CutOutcome:
    cut_at: float  # on the poller's clock
    stepped_down_s: float | None  # cut → A shows releasebot_leader 0
    took_over_s: float | None  # cut → B shows releasebot_leader 1
    both_leading: list[float]  # poller samples where both showed 1
    a_claims: list[datetime]  # when A claimed each probe it claimed (its own clock; same machine)
    b_claims: list[datetime]
    cut_wall: datetime
    unfired: int  # probes never settled
    posted_twice: dict[str, int]  # probe markers Slack got more than once
    sigterm_s: float  # SIGTERM → A exited
    sigterm_code: int
    a_log: str = ""
    b_log: str = ""


def _probe(db_url: str) -> None:
    """Queue the probe timers on the release: due from now, every ``PROBE_EVERY_S``."""
    engine = sa.create_engine(db_url, poolclass=sa.pool.NullPool)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        release_id = conn.execute(sa.select(ReleaseRow.id)).scalar_one()
        conn.execute(
            sa.insert(TimerRow),
            [
                {
                    "release_id": release_id,
                    "kind": "stage_wait",
                    "key": f"probe:{i}",
                    "due_at": now + timedelta(seconds=i * PROBE_EVERY_S),
                    "status": "pending",
                    "payload": {"step": "canary-10", "started_by": "U061F7AUR"},
                }
                for i in range(PROBES)
            ],
        )
    engine.dispose()


def _probes(db_url: str) -> list[tuple[int, str, str | None, datetime | None]]:
    engine = sa.create_engine(db_url, poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(TimerRow.id, TimerRow.status, TimerRow.claimed_by, TimerRow.claimed_at).where(
                TimerRow.key.like("probe:%")
            )
        ).all()
    engine.dispose()
    return [(int(r[0]), str(r[1]), r[2], r[3]) for r in rows]


def _markers(fake: FakeSlack) -> Counter[str]:
    header = release_messages(fake)[0]
    found: Counter[str] = Counter()
    for message in fake.thread(CHANNEL, header["ts"]):
        marker = (message.get("metadata") or {}).get("event_payload", {}).get("marker")
        if isinstance(marker, str) and marker.startswith("timer:"):
            found[marker] += 1
    return found


def run_cut(tmp_path: Path, fake: FakeSlack, *, close_server_side: bool, lead_s: float = 5.0) -> CutOutcome:
    """The scenario; Postgres must be reachable at ``tests.conftest.PG_URL``."""
    reset_postgres()
    upgrade(PG_URL)
    with TcpRelay(upstream_of(PG_URL)) as relay:
        a = BotProcess(bot_env(via(relay, PG_URL), fake.base_url, FAST_CHECKLIST), tmp_path / "a.log").start()
        b: BotProcess | None = None
        try:
            _wait(lambda: leader_gauge(a) == 1.0, 20, "replica A was not elected")
            b = BotProcess(bot_env(PG_URL, fake.base_url, FAST_CHECKLIST), tmp_path / "b.log").start()
            with httpx.Client(timeout=10) as http:
                SlackUser(b.url, "U061F7AUR", "alice", fake, http).command("start v1.4.0")
            fake.wait_for(lambda: len(release_messages(fake)) >= 5, timeout=20)
            workers = {
                f"{socket.gethostname()}:{work_pid(a)}": "a",
                f"{socket.gethostname()}:{work_pid(b)}": "b",
            }
            _probe(PG_URL)
            poller = Poller(a, b)
            time.sleep(lead_s)
            cut_at, cut_wall = time.monotonic() - poller.started, datetime.now(UTC)
            relay.cut(marker=LEADER_MARKER, close_server_side=close_server_side)
            _wait(lambda: all(p[1] == "fired" for p in _probes(PG_URL)), 90, "", fail=False)
            time.sleep(
                max(0.0, cut_at + 12 - (time.monotonic() - poller.started))
            )  # watch a while after the cut
            poller.stop()
            probes = _probes(PG_URL)
            claims: dict[str, list[datetime]] = {"a": [], "b": []}
            for _, _, by, at in probes:
                if by in workers and at is not None:
                    claims[workers[by]].append(at)
            down, up = poller.first(cut_at, 1, 0.0), poller.first(cut_at, 2, 1.0)
            began = time.monotonic()
            try:
                code = a.terminate(30)
            except subprocess.TimeoutExpired:
                code = -1  # still running 30 s after SIGTERM: Kubernetes would SIGKILL it now
            sigterm_s = time.monotonic() - began
            return CutOutcome(
                cut_at=cut_at,
                stepped_down_s=None if down is None else down - cut_at,
                took_over_s=None if up is None else up - cut_at,
                both_leading=poller.both_leading(),
                a_claims=sorted(claims["a"]),
                b_claims=sorted(claims["b"]),
                cut_wall=cut_wall,
                unfired=sum(1 for p in probes if p[1] != "fired"),
                posted_twice={m: n for m, n in _markers(fake).items() if n > 1},
                sigterm_s=sigterm_s,
                sigterm_code=code,
                a_log=a.log(),
                b_log=b.log(),
            )
        finally:
            for bot in (a, b):
                if bot is not None and bot.proc is not None and bot.proc.poll() is None:
                    bot.proc.send_signal(signal.SIGKILL)
                    bot.proc.wait(10)


def _wait(predicate: Callable[[], bool], timeout: float, message: str, *, fail: bool = True) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    if fail:
        raise AssertionError(message)
    return False


def freeze(pid: int) -> None:
    os.kill(pid, signal.SIGSTOP)


def thaw(pid: int) -> None:
    os.kill(pid, signal.SIGCONT)
