"""Rollback and service-lock records, and the rollback status machine. Imports only the standard library."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from bot.domain.records import Actor


class RollbackStatus(StrEnum):
    """Where a rollback stands. ``intent`` is stored before the patch is sent, ``patched`` right after."""

    INTENT = "intent"
    PATCHED = "patched"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"  # kubectl's "skipped rollback": the deployment already runs the target
    INTERRUPTED = "interrupted"  # the bot stopped between intent and outcome; never retried by itself

    @property
    def in_progress(self) -> bool:
        return self in (RollbackStatus.INTENT, RollbackStatus.PATCHED)


@dataclass(frozen=True)
class RollbackRecord:
    """One rollback as stored."""

    id: int
    release_id: int
    deployment: str
    namespace: str
    requested_revision: int
    expected_revision: int | None
    from_revision: int | None
    from_images: tuple[str, ...]
    to_revision: int | None
    to_images: tuple[str, ...]
    reason: str
    requested_by: Actor
    status: RollbackStatus
    error: str | None
    worker: str | None
    progress_channel: str | None
    progress_ts: str | None
    created_at: datetime
    updated_at: datetime

    @property
    def target(self) -> str:
        return f"{self.namespace}/{self.deployment}"


@dataclass(frozen=True)
class ServiceLock:
    """Production of ``service`` locked after the rollback of a release."""

    id: int
    service: str
    release_id: int
    reason: str
    locked_at: datetime
    cleared_by: str | None = None
    cleared_reason: str | None = None
    cleared_at: datetime | None = None
