"""The unit of work and its repositories: the only place where rows and records meet.

Services use ``with uow_factory() as uow: ...; uow.commit()``. Leaving the block without ``commit()`` rolls back.
Repositories never commit.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Self

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, SessionTransaction, sessionmaker

from bot.db import leadership
from bot.db.models import (
    AuditEventRow,
    EvidenceResultRow,
    GitHubDeliveryRow,
    ItemStateRow,
    MessageRow,
    ReleaseRow,
    TimerRow,
)
from bot.db.rollback_repos import Rollbacks, ServiceLocks
from bot.db.watch_repos import WatchRepositories
from bot.domain.evidence import EvidencePart, EvidenceResult, EvidenceStatus
from bot.domain.leadership import Term
from bot.domain.records import (
    Actor,
    AuditEvent,
    ItemState,
    MessageRecord,
    ReleaseRecord,
    TimerRecord,
)
from bot.domain.release import ReleaseStatus
from bot.errors import NotFound, NotLeader


def active_key(channel_id: str, service: str, version: str) -> str:
    """The unique key of an active release: one per channel, service and version."""
    return f"{channel_id}:{service}:{version}"


def _release(row: ReleaseRow) -> ReleaseRecord:
    return ReleaseRecord(
        id=row.id,
        version=row.version,
        channel_id=row.channel_id,
        service=row.service,
        checklist_name=row.checklist_name,
        status=row.status,
        step=row.step,
        step_started_at=row.step_started_at,
        step_started_by=row.step_started_by,
        started_by=Actor(row.started_by, row.started_by_name),
        started_at=row.started_at,
        ended_at=row.ended_at,
        thread_ts=row.thread_ts,
        baseline_p95_s=row.baseline_p95_s,
        last_activity_at=row.last_activity_at,
        checklist_version=row.checklist_version,
    )


def _message(row: MessageRow) -> MessageRecord:
    return MessageRecord(
        row.id, row.release_id, row.kind, row.page, row.channel_id, row.ts, row.content_rev, row.synced_rev
    )


def _timer(row: TimerRow) -> TimerRecord:
    return TimerRecord(
        row.id,
        row.release_id,
        row.kind,
        row.key,
        row.due_at,
        row.status,
        dict(row.payload),
        row.fired_at,
        row.claimed_by,
    )


class Releases:
    def __init__(self, session: Session) -> None:
        self._s = session

    def add(self, **values: Any) -> ReleaseRecord:
        row = ReleaseRow(**values)
        self._s.add(row)
        self._s.flush()
        return _release(row)

    def get(self, release_id: int, *, for_update: bool = False) -> ReleaseRecord:
        return _release(self._row(release_id, for_update=for_update))

    def _row(self, release_id: int, *, for_update: bool = False) -> ReleaseRow:
        stmt = select(ReleaseRow).where(ReleaseRow.id == release_id)
        if for_update:
            stmt = stmt.with_for_update()
        row = self._s.scalars(stmt).one_or_none()
        if row is None:
            raise NotFound("release_not_found")
        return row

    def checklist_source(self, release_id: int) -> str:
        source = self._s.scalar(select(ReleaseRow.checklist_source).where(ReleaseRow.id == release_id))
        if source is None:
            raise NotFound("release_not_found")
        return source

    def find_active(self, channel_id: str, service: str, version: str) -> ReleaseRecord | None:
        row = self._s.scalars(
            select(ReleaseRow).where(ReleaseRow.active_key == active_key(channel_id, service, version))
        ).first()
        return _release(row) if row else None

    def unpublished(self, lapsed_before: datetime, limit: int = 20) -> list[int]:
        """Active releases started before ``lapsed_before`` whose header never reached Slack, and whose header
        nobody is posting: the process that meant to publish them died (or its queue held them that long)."""
        live_header = (
            select(MessageRow.id)
            .where(
                MessageRow.release_id == ReleaseRow.id,
                MessageRow.kind == "header",
                MessageRow.posting_by.is_not(None),
                MessageRow.posting_since >= lapsed_before,
            )
            .exists()
        )
        stmt = (
            select(ReleaseRow.id)
            .where(
                ReleaseRow.status == ReleaseStatus.ACTIVE.value,
                ReleaseRow.thread_ts.is_(None),
                ReleaseRow.started_at < lapsed_before,
                ~live_header,
            )
            .order_by(ReleaseRow.id)
            .limit(limit)
        )
        return list(self._s.scalars(stmt))

    def latest(
        self, version: str, *, channel_id: str | None = None, service: str | None = None
    ) -> ReleaseRecord | None:
        """The most recent release of a version: the active one first, else the newest."""
        stmt = select(ReleaseRow).where(ReleaseRow.version == version)
        if channel_id is not None:
            stmt = stmt.where(ReleaseRow.channel_id == channel_id)
        if service is not None:
            stmt = stmt.where(ReleaseRow.service == service)
        stmt = stmt.order_by((ReleaseRow.status == ReleaseStatus.ACTIVE.value).desc(), ReleaseRow.id.desc())
        row = self._s.scalars(stmt.limit(1)).first()
        return _release(row) if row else None

    def of_version(self, version: str, channel_id: str) -> list[ReleaseRecord]:
        """Each service's latest release of ``version`` in the channel (active first, then newest)."""
        stmt = (
            select(ReleaseRow)
            .where(ReleaseRow.version == version, ReleaseRow.channel_id == channel_id)
            .order_by((ReleaseRow.status == ReleaseStatus.ACTIVE.value).desc(), ReleaseRow.id.desc())
        )
        latest: dict[str, ReleaseRecord] = {}
        for row in self._s.scalars(stmt.limit(50)):
            latest.setdefault(row.service, _release(row))
        return list(latest.values())

    def recent(
        self, *, channel_id: str | None = None, limit: int = 10, channel_ids: Collection[str] | None = None
    ) -> list[ReleaseRecord]:
        stmt = select(ReleaseRow)
        if channel_id is not None:
            stmt = stmt.where(ReleaseRow.channel_id == channel_id)
        if channel_ids is not None:
            stmt = stmt.where(ReleaseRow.channel_id.in_(list(channel_ids)))
        stmt = stmt.order_by((ReleaseRow.status == ReleaseStatus.ACTIVE.value).desc(), ReleaseRow.id.desc())
        return [_release(r) for r in self._s.scalars(stmt.limit(limit))]

    def active(
        self, *, limit: int | None = None, channel_ids: Collection[str] | None = None
    ) -> list[ReleaseRecord]:
        stmt = (
            select(ReleaseRow).where(ReleaseRow.status == ReleaseStatus.ACTIVE.value).order_by(ReleaseRow.id)
        )
        if channel_ids is not None:
            stmt = stmt.where(ReleaseRow.channel_id.in_(list(channel_ids)))
        return [_release(r) for r in self._s.scalars(stmt.limit(limit))]

    def channels(self) -> list[str]:
        """Every channel that has had a release."""
        return list(self._s.scalars(select(ReleaseRow.channel_id).distinct()))

    def update(self, release_id: int, **values: Any) -> None:
        self._s.execute(update(ReleaseRow).where(ReleaseRow.id == release_id).values(**values))

    def end(self, release_id: int, status: ReleaseStatus, at: datetime) -> None:
        self.update(release_id, status=status.value, active_key=None, ended_at=at, last_activity_at=at)

    def delete(self, release_id: int) -> None:
        for model in (AuditEventRow, ItemStateRow, MessageRow, TimerRow, EvidenceResultRow):
            self._s.execute(delete(model).where(model.release_id == release_id))
        self._s.execute(delete(ReleaseRow).where(ReleaseRow.id == release_id))


