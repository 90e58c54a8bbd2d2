"""The traffic provider in a release: stages drive the cluster, the cluster's view comes back, drift is caught.

For a checklist whose ``traffic:`` provider is not ``manual``:

- entering a canary stage asks the provider for the stage's percentage (Argo: one ``promote``; Gateway API: both
  weights); a rollback asks it to abort (Argo also undoes to the previous stable template);
- every request the bot sends is appended to the audit trail (verb, object, patch), so the export shows it;
- a watch feeds each change of the live object to ``observe``: the state is stored, the header redrawn (only when
  something people see changed; the message sync paces the edits within Slack's limits), the stage's wait
  restarted when the cluster first reports the stage's weight as served, and drift posted once and audited;
- drift blocks "advance" until a manager acknowledges it;
- a breached criterion with ``on_breach: abort`` aborts the canary without waiting for a click.

Like the other use cases it knows nothing of Slack or Kubernetes: the provider is a port, the notes a callback.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bot.db.traffic_repos import TrafficStates
from bot.db.uow import SqlUnitOfWork
from bot.domain.records import Actor
from bot.domain.release import ReleaseStatus, StepKind
from bot.domain.roles import Action
from bot.domain.traffic import (
    TrafficSpec,
    TrafficState,
    detect_drift,
    drift_to_dict,
    view_from_dict,
    view_to_dict,
)
from bot.errors import InvalidTransition, ReleaseBotError
from bot.i18n import t
from bot.ports import Clock, ClusterRequest, TrafficProvider, TrafficResult, TrafficView
from bot.usecases.lifecycle import STAGE_WAIT, Lifecycle, Transition
from bot.usecases.releases import ReleaseView, Services, UowFactory

log = logging.getLogger(__name__)
BOT = Actor("bot", "release-bot")
SETTLE_S = 120.0  # after a request, a lower weight is the controller catching up, not drift


@dataclass(frozen=True)
class TrafficNote:
    """Something to say in the release's thread (and the header to redraw)."""

    release_id: int
    text: str


