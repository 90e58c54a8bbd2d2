"""Audit exports and the Markdown release report, built only from what the database recorded."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.domain.records import AuditEvent, ReleaseRecord
from bot.services import ReleaseView


def _iso(at: datetime) -> str:
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def audit_rows(record: ReleaseRecord, events: list[AuditEvent]) -> list[dict[str, Any]]:
    """Every audit event of a release in time order: who, what, when."""
    return [
        {
            "at": _iso(e.at),
            "release": record.version,
            "channel": record.channel_id,
            "actor_id": e.actor.id,
            "actor_name": e.actor.name,
            "action": e.action,
            "item": e.item_key or "",
            "details": e.details,
            "slack_action_ts": e.slack_action_ts or "",
        }
        for e in sorted(events, key=lambda e: (e.at, e.id))
    ]


def _describe(event: AuditEvent) -> str:
    d = event.details
    if event.action in ("item_checked", "item_unchecked"):
        verb = "ticked" if event.action == "item_checked" else "unticked"
        return f"{verb} `{event.item_key}` ({d.get('text', '')})"
    if event.action == "step_advanced":
        return f"moved from {d.get('from')} to {d.get('to')}"
    if event.action == "gate_overridden":
        return f"overrode the {', '.join(d.get('gates', []))} gate leaving {d.get('from')}: {d.get('reason', '')}"
    if d:
        shown = ", ".join(f"{k}={v}" for k, v in d.items() if k not in ("text",))
        return f"{event.action} ({shown})"
    return event.action


def markdown_report(view: ReleaseView, events: list[AuditEvent]) -> str:
    """A Markdown report: the release, its timeline, and checklist completion."""
    record = view.release
    lines = [
        f"# Release {record.version}",
        "",
        f"- Status: {record.status}",
        f"- Channel: {record.channel_id}",
        f"- Started: {_iso(record.started_at)} by {record.started_by.name} ({record.started_by.id})",
    ]
    if record.ended_at:
        lines.append(f"- Ended: {_iso(record.ended_at)} ({record.ended_at - record.started_at})")
    lines += ["", "## Checklist", ""]
    for phase in view.checklist.phases:
        items = phase.items
        if not items:
            continue
        done = sum(1 for i in items if view.checked.get(i.key))
        lines.append(f"- {phase.title}: {done}/{len(items)}")
    lines += ["", "## Timeline", "", "| time (UTC) | who | what |", "|---|---|---|"]
    for e in sorted(events, key=lambda e: (e.at, e.id)):
        what = _describe(e).replace("|", "\\|").replace("\n", " ")
        lines.append(f"| {_iso(e.at)} | {e.actor.name} | {what} |")
    return "\n".join(lines) + "\n"
