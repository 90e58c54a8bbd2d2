"""Use cases that move a release along: advance (with gates and overrides), abort, finish, health checks,
and the persisted timers that remind people when a canary wait or the post-deploy watch is over.

Like ``bot.usecases.releases`` it knows nothing of Slack; it must not import slack_bolt, slack_sdk, kubernetes or httpx.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime

from bot.db.uow import SqlUnitOfWork
from bot.domain import release as flow
from bot.domain.records import BOT, Actor, TimerRecord
from bot.domain.release import FINISHED_STEP, ReleaseStatus, StepKind
from bot.domain.roles import Action
from bot.errors import GateNotMet, InvalidTransition, Locked
from bot.ports import Clock, HealthResult
from bot.usecases.gate_window import GateWindow, window_record
from bot.usecases.releases import ReleaseView, Services, UowFactory

log = logging.getLogger(__name__)
STAGE_WAIT = "stage_wait"
WATCH_END = "watch_end"
# At most this many reminders of one channel go out in one message (``Lifecycle.claim_due``'s ``together``): each
# takes three of the 50 blocks Slack allows a message (a divider, its text, its buttons).
TOGETHER_MAX = 10


@dataclass(frozen=True)
class Advanced:
    """A transition that happened."""

    view: ReleaseView
    from_step: str
    to_step: str
    overridden: tuple[str, ...]
    reason: str | None

    @property
    def finished(self) -> bool:
        return self.to_step == FINISHED_STEP


@dataclass(frozen=True)
class Transition:
    """What other parts of the bot hear about after a release moved (committed already)."""

    release_id: int
    from_step: str
    to_step: str  # a step key, "finished", or the step the release ended in
    status: ReleaseStatus
    actor: Actor
    at: datetime
    reason: str | None = None


TransitionHook = Callable[[Transition], None]


@dataclass(frozen=True)
class DueTimer:
    """A timer this process won the claim for, with the release it belongs to."""

    timer: TimerRecord
    view: ReleaseView
    late_s: float


@dataclass(frozen=True)
class ClaimedTimer:
    """A timer this process won the claim for, before its release is loaded (``Lifecycle.due_timer``)."""

    timer: TimerRecord
    channel_id: str
    late_s: float  # at the claim


class Lifecycle:
    """Moving releases on, and keeping their clock."""

    def __init__(
        self,
        *,
        uow: UowFactory,
        clock: Clock,
        services: Services,
        on_timers_changed: Callable[[], None] = lambda: None,
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._services = services
        self.on_timers_changed = on_timers_changed
        # Called after every committed transition (metric watch, PagerDuty change events, App Home, ...).
        self.hooks: list[TransitionHook] = []
        # Called before a move with (release id, from step, to step); raising refuses it (traffic drift).
        self.guards: list[Callable[[int, str, str], None]] = []
        # The monitoring gate over a canary stage; set by bootstrap when the bot reads metrics.
        self.gate_window: GateWindow | None = None

    def _notify(self, transition: Transition) -> None:
        for hook in self.hooks:
            try:
                hook(transition)
            except Exception:
                log.exception("transition hook %s failed", getattr(hook, "__qualname__", hook))

    # --- authorization ----------------------------------------------------------------------------------

    def require(self, release_id: int, actor: Actor, action: Action) -> None:
        """Refuse (and record the refusal) unless the actor's role allows the action (bot.domain.roles)."""
        self._services.permissions.require(release_id, actor, action)

    # --- advancing --------------------------------------------------------------------------------------

    def advance(
        self,
        release_id: int,
        *,
        from_step: str,
        to_step: str,
        actor: Actor,
        override_reason: str | None = None,
    ) -> Advanced:
        """Move a release one step on. Raises GateNotMet (with the open items) unless overridden."""
        self.require(release_id, actor, Action.OVERRIDE if override_reason else Action.ADVANCE)
        for guard in self.guards:
            guard(release_id, from_step, to_step)
        # Prometheus is asked before the transaction, so no row stays locked while it answers.
        monitoring = self._monitoring_gate(release_id, from_step)
        now = self._clock.now()
        with self._uow() as uow:
            record = uow.releases.get(release_id, for_update=True)
            if record.step != from_step:
                # A stale button or a second click: the release is no longer where the clicker saw it.
                raise InvalidTransition("already_moved", params={"step": record.step})
            view = self._services.view_in(uow, release_id)
            target = next((s for s in view.steps if s.key == to_step), None)
            lock = uow.locks.active(record.service)
            if lock is not None and target is not None and target.kind is StepKind.CANARY:
                # After a rollback, production stays shut for this service until someone clears the lock.
                locked_by = uow.releases.get(lock.release_id)
                raise Locked(
                    "service_locked",
                    params={"service": lock.service, "version": locked_by.version, "reason": lock.reason},
                )
            move = flow.advance(
                view.checklist,
                status=ReleaseStatus(record.status),
                current=record.step,
                target=to_step,
                step_started_at=record.step_started_at,
                now=now,
                checked=view.checked,
                override_reason=override_reason,
            )
            overridden = move.overridden
            if monitoring is not None:
                if not override_reason:
                    raise monitoring
                overridden = (*overridden, "monitoring")
            move = flow.Advance(move.from_step, move.to_step, overridden)
            uow.timers.cancel_pending(release_id, [STAGE_WAIT])
            if move.overridden:
                uow.audit.append(
                    release_id,
                    "gate_overridden",
                    actor,
                    now,
                    details={
                        "from": move.from_step,
                        "to": move.to_step,
                        "gates": list(move.overridden),
                        "reason": override_reason,
                        **({"monitoring": monitoring.window} if monitoring is not None and monitoring.window else {}),
                    },
                )
            if move.finishes:
                uow.timers.cancel_pending(release_id)
                uow.releases.update(
                    release_id, step=FINISHED_STEP, step_started_at=now, step_started_by=actor.id
                )
                uow.releases.end(release_id, ReleaseStatus.FINISHED, now)
                uow.audit.append(release_id, "release_finished", actor, now, details={"from": move.from_step})
            else:
                uow.releases.update(
                    release_id,
                    step=to_step,
                    step_started_at=now,
                    step_started_by=actor.id,
                    last_activity_at=now,
                )
                uow.audit.append(
                    release_id,
                    "step_advanced",
                    actor,
                    now,
                    details={"from": move.from_step, "to": move.to_step},
                )
                self._schedule_for_step(uow, view, to_step, now, actor)
            # Only the header shows the step; a finished release also marks every checklist message.
            uow.messages.bump_release(release_id, None if move.finishes else ["header"])
            uow.commit()
            result = Advanced(
                self._services.view_in(uow, release_id),
                move.from_step,
                move.to_step,
                move.overridden,
                override_reason,
            )
        self.on_timers_changed()
        status = ReleaseStatus.FINISHED if move.finishes else ReleaseStatus.ACTIVE
        self._notify(
            Transition(release_id, move.from_step, move.to_step, status, actor, now, override_reason)
        )
        return result

    def _monitoring_gate(self, release_id: int, from_step: str) -> GateNotMet | None:
        """Why the monitoring gate holds a release in its canary stage, or None when it lets it go (seed 3.3).

        Judged over the stage's whole wait, from the stage's start until now: the window's error ratio and p95
        from Prometheus. A stage without a wait (100 %) is observed ``gate.min_observation`` first. Without a
        metrics source the gate is not judged here (people check the dashboards, as the checklist asks)."""
        window = self.gate_window
        if window is None or not window.enabled:
            return None
        view = self._services.view(release_id)
        step, gate, spec = view.current_step, view.checklist.gate, view.checklist.metrics
        if step is None or step.key != from_step or step.kind is not StepKind.CANARY or gate is None or spec is None:
            return None
        started = view.release.step_started_at
        if step.wait is None:
            left = (started + gate.min_observation - self._clock.now()).total_seconds()
            if left > 0:
                return GateNotMet("gate_observing", observing_s=left)
        report = window.judge(release_id, gate, spec, started)
        if report is None or report.passed:
            return None
        return GateNotMet("gate_window_failed", window=window_record(report, step.key))

    def _schedule_for_step(
        self, uow: SqlUnitOfWork, view: ReleaseView, step_key: str, now: datetime, actor: Actor
    ) -> None:
        step = next(s for s in view.steps if s.key == step_key)
        rid = view.release.id
        if step.kind is StepKind.CANARY and step.wait is not None:
            uow.timers.schedule(
                rid,
                STAGE_WAIT,
                f"{rid}:{STAGE_WAIT}:{step.key}",
                now + step.wait,
                {"step": step.key, "started_by": actor.id},
            )
        if step.kind is StepKind.WATCH and view.checklist.post_deploy_watch is not None:
            uow.timers.schedule(
                rid,
                WATCH_END,
                f"{rid}:{WATCH_END}:{step.key}",
                now + view.checklist.post_deploy_watch,
                {"step": step.key, "started_by": actor.id},
            )

    def abort(self, release_id: int, *, actor: Actor, reason: str) -> ReleaseView:
        """End a release as aborted: cancel its timers and mark every message."""
        self.require(release_id, actor, Action.ABORT)
        now = self._clock.now()
        with self._uow() as uow:
            record = uow.releases.get(release_id, for_update=True)
            if ReleaseStatus(record.status).is_terminal:
                raise InvalidTransition("release_ended", params={"status": record.status})
            cancelled = uow.timers.cancel_pending(release_id)
            uow.releases.end(release_id, ReleaseStatus.ABORTED, now)
            uow.audit.append(
                release_id,
                "release_aborted",
                actor,
                now,
                details={"reason": reason, "step": record.step, "timers_cancelled": cancelled},
            )
            uow.messages.bump_release(release_id)
            uow.commit()
            view = self._services.view_in(uow, release_id)
        self.on_timers_changed()
        self._notify(
            Transition(release_id, record.step, record.step, ReleaseStatus.ABORTED, actor, now, reason)
        )
        return view

    def mark_rolled_back(
        self,
        release_id: int,
        *,
        actor: Actor,
        details: dict[str, object],
        by_hand: dict[str, object] | None = None,
        action_ts: str | None = None,
        lock_reason: str | None = None,
    ) -> ReleaseView:
        """End a release as rolled back (after a successful rollback): cancel its timers, redraw everything.

        ``by_hand`` records a rollback people did outside the bot, in the same transaction under the release's row
        lock: of two clicks at once one records it, the other is told it is already rolled back.
        ``lock_reason`` locks the service's production in that same transaction: a start between the release
        ending and a separate lock write would go through (a rolled-back version must not go out again unnoticed).
        """
        now = self._clock.now()
        with self._uow() as uow:
            record = uow.releases.get(release_id, for_update=True)
            if record.status == ReleaseStatus.ROLLED_BACK.value:
                if by_hand is not None:
                    raise InvalidTransition("already_rolled_back", params={"version": record.version})
                return self._services.view_in(uow, release_id)
            if by_hand is not None:
                if record.status != ReleaseStatus.ACTIVE.value:
                    raise InvalidTransition("release_ended", params={"status": record.status})
                uow.audit.append(release_id, "rollback_by_hand", actor, now, details=by_hand, slack_action_ts=action_ts)
            uow.timers.cancel_pending(release_id)
            uow.releases.end(release_id, ReleaseStatus.ROLLED_BACK, now)
            uow.audit.append(
                release_id, "release_rolled_back", actor, now, details={"step": record.step, **details}
            )
            if lock_reason is not None:
                lock = uow.locks.lock(record.service, release_id, lock_reason, now)
                uow.audit.append(
                    release_id, "service_locked", BOT, now, details={"service": lock.service, "lock": lock.id}
                )
            uow.messages.bump_release(release_id)
            uow.commit()
            view = self._services.view_in(uow, release_id)
        self.on_timers_changed()
        self._notify(Transition(release_id, record.step, record.step, ReleaseStatus.ROLLED_BACK, actor, now))
        return view

    def record_health(self, release_id: int, *, actor: Actor, environment: str, result: HealthResult) -> None:
        with self._uow() as uow:
            uow.audit.append(
                release_id,
                "health_check",
                actor,
                self._clock.now(),
                details={
                    "environment": environment,
                    "url": result.url,
                    "ok": result.ok,
                    "status_code": result.status_code,
                    "latency_ms": round(result.latency_ms, 1),
                    "summary": result.summary,
                },
            )
            uow.commit()

    def record(self, release_id: int, action: str, actor: Actor, details: dict[str, object]) -> None:
        """Append one audit event (decisions taken from Slack that change no state)."""
        with self._uow() as uow:
            uow.audit.append(release_id, action, actor, self._clock.now(), details=dict(details))
            uow.commit()

    # --- the clock --------------------------------------------------------------------------------------

    def next_due(self, skip_channels: Collection[str] = ()) -> datetime | None:
        """The earliest pending due time, of a release in none of ``skip_channels``."""
        with self._uow() as uow:
            return uow.timers.next_due(skip_channels)

    def claim_due(
        self,
        worker: str,
        limit: int = 20,
        skip_channels: Collection[str] = (),
        together: Callable[[str, list[float]], int] | None = None,
    ) -> list[ClaimedTimer]:
        """Claim the earliest due timer of up to ``limit`` channels not in ``skip_channels`` (the clock posts one
        reminder a channel at a time); each claim is an UPDATE only one process succeeds at.

        ``together(channel, lates)``, given how late each of a channel's due timers is (earliest first, at most
        ``TOGETHER_MAX``), says how many of them to claim for one post; the claims of a channel follow each other
        in the list. The release's view is not loaded here but by ``due_timer``, on the thread that posts: the
        clock claims on one thread and posts on several, and loading 50 views one after the other made the last
        claim seconds late. Leader-only: each claim is fenced (``NotLeader`` once this process no longer leads)."""
        now = self._clock.now()
        won: list[ClaimedTimer] = []
        with self._uow() as uow:
            due = uow.timers.due_by_channel(
                now, limit, skip_channels, per_channel=TOGETHER_MAX if together is not None else 1
            )
        for channel, timers in due:
            lates = [(now - timer.due_at).total_seconds() for timer in timers]
            take = 1 if together is None or len(timers) == 1 else max(1, min(together(channel, lates), len(timers)))
            for timer, late_s in zip(timers[:take], lates, strict=False):
                with self._uow() as uow:
                    uow.leader_only()
                    if not uow.timers.claim(timer.id, worker, now):
                        continue
                    uow.commit()
                won.append(ClaimedTimer(timer, channel, late_s))
        return won

    def due_timer(self, claimed: ClaimedTimer) -> DueTimer:
        """A claimed timer with its release's view, for its post."""
        with self._uow() as uow:
            view = self._services.view_in(uow, claimed.timer.release_id)
        return DueTimer(claimed.timer, view, claimed.late_s)

    def now(self) -> datetime:
        return self._clock.now()

    def timer_fired(
        self,
        timer_id: int,
        *,
        posted_ts: str | None,
        late_s: float,
        posted_late_s: float | None = None,
        timing: Mapping[str, float] | None = None,
        refused: str | None = None,
        together: int | None = None,
    ) -> None:
        """Leader-only: a deposed leader's record is refused, and the next leader settles the timer by its marker.

        ``late_s`` is the lateness at the claim; ``posted_late_s`` at the post (Slack accepted it), None when
        nothing was posted (Slack refused, or the reminder was found already posted at recovery). ``timing``: where
        the time between claim and post went (seconds), kept with the event so that a late reminder explains
        itself. ``refused``: Slack's error code when it refused the post. ``together``: how many reminders of the
        channel went out in the one message this one was posted in (``TimerPoster.post_together``).

        A reminder claimed just before its release ended is not posted; the event then says so (``not_posted``),
        so that the trail does not read as a reminder sent into a finished release's thread."""
        now = self._clock.now()
        with self._uow() as uow:
            uow.leader_only()
            timer = uow.timers.get(timer_id)
            uow.timers.finish(timer_id, now)
            why_not: dict[str, str] = {}
            if refused is not None:
                why_not["not_posted"] = f"Slack refused it ({refused})"
            elif posted_ts is None:  # the poster declined: the release's state says why
                release = uow.releases.get(timer.release_id)
                if ReleaseStatus(release.status).is_terminal:
                    why_not["not_posted"] = f"the release had ended ({release.status})"
                elif release.thread_ts is None:
                    why_not["not_posted"] = "the release has no thread"
            uow.audit.append(
                timer.release_id,
                "reminder_fired",
                Actor("bot", "release-bot"),
                now,
                details={
                    "kind": timer.kind,
                    "step": timer.payload.get("step"),
                    "late_s": round(late_s, 3),
                    "posted_late_s": None if posted_late_s is None else round(posted_late_s, 3),
                    "ts": posted_ts,
                    **why_not,
                    **({"timing": {k: round(v, 3) for k, v in timing.items()}} if timing else {}),
                    **({"together": together} if together else {}),
                },
            )
            uow.commit()

    def interrupted_timers(self, worker: str | None = None, skip: Collection[int] = ()) -> list[DueTimer]:
        """Timers claimed but never finished: by a process that died, or (``worker``) by us while Slack was down.

        ``skip``: timers not to load (the clock's own in flight)."""
        now = self._clock.now()
        out = []
        with self._uow() as uow:
            for timer in uow.timers.interrupted(worker):
                if timer.id in skip:
                    continue
                out.append(
                    DueTimer(
                        timer,
                        self._services.view_in(uow, timer.release_id),
                        (now - timer.due_at).total_seconds(),
                    )
                )
        return out
