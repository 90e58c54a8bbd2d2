"""The metric watch, incidents and the outbox with recording fakes: scripted readings, a fake clock, a pager
that fails on command, and a real database (SQLite and Postgres) behind the real unit of work."""

from __future__ import annotations

import contextlib
import dataclasses
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine

from bot.checklist.loading import load_checklist
from bot.db.engine import make_engine, make_session_factory
from bot.db.migrate import upgrade
from bot.db.uow import SqlUnitOfWork
from bot.domain.incident import DECLARED, IncidentRecord, IncidentStatus, OutboxStatus, WatchRef
from bot.domain.records import Actor
from bot.domain.release import ReleaseStatus, StepKind
from bot.errors import Conflict, NotFound, PagerError
from bot.ports import ChangeEvent, PageEvent, Reading
from bot.usecases.incidents import IncidentDesk
from bot.usecases.outbox import PagerOutbox
from bot.usecases.releases import ReleaseView, Services
from bot.usecases.watch import HEADER_FIGURES_EVERY, DriftBudget, GateFigures, MetricWatch, needs_tick
from tests.conftest import FAST_CHECKLIST, leading

ALICE = Actor("U061F7AUR", "alice")
GOOD, BAD = Reading(0.004), Reading(0.2)
P95_OK = Reading(0.05)
EMPTY = Reading(None, "no series matched (empty result)")
DOWN = Reading(None, "cannot reach Prometheus at http://127.0.0.1:9", is_error=True)


class FakeClock:
    def __init__(self) -> None:
        self.at = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self.at

    def advance(self, seconds: float) -> None:
        self.at += timedelta(seconds=seconds)


@dataclass
class ScriptedMetrics:
    """Answers each query from a script keyed by which metric it reads; records every query."""

    error_rate: deque[Reading] = field(default_factory=deque)
    p95: deque[Reading] = field(default_factory=deque)
    baseline: Reading = field(default_factory=lambda: Reading(0.05))
    queries: list[tuple[str, datetime | None]] = field(default_factory=list)

    def query(self, promql: str, *, at: datetime | None = None) -> Reading:
        self.queries.append((promql, at))
        if "timestamp(" in promql:  # when Prometheus last scraped: unknown here, so sampling is time-based
            return Reading(None, "no series matched")
        if at is not None:
            return self.baseline
        if "histogram_quantile" in promql:
            return self.p95.popleft() if self.p95 else P95_OK
        return self.error_rate.popleft() if self.error_rate else GOOD


@dataclass
class RecordingAlerts:
    pings: list[IncidentRecord] = field(default_factory=list)
    refreshes: list[IncidentRecord] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    redraws: int = 0

    def ping(self, view: ReleaseView, incident: IncidentRecord) -> str:
        self.pings.append(incident)
        return f"1700000000.{len(self.pings):06d}"

    def refresh(self, view: ReleaseView, incident: IncidentRecord) -> None:
        self.refreshes.append(incident)

    def thread_note(self, view: ReleaseView, text: str) -> None:
        self.notes.append(text)

    def redraw(self, view: ReleaseView, kinds: tuple[str, ...]) -> None:
        self.redraws += 1


@dataclass
class FakePager:
    """Records what it sends; ``fail`` holds errors to raise on the next calls."""

    sent: list[PageEvent | ChangeEvent] = field(default_factory=list)
    fail: deque[PagerError] = field(default_factory=deque)

    def _take(self, event: PageEvent | ChangeEvent) -> None:
        if self.fail:
            raise self.fail.popleft()
        self.sent.append(event)

    def send(self, event: PageEvent) -> None:
        self._take(event)

    def change(self, event: ChangeEvent) -> None:
        self._take(event)

    def alerts(self) -> list[tuple[str, str]]:
        return [(e.action, e.dedup_key) for e in self.sent if isinstance(e, PageEvent)]


