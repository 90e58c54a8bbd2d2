"""The metric watch (per-release bookkeeping, criterion states, samples), incidents and the PagerDuty outbox.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 09:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _release_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["release_id"], ["releases.id"], name=op.f(f"fk_{table}_release_id_releases"), ondelete="CASCADE"
    )


def upgrade() -> None:
    op.create_table(
        "release_watches",
        sa.Column("release_id", _ID, nullable=False),
        sa.Column("announced_step", sa.String(length=64), nullable=True),
        sa.Column("baseline_status", sa.String(length=16), nullable=True),
        sa.Column("last_sample_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        _release_fk("release_watches"),
        sa.PrimaryKeyConstraint("release_id", name=op.f("pk_release_watches")),
    )
    op.create_table(
        "watch_states",
        sa.Column("release_id", _ID, nullable=False),
        sa.Column("criterion", sa.String(length=64), nullable=False),
        sa.Column("state", sa.JSON(), nullable=False),
        sa.Column("last_sample_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        _release_fk("watch_states"),
        sa.PrimaryKeyConstraint("release_id", "criterion", name=op.f("pk_watch_states")),
    )
    op.create_table(
        "metric_samples",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("release_id", _ID, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("metric", sa.String(length=32), nullable=False),
        sa.Column("value", sa.Double(), nullable=True),
        sa.Column("verdict", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=300), nullable=True),
        _release_fk("metric_samples"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_metric_samples")),
    )
    with op.batch_alter_table("metric_samples", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_metric_samples_release_id_metric_id"), ["release_id", "metric", "id"], unique=False
        )
    op.create_table(
        "incidents",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("release_id", _ID, nullable=False),
        sa.Column("criterion", sa.String(length=64), nullable=False),
        sa.Column("dedup_key", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("declared_by", sa.String(length=32), nullable=False),
        sa.Column("declared_by_name", sa.String(length=128), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("value", sa.Double(), nullable=True),
        sa.Column("threshold", sa.Double(), nullable=True),
        sa.Column("baseline_p95_s", sa.Double(), nullable=True),
        sa.Column("stage", sa.String(length=64), nullable=True),
        sa.Column("fire_count", sa.Integer(), nullable=False),
        sa.Column("channel_id", sa.String(length=32), nullable=False),
        sa.Column("slack_ts", sa.String(length=32), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("handled_by", sa.String(length=32), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        _release_fk("incidents"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incidents")),
        sa.UniqueConstraint("dedup_key", name=op.f("uq_incidents_dedup_key")),
    )
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_incidents_release_id"), ["release_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_incidents_status"), ["status"], unique=False)
    op.create_table(
        "pager_outbox",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("event_key", sa.String(length=320), nullable=False),
        sa.Column("release_id", _ID, nullable=True),
        sa.Column("dedup_key", sa.String(length=255), nullable=True),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        _release_fk("pager_outbox"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pager_outbox")),
        sa.UniqueConstraint("event_key", name=op.f("uq_pager_outbox_event_key")),
    )
    with op.batch_alter_table("pager_outbox", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_pager_outbox_status_next_attempt_at"), ["status", "next_attempt_at"], unique=False
        )


def downgrade() -> None:
    for table in ("pager_outbox", "incidents", "metric_samples", "watch_states", "release_watches"):
        op.drop_table(table)
