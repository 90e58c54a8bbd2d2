"""Leadership as an epoch and a lease in the database, so that a deposed leader's late writes are refused.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28 09:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    table = op.create_table(
        "leadership",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
        sa.Column("holder", sa.String(length=128), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_leadership"),
    )
    # The row exists from the start: leaders only ever update it, so two first leaders cannot both insert one.
    # Unheld (no holder, no lease): the first candidate takes epoch 1.
    op.bulk_insert(table, [{"id": 1, "epoch": 0, "holder": None, "expires_at": None, "changed_at": None}])


def downgrade() -> None:
    op.drop_table("leadership")