class Items:
    def __init__(self, session: Session) -> None:
        self._s = session

    def states(self, release_id: int) -> dict[str, ItemState]:
        rows = self._s.scalars(select(ItemStateRow).where(ItemStateRow.release_id == release_id))
        return {
            r.item_key: ItemState(r.item_key, r.checked, Actor(r.actor_id, r.actor_name), r.at) for r in rows
        }

    def set(self, release_id: int, item_key: str, checked: bool, actor: Actor, at: datetime) -> bool:
        """Set an item; return False when it already had that state (set semantics: nothing to record)."""
        row = self._s.get(ItemStateRow, (release_id, item_key))
        if row is None:
            if not checked:
                return False
            self._s.add(
                ItemStateRow(
                    release_id=release_id,
                    item_key=item_key,
                    checked=True,
                    actor_id=actor.id,
                    actor_name=actor.name,
                    at=at,
                )
            )
            self._s.flush()
            return True
        if row.checked == checked:
            return False
        row.checked, row.actor_id, row.actor_name, row.at = checked, actor.id, actor.name, at
        self._s.flush()
        return True


class Audit:
    def __init__(self, session: Session) -> None:
        self._s = session

    def append(
        self,
        release_id: int,
        action: str,
        actor: Actor,
        at: datetime,
        *,
        item_key: str | None = None,
        details: dict[str, Any] | None = None,
        slack_action_ts: str | None = None,
    ) -> None:
        self._s.add(
            AuditEventRow(
                release_id=release_id,
                at=at,
                actor_id=actor.id,
                actor_name=actor.name,
                action=action,
                item_key=item_key,
                details=details or {},
                slack_action_ts=slack_action_ts,
            )
        )
        self._s.flush()

    def for_release(self, release_id: int, *, actions: Sequence[str] | None = None) -> list[AuditEvent]:
        stmt = select(AuditEventRow).where(AuditEventRow.release_id == release_id).order_by(AuditEventRow.id)
        if actions is not None:
            stmt = stmt.where(AuditEventRow.action.in_(list(actions)))
        return [
            AuditEvent(
                r.id,
                r.release_id,
                r.at,
                Actor(r.actor_id, r.actor_name),
                r.action,
                r.item_key,
                dict(r.details or {}),
                r.slack_action_ts,
            )
            for r in self._s.scalars(stmt)
        ]

    def count(self, release_id: int) -> int:
        stmt = select(func.count()).select_from(AuditEventRow).where(AuditEventRow.release_id == release_id)
        return int(self._s.scalar(stmt) or 0)


