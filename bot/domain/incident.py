"""Incidents raised against a release and the PagerDuty events queued for them, as plain records.

An incident is one criterion of one release that fired (a metric watch or a person declaring it). Its PagerDuty
``dedup_key`` is derived from the release and the criterion, so every retry of its page, and every restart of
the bot, lands on the same PagerDuty alert.

Imports only the standard library.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

PING_CLAIM = "claim:"  # stands in an incident's slack_ts while one process posts its channel ping
DECLARED = "declared"  # the criterion key of ``/release incident``: a person's reason, no checklist criterion


class IncidentStatus(StrEnum):
    """Where an incident stands; only OPEN and ACKNOWLEDGED are live (one page each, never two)."""

    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"
    DISMISSED = "dismissed"

    @property
    def live(self) -> bool:
        return self in (IncidentStatus.OPEN, IncidentStatus.ACKNOWLEDGED)


class OutboxStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"  # PagerDuty refused it for good (400, bad key): retrying cannot help


def dedup_key(release_id: int, criterion: str) -> str:
    """The PagerDuty dedup key of a criterion of a release (reference/anchors.md §4.3)."""
    return f"release:{release_id}:{criterion}"


@dataclass(frozen=True)
class IncidentRecord:
    """An incident as stored; ``details`` holds the "why" it fired with, for re-rendering its message."""

    id: int
    release_id: int
    criterion: str
    dedup_key: str
    status: IncidentStatus
    declared_by: str
    declared_by_name: str
    reason: str | None
    value: float | None
    threshold: float | None
    baseline_p95_s: float | None
    stage: str | None
    fire_count: int
    channel_id: str
    slack_ts: str | None
    details: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    handled_by: str | None = None  # who acknowledged or dismissed it


@dataclass(frozen=True)
class OutboxRecord:
    """One PagerDuty event waiting to be (or already) delivered. ``body`` is JSON-safe."""

    id: int
    event_key: str
    release_id: int | None
    dedup_key: str | None
    action: str  # trigger | acknowledge | resolve | change
    body: dict[str, Any]
    status: OutboxStatus
    attempts: int
    next_attempt_at: datetime
    last_error: str | None = None
    delivered_at: datetime | None = None


@dataclass(frozen=True)
class SampleRecord:
    """One stored reading of one metric of a release; ``value`` None means no data (``reason`` says why)."""

    release_id: int
    at: datetime
    metric: str  # error_rate | p95
    value: float | None
    verdict: str
    reason: str | None = None


@dataclass(frozen=True)
class WatchRef:
    """Where the watch left a release, read for all releases at once so that a tick skips the idle ones."""

    release_id: int
    checklist_name: str
    status: str
    step: str
    announced_step: str | None  # None: the watch has not seen the release yet
    # Enough to tell, without loading the release, that a canary's next sample is not due yet.
    baseline_status: str | None = None
    last_sample_at: datetime | None = None
    # When the current step began: the gate window's start, and the post-deploy watch's.
    step_started_at: datetime | None = None


@dataclass(frozen=True)
class WatchedRelease:
    """What a sample needs of a release, read (and locked) for a whole batch of releases at once."""

    release_id: int
    status: str
    step: str
    step_started_at: datetime
    baseline_p95_s: float | None
