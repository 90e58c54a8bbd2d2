"""Shared fixtures: databases (SQLite and the real Postgres), the fake Slack, and a running bot."""

from __future__ import annotations

import io
import logging
import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from bot.config import Settings, load_settings
from bot.db.migrate import upgrade
from bot.observability import configure_logging
from bot.runtime.bootstrap import Bot, build
from bot.runtime.leader import PostgresLeader, SqliteLeader, make_leader
from bot.runtime.server import make_http_server
from bot.slack.gateway import ChannelPacer, UpdatePacer
from tests.fakes.slack_api import FakeSlack
from tests.slack_user import BOT_TOKEN, SECRET, SlackUser

ROOT = Path(__file__).resolve().parent.parent
FAST_CHECKLIST = ROOT / "tests" / "data" / "fast-checklist.yaml"
SEED_CHECKLIST = ROOT / "bot" / "checklist" / "deployment.yaml"
PG_ADMIN_URL = os.environ.get("TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
# Each test run gets its own database on the server, so parallel runs never drop each other's tables.
PG_URL = (
    sa.engine.make_url(PG_ADMIN_URL)
    .set(database=f"releasebot_test_{os.getpid()}")
    .render_as_string(hide_password=False)
)
_pg_created = False


def postgres_available() -> str | None:
    """None when Postgres answers (creating this run's database on first use), else the reason it does not."""
    global _pg_created
    try:
        engine = sa.create_engine(
            PG_ADMIN_URL,
            poolclass=sa.pool.NullPool,
            isolation_level="AUTOCOMMIT",
            connect_args={"connect_timeout": 3},
        )
        with engine.connect() as conn:
            if not _pg_created:
                name = sa.engine.make_url(PG_URL).database
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
                _pg_created = True
        engine.dispose()
        return None
    except Exception as e:
        return f"Postgres at {PG_ADMIN_URL} is not reachable ({type(e).__name__})"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _pg_created:
        engine = sa.create_engine(PG_ADMIN_URL, poolclass=sa.pool.NullPool, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(
                sa.text(f'DROP DATABASE IF EXISTS "{sa.engine.make_url(PG_URL).database}" WITH (FORCE)')
            )
        engine.dispose()


def reset_postgres() -> None:
    engine = sa.create_engine(PG_URL, poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        # A replica a test killed or cut off behind a black-holing relay can leave its session open on the server,
        # idle in a transaction that holds locks: DROP SCHEMA would wait on it forever. End them first.
        conn.execute(
            sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
        conn.execute(sa.text("SELECT pg_advisory_unlock_all()"))
        conn.execute(sa.text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA public"))
    engine.dispose()


@contextmanager
def leading(db_url: str) -> Iterator[SqliteLeader | PostgresLeader]:
    """This test process elected leader on ``db_url`` by the bot's own election, for leader-only use cases that a
    test runs without a whole bot (their writes are fenced by the term: ``SqlUnitOfWork(..., term=leader.term)``)."""
    leader = make_leader(db_url)
    leader.start(on_elected=lambda: None)
    deadline = time.monotonic() + 15
    try:
        while not leader.is_leader():
            assert time.monotonic() < deadline, "this process was not elected leader"
            time.sleep(0.02)
        yield leader
    finally:
        leader.stop()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database on each engine."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'release-bot.db'}"
    return fresh_postgres()


def fresh_postgres() -> str:
    """The real Postgres, emptied; skipped where it is not running, but a failure in CI (which must test it)."""
    reason = postgres_available()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    reset_postgres()
    return PG_URL


@pytest.fixture
def pg_url() -> str:
    """A fresh, empty Postgres database, for what only Postgres has."""
    return fresh_postgres()


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


def make_settings(db_url: str, fake: FakeSlack, **overrides: Any) -> Settings:
    env = {
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_API_URL": fake.base_url,
        "DATABASE_URL": db_url,
        "RELEASE_BOT_CHECKLIST": str(FAST_CHECKLIST),
        "RELEASE_BOT_LANGUAGE": "en",
        # Everyone manages here; tests of who may do what name managers themselves.
        "RELEASE_MANAGERS": "*",
        "HOST": "127.0.0.1",
        "PORT": "0",
    }
    settings = load_settings(env)
    return replace(settings, **overrides) if overrides else settings


@dataclass
class RunningBot:
    """A bot served over real HTTP on loopback, and the people who use it."""

    bot: Bot
    url: str
    fake: FakeSlack
    http: httpx.Client
    server: Any = None

    def stop(self) -> None:
        """Stop serving, then the bot (its clock, sync and database)."""
        if self.server is not None:
            self.server.stop()
        self.http.close()
        self.bot.stop()

    def user(self, user_id: str = "U061F7AUR", name: str = "alice") -> SlackUser:
        return SlackUser(self.url, user_id, name, self.fake, self.http)

    @property
    def services(self) -> Any:
        return self.bot.services


def start_bot(settings: Settings, fake: FakeSlack, **build_kwargs: Any) -> RunningBot:
    upgrade(settings.database_url)
    # Like the post pacer, chat.update's workspace pacing is tested where it is the subject (test_update_pace).
    build_kwargs.setdefault("update_pacer", UpdatePacer.unlimited())
    bot = build(settings, **build_kwargs)
    bot.start_background()
    server = make_http_server("127.0.0.1", 0, bot.web, 16)
    server.prepare()
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    port = server.bind_addr[1]
    http = httpx.Client(timeout=10)
    return RunningBot(bot, f"http://127.0.0.1:{port}", fake, http, server)


@pytest.fixture
def running(db_url: str, fake_slack: FakeSlack, request: pytest.FixtureRequest) -> Iterator[RunningBot]:
    marker = request.node.get_closest_marker("settings")
    overrides = dict(marker.kwargs) if marker else {}
    settings = make_settings(db_url, fake_slack, **overrides)
    # Pacing and coalescing are tested on their own; elsewhere they would only slow the suite down.
    rb = start_bot(settings, fake_slack, sync_interval_s=0.2, pacer=ChannelPacer(0.0))
    try:
        yield rb
    finally:
        rb.stop()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "settings(**overrides): Settings overrides for the running bot")


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """The bot's logging (JSON, SECRET redacted) into a buffer; the test's logging and hooks restored after."""
    stream = io.StringIO()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    hooks = threading.excepthook, sys.excepthook
    configure_logging(level="INFO", fmt="json", secrets=[SECRET], stream=stream)
    try:
        yield stream
    finally:
        threading.excepthook, sys.excepthook = hooks
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)