class Messages:
    def __init__(self, session: Session) -> None:
        self._s = session

    def add(
        self, release_id: int, kind: str, page: int, channel_id: str, *, posting_by: str, at: datetime
    ) -> MessageRecord:
        row = MessageRow(
            release_id=release_id,
            kind=kind,
            page=page,
            channel_id=channel_id,
            content_rev=1,
            synced_rev=0,
            posting_by=posting_by,
            posting_since=at,
        )
        self._s.add(row)
        self._s.flush()
        return _message(row)

    def get(self, message_id: int) -> MessageRecord:
        row = self._s.get(MessageRow, message_id)
        if row is None:
            raise NotFound("message_not_found")
        return _message(row)

    def for_release(self, release_id: int) -> list[MessageRecord]:
        stmt = select(MessageRow).where(MessageRow.release_id == release_id).order_by(MessageRow.id)
        return [_message(r) for r in self._s.scalars(stmt)]

    def set_ts(self, message_id: int, ts: str, synced_rev: int, at: datetime) -> None:
        self._s.execute(
            update(MessageRow)
            .where(MessageRow.id == message_id)
            .values(ts=ts, synced_rev=synced_rev, synced_at=at, posting_by=None, posting_since=None)
        )

    def claim(self, message_id: int, owner: str, at: datetime, lapsed_before: datetime) -> bool:
        """Take the right to post an unposted message: it is unclaimed, already ``owner``'s, or its claim lapsed.

        One conditional UPDATE, so the database decides between two replicas: on Postgres the second waits for
        the first's row lock and re-reads the row, on SQLite writers take turns.
        """
        claimed = self._s.execute(
            update(MessageRow)
            .where(
                MessageRow.id == message_id,
                MessageRow.ts.is_(None),
                or_(
                    MessageRow.posting_by.is_(None),
                    MessageRow.posting_by == owner,
                    MessageRow.posting_since < lapsed_before,
                ),
            )
            .values(posting_by=owner, posting_since=at)
        )
        return bool(getattr(claimed, "rowcount", 0))

    def drop_claims(self, message_ids: Sequence[int], owner: str) -> None:
        self._s.execute(
            update(MessageRow)
            .where(MessageRow.id.in_(message_ids), MessageRow.posting_by == owner)
            .values(posting_by=None, posting_since=None)
        )

    def bump(self, message_ids: Iterable[int]) -> None:
        ids = list(message_ids)
        if ids:
            self._s.execute(
                update(MessageRow)
                .where(MessageRow.id.in_(ids))
                .values(content_rev=MessageRow.content_rev + 1)
            )

    def bump_releases(self, release_ids: Collection[int], kinds: Sequence[str]) -> None:
        """``bump_release`` of many releases in one statement."""
        if release_ids:
            self._s.execute(
                update(MessageRow)
                .where(MessageRow.release_id.in_(list(release_ids)), MessageRow.kind.in_(list(kinds)))
                .values(content_rev=MessageRow.content_rev + 1)
            )

    def bump_release(self, release_id: int, kinds: Sequence[str] | None = None) -> list[int]:
        stmt = select(MessageRow.id).where(MessageRow.release_id == release_id)
        if kinds is not None:
            stmt = stmt.where(MessageRow.kind.in_(list(kinds)))
        ids = list(self._s.scalars(stmt))
        self.bump(ids)
        return ids

    def mark_synced(self, message_id: int, rev: int, at: datetime) -> None:
        # Never move synced_rev backwards: a slower writer of an older render must not hide a newer change.
        self._s.execute(
            update(MessageRow)
            .where(MessageRow.id == message_id, MessageRow.synced_rev < rev)
            .values(synced_rev=rev, synced_at=at)
        )

    def unposted(self, lapsed_before: datetime, limit: int = 50) -> list[MessageRecord]:
        """Messages reserved for a release whose header is in Slack, but which were never posted themselves.

        Only messages nobody is posting: unclaimed, or claimed before ``lapsed_before`` by a process that died.
        """
        stmt = (
            select(MessageRow)
            .join(ReleaseRow, ReleaseRow.id == MessageRow.release_id)
            .where(
                MessageRow.ts.is_(None),
                ReleaseRow.thread_ts.is_not(None),
                or_(MessageRow.posting_by.is_(None), MessageRow.posting_since < lapsed_before),
            )
            .order_by(MessageRow.id)
            .limit(limit)
        )
        return [_message(r) for r in self._s.scalars(stmt)]

    def out_of_sync(self, limit: int = 200) -> list[MessageRecord]:
        stmt = (
            select(MessageRow)
            .where(MessageRow.ts.is_not(None), MessageRow.synced_rev < MessageRow.content_rev)
            .order_by(MessageRow.id)
            .limit(limit)
        )
        return [_message(r) for r in self._s.scalars(stmt)]