@dataclass
class World:
    services: Services
    clock: FakeClock
    metrics: ScriptedMetrics
    alerts: RecordingAlerts
    desk: IncidentDesk
    watch: MetricWatch
    pager: FakePager
    outbox: PagerOutbox
    release_id: int
    uow: object

    def sample(self, n: int = 1, *, error: Reading | None = None) -> None:
        for _ in range(n):
            if error is not None:
                self.metrics.error_rate.append(error)
            self.clock.advance(1)
            self.watch.tick()

    def incidents(self) -> list[IncidentRecord]:
        with self.uow() as uow:  # type: ignore[operator]
            return uow.watch.incidents.for_release(self.release_id)

    def watch_with(self, **overrides: Any) -> MetricWatch:
        """A metric watch over this world, with some of its collaborators or settings replaced."""
        parts: dict[str, Any] = {
            "uow": self.uow,
            "clock": self.clock,
            "services": self.services,
            "metrics": self.metrics,
            "desk": self.desk,
            "lang": "en",
        }
        return MetricWatch(**(parts | overrides))

    def restart(self) -> World:
        """A new process on the same database: every in-memory object is rebuilt."""
        return make_world(self.services, self.clock, self.metrics, self.pager, self.uow, self.release_id)


def make_world(services, clock, metrics, pager, uow, release_id) -> World:  # type: ignore[no-untyped-def]
    alerts = RecordingAlerts()
    desk = IncidentDesk(uow=uow, clock=clock, services=services, lang="en", alerts=alerts)
    watch = MetricWatch(uow=uow, clock=clock, services=services, metrics=metrics, desk=desk, lang="en")
    outbox = PagerOutbox(uow=uow, clock=clock, pager=pager, base_backoff_s=2, max_backoff_s=8)
    return World(services, clock, metrics, alerts, desk, watch, pager, outbox, release_id, uow)


def checklist_file(tmp_path: Path, *, dry_run: bool = False) -> Path:
    text = FAST_CHECKLIST.read_text(encoding="utf-8")
    if dry_run:
        text = text.replace('threshold: "5%"}', 'threshold: "5%", dry_run: true}')
    path = tmp_path / "checklist.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def world_for(
    db_url: str, tmp_path: Path, *, dry_run: bool = False, step: str = "canary-10"
) -> Iterator[World]:
    upgrade(db_url)
    engine = make_engine(db_url)
    factory = make_session_factory(engine)
    path = checklist_file(tmp_path, dry_run=dry_run)
    clock = FakeClock()
    with leading(db_url) as leader:  # the watch and the outbox are the leader's

        def uow() -> SqlUnitOfWork:
            return SqlUnitOfWork(factory, term=leader.term)

        services = Services(
            uow=uow,
            clock=clock,
            checklist=load_checklist(path),
            checklist_source=path.read_text(encoding="utf-8"),
            is_manager=lambda user: user == ALICE.id,
        )
        view = services.start_release(channel_id="C0RELEASES", version="v1.4.0", actor=ALICE)
        with uow() as u:
            u.releases.update(
                view.release.id, step=step, step_started_at=clock.now(), thread_ts="1700000000.000001"
            )
            u.commit()
        yield make_world(services, clock, ScriptedMetrics(), FakePager(), uow, view.release.id)
    engine.dispose()


@pytest.fixture
def world(db_url: str, tmp_path: Path) -> Iterator[World]:
    yield from world_for(db_url, tmp_path)


def test_baseline_is_measured_before_canary_start_and_recorded(world: World) -> None:
    world.sample()
    baseline_queries = [(q, at) for q, at in world.metrics.queries if at is not None]
    assert len(baseline_queries) == 1
    query, at = baseline_queries[0]
    assert "[10s]" in query  # the fast checklist's baseline_window, not the 1m rate window
    assert at == world.services.view(world.release_id).release.step_started_at
    assert world.services.view(world.release_id).release.baseline_p95_s == pytest.approx(0.05)
    assert any("Normal p95 for this release: 50 ms" in n for n in world.alerts.notes)


def test_missing_baseline_is_said_and_latency_reports_no_data_not_pass(world: World) -> None:
    world.metrics.baseline = EMPTY
    world.sample(4)
    assert any("No baseline p95 (no series matched" in n for n in world.alerts.notes)
    # Three samples with no baseline: the latency criterion is blind, and says so once.
    blind = [n for n in world.alerts.notes if "I am blind" in n]
    assert len(blind) == 1
    assert "no baseline p95 recorded" in blind[0]
    with world.uow() as uow:  # type: ignore[operator]
        events = [e.action for e in uow.audit.for_release(world.release_id)]
    assert "baseline_missing" in events


