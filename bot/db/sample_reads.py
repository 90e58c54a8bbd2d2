"""Read-only queries over stored metric samples, for charts (the watch's own repository only writes and
reads the newest few)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.db.models import MetricSampleRow
from bot.domain.incident import SampleRecord

MAX_POINTS = 2000  # a chart 1000 px wide gains nothing from more; bounds the read of a long watch


def samples_between(
    session: Session, release_id: int, since: datetime, until: datetime
) -> list[SampleRecord]:
    """Every sample of a release taken in [since, until], oldest first (the newest MAX_POINTS at most)."""
    stmt = (
        select(MetricSampleRow)
        .where(
            MetricSampleRow.release_id == release_id,
            MetricSampleRow.at >= since,
            MetricSampleRow.at <= until,
        )
        .order_by(MetricSampleRow.id.desc())
        .limit(MAX_POINTS)
    )
    rows = list(session.scalars(stmt))
    rows.reverse()
    return [SampleRecord(r.release_id, r.at, r.metric, r.value, r.verdict, r.reason) for r in rows]
