"""Reading releases back: the checklist a release started with is kept whole, and lists of releases leave it out.

A release stores the YAML it started with (~10 KB). The metric watch once listed every active release with its
whole row each tick: with 600 active releases, ~6 MB of query results a tick, which the work process's allocator
then kept (bench: peak PSS of the work process 68 MB before the column was deferred, 56 MB after).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import event

from bot.checklist.loading import load_checklist
from bot.db.engine import make_engine, make_session_factory
from bot.db.migrate import upgrade
from bot.db.uow import SqlUnitOfWork
from bot.domain.records import Actor
from bot.errors import NotFound
from bot.usecases.releases import Services
from tests.conftest import FAST_CHECKLIST
from tests.test_watch_unit import FakeClock

ALICE = Actor("U061F7AUR", "alice")


class Recorded:
    def __init__(self, db_url: str) -> None:
        self.engine = make_engine(db_url)
        self.statements: list[str] = []
        event.listen(self.engine, "before_cursor_execute", self._record)
        factory = make_session_factory(self.engine)
        self.uow = lambda: SqlUnitOfWork(factory)
        self.source = FAST_CHECKLIST.read_text(encoding="utf-8")
        self.services = Services(
            uow=self.uow,
            clock=FakeClock(),
            checklist=load_checklist(FAST_CHECKLIST),
            checklist_source=self.source,
            is_manager=lambda _user: True,  # who may start is not what these tests are about
        )

    def _record(self, _conn: object, _cursor: object, statement: str, *_args: object) -> None:
        self.statements.append(statement)


@pytest.fixture
def recorded(db_url: str) -> Iterator[Recorded]:
    upgrade(db_url)
    r = Recorded(db_url)
    yield r
    r.engine.dispose()


def test_listing_releases_leaves_their_checklist_source_in_the_database(recorded: Recorded) -> None:
    started = [
        recorded.services.start_release(channel_id=f"C0REL{n}", version="v1.4.0", actor=ALICE).release.id
        for n in range(3)
    ]
    recorded.statements.clear()
    with recorded.uow() as uow:
        active = uow.releases.active()
        recent = uow.releases.recent()
        one = uow.releases.get(started[0])
    assert [r.id for r in active] == started
    assert sorted(r.id for r in recent) == started
    assert one.version == "v1.4.0"
    selects = [s for s in recorded.statements if s.lstrip().upper().startswith("SELECT")]
    assert len(selects) == 3
    assert not [s for s in selects if "checklist_source" in s]


def test_a_release_reads_back_the_checklist_it_started_with(recorded: Recorded) -> None:
    release_id = recorded.services.start_release(
        channel_id="C0RELEASES", version="v1.4.0", actor=ALICE
    ).release.id
    with recorded.uow() as uow:
        assert uow.releases.checklist_source(release_id) == recorded.source
        with pytest.raises(NotFound):
            uow.releases.checklist_source(release_id + 1000)
    assert recorded.services.view(release_id).checklist == load_checklist(FAST_CHECKLIST)


def test_the_first_releases_of_a_long_list_come_back_in_start_order(recorded: Recorded) -> None:
    started = [
        recorded.services.start_release(channel_id=f"C0REL{n}", version="v1.4.0", actor=ALICE).release.id
        for n in range(5)
    ]
    with recorded.uow() as uow:
        assert [r.id for r in uow.releases.active(limit=2)] == started[:2]
        assert [r.id for r in uow.releases.active()] == started
