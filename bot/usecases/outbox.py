"""The PagerDuty outbox: deliver queued events through the ``Pager`` port, in order per dedup key, with
backoff, across restarts and outages.

Each dedup key is a lane of its own: its events go out in order, one at a time, but lanes run side by side, and a
run never waits for a lane another run is already working. A trigger that PagerDuty answers slowly and with errors
(each attempt is the adapter's bounded retries, seconds long) therefore never delays another key's first attempt:
with one queue, a latency page once waited behind the error-rate page's retries and reached PagerDuty ~63 s after
the breach began.

The rows are the truth. A use case queues an event in the same transaction as the decision behind it; this job
(leader-only) sends it later. An event that cannot be delivered stays pending with ``next_attempt_at`` pushed
back (doubling, capped) and is retried until PagerDuty takes it; one PagerDuty refuses for good (400, a bad
integration key) is marked failed and audited. Resending after a crash between "sent" and "marked delivered"
is harmless: every alert event carries the same ``dedup_key``, so PagerDuty appends it to the open alert.

Delivery is leader-only, and each claim and mark is fenced by the leadership epoch in its own transaction: a deposed
leader's delivery is refused before it sends, and its late mark is refused (the row's claim then lapses and the next
leader sends the event again, which the dedup key makes harmless).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

from bot.domain.incident import OutboxRecord, OutboxStatus
from bot.domain.records import BOT
from bot.errors import NotLeader, PagerError
from bot.observability import OUTBOX_DEPTH, PAGES_SENT
from bot.ports import ChangeEvent, Clock, PageEvent, Pager
from bot.usecases.releases import UowFactory

log = logging.getLogger(__name__)
MAX_LANES = 8  # keys delivered side by side in one run; the rest wait for the next run


def lanes(pending: Iterable[OutboxRecord]) -> dict[str, list[OutboxRecord]]:
    """Pending rows per dedup key, oldest first; a change event (no key) is a lane of its own."""
    result: dict[str, list[OutboxRecord]] = {}
    for row in pending:
        result.setdefault(row.dedup_key if row.dedup_key is not None else f"#change:{row.id}", []).append(row)
    return result


def _links(raw: Any) -> tuple[tuple[str, str], ...]:
    return tuple((str(href), str(text)) for href, text in raw or [])


def to_event(row: OutboxRecord) -> PageEvent | ChangeEvent:
    """Rebuild the port's value from a stored body."""
    body = row.body
    if row.action == "change":
        return ChangeEvent(
            summary=str(body["summary"]),
            source=str(body.get("source", "")),
            timestamp=datetime.fromisoformat(str(body["timestamp"])),
            custom_details=dict(body.get("custom_details") or {}),
            links=_links(body.get("links")),
        )
    if row.dedup_key is None or row.action not in ("trigger", "acknowledge", "resolve"):
        raise ValueError(f"outbox row {row.id} has no dedup key or an unknown action {row.action!r}")
    if row.action != "trigger":
        return PageEvent(action=row.action, dedup_key=row.dedup_key)  # type: ignore[arg-type]
    return PageEvent(
        action="trigger",
        dedup_key=row.dedup_key,
        summary=str(body["summary"]),
        source=str(body["source"]),
        severity=str(body.get("severity", "critical")),
        timestamp=datetime.fromisoformat(str(body["timestamp"])),
        custom_details=dict(body.get("custom_details") or {}),
        links=_links(body.get("links")),
    )


