"""Which process runs the clock, the metric watch, the outbox and the repair sweep.

With Postgres, any number of replicas serve Slack, and one of them leads: it holds a lease in the ``leadership`` row
(``bot.db.leadership``), renewed every second on a dedicated connection and timed by the database's clock. The
leader believes it leads only until ``LeaseTiming.valid_until`` of the last renewal the database confirmed, measured
from when that renewal was *sent*; it stops acting then even if every thread of it is stuck, because ``is_leader`` is
a deadline, not a flag somebody must clear. Another replica can take over only once the database's clock has passed
the lease, a second later at the earliest. A leader-only write that is already under way when leadership changes is
refused by the fence in its own transaction (``SqlUnitOfWork.leader_only``), by epoch.

A silent network cut (a peer that vanished, a NAT box or proxy that keeps acknowledging and forwards nothing) cannot
stall this: each lease statement has a deadline after which a watchdog shuts the connection's socket, the connection
has TCP keepalives and ``tcp_user_timeout`` so that the kernel gives up on a dead peer on its own, and the server
ends its statements (``statement_timeout``, ``lock_timeout``) before the client's deadline. With the defaults
(``LeaseTiming``): the leader stops acting within 4 s of the cut, a standby takes over within 7.5 s.

With SQLite there is one process: it takes an exclusive lock on a file beside the database and refuses to start if
another process holds it; its term has no expiry, since the kernel cannot lose a file lock behind its back.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import sqlalchemy as sa

from bot.db import leadership
from bot.domain.leadership import LeaseTiming, Term
from bot.errors import ConfigError
from bot.observability import IS_LEADER

log = logging.getLogger(__name__)
# In pg_stat_activity: which connection keeps the lease, and whose it is.
APPLICATION_NAME = "release-bot leader"
CONNECT_TIMEOUT_S = 2  # libpq's smallest
# The kernel's own bound on a dead peer, for the cuts it can see (a peer gone, not a black hole): keepalive probes
# after 1 s of silence, 1 s apart, 3 unanswered; unacknowledged data for 3 s. Both end well within the lease.
KEEPALIVE = {"keepalives": 1, "keepalives_idle": 1, "keepalives_interval": 1, "keepalives_count": 3}
TCP_USER_TIMEOUT_MS = 3000
ELECTED_JOIN_S = 3.0  # how long stop() waits for the start-up work after an election
_SERVER_TIMEOUTS = sa.text(
    "SELECT set_config('statement_timeout', :statement, false), set_config('lock_timeout', :lock, false)"
)


def holder_name() -> str:
    """Names one process's tenure: the random part tells a restarted container (same host name, same pid) apart."""
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{secrets.token_hex(4)}"


