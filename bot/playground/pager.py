"""A PagerDuty stand-in for the playground: the ``Pager`` port, showing each event instead of sending it.

The real adapter speaks HTTPS only (PagerDuty's Events API is HTTPS), and the playground has no certificate to
offer it, so the stand-in sits behind the port itself. Everything before it is the bot's own: the outbox, its
dedup keys, exactly one trigger per incident, the resolve after a rollback, the change events on transitions.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from bot.ports import ChangeEvent, PageEvent


@dataclass(frozen=True)
class Page:
    """One event as PagerDuty would have received it."""

    action: str  # trigger | acknowledge | resolve | change
    summary: str
    dedup_key: str | None = None
    severity: str | None = None


class PagerStandIn:
    """Records every event and hands it to ``show``; never fails (the outbox's retries are tested elsewhere)."""

    def __init__(self, show: Callable[[Page], None] = lambda _page: None) -> None:
        self._show = show
        self._lock = threading.Lock()
        self.pages: list[Page] = []
        self._summaries: dict[str, str] = {}

    def send(self, event: PageEvent) -> None:
        with self._lock:
            if event.action == "trigger":
                self._summaries[event.dedup_key] = event.summary
            summary = event.summary or self._summaries.get(event.dedup_key, "")
            page = Page(
                event.action, summary, event.dedup_key, event.severity if event.action == "trigger" else None
            )
            self.pages.append(page)
        self._show(page)

    def change(self, event: ChangeEvent) -> None:
        page = Page("change", event.summary)
        with self._lock:
            self.pages.append(page)
        self._show(page)