def test_sustained_breach_fires_once_queues_one_trigger_and_pings_once(world: World) -> None:
    world.sample(2)
    world.sample(6, error=BAD)
    incidents = world.incidents()
    assert [(i.criterion, i.status) for i in incidents] == [("error_rate", IncidentStatus.OPEN)]
    assert len(world.alerts.pings) == 1
    world.outbox.deliver_due()
    assert world.pager.alerts() == [("trigger", f"release:{world.release_id}:error_rate")]
    trigger = next(e for e in world.pager.sent if isinstance(e, PageEvent))
    assert "v1.4.0" in trigger.summary and "Error rate 5% or more" in trigger.summary
    assert "20.00 %" in trigger.summary and "5.00 %" in trigger.summary
    details = trigger.custom_details
    assert details["stage"] == "canary-10"
    assert details["baseline_p95_s"] == pytest.approx(0.05)
    assert details["breaches_in_row"] == 2 and details["required_breaches"] == 2
    assert details["window"] == "1m"
    assert details["trend"][-1][1] == pytest.approx(0.2)
    assert details["slack_thread"].endswith("/p1700000000000001")
    assert trigger.severity == "critical"


def test_single_blip_and_flapping_never_fire(world: World) -> None:
    world.sample(2)
    world.sample(1, error=BAD)  # a blip
    for reading in [GOOD, BAD, GOOD, BAD, GOOD, BAD, EMPTY, BAD, GOOD]:  # flapping; a gap breaks a run too
        world.sample(1, error=reading)
    assert world.incidents() == []
    assert world.alerts.pings == []


def test_flapping_after_a_fire_never_pages_twice(world: World) -> None:
    world.sample(2, error=BAD)
    for reading in [GOOD, BAD, BAD, BAD, GOOD, BAD, BAD]:
        world.sample(1, error=reading)
    assert len(world.incidents()) == 1
    world.outbox.deliver_due()
    assert [a for a, _ in world.pager.alerts()] == ["trigger"]


def test_no_data_and_provider_errors_warn_blind_once_and_never_page(world: World) -> None:
    world.sample(1)
    world.sample(3, error=EMPTY)
    world.sample(3, error=DOWN)
    world.sample(1, error=GOOD)
    world.sample(3, error=DOWN)
    blind = [n for n in world.alerts.notes if "I am blind" in n]
    assert len(blind) == 2  # one per blind spell; data coming back ends a spell
    assert "no series matched" in blind[0]
    assert "cannot reach Prometheus" in blind[1]
    assert any("Metrics are back" in n for n in world.alerts.notes)
    assert world.incidents() == []


def test_gate_figures_say_undecided_without_data_and_never_pass(world: World) -> None:
    figures = GateFigures(uow=world.uow, services=world.services, lang="en", enabled=True)  # type: ignore[arg-type]
    assert "Undecided: no data" in figures(world.release_id)["text"]  # type: ignore[index]
    world.sample(1, error=EMPTY)
    shown = figures(world.release_id)
    assert shown is not None and shown["verdict"] == "no_data"
    assert "Undecided: no data" in shown["text"] and "no series matched" in shown["text"]
    world.sample(1, error=GOOD)
    shown = figures(world.release_id)
    assert shown is not None and shown["verdict"] == "pass"
    assert "error rate 0.40 %" in shown["text"] and "p95 50 ms" in shown["text"]
    assert GateFigures(uow=world.uow, services=world.services, lang="en", enabled=False)(1) is None  # type: ignore[arg-type]


def test_dry_run_reports_in_thread_and_never_pages(db_url: str, tmp_path: Path) -> None:
    for world in world_for(db_url, tmp_path, dry_run=True):
        world.sample(4, error=BAD)
        assert world.incidents() == []
        assert world.alerts.pings == []
        notes = [n for n in world.alerts.notes if "Dry run" in n]
        assert len(notes) == 1 and "Error rate 5% or more" in notes[0]
        world.outbox.deliver_due()
        assert world.pager.alerts() == []


