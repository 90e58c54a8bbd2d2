"""The metric watch samples every due release in one batch: a bounded number of statements whatever the number of
releases, one fenced transaction refused as a whole when the leader is deposed, and one bad release never stopping
the others (bot.usecases.watch.MetricWatch._sample_batch). SQLite and Postgres, real unit of work and database."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import func, select, update

from bot.db.models import LeadershipRow, MetricSampleRow, PagerOutboxRow, WatchStateRow
from bot.domain.checklist import Criterion
from bot.domain.incident import IncidentRecord, IncidentStatus
from bot.ports import Reading
from bot.usecases.releases import ReleaseView
from tests.test_watch_unit import ALICE, BAD, ScriptedMetrics, World, statements, world_for


@pytest.fixture
def world(db_url: str, tmp_path: Path) -> Iterator[World]:
    yield from world_for(db_url, tmp_path)


def canaries(world: World, n: int, first: int = 0) -> list[int]:
    """``n`` more releases in the first canary stage, each in a channel of its own."""
    ids = []
    for i in range(first, first + n):
        view = world.services.start_release(channel_id=f"C0BATCH{i:03d}", version="v1.4.0", actor=ALICE)
        with world.uow() as uow:  # type: ignore[operator]
            uow.releases.update(
                view.release.id, step="canary-10", step_started_at=world.clock.now(), thread_ts=f"1700000002.{i:06d}"
            )
            uow.commit()
        ids.append(view.release.id)
    return ids


def samples_of(world: World) -> dict[int, int]:
    with world.uow() as uow:  # type: ignore[operator]
        rows = uow.session.execute(
            select(MetricSampleRow.release_id, func.count()).group_by(MetricSampleRow.release_id)
        )
        return {rid: int(n) for rid, n in rows}


def last_sampled(world: World, release_id: int) -> datetime | None:
    with world.uow() as uow:  # type: ignore[operator]
        return uow.watch.releases.get_or_create(release_id, world.clock.now()).last_sample_at


def test_a_sample_of_many_releases_costs_the_same_statements_as_of_a_few(world: World) -> None:
    canaries(world, 4)
    world.sample(3)  # baselines, first samples, first header figures: all behind us
    with statements(this_thread_only=True) as five:
        world.sample()
    canaries(world, 20, first=4)
    world.sample(3)
    before = samples_of(world)
    with statements(this_thread_only=True) as twenty_five:
        world.sample()
    after = samples_of(world)
    assert len(after) == 25 and all(after[rid] == before[rid] + 2 for rid in after)  # each sampled: its 2 metrics
    assert len(twenty_five) == len(five), (five, twenty_five)
    assert len(twenty_five) <= 20, twenty_five  # the shared read, one fence, a few reads and writes for them all


def test_breaches_in_many_releases_fire_once_each_in_one_batch(world: World) -> None:
    ids = [world.release_id, *canaries(world, 5)]
    fired: list[tuple[int, str]] = []

    def hook(release_id: int, criterion: Criterion, _details: dict[str, Any]) -> None:
        fired.append((release_id, criterion.key))

    world.watch.on_fired.append(hook)
    world.sample()  # baselines and a first good sample
    world.metrics.error_rate.extend([BAD] * 1000)
    world.sample(6)
    incidents = {}
    with world.uow() as uow:  # type: ignore[operator]
        for rid in ids:
            incidents[rid] = uow.watch.incidents.for_release(rid)
        triggers = uow.session.scalar(
            select(func.count()).select_from(PagerOutboxRow).where(PagerOutboxRow.action == "trigger")
        )
    assert all(
        [(i.criterion, i.status) for i in found] == [("error_rate", IncidentStatus.OPEN)] for found in incidents.values()
    ), incidents
    assert sorted(fired) == sorted((rid, "error_rate") for rid in ids)
    assert sorted(i.release_id for i in world.alerts.pings) == sorted(ids)
    assert triggers == len(ids)


def test_one_release_whose_judging_fails_does_not_stop_the_others(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    ids = [world.release_id, *canaries(world, 3)]
    world.sample(2)
    bad = ids[1]
    with world.uow() as uow:  # type: ignore[operator]
        uow.session.execute(update(WatchStateRow).where(WatchStateRow.release_id == bad).values(state={"v": 999}))
        uow.commit()
    before, bad_at = samples_of(world), last_sampled(world, bad)
    with caplog.at_level(logging.ERROR, logger="bot.usecases.watch"):
        world.sample(2)
    after = samples_of(world)
    assert after[bad] == before[bad] and last_sampled(world, bad) == bad_at
    assert all(after[rid] == before[rid] + 4 for rid in ids if rid != bad)
    assert f"metric watch failed for release {bad}" in caplog.text


def refuse_samples_of(db_url: str, release_id: int) -> None:
    """A database that refuses one release's sample rows: a bad row breaking the batch's one INSERT."""
    engine = sa.create_engine(db_url, poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql(
                f"CREATE TRIGGER refuse_samples BEFORE INSERT ON metric_samples WHEN NEW.release_id = {release_id}"
                " BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
            )
        else:
            conn.exec_driver_sql(
                "CREATE OR REPLACE FUNCTION refuse_samples() RETURNS trigger AS $$ BEGIN"
                f" IF NEW.release_id = {release_id} THEN RAISE EXCEPTION 'refused by the test'; END IF;"
                " RETURN NEW; END $$ LANGUAGE plpgsql"
            )
            conn.exec_driver_sql(
                "CREATE TRIGGER refuse_samples BEFORE INSERT ON metric_samples"
                " FOR EACH ROW EXECUTE FUNCTION refuse_samples()"
            )
    engine.dispose()


def test_a_bad_row_that_breaks_the_batch_write_costs_only_its_own_release(
    db_url: str, world: World, caplog: pytest.LogCaptureFixture
) -> None:
    ids = [world.release_id, *canaries(world, 3)]
    world.sample(2)
    bad = ids[2]
    refuse_samples_of(db_url, bad)
    before, bad_at = samples_of(world), last_sampled(world, bad)
    with caplog.at_level(logging.ERROR, logger="bot.usecases.watch"):
        world.sample()
    after = samples_of(world)
    assert after[bad] == before[bad] and last_sampled(world, bad) == bad_at  # nothing of it written
    assert all(after[rid] == before[rid] + 2 for rid in ids if rid != bad)
    assert "writing each alone" in caplog.text and f"metric watch failed for release {bad}" in caplog.text


class TakeoverMidSample:
    """Prometheus readings, and, while the watch asks its first sample query, another replica takes the lead."""

    def __init__(self, metrics: ScriptedMetrics, db_url: str) -> None:
        self._metrics = metrics
        self._db_url = db_url
        self.taken_over = False

    def query(self, promql: str, *, at: datetime | None = None) -> Reading:
        if at is None and "timestamp(" not in promql and not self.taken_over:
            engine = sa.create_engine(self._db_url, poolclass=sa.pool.NullPool)
            with engine.begin() as conn:
                conn.execute(
                    update(LeadershipRow).values(epoch=LeadershipRow.epoch + 1, holder="the-next-leader")
                )
            engine.dispose()
            self.taken_over = True
        return self._metrics.query(promql, at=at)


def test_a_deposed_leaders_batch_is_refused_as_a_whole(db_url: str, world: World) -> None:
    ids = [world.release_id, *canaries(world, 3)]
    world.sample()  # baselines and first samples
    world.metrics.error_rate.extend([BAD] * 1000)
    world.sample()  # one breach each: the next one fires
    with world.uow() as uow:  # type: ignore[operator]
        states_before = {(r.release_id, r.criterion): dict(r.state) for r in uow.session.scalars(select(WatchStateRow))}
    before = samples_of(world)
    deposing = TakeoverMidSample(world.metrics, db_url)
    watch = world.watch_with(metrics=deposing)
    world.clock.advance(1)
    watch.tick()
    assert deposing.taken_over  # the readings were asked before the write: the fence held at the write
    assert samples_of(world) == before
    with world.uow() as uow:  # type: ignore[operator]
        states_after = {(r.release_id, r.criterion): dict(r.state) for r in uow.session.scalars(select(WatchStateRow))}
        assert all(uow.watch.incidents.for_release(rid) == [] for rid in ids)
        assert [e for e in uow.watch.outbox.all() if e.action == "trigger"] == []
    assert states_after == states_before
    assert world.alerts.pings == []


def test_the_headers_stage_counts_match_the_gate_judged_from_the_stored_samples(world: World) -> None:
    """The batch counts the stage's samples in the database; the lifecycle's gate (GateWindow.judge) counts them
    in Python from the rows. Both must say the same moments and the same moments over a line."""
    from bot.usecases.gate_window import GateWindow

    canaries(world, 2)
    world.sample()
    for value in (0.03, None, 0.002, 0.04):  # over the gate's 1 %, no data, under, over: two of them news
        reading = Reading(value) if value is not None else Reading(None, "no series matched")
        world.metrics.error_rate.extend([reading] * 6)  # each release's sample query and its window's
        world.sample()
    view = world.services.view(world.release_id)
    gate, spec = view.checklist.gate, view.checklist.metrics
    assert gate is not None and spec is not None and view.gate_window is not None
    judged = GateWindow(uow=world.uow, clock=world.clock, metrics=world.metrics).judge(  # type: ignore[arg-type]
        world.release_id, gate, spec, view.release.step_started_at
    )
    assert judged is not None and judged.breached == 2
    assert (view.gate_window["samples"], view.gate_window["breached"]) == (judged.samples, judged.breached)


def test_one_release_whose_ping_breaks_does_not_cost_the_others_their_abort(world: World) -> None:
    """After the commit the on_fired hooks (the traffic provider's abort on breach) run before the pings, and each
    ping on its own: a ping that raises anything (a render bug for one release) must not cost the other releases
    of the batch their abort, which nothing would run later (their criteria have fired)."""
    ids = [world.release_id, *canaries(world, 3)]
    broken = ids[0]
    fired: list[int] = []
    world.watch.on_fired.append(lambda rid, _c, _d: fired.append(rid))
    record = world.alerts.ping

    def ping(view: ReleaseView, incident: IncidentRecord) -> str:
        if view.release.id == broken:
            raise KeyError("a template placeholder this release's details lack")
        return record(view, incident)

    world.alerts.ping = ping  # type: ignore[method-assign]
    world.sample()  # baselines and first samples
    world.metrics.error_rate.extend([BAD] * 1000)
    for _ in range(4):
        with contextlib.suppress(KeyError):  # APScheduler would log it and run the job again next poll
            world.sample()
    assert {rid for rid in ids if rid != broken} <= set(fired), fired


@pytest.fixture
def watching(db_url: str, tmp_path: Path) -> Iterator[World]:
    yield from world_for(db_url, tmp_path, step="post_deploy")


def test_no_sample_and_no_page_after_the_post_deploy_watch_is_over(watching: World) -> None:
    """"No sample is taken after the post-deploy watch, so nothing pages after it": the end is checked again under
    the batch's lock, since what the tick does one by one first (a baseline said in a thread: Slack calls) can
    take a watch listed just before its end past it."""
    world = watching
    view = world.services.view(world.release_id)
    length = view.checklist.post_deploy_watch
    assert length is not None
    end = view.release.step_started_at + length
    world.sample()  # the watch's baseline and first sample
    world.clock.at = end - timedelta(milliseconds=100) - timedelta(seconds=1)
    canaries(world, 1)  # a canary whose baseline the next tick takes, one by one, and says in its thread
    record = world.alerts.thread_note

    def slow_note(v: ReleaseView, text: str) -> None:
        world.clock.advance(0.5)  # chat.postMessage, paced per channel: half a second
        record(v, text)

    world.alerts.thread_note = slow_note  # type: ignore[method-assign]
    world.sample()  # listed 100 ms before the watch's end
    with world.uow() as uow:  # type: ignore[operator]
        after_end = [
            s
            for m in ("error_rate", "p95")
            for s in uow.watch.samples.latest(world.release_id, m, limit=50)
            if s.at >= end
        ]
    assert after_end == [], after_end


def test_a_release_written_alone_before_the_lead_is_lost_still_has_its_hooks_run(
    db_url: str, world: World
) -> None:
    """When the batch's writes fail as a whole, the readings are written release by release. Losing the lead
    half-way stops the rest, but what already committed (an incident open, its trigger queued) still has its
    on_fired hooks run: the next leader sees that criterion fired and would not."""
    ids = [world.release_id, *canaries(world, 2)]
    fired: list[int] = []
    world.watch.on_fired.append(lambda rid, _c, _d: fired.append(rid))
    world.sample()  # baselines and first samples
    world.metrics.error_rate.extend([BAD] * 1000)
    world.sample()  # one breach each: the next sample fires
    refuse_samples_of(db_url, ids[-1])  # the batch's one INSERT breaks: written alone, one by one
    write = world.watch._write  # type: ignore[attr-defined]
    calls: list[int] = []

    def write_then_lose_the_lead(asked: Any, now: Any, *, alone: bool) -> Any:
        calls.append(len(asked))
        done = write(asked, now, alone=alone)
        if len(calls) == 2:  # the first release written alone has committed: another replica takes over
            engine = sa.create_engine(db_url, poolclass=sa.pool.NullPool)
            with engine.begin() as conn:
                conn.execute(
                    update(LeadershipRow).values(epoch=LeadershipRow.epoch + 1, holder="the-next-leader")
                )
            engine.dispose()
        return done

    world.watch._write = write_then_lose_the_lead  # type: ignore[attr-defined,method-assign]
    world.sample()
    with world.uow() as uow:  # type: ignore[operator]
        opened = sorted(rid for rid in ids if uow.watch.incidents.for_release(rid))
    assert opened == [ids[0]]  # committed by the deposed leader while it still led
    assert fired == opened, fired
