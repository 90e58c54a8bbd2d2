"""Rolling production back: plan, request (permission, then the intent under a database lock), execute
(``kubectl rollout undo`` + ``rollout status``), then health check, "rolled back", and the service lock.

Like ``bot.usecases.releases`` it knows nothing of Slack; it must not import slack_bolt, slack_sdk, kubernetes or httpx.
The Kubernetes work goes through the ``Deployer`` port; ``LazyDeployer`` builds the real one on first use.

Safety rules kept here:
- the permission check comes first, and refusals are recorded (``Lifecycle.require``);
- the intent row is committed before the patch is sent and the outcome after it; ``active_key`` (unique)
  forbids two rollbacks of one deployment at once, across processes;
- a rollback row is executed at most once: anything not in ``intent`` is never re-run, and a rollback left
  in progress by a dead process is marked ``interrupted`` and reported, never retried;
- the confirmer's view is checked: if the live revision changed since the modal was read, nothing is sent
  (a replayed confirmation after a finished undo would otherwise toggle the deployment forward again).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import timedelta

from bot.domain.records import BOT, Actor
from bot.domain.release import ReleaseStatus
from bot.domain.roles import Action
from bot.domain.rollbacks import RollbackRecord, RollbackStatus, ServiceLock
from bot.errors import Conflict, InvalidTransition, NotFound, ReleaseBotError
from bot.ports import Clock, Deployer, HealthChecker, HealthResult, RollbackPlan, RolloutStatus
from bot.usecases.lifecycle import Lifecycle
from bot.usecases.releases import ReleaseView, Services, UowFactory
from bot.usecases.reports import incident_report
from bot.usecases.rollback_types import (
    Interrupted,
    LazyDeployer,
    Outcome,
    UndoConfirmation,
    production_environment,
    rollback_target,
)

__all__ = [
    "Interrupted",
    "LazyDeployer",
    "Outcome",
    "RollbackService",
    "UndoConfirmation",
    "production_environment",
    "rollback_target",
]

log = logging.getLogger(__name__)
Progress = Callable[[RolloutStatus], None]


class RollbackService:
    """The rollback use cases, bound to their collaborators."""

    def __init__(
        self,
        *,
        uow: UowFactory,
        clock: Clock,
        services: Services,
        lifecycle: Lifecycle,
        deployer: Deployer,
        health: HealthChecker,
        rollout_timeout_s: float,
        worker: Callable[[], str],
        poll_s: float = 2.0,
        stale_after_s: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._services = services
        self._lifecycle = lifecycle
        self.deployer = deployer
        self._health = health
        self._timeout_s = rollout_timeout_s
        self._worker = worker
        self._poll_s = poll_s
        self._stale = timedelta(seconds=stale_after_s)
        self._sleep = sleep
        self._monotonic = monotonic

    # --- asking ---------------------------------------------------------------------------------------

    def plan(self, release_id: int, *, to_revision: int = 0) -> tuple[ReleaseView, RollbackPlan]:
        """Read what an undo would do (deployment and namespace come from the release's checklist)."""
        view = self._services.view(release_id)
        target = rollback_target(view.checklist)
        return view, self.deployer.plan_rollback(target.deployment, target.namespace, to_revision=to_revision)

    def request(
        self,
        release_id: int,
        *,
        actor: Actor,
        reason: str,
        to_revision: int = 0,
        expected_revision: int | None = None,
        action_ts: str | None = None,
        confirmed: UndoConfirmation | None = None,
    ) -> RollbackRecord:
        """Check the actor may, then store the intent under the deployment's lock (Conflict if one runs).

        A release that never reached production did not put there what a rollback undoes: that takes ``confirmed``,
        the revisions the person saw and agreed to undo, and exactly those are undone (or nothing, if production
        moved since).
        """
        self._lifecycle.require(release_id, actor, Action.ROLL_BACK)
        view = self._services.view(release_id)
        target = rollback_target(view.checklist)
        if view.status is ReleaseStatus.ROLLED_BACK:
            raise InvalidTransition("already_rolled_back", params={"version": view.release.version})
        outside: dict[str, object] = {}
        if not view.reached_production:
            if confirmed is None:
                step = view.current_step
                where = view.checklist.phase(step.phase_key).title if step else view.release.step
                self._lifecycle.record(
                    release_id, "rollback_refused", actor, {"why": "not_in_production", "reason": reason}
                )
                raise InvalidTransition(
                    "rollback_not_in_production", params={"version": view.release.version, "step": where}
                )
            to_revision, expected_revision = confirmed.to_revision, confirmed.from_revision
            outside = {"outside_production": True, "confirmed_undo": confirmed.as_details()}
        now = self._clock.now()
        try:
            with self._uow() as uow:
                record = uow.rollbacks.start(
                    release_id=release_id,
                    deployment=target.deployment,
                    namespace=target.namespace,
                    requested_revision=to_revision,
                    expected_revision=expected_revision,
                    reason=reason,
                    actor=actor,
                    worker=self._worker(),
                    at=now,
                )
                uow.audit.append(
                    release_id,
                    "rollback_confirmed",
                    actor,
                    now,
                    details={
                        "rollback": record.id,
                        "deployment": target.deployment,
                        "namespace": target.namespace,
                        "to_revision": to_revision,
                        "seen_revision": expected_revision,
                        "reason": reason,
                        **outside,
                    },
                    slack_action_ts=action_ts,
                )
                uow.commit()
                return record
        except Conflict as busy:
            self._lifecycle.record(
                release_id, "rollback_refused", actor, {"why": "in_progress", **busy.params, "reason": reason}
            )
            raise

    def get(self, rollback_id: int) -> RollbackRecord:
        with self._uow() as uow:
            return uow.rollbacks.get(rollback_id)

    def report(self, release_id: int) -> str:
        """The incident-report draft, exactly as ``release-bot export VERSION --format md`` prints it."""
        with self._uow() as uow:
            events = uow.audit.for_release(release_id)
            view = self._services.view_in(uow, release_id)
        return incident_report(view, events)

    def set_progress_message(self, rollback_id: int, channel: str, ts: str) -> None:
        with self._uow() as uow:
            uow.rollbacks.update(rollback_id, at=self._clock.now(), progress_channel=channel, progress_ts=ts)
            uow.commit()

    # --- doing ----------------------------------------------------------------------------------------

    def execute(self, rollback_id: int, *, on_progress: Progress | None = None) -> Outcome:
        """Carry out a stored intent once: plan, patch, follow the rollout, then the aftermath."""
        with self._uow() as uow:
            record = uow.rollbacks.get(rollback_id)
        if record.status is not RollbackStatus.INTENT:
            # Executed already (or interrupted): never a second patch for one confirmation.
            return Outcome(record, "rollback_not_rerun", {"status": record.status.value}, self._view(record))
        dep, ns = record.deployment, record.namespace
        try:
            plan = self.deployer.plan_rollback(dep, ns, to_revision=record.requested_revision)
        except ReleaseBotError as e:
            return self._fail(record, e.user_message, e.params, detail=str(e))
        self._save(
            record,
            from_revision=plan.current.number,
            from_images=list(plan.current.images),
            to_revision=plan.target.number,
            to_images=list(plan.target.images),
        )
        warnings = plan.gitops_warnings
        if record.expected_revision is not None and plan.current.number != record.expected_revision:
            params: dict[str, object] = {"seen": record.expected_revision, "now": plan.current.number}
            return self._fail(record, "rollback_changed", params, gitops=warnings)
        if plan.paused:
            return self._fail(record, "rollback_paused", {"target": record.target}, gitops=warnings)
        if plan.already_current:
            return self._finish(
                record, RollbackStatus.SKIPPED, "nothing_to_roll_back", {"revision": plan.target.number}
            )
        try:
            # The resolved number, not 0: undo exactly the revision the confirmer was shown.
            undo = self.deployer.undo(dep, ns, to_revision=plan.target.number)
        except ReleaseBotError as e:
            return self._fail(record, e.user_message, e.params, detail=str(e), gitops=warnings)
        if not undo.rolled_back:
            return self._finish(record, RollbackStatus.SKIPPED, undo.message, {})
        self._transition(
            record,
            RollbackStatus.PATCHED,
            "rollback_patched",
            {
                "rollback": record.id,
                "deployment": dep,
                "namespace": ns,
                "from_revision": plan.current.number,
                "from_images": list(plan.current.images),
                "to_revision": plan.target.number,
                "to_images": list(plan.target.images),
                "kubectl": undo.message,
            },
        )
        try:
            status = self._follow(record, on_progress)
        except ReleaseBotError as e:
            return self._fail(record, e.user_message, e.params, detail=str(e), gitops=warnings)
        if not status.done:
            return self._fail(record, status.message, {}, rollout=status, gitops=warnings)
        return self._aftermath(record, status, warnings)

    def _follow(self, record: RollbackRecord, on_progress: Progress | None) -> RolloutStatus:
        """``kubectl rollout status`` with our own deadline; each poll also beats the heartbeat."""
        started = self._monotonic()
        last = ""
        while True:
            status = self.deployer.rollout_status(record.deployment, record.namespace)
            if status.message != last:
                last = status.message
                if on_progress is not None:
                    on_progress(status)
            if status.done or status.failed:
                return status
            elapsed = self._monotonic() - started
            if elapsed >= self._timeout_s:
                return RolloutStatus(
                    False,
                    True,
                    f"timed out after {self._timeout_s:g} s waiting for deployment "
                    f'"{record.deployment}" to roll out (last status: {status.message})',
                )
            self._heartbeat(record.id)
            self._sleep(min(self._poll_s, self._timeout_s - elapsed))

    def _aftermath(self, record: RollbackRecord, status: RolloutStatus, warnings: tuple[str, ...]) -> Outcome:
        record = self._transition(
            record,
            RollbackStatus.SUCCEEDED,
            "rollback_succeeded",
            {"rollback": record.id, "rollout": status.message},
        )
        view = self._view(record)
        env_key = production_environment(view.checklist)
        health: HealthResult | None = None
        if env_key is not None:
            env = view.checklist.environment(env_key)
            health = self._health.check(env.health_url)
            self._lifecycle.record_health(record.release_id, actor=BOT, environment=env_key, result=health)
        view = self._lifecycle.mark_rolled_back(
            record.release_id,
            actor=record.requested_by,
            details={
                "rollback": record.id,
                "from_revision": record.from_revision,
                "to_revision": record.to_revision,
                "reason": record.reason,
            },
            lock_reason=record.reason,
        )
        lock = self._active_lock(view.release.service)
        return Outcome(
            record,
            "rolled_back",
            {"target": record.target},
            view,
            rollout=status,
            health=health,
            health_env=env_key,
            lock=lock,
            gitops_warnings=warnings,
        )

    # --- bookkeeping ----------------------------------------------------------------------------------

    def _view(self, record: RollbackRecord) -> ReleaseView:
        return self._services.view(record.release_id)

    def _heartbeat(self, rollback_id: int) -> None:
        with self._uow() as uow:
            uow.rollbacks.update(rollback_id, at=self._clock.now())
            uow.commit()

    def _save(self, record: RollbackRecord, **values: object) -> None:
        with self._uow() as uow:
            uow.rollbacks.update(record.id, at=self._clock.now(), **values)
            uow.commit()

    def _transition(
        self,
        record: RollbackRecord,
        status: RollbackStatus,
        action: str,
        details: dict[str, object],
        **values: object,
    ) -> RollbackRecord:
        now = self._clock.now()
        with self._uow() as uow:
            uow.rollbacks.update(record.id, at=now, status=status.value, **values)
            uow.audit.append(record.release_id, action, BOT, now, details=dict(details))
            uow.commit()
            return uow.rollbacks.get(record.id)

    def _finish(
        self, record: RollbackRecord, status: RollbackStatus, message: str, params: dict[str, object]
    ) -> Outcome:
        record = self._transition(
            record, status, f"rollback_{status.value}", {"rollback": record.id, "message": message, **params}
        )
        return Outcome(record, message, params, self._view(record))

    def _fail(
        self,
        record: RollbackRecord,
        message: str,
        params: dict[str, object],
        *,
        detail: str | None = None,
        rollout: RolloutStatus | None = None,
        gitops: tuple[str, ...] = (),
    ) -> Outcome:
        # The user-facing words go to the row and the audit; the detail (server answer) only to the log.
        if detail:
            log.warning("rollback %s failed: %s", record.id, detail)
        self._audit_cluster_requests(record)
        record = self._transition(
            record,
            RollbackStatus.FAILED,
            "rollback_failed",
            {"rollback": record.id, "error": message, **params},
            error=message,
        )
        return Outcome(record, message, params, self._view(record), rollout=rollout, gitops_warnings=gitops)

    def _audit_cluster_requests(self, record: RollbackRecord) -> None:
        """A deployer that records what it sent (the Argo Rollouts rollback: abort, then undo) has its requests
        audited here when the rollback fails; a rollback that succeeds has them audited with the release's
        rolled-back mark (bot.usecases.traffic). Either way none is lost."""
        take = getattr(self.deployer, "take_requests", None)
        if take is None:
            return
        sent = take()
        if not sent:
            return
        now = self._clock.now()
        with self._uow() as uow:
            for request in sent:
                uow.audit.append(record.release_id, "cluster_request", BOT, now, details=request.as_dict())
            uow.commit()

    # --- after a crash --------------------------------------------------------------------------------

    def recover(self) -> list[Interrupted]:
        """Mark rollbacks whose process stopped beating as interrupted; never retry them."""
        now = self._clock.now()
        cutoff = now - self._stale
        with self._uow() as uow:
            stale = uow.rollbacks.stale(cutoff)
        found = []
        for record in stale:
            with self._uow() as uow:
                if not uow.rollbacks.claim_stale(record.id, cutoff, now, "interrupted"):
                    continue  # another process got there first, or it came back to life
                uow.audit.append(
                    record.release_id,
                    "rollback_interrupted",
                    BOT,
                    now,
                    details={"rollback": record.id, "was": record.status.value, "worker": record.worker},
                )
                uow.commit()
            try:
                live = self.deployer.rollout_status(record.deployment, record.namespace).message
            except ReleaseBotError as e:
                live = e.user_message
            found.append(Interrupted(record, self._view(record), live))
        return found

    # --- a rollback done by hand -------------------------------------------------------------------------

    def record_by_hand(
        self, release_id: int, *, actor: Actor, reason: str, action_ts: str | None = None
    ) -> tuple[ReleaseView, ServiceLock | None]:
        """Record a rollback someone did outside the bot (kubectl, the cloud console): who, when and why.

        It ends the release as rolled back and locks production like the bot's own rollback, so the follow-up,
        the report and the next release's start all know of it. Refused while the bot's own rollback runs.
        """
        self._lifecycle.require(release_id, actor, Action.RECORD_ROLLBACK)
        view = self._services.view(release_id)
        target = view.checklist.rollback
        if target is not None:
            with self._uow() as uow:
                running = uow.rollbacks.in_progress_for(target.namespace, target.deployment)
            if running is not None:
                # The bot's own rollback decides how this ends; recording another one now would lock twice.
                raise Conflict(
                    "rollback_in_progress",
                    params={
                        "target": running.target,
                        "who": running.requested_by.mention,
                        "status": running.status.value,
                    },
                )
        view = self._lifecycle.mark_rolled_back(
            release_id,
            actor=actor,
            details={"by_hand": True, "reason": reason},
            by_hand={"reason": reason, "step": view.release.step},
            action_ts=action_ts,
            lock_reason=reason,
        )
        # Taken with the release's end just now; None only if someone unlocked in between.
        return view, self._active_lock(view.release.service)

    def _active_lock(self, service: str) -> ServiceLock | None:
        with self._uow() as uow:
            return uow.locks.active(service)

    # --- the production lock --------------------------------------------------------------------------

    def unlock(self, service: str, *, actor: Actor, reason: str) -> list[ServiceLock]:
        """Clear the production lock of a service (release managers only, with a reason)."""
        with self._uow() as uow:
            lock = uow.locks.active(service)
        if lock is None:
            raise NotFound("no_lock", params={"service": service})
        self._lifecycle.require(lock.release_id, actor, Action.UNLOCK)
        now = self._clock.now()
        with self._uow() as uow:
            cleared = uow.locks.clear(service, actor=actor, reason=reason, at=now)
            for each in cleared:
                uow.audit.append(
                    each.release_id,
                    "service_unlocked",
                    actor,
                    now,
                    details={"service": service, "reason": reason},
                )
            uow.commit()
        return cleared