def test_restart_mid_streak_neither_loses_nor_repeats_the_page(world: World) -> None:
    world.sample(1, error=BAD)
    again = world.restart()
    again.sample(1, error=BAD)  # the stored streak continues: this is breach two
    assert len(again.incidents()) == 1
    third = again.restart()
    third.sample(5, error=BAD)
    assert len(third.incidents()) == 1
    third.outbox.deliver_due()
    assert [a for a, _ in third.pager.alerts()] == ["trigger"]


def test_outbox_retries_with_backoff_in_order_and_survives_restart(world: World) -> None:
    world.sample(1)
    world.outbox.deliver_due()  # the canary-start change event
    world.pager.sent.clear()
    world.pager.fail.extend([PagerError("down", retryable=True)] * 2)
    world.sample(2, error=BAD)
    incident = world.incidents()[0]
    world.desk.acknowledge(incident.id, actor=ALICE)
    assert world.outbox.deliver_due() == 0  # the trigger failed; its acknowledge must wait behind it
    assert world.pager.sent == []
    world.clock.advance(1)
    assert world.outbox.deliver_due() == 0  # not due yet: 2 s backoff after the first failure
    world.clock.advance(1.5)
    assert world.outbox.deliver_due() == 0  # second failure: 4 s now
    restarted = world.restart()
    restarted.clock.advance(4)
    assert restarted.outbox.deliver_due() == 2
    assert world.pager.alerts() == [("trigger", incident.dedup_key), ("acknowledge", incident.dedup_key)]
    with world.uow() as uow:  # type: ignore[operator]
        rows = uow.watch.outbox.all(world.release_id)
    trigger = next(r for r in rows if r.action == "trigger")
    assert trigger.attempts == 3 and trigger.status is OutboxStatus.DELIVERED


def test_refused_event_is_failed_and_audited_not_retried(world: World) -> None:
    world.sample(1)
    world.outbox.deliver_due()  # the canary-start change event
    world.pager.fail.append(PagerError("PagerDuty refused the event as invalid", retryable=False))
    world.sample(2, error=BAD)
    world.outbox.deliver_due()
    world.clock.advance(60)
    world.outbox.deliver_due()
    with world.uow() as uow:  # type: ignore[operator]
        rows = [r for r in uow.watch.outbox.all(world.release_id) if r.action == "trigger"]
        audit = [e.action for e in uow.audit.for_release(world.release_id)]
    assert [r.status for r in rows] == [OutboxStatus.FAILED]
    assert "pagerduty_refused" in audit
    assert world.pager.alerts() == []


def test_dismiss_resolves_and_rearms_so_fresh_evidence_pages_again(world: World) -> None:
    world.sample(2, error=BAD)
    incident = world.incidents()[0]
    world.desk.dismiss(incident.id, actor=ALICE)
    world.sample(1, error=BAD)  # one breach after re-arming is not a run
    assert world.incidents()[0].status is IncidentStatus.DISMISSED
    world.sample(1, error=BAD)
    again = world.incidents()
    assert len(again) == 1 and again[0].status is IncidentStatus.OPEN and again[0].fire_count == 2
    world.outbox.deliver_due()
    assert [a for a, _ in world.pager.alerts()] == ["trigger", "resolve", "trigger"]


