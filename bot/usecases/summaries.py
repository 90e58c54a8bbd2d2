"""The release summary: how long each step and phase took, who did what, overrides, incidents and checklist
completion, computed only from the audit trail and the release as stored.

Pure: no Slack, no database. The Markdown report (``bot.usecases.reports``), the thread summary and the App Home all
read it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.domain.records import AuditEvent
from bot.domain.release import progress
from bot.i18n import t
from bot.usecases.releases import ReleaseView

_ENDINGS = ("release_finished", "release_aborted", "release_rolled_back")
# The acts "who did what" counts; each is said by the catalog key did_<action> (bot.i18n.dashboard).
_ACTS = (
    "release_started",
    "item_checked",
    "item_unchecked",
    "step_advanced",
    "release_finished",
    "gate_overridden",
    "release_aborted",
    "rollback_confirmed",
    "rollback_by_hand",
    "health_check",
    "incident_acknowledged",
    "incident_dismissed",
)


@dataclass(frozen=True)
class Span:
    """Time spent in one step (or phase); ``end`` None while it is still running."""

    key: str
    phase_key: str
    start: datetime
    end: datetime | None

    def duration(self, now: datetime) -> timedelta:
        return (self.end or now) - self.start


@dataclass(frozen=True)
class Summary:
    version: str
    status: str
    started_at: datetime
    ended_at: datetime | None
    steps: tuple[Span, ...]
    phases: tuple[tuple[str, str, timedelta], ...]  # key, title, total time
    people: tuple[tuple[str, str], ...]  # actor name, what they did
    overrides: tuple[AuditEvent, ...]
    incidents: tuple[AuditEvent, ...]
    completion: tuple[tuple[str, int, int], ...]  # phase title, ticked, total
    checklist_version: str | None = None

    @property
    def duration(self) -> timedelta | None:
        return self.ended_at - self.started_at if self.ended_at else None


def step_spans(view: ReleaseView, events: list[AuditEvent]) -> list[Span]:
    """Each step the release entered, from its audit trail, in order."""
    phase_of = {s.key: s.phase_key for s in view.steps}
    first = view.steps[0].key if view.steps else ""
    spans: list[Span] = []
    current: tuple[str, datetime] | None = None
    for e in sorted(events, key=lambda e: (e.at, e.id)):
        if e.action == "release_started":
            current = (first, e.at)
        elif e.action == "step_advanced" and current is not None:
            spans.append(Span(current[0], phase_of.get(current[0], current[0]), current[1], e.at))
            current = (str(e.details.get("to")), e.at)
        elif e.action in _ENDINGS and current is not None:
            spans.append(Span(current[0], phase_of.get(current[0], current[0]), current[1], e.at))
            current = None
    if current is not None:
        spans.append(Span(current[0], phase_of.get(current[0], current[0]), current[1], None))
    return spans


def summarize(view: ReleaseView, events: list[AuditEvent], now: datetime, lang: str) -> Summary:
    """Everything the report says about a release, computed once."""
    record = view.release
    spans = step_spans(view, events)
    totals: dict[str, timedelta] = {}
    for span in spans:
        totals[span.phase_key] = totals.get(span.phase_key, timedelta()) + span.duration(now)
    phases = tuple((p.key, p.title, totals[p.key]) for p in view.checklist.flow_phases if p.key in totals)
    counts: dict[str, Counter[str]] = {}
    for e in events:
        if e.action in _ACTS and e.actor.id != "bot":
            counts.setdefault(e.actor.name, Counter())[e.action] += 1
    people = tuple(
        (name, ", ".join(t(lang, f"did_{a}", n=n) for a, n in c.items())) for name, c in counts.items()
    )
    ticked = progress(view.checklist, view.checked)
    completion = tuple(
        (p.title, ticked[p.key][0], ticked[p.key][1]) for p in view.checklist.phases if ticked[p.key][1]
    )
    return Summary(
        version=record.version,
        status=record.status,
        started_at=record.started_at,
        ended_at=record.ended_at,
        steps=tuple(spans),
        phases=phases,
        people=people,
        overrides=tuple(e for e in events if e.action == "gate_overridden"),
        incidents=tuple(e for e in events if e.action == "incident_opened"),
        completion=completion,
        checklist_version=record.checklist_version,
    )


def fmt_duration(delta: timedelta) -> str:
    """``1h 02m 03s`` / ``2m 05s`` / ``4s``: short and unambiguous in a table cell."""
    total = max(int(delta.total_seconds()), 0)
    hours, rest = divmod(total, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m {seconds:02d}s"
    if minutes:
        return f"{minutes}m {seconds:02d}s"
    return f"{seconds}s"


def incident_title(event: AuditEvent) -> str:
    d = event.details
    return str(d.get("title") or d.get("criterion") or d.get("reason") or "incident")
