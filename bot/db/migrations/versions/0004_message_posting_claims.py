"""Who is posting a message: a claim with a lease, so that two replicas never post the same message.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27 12:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable and unset: messages posted before this revision have a ts and never need a claim; unposted ones
    # are left to the repair sweep, as before.
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("posting_by", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("posting_since", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("posting_since")
        batch.drop_column("posting_by")
