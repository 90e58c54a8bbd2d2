"""Turns to post in a channel, taken in the database so that every replica keeps to Slack's 1 post/s per channel.

Each process paces its own posts (``bot.slack.gateway.ChannelPacer``), but two replicas answering clicks in one
channel each kept their own pace and together went over it: Slack answered 429 and thread replies were lost. Here a
turn is one upsert on ``channel_pace``, on the database's clock, which all replicas share; no lock is held while
waiting for the turn.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Engine, text

_TAKE = text(
    "INSERT INTO channel_pace (channel_id, next_at) VALUES (:channel, clock_timestamp() + make_interval(secs => :gap)) "
    "ON CONFLICT (channel_id) DO UPDATE "
    "SET next_at = greatest(channel_pace.next_at, clock_timestamp()) + make_interval(secs => :gap) "
    "RETURNING extract(epoch FROM channel_pace.next_at - clock_timestamp()) - :gap"
)


def shared_turns(engine: Engine) -> Callable[[str, float], float] | None:
    """``take(channel, gap_s)`` → seconds until this caller's turn, for Postgres; None elsewhere (SQLite runs one
    replica, whose own pacer is enough)."""
    if engine.dialect.name != "postgresql":
        return None

    def take(channel: str, gap_s: float) -> float:
        with engine.begin() as conn:
            wait = conn.execute(_TAKE, {"channel": channel, "gap": gap_s}).scalar_one()
        return max(0.0, float(wait))

    return take
