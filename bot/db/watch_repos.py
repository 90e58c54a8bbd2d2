"""Repositories of the metric watch, incidents and the PagerDuty outbox (rows ⇄ records; never commit)."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.db.models import (
    IncidentRow,
    MetricSampleRow,
    PagerOutboxRow,
    ReleaseRow,
    ReleaseWatchRow,
    WatchStateRow,
)
from bot.domain.incident import (
    PING_CLAIM,
    IncidentRecord,
    IncidentStatus,
    OutboxRecord,
    OutboxStatus,
    SampleRecord,
    WatchedRelease,
    WatchRef,
)
from bot.domain.release import ReleaseStatus
from bot.errors import NotFound


def _incident(row: IncidentRow) -> IncidentRecord:
    return IncidentRecord(
        id=row.id,
        release_id=row.release_id,
        criterion=row.criterion,
        dedup_key=row.dedup_key,
        status=IncidentStatus(row.status),
        declared_by=row.declared_by,
        declared_by_name=row.declared_by_name,
        reason=row.reason,
        value=row.value,
        threshold=row.threshold,
        baseline_p95_s=row.baseline_p95_s,
        stage=row.stage,
        fire_count=row.fire_count,
        channel_id=row.channel_id,
        slack_ts=row.slack_ts,
        details=dict(row.details or {}),
        created_at=row.created_at,
        updated_at=row.updated_at,
        handled_by=row.handled_by,
    )


def _outbox(row: PagerOutboxRow) -> OutboxRecord:
    return OutboxRecord(
        id=row.id,
        event_key=row.event_key,
        release_id=row.release_id,
        dedup_key=row.dedup_key,
        action=row.action,
        body=dict(row.body),
        status=OutboxStatus(row.status),
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        last_error=row.last_error,
        delivered_at=row.delivered_at,
    )


class ReleaseWatches:
    """Per-release bookkeeping of the watch."""

    def __init__(self, session: Session) -> None:
        self._s = session

    def get_or_create(self, release_id: int, now: datetime) -> ReleaseWatchRow:
        row = self._s.get(ReleaseWatchRow, release_id)
        if row is not None:
            return row
        # The watch job and a lifecycle hook may both see a release first; the loser reads the winner's row.
        try:
            with self._s.begin_nested():
                self._s.add(ReleaseWatchRow(release_id=release_id, created_at=now))
        except IntegrityError:
            pass
        row = self._s.get(ReleaseWatchRow, release_id)
        if row is None:
            # The insert lost to the release itself going away (a start dropped because Slack was down).
            raise NotFound(f"release {release_id} no longer exists")
        return row

    def refs(self) -> list[WatchRef]:
        """Every release the watch may still have work on: the active ones, and ended ones it has not closed."""
        stmt = (
            select(
                ReleaseRow.id,
                ReleaseRow.checklist_name,
                ReleaseRow.status,
                ReleaseRow.step,
                ReleaseWatchRow.announced_step,
                ReleaseWatchRow.baseline_status,
                ReleaseWatchRow.last_sample_at,
                ReleaseRow.step_started_at,
            )
            .outerjoin(ReleaseWatchRow, ReleaseWatchRow.release_id == ReleaseRow.id)
            .where(
                or_(
                    ReleaseRow.status == ReleaseStatus.ACTIVE.value,
                    ReleaseWatchRow.release_id.is_not(None) & ReleaseWatchRow.closed_at.is_(None),
                )
            )
            .order_by(ReleaseRow.id)
        )
        return [WatchRef(*row) for row in self._s.execute(stmt)]

    def gate_window(self, release_id: int) -> dict[str, Any] | None:
        """The stored figures of the gate over the current canary stage, if the watch has any."""
        row = self._s.get(ReleaseWatchRow, release_id)
        return dict(row.gate_window) if row is not None and row.gate_window else None

    def update(self, release_id: int, **values: Any) -> None:
        self._s.execute(
            update(ReleaseWatchRow).where(ReleaseWatchRow.release_id == release_id).values(**values)
        )

    # --- a batch of releases sampled together (``MetricWatch`` samples every due release in one transaction) ---

    def lock_watched(self, release_ids: Collection[int]) -> dict[int, WatchedRelease]:
        """The releases a sample writes for, locked until the transaction ends (one statement, in id order so
        that two lockers never wait on each other crosswise); a release gone since is left out."""
        if not release_ids:
            return {}
        stmt = (
            select(
                ReleaseRow.id,
                ReleaseRow.status,
                ReleaseRow.step,
                ReleaseRow.step_started_at,
                ReleaseRow.baseline_p95_s,
            )
            .where(ReleaseRow.id.in_(sorted(release_ids)))
            .order_by(ReleaseRow.id)
            .with_for_update()
        )
        return {row[0]: WatchedRelease(*row) for row in self._s.execute(stmt)}

    def gate_windows(self, release_ids: Collection[int]) -> dict[int, dict[str, Any] | None]:
        """``gate_window`` of each release that has a watch row."""
        if not release_ids:
            return {}
        stmt = select(ReleaseWatchRow.release_id, ReleaseWatchRow.gate_window).where(
            ReleaseWatchRow.release_id.in_(list(release_ids))
        )
        return {rid: dict(shown) if shown else None for rid, shown in self._s.execute(stmt)}

    def sampled(self, release_ids: Collection[int], at: datetime) -> None:
        if release_ids:
            self._s.execute(
                update(ReleaseWatchRow)
                .where(ReleaseWatchRow.release_id.in_(list(release_ids)))
                .values(last_sample_at=at)
            )

    def show_gate_windows(self, records: Mapping[int, dict[str, Any]]) -> None:
        """Store the gate figures each release's header shows now (one statement for them all)."""
        if records:
            self._s.execute(
                update(ReleaseWatchRow),
                [{"release_id": rid, "gate_window": record} for rid, record in records.items()],
            )


