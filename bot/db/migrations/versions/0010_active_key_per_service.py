"""Several checklists on one deployment: the active key names the service, so two services sharing a channel
may both release the same version. Active rows are rewritten from "<channel>:<version>" to
"<channel>:<service>:<version>"; the column grows to hold a 64-character service and version.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 21:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_releases = sa.table(
    "releases",
    sa.column("id", sa.Integer()),
    sa.column("channel_id", sa.String()),
    sa.column("service", sa.String()),
    sa.column("version", sa.String()),
    sa.column("active_key", sa.String()),
)


def _rewrite(key: sa.ColumnElement[str]) -> None:
    op.execute(_releases.update().where(_releases.c.active_key.is_not(None)).values(active_key=key))


def upgrade() -> None:
    with op.batch_alter_table("releases") as batch:
        batch.alter_column(
            "active_key",
            existing_type=sa.String(length=128),
            type_=sa.String(length=200),
            existing_nullable=True,
        )
    c = _releases.c
    _rewrite(c.channel_id + ":" + c.service + ":" + c.version)


def downgrade() -> None:
    # Two services' active releases of one version in one channel would collide in the old key: the update then
    # fails on the unique constraint and the downgrade stops, rather than end one of them silently.
    c = _releases.c
    _rewrite(c.channel_id + ":" + c.version)
    with op.batch_alter_table("releases") as batch:
        batch.alter_column(
            "active_key",
            existing_type=sa.String(length=200),
            type_=sa.String(length=128),
            existing_nullable=True,
        )
