"""Rollbacks (intent before the patch, outcome after, one at a time per deployment) and service locks.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "rollbacks",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("release_id", _ID, nullable=False),
        sa.Column("deployment", sa.String(length=253), nullable=False),
        sa.Column("namespace", sa.String(length=63), nullable=False),
        sa.Column("requested_revision", sa.Integer(), nullable=False),
        sa.Column("expected_revision", sa.Integer(), nullable=True),
        sa.Column("from_revision", sa.Integer(), nullable=True),
        sa.Column("from_images", sa.JSON(), nullable=True),
        sa.Column("to_revision", sa.Integer(), nullable=True),
        sa.Column("to_images", sa.JSON(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("requested_by", sa.String(length=32), nullable=False),
        sa.Column("requested_by_name", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("active_key", sa.String(length=320), nullable=True),
        sa.Column("worker", sa.String(length=64), nullable=True),
        sa.Column("progress_channel", sa.String(length=32), nullable=True),
        sa.Column("progress_ts", sa.String(length=32), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["release_id"], ["releases.id"], name="fk_rollbacks_release_id_releases", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_rollbacks"),
        sa.UniqueConstraint("active_key", name="uq_rollbacks_active_key"),
    )
    op.create_index("ix_rollbacks_release_id", "rollbacks", ["release_id"], unique=False)
    op.create_index("ix_rollbacks_status", "rollbacks", ["status"], unique=False)

    op.create_table(
        "service_locks",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("service", sa.String(length=64), nullable=False),
        sa.Column("release_id", _ID, nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("locked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cleared_by", sa.String(length=32), nullable=True),
        sa.Column("cleared_reason", sa.Text(), nullable=True),
        sa.Column("cleared_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["release_id"], ["releases.id"], name="fk_service_locks_release_id_releases", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_service_locks"),
    )
    op.create_index(
        "ix_service_locks_service_cleared_at", "service_locks", ["service", "cleared_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_service_locks_service_cleared_at", table_name="service_locks")
    op.drop_table("service_locks")
    op.drop_index("ix_rollbacks_status", table_name="rollbacks")
    op.drop_index("ix_rollbacks_release_id", table_name="rollbacks")
    op.drop_table("rollbacks")
