"""The monitoring gate's figures over the current canary stage, kept with the release's watch for the header.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 18:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("release_watches") as batch:
        batch.add_column(sa.Column("gate_window", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("release_watches") as batch:
        batch.drop_column("gate_window")
