"""One leader even when the network lies: a lease timed by the database, fenced writes, bounded stops, true liveness.

The process tests run two real ``release-bot serve`` replicas on the real Postgres (``tests/network_cut.py``); the
fencing tests run the bot's own election and unit of work in this process.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from bot.db import leadership
from bot.db.engine import make_engine, make_session_factory
from bot.db.migrate import upgrade
from bot.db.models import LeadershipRow
from bot.db.uow import SqlUnitOfWork
from bot.domain.leadership import LeaseTiming, Term
from bot.errors import NotLeader
from bot.runtime.heartbeat import LIVENESS_S
from bot.runtime.leader import PostgresLeader
from tests.conftest import FAST_CHECKLIST, PG_URL, leading, postgres_available, reset_postgres
from tests.fakes.slack_api import FakeSlack
from tests.fakes.tcp_relay import TcpRelay
from tests.network_cut import LEADER_MARKER, freeze, leader_gauge, run_cut, thaw, upstream_of, via, work_pid
from tests.proc import BotProcess, bot_env

TIMING = LeaseTiming()
POLL_SLACK_S = 0.5  # the poller samples every 0.1 s, over HTTP, on a shared machine


def _postgres() -> None:
    reason = postgres_available()
    if reason is not None:
        pytest.skip(reason)
    reset_postgres()


# --- fencing, in this process ------------------------------------------------------------------------------------


def _epoch(db_url: str) -> int:
    engine = sa.create_engine(db_url, poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        epoch = conn.execute(sa.select(LeadershipRow.epoch)).scalar_one()
    engine.dispose()
    return int(epoch)


def test_a_deposed_leaders_write_is_refused_in_its_own_transaction(db_url: str) -> None:
    upgrade(db_url)
    engine = make_engine(db_url)
    factory = make_session_factory(engine)
    try:
        with leading(db_url) as first:
            old = first.term()
            assert old is not None and old.epoch == _epoch(db_url)
            with SqlUnitOfWork(factory, term=first.term) as uow:
                assert uow.leader_only() == old  # the leader's own write passes
        with leading(db_url) as second:  # the next leader: a new epoch
            new = second.term()
            assert new is not None and new.epoch == old.epoch + 1
            with SqlUnitOfWork(factory, term=lambda: old) as uow, pytest.raises(NotLeader):
                uow.leader_only()
            with SqlUnitOfWork(factory, term=second.term) as uow:
                assert uow.leader_only() == new
        with SqlUnitOfWork(factory, term=lambda: None) as uow, pytest.raises(NotLeader):
            uow.leader_only()  # a process that does not lead is refused before asking the database
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_a_takeover_waits_for_the_deposed_leaders_write_in_flight() -> None:
    _postgres()
    upgrade(PG_URL)
    engine = make_engine(PG_URL)
    factory = make_session_factory(engine)
    direct = sa.create_engine(PG_URL, poolclass=sa.pool.NullPool, isolation_level="AUTOCOMMIT")
    try:
        with direct.connect() as conn:
            old = leadership.take(conn, "a", 0.5)
        assert old is not None
        took: list[tuple[float, Term | None]] = []
        with SqlUnitOfWork(factory, term=lambda: old) as uow:
            uow.leader_only()  # in flight: the fence is held until this transaction ends
            time.sleep(0.6)  # the lease has expired by the database's clock meanwhile

            def take_over() -> None:
                with direct.connect() as conn:
                    term = leadership.take(conn, "b", 5.0)
                took.append((time.monotonic(), term))

            thread = threading.Thread(target=take_over)
            thread.start()
            time.sleep(0.5)
            assert took == []  # waiting for the write in flight, not running beside it
            committed = time.monotonic()
            uow.commit()
        thread.join(5)
        [(at, new)] = took
        assert new is not None and new.epoch == old.epoch + 1 and at >= committed
        with SqlUnitOfWork(factory, term=lambda: old) as uow, pytest.raises(NotLeader):
            uow.leader_only()
    finally:
        direct.dispose()
        engine.dispose()


# --- a silent network cut between the leader and Postgres ----------------------------------------------------------


@pytest.mark.postgres
def test_a_cut_off_leader_stops_by_its_deadline_and_a_standby_leads_after_the_lease(
    fake_slack: FakeSlack,
) -> None:
    """In this process: the leader's statements go through a relay that black-holes them; its thread hangs in a
    statement until the watchdog shuts the socket, and it stops believing it leads at its deadline anyway."""
    _postgres()
    upgrade(PG_URL)
    engine = make_engine(PG_URL)
    factory = make_session_factory(engine)
    with TcpRelay(upstream_of(PG_URL)) as relay:
        cut_off, standby = PostgresLeader(via(relay, PG_URL)), PostgresLeader(PG_URL)
        try:
            cut_off.start(lambda: None)
            deadline = time.monotonic() + 10
            while not cut_off.is_leader():
                assert time.monotonic() < deadline
                time.sleep(0.02)
            old = cut_off.term()
            standby.start(lambda: None)
            time.sleep(1.5)
            assert not standby.is_leader()
            relay.cut(marker=LEADER_MARKER)
            cut = time.monotonic()
            while cut_off.is_leader():
                time.sleep(0.01)
            stepped_down = time.monotonic() - cut
            with SqlUnitOfWork(factory, term=lambda: old) as uow:
                uow.leader_only()  # not yet replaced: the lease it proved is still running in the database
            while not standby.is_leader():
                assert time.monotonic() - cut < TIMING.takeover_bound_s + 1
                time.sleep(0.01)
            took_over = time.monotonic() - cut
            print(
                f"\nleader stepped down {stepped_down:.2f} s after the cut, standby led after {took_over:.2f} s"
            )
            assert stepped_down <= TIMING.step_down_bound_s + 0.1
            # The standby cannot have been elected before the old leader stopped, and a safety margin later.
            assert stepped_down + TIMING.safety_s <= took_over <= TIMING.takeover_bound_s
            with SqlUnitOfWork(factory, term=lambda: old) as uow, pytest.raises(NotLeader):
                uow.leader_only()
            began = time.monotonic()
            cut_off.stop()
            assert time.monotonic() - began < 3
        finally:
            cut_off.stop()
            standby.stop()
            engine.dispose()


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.parametrize("server_side", ["kept", "closed"])
def test_a_silent_cut_never_leaves_two_leaders_and_a_standby_takes_over_in_bound(
    server_side: str, tmp_path: Path, fake_slack: FakeSlack
) -> None:
    """The cut keeps the leader's TCP connection acknowledged and forwards nothing. "kept": the server's session stays
    too (it holds whatever it held); "closed": the server hears the close, the leader does not."""
    _postgres()
    out = run_cut(tmp_path, fake_slack, close_server_side=server_side == "closed")
    logs = f"\n--- A ---\n{out.a_log[-6000:]}\n--- B ---\n{out.b_log[-6000:]}"
    print(
        f"\ncut ({server_side}): A stopped leading after {out.stepped_down_s} s, B led after {out.took_over_s} s; "
        f"probes claimed by A {len(out.a_claims)}, by B {len(out.b_claims)}; SIGTERM to A took {out.sigterm_s:.2f} s"
    )
    # Leader-only writes: every probe claimed once, by one replica at a time, and never again after the other began.
    assert out.a_claims and out.b_claims, logs
    assert max(out.a_claims) < min(out.b_claims), logs
    assert out.unfired == 0 and out.posted_twice == {}, logs
    assert out.both_leading == [], logs
    assert out.stepped_down_s is not None and out.stepped_down_s <= TIMING.step_down_bound_s + POLL_SLACK_S, (
        logs
    )
    assert out.took_over_s is not None and out.took_over_s <= TIMING.takeover_bound_s + POLL_SLACK_S, logs
    # A claim accepted from A after the cut was accepted under a lease A could still prove.
    assert (max(out.a_claims) - out.cut_wall).total_seconds() <= TIMING.step_down_bound_s, logs
    # Stopping the cut-off replica is bounded too: its lease statements have deadlines.
    assert out.sigterm_code == 0 and out.sigterm_s < 10, logs


@pytest.mark.slow
@pytest.mark.postgres
def test_sigterm_ends_a_replica_within_ten_seconds_with_its_database_cut_off(
    tmp_path: Path, fake_slack: FakeSlack
) -> None:
    _postgres()
    upgrade(PG_URL)
    with TcpRelay(upstream_of(PG_URL)) as relay:
        bot = BotProcess(bot_env(via(relay, PG_URL), fake_slack.base_url, FAST_CHECKLIST), tmp_path / "a.log")
        bot.start()
        deadline = time.monotonic() + 20
        while leader_gauge(bot) != 1.0:
            assert time.monotonic() < deadline, bot.log()
            time.sleep(0.1)
        relay.cut()  # every connection, and every new one: statements in flight never answer
        time.sleep(2.0)  # let the jobs of the clock run into the silence
        began = time.monotonic()
        assert bot.proc is not None
        bot.proc.terminate()
        bot.proc.wait(30)
        took = time.monotonic() - began
        print(f"\nSIGTERM to exit with the database cut off: {took:.2f} s")
        assert took < 10, bot.log()


# --- liveness ---------------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.postgres
def test_a_frozen_work_process_fails_livez_and_a_standby_takes_over(
    tmp_path: Path, fake_slack: FakeSlack
) -> None:
    _postgres()
    upgrade(PG_URL)
    env = bot_env(PG_URL, fake_slack.base_url, FAST_CHECKLIST)
    a = BotProcess(env, tmp_path / "a.log").start()
    b: BotProcess | None = None
    frozen: int | None = None
    try:
        deadline = time.monotonic() + 20
        while leader_gauge(a) != 1.0:
            assert time.monotonic() < deadline, a.log()
            time.sleep(0.1)
        b = BotProcess(env, tmp_path / "b.log").start()
        frozen = work_pid(a)
        freeze(frozen)
        began = time.monotonic()
        took_over = dead = None
        while time.monotonic() - began < LIVENESS_S + 10 and (took_over is None or dead is None):
            if took_over is None and leader_gauge(b) == 1.0:
                took_over = time.monotonic() - began
            if dead is None and httpx.get(f"{a.url}/livez", timeout=2).status_code == 503:
                dead = time.monotonic() - began
            time.sleep(0.1)
        print(f"\nwork process frozen: B led after {took_over} s, A's /livez failed after {dead} s")
        assert took_over is not None and took_over <= TIMING.takeover_bound_s + POLL_SLACK_S, b.log()
        assert dead is not None and LIVENESS_S - 1 <= dead <= LIVENESS_S + 2, a.log()
        assert httpx.get(f"{a.url}/healthz", timeout=2).status_code == 503  # and Slack's requests go to B
        assert httpx.get(f"{b.url}/livez", timeout=2).status_code == 200
    finally:
        if frozen is not None:
            thaw(frozen)
        for bot in (a, b):
            if bot is not None and bot.proc is not None and bot.proc.poll() is None:
                bot.terminate()
