"""Database rows. ORM classes stay in ``bot/db``; services see plain values through ``bot.db.uow``.

Timestamps are timezone-aware UTC on both engines (``UtcDateTime`` re-attaches UTC on SQLite, which stores none).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

CONVENTION = {
    "pk": "pk_%(table_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
}


class UtcDateTime(TypeDecorator[datetime]):
    """A tz-aware UTC datetime on every engine; refuses naive values so none sneak in."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use tz-aware UTC")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


BigId = BigInteger().with_variant(Integer(), "sqlite")  # SQLite autoincrements only INTEGER PRIMARY KEY


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UtcDateTime(), dict[str, Any]: JSON()}


class ReleaseRow(Base):
    """One release of one version in one channel."""

    __tablename__ = "releases"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    version: Mapped[str] = mapped_column(String(64))
    channel_id: Mapped[str] = mapped_column(String(32))
    service: Mapped[str] = mapped_column(String(64))
    checklist_name: Mapped[str] = mapped_column(String(64))
    # The YAML the release started with, ~10 KB: deferred, so that listing releases does not carry it along.
    # Services parses it once per release and process (Services.checklist_of).
    checklist_source: Mapped[str] = mapped_column(Text, deferred=True)
    # The checklist document's own version (front matter ``version:``), as it was when the release started.
    checklist_version: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    step: Mapped[str] = mapped_column(String(64))
    step_started_at: Mapped[datetime]
    step_started_by: Mapped[str | None] = mapped_column(String(32))
    # "<channel>:<service>:<version>" while active, NULL once ended: a portable "one active release of a service's
    # version per channel" (two services sharing a channel may both release v1.2.3).
    active_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    started_by: Mapped[str] = mapped_column(String(32))
    started_by_name: Mapped[str] = mapped_column(String(128))
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    thread_ts: Mapped[str | None] = mapped_column(String(32))
    baseline_p95_s: Mapped[float | None]
    last_activity_at: Mapped[datetime]

    __table_args__ = (Index(None, "version"), Index(None, "channel_id", "status"))


class ItemStateRow(Base):
    """The current state of one checklist item of a release (the audit trail holds its history)."""

    __tablename__ = "item_states"

    release_id: Mapped[int] = mapped_column(ForeignKey("releases.id", ondelete="CASCADE"), primary_key=True)
    item_key: Mapped[str] = mapped_column(String(150), primary_key=True)
    checked: Mapped[bool] = mapped_column(Boolean)
    actor_id: Mapped[str] = mapped_column(String(32))
    actor_name: Mapped[str] = mapped_column(String(128))
    at: Mapped[datetime]


