"""The traffic use case with a recording provider, a fake clock and the real database (SQLite and Postgres):
abort on breach, cluster-paced waits, drift that blocks advancing until a manager acknowledges it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.checklist.loading import load_checklist
from bot.db.engine import make_engine, make_session_factory
from bot.db.migrate import upgrade
from bot.db.uow import SqlUnitOfWork
from bot.domain.records import Actor
from bot.domain.release import ReleaseStatus
from bot.errors import InvalidTransition, PermissionDenied
from bot.ports import RolloutPhase, TrafficView
from bot.usecases.incident_words import value_and_threshold
from bot.usecases.lifecycle import STAGE_WAIT, Lifecycle, Transition
from bot.usecases.releases import Services
from bot.usecases.traffic import TrafficService
from tests.conftest import FAST_CHECKLIST, leading
from tests.fakes.traffic import RecordingTrafficProvider
from tests.test_watch_unit import ALICE, BAD, FakeClock, FakePager, ScriptedMetrics, make_world

BOB = Actor("U0BOB00002", "bob")


def checklist(tmp_path: Path, on_breach: str) -> Path:
    data = yaml.safe_load(FAST_CHECKLIST.read_text(encoding="utf-8"))
    data["traffic"] = {"provider": "argo-rollouts", "namespace": "test-prod", "name": "backend"}
    data["rollback"]["criteria"][0]["on_breach"] = on_breach
    path = tmp_path / "checklist.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


class Setup:
    def __init__(self, db_url: str, tmp_path: Path, on_breach: str) -> None:
        self.db_url, self.tmp_path, self.on_breach = db_url, tmp_path, on_breach

    def __enter__(self) -> Setup:
        upgrade(self.db_url)
        self.engine = make_engine(self.db_url)
        factory = make_session_factory(self.engine)
        path = checklist(self.tmp_path, self.on_breach)
        self.clock = FakeClock()
        self._leading = leading(self.db_url)
        leader = self._leading.__enter__()

        def uow() -> SqlUnitOfWork:
            return SqlUnitOfWork(factory, term=leader.term)

        self.uow = uow
        self.services = Services(
            uow=uow,
            clock=self.clock,
            checklist=load_checklist(path),
            checklist_source=path.read_text(encoding="utf-8"),
            is_manager=lambda user: user == ALICE.id,
        )
        view = self.services.start_release(channel_id="C0RELEASES", version="v1.4.0", actor=ALICE)
        self.rid = view.release.id
        with uow() as u:
            u.releases.update(self.rid, step="canary-10", step_started_at=self.clock.now(), thread_ts="1.000001")
            u.timers.schedule(
                self.rid, STAGE_WAIT, f"{self.rid}:{STAGE_WAIT}:canary-10", self.clock.now() + timedelta(seconds=2)
            )
            u.commit()
        self.lifecycle = Lifecycle(uow=uow, clock=self.clock, services=self.services)
        self.provider = RecordingTrafficProvider()
        self.notes: list[str] = []
        self.traffic = TrafficService(
            uow=uow,
            clock=self.clock,
            services=self.services,
            lifecycle=self.lifecycle,
            spec=self.services.checklist.traffic,
            provider=lambda: self.provider,
            lang="en",
            note=lambda view, text: self.notes.append(text),
        )
        self.lifecycle.guards.append(self.traffic.guard)
        self.world = make_world(self.services, self.clock, ScriptedMetrics(), FakePager(), uow, self.rid)

        def on_fired(release_id: int, criterion: Any, details: dict[str, Any]) -> None:
            if criterion.on_breach == "abort":
                value, threshold = value_and_threshold(details, "en")
                self.traffic.abort_on_breach(
                    release_id, criterion=criterion.key, title=criterion.title, figures=f"{value} / {threshold}"
                )

        self.world.watch.on_fired.append(on_fired)
        return self

    def __exit__(self, *exc: object) -> None:
        self._leading.__exit__(*exc)
        self.engine.dispose()

    def audit(self, action: str) -> list[dict[str, Any]]:
        with self.uow() as u:
            return [e.details for e in u.audit.for_release(self.rid) if e.action == action]

    def timer_due(self) -> Any:
        with self.uow() as u:
            (timer,) = u.timers.pending(self.rid)
            return timer

    def enter_stage(self) -> None:
        self.traffic.on_transition(
            Transition(self.rid, "production", "canary-10", ReleaseStatus.ACTIVE, ALICE, self.clock.now())
        )


@pytest.fixture
def aborting(db_url: str, tmp_path: Path) -> Iterator[Setup]:
    with Setup(db_url, tmp_path, "abort") as setup:
        yield setup


@pytest.fixture
def paging(db_url: str, tmp_path: Path) -> Iterator[Setup]:
    with Setup(db_url, tmp_path, "page") as setup:
        yield setup


def test_a_breach_with_on_breach_abort_aborts_pages_and_says_so(aborting: Setup) -> None:
    aborting.world.sample(2)
    aborting.world.sample(6, error=BAD)
    assert aborting.provider.calls == [("abort", None), ("undo", None)]
    assert len(aborting.world.incidents()) == 1  # and it pages, as before
    aborting.world.outbox.deliver_due()
    assert [a for a, _ in aborting.world.pager.alerts()] == ["trigger"]
    (aborted,) = aborting.audit("traffic_aborted")
    assert aborted["reason"] == "on_breach: error_rate"
    requests = aborting.audit("cluster_request")
    assert [r["patch"] for r in requests][:1] == [{"status": {"abort": True}}]
    assert any("the bot aborted the canary itself" in n and "20.00 %" in n for n in aborting.notes)


def test_by_default_a_breach_pages_and_leaves_the_canary_to_people(paging: Setup) -> None:
    paging.world.sample(2)
    paging.world.sample(6, error=BAD)
    assert len(paging.world.incidents()) == 1
    assert paging.provider.calls == []
    assert paging.audit("traffic_aborted") == []


def test_the_wait_counts_from_when_the_cluster_serves_the_weight(paging: Setup) -> None:
    paging.provider.weight = 0
    paging.provider.advance = lambda percent: replace(  # type: ignore[method-assign]
        RecordingTrafficProvider.advance(paging.provider, percent),
        view=TrafficView("argo-rollouts", set_weight=10, actual_weight=0, phase=RolloutPhase.PROGRESSING),
    )
    paging.enter_stage()
    assert paging.audit("traffic_advanced")[0]["percent"] == 10
    # Not served yet: the reminder waits for the cluster (the wait, plus a bound).
    assert paging.timer_due().due_at > paging.clock.now() + timedelta(seconds=100)
    paging.clock.advance(30)
    paging.traffic.observe(paging.rid, TrafficView("argo-rollouts", set_weight=10, actual_weight=10))
    timer = paging.timer_due()
    assert timer.due_at == paging.clock.now() + timedelta(seconds=2)
    assert timer.payload["serving_since"] == paging.clock.now().isoformat()
    assert paging.services.view(paging.rid).release.step_started_at == paging.clock.now()
    assert len(paging.audit("traffic_serving")) == 1
    paging.clock.advance(1)
    paging.traffic.observe(paging.rid, TrafficView("argo-rollouts", set_weight=10, actual_weight=10))
    assert len(paging.audit("traffic_serving")) == 1  # once per stage


def test_drift_blocks_advancing_until_a_manager_acknowledges(paging: Setup) -> None:
    paging.enter_stage()
    paging.clock.advance(600)  # long after the bot's request: a different weight is someone else's doing
    outside = TrafficView("argo-rollouts", set_weight=50, actual_weight=50, last_manager="kubectl-argo-rollouts")
    for _ in range(3):
        paging.traffic.observe(paging.rid, outside)
    (drift,) = paging.audit("traffic_drift")
    assert drift["drift"]["by"] == "kubectl-argo-rollouts" and drift["drift"]["seen"] == 50
    assert len([n for n in paging.notes if "no longer matches" in n]) == 1
    with pytest.raises(InvalidTransition) as blocked:
        paging.lifecycle.advance(paging.rid, from_step="canary-10", to_step="canary-50", actor=ALICE)
    assert blocked.value.user_message == "traffic_drift_blocks"
    with pytest.raises(PermissionDenied):
        paging.traffic.acknowledge(paging.rid, actor=BOB)
    assert paging.traffic.acknowledge(paging.rid, actor=ALICE) is not None
    paging.traffic.guard(paging.rid, "canary-10", "canary-50")  # no longer refused
    assert paging.audit("traffic_drift_acknowledged")[0]["drift"]["key"] == drift["drift"]["key"]
    assert paging.traffic.acknowledge(paging.rid, actor=ALICE) is None


def test_a_refused_request_is_audited_and_said(paging: Setup) -> None:
    paging.provider.fail.add("advance")
    paging.enter_stage()
    (failed,) = paging.audit("traffic_failed")
    assert failed["action"] == "advance" and "403" in failed["detail"]
    assert any("The cluster refused the bot's advance" in n for n in paging.notes)


def test_the_watch_event_of_the_bots_own_promote_is_not_drift(paging: Setup) -> None:
    """The watch's event for the bot's own move can land before the request's record is written (the promote is
    sent, the controller moves, the event is observed, then the result is recorded). It was posted as drift,
    "weight 50 % instead of 10 %", right after a promote; a failed promote leaves the stage expected as before."""
    paging.enter_stage()
    paging.clock.advance(600)
    sent = RecordingTrafficProvider.advance

    def promote_then_event(percent: int) -> Any:
        result = sent(paging.provider, percent)
        paging.traffic.observe(paging.rid, TrafficView("argo-rollouts", set_weight=percent, actual_weight=percent))
        return result

    paging.provider.advance = promote_then_event  # type: ignore[method-assign]
    paging.traffic.on_transition(
        Transition(paging.rid, "canary-10", "canary-50", ReleaseStatus.ACTIVE, ALICE, paging.clock.now())
    )
    assert paging.audit("traffic_drift") == [] and not any("no longer matches" in n for n in paging.notes)
    assert paging.traffic.state(paging.rid).stage_percent == 50  # type: ignore[union-attr]

    paging.provider.advance = sent.__get__(paging.provider)  # type: ignore[method-assign]
    paging.provider.fail.add("advance")
    paging.traffic.on_transition(
        Transition(paging.rid, "canary-50", "canary-100", ReleaseStatus.ACTIVE, ALICE, paging.clock.now())
    )
    assert paging.traffic.state(paging.rid).stage_percent == 50  # type: ignore[union-attr]
    assert paging.audit("traffic_failed")[0]["action"] == "advance"
