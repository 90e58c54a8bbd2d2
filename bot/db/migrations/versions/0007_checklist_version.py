"""The checklist document's own version (its front matter, e.g. 1.0.0), recorded with each release.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 18:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable: releases started before this revision (or from a checklist without a version) have none.
    with op.batch_alter_table("releases") as batch:
        batch.add_column(sa.Column("checklist_version", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("releases") as batch:
        batch.drop_column("checklist_version")