class SqliteLeader:
    """Always leader, and the only process on its database file."""

    def __init__(self, database_url: str, database_path: str) -> None:
        self._url = database_url
        self._path = Path(database_path + ".lock")
        self._file: IO[str] | None = None
        self._term: Term | None = None

    def start(self, on_elected: Callable[[], None]) -> None:
        if self._file is None:
            self.acquire()
        IS_LEADER.set(1)
        on_elected()

    def acquire(self) -> None:
        """Take the file lock, or refuse, then a new epoch. ``serve`` takes it before forking the work process,
        which inherits both: a second bot on the file is then refused at once, in the process the operator
        started."""
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
        engine = sa.create_engine(self._url, poolclass=sa.pool.NullPool)
        try:
            with engine.begin() as conn:
                self._term = leadership.claim_without_lease(conn, holder_name())
        finally:
            engine.dispose()
        log.info("leading with epoch %d (SQLite: one process)", self._term.epoch)

    def term(self) -> Term | None:
        return self._term if self._file is not None else None

    def is_leader(self) -> bool:
        return self.term() is not None

    def stop(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None
        IS_LEADER.set(0)


class PostgresLeader:
    """Leadership by a lease in the database, kept on a connection that is never returned to a pool."""

    def __init__(self, database_url: str, *, timing: LeaseTiming | None = None) -> None:
        """Connects nothing: ``start`` does, in the process that will lead (``serve`` forks before it)."""
        self._url = database_url
        self.timing = timing or LeaseTiming()
        self._engine: sa.Engine | None = None
        self._conn: sa.Connection | None = None
        self._holder = ""
        # Guards the term, its deadline and the statement deadline; the watchdog waits on it.
        self._state = threading.Condition()
        self._term: Term | None = None
        self._valid_until = 0.0
        self._statement_deadline: float | None = None
        self._statement_fd: int | None = None
        self._stop = threading.Event()
        self._watching = True
        self._threads: list[threading.Thread] = []
        self._elected_thread: threading.Thread | None = None
        self._on_elected: Callable[[], None] = lambda: None

    # --- what the rest of the bot asks ----------------------------------------------------------------------

    def term(self) -> Term | None:
        """The term this process may act under now; None once its lease is not confirmed for long enough."""
        with self._state:
            if self._term is not None and time.monotonic() < self._valid_until:
                return self._term
            return None

    def is_leader(self) -> bool:
        return self.term() is not None

    # --- running ---------------------------------------------------------------------------------------------

    def start(self, on_elected: Callable[[], None]) -> None:
        self._on_elected = on_elected
        self._holder = holder_name()
        self._engine = sa.create_engine(
            self._url,
            poolclass=sa.pool.NullPool,
            isolation_level="AUTOCOMMIT",  # one statement, one transaction: no lock outlives a statement
            connect_args={
                "application_name": f"{APPLICATION_NAME} {self._holder}"[:63],
                "connect_timeout": CONNECT_TIMEOUT_S,
                "tcp_user_timeout": TCP_USER_TIMEOUT_MS,
                **KEEPALIVE,
            },
        )
        for target, name in ((self._run, "leader"), (self._watch, "leader-watch")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Give the lease up so that a standby takes over at once; bounded even when the database is unreachable."""
        self._stop.set()
        runner = self._threads[0] if self._threads else None
        if runner is not None:
            runner.join(self.timing.statement_s + 0.5)
        with self._state:
            term, self._term = self._term, None  # no leader-only work from here on, whatever the release does
        IS_LEADER.set(0)
        # Only once the leader thread is done with the connection. If it is dead, the deadline ends the statement
        # and the lease lapses by itself.
        idle = runner is not None and not runner.is_alive() and self._conn is not None
        if term is not None and idle and self._execute("release", lambda c: leadership.release(c, term))[0]:
            log.info("gave up leadership (epoch %d)", term.epoch)
        with self._state:
            self._watching = False
            self._state.notify_all()
        for thread in self._threads[1:]:
            thread.join(1.0)
        elected = self._elected_thread
        if elected is not None:
            # Its recovery work holds a pooled connection; finishing it first lets the engine close that
            # connection rather than leave it to the garbage collector. Bounded: SIGTERM must end in time.
            elected.join(ELECTED_JOIN_S)
        self._drop_connection()
        if self._engine is not None:
            self._engine.dispose()

    def _run(self) -> None:
        while not self._stop.is_set():
            began = time.monotonic()
            if self.term() is None:
                self._campaign()
            else:
                self._renew()
            self._stop.wait(max(0.0, began + self.timing.renew_s - time.monotonic()))
        # stop() may have given up waiting for this thread and dropped the connection while a statement here
        # reconnected: that connection is this thread's to close, or it is left to the garbage collector.
        with self._state:
            late = self._term is None
        if late:
            self._drop_connection()

    def _campaign(self) -> None:
        sent = time.monotonic()
        answered, term = self._execute(
            "election", lambda conn: leadership.take(conn, self._holder, self._lease_s)
        )
        if not answered or term is None:
            return
        with self._state:
            if self._stop.is_set():
                return  # elected while stopping (stop gave up waiting for this thread): the lease lapses unused
            self._term = term
            self._valid_until = self.timing.valid_until(sent)
            self._state.notify_all()
        IS_LEADER.set(1)
        log.info(
            "became leader (epoch %d): this process now runs timers, the metric watch, the outbox and the repair "
            "sweep",
            term.epoch,
        )
        # Not on this thread: start-up work posts to Slack, and the lease must keep being renewed meanwhile.
        elected = threading.Thread(target=self._elected, name="leader-elected", daemon=True)
        self._elected_thread = elected
        elected.start()

    def _elected(self) -> None:
        try:
            self._on_elected()
        except Exception:
            log.exception("start-up work after election failed")

    def _renew(self) -> None:
        with self._state:
            term = self._term
        if term is None:
            return
        sent = time.monotonic()
        answered, renewed = self._execute("renewal", lambda conn: leadership.renew(conn, term, self._lease_s))
        if not answered:
            return  # the watchdog steps down at the deadline unless a later renewal is confirmed first
        with self._state:
            if self._term != term:
                return  # stepped down meanwhile; the next round campaigns for a new epoch
            if renewed:
                self._valid_until = self.timing.valid_until(sent)
                self._state.notify_all()
            else:
                self._step_down("the database no longer shows this process's lease")

    @property
    def _lease_s(self) -> float:
        return self.timing.lease_s

    # --- the watchdog ----------------------------------------------------------------------------------------

    def _watch(self) -> None:
        """Shut the socket of a lease statement past its deadline, and step down when the lease is not confirmed.

        Its own thread, so that neither waits for the leader thread, which may be the one that is stuck."""
        with self._state:
            while self._watching:
                now = time.monotonic()
                if self._statement_deadline is not None and now >= self._statement_deadline:
                    self._abort_statement()
                if self._term is not None and now >= self._valid_until:
                    self._step_down(f"no renewal confirmed for {self.timing.step_down_bound_s:g} s")
                deadlines = [
                    d for d in (self._statement_deadline, self._valid_until if self._term else None) if d
                ]
                self._state.wait(max(0.0, min(deadlines) - now) if deadlines else None)

    def _step_down(self, why: str) -> None:
        """Called holding ``_state``."""
        if self._term is None:
            return
        log.error("stepping down as leader (epoch %d): %s", self._term.epoch, why)
        self._term = None
        IS_LEADER.set(0)

    def _abort_statement(self) -> None:
        """Called holding ``_state``, while the connection is open: the fd is still the connection's."""
        fd, self._statement_fd, self._statement_deadline = self._statement_fd, None, None
        if fd is None:
            return
        log.warning(
            "a leadership statement got no answer within %g s: dropping its connection",
            self.timing.statement_s,
        )
        with contextlib.suppress(OSError):
            sock = socket.socket(fileno=os.dup(fd))
            try:
                # The blocked read returns at once, and the driver reports a closed connection.
                sock.shutdown(socket.SHUT_RDWR)
            finally:
                sock.close()

    # --- the connection --------------------------------------------------------------------------------------

    def _execute(self, what: str, statement: Callable[[sa.Connection], Any]) -> tuple[bool, Any]:
        """Run one lease statement within the statement deadline: (answered, its result).

        Connecting is bounded by ``connect_timeout``; everything sent on the connection, by the deadline."""
        try:
            fresh = self._conn is None
            conn = self._connection()
            with self._state:
                self._statement_fd = _socket_fd(conn)
                self._statement_deadline = time.monotonic() + self.timing.statement_s
                self._state.notify_all()
            try:
                if fresh:
                    # The server gives up before the client's deadline: a statement it ends holds nothing after.
                    ms = int(self.timing.statement_s * 1000)
                    conn.execute(_SERVER_TIMEOUTS, {"statement": str(ms * 4 // 5), "lock": str(ms // 2)})
                return True, statement(conn)
            finally:
                with self._state:
                    self._statement_fd = self._statement_deadline = None
        except Exception as e:
            log.warning("leadership %s failed (%s); reconnecting", what, type(e).__name__)
            self._drop_connection()
            return False, None

    def _connection(self) -> sa.Connection:
        if self._conn is None:
            assert self._engine is not None
            self._conn = self._engine.connect()
        return self._conn

    def _drop_connection(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:
                log.debug("closing a broken leadership connection failed")
            self._conn = None


def _socket_fd(conn: sa.Connection) -> int | None:
    """The file descriptor of a psycopg connection's socket, for the watchdog."""
    with contextlib.suppress(AttributeError):
        return int(conn.connection.dbapi_connection.pgconn.socket)  # type: ignore[union-attr]
    return None


def make_leader(database_url: str, *, timing: LeaseTiming | None = None) -> SqliteLeader | PostgresLeader:
    if database_url.startswith("sqlite"):
        path = sa.engine.make_url(database_url).database or ""
        if path in ("", ":memory:"):
            raise ConfigError("DATABASE_URL: an in-memory SQLite database cannot be shared; give a file path")
        return SqliteLeader(database_url, str(Path(path).resolve()))
    return PostgresLeader(database_url, timing=timing)