class AuditEventRow(Base):
    """An append-only record of something that happened to a release: who, what, when."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    release_id: Mapped[int] = mapped_column(ForeignKey("releases.id", ondelete="CASCADE"))
    at: Mapped[datetime]
    actor_id: Mapped[str] = mapped_column(String(32))
    actor_name: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(48))
    item_key: Mapped[str | None] = mapped_column(String(150))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    slack_action_ts: Mapped[str | None] = mapped_column(String(32))

    __table_args__ = (Index(None, "release_id", "id"),)


class MessageRow(Base):
    """A Slack message the bot owns for a release, and whether Slack shows its latest content."""

    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    release_id: Mapped[int] = mapped_column(ForeignKey("releases.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(24))  # header | checklist | followup
    page: Mapped[int] = mapped_column(Integer, default=0)
    channel_id: Mapped[str] = mapped_column(String(32))
    ts: Mapped[str | None] = mapped_column(String(32))
    content_rev: Mapped[int] = mapped_column(Integer, default=1)  # bumped with every change it shows
    synced_rev: Mapped[int] = mapped_column(Integer, default=0)  # the rev Slack last accepted
    synced_at: Mapped[datetime | None]
    # Who is posting it, since when: replicas claim a message before posting it, and a claim older than the
    # lease is taken to belong to a process that died mid-post (see Services.claim_post).
    posting_by: Mapped[str | None] = mapped_column(String(64))
    posting_since: Mapped[datetime | None]

    __table_args__ = (UniqueConstraint("release_id", "kind", "page"), Index(None, "channel_id", "ts"))


class TimerRow(Base):
    """A due-time the bot must act on. The table is the truth; the in-process clock only wakes us up."""

    __tablename__ = "timers"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    release_id: Mapped[int] = mapped_column(ForeignKey("releases.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    key: Mapped[str] = mapped_column(String(160), unique=True)  # one timer per release/kind/step, ever
    due_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(16))  # pending | firing | fired | cancelled
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claimed_at: Mapped[datetime | None]
    fired_at: Mapped[datetime | None]
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    __table_args__ = (Index(None, "status", "due_at"),)


class RollbackRow(Base):
    """One rollback of a deployment: the intent is stored before the patch, the outcome after it."""

    __tablename__ = "rollbacks"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    release_id: Mapped[int] = mapped_column(ForeignKey("releases.id", ondelete="CASCADE"))
    deployment: Mapped[str] = mapped_column(String(253))
    namespace: Mapped[str] = mapped_column(String(63))
    requested_revision: Mapped[int] = mapped_column(Integer, default=0)  # --to-revision; 0 = previous
    expected_revision: Mapped[int | None]  # the live revision the confirmer saw; a changed one is refused
    from_revision: Mapped[int | None]
    from_images: Mapped[list[str] | None] = mapped_column(JSON)
    to_revision: Mapped[int | None]
    to_images: Mapped[list[str] | None] = mapped_column(JSON)
    reason: Mapped[str] = mapped_column(Text)
    requested_by: Mapped[str] = mapped_column(String(32))
    requested_by_name: Mapped[str] = mapped_column(String(128))
    # intent → patched → succeeded | failed; skipped (nothing to undo); interrupted (found after a crash)
    status: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text)
    # "<namespace>/<deployment>" while in progress, NULL after: the database forbids two at once.
    active_key: Mapped[str | None] = mapped_column(String(320), unique=True)
    worker: Mapped[str | None] = mapped_column(String(64))
    progress_channel: Mapped[str | None] = mapped_column(String(32))
    progress_ts: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]  # also the heartbeat of the process carrying it out

    __table_args__ = (Index(None, "release_id"), Index(None, "status"))


class ServiceLockRow(Base):
    """Production of a service locked after a rollback, until a release manager clears it with a reason."""

    __tablename__ = "service_locks"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    service: Mapped[str] = mapped_column(String(64))
    release_id: Mapped[int] = mapped_column(ForeignKey("releases.id", ondelete="CASCADE"))
    reason: Mapped[str] = mapped_column(Text)
    locked_at: Mapped[datetime]
    cleared_by: Mapped[str | None] = mapped_column(String(32))
    cleared_reason: Mapped[str | None] = mapped_column(Text)
    cleared_at: Mapped[datetime | None]

    __table_args__ = (Index(None, "service", "cleared_at"),)


class ReleaseWatchRow(Base):
    """The metric watch's bookkeeping for one release: baseline, last sample, the last step announced."""

    __tablename__ = "release_watches"

    release_id: Mapped[int] = mapped_column(ForeignKey("releases.id", ondelete="CASCADE"), primary_key=True)
    announced_step: Mapped[str | None] = mapped_column(String(64))
    baseline_status: Mapped[str | None] = mapped_column(String(16))  # measured | fixed | missing
    last_sample_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]  # the release ended and its incidents were resolved
    created_at: Mapped[datetime]
    # The monitoring gate over the current canary stage so far (``bot.usecases.gate_window.window_record``).
    gate_window: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class WatchStateRow(Base):
    """The running state of one criterion of one release (``CriterionWatch.to_dict``), kept across restarts."""

    __tablename__ = "watch_states"

    release_id: Mapped[int] = mapped_column(ForeignKey("releases.id", ondelete="CASCADE"), primary_key=True)
    criterion: Mapped[str] = mapped_column(String(64), primary_key=True)
    state: Mapped[dict[str, Any]] = mapped_column(JSON)
    last_sample_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]


class MetricSampleRow(Base):
    """One reading of one metric of a release: the recent trend, the gate figures and later charts."""

    __tablename__ = "metric_samples"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    release_id: Mapped[int] = mapped_column(ForeignKey("releases.id", ondelete="CASCADE"))
    at: Mapped[datetime]
    metric: Mapped[str] = mapped_column(String(32))  # error_rate | p95
    value: Mapped[float | None]
    verdict: Mapped[str] = mapped_column(String(16))  # pass | breach | no_data
    reason: Mapped[str | None] = mapped_column(String(300))

    __table_args__ = (Index(None, "release_id", "metric", "id"),)