class WatchStates:
    """``CriterionWatch`` states, one JSON document per release and criterion."""

    def __init__(self, session: Session) -> None:
        self._s = session

    def load(self, release_id: int, *, for_update: bool = False) -> dict[str, dict[str, Any]]:
        stmt = select(WatchStateRow).where(WatchStateRow.release_id == release_id)
        if for_update:
            stmt = stmt.with_for_update()
        return {row.criterion: dict(row.state) for row in self._s.scalars(stmt)}

    def save(
        self, release_id: int, criterion: str, state: dict[str, Any], at: datetime, *, sampled: bool
    ) -> None:
        row = self._s.get(WatchStateRow, (release_id, criterion))
        if row is None:
            row = WatchStateRow(release_id=release_id, criterion=criterion, state=state, updated_at=at)
            self._s.add(row)
        row.state, row.updated_at = state, at
        if sampled:
            row.last_sample_at = at
        self._s.flush()

    def load_many(
        self, release_ids: Collection[int], *, for_update: bool = False
    ) -> dict[int, dict[str, dict[str, Any]]]:
        """``load`` of several releases in one statement: release id → criterion → state."""
        found: dict[int, dict[str, dict[str, Any]]] = {}
        if not release_ids:
            return found
        stmt = (
            select(WatchStateRow.release_id, WatchStateRow.criterion, WatchStateRow.state)
            .where(WatchStateRow.release_id.in_(sorted(release_ids)))
            .order_by(WatchStateRow.release_id, WatchStateRow.criterion)
        )
        if for_update:
            stmt = stmt.with_for_update()
        for rid, criterion, state in self._s.execute(stmt):
            found.setdefault(rid, {})[criterion] = dict(state)
        return found

    def save_sampled(
        self,
        states: Iterable[tuple[int, str, dict[str, Any]]],
        at: datetime,
        existing: Collection[tuple[int, str]],
    ) -> None:
        """Store criteria states judged at a sample ``at``: one UPDATE for the rows in ``existing`` (as
        ``load_many`` found them), one INSERT for the others."""
        changed: list[dict[str, Any]] = []
        added: list[dict[str, Any]] = []
        for rid, criterion, state in states:
            values = {
                "release_id": rid,
                "criterion": criterion,
                "state": state,
                "updated_at": at,
                "last_sample_at": at,
            }
            (changed if (rid, criterion) in existing else added).append(values)
        if changed:
            self._s.execute(update(WatchStateRow), changed)
        if added:
            self._s.execute(insert(WatchStateRow), added)


