"""Database sessions on Postgres end a transaction left open, so its row locks cannot hold others for ever."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from bot.db.engine import IDLE_IN_TRANSACTION_S, make_engine

pytestmark = pytest.mark.postgres


def test_every_connection_carries_the_idle_in_transaction_limit(pg_url: str) -> None:
    engine = make_engine(pg_url)
    try:
        with engine.connect() as conn:
            shown = conn.execute(sa.text("SHOW idle_in_transaction_session_timeout")).scalar_one()
        assert shown == f"{int(IDLE_IN_TRANSACTION_S)}s" or shown == f"{int(IDLE_IN_TRANSACTION_S) // 60}min"
    finally:
        engine.dispose()


def test_a_transaction_left_open_is_ended_and_its_lock_released(pg_url: str) -> None:
    engine = make_engine(pg_url, idle_in_transaction_s=0.5)
    other = make_engine(pg_url)
    try:
        with other.begin() as conn:
            conn.execute(sa.text("CREATE TABLE held (id int PRIMARY KEY, n int)"))
            conn.execute(sa.text("INSERT INTO held VALUES (1, 0)"))
        stuck = engine.connect()
        stuck.begin()
        stuck.execute(sa.text("UPDATE held SET n = 1 WHERE id = 1"))  # holds the row's lock, then goes quiet
        time.sleep(1.5)
        with other.begin() as conn:
            conn.execute(sa.text("SET LOCAL lock_timeout = '2s'"))
            conn.execute(sa.text("UPDATE held SET n = 2 WHERE id = 1"))  # would wait for ever without the limit
        with pytest.raises(sa.exc.DBAPIError):
            stuck.execute(sa.text("SELECT 1"))
        stuck.invalidate()
        with other.connect() as conn:
            assert conn.execute(sa.text("SELECT n FROM held WHERE id = 1")).scalar_one() == 2  # the stuck one's undone
    finally:
        engine.dispose()
        other.dispose()
