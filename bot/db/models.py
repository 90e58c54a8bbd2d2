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
    checklist_source: Mapped[str] = mapped_column(Text)  # the YAML the release started with
    status: Mapped[str] = mapped_column(String(16))
    step: Mapped[str] = mapped_column(String(64))
    step_started_at: Mapped[datetime]
    step_started_by: Mapped[str | None] = mapped_column(String(32))
    # "<channel>:<version>" while active, NULL once ended: a portable "one active release per channel".
    active_key: Mapped[str | None] = mapped_column(String(128), unique=True)
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
