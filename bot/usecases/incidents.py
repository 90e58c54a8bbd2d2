"""Incidents: one per criterion per release, paged once through the outbox, pinged once in the channel,
acknowledged, dismissed (the watch re-arms) or resolved when the release ends. Also the PagerDuty change
events that mark a release's moves.

Everything here writes rows in one unit of work and returns: PagerDuty is only ever reached by the outbox job,
Slack only through the ``AlertSink`` port, so a Slack ack never waits on either. Must not import slack_bolt,
slack_sdk, httpx or kubernetes.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from bot.db.uow import SqlUnitOfWork
from bot.domain.analysis import CriterionWatch
from bot.domain.checklist import CriterionKind
from bot.domain.incident import DECLARED, PING_CLAIM, IncidentRecord, IncidentStatus, dedup_key
from bot.domain.records import BOT, Actor
from bot.domain.release import StepKind
from bot.domain.roles import REDECLARE_COOLDOWN, Action
from bot.errors import ChatError, Conflict, InvalidTransition
from bot.i18n import t
from bot.ports import Clock
from bot.usecases.incident_words import change_body, thread_link, trigger_body
from bot.usecases.releases import ReleaseView, Services, UowFactory

log = logging.getLogger(__name__)


class AlertSink(Protocol):
    """Where the watch's messages go (Slack in production). Methods raise ``ChatError`` when Slack refuses."""

    def ping(self, view: ReleaseView, incident: IncidentRecord) -> str: ...

    def refresh(self, view: ReleaseView, incident: IncidentRecord) -> None: ...

    def thread_note(self, view: ReleaseView, text: str) -> None: ...

    def redraw(self, view: ReleaseView, kinds: tuple[str, ...]) -> None: ...


@dataclass(frozen=True)
class Fired:
    """An incident opened (or re-opened) in a unit of work: ping it after commit."""

    incident_id: int
    release_id: int


