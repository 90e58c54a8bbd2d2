"""The traffic state of releases (rows ⇄ records; never commits)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from bot.db.models import TimerRow, TrafficStateRow
from bot.domain.traffic import TrafficState


def _state(row: TrafficStateRow) -> TrafficState:
    return TrafficState(
        release_id=row.release_id,
        view=dict(row.view),
        observed_at=row.observed_at,
        stage_percent=row.stage_percent,
        requested_at=row.requested_at,
        serving_since=row.serving_since,
        drift=dict(row.drift) if row.drift is not None else None,
        drift_posted=row.drift_posted,
        drift_acknowledged=row.drift_acknowledged,
        acknowledged_by=row.acknowledged_by,
    )


class TrafficStates:
    def __init__(self, session: Session) -> None:
        self._s = session

    def get(self, release_id: int, *, for_update: bool = False) -> TrafficState | None:
        stmt = select(TrafficStateRow).where(TrafficStateRow.release_id == release_id)
        if for_update:
            stmt = stmt.with_for_update()
        row = self._s.scalars(stmt).first()
        return _state(row) if row is not None else None

    def save(self, release_id: int, **values: Any) -> TrafficState:
        row = self._s.get(TrafficStateRow, release_id)
        if row is None:
            values.setdefault("view", {})
            row = TrafficStateRow(release_id=release_id, **values)
            self._s.add(row)
        else:
            for key, value in values.items():
                setattr(row, key, value)
        self._s.flush()
        return _state(row)

    def restart_stage_wait(self, key: str, due_at: datetime, payload: dict[str, Any]) -> bool:
        """Move a pending stage-wait timer to ``due_at`` (the wait starts when the cluster serves the weight)."""
        row = self._s.scalars(select(TimerRow).where(TimerRow.key == key, TimerRow.status == "pending")).first()
        if row is None:
            return False
        self._s.execute(
            update(TimerRow)
            .where(TimerRow.id == row.id)
            .values(due_at=due_at, payload={**dict(row.payload), **payload})
        )
        return True
