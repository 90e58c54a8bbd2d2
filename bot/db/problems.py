"""Why a database could not be used, in one line a person can act on.

Drivers answer with several lines of their own ("connection failed: connection to server at … failed: FATAL: …"),
and SQLAlchemy wraps them again. The CLI and start-up show only what this module makes of them: which database
(its password blanked) and which of the usual causes it is.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import sqlalchemy as sa

from bot.errors import ConfigError, ReleaseBotError

_POSTGRES_CAUSES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"Connection refused", re.I), "connection refused: is Postgres running at {where}?"),
    (
        re.compile(r"failed to resolve host|could not translate host name|Name or service not known", re.I),
        "the host name {host!r} does not resolve",
    ),
    (re.compile(r"timeout expired|timed out", re.I), "no answer from {where} (timed out)"),
    (re.compile(r'database "([^"]+)" does not exist'), 'the database "{0}" does not exist on {where}'),
    (
        re.compile(r'password authentication failed for user "([^"]+)"'),
        'authentication failed: the password of user "{0}" was refused',
    ),
    (
        re.compile(r'role "([^"]+)" does not exist'),
        'authentication failed: there is no user "{0}" on {where}',
    ),
    (re.compile(r"no password supplied", re.I), "authentication failed: the server wants a password"),
    (
        re.compile(r"no pg_hba.conf entry", re.I),
        "authentication failed: pg_hba.conf refuses this host or user",
    ),
    (re.compile(r"permission denied", re.I), "permission denied: the user lacks rights on this database"),
)


def safe_url(url: str) -> str:
    """The URL as it may be shown: the password blanked."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "(an unreadable URL)"


def cause(error: BaseException, url: str) -> str:
    """The cause of ``error`` (raised while using the database at ``url``), in words, without the URL."""
    text = str(getattr(error, "orig", None) or error)
    if url.startswith("sqlite"):
        return _sqlite_cause(text, url)
    parsed = sa.engine.make_url(url)
    host = parsed.host or "localhost"
    where = f"{host}:{parsed.port or 5432}"
    for pattern, words in _POSTGRES_CAUSES:
        found = pattern.search(text)
        if found:
            return words.format(*found.groups(), where=where, host=host)
    first = text.strip().splitlines()[0] if text.strip() else type(error).__name__
    return first.removeprefix("connection failed: ")


def _sqlite_cause(text: str, url: str) -> str:
    database = sa.engine.make_url(url).database or ""
    path = Path(database)
    if "no such table" in text:
        return "it has no release-bot tables yet: run `release-bot db upgrade` first"
    if "not a database" in text:
        return f"{path} is not a SQLite database file"
    if "unable to open" in text or "readonly" in text:
        if not path.parent.is_dir():
            return f"the folder {path.parent} does not exist"
        if not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
            return f"no permission to write {path}"
        return f"cannot open {path}"
    if "locked" in text:
        return f"{path} is locked by another process"
    return text.strip().splitlines()[0] if text.strip() else "unknown error"


def database_error(error: BaseException, url: str, doing: str) -> ConfigError:
    """A one-line ConfigError: ``DATABASE_URL (…): cannot <doing>: <cause>``."""
    return ConfigError(f"DATABASE_URL ({safe_url(url)}): cannot {doing}: {cause(error, url)}")


def no_release(version: str, url: str) -> ReleaseBotError:
    """A release the command line looks for and the database does not hold (Slack's own wording speaks of channels)."""
    return ReleaseBotError(f"no release {version} in the database at {safe_url(url)}")