class PagerOutbox:
    """Delivers pending PagerDuty events; ``deliver_due`` is the leader's periodic job."""

    def __init__(
        self,
        *,
        uow: UowFactory,
        clock: Clock,
        pager: Pager,
        base_backoff_s: float = 2.0,
        max_backoff_s: float = 60.0,
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._pager = pager
        self._base = base_backoff_s
        self._max = max_backoff_s
        self._lock = threading.Lock()
        self._busy: set[str] = set()  # lanes a run in this process is working on

    def backoff(self, attempts: int) -> timedelta:
        """The wait after the ``attempts``-th failed attempt: base, 2×base, 4×base, … capped."""
        return timedelta(seconds=min(self._base * 2 ** max(attempts - 1, 0), self._max))

    def deliver_due(self) -> int:
        """Send every due event, oldest first per dedup key, keys side by side; return how many PagerDuty
        accepted. Lanes another run (the interval job, a kick) is already working are left to it."""
        with self._uow() as uow:
            pending = uow.watch.outbox.pending()
        mine = self._take(lanes(pending))
        try:
            delivered = self._deliver(mine)
        finally:
            with self._lock:
                self._busy.difference_update(mine)
        with self._uow() as uow:
            OUTBOX_DEPTH.set(uow.watch.outbox.depth())
        return delivered

    def _take(self, all_lanes: dict[str, list[OutboxRecord]]) -> dict[str, list[OutboxRecord]]:
        with self._lock:
            free = {key: rows for key, rows in all_lanes.items() if key not in self._busy}
            mine = dict(list(free.items())[:MAX_LANES])
            self._busy.update(mine)
        return mine

    def _deliver(self, mine: dict[str, list[OutboxRecord]]) -> int:
        if len(mine) <= 1:
            return sum(self._lane(rows) for rows in mine.values())
        with ThreadPoolExecutor(max_workers=len(mine), thread_name_prefix="pager-lane") as pool:
            return sum(pool.map(self._lane, mine.values()))

    def _lane(self, rows: list[OutboxRecord]) -> int:
        """Deliver one key's due rows in order; stop at the first that is not due or not delivered.

        A later event of an alert must never overtake an earlier one: a trigger delivered after its resolve
        would open a new incident."""
        delivered = 0
        try:
            for row in rows:
                if row.next_attempt_at > self._clock.now() or not self._attempt(row):
                    break
                delivered += 1
        except NotLeader as e:
            log.warning("outbox left to the next leader: %s", e)
        except Exception:  # one lane's surprise must not take the other lanes' results down with it
            log.exception("outbox lane %s failed", rows[0].dedup_key)
        return delivered

    def _attempt(self, row: OutboxRecord) -> bool:
        # Leader-only, like the marks below: the claim is fenced by the leadership epoch in its own transaction and
        # made just before the send, so a deposed leader sends nothing it claimed after losing the lease.
        with self._uow() as uow:
            uow.leader_only()
            if not uow.watch.outbox.claim(row.id, row.attempts, self._clock.now() + timedelta(seconds=60)):
                return False  # another process is on it
            uow.commit()
        attempts = row.attempts + 1
        try:
            event = to_event(row)
            if isinstance(event, ChangeEvent):
                self._pager.change(event)
            else:
                self._pager.send(event)
        except PagerError as e:
            return self._failed(row, attempts, e)
        except (ValueError, KeyError) as e:  # a body we cannot rebuild: retrying will not help
            return self._failed(row, attempts, PagerError("bad outbox row", retryable=False, detail=str(e)))
        now = self._clock.now()
        with self._uow() as uow:
            uow.leader_only()
            uow.watch.outbox.mark(
                row.id, status=OutboxStatus.DELIVERED.value, delivered_at=now, last_error=None
            )
            if row.release_id is not None:
                uow.audit.append(
                    row.release_id,
                    "pagerduty_delivered",
                    BOT,
                    now,
                    details={"action": row.action, "dedup_key": row.dedup_key, "attempts": attempts},
                )
            uow.commit()
        PAGES_SENT.labels(action=row.action).inc()
        log.info(
            "outbox %s: PagerDuty took %s %s after %d attempt(s)", row.id, row.action, row.dedup_key, attempts
        )
        return True

    def _failed(self, row: OutboxRecord, attempts: int, error: PagerError) -> bool:
        now = self._clock.now()
        words = (str(error) or error.user_message)[:500]
        with self._uow() as uow:
            uow.leader_only()
            if error.retryable:
                uow.watch.outbox.mark(row.id, next_attempt_at=now + self.backoff(attempts), last_error=words)
            else:
                uow.watch.outbox.mark(row.id, status=OutboxStatus.FAILED.value, last_error=words)
                if row.release_id is not None:
                    uow.audit.append(
                        row.release_id,
                        "pagerduty_refused",
                        BOT,
                        now,
                        details={"action": row.action, "dedup_key": row.dedup_key, "error": words},
                    )
            uow.commit()
        level = logging.WARNING if error.retryable else logging.ERROR
        log.log(
            level,
            "outbox %s: %s %s not delivered (attempt %d): %s",
            row.id,
            row.action,
            row.dedup_key,
            attempts,
            words,
        )
        return False
