"""Repositories for rollbacks and service locks; attached to the unit of work as ``uow.rollbacks``/``uow.locks``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.db.models import RollbackRow, ServiceLockRow
from bot.domain.records import Actor
from bot.domain.rollbacks import RollbackRecord, RollbackStatus, ServiceLock
from bot.errors import Conflict, NotFound

_IN_PROGRESS = (RollbackStatus.INTENT.value, RollbackStatus.PATCHED.value)


def _rollback(row: RollbackRow) -> RollbackRecord:
    return RollbackRecord(
        id=row.id,
        release_id=row.release_id,
        deployment=row.deployment,
        namespace=row.namespace,
        requested_revision=row.requested_revision,
        expected_revision=row.expected_revision,
        from_revision=row.from_revision,
        from_images=tuple(row.from_images or ()),
        to_revision=row.to_revision,
        to_images=tuple(row.to_images or ()),
        reason=row.reason,
        requested_by=Actor(row.requested_by, row.requested_by_name),
        status=RollbackStatus(row.status),
        error=row.error,
        worker=row.worker,
        progress_channel=row.progress_channel,
        progress_ts=row.progress_ts,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _lock(row: ServiceLockRow) -> ServiceLock:
    return ServiceLock(
        row.id,
        row.service,
        row.release_id,
        row.reason,
        row.locked_at,
        row.cleared_by,
        row.cleared_reason,
        row.cleared_at,
    )


class Rollbacks:
    def __init__(self, session: Session) -> None:
        self._s = session

    def in_progress_for(self, namespace: str, deployment: str) -> RollbackRecord | None:
        row = self._s.scalars(
            select(RollbackRow).where(RollbackRow.active_key == f"{namespace}/{deployment}")
        ).first()
        return _rollback(row) if row else None

    def start(
        self,
        *,
        release_id: int,
        deployment: str,
        namespace: str,
        requested_revision: int,
        expected_revision: int | None,
        reason: str,
        actor: Actor,
        worker: str,
        at: datetime,
    ) -> RollbackRecord:
        """Store the intent, holding the deployment's lock; Conflict names the rollback already running."""
        running = self.in_progress_for(namespace, deployment)
        if running is not None:
            raise _busy(running)
        row = RollbackRow(
            release_id=release_id,
            deployment=deployment,
            namespace=namespace,
            requested_revision=requested_revision,
            expected_revision=expected_revision,
            reason=reason,
            requested_by=actor.id,
            requested_by_name=actor.name,
            status=RollbackStatus.INTENT.value,
            active_key=f"{namespace}/{deployment}",
            worker=worker,
            created_at=at,
            updated_at=at,
        )
        try:
            # A savepoint: losing the race on the unique key leaves the caller's transaction usable.
            with self._s.begin_nested():
                self._s.add(row)
                self._s.flush()
        except IntegrityError:
            running = self.in_progress_for(namespace, deployment)
            if running is None:
                raise
            raise _busy(running) from None
        return _rollback(row)

    def get(self, rollback_id: int, *, for_update: bool = False) -> RollbackRecord:
        stmt = select(RollbackRow).where(RollbackRow.id == rollback_id)
        if for_update:
            stmt = stmt.with_for_update()
        row = self._s.scalars(stmt).one_or_none()
        if row is None:
            raise NotFound("rollback_not_found")
        return _rollback(row)

    def update(self, rollback_id: int, *, at: datetime, **values: Any) -> None:
        """Change a rollback; a status that is no longer in progress releases the deployment's lock."""
        status = values.get("status")
        if status is not None and status not in _IN_PROGRESS:
            values["active_key"] = None
        self._s.execute(
            update(RollbackRow).where(RollbackRow.id == rollback_id).values(updated_at=at, **values)
        )

    def claim_stale(self, rollback_id: int, older_than: datetime, at: datetime, error: str) -> bool:
        """Mark an abandoned rollback interrupted; only one process wins (the heartbeat must still be old)."""
        result = self._s.execute(
            update(RollbackRow)
            .where(
                RollbackRow.id == rollback_id,
                RollbackRow.status.in_(_IN_PROGRESS),
                RollbackRow.updated_at < older_than,
            )
            .values(status=RollbackStatus.INTERRUPTED.value, active_key=None, error=error, updated_at=at)
        )
        return bool(getattr(result, "rowcount", 0))

    def stale(self, older_than: datetime) -> list[RollbackRecord]:
        """Rollbacks in progress whose carrier stopped beating: a process that died mid-way."""
        stmt = (
            select(RollbackRow)
            .where(RollbackRow.status.in_(_IN_PROGRESS), RollbackRow.updated_at < older_than)
            .order_by(RollbackRow.id)
        )
        return [_rollback(r) for r in self._s.scalars(stmt)]

    def for_release(self, release_id: int) -> list[RollbackRecord]:
        stmt = select(RollbackRow).where(RollbackRow.release_id == release_id).order_by(RollbackRow.id)
        return [_rollback(r) for r in self._s.scalars(stmt)]


def _busy(running: RollbackRecord) -> Conflict:
    return Conflict(
        "rollback_in_progress",
        params={
            "target": running.target,
            "who": running.requested_by.mention,
            "status": running.status.value,
        },
    )


class ServiceLocks:
    def __init__(self, session: Session) -> None:
        self._s = session

    def active(self, service: str) -> ServiceLock | None:
        stmt = (
            select(ServiceLockRow)
            .where(ServiceLockRow.service == service, ServiceLockRow.cleared_at.is_(None))
            .order_by(ServiceLockRow.id.desc())
        )
        row = self._s.scalars(stmt.limit(1)).first()
        return _lock(row) if row else None

    def lock(self, service: str, release_id: int, reason: str, at: datetime) -> ServiceLock:
        row = ServiceLockRow(service=service, release_id=release_id, reason=reason, locked_at=at)
        self._s.add(row)
        self._s.flush()
        return _lock(row)

    def clear(self, service: str, *, actor: Actor, reason: str, at: datetime) -> list[ServiceLock]:
        """Clear every active lock of a service; return them as they were."""
        rows = list(
            self._s.scalars(
                select(ServiceLockRow).where(
                    ServiceLockRow.service == service, ServiceLockRow.cleared_at.is_(None)
                )
            )
        )
        cleared = [_lock(r) for r in rows]
        for row in rows:
            row.cleared_by, row.cleared_reason, row.cleared_at = actor.id, reason, at
        self._s.flush()
        return cleared
