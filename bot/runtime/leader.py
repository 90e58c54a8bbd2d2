"""Which process runs the clock, the metric watch and the outbox.

With Postgres, any number of replicas serve Slack requests, and the one holding a session-level advisory lock on
its own dedicated connection is the leader. The lock dies with the connection, so when a leader is killed the
others take over at their next attempt (every ``retry_s``). The leader pings its connection and steps down if it
breaks, so two leaders never overlap for longer than one ping.

With SQLite there is one process: it takes an exclusive lock on a file beside the database and refuses to start
if another process holds it.
"""

from __future__ import annotations

import fcntl
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import sqlalchemy as sa

from bot.errors import ConfigError
from bot.observability import IS_LEADER

log = logging.getLogger(__name__)
LOCK_KEY = 0x52454C45415345  # "RELEASE": one bigint that names this bot's leadership


class SqliteLeader:
    """Always leader, and the only process on its database file."""

    def __init__(self, database_path: str) -> None:
        self._path = Path(database_path + ".lock")
        self._file: IO[str] | None = None

    def start(self, on_elected: Callable[[], None]) -> None:
        if self._file is None:
            self.acquire()
        IS_LEADER.set(1)
        on_elected()

    def acquire(self) -> None:
        """Take the file lock, or refuse. ``serve`` takes it before forking the work process, which inherits it:
        a second bot on the file is then refused at once, in the process the operator started."""
        self._path.parent.mkdir(parents=True, exist_ok=True)
        handle = self._path.open("w")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            raise ConfigError(
                f"DATABASE_URL: another release-bot process already uses this SQLite file ({self._path.name} is "
                "locked). SQLite mode runs one process; use Postgres for several replicas."
            ) from None
        self._file = handle

    def is_leader(self) -> bool:
        return self._file is not None

    def stop(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None
        IS_LEADER.set(0)


class PostgresLeader:
    """Leadership by ``pg_try_advisory_lock`` on a connection that is never returned to a pool."""

    def __init__(self, database_url: str, *, retry_s: float = 2.0, key: int = LOCK_KEY) -> None:
        self._engine = sa.create_engine(database_url, poolclass=sa.pool.NullPool)
        self._retry_s = retry_s
        self._key = key
        self._conn: Any = None
        self._leader = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._on_elected: Callable[[], None] = lambda: None

    def start(self, on_elected: Callable[[], None]) -> None:
        self._on_elected = on_elected
        self._thread = threading.Thread(target=self._run, name="leader", daemon=True)
        self._thread.start()

    def is_leader(self) -> bool:
        return self._leader.is_set()

    def _run(self) -> None:
        while not self._stop.is_set():
            if self._leader.is_set():
                self._ping()
            else:
                self._try_acquire()
            self._stop.wait(self._retry_s)

    def _try_acquire(self) -> None:
        try:
            if self._conn is None:
                self._conn = self._engine.connect()
            got = bool(
                self._conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": self._key}).scalar()
            )
            self._conn.commit()
        except Exception as e:
            log.warning("leader election: database unavailable (%s)", type(e).__name__)
            self._drop_connection()
            return
        if got:
            log.info("became leader: this process now runs timers, the metric watch and the outbox")
            self._leader.set()
            IS_LEADER.set(1)
            try:
                self._on_elected()
            except Exception:
                log.exception("start-up work after election failed")

    def _ping(self) -> None:
        try:
            self._conn.execute(sa.text("SELECT 1"))
            self._conn.commit()
        except Exception:
            log.error("lost the leader connection: stepping down")
            self._step_down()

    def _step_down(self) -> None:
        self._leader.clear()
        IS_LEADER.set(0)
        self._drop_connection()

    def _drop_connection(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:
                log.debug("closing a broken leader connection failed")
            self._conn = None

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self._retry_s + 5)
        if self._leader.is_set() and self._conn is not None:
            try:
                self._conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": self._key})
                self._conn.commit()
            except Exception:
                log.debug("unlock on stop failed; closing the connection releases it")
        self._step_down()
        self._engine.dispose()


def make_leader(database_url: str, *, retry_s: float = 2.0) -> SqliteLeader | PostgresLeader:
    if database_url.startswith("sqlite"):
        path = sa.engine.make_url(database_url).database or ""
        if path in ("", ":memory:"):
            raise ConfigError("DATABASE_URL: an in-memory SQLite database cannot be shared; give a file path")
        return SqliteLeader(str(Path(path).resolve()))
    return PostgresLeader(database_url, retry_s=retry_s)