def test_declared_incident_pages_once_and_release_end_resolves(world: World) -> None:
    world.sample(1)
    fired = world.desk.declare(world.release_id, DECLARED, actor=ALICE, reason="checkout returns 500")
    with pytest.raises(Conflict):
        world.desk.declare(world.release_id, DECLARED, actor=ALICE, reason="again")
    world.desk.ping(fired.incident_id)
    world.desk.ping(fired.incident_id)
    assert len(world.alerts.pings) == 1
    with world.uow() as uow:  # type: ignore[operator]
        uow.releases.end(world.release_id, ReleaseStatus.FINISHED, world.clock.now())
        uow.commit()
    world.sample(1)
    world.outbox.deliver_due()
    key = f"release:{world.release_id}:declared"
    assert [a for a, k in world.pager.alerts() if k == key] == ["trigger", "resolve"]
    trigger = next(e for e in world.pager.sent if isinstance(e, PageEvent) and e.action == "trigger")
    assert "declared by alice: checkout returns 500" in trigger.summary
    # Change events have no dedup key, so each is a lane of its own and they leave side by side, in any order;
    # PagerDuty places them on the timeline by their own timestamps, which keep the order they happened in.
    changes = sorted((e.timestamp, e.summary) for e in world.pager.sent if isinstance(e, ChangeEvent))
    assert [summary for _at, summary in changes] == [
        "backend v1.4.0: canary started at 10%",
        "backend v1.4.0: release finished",
    ]
    assert changes[0][0] < changes[1][0]
    assert world.incidents()[0].status is IncidentStatus.RESOLVED


def test_needs_tick_reconciles_what_moved_or_ended_and_samples_only_watched_steps() -> None:
    def ref(
        status: str = "active", step: str = "pre-deploy", announced: str | None = "pre-deploy"
    ) -> WatchRef:
        return WatchRef(1, "fast", status, step, announced)

    assert needs_tick(ref(announced=None), StepKind.CHECKLIST)  # never seen: its watch row is made
    assert needs_tick(ref(step="staging"), StepKind.DEPLOY)  # moved: the step is announced
    assert not needs_tick(ref(), StepKind.CHECKLIST)  # idle
    assert needs_tick(ref(step="canary-10", announced="canary-10"), StepKind.CANARY)
    assert needs_tick(ref(step="watch", announced="watch"), StepKind.WATCH)
    assert needs_tick(ref(status="finished"), None)  # ended, not closed: resolve and close


