"""Migrations: an empty database upgrades to head on both engines, matches the models, and stays idempotent."""

from __future__ import annotations

import subprocess
import sys

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from bot.db.migrate import alembic_config, downgrade, upgrade
from bot.db.models import Base


def _diff(db_url: str) -> list[object]:
    engine = sa.create_engine(db_url, poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
    engine.dispose()
    return list(diff)


def test_upgrade_from_empty_matches_the_models(db_url: str) -> None:
    upgrade(db_url)
    assert _diff(db_url) == []


def test_upgrade_from_every_earlier_revision_and_downgrade_of_the_last(db_url: str) -> None:
    script = ScriptDirectory.from_config(alembic_config(db_url))
    revisions = [r.revision for r in reversed(list(script.walk_revisions()))]
    for revision in revisions:
        upgrade(db_url, revision)
        upgrade(db_url)  # from this revision straight to head
        assert _diff(db_url) == []
        if revision != revisions[-1]:
            downgrade(db_url, revision)
    head = revisions[-1]
    previous = revisions[-2] if len(revisions) > 1 else "base"
    downgrade(db_url, previous)
    upgrade(db_url)
    assert _diff(db_url) == []
    engine = sa.create_engine(db_url, poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        assert MigrationContext.configure(conn).get_current_heads() == (head,)
    engine.dispose()


def test_db_upgrade_command_is_idempotent(db_url: str) -> None:
    for _ in range(2):
        result = subprocess.run(
            [sys.executable, "-m", "bot", "db", "upgrade"],
            env={"DATABASE_URL": db_url, "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert "up to date" in result.stdout
    assert _diff(db_url) == []


def test_start_up_knows_the_head_without_alembic(db_url: str) -> None:
    from bot.db.migrate import head_revision, is_current, upgrade_if_needed

    script = ScriptDirectory.from_config(alembic_config(db_url))
    assert head_revision() == script.get_current_head()
    assert not is_current(db_url)
    assert upgrade_if_needed(db_url) is True
    assert is_current(db_url)
    assert upgrade_if_needed(db_url) is False