class TrafficService:
    """Joins one checklist's traffic provider to the releases that run it."""

    def __init__(
        self,
        *,
        uow: UowFactory,
        clock: Clock,
        services: Services,
        lifecycle: Lifecycle,
        spec: TrafficSpec,
        provider: Callable[[], TrafficProvider],
        lang: str,
        note: Callable[[ReleaseView, str], None] = lambda view, text: None,
        redraw: Callable[[list[int]], None] = lambda ids: None,
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._services = services
        self._lifecycle = lifecycle
        self.spec = spec
        self._provider_factory = provider
        self._provider: TrafficProvider | None = None
        self._provider_lock = threading.Lock()
        self._lang = lang
        self.note = note
        self.redraw = redraw
        # Set when the rollback button itself aborts the canary (Argo Rollouts): the requests it sent, drained
        # into the audit trail when the release is marked rolled back, instead of a second abort.
        self.rollback_requests: Callable[[], tuple[ClusterRequest, ...]] | None = None

    @property
    def provider(self) -> TrafficProvider:
        with self._provider_lock:
            if self._provider is None:
                self._provider = self._provider_factory()
            return self._provider

    def close(self) -> None:
        with self._provider_lock:
            if self._provider is not None:
                self._provider.close()
                self._provider = None

    # --- the lifecycle's hooks ---------------------------------------------------------------------------

    def guard(self, release_id: int, from_step: str, to_step: str) -> None:
        """Refuse to advance while drift is unacknowledged (the lifecycle calls this before any move)."""
        with self._uow() as uow:
            state = TrafficStates(uow.session).get(release_id)
        if state is not None and state.unacknowledged_drift is not None:
            raise InvalidTransition("traffic_drift_blocks", params=self._drift_params(state.unacknowledged_drift))

    def on_transition(self, transition: Transition) -> None:
        """After a committed move: drive the cluster to the new stage, or abort it after a rollback."""
        view = self._services.view(transition.release_id)
        if view.checklist.traffic != self.spec:
            return  # another service's release, on a checklist that moves no traffic (several checklists)
        if transition.status is ReleaseStatus.ROLLED_BACK:
            if self.rollback_requests is not None:
                sent = self.rollback_requests()
                self._record(
                    view,
                    "traffic_aborted",
                    TrafficResult("rolled back by the rollback button", sent),
                    transition.actor,
                    percent=0,
                    reason="rollback",
                )
                return
            self.abort(transition.release_id, actor=transition.actor, reason=transition.reason or "rollback")
            return
        if transition.status is not ReleaseStatus.ACTIVE:
            return
        step = next((s for s in view.steps if s.key == transition.to_step), None)
        if step is None or step.kind is not StepKind.CANARY or step.stage is None:
            return
        percent = step.stage.traffic_percent
        before = self._expect(view.release.id, percent)
        try:
            result = self.provider.advance(percent)
        except ReleaseBotError as e:
            self._expect(view.release.id, before)
            self._failed(view, "advance", e, transition.actor)
            return
        self._record(view, "traffic_advanced", result, transition.actor, percent=percent)

    # --- actions -----------------------------------------------------------------------------------------

    def abort(self, release_id: int, *, actor: Actor, reason: str) -> TrafficResult | None:
        """Abort the canary (Argo: abort, then undo to the previous stable; Gateway API: 100/0)."""
        view = self._services.view(release_id)
        before = self._expect(release_id, 0)
        try:
            result = self.provider.abort()
        except ReleaseBotError as e:
            self._expect(release_id, before)
            self._failed(view, "abort", e, actor)
            return None
        self._record(view, "traffic_aborted", result, actor, percent=0, reason=reason)
        try:
            undone = self.provider.undo()
        except ReleaseBotError as e:
            self._failed(view, "undo", e, actor)
            return result
        if undone.changed:
            self._record(view, "traffic_undone", undone, actor, percent=0)
        return result

    def abort_on_breach(self, release_id: int, *, criterion: str, title: str, figures: str) -> bool:
        """A criterion with ``on_breach: abort`` fired: abort now, say so in the channel. True when sent."""
        view = self._services.view(release_id)
        if view.status.is_terminal or not view.reached_production or view.checklist.traffic != self.spec:
            return False
        result = self.abort(release_id, actor=BOT, reason=f"on_breach: {criterion}")
        if result is None:
            return False
        self.note(view, t(self._lang, "traffic_aborted_on_breach", criterion=title, figures=figures))
        return True

    def acknowledge(self, release_id: int, *, actor: Actor) -> dict[str, Any] | None:
        """A manager accepts the drift as it is; "advance" works again. Returns the drift acknowledged."""
        self._lifecycle.require(release_id, actor, Action.OVERRIDE)
        now = self._clock.now()
        with self._uow() as uow:
            states = TrafficStates(uow.session)
            state = states.get(release_id, for_update=True)
            drift = state.unacknowledged_drift if state is not None else None
            if drift is None:
                return None
            states.save(release_id, drift_acknowledged=drift["key"], acknowledged_by=actor.id)
            uow.audit.append(release_id, "traffic_drift_acknowledged", actor, now, details={"drift": drift})
            ids = uow.messages.bump_release(release_id, ["header"])
            uow.commit()
        self.redraw(ids)
        return drift

    # --- the watch ---------------------------------------------------------------------------------------

    def observe(self, release_id: int, live: TrafficView) -> None:
        """One reading of the live object (a watch event). Stores it; redraws, restarts the wait, posts drift."""
        now = self._clock.now()
        posts: list[str] = []
        with self._uow() as uow:
            view = self._services.view_in(uow, release_id)
            if view.status.is_terminal:
                return
            states = TrafficStates(uow.session)
            state = states.get(release_id, for_update=True)
            before = view_from_dict(state.view) if state is not None and state.view else None
            expected = state.stage_percent if state is not None else None
            values: dict[str, Any] = {"view": view_to_dict(live), "observed_at": now}
            audits: list[tuple[str, dict[str, Any]]] = []
            if expected is not None:
                requested = state.requested_at if state is not None else None
                settling = requested is not None and (now - requested).total_seconds() < SETTLE_S
                drift = detect_drift(
                    live, expected, aborted_by_bot=expected == 0, settling=settling and live.set_weight <= expected
                )
                if drift is not None:
                    found = drift_to_dict(drift)
                    values["drift"] = found
                    if state is None or state.drift_posted != found["key"]:
                        values["drift_posted"] = found["key"]
                        audits.append(("traffic_drift", {"drift": found, "view": view_to_dict(live)}))
                        posts.append(t(self._lang, "traffic_drift_note", **self._drift_params(found)))
                elif state is not None and state.drift is not None and not settling:
                    values["drift"] = None
                    audits.append(("traffic_drift_cleared", {"view": view_to_dict(live)}))
                if (
                    state is not None
                    and state.serving_since is None
                    and expected > 0
                    and live.serving(expected)
                ):
                    values["serving_since"] = now
                    self._restart_wait(uow, states, view, now, expected)
                    audits.append(("traffic_serving", {"percent": expected, "view": view_to_dict(live)}))
            states.save(release_id, **values)
            for action, details in audits:
                uow.audit.append(release_id, action, BOT, now, details=details)
            ids: list[int] = []
            if before is None or before.fingerprint() != live.fingerprint() or audits:
                ids = uow.messages.bump_release(release_id, ["header"])
            uow.commit()
        if ids:
            self.redraw(ids)
        for text in posts:
            self.note(view, text)

    def _restart_wait(
        self, uow: SqlUnitOfWork, states: TrafficStates, view: ReleaseView, now: datetime, percent: int
    ) -> None:
        """The stage's wait counts from now: the gate, the header and the reminder all read the new start."""
        step = view.current_step
        if step is None or step.kind is not StepKind.CANARY or step.wait is None:
            return
        if step.stage is None or step.stage.traffic_percent != percent:
            return
        rid = view.release.id
        uow.releases.update(rid, step_started_at=now)
        states.restart_stage_wait(
            f"{rid}:{STAGE_WAIT}:{step.key}",
            now + step.wait,
            {"serving_since": now.isoformat(), "waiting_for_cluster": False},
        )

    def active_releases(self) -> list[int]:
        """The releases a watch should follow: active ones of this checklist that reached a canary stage."""
        out = []
        with self._uow() as uow:
            ids = [r.id for r in uow.releases.active()]
        for release_id in ids:
            view = self._services.view(release_id)
            if view.checklist.traffic == self.spec and view.reached_production:
                out.append(release_id)
        return out

    def state(self, release_id: int) -> TrafficState | None:
        with self._uow() as uow:
            return TrafficStates(uow.session).get(release_id)

    # --- internals ---------------------------------------------------------------------------------------

    def _expect(self, release_id: int, percent: int | None) -> int | None:
        """Before a request (and after one that failed): the stage the cluster is being moved to. The watch's event
        for the bot's own move can land before the request's record; read against the old stage it was posted as
        drift ("weight 50 % instead of 10 %") right after every promote. Returns the stage expected before."""
        with self._uow() as uow:
            states = TrafficStates(uow.session)
            state = states.get(release_id, for_update=True)
            before = state.stage_percent if state is not None else None
            now = self._clock.now()
            if state is None:  # the first request: the row the watch's readings go into starts here
                states.save(release_id, stage_percent=percent, requested_at=now, observed_at=now)
            else:
                states.save(release_id, stage_percent=percent, requested_at=now)
            uow.commit()
        return before

    def _record(
        self,
        view: ReleaseView,
        action: str,
        result: TrafficResult,
        actor: Actor,
        *,
        percent: int,
        reason: str | None = None,
    ) -> None:
        now = self._clock.now()
        rid = view.release.id
        with self._uow() as uow:
            for request in result.requests:
                uow.audit.append(rid, "cluster_request", actor, now, details=request.as_dict())
            details: dict[str, Any] = {"message": result.message, "percent": percent, "changed": result.changed}
            if reason:
                details["reason"] = reason
            uow.audit.append(rid, action, actor, now, details=details)
            states = TrafficStates(uow.session)
            values: dict[str, Any] = {
                "stage_percent": percent,
                "requested_at": now,
                "serving_since": None,
                "observed_at": now,
            }
            state = states.get(rid, for_update=True)
            if result.view is not None:
                values["view"] = view_to_dict(result.view)
            elif state is None:
                values["view"] = {}
            if state is not None and state.drift is not None:
                values["drift"] = None  # the bot's own request sets the cluster anew
            states.save(rid, **values)
            step = view.current_step
            if percent > 0 and step is not None and step.wait is not None and step.stage is not None:
                # Until the cluster reports the weight as served, the reminder waits (up to SETTLE_S more).
                states.restart_stage_wait(
                    f"{rid}:{STAGE_WAIT}:{step.key}",
                    now + step.wait + timedelta(seconds=SETTLE_S),
                    {"waiting_for_cluster": True},
                )
            ids = uow.messages.bump_release(rid, ["header"])
            uow.commit()
        self.redraw(ids)
        if result.view is not None and result.view.serving(percent) and percent > 0:
            self.observe(rid, result.view)

    def _failed(self, view: ReleaseView, what: str, error: ReleaseBotError, actor: Actor) -> None:
        now = self._clock.now()
        with self._uow() as uow:
            uow.audit.append(
                view.release.id,
                "traffic_failed",
                actor,
                now,
                details={"action": what, "error": error.user_message, "detail": str(error)},
            )
            uow.commit()
        log.warning("traffic %s failed for release %s: %s", what, view.release.id, error)
        self.note(view, t(self._lang, "traffic_failed_note", action=what, error=error.user_message))

    @staticmethod
    def _drift_params(drift: dict[str, Any]) -> dict[str, Any]:
        return {
            "what": ", ".join(drift.get("what") or []),
            "expected": drift.get("expected"),
            "seen": drift.get("seen"),
            "by": drift.get("by") or "?",
        }


class TrafficWatcher:
    """Follows the live object for every release that runs this provider, one watch at a time (leader only)."""

    def __init__(
        self,
        service: TrafficService,
        *,
        is_leader: Callable[[], bool],
        watch_timeout_s: float = 30.0,
        idle_s: float = 2.0,
    ) -> None:
        self._service = service
        self._is_leader = is_leader
        self._timeout = watch_timeout_s
        self._idle = idle_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="traffic-watch", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _each(self, releases: tuple[int, ...], live: TrafficView) -> None:
        for rid in releases:
            self._service.observe(rid, live)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                releases = self._service.active_releases() if self._is_leader() else []
                if not releases:
                    self._stop.wait(self._idle)
                    continue

                self._service.provider.watch(
                    functools.partial(self._each, tuple(releases)),
                    timeout_s=self._timeout,
                    stop=self._stop.is_set,
                )
            except Exception:
                log.exception("traffic watch failed; watching again shortly")
                self._stop.wait(self._idle)