@contextlib.contextmanager
def statements(*, this_thread_only: bool = False) -> Iterator[list[str]]:
    """The statements sent meanwhile; ``this_thread_only`` leaves out other threads' (the leader's lease renewals)."""
    seen: list[str] = []
    me = threading.get_ident()

    def record(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if not this_thread_only or threading.get_ident() == me:
            seen.append(statement)

    event.listen(Engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(Engine, "before_cursor_execute", record)


def test_a_tick_costs_the_same_with_five_or_twenty_five_idle_releases(world: World) -> None:
    channels = (f"C0IDLE{i:03d}" for i in range(100))

    def start(n: int) -> list[int]:
        return [
            world.services.start_release(channel_id=next(channels), version="v1.4.0", actor=ALICE).release.id
            for _ in range(n)
        ]

    idle = start(5)
    world.sample()  # first sight of each: its watch row
    with world.uow() as uow:  # type: ignore[operator]
        assert {r.release_id for r in uow.watch.releases.refs()} == {world.release_id, *idle}
    with statements() as five:
        world.sample()
    idle += start(20)
    world.sample()
    sampled_before = len(world.metrics.queries)
    with statements() as twenty_five:
        world.sample()
    assert len(twenty_five) == len(five)
    assert len(world.metrics.queries) > sampled_before  # the canary release is still sampled
    # An idle release that moves is announced, and one that ends is closed, on the next tick.
    with world.uow() as uow:  # type: ignore[operator]
        uow.releases.update(idle[0], step="canary-10", step_started_at=world.clock.now())
        uow.releases.end(idle[1], ReleaseStatus.ABORTED, world.clock.now())
        uow.commit()
    world.sample()
    with world.uow() as uow:  # type: ignore[operator]
        assert uow.watch.releases.get_or_create(idle[0], world.clock.now()).announced_step == "canary-10"
        assert uow.watch.releases.get_or_create(idle[1], world.clock.now()).closed_at is not None
        assert idle[1] not in {r.release_id for r in uow.watch.releases.refs()}


def test_the_watch_row_of_a_release_that_is_gone_is_not_found_not_an_assertion(db_url: str) -> None:
    """A start dropped while Slack was down deletes its release; a watch tick that listed it just before must
    hear "gone", which it skips, not trip an assertion that it logs as a failure."""
    upgrade(db_url)
    engine = make_engine(db_url)
    try:
        with SqlUnitOfWork(make_session_factory(engine)) as uow, pytest.raises(NotFound):
            uow.watch.releases.get_or_create(4242, datetime.now(UTC))
    finally:
        engine.dispose()


def test_sampling_follows_prometheus_scrapes_and_falls_back_to_the_interval() -> None:
    from bot.adapters.prometheus import DEFAULT_ERROR_RATE_QUERY, render_query
    from bot.domain.checklist import MetricsSpec
    from bot.usecases.watch import freshness_query, sample_due

    query = render_query(DEFAULT_ERROR_RATE_QUERY, selector='service="backend"')
    assert freshness_query(query) == (
        'max(timestamp(http_requests_total{service="backend",code=~"5.."})'
        ' or timestamp(http_requests_total{service="backend"}))'
    )
    assert freshness_query("vector(0.01)") is None
    spec = MetricsSpec(error_rate_query=query, p95_query=query, sample_interval=timedelta(seconds=15))
    t0 = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
    at = lambda s: t0 + timedelta(seconds=s)  # noqa: E731
    assert sample_due(at(0), None, 100.0, None, spec)  # the first sample: at once
    # A new scrape landed: sample right away, once it is a scrape apart from the last sample.
    assert sample_due(at(15.2), at(0.3), 115.0, 100.0, spec)
    assert not sample_due(at(14.0), at(0.3), 100.0, 100.0, spec)  # no new scrape yet: wait for it
    # Other targets scraped a moment later must not bring the next sample within the same interval.
    assert not sample_due(at(5), at(0.3), 105.0, 100.0, spec)
    # A stuck scrape time: sample anyway after a while, so blindness is still counted.
    assert sample_due(at(61), at(0.3), 100.0, 100.0, spec)
    # No scrape time at all: every sample interval, as before.
    assert not sample_due(at(10), at(0), None, None, spec)
    assert sample_due(at(14), at(0), None, None, spec)


def test_a_poll_between_samples_skips_every_canary_on_one_read(world: World) -> None:
    # The watch polls every second for a fresh scrape. Between two samples it used to load each release in a
    # canary (reconcile, view) to find nothing due: ~15 statements a release a second, a core at 100 releases.
    for i in range(20):
        view = world.services.start_release(channel_id=f"C0POLL{i:04d}", version="v1.4.0", actor=ALICE)
        with world.uow() as u:  # type: ignore[operator]
            u.releases.update(view.release.id, step="canary-10", step_started_at=world.clock.now())
            u.commit()
    world.sample()  # baselines and the first sample of all 21
    sampled = [q for q, at in world.metrics.queries if at is None and "timestamp(" not in q]
    assert len(sampled) >= 2 * 21  # the error rate and the p95 of each, at least

    statements: list[str] = []

    def count(conn: object, cursor: object, statement: str, *args: object) -> None:
        statements.append(statement)

    event.listen(Engine, "before_cursor_execute", count)
    try:
        world.clock.advance(0.3)  # the fast checklist samples every second: nothing is due yet
        world.watch.tick()
    finally:
        event.remove(Engine, "before_cursor_execute", count)
    assert len(statements) <= 8, statements  # the shared read and its transaction, not a load per release
    assert [q for q, at in world.metrics.queries if at is None and "timestamp(" not in q] == sampled

    world.clock.advance(0.7)  # a second after the last sample: every canary is sampled again
    world.watch.tick()
    again = [q for q, at in world.metrics.queries if at is None and "timestamp(" not in q]
    assert len(again) - len(sampled) >= 2 * 21


def test_the_header_shows_gate_news_at_once_and_drifting_figures_every_few_minutes(world: World) -> None:
    """chat.update is Tier 3 for the whole workspace: a header redrawn at every sample of every release would never
    catch up at an org's scale. A new verdict is shown at once; figures that only drift, every few minutes."""

    def shown() -> dict[str, object] | None:
        with world.uow() as uow:  # type: ignore[operator]
            return uow.watch.releases.gate_window(world.release_id)

    def sample_at(error_rate: float) -> None:
        world.metrics.error_rate.extend([Reading(error_rate)] * 2)  # the sample's query, then the window's
        world.sample()

    sample_at(0.002)
    first = shown()
    assert first is not None and first["verdict"] == "pass"
    redraws = world.alerts.redraws
    for n in range(5):
        sample_at(0.003 + n / 1000)
    assert shown() == first and world.alerts.redraws == redraws

    world.clock.advance(HEADER_FIGURES_EVERY.total_seconds())
    sample_at(0.0042)
    refreshed = shown()
    assert refreshed is not None and refreshed["error_rate"] == 0.0042 and refreshed["end"] != first["end"]
    assert world.alerts.redraws == redraws + 1

    sample_at(0.03)  # over the gate's 1 %, under the 5 % that pages: news, shown at once
    breached = shown()
    assert breached is not None and breached["verdict"] == "breach"
    assert world.alerts.redraws == redraws + 2


def test_drifting_figures_wait_for_the_drift_budget_and_news_never_does(world: World) -> None:
    """Refreshes of figures that only drifted share a budget (a third of chat.update's pace): 200 headers due a
    refresh at once must not queue ahead of a verdict. Here the budget is one refresh every ten minutes."""
    w = dataclasses.replace(
        world,
        watch=world.watch_with(drift_per_minute=0.1),
    )

    def shown() -> dict[str, object]:
        with w.uow() as uow:  # type: ignore[operator]
            record = uow.watch.releases.gate_window(w.release_id)
        assert record is not None
        return record

    def sample_at(error_rate: float) -> None:
        w.metrics.error_rate.extend([Reading(error_rate)] * 2)  # the sample's query, then the window's
        w.sample()

    sample_at(0.002)
    redraws = w.alerts.redraws
    w.clock.advance(HEADER_FIGURES_EVERY.total_seconds())
    sample_at(0.004)  # due a refresh, and the budget's one token is there
    assert shown()["error_rate"] == 0.004 and w.alerts.redraws == redraws + 1

    w.clock.advance(HEADER_FIGURES_EVERY.total_seconds())
    sample_at(0.005)  # due again, but only half a token has come back in five minutes
    assert shown()["error_rate"] == 0.004 and w.alerts.redraws == redraws + 1

    sample_at(0.03)  # a new verdict spends no budget
    assert shown()["verdict"] == "breach" and w.alerts.redraws == redraws + 2

    w.clock.advance(HEADER_FIGURES_EVERY.total_seconds())
    sample_at(0.031)  # the token is back: the drifting figures are shown again
    assert shown()["error_rate"] == 0.031 and w.alerts.redraws == redraws + 3


def test_the_drift_budget_refills_with_the_clock_and_holds_only_its_burst() -> None:
    clock = FakeClock()
    budget = DriftBudget(clock, per_minute=6, burst=3)
    assert [budget.take() for _ in range(4)] == [True, True, True, False]
    clock.advance(10)
    assert [budget.take() for _ in range(2)] == [True, False]
    clock.advance(3600)  # an idle hour does not save up an hour's worth
    assert sum(budget.take() for _ in range(10)) == 3


def test_what_the_watch_keeps_of_a_release_goes_once_the_release_is_ended_and_closed(world: World) -> None:
    """The two-hour soak: the watch kept each release's plan and last scrape for ever, so the leader's work process
    grew with every release it had ever watched."""
    channels = (f"C0GONE{i:03d}" for i in range(200))
    ended = [
        world.services.start_release(channel_id=next(channels), version="v1.4.0", actor=ALICE).release.id
        for _ in range(120)
    ]
    world.sample()
    assert world.watch.kept() == len(ended) + 1
    with world.uow() as uow:  # type: ignore[operator]
        for rid in ended:
            uow.releases.end(rid, ReleaseStatus.ABORTED, world.clock.now())
        uow.commit()
    world.sample(2)  # the first closes them, the next no longer lists them
    with world.uow() as uow:  # type: ignore[operator]
        assert {r.release_id for r in uow.watch.releases.refs()} == {world.release_id}
    assert world.watch.kept() == 1  # only the release still in its canary
    sampled_before = len(world.metrics.queries)
    world.sample()
    assert len(world.metrics.queries) > sampled_before  # and that one is still watched
