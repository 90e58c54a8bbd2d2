"""The leadership row's statements: taking, renewing and giving up the lease, and the fence leader-only writes pass.

How the statements order against each other on Postgres (READ COMMITTED):

- The fence (``holds``) reads the row ``FOR KEY SHARE`` inside the leader-only transaction: the epoch must be the
  caller's and the lease unexpired by the server's clock. The lock lasts until that transaction ends.
- A takeover locks the row ``FOR UPDATE``, which waits for every fence still held, then re-reads the row. So a
  deposed leader's write either committed before the new epoch existed, or sees the new epoch and is refused: two
  leaders' writes are never both accepted at one instant.
- A renewal changes no key column, so it does not wait for the fences of its own leader's transactions.

A leader that vanished mid-transaction (a silent network cut) would keep its fence's lock forever and so block the
takeover; the fence therefore bounds its own transaction's idle time and lock waits, and Postgres ends such a session
well within the lease.

With SQLite the lease is the file lock beside the database (``bot.runtime.leader.SqliteLeader``): the row keeps the
epoch, with no expiry, and every write transaction already excludes every other (``BEGIN IMMEDIATE``).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Connection, select, text, update
from sqlalchemy.orm import Session

from bot.db.models import LeadershipRow
from bot.domain.leadership import Term

ROW = 1
# A leader-only transaction that goes quiet this long, or waits this long for a lock, is ended by Postgres: its
# process may be cut off, and its fence would block the next leader's takeover. Both are far below the lease.
FENCED_IDLE_MS = 3000
FENCED_LOCK_MS = 2000

_TAKE = text(
    """
    WITH unheld AS (
        SELECT id FROM leadership
        WHERE id = :row AND (expires_at IS NULL OR expires_at <= clock_timestamp())
        FOR UPDATE
    )
    UPDATE leadership
    SET epoch = leadership.epoch + 1, holder = :holder,
        expires_at = clock_timestamp() + make_interval(secs => :lease), changed_at = clock_timestamp()
    FROM unheld WHERE leadership.id = unheld.id
    RETURNING leadership.epoch
    """
)
_RENEW = text(
    """
    UPDATE leadership SET expires_at = clock_timestamp() + make_interval(secs => :lease)
    WHERE id = :row AND epoch = :epoch AND holder = :holder AND expires_at > clock_timestamp()
    RETURNING epoch
    """
)
_RELEASE = text(
    """
    UPDATE leadership SET expires_at = clock_timestamp(), changed_at = clock_timestamp()
    WHERE id = :row AND epoch = :epoch AND holder = :holder
    """
)
_BOUND_FENCED_TRANSACTION = text(
    "SELECT set_config('idle_in_transaction_session_timeout', :idle, true), set_config('lock_timeout', :lock, true)"
)


def take(conn: Connection, holder: str, lease_s: float) -> Term | None:
    """Start a new term for ``holder`` if the lease is free or expired by the server's clock (Postgres)."""
    epoch = conn.execute(_TAKE, {"row": ROW, "holder": holder, "lease": lease_s}).scalar()
    return None if epoch is None else Term(int(epoch), holder)


def renew(conn: Connection, term: Term, lease_s: float) -> bool:
    """Extend an unexpired lease from the server's clock now; False once it is lost (expired or taken over)."""
    params = {"row": ROW, "epoch": term.epoch, "holder": term.holder, "lease": lease_s}
    return conn.execute(_RENEW, params).scalar() is not None


def release(conn: Connection, term: Term) -> None:
    """Let the lease end now, so that a standby takes over at its next try instead of waiting it out."""
    conn.execute(_RELEASE, {"row": ROW, "epoch": term.epoch, "holder": term.holder})


def claim_without_lease(conn: Connection, holder: str) -> Term:
    """Start a new term with no expiry: for the one SQLite process, whose file lock is its lease."""
    conn.execute(
        update(LeadershipRow)
        .where(LeadershipRow.id == ROW)
        .values(epoch=LeadershipRow.epoch + 1, holder=holder, expires_at=None, changed_at=datetime.now(UTC))
    )
    epoch = conn.execute(select(LeadershipRow.epoch).where(LeadershipRow.id == ROW)).scalar_one()
    return Term(int(epoch), holder)


def holds(session: Session, term: Term) -> bool:
    """The fence: whether ``term`` still leads, checked in (and held for) the caller's transaction."""
    stmt = select(LeadershipRow.epoch).where(
        LeadershipRow.id == ROW, LeadershipRow.epoch == term.epoch, LeadershipRow.holder == term.holder
    )
    if session.get_bind().dialect.name == "postgresql":
        session.execute(_BOUND_FENCED_TRANSACTION, {"idle": str(FENCED_IDLE_MS), "lock": str(FENCED_LOCK_MS)})
        stmt = stmt.where(LeadershipRow.expires_at > text("clock_timestamp()")).with_for_update(
            read=True, key_share=True
        )
    return session.execute(stmt).first() is not None