class MetricSamples:
    def __init__(self, session: Session) -> None:
        self._s = session

    def add(self, sample: SampleRecord) -> None:
        self._s.add(
            MetricSampleRow(
                release_id=sample.release_id,
                at=sample.at,
                metric=sample.metric,
                value=sample.value,
                verdict=sample.verdict,
                reason=(sample.reason or None) and sample.reason[:300],
            )
        )
        self._s.flush()

    def add_many(self, samples: Sequence[SampleRecord]) -> None:
        """Store many samples in one statement, in their order (ids follow it: ``latest`` goes by id)."""
        if samples:
            self._s.execute(
                insert(MetricSampleRow),
                [
                    {
                        "release_id": s.release_id,
                        "at": s.at,
                        "metric": s.metric,
                        "value": s.value,
                        "verdict": s.verdict,
                        "reason": (s.reason or None) and s.reason[:300],
                    }
                    for s in samples
                ],
            )

    def latest_of(
        self, release_ids: Collection[int], metrics: Collection[str]
    ) -> dict[tuple[int, str], float | None]:
        """The newest sample's value of each metric of each release, by (release id, metric); absent: none."""
        if not release_ids:
            return {}
        newest = (
            select(func.max(MetricSampleRow.id))
            .where(MetricSampleRow.release_id.in_(list(release_ids)), MetricSampleRow.metric.in_(list(metrics)))
            .group_by(MetricSampleRow.release_id, MetricSampleRow.metric)
        )
        stmt = select(MetricSampleRow.release_id, MetricSampleRow.metric, MetricSampleRow.value).where(
            MetricSampleRow.id.in_(newest)
        )
        return {(rid, metric): value for rid, metric, value in self._s.execute(stmt)}

    def stage_moments(
        self, release_ids: Collection[int], until: datetime, max_error_rate: float, max_p95_s: float
    ) -> dict[int, tuple[int, int]]:
        """Of each release's error-rate and p95 samples since its current step began, up to ``until``: (moments
        sampled, moments where a figure was at or over its line), counted by the database in one statement
        (``bot.domain.window.breached_samples`` over thousands of rows, which a stage of 200 releases holds).
        A release without samples is left out."""
        if not release_ids:
            return {}
        over = or_(
            (MetricSampleRow.metric == "error_rate") & (MetricSampleRow.value >= max_error_rate),
            (MetricSampleRow.metric == "p95") & (MetricSampleRow.value >= max_p95_s),
        )
        stmt = (
            select(
                MetricSampleRow.release_id,
                func.count(MetricSampleRow.at.distinct()),
                func.count(case((over, MetricSampleRow.at)).distinct()),
            )
            .join(ReleaseRow, ReleaseRow.id == MetricSampleRow.release_id)
            .where(
                MetricSampleRow.release_id.in_(list(release_ids)),
                MetricSampleRow.metric.in_(("error_rate", "p95")),
                MetricSampleRow.at >= ReleaseRow.step_started_at,
                MetricSampleRow.at <= until,
            )
            .group_by(MetricSampleRow.release_id)
        )
        return {rid: (int(moments), int(breached)) for rid, moments, breached in self._s.execute(stmt)}

    def latest(self, release_id: int, metric: str, limit: int = 1) -> list[SampleRecord]:
        """The newest samples of a metric, newest first."""
        stmt = (
            select(MetricSampleRow)
            .where(MetricSampleRow.release_id == release_id, MetricSampleRow.metric == metric)
            .order_by(MetricSampleRow.id.desc())
            .limit(limit)
        )
        return [
            SampleRecord(r.release_id, r.at, r.metric, r.value, r.verdict, r.reason)
            for r in self._s.scalars(stmt)
        ]

    def between(self, release_id: int, start: datetime, end: datetime) -> list[SampleRecord]:
        """Every sample of a release taken in ``[start, end]``, oldest first."""
        stmt = (
            select(MetricSampleRow)
            .where(
                MetricSampleRow.release_id == release_id,
                MetricSampleRow.at >= start,
                MetricSampleRow.at <= end,
            )
            .order_by(MetricSampleRow.id)
        )
        return [
            SampleRecord(r.release_id, r.at, r.metric, r.value, r.verdict, r.reason)
            for r in self._s.scalars(stmt)
        ]

    def count(self, release_id: int) -> int:
        stmt = (
            select(func.count()).select_from(MetricSampleRow).where(MetricSampleRow.release_id == release_id)
        )
        return int(self._s.scalar(stmt) or 0)


