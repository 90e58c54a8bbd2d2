"""Engine construction for SQLite (the embedded default) and Postgres; nothing connects until first use."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

# A transaction left open (a thread stuck between two statements) holds its row locks: a click or a timer claim
# on the same rows would wait behind it for ever. Postgres ends such a session after this long; nothing of ours
# keeps a transaction open across a wait anywhere near it (Slack calls happen between transactions).
IDLE_IN_TRANSACTION_S = 60.0


def make_engine(url: str, *, idle_in_transaction_s: float = IDLE_IN_TRANSACTION_S, **kwargs: Any) -> Engine:
    """Create an engine with the settings each backend needs for concurrent writers."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 15, "check_same_thread": False}, **kwargs)
        _sqlite_immediate_transactions(engine)
        return engine
    engine = create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10, **kwargs)
    _postgres_session_limits(engine, idle_in_transaction_s)
    return engine


def _postgres_session_limits(engine: Engine, idle_in_transaction_s: float) -> None:
    # A SET on connect rather than the startup packet's ``options``: PgBouncer refuses ``options`` unless told to
    # ignore it, and a pooler in front of Postgres is common (deploy/kubernetes/POSTGRES.md).
    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        with dbapi_connection.cursor() as cursor:
            cursor.execute(f"SET idle_in_transaction_session_timeout = {int(idle_in_transaction_s * 1000)}")
        dbapi_connection.commit()


def _sqlite_immediate_transactions(engine: Engine) -> None:
    # pysqlite's deferred BEGIN lets two writers both read, then deadlock on the upgrade to a write lock
    # (busy_timeout cannot help there). BEGIN IMMEDIATE takes the write lock up front, so concurrent clicks
    # queue on busy_timeout instead of failing with "database is locked".
    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=15000")
        if engine.url.database not in (None, "", ":memory:"):
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        # Reads take no write lock, so rendering never queues behind clicks (WAL lets them run side by side).
        readonly = conn.get_execution_options().get(READONLY, False)
        conn.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")


READONLY = "release_bot_readonly"


def make_session_factory(engine: Engine, *, readonly: bool = False) -> sessionmaker[Session]:
    bind = engine.execution_options(**{READONLY: True}) if readonly else engine
    return sessionmaker(bind, expire_on_commit=False)
