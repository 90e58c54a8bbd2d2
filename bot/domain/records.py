"""Plain records of what is stored: what repositories hand to services and services hand to renderers.

Imports only the standard library.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Actor:
    """Who did something: a Slack user, or the bot itself (id ``bot``)."""

    id: str
    name: str

    @property
    def mention(self) -> str:
        return f"<@{self.id}>" if self.id.startswith(("U", "W")) else self.name


BOT = Actor("bot", "release-bot")


@dataclass(frozen=True)
class ReleaseRecord:
    """A release as stored."""

    id: int
    version: str
    channel_id: str
    service: str
    checklist_name: str
    status: str
    step: str
    step_started_at: datetime
    step_started_by: str | None
    started_by: Actor
    started_at: datetime
    ended_at: datetime | None
    thread_ts: str | None
    baseline_p95_s: float | None
    last_activity_at: datetime
    checklist_version: str | None = None


@dataclass(frozen=True)
class ItemState:
    """Who last ticked or unticked an item, and when."""

    item_key: str
    checked: bool
    actor: Actor
    at: datetime


@dataclass(frozen=True)
class AuditEvent:
    """One line of the audit trail."""

    id: int
    release_id: int
    at: datetime
    actor: Actor
    action: str
    item_key: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    slack_action_ts: str | None = None


@dataclass(frozen=True)
class MessageRecord:
    """A Slack message owned by a release."""

    id: int
    release_id: int
    kind: str
    page: int
    channel_id: str
    ts: str | None
    content_rev: int
    synced_rev: int


@dataclass(frozen=True)
class TimerRecord:
    """A persisted due-time."""

    id: int
    release_id: int
    kind: str
    key: str
    due_at: datetime
    status: str
    payload: dict[str, Any]
    fired_at: datetime | None = None
    claimed_by: str | None = None