class Timers:
    def __init__(self, session: Session) -> None:
        self._s = session

    def schedule(
        self, release_id: int, kind: str, key: str, due_at: datetime, payload: dict[str, Any] | None = None
    ) -> bool:
        """Create a pending timer unless one with this key exists; return whether it was created."""
        if self._s.scalars(select(TimerRow.id).where(TimerRow.key == key)).first() is not None:
            return False
        self._s.add(
            TimerRow(
                release_id=release_id,
                kind=kind,
                key=key,
                due_at=due_at,
                status="pending",
                payload=payload or {},
            )
        )
        self._s.flush()
        return True

    def cancel_pending(self, release_id: int, kinds: Sequence[str] | None = None) -> int:
        stmt = update(TimerRow).where(TimerRow.release_id == release_id, TimerRow.status == "pending")
        if kinds is not None:
            stmt = stmt.where(TimerRow.kind.in_(list(kinds)))
        result = self._s.execute(stmt.values(status="cancelled"))
        return int(getattr(result, "rowcount", 0) or 0)

    def pending(self, release_id: int | None = None) -> list[TimerRecord]:
        stmt = select(TimerRow).where(TimerRow.status == "pending")
        if release_id is not None:
            stmt = stmt.where(TimerRow.release_id == release_id)
        return [_timer(r) for r in self._s.scalars(stmt.order_by(TimerRow.due_at))]

    def due(self, now: datetime, limit: int = 50) -> list[TimerRecord]:
        stmt = (
            select(TimerRow)
            .where(TimerRow.status == "pending", TimerRow.due_at <= now)
            .order_by(TimerRow.due_at)
            .limit(limit)
        )
        return [_timer(r) for r in self._s.scalars(stmt)]

    def due_by_channel(
        self, now: datetime, limit: int, skip_channels: Collection[str] = (), per_channel: int = 1
    ) -> list[tuple[str, list[TimerRecord]]]:
        """Up to ``limit`` channels, none in ``skip_channels``, each with its pending timers due by ``now`` (at most
        ``per_channel``, earliest first); the channel whose earliest is due first comes first."""
        stmt = (
            select(TimerRow, ReleaseRow.channel_id)
            .join(ReleaseRow, ReleaseRow.id == TimerRow.release_id)
            .where(TimerRow.status == "pending", TimerRow.due_at <= now)
        )
        if skip_channels:
            stmt = stmt.where(ReleaseRow.channel_id.not_in(sorted(skip_channels)))
        # A few more rows than wanted: a channel's rows beyond ``per_channel`` are dropped below (the next pass,
        # with that channel busy, finds the other channels' first).
        rows = self._s.execute(stmt.order_by(TimerRow.due_at, TimerRow.id).limit(limit * max(per_channel, 4)))
        out: dict[str, list[TimerRecord]] = {}
        for row, channel in rows:
            if channel in out:
                if len(out[channel]) < per_channel:
                    out[channel].append(_timer(row))
            elif len(out) < limit:
                out[channel] = [_timer(row)]
        return list(out.items())

    def next_due(self, skip_channels: Collection[str] = ()) -> datetime | None:
        stmt = select(func.min(TimerRow.due_at)).where(TimerRow.status == "pending")
        if skip_channels:
            stmt = stmt.join(ReleaseRow, ReleaseRow.id == TimerRow.release_id).where(
                ReleaseRow.channel_id.not_in(sorted(skip_channels))
            )
        return self._s.scalar(stmt)

    def claim(self, timer_id: int, worker: str, now: datetime) -> bool:
        """Move a pending timer to firing; only one process can win this UPDATE."""
        result = self._s.execute(
            update(TimerRow)
            .where(TimerRow.id == timer_id, TimerRow.status == "pending")
            .values(status="firing", claimed_by=worker, claimed_at=now)
        )
        return bool(getattr(result, "rowcount", 0))

    def finish(self, timer_id: int, now: datetime) -> None:
        self._s.execute(update(TimerRow).where(TimerRow.id == timer_id).values(status="fired", fired_at=now))

    def interrupted(self, worker: str | None = None) -> list[TimerRecord]:
        """Timers claimed but not finished (all of them, or those of one worker)."""
        stmt = select(TimerRow).where(TimerRow.status == "firing")
        if worker is not None:
            stmt = stmt.where(TimerRow.claimed_by == worker)
        return [_timer(r) for r in self._s.scalars(stmt.order_by(TimerRow.due_at))]

    def get(self, timer_id: int) -> TimerRecord:
        row = self._s.get(TimerRow, timer_id)
        if row is None:
            raise NotFound("timer_not_found")
        return _timer(row)