class Incidents:
    def __init__(self, session: Session) -> None:
        self._s = session

    def _row(self, incident_id: int, *, for_update: bool = False) -> IncidentRow:
        stmt = select(IncidentRow).where(IncidentRow.id == incident_id)
        if for_update:
            stmt = stmt.with_for_update()
        row = self._s.scalars(stmt).one_or_none()
        if row is None:
            raise NotFound("incident_not_found")
        return row

    def get(self, incident_id: int, *, for_update: bool = False) -> IncidentRecord:
        return _incident(self._row(incident_id, for_update=for_update))

    def by_key(self, dedup_key: str, *, for_update: bool = False) -> IncidentRecord | None:
        stmt = select(IncidentRow).where(IncidentRow.dedup_key == dedup_key)
        if for_update:
            stmt = stmt.with_for_update()
        row = self._s.scalars(stmt).one_or_none()
        return _incident(row) if row else None

    def add(self, **values: Any) -> IncidentRecord:
        row = IncidentRow(**values)
        self._s.add(row)
        self._s.flush()
        return _incident(row)

    def update(self, incident_id: int, **values: Any) -> IncidentRecord:
        row = self._row(incident_id)
        for name, value in values.items():
            setattr(row, name, value)
        self._s.flush()
        return _incident(row)

    def for_release(
        self, release_id: int, statuses: Sequence[IncidentStatus] | None = None
    ) -> list[IncidentRecord]:
        stmt = select(IncidentRow).where(IncidentRow.release_id == release_id)
        if statuses is not None:
            stmt = stmt.where(IncidentRow.status.in_([s.value for s in statuses]))
        return [_incident(r) for r in self._s.scalars(stmt.order_by(IncidentRow.id))]

    def unpinged(self, limit: int = 20) -> list[IncidentRecord]:
        """Live incidents whose channel message Slack has not taken yet (including claims left by a dead process)."""
        stmt = (
            select(IncidentRow)
            .where(
                (IncidentRow.slack_ts.is_(None)) | (IncidentRow.slack_ts.like(f"{PING_CLAIM}%")),
                IncidentRow.status == IncidentStatus.OPEN.value,
            )
            .order_by(IncidentRow.id)
            .limit(limit)
        )
        return [_incident(r) for r in self._s.scalars(stmt)]

    def claim_ping(self, incident_id: int, now: datetime, stale_after_s: float = 120.0) -> bool:
        """Take the right to post an incident's ping; only one process wins. A claim older than
        ``stale_after_s`` (its process died mid-post) can be taken over."""
        stale = f"{PING_CLAIM}{int(now.timestamp() - stale_after_s):012d}"
        result = self._s.execute(
            update(IncidentRow)
            .where(
                IncidentRow.id == incident_id,
                (IncidentRow.slack_ts.is_(None))
                | ((IncidentRow.slack_ts.like(f"{PING_CLAIM}%")) & (IncidentRow.slack_ts < stale)),
            )
            .values(slack_ts=f"{PING_CLAIM}{int(now.timestamp()):012d}")
        )
        return bool(getattr(result, "rowcount", 0))


class PagerOutbox:
    def __init__(self, session: Session) -> None:
        self._s = session

    def enqueue(
        self,
        *,
        event_key: str,
        action: str,
        body: dict[str, Any],
        now: datetime,
        release_id: int | None = None,
        dedup_key: str | None = None,
    ) -> bool:
        """Queue an event unless one with this key exists (set semantics); return whether it was queued."""
        if self._s.scalars(select(PagerOutboxRow.id).where(PagerOutboxRow.event_key == event_key)).first():
            return False
        row = PagerOutboxRow(
            event_key=event_key,
            release_id=release_id,
            dedup_key=dedup_key,
            action=action,
            body=body,
            status=OutboxStatus.PENDING.value,
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
        # A savepoint: a concurrent writer of the same key (a hook and the watch job) loses quietly.
        try:
            with self._s.begin_nested():
                self._s.add(row)
        except IntegrityError:
            return False
        return True

    def pending(self, limit: int = 200) -> list[OutboxRecord]:
        """Pending events, oldest first: delivery order per dedup key is creation order."""
        stmt = (
            select(PagerOutboxRow)
            .where(PagerOutboxRow.status == OutboxStatus.PENDING.value)
            .order_by(PagerOutboxRow.id)
            .limit(limit)
        )
        return [_outbox(r) for r in self._s.scalars(stmt)]

    def depth(self) -> int:
        stmt = (
            select(func.count())
            .select_from(PagerOutboxRow)
            .where(PagerOutboxRow.status == OutboxStatus.PENDING.value)
        )
        return int(self._s.scalar(stmt) or 0)

    def all(self, release_id: int | None = None) -> list[OutboxRecord]:
        stmt = select(PagerOutboxRow)
        if release_id is not None:
            stmt = stmt.where(PagerOutboxRow.release_id == release_id)
        return [_outbox(r) for r in self._s.scalars(stmt.order_by(PagerOutboxRow.id))]

    def claim(self, outbox_id: int, attempts_seen: int, lease_until: datetime) -> bool:
        """Count an attempt and lease the row until ``lease_until``; False when another process took it first.

        The lease keeps a process that reads the row after this claim (a leader handover) from sending it again
        while this attempt is still in flight.
        """
        result = self._s.execute(
            update(PagerOutboxRow)
            .where(
                PagerOutboxRow.id == outbox_id,
                PagerOutboxRow.status == OutboxStatus.PENDING.value,
                PagerOutboxRow.attempts == attempts_seen,
            )
            .values(attempts=attempts_seen + 1, next_attempt_at=lease_until)
        )
        return bool(getattr(result, "rowcount", 0))

    def mark(self, outbox_id: int, **values: Any) -> None:
        self._s.execute(update(PagerOutboxRow).where(PagerOutboxRow.id == outbox_id).values(**values))


class WatchRepositories:
    """The watch's repositories, sharing the unit of work's session."""

    def __init__(self, session: Session) -> None:
        self.releases = ReleaseWatches(session)
        self.states = WatchStates(session)
        self.samples = MetricSamples(session)
        self.incidents = Incidents(session)
        self.outbox = PagerOutbox(session)
