"""Audit exports and the Markdown release report, built only from what the database recorded."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.domain.evidence import EvidenceStatus
from bot.domain.records import AuditEvent, ReleaseRecord
from bot.i18n import t
from bot.usecases.evidence import part_words
from bot.usecases.releases import ReleaseView
from bot.usecases.summaries import fmt_duration, incident_title, summarize


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
    if event.action.startswith(("rollback_", "service_")) or event.action == "release_rolled_back":
        return _describe_rollback(event)
    if event.action == "gate_overridden":
        return f"overrode the {', '.join(d.get('gates', []))} gate leaving {d.get('from')}: {d.get('reason', '')}"
    if d:
        shown = ", ".join(f"{k}={v}" for k, v in d.items() if k not in ("text",))
        return f"{event.action} ({shown})"
    return event.action


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def summary_markdown(
    view: ReleaseView, events: list[AuditEvent], now: datetime | None = None, *, lang: str
) -> list[str]:
    """Durations per phase and step, who did what, overrides and incidents, as Markdown lines."""
    ordered = sorted(events, key=lambda e: (e.at, e.id))
    now = now or view.release.ended_at or (ordered[-1].at if ordered else view.release.started_at)
    summary = summarize(view, ordered, now, lang)
    lines = ["", "## Durations", "", "| phase | time |", "|---|---|"]
    lines += [f"| {_cell(title)} | {fmt_duration(total)} |" for _key, title, total in summary.phases]
    lines += ["", "| step | entered (UTC) | time |", "|---|---|---|"]
    for span in summary.steps:
        running = "" if span.end else " (running)"
        lines.append(f"| {span.key} | {_iso(span.start)} | {fmt_duration(span.duration(now))}{running} |")
    lines += ["", "## Who did what", ""]
    lines += [f"- {name}: {what}" for name, what in summary.people] or [f"- {t(lang, 'nobody_yet')}"]
    lines += ["", "## Overrides", ""]
    lines += [
        f"- {_iso(e.at)} {e.actor.name} overrode the {', '.join(e.details.get('gates', []))} gate leaving "
        f"{e.details.get('from')}: {_cell(str(e.details.get('reason', '')))}"
        for e in summary.overrides
    ] or ["- none"]
    lines += ["", "## Incidents", ""]
    lines += [
        f"- {_iso(e.at)} {_cell(incident_title(e))} (declared by {e.actor.name})" for e in summary.incidents
    ] or ["- none"]
    return lines


def evidence_markdown(view: ReleaseView) -> list[str]:
    """Which ticks a source proved, which a manager gave despite the evidence, and which people gave on trust."""
    if not view.checklist.evidence_items:
        return []

    def found(key: str) -> str:
        result = view.evidence.get(key)
        part = result.headline() if result is not None else None
        if part is None:
            return "not evaluated"
        link = f" ({part.link})" if part.link else ""
        return _cell(part_words(part, "en")) + link

    proven, overridden, trusted, open_ = [], [], [], []
    for phase in view.checklist.flow_phases:
        for item in phase.items:
            state = view.items.get(item.key)
            ticked = bool(state and state.checked)
            result = view.evidence.get(item.key)
            if item.key in view.item_overrides and ticked:
                event = view.item_overrides[item.key]
                reason = _cell(str(event.details.get("reason", "")))
                overridden.append(f"- {item.text}: {event.actor.name}, \"{reason}\"; evidence: {found(item.key)}")
            elif ticked and state is not None and state.actor.id == "bot":
                proven.append(f"- {item.text}: {found(item.key)}")
            elif ticked and state is not None:
                why = f"evidence: {found(item.key)}" if item.evidence else "no evidence source"
                trusted.append(f"- {item.text}: {state.actor.name} ({why})")
            elif item.evidence and result is not None and result.status is not EvidenceStatus.PROVEN:
                open_.append(f"- {item.text}: {found(item.key)}")
    lines = ["", "## Evidence", ""]
    for title, entries in (
        ("Proven (ticked by the bot from its evidence)", proven),
        ("Ticked despite the evidence", overridden),
        ("Taken on trust (ticked by people)", trusted),
        ("Not proven and not ticked", open_),
    ):
        lines += [f"### {title}", "", *(entries or ["- none"]), ""]
    return lines[:-1]


def markdown_report(
    view: ReleaseView, events: list[AuditEvent], now: datetime | None = None, *, lang: str
) -> str:
    """A Markdown report: the release, durations, people, overrides, incidents, checklist and timeline."""
    record = view.release
    lines = [
        f"# Release {record.version}",
        "",
        f"- Status: {record.status}",
        f"- Channel: {record.channel_id}",
        f"- Started: {_iso(record.started_at)} by {record.started_by.name} ({record.started_by.id})",
        f"- Checklist: {view.checklist.title} ({record.checklist_name}), "
        + (f"version {record.checklist_version}" if record.checklist_version else "no version recorded"),
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
    lines += evidence_markdown(view)
    lines += summary_markdown(view, events, now, lang=lang)
    lines += ["", "## Timeline", "", "| time (UTC) | who | what |", "|---|---|---|"]
    for e in sorted(events, key=lambda e: (e.at, e.id)):
        what = _describe(e).replace("|", "\\|").replace("\n", " ")
        lines.append(f"| {_iso(e.at)} | {e.actor.name} | {what} |")
    incident = incident_report(view, events)
    if incident:
        lines += ["", incident]
    return "\n".join(lines) + "\n"


# --- the incident report draft (after a rollback) --------------------------------------------------------

_DECIDED = (
    "rollback_confirmed",
    "rollback_by_hand",
    "rollback_refused",
    "rollback_requested",
    "incident_acknowledged",
    "incident_dismissed",
)
_DONE = (
    "rollback_patched",
    "rollback_succeeded",
    "rollback_failed",
    "rollback_skipped",
    "rollback_interrupted",
    "release_rolled_back",
    "service_locked",
    "service_unlocked",
)
# What the metric watch and incident flow record; matched by prefix since they name their own events.
_FIRED_PREFIXES = ("criterion", "breach", "alert", "incident", "page", "watch_", "metric")


def _kind(event: AuditEvent) -> str | None:
    if event.action in _DECIDED or (
        # "roll back" is how refusals were recorded before bot.domain.roles named the actions.
        event.action == "permission_denied" and event.details.get("action") in ("roll_back", "roll back")
    ):
        return "decided"
    if event.action in _DONE or event.action == "health_check":
        return "done"
    if event.action.startswith(_FIRED_PREFIXES):
        return "fired"
    return None


def _describe_rollback(event: AuditEvent) -> str:
    d = event.details
    if event.action == "rollback_confirmed":
        rev = d.get("to_revision") or "previous"
        return (
            f"confirmed the rollback of deployment/{d.get('deployment')} in {d.get('namespace')} "
            f"to revision {rev}: {d.get('reason', '')}"
        )
    if event.action == "rollback_patched":
        frm = ", ".join(d.get("from_images") or [])
        to = ", ".join(d.get("to_images") or [])
        return (
            f"{d.get('kubectl', 'patched')}: revision {d.get('from_revision')} ({frm}) "
            f"→ revision {d.get('to_revision')} ({to})"
        )
    if event.action == "rollback_succeeded":
        return f"rollout finished: {d.get('rollout', '')}"
    if event.action == "rollback_failed":
        return f"rollback failed: {d.get('error', '')}"
    if event.action == "rollback_skipped":
        return f"nothing rolled back: {d.get('message', '')}"
    if event.action == "rollback_interrupted":
        return f"rollback {d.get('rollback')} found interrupted (was {d.get('was')}); not retried"
    if event.action == "rollback_refused":
        return f"rollback refused: {d.get('why', '')}"
    if event.action == "rollback_by_hand":
        return f"rolled back by hand (outside the bot): {d.get('reason', '')}"
    if event.action == "release_rolled_back":
        return "release marked rolled back" + (" (by hand)" if d.get("by_hand") else "")
    if event.action == "service_locked":
        return f"production of {d.get('service')} locked until a release manager clears it"
    if event.action == "service_unlocked":
        return f"production of {d.get('service')} unlocked: {d.get('reason', '')}"
    shown = ", ".join(f"{k}={v}" for k, v in d.items())
    return f"{event.action} ({shown})"


def incident_report(view: ReleaseView, events: list[AuditEvent]) -> str:
    """The incident-report draft: what fired, who decided, what was done when. Empty without a rollback."""
    ordered = sorted(events, key=lambda e: (e.at, e.id))
    if not any(e.action in ("rollback_confirmed", "rollback_by_hand") for e in ordered):
        return ""
    record = view.release
    confirmed = [e for e in ordered if e.action in ("rollback_confirmed", "rollback_by_hand")]
    outcome = next(
        (
            e
            for e in reversed(ordered)
            if e.action in ("rollback_succeeded", "rollback_failed", "rollback_skipped")
        ),
        None,
    )
    lines = [
        f"## Incident report (draft): {record.version} rolled back"
        if record.status == "rolled_back"
        else f"## Incident report (draft): {record.version}",
        "",
        f"- Service: {record.service}",
        f"- Release status: {record.status}",
    ]
    for e in confirmed:
        how = " (rolled back by hand)" if e.action == "rollback_by_hand" else ""
        lines.append(
            f"- Decided by {e.actor.name} ({e.actor.id}) at {_iso(e.at)}{how}: {e.details.get('reason', '')}"
        )
    if outcome is not None:
        lines.append(f"- Outcome: {_describe_rollback(outcome)}")
    lines += ["", "### Timeline", "", "| time (UTC) | kind | who | what |", "|---|---|---|---|"]
    for e in ordered:
        kind = _kind(e)
        if kind is None:
            continue
        what = _describe(e).replace("|", "\\|").replace("\n", " ")
        lines.append(f"| {_iso(e.at)} | {kind} | {e.actor.name} | {what} |")
    followup = view.checklist.followup_phase
    if followup is not None and followup.items:
        lines += ["", f"### Follow-up: {followup.title}", ""]
        for item in followup.items:
            mark = "x" if view.checked.get(item.key) else " "
            lines.append(f"- [{mark}] {item.text}")
    return "\n".join(lines)
