"""Use cases of the release bot: each runs in one unit of work and returns a read model.

Services know nothing of Slack: listeners parse a request into a command, call one service, and render what it
returns. Must not import slack_bolt, slack_sdk, kubernetes or httpx.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from bot.checklist.loading import load_checklist_text
from bot.db.sample_reads import samples_between
from bot.db.traffic_repos import TrafficStates
from bot.db.uow import DuplicateKey, SqlUnitOfWork, active_key
from bot.domain import release as flow
from bot.domain.checklist import Checklist, with_contact_ids
from bot.domain.checklist_set import ChecklistSet, Member
from bot.domain.evidence import OVERRIDE_ACTION, EvidenceResult, EvidenceStatus
from bot.domain.incident import SampleRecord
from bot.domain.records import Actor, AuditEvent, ItemState, MessageRecord, ReleaseRecord, TimerRecord
from bot.domain.release import ReleaseStatus, Step
from bot.domain.roles import Action
from bot.domain.traffic import TrafficState
from bot.errors import Conflict, InvalidTransition, Locked, NotFound, PermissionDenied, UsageError
from bot.ports import Clock
from bot.usecases.permissions import Permissions, denial

UowFactory = Callable[[], SqlUnitOfWork]

# How long a claim to post a message holds. The rows of a release are claimed when reserved, and a publish that
# runs past half this claims each row again before its post, so this must outlast one post (a 10 s timeout, one
# retry, a rate-limit wait) with room for clock skew between replicas. A lapsed claim belonged to a dead process.
POST_CLAIM_LEASE = timedelta(minutes=5)


def _resources(uow: SqlUnitOfWork, release_id: int, checklist: Checklist) -> dict[str, SampleRecord]:
    spec = checklist.metrics
    if spec is None or spec.resource_item is None:
        return {}
    found: dict[str, SampleRecord] = {}
    for metric in ("cpu", "memory"):
        latest = uow.watch.samples.latest(release_id, metric)
        if latest:
            found[metric] = latest[0]
    return found


@dataclass(frozen=True)
class ReleaseView:
    """Everything a renderer needs to draw a release, read in one transaction."""

    release: ReleaseRecord
    checklist: Checklist
    steps: tuple[Step, ...]
    items: dict[str, ItemState]
    messages: tuple[MessageRecord, ...]
    overrides: tuple[AuditEvent, ...] = ()
    next_timer: TimerRecord | None = None
    # Read only for checklists with evidence items: the latest result and the manager's override of each item.
    evidence: dict[str, EvidenceResult] = field(default_factory=dict)
    item_overrides: dict[str, AuditEvent] = field(default_factory=dict)
    evidence_on: bool = False  # the bot evaluates evidence (GitHub configured): show the re-check button
    traffic: TrafficState | None = None  # the cluster's view, for checklists with a traffic provider
    # The monitoring gate over the current canary stage so far, as the watch last judged it (gate_window.py).
    gate_window: dict[str, Any] | None = None
    metrics_on: bool = False
    # The latest CPU and memory samples (seed 3.2 at 100 %), by metric, for the item that shows them.
    resources: dict[str, SampleRecord] = field(default_factory=dict)
    # The deployment runs several checklists: the header names this release's checklist and service.
    named: bool = False

    @property
    def checked(self) -> dict[str, bool]:
        return {k: s.checked for k, s in self.items.items()}

    @property
    def status(self) -> ReleaseStatus:
        return ReleaseStatus(self.release.status)

    @property
    def reached_production(self) -> bool:
        return flow.reached_production(self.steps, self.release.step)

    @property
    def current_step(self) -> Step | None:
        for step in self.steps:
            if step.key == self.release.step:
                return step
        return None

    def message(self, kind: str, page: int = 0) -> MessageRecord | None:
        return next((m for m in self.messages if m.kind == kind and m.page == page), None)


@dataclass(frozen=True)
class ToggleItems:
    """A click on checklist controls: the items whose state the clicker changed, as they saw it."""

    release_id: int
    message_id: int
    channel_id: str
    message_ts: str
    actor: Actor
    changes: tuple[tuple[str, bool], ...]
    action_ts: str | None = None


@dataclass(frozen=True)
class ToggleResult:
    """What changed; the messages to redraw are read again by the sync, so no view is built here."""

    changed: tuple[str, ...]
    dirty_messages: tuple[int, ...] = field(default=())


def _exists(version: str, existing: ReleaseRecord) -> Conflict:
    return Conflict(
        "release_exists",
        params={"version": version, "channel_id": existing.channel_id, "thread_ts": existing.thread_ts},
    )


# Releases whose parsed checklist a process keeps: far above the releases open at once (an org runs ~200); one read
# past it parses again, which the snapshot cache below makes cheap.
CHECKLISTS_KEPT = 2048


@functools.lru_cache(maxsize=64)
def _parse_checklist(source: str, name: str) -> Checklist:
    return load_checklist_text(source, source=f"<{name} snapshot>")


class Services:
    """The release bot's use cases, bound to their collaborators."""

    def __init__(
        self,
        *,
        uow: UowFactory,
        clock: Clock,
        checklist: Checklist | None,
        checklist_source: str,
        is_manager: Callable[[str], bool] = lambda _user: False,
        read_uow: UowFactory | None = None,
        evidence_on: bool = False,
        contact_ids: tuple[tuple[str, str], ...] = (),
        checklists: ChecklistSet | None = None,
        service_managers: Mapping[str, Callable[[str], bool]] | None = None,
    ) -> None:
        """``checklists`` is the deployment's set; without it, ``checklist`` (read from ``checklist_source``)
        serves every channel, as one file always did."""
        self._uow = uow
        self._contact_ids = contact_ids
        # Reads use their own units of work: on SQLite they take no write lock (see bot.db.engine).
        self._read = read_uow or uow
        self._checklists: dict[int, Checklist] = {}
        self._clock = clock
        if checklists is None and checklist is not None:
            checklists = ChecklistSet((Member(checklist, checklist_source, checklist.source),))
        self.checklists = checklists
        # The fallback (or first) checklist: what a caller that knows one checklist (the playground) runs.
        self.checklist = self._with_contacts(checklists.default) if checklists is not None else None
        self.permissions = Permissions(
            uow=uow, clock=clock, is_manager=is_manager, service_managers=service_managers
        )
        self.evidence_on = evidence_on
        # Prometheus is configured: canary stages show the monitoring gate over the stage (set by bootstrap).
        self.metrics_on = False

    def _with_contacts(self, checklist: Checklist) -> Checklist:
        # A release keeps the checklist it started with, but who is called is today's setting, not the snapshot's.
        if not self._contact_ids:
            return checklist
        return replace(checklist, contacts=with_contact_ids(checklist.contacts, self._contact_ids))

    @classmethod
    def readonly(cls, *, uow: UowFactory, clock: Clock) -> Services:
        """Services for reading stored releases (export, reports): no checklist file needed."""
        return cls(uow=uow, clock=clock, checklist=None, checklist_source="")

    @property
    def template(self) -> Checklist:
        if self.checklist is None:
            raise InvalidTransition("this process reads releases only")
        return self.checklist

    @property
    def catalog(self) -> ChecklistSet:
        if self.checklists is None:
            raise InvalidTransition("this process reads releases only")
        return self.checklists

    def serving(self, channel_id: str) -> tuple[Checklist, ...]:
        """The checklists a start in this channel may run, with today's contacts."""
        return tuple(self._with_contacts(c) for c in self.catalog.serving(channel_id))

    # --- reading ---------------------------------------------------------------------------------------

    def checklist_of(self, uow: SqlUnitOfWork, release_id: int, name: str) -> Checklist:
        """The checklist a release started with; it never changes, so it is read and parsed once per process."""
        cached = self._checklists.get(release_id)
        if cached is None:
            cached = self._with_contacts(_parse_checklist(uow.releases.checklist_source(release_id), name))
            if len(self._checklists) >= CHECKLISTS_KEPT:
                # The oldest half goes (dicts keep insertion order): kept for ever, every release ever read stayed.
                for rid in list(self._checklists)[: CHECKLISTS_KEPT // 2]:
                    self._checklists.pop(rid, None)
            self._checklists[release_id] = cached
        return cached

    def view_in(self, uow: SqlUnitOfWork, release_id: int) -> ReleaseView:
        record = uow.releases.get(release_id)
        checklist = self.checklist_of(uow, release_id, record.checklist_name)
        evidence: dict[str, EvidenceResult] = {}
        item_overrides: dict[str, AuditEvent] = {}
        if checklist.evidence_items:
            evidence = uow.evidence.for_release(release_id)
            events = uow.audit.for_release(release_id, actions=("gate_overridden", OVERRIDE_ACTION))
            overrides = tuple(e for e in events if e.action == "gate_overridden")
            item_overrides = {e.item_key: e for e in events if e.action == OVERRIDE_ACTION and e.item_key}
        else:
            overrides = tuple(uow.audit.for_release(release_id, actions=("gate_overridden",)))
        pending = uow.timers.pending(release_id)
        return ReleaseView(
            release=record,
            checklist=checklist,
            steps=flow.plan_steps(checklist),
            items=uow.items.states(release_id),
            messages=tuple(uow.messages.for_release(release_id)),
            overrides=overrides,
            next_timer=pending[0] if pending else None,
            evidence=evidence,
            item_overrides=item_overrides,
            evidence_on=self.evidence_on,
            traffic=None if checklist.traffic.is_manual else TrafficStates(uow.session).get(release_id),
            gate_window=uow.watch.releases.gate_window(release_id),
            metrics_on=self.metrics_on,
            resources=_resources(uow, release_id, checklist),
            named=self.checklists is not None and len(self.checklists) > 1,
        )

    def view(self, release_id: int) -> ReleaseView:
        with self._read() as uow:
            return self.view_in(uow, release_id)

    def views(self, release_ids: Sequence[int]) -> dict[int, ReleaseView]:
        """The views of several releases, read in one unit of work; a release gone meanwhile is left out."""
        found: dict[int, ReleaseView] = {}
        with self._read() as uow:
            for release_id in release_ids:
                try:
                    found[release_id] = self.view_in(uow, release_id)
                except NotFound:
                    continue
        return found

    def samples(self, release_id: int, since: datetime, until: datetime) -> list[SampleRecord]:
        """The metric samples of a release taken in [since, until], oldest first (for charts)."""
        with self._read() as uow:
            return samples_between(uow.session, release_id, since, until)

    def message_view(self, message_id: int) -> tuple[MessageRecord, ReleaseView]:
        with self._read() as uow:
            message = uow.messages.get(message_id)
            return message, self.view_in(uow, message.release_id)

    def mark_synced(self, message_id: int, rev: int) -> int:
        """Record what Slack shows; return the message's current content revision."""
        with self._uow() as uow:
            uow.messages.mark_synced(message_id, rev, self._clock.now())
            current = uow.messages.get(message_id).content_rev
            uow.commit()
            return current

    def unposted(self) -> list[tuple[int, int]]:
        """(release id, message id) of messages Slack never got and nobody is posting, oldest first."""
        with self._read() as uow:
            lapsed = self._clock.now() - POST_CLAIM_LEASE
            return [(m.release_id, m.id) for m in uow.messages.unposted(lapsed)]

    def unpublished(self) -> list[int]:
        """Releases whose publish a dead process left undone, oldest first (see Releases.unpublished)."""
        with self._read() as uow:
            return uow.releases.unpublished(self._clock.now() - POST_CLAIM_LEASE)

    def claim_post(self, message_id: int, owner: str, *, leader_only: bool = False) -> bool:
        """Whether ``owner`` may post this message now (and holds it for another lease if so).

        It touches the one row: a click's transaction locks the release, then its messages, so a claim that
        locked several messages could deadlock with one on Postgres. ``leader_only`` (the repair sweep's claims):
        fenced by the leadership epoch, ``NotLeader`` once this process no longer leads.
        """
        now = self._clock.now()
        with self._uow() as uow:
            if leader_only:
                uow.leader_only()
            claimed = uow.messages.claim(message_id, owner, now, now - POST_CLAIM_LEASE)
            uow.commit()
            return claimed

    def drop_post_claims(self, message_ids: Sequence[int], owner: str) -> None:
        """Slack would not take the post: leave the messages to the repair sweep."""
        with self._uow() as uow:
            uow.messages.drop_claims(message_ids, owner)
            uow.commit()

    def out_of_sync(self) -> list[int]:
        with self._read() as uow:
            return [m.id for m in uow.messages.out_of_sync()]

    def find(self, channel_id: str, version: str | None, service: str | None = None) -> ReleaseView:
        """The release a command names: by version (and service) in this channel, else the channel's active one.

        Where several services released the version here, the one active release is meant; with none or
        several active, the command must name the service (``UsageError("version_ambiguous")``). Naming nothing
        where several services have a release running is ``UsageError("active_ambiguous")``."""
        with self._read() as uow:
            if version:
                # Only this channel's releases: a command never reaches into another channel's release.
                record = self._of_version(uow, channel_id, version, service)
            else:
                recent = uow.releases.recent(channel_id=channel_id, limit=20)
                active = [
                    r for r in recent if r.status == ReleaseStatus.ACTIVE and service in (None, r.service)
                ]
                if not active:
                    raise NotFound("no_active_release")
                if len({r.service for r in active}) > 1:
                    # Several services' releases run here: the newest is not necessarily the one meant, and an
                    # abort or a recorded rollback of the wrong one would stop a healthy release.
                    raise UsageError(
                        "active_ambiguous",
                        params={
                            "services": ", ".join(f"`{r.service}`" for r in active),
                            "example": f"{active[0].service} {active[0].version}",
                        },
                    )
                record = active[0]
            return self.view_in(uow, record.id)

    @staticmethod
    def _of_version(uow: SqlUnitOfWork, channel_id: str, version: str, service: str | None) -> ReleaseRecord:
        if service is not None:
            record = uow.releases.latest(version, channel_id=channel_id, service=service)
            if record is None:
                raise NotFound("version_not_found", params={"version": f"{service} {version}"})
            return record
        found = uow.releases.of_version(version, channel_id)
        if not found:
            raise NotFound("version_not_found", params={"version": version})
        active = [r for r in found if r.status == ReleaseStatus.ACTIVE]
        if len(found) == 1 or len(active) == 1:
            return active[0] if active else found[0]
        services = ", ".join(f"`{r.service}`" for r in found)
        example = f"{found[0].service} {version}"
        raise UsageError(
            "version_ambiguous", params={"version": version, "services": services, "example": example}
        )

    def recent(self, channel_id: str | None, limit: int = 10) -> list[ReleaseRecord]:
        with self._read() as uow:
            return uow.releases.recent(channel_id=channel_id, limit=limit)

    def recent_views(self, channel_id: str | None, limit: int = 10) -> list[ReleaseView]:
        """The most recent releases, drawn from one read transaction (``/release list`` answers in its ack)."""
        with self._read() as uow:
            return [self.view_in(uow, r.id) for r in uow.releases.recent(channel_id=channel_id, limit=limit)]

    def audit_trail(self, version: str, service: str | None = None) -> tuple[ReleaseRecord, list[AuditEvent]]:
        """The audit trail of a version's latest release (of ``service``, where several release that version)."""
        with self._read() as uow:
            record = uow.releases.latest(version, service=service)
            if record is None:
                raise NotFound("version_not_found", params={"version": version})
            return record, uow.audit.for_release(record.id)

    # --- starting --------------------------------------------------------------------------------------

    def start_release(
        self,
        *,
        channel_id: str,
        version: str,
        actor: Actor,
        delivery: tuple[str, str] | None = None,
        service: str | None = None,
        checklist: Checklist | None = None,
    ) -> ReleaseView:
        """Create a release and its message slots; refuse a second active one of the service's version here.

        The checklist is ``checklist`` when the caller chose it (a tag push), else the one of ``service`` that
        serves this channel, else the one the channel runs (``ChecklistSet.resolve``).
        ``delivery`` is the (GUID, event) of the GitHub webhook that asked for it: recorded in the same transaction,
        so that a redelivery finds it and starts nothing (``Conflict("delivery_seen")``)."""
        version = flow.validate_version(version)
        chosen = checklist or self.catalog.resolve(channel_id, service, version)
        if delivery is None:
            # A verified tag push is authorized by the repository (who may push its release tags), not by
            # RELEASE_MANAGERS; anything asked in Slack is.
            self.permissions.require(None, actor, Action.START, service=chosen.service)
        try:
            return self._start(channel_id, version, actor, delivery, chosen)
        except DuplicateKey:
            # Two starts raced (Postgres lets both read "none active"): the unique active key decided.
            with self._read() as uow:
                existing = uow.releases.find_active(channel_id, chosen.service, version)
            if existing is None:
                raise
            raise _exists(version, existing) from None

    def _start(
        self,
        channel_id: str,
        version: str,
        actor: Actor,
        delivery: tuple[str, str] | None,
        checklist: Checklist,
    ) -> ReleaseView:
        now = self._clock.now()
        with self._uow() as uow:
            if delivery is not None and uow.deliveries.seen(delivery[0]):
                raise Conflict("delivery_seen")
            existing = uow.releases.find_active(channel_id, checklist.service, version)
            if existing is not None:
                raise _exists(version, existing)
            lock = uow.locks.active(checklist.service)
            if lock is not None:
                locked_by = uow.releases.get(lock.release_id)
                raise Locked(
                    "service_locked",
                    params={"service": lock.service, "version": locked_by.version, "reason": lock.reason},
                )
            steps = flow.plan_steps(checklist)
            record = uow.releases.add(
                version=version,
                channel_id=channel_id,
                service=checklist.service,
                checklist_name=checklist.name,
                checklist_source=self.catalog.text_of(checklist.service),
                checklist_version=checklist.version,
                status=ReleaseStatus.ACTIVE.value,
                step=steps[0].key,
                step_started_at=now,
                step_started_by=actor.id,
                active_key=active_key(channel_id, checklist.service, version),
                started_by=actor.id,
                started_by_name=actor.name,
                started_at=now,
                last_activity_at=now,
            )
            uow.audit.append(
                record.id,
                "release_started",
                actor,
                now,
                details={
                    "version": version,
                    "channel": channel_id,
                    "checklist": checklist.name,
                    "service": checklist.service,
                }
                | ({"github_delivery": delivery[0]} if delivery else {}),
            )
            if delivery is not None:
                uow.deliveries.record(delivery[0], delivery[1], now, record.id)
            uow.commit()
            return self.view_in(uow, record.id)

    def first_delivery(self, delivery_id: str, event: str, release_id: int | None) -> bool:
        """Record a GitHub delivery acted on; False when it was recorded before (a redelivery)."""
        try:
            with self._uow() as uow:
                if uow.deliveries.seen(delivery_id):
                    return False
                uow.deliveries.record(delivery_id, event, self._clock.now(), release_id)
                uow.commit()
                return True
        except DuplicateKey:
            return False  # the same delivery, handled at once by another replica

    def add_messages(
        self,
        release_id: int,
        slots: Sequence[tuple[str, int]],
        channel_id: str,
        *,
        posting_by: str,
        leader_only: bool = False,
    ) -> ReleaseView | None:
        """Reserve the message rows a release is drawn in, claimed by ``posting_by``, who posts them next.

        None when they were reserved already: another publish of the release got there first. ``leader_only``
        (the repair sweep): fenced by the leadership epoch, ``NotLeader`` once this process no longer leads.
        """
        now = self._clock.now()
        try:
            with self._uow() as uow:
                if leader_only:
                    uow.leader_only()
                for kind, page in slots:
                    uow.messages.add(release_id, kind, page, channel_id, posting_by=posting_by, at=now)
                uow.commit()
                return self.view_in(uow, release_id)
        except DuplicateKey:
            return None

    def message_posted(self, message_id: int, ts: str, rendered_rev: int, *, thread: bool = False) -> bool:
        """Record where Slack put a message; True when it changed after it was drawn (a click while posting)."""
        with self._uow() as uow:
            message = uow.messages.get(message_id)
            uow.messages.set_ts(message_id, ts, rendered_rev, self._clock.now())
            if thread:
                uow.releases.update(message.release_id, thread_ts=ts)
            uow.commit()
            return message.content_rev > rendered_rev

    def discard_release(self, release_id: int) -> None:
        """Remove a release that could not be posted at all, so nothing half-created is left behind."""
        with self._uow() as uow:
            uow.releases.delete(release_id)
            uow.commit()

    # --- ticking ---------------------------------------------------------------------------------------

    def toggle_items(self, cmd: ToggleItems) -> ToggleResult:
        """Apply each change as a set operation; record only real changes; never trust the clicker's view."""
        now = self._clock.now()
        with self._uow() as uow:
            record = uow.releases.get(cmd.release_id, for_update=True)
            message = uow.messages.get(cmd.message_id)
            # Slack shows a message before the bot hears where it went: until its ts is recorded, a click on it
            # (signed by Slack, naming this message's own block) cannot be checked against it and is taken.
            if (
                message.release_id != record.id
                or message.channel_id != cmd.channel_id
                or (message.ts is not None and message.ts != cmd.message_ts)
            ):
                raise PermissionDenied("forged_action")
            checklist = self.checklist_of(uow, record.id, record.checklist_name)
            followup = checklist.followup_phase
            # The rollback follow-up is the one checklist that lives on after its release ended.
            followup_open = (
                record.status == ReleaseStatus.ROLLED_BACK.value
                and message.kind == "followup"
                and followup is not None
            )
            if ReleaseStatus(record.status).is_terminal and not followup_open:
                raise InvalidTransition("release_ended", params={"status": record.status})
            changed: list[str] = []
            for item_key, checked in cmd.changes:
                try:
                    phase = checklist.item_phase(item_key)
                except KeyError:
                    raise NotFound("unknown_item") from None
                if phase.tick_role.value == "release_managers" and not self.permissions.is_manager(
                    cmd.actor.id, record.service
                ):
                    self.permissions.record_refusal(uow, record.id, cmd.actor, Action.TICK, item_key)
                    uow.commit()
                    raise PermissionDenied(denial(Action.TICK))
                if checked and checklist.item(item_key).evidence:
                    self._refuse_failing(uow, record.id, item_key, checklist)
                if uow.items.set(record.id, item_key, checked, cmd.actor, now):
                    uow.audit.append(
                        record.id,
                        "item_checked" if checked else "item_unchecked",
                        cmd.actor,
                        now,
                        item_key=item_key,
                        details={"text": checklist.item(item_key).text},
                        slack_action_ts=cmd.action_ts,
                    )
                    changed.append(item_key)
            dirty: list[int] = []
            if changed:
                uow.releases.update(record.id, last_activity_at=now)
                # Only the ticked message: the header shows no tick counts (bot.slack.blocks.render_header).
                dirty = [cmd.message_id]
                uow.messages.bump(dirty)
            uow.commit()
            return ToggleResult(tuple(changed), tuple(dirty))


    @staticmethod
    def _refuse_failing(uow: SqlUnitOfWork, release_id: int, item_key: str, checklist: Checklist) -> None:
        """An item whose evidence fails is ticked only through an override, with a reason."""
        result = uow.evidence.get(release_id, item_key)
        if result is None or result.status is not EvidenceStatus.FAILED:
            return
        if any(e.item_key == item_key for e in uow.audit.for_release(release_id, actions=(OVERRIDE_ACTION,))):
            return
        raise InvalidTransition("evidence_failing", params={"item": checklist.item(item_key).text})
