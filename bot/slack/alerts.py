"""The incident's channel message and the watch's thread notes: pure Block Kit renderers, and the Slack
``AlertSink`` that posts them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.domain.checklist import CriterionKind, parse_duration
from bot.domain.incident import PING_CLAIM, IncidentRecord, IncidentStatus
from bot.domain.records import BOT
from bot.i18n import t
from bot.i18n.units import human_duration
from bot.slack.blocks import Block, escape, step_label
from bot.slack.dates import slack_date
from bot.slack.ids import ActionId
from bot.slack.notices import button, section
from bot.slack.publisher import Publisher
from bot.usecases.incident_words import fmt_ms, fmt_rate, thread_link
from bot.usecases.releases import ReleaseView

Message = tuple[str, list[Block]]


def _figure(kind: str | None, value: Any, lang: str) -> str:
    number = value if isinstance(value, int | float) else None
    return fmt_rate(number, lang) if kind == CriterionKind.ERROR_RATE.value else fmt_ms(number, lang)


def _window_words(window: object, lang: str) -> str:
    """The rate window as stored ("1m"), said the reader's way ("1분", "1 min")."""
    try:
        return human_duration(parse_duration(str(window)), lang)
    except ValueError:
        return "?"


def why_lines(view: ReleaseView, incident: IncidentRecord, lang: str) -> list[str]:
    """Which metric, its value, the threshold, the baseline, the window and the recent trend."""
    d = incident.details
    kind = d.get("kind")
    lines: list[str] = []
    if incident.declared_by != BOT.id:
        lines.append(
            t(lang, "alert_declared", who=f"<@{incident.declared_by}>", reason=escape(incident.reason or ""))
        )
    elif kind == CriterionKind.ERROR_RATE.value:
        lines.append(
            t(
                lang,
                "alert_value_rate",
                value=_figure(kind, d.get("value"), lang),
                threshold=_figure(kind, d.get("threshold"), lang),
            )
        )
    else:
        times = d.get("times_baseline")
        lines.append(
            t(
                lang,
                "alert_value_latency",
                value=_figure(kind, d.get("value"), lang),
                times=f"{times:.1f}" if isinstance(times, int | float) else "?",
                threshold=f"{d.get('threshold', 0):g}",
                limit=_figure(kind, d.get("limit"), lang),
            )
        )
    if incident.declared_by == BOT.id:
        baseline = incident.baseline_p95_s
        lines.append(
            t(lang, "alert_baseline", value=fmt_ms(baseline, lang))
            if baseline
            else t(lang, "alert_no_baseline")
        )
        since = d.get("since")
        lines.append(
            t(
                lang,
                "alert_window",
                window=_window_words(d.get("window"), lang),
                count=d.get("breaches_in_row", "?"),
                required=d.get("required_breaches", "?"),
                since=slack_date(datetime.fromisoformat(since), "{time}") if since else "?",
            )
        )
        trend = " → ".join(_figure(kind, v, lang) for _at, v in d.get("trend", []))
        lines.append(
            t(lang, "alert_trend", trend=trend or "?", direction=t(lang, f"direction_{d.get('direction')}"))
        )
    step = next((s for s in view.steps if s.key == incident.stage), None)
    lines.append(
        t(lang, "alert_stage", stage=step_label(view.checklist, step, lang) if step else incident.stage)
    )
    return lines


def render_alert(view: ReleaseView, incident: IncidentRecord, lang: str, *, paged: bool = True) -> Message:
    """The one channel message of an incident: who is pinged, why, and what to do about it.

    ``paged`` is False when no PagerDuty is set up: the message then says nobody was paged."""
    title = str(incident.details.get("title") or incident.criterion)
    version = view.release.version
    suffix = "" if paged else "_unpaged"
    head = t(lang, f"alert_title{suffix}", version=version, title=escape(title))
    # By role, as the seed's part 6 lists them: "테크 리드 <@U…> · DevOps <!subteam^S…>". On-call is PagerDuty's.
    contacts = " · ".join(
        # A contact without an id would be plain text that notifies nobody (`checklist check` warns about it).
        f"{escape(c.role)} {c.mention}" for c in view.checklist.contacts if c.via == "slack" and c.slack_id
    )
    if contacts:
        head += "\n" + t(lang, "alert_contacts", who=contacts)
    blocks: list[Block] = [section(head), section("\n".join(why_lines(view, incident, lang)))]
    link = thread_link(view)
    if link:
        blocks.append(
            {"type": "context", "elements": [{"type": "mrkdwn", "text": t(lang, "alert_thread", link=link)}]}
        )
    rid, iid = view.release.id, str(incident.id)
    status = incident.status
    who = f"<@{incident.handled_by}>" if incident.handled_by else ""
    if status is IncidentStatus.ACKNOWLEDGED:
        blocks.append(section(t(lang, "incident_acknowledged", who=who)))
    elif status is IncidentStatus.DISMISSED:
        blocks.append(section(t(lang, "incident_dismissed", who=who)))
    elif status is IncidentStatus.RESOLVED:
        blocks.append(section(t(lang, "incident_resolved", status=t(lang, f"status_{view.release.status}"))))
    if status.live and not view.status.is_terminal:
        elements = []
        if view.reached_production:  # before that, production runs an older release: nothing of this one to undo
            elements.append(button(ActionId.ROLLBACK, t(lang, "btn_rollback"), str(rid), "danger"))
            elements.append(button(ActionId.ROLLED_BACK_BY_HAND, t(lang, "btn_rolled_back_by_hand"), str(rid)))
        if status is IncidentStatus.OPEN:
            elements.append(button(ActionId.ACK_INCIDENT, t(lang, "btn_ack_incident"), iid, "primary"))
        elements.append(button(ActionId.DISMISS_INCIDENT, t(lang, "btn_dismiss_incident"), iid))
        blocks.append({"type": "actions", "elements": elements})
    return t(lang, f"alert_fallback{suffix}", version=version, title=escape(title)), blocks


class SlackAlerts:
    """The ``AlertSink`` on Slack: the ping goes to the channel (not only the thread), notes to the thread."""

    def __init__(self, publisher: Publisher, lang: str, *, paged: bool = True) -> None:
        self._publisher = publisher
        self._lang = lang
        self._paged = paged

    def ping(self, view: ReleaseView, incident: IncidentRecord) -> str:
        text, blocks = render_alert(view, incident, self._lang, paged=self._paged)
        return self._publisher.gateway.post(
            view.release.channel_id, text, blocks, marker=f"incident:{incident.id}:{incident.fire_count}"
        )

    def refresh(self, view: ReleaseView, incident: IncidentRecord) -> None:
        if incident.slack_ts is None or incident.slack_ts.startswith(PING_CLAIM):
            return
        text, blocks = render_alert(view, incident, self._lang, paged=self._paged)
        self._publisher.gateway.update(view.release.channel_id, incident.slack_ts, text, blocks)

    def redraw(self, view: ReleaseView, kinds: tuple[str, ...]) -> None:
        """Have the sync redraw the release's messages of these kinds soon (its sweep would, within 15 s)."""
        self._publisher.sync.mark_dirty(m.id for m in view.messages if m.kind in kinds)

    def thread_note(self, view: ReleaseView, text: str) -> None:
        if view.release.thread_ts is None:
            return
        self._publisher.gateway.post(
            view.release.channel_id, text, [section(text)], thread_ts=view.release.thread_ts
        )
