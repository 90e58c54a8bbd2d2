"""Claims on posting a message: the database decides which process posts it, and a dead process's claim lapses."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from bot.checklist.loading import load_checklist
from bot.db.engine import make_engine, make_session_factory
from bot.db.migrate import upgrade
from bot.db.uow import SqlUnitOfWork
from bot.domain.records import Actor
from bot.usecases.releases import POST_CLAIM_LEASE, Services
from tests.conftest import FAST_CHECKLIST
from tests.test_watch_unit import FakeClock

ALICE = Actor("U061F7AUR", "alice")
SLOTS = [("header", 0), ("checklist", 0), ("checklist", 1), ("checklist", 2)]


class Replica:
    """What one process holds: its own engine and its own Services, over the shared database."""

    def __init__(self, db_url: str, clock: FakeClock) -> None:
        self.engine = make_engine(db_url)
        factory = make_session_factory(self.engine)
        self.services = Services(
            uow=lambda: SqlUnitOfWork(factory),
            clock=clock,
            checklist=load_checklist(FAST_CHECKLIST),
            checklist_source=FAST_CHECKLIST.read_text(encoding="utf-8"),
            is_manager=lambda _user: True,  # who may start is not what these tests are about
        )


@pytest.fixture
def replicas(db_url: str) -> Iterator[tuple[Replica, Replica, FakeClock]]:
    upgrade(db_url)
    clock = FakeClock()
    a, b = Replica(db_url, clock), Replica(db_url, clock)
    yield a, b, clock
    a.engine.dispose()
    b.engine.dispose()


def reserve(replica: Replica, owner: str) -> list[int]:
    view = replica.services.start_release(channel_id="C0RELEASES", version="v1.4.0", actor=ALICE)
    view = replica.services.add_messages(view.release.id, SLOTS, "C0RELEASES", posting_by=owner)
    return [m.id for m in view.messages]


def test_a_claim_holds_against_others_until_it_lapses(replicas: tuple[Replica, Replica, FakeClock]) -> None:
    a, b, clock = replicas
    header, *pages = reserve(a, "a")
    a.services.message_posted(header, "1700000000.000100", 1, thread=True)
    assert a.services.unposted() == []  # in a thread, but reserved by a live publish: not the sweep's
    assert not b.services.claim_post(pages[0], "b")
    assert a.services.claim_post(pages[0], "a")
    clock.advance(POST_CLAIM_LEASE.total_seconds() - 1)
    assert not b.services.claim_post(pages[2], "b")  # a's publish is slow, but its claims hold
    assert a.services.claim_post(pages[0], "a")  # claimed again just before its post: held for another lease
    clock.advance(2)
    assert not b.services.claim_post(pages[0], "b")
    # a died: its claims lapsed, and the sweep may take them over (pages[0] once its renewed claim lapses too).
    assert [m for _, m in b.services.unposted()] == pages[1:]
    clock.advance(POST_CLAIM_LEASE.total_seconds())
    assert [m for _, m in b.services.unposted()] == pages
    assert b.services.claim_post(pages[2], "b")
    assert not a.services.claim_post(pages[2], "a")
    b.services.message_posted(pages[2], "1700000000.000200", 1)
    assert not b.services.claim_post(pages[2], "b")  # posted: nobody posts it again


def test_a_dropped_claim_goes_back_to_the_sweep(replicas: tuple[Replica, Replica, FakeClock]) -> None:
    a, b, _clock = replicas
    header, first, *_ = reserve(a, "a")
    a.services.message_posted(header, "1700000000.000100", 1, thread=True)
    assert a.services.claim_post(first, "a")
    a.services.drop_post_claims([first], "b")  # only the owner can drop it
    assert first not in [m for _, m in b.services.unposted()]
    a.services.drop_post_claims([first], "a")  # Slack refused the post
    assert first in [m for _, m in b.services.unposted()]


def test_of_two_replicas_claiming_at_once_exactly_one_wins(
    replicas: tuple[Replica, Replica, FakeClock],
) -> None:
    a, b, clock = replicas
    ids = reserve(a, "dead")
    clock.advance(POST_CLAIM_LEASE.total_seconds() + 1)
    wins: dict[str, list[int]] = {"a": [], "b": []}
    start = threading.Barrier(2)

    def claim_all(replica: Replica, owner: str) -> None:
        start.wait()
        for message_id in ids:
            if replica.services.claim_post(message_id, owner):
                wins[owner].append(message_id)

    threads = [threading.Thread(target=claim_all, args=(r, o)) for r, o in ((a, "a"), (b, "b"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(wins["a"] + wins["b"]) == sorted(ids)


def test_a_header_not_in_slack_keeps_its_release_from_the_sweep(
    replicas: tuple[Replica, Replica, FakeClock],
) -> None:
    a, b, clock = replicas
    reserve(a, "a")
    clock.advance(POST_CLAIM_LEASE.total_seconds() + 1)
    assert b.services.unposted() == []  # no thread to post the checklist in