class IncidentDesk:
    """Opens, pings, acknowledges, dismisses and resolves incidents; queues their PagerDuty events."""

    def __init__(
        self,
        *,
        uow: UowFactory,
        clock: Clock,
        services: Services,
        lang: str,
        alerts: AlertSink | None = None,
        kick: Callable[[], None] = lambda: None,
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._services = services
        self._lang = lang
        self.alerts = alerts
        self.kick = kick  # wakes the outbox so a page leaves now, not at its next interval

    # --- opening --------------------------------------------------------------------------------------

    def open_in(
        self,
        uow: SqlUnitOfWork,
        view: ReleaseView,
        *,
        criterion: str,
        title: str,
        details: dict[str, Any],
        actor: Actor,
        reason: str | None = None,
    ) -> Fired | None:
        """Open the criterion's incident and queue its one trigger; None when it is already live."""
        now = self._clock.now()
        rid = view.release.id
        key = dedup_key(rid, criterion)
        uow.watch.releases.get_or_create(rid, now)  # so the release's end resolves it, whatever happens next
        existing = uow.watch.incidents.by_key(key, for_update=True)
        if existing is not None and existing.status.live:
            return None
        values: dict[str, Any] = {
            "status": IncidentStatus.OPEN.value,
            "declared_by": actor.id,
            "declared_by_name": actor.name,
            "reason": reason,
            "value": details.get("value"),
            "threshold": details.get("threshold"),
            "baseline_p95_s": view.release.baseline_p95_s,
            "stage": view.release.step,
            "details": {**details, "title": title},
            "slack_ts": None,
            "handled_by": None,
            "updated_at": now,
        }
        if existing is None:
            incident = uow.watch.incidents.add(
                release_id=rid,
                criterion=criterion,
                dedup_key=key,
                fire_count=1,
                channel_id=view.release.channel_id,
                created_at=now,
                **values,
            )
        else:  # dismissed or resolved before, and the evidence is fresh: page again under the same key
            incident = uow.watch.incidents.update(existing.id, fire_count=existing.fire_count + 1, **values)
        uow.watch.outbox.enqueue(
            event_key=f"trigger:{key}:{incident.fire_count}",
            action="trigger",
            body=trigger_body(view, incident, self._lang, self._clock.now()),
            now=now,
            release_id=rid,
            dedup_key=key,
        )
        uow.audit.append(
            rid,
            "incident_opened",
            actor,
            now,
            details={
                "criterion": criterion,
                "dedup_key": key,
                "fire": incident.fire_count,
                "reason": reason,
                "value": incident.value,
                "threshold": incident.threshold,
            },
        )
        return Fired(incident.id, rid)

    def declare(self, release_id: int, criterion: str, *, actor: Actor, reason: str) -> Fired:
        """A person declares an incident (a manual criterion, or DECLARED from the command).

        Open to anyone in the channel, so it is bounded: one live incident per criterion, and after a manager
        dismissed it, nobody but a manager declares that criterion again until ``REDECLARE_COOLDOWN`` has passed.
        """
        with self._uow() as uow:
            view = self._services.view_in(uow, release_id)
            if view.status.is_terminal:
                raise InvalidTransition("release_ended", params={"status": view.release.status})
            self._check_cooldown(uow, view, criterion, actor)
            title = t(self._lang, "declared_title")
            if criterion != DECLARED:
                match = next((c for c in view.checklist.criteria if c.key == criterion), None)
                if match is None or match.kind is not CriterionKind.MANUAL:
                    raise InvalidTransition("forged_action")
                title = match.title
            details = {"kind": "manual", "title": title, "stage": view.release.step}
            fired = self.open_in(
                uow, view, criterion=criterion, title=title, details=details, actor=actor, reason=reason
            )
            if fired is None:
                raise Conflict(
                    "incident_already_open",
                    params={"version": view.release.version, "link": thread_link(view) or ""},
                )
            uow.commit()
        self.kick()
        return fired

    def _check_cooldown(self, uow: SqlUnitOfWork, view: ReleaseView, criterion: str, actor: Actor) -> None:
        previous = uow.watch.incidents.by_key(dedup_key(view.release.id, criterion))
        if previous is None or previous.status is not IncidentStatus.DISMISSED:
            return
        until = previous.updated_at + REDECLARE_COOLDOWN
        if self._clock.now() >= until or self._services.permissions.is_manager(
            actor.id, view.release.service
        ):
            return
        uow.audit.append(
            view.release.id,
            "incident_refused",
            actor,
            self._clock.now(),
            details={"criterion": criterion, "why": "dismissed_recently", "dismissed_by": previous.handled_by},
        )
        uow.commit()
        raise Conflict(
            "incident_recently_dismissed",
            params={
                "who": f"<@{previous.handled_by}>" if previous.handled_by else "?",
                "version": view.release.version,
                "minutes": int(REDECLARE_COOLDOWN.total_seconds() // 60),
                "left": max(1, math.ceil((until - self._clock.now()).total_seconds() / 60)),
            },
        )

    # --- Slack ----------------------------------------------------------------------------------------

    def ping(self, incident_id: int) -> None:
        """Post the incident's channel message once; a failure leaves it for ``ping_pending`` to retry."""
        if self.alerts is None:
            return
        with self._uow() as uow:
            incident = uow.watch.incidents.get(incident_id)
            view = self._services.view_in(uow, incident.release_id)
        if not incident.status.live:
            return
        with self._uow() as uow:
            # Manual declarations ping from a background thread while the leader sweeps unpinged incidents:
            # an atomic claim makes sure only one of them posts.
            if not uow.watch.incidents.claim_ping(incident_id, self._clock.now()):
                return
            uow.commit()
        try:
            ts = self.alerts.ping(view, incident)
        except ChatError as e:
            log.warning("incident %s: channel ping failed (%s); will retry", incident_id, e.code)
            with self._uow() as uow:
                uow.watch.incidents.update(incident_id, slack_ts=None)
                uow.commit()
            return
        with self._uow() as uow:
            uow.watch.incidents.update(incident_id, slack_ts=ts)
            uow.audit.append(
                incident.release_id,
                "incident_pinged",
                BOT,
                self._clock.now(),
                details={"criterion": incident.criterion, "ts": ts},
            )
            uow.commit()

    def ping_pending(self) -> None:
        with self._uow() as uow:
            ids = [i.id for i in uow.watch.incidents.unpinged()]
        for incident_id in ids:
            self.ping(incident_id)

    def refresh(self, incident_id: int) -> None:
        """Redraw the incident's channel message after its status changed."""
        if self.alerts is None:
            return
        with self._uow() as uow:
            incident = uow.watch.incidents.get(incident_id)
            view = self._services.view_in(uow, incident.release_id)
        if incident.slack_ts is None or incident.slack_ts.startswith(PING_CLAIM):
            return
        try:
            self.alerts.refresh(view, incident)
        except ChatError as e:
            log.warning("incident %s: message update failed (%s)", incident_id, e.code)

    # --- people handling it ---------------------------------------------------------------------------

    def get(self, incident_id: int) -> IncidentRecord:
        with self._uow() as uow:
            return uow.watch.incidents.get(incident_id)

    def acknowledge(self, incident_id: int, *, actor: Actor, action_ts: str | None = None) -> IncidentRecord:
        """Acknowledge in our records and queue the PagerDuty acknowledge; a repeat click changes nothing."""
        self._services.permissions.require(self.get(incident_id).release_id, actor, Action.ACKNOWLEDGE)
        now = self._clock.now()
        with self._uow() as uow:
            incident = uow.watch.incidents.get(incident_id, for_update=True)
            if incident.status is not IncidentStatus.OPEN:
                return incident
            incident = uow.watch.incidents.update(
                incident_id, status=IncidentStatus.ACKNOWLEDGED.value, handled_by=actor.id, updated_at=now
            )
            self._queue(uow, incident, "acknowledge", now)
            uow.audit.append(
                incident.release_id,
                "incident_acknowledged",
                actor,
                now,
                details={"criterion": incident.criterion},
                slack_action_ts=action_ts,
            )
            uow.commit()
        self.kick()
        return incident

    def dismiss(self, incident_id: int, *, actor: Actor, action_ts: str | None = None) -> IncidentRecord:
        """ "Not a problem, keep watching": resolve the page and re-arm the criterion on fresh evidence."""
        self._services.permissions.require(self.get(incident_id).release_id, actor, Action.DISMISS)
        now = self._clock.now()
        with self._uow() as uow:
            incident = uow.watch.incidents.get(incident_id, for_update=True)
            if not incident.status.live:
                return incident
            incident = uow.watch.incidents.update(
                incident_id, status=IncidentStatus.DISMISSED.value, handled_by=actor.id, updated_at=now
            )
            states = uow.watch.states.load(incident.release_id, for_update=True)
            if incident.criterion in states:
                watch = CriterionWatch.from_dict(states[incident.criterion])
                watch.rearm()
                uow.watch.states.save(
                    incident.release_id, incident.criterion, watch.to_dict(), now, sampled=False
                )
            self._queue(uow, incident, "resolve", now)
            uow.audit.append(
                incident.release_id,
                "incident_dismissed",
                actor,
                now,
                details={"criterion": incident.criterion},
                slack_action_ts=action_ts,
            )
            uow.commit()
        self.kick()
        return incident

    def _queue(self, uow: SqlUnitOfWork, incident: IncidentRecord, action: str, now: datetime) -> None:
        uow.watch.outbox.enqueue(
            event_key=f"{action}:{incident.dedup_key}:{incident.fire_count}",
            action=action,
            body={},
            now=now,
            release_id=incident.release_id,
            dedup_key=incident.dedup_key,
        )

    # --- the release moving -----------------------------------------------------------------------------

    def reconcile(self, release_id: int) -> list[int]:
        """Bring PagerDuty up to date with where a release is: change events, and resolves once it ended.

        Called from the lifecycle hooks and from every watch tick; set semantics make repeats harmless.
        Returns the ids of incidents it resolved (their messages need a redraw).
        """
        now = self._clock.now()
        resolved: list[int] = []
        queued = False
        with self._uow() as uow:
            view = self._services.view_in(uow, release_id)
            watch = uow.watch.releases.get_or_create(release_id, now)
            release = view.release
            if view.status.is_terminal:
                if watch.closed_at is not None:
                    return []
                queued = self._change(
                    uow,
                    view,
                    f"change:{release_id}:{release.status}",
                    "pd_change_ended",
                    status=release.status.replace("_", " "),
                )
                for incident in uow.watch.incidents.for_release(
                    release_id, [IncidentStatus.OPEN, IncidentStatus.ACKNOWLEDGED]
                ):
                    uow.watch.incidents.update(
                        incident.id, status=IncidentStatus.RESOLVED.value, updated_at=now
                    )
                    self._queue(uow, incident, "resolve", now)
                    uow.audit.append(
                        release_id,
                        "incident_resolved",
                        BOT,
                        now,
                        details={"criterion": incident.criterion, "release_status": release.status},
                    )
                    resolved.append(incident.id)
                uow.watch.releases.update(release_id, closed_at=now)
            elif watch.announced_step != release.step:
                step = view.current_step
                if step is not None and step.kind in (StepKind.CANARY, StepKind.WATCH):
                    canaries = [s for s in view.steps if s.kind is StepKind.CANARY]
                    pct = step.stage.traffic_percent if step.stage else 0
                    key = "pd_change_watch"
                    if step.kind is StepKind.CANARY:
                        key = (
                            "pd_change_canary_start"
                            if canaries and step.key == canaries[0].key
                            else "pd_change_stage"
                        )
                    queued = self._change(uow, view, f"change:{release_id}:{step.key}", key, pct=pct)
                uow.watch.releases.update(release_id, announced_step=release.step)
            uow.commit()
        if resolved or queued:
            self.kick()
        for incident_id in resolved:
            self.refresh(incident_id)
        return resolved

    def _change(
        self, uow: SqlUnitOfWork, view: ReleaseView, event_key: str, words: str, **params: Any
    ) -> bool:
        release = view.release
        now = self._clock.now()
        queued = uow.watch.outbox.enqueue(
            event_key=event_key,
            action="change",
            body=change_body(
                view, t(self._lang, words, service=release.service, version=release.version, **params), now
            ),
            now=now,
            release_id=release.id,
        )
        return queued