class Evidence:
    """The latest evidence result of each item of a release."""

    def __init__(self, session: Session) -> None:
        self._s = session

    def for_release(self, release_id: int) -> dict[str, EvidenceResult]:
        rows = self._s.scalars(select(EvidenceResultRow).where(EvidenceResultRow.release_id == release_id))
        return {r.item_key: _evidence(r) for r in rows}

    def get(self, release_id: int, item_key: str) -> EvidenceResult | None:
        row = self._s.get(EvidenceResultRow, (release_id, item_key))
        return _evidence(row) if row is not None else None

    def put(self, release_id: int, result: EvidenceResult) -> None:
        parts = [p.to_dict() for p in result.parts]
        row = self._s.get(EvidenceResultRow, (release_id, result.item_key))
        if row is None:
            self._s.add(
                EvidenceResultRow(
                    release_id=release_id,
                    item_key=result.item_key,
                    status=result.status.value,
                    parts=parts,
                    evaluated_at=result.at,
                )
            )
        else:
            row.status, row.parts, row.evaluated_at = result.status.value, parts, result.at
        self._s.flush()


def _evidence(row: EvidenceResultRow) -> EvidenceResult:
    return EvidenceResult(
        row.item_key,
        EvidenceStatus(row.status),
        tuple(EvidencePart.from_dict(p) for p in row.parts or []),
        row.evaluated_at,
    )


