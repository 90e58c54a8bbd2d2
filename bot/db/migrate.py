"""Applying Alembic migrations from code (start-up and ``release-bot db upgrade``).

The migrations ship inside the package (``bot/db/migrations``), so an installed wheel migrates from wherever it is
run; ``alembic.ini`` at the repository root is only for writing new revisions from a checkout.
"""

from __future__ import annotations

import re
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

from bot.db.problems import database_error, safe_url
from bot.errors import ConfigError

if TYPE_CHECKING:
    from alembic.config import Config

# pip installs packages as plain folders, so the package's files are real paths Alembic can load scripts from.
MIGRATIONS = Path(str(files("bot.db") / "migrations"))


def alembic_config(database_url: str) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("path_separator", "os")
    # env.py reads the URL from here when given one; '%' is escaped because ini interpolation would eat it.
    config.attributes["database_url"] = database_url
    return config


MIGRATION_LOCK = 0x52424D4947  # "RBMIG": serialises replicas that start together on an empty database


def upgrade(database_url: str, revision: str = "head") -> None:
    """Apply migrations; on Postgres under an advisory lock, so two replicas starting at once take turns."""
    from alembic import command

    config = alembic_config(database_url)
    if not database_url.startswith("postgresql"):
        command.upgrade(config, revision)
        return
    engine = sa.create_engine(database_url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATION_LOCK})
            conn.commit()
            try:
                config.attributes["connection"] = conn
                command.upgrade(config, revision)
                conn.commit()
            finally:
                conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATION_LOCK})
                conn.commit()
    finally:
        engine.dispose()


def downgrade(database_url: str, revision: str) -> None:
    from alembic import command

    command.downgrade(alembic_config(database_url), revision)


def head_revision() -> str:
    """The newest revision in bot/db/migrations/versions, read from the files without importing Alembic."""
    revisions: dict[str, str | None] = {}
    for path in (MIGRATIONS / "versions").glob("*.py"):
        text = path.read_text(encoding="utf-8")
        rev = re.search(r"^revision(?:: str)? = ['\"]([^'\"]+)['\"]", text, re.M)
        down = re.search(r"^down_revision(?:: [^=]+)? = (?:['\"]([^'\"]+)['\"]|None)", text, re.M)
        if rev:
            revisions[rev.group(1)] = down.group(1) if down else None
    parents = {d for d in revisions.values() if d}
    heads = [r for r in revisions if r not in parents]
    if len(heads) != 1:
        raise RuntimeError(f"migrations must have exactly one head, found {heads}")
    return heads[0]


def revisions_of(database_url: str) -> list[str] | None:
    """The revisions the database is at; None when it was never migrated (no alembic_version table)."""
    engine = sa.create_engine(database_url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table("alembic_version"):
                return None
            return [row[0] for row in conn.execute(sa.text("SELECT version_num FROM alembic_version"))]
    finally:
        engine.dispose()


def is_current(database_url: str) -> bool:
    """Whether the database is already at the head revision (no Alembic import needed to know)."""
    return revisions_of(database_url) == [head_revision()]


def upgrade_if_needed(database_url: str) -> bool:
    """Apply pending migrations at start-up. Alembic (~40 MB) is imported only when there is work to do."""
    if is_current(database_url):
        return False
    upgrade(database_url)
    return True


def prepare(database_url: str, *, only_if_needed: bool = False) -> bool:
    """Migrate for ``serve`` and ``db upgrade``; any failure becomes one ConfigError line that names its cause."""
    try:
        if only_if_needed:
            return upgrade_if_needed(database_url)
        upgrade(database_url)
        return True
    except sa.exc.SQLAlchemyError as e:
        raise database_error(e, database_url, "migrate the database") from e
    except Exception as e:
        if type(e).__name__ == "CommandError":  # Alembic's: a revision it cannot find is a newer bot's
            raise ConfigError(
                f"DATABASE_URL ({safe_url(database_url)}): cannot migrate the database: it was migrated by a "
                f"newer release-bot ({e}; this one knows revisions up to {head_revision()})"
            ) from e
        raise


def require_current(database_url: str) -> None:
    """For commands that only read: refuse, in one line, a database that is unreachable, empty or behind."""
    try:
        found = revisions_of(database_url)
    except sa.exc.SQLAlchemyError as e:
        raise database_error(e, database_url, "open the database") from e
    where = f"DATABASE_URL ({safe_url(database_url)})"
    if found is None:
        raise ConfigError(
            f"{where}: the database has no release-bot tables: point DATABASE_URL at the bot's database, "
            "or run `release-bot db upgrade` to create them"
        )
    head = head_revision()
    if found != [head]:
        raise ConfigError(
            f"{where}: the database is at revision {', '.join(found) or 'none'}, this release-bot expects {head}: "
            "run `release-bot db upgrade`"
        )