class IncidentRow(Base):
    """A criterion of a release that fired; ``dedup_key`` makes it one PagerDuty alert, ever."""

    __tablename__ = "incidents"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    release_id: Mapped[int] = mapped_column(ForeignKey("releases.id", ondelete="CASCADE"))
    criterion: Mapped[str] = mapped_column(String(64))
    dedup_key: Mapped[str] = mapped_column(String(255), unique=True)
    status: Mapped[str] = mapped_column(String(16))  # open | acknowledged | resolved | dismissed
    declared_by: Mapped[str] = mapped_column(String(32))
    declared_by_name: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str | None] = mapped_column(Text)
    value: Mapped[float | None]
    threshold: Mapped[float | None]
    baseline_p95_s: Mapped[float | None]
    stage: Mapped[str | None] = mapped_column(String(64))
    fire_count: Mapped[int] = mapped_column(Integer, default=1)
    channel_id: Mapped[str] = mapped_column(String(32))
    slack_ts: Mapped[str | None] = mapped_column(String(32))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    handled_by: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    __table_args__ = (Index(None, "release_id"), Index(None, "status"))


class PagerOutboxRow(Base):
    """A PagerDuty event to deliver. The row is the truth: it survives restarts and PagerDuty outages."""

    __tablename__ = "pager_outbox"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    event_key: Mapped[str] = mapped_column(String(320), unique=True)  # one row per intended event
    release_id: Mapped[int | None] = mapped_column(ForeignKey("releases.id", ondelete="CASCADE"))
    dedup_key: Mapped[str | None] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(16))  # trigger | acknowledge | resolve | change
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16))  # pending | delivered | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    last_error: Mapped[str | None] = mapped_column(String(500))  # the adapter's words: no secrets
    created_at: Mapped[datetime]
    delivered_at: Mapped[datetime | None]

    __table_args__ = (Index(None, "status", "next_attempt_at"),)


class EvidenceResultRow(Base):
    """The latest evaluation of one evidence item of a release: what each source said (``EvidencePart``)."""

    __tablename__ = "evidence_results"

    release_id: Mapped[int] = mapped_column(ForeignKey("releases.id", ondelete="CASCADE"), primary_key=True)
    item_key: Mapped[str] = mapped_column(String(150), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))  # proven | failed | unknown
    parts: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    evaluated_at: Mapped[datetime]


class GitHubDeliveryRow(Base):
    """A GitHub webhook delivery the bot acted on. GitHub redelivers with the same GUID: the key makes a
    redelivery a no-op, for as long as rows are kept (GitHub redelivers up to 3 days back)."""

    __tablename__ = "github_deliveries"

    delivery_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    event: Mapped[str] = mapped_column(String(48))
    release_id: Mapped[int | None] = mapped_column(ForeignKey("releases.id", ondelete="SET NULL"))
    received_at: Mapped[datetime]


class LeadershipRow(Base):
    """The one row that says who leads (``bot.domain.leadership``): an epoch raised at every change of leader, and
    the lease it holds, timed by the database's clock. Leader-only writes check it in their own transaction."""

    __tablename__ = "leadership"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)  # always 1
    epoch: Mapped[int] = mapped_column(BigInteger)
    holder: Mapped[str | None] = mapped_column(String(128))
    # NULL while a SQLite process holds it: there the lease is the file lock beside the database.
    expires_at: Mapped[datetime | None]
    changed_at: Mapped[datetime | None]


class TrafficStateRow(Base):
    """What the cluster last said about a release's traffic (``bot.usecases.traffic``): the provider's view, when
    the stage's weight started serving, and the drift the bot saw, posted and had acknowledged."""

    __tablename__ = "traffic_states"

    release_id: Mapped[int] = mapped_column(ForeignKey("releases.id", ondelete="CASCADE"), primary_key=True)
    view: Mapped[dict[str, Any]] = mapped_column(JSON)
    observed_at: Mapped[datetime]
    stage_percent: Mapped[int | None] = mapped_column(Integer)  # the percentage the bot last asked for
    requested_at: Mapped[datetime | None]
    serving_since: Mapped[datetime | None]  # when the cluster first reported stage_percent as served
    drift: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    drift_posted: Mapped[str | None] = mapped_column(String(300))  # the key of the drift posted in the thread
    drift_acknowledged: Mapped[str | None] = mapped_column(String(300))
    acknowledged_by: Mapped[str | None] = mapped_column(String(64))


class ChannelPaceRow(Base):
    """The next moment any replica may post in a channel: Slack's 1 post/s per channel is the workspace's, so
    replicas take their turns here (``bot.db.pacing``) rather than each from its own clock."""

    __tablename__ = "channel_pace"

    channel_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    next_at: Mapped[datetime]