class Deliveries:
    """GitHub webhook deliveries already acted on, by their GUID."""

    def __init__(self, session: Session) -> None:
        self._s = session

    def seen(self, delivery_id: str) -> bool:
        return self._s.get(GitHubDeliveryRow, delivery_id) is not None

    def record(self, delivery_id: str, event: str, at: datetime, release_id: int | None = None) -> None:
        """Record a delivery in the caller's transaction; a second record of the same GUID breaks the key
        (``DuplicateKey`` when the unit of work ends), so that two deliveries racing act once."""
        self._s.add(
            GitHubDeliveryRow(delivery_id=delivery_id, event=event, release_id=release_id, received_at=at)
        )
        self._s.flush()


class DuplicateKey(Exception):
    """A write broke a unique constraint: someone else wrote the same key first.

    Raised in place of the driver's ``IntegrityError`` when it leaves a unit of work, so that use cases can tell a
    lost race from a failure without importing SQLAlchemy."""


class SqlUnitOfWork:
    """One transaction and the repositories that share it.

    ``term`` answers this process's leadership term while it believes it leads (``bot.runtime.leader``); without
    one, ``leader_only`` refuses."""

    def __init__(
        self, session_factory: sessionmaker[Session], *, term: Callable[[], Term | None] | None = None
    ) -> None:
        self._factory = session_factory
        self._term = term

    def __enter__(self) -> Self:
        self.session = self._factory()
        self.releases = Releases(self.session)
        self.items = Items(self.session)
        self.audit = Audit(self.session)
        self.messages = Messages(self.session)
        self.timers = Timers(self.session)
        self.rollbacks = Rollbacks(self.session)
        self.locks = ServiceLocks(self.session)
        self.watch = WatchRepositories(self.session)
        self.evidence = Evidence(self.session)
        self.deliveries = Deliveries(self.session)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.session.rollback()  # a no-op after commit()
        self.session.close()
        if isinstance(exc, IntegrityError):
            raise DuplicateKey(str(exc.orig)) from exc

    def leader_only(self) -> Term:
        """Fence a leader-only write: raise ``NotLeader`` unless this process's term still leads.

        Call it first in the transaction: the check holds until the transaction ends (``bot.db.leadership``), so
        what the transaction writes is accepted only if no other leader can have been elected meanwhile."""
        term = self._term() if self._term is not None else None
        if term is None:
            raise NotLeader("this process does not believe it leads")
        if not leadership.holds(self.session, term):
            raise NotLeader(f"epoch {term.epoch} no longer leads")
        return term

    def savepoint(self) -> SessionTransaction:
        """``with uow.savepoint(): ...``: what the block wrote is undone if it raises, and the rest of the
        transaction stands (one release's failure in a batch written for many)."""
        return self.session.begin_nested()

    def commit(self) -> None:
        self.session.commit()
