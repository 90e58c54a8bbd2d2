"""The release report in Slack: a summary in the thread when a release finishes or is rolled back, and
``/release report VERSION`` uploading the full Markdown report (the same text ``release-bot export --format md``
prints) as a file in the release thread."""

from __future__ import annotations

import logging
from datetime import datetime

from slack_bolt import Ack

from bot.domain.records import AuditEvent
from bot.domain.release import ReleaseStatus
from bot.errors import ChatError
from bot.i18n import t
from bot.ports import Clock
from bot.slack.blocks import Block, clip, escape
from bot.slack.dates import slack_date
from bot.slack.notices import section
from bot.slack.parsing import Command
from bot.slack.publisher import Publisher
from bot.usecases.lifecycle import Transition
from bot.usecases.releases import ReleaseView, Services, UowFactory
from bot.usecases.reports import markdown_report
from bot.usecases.summaries import Summary, fmt_duration, incident_title, summarize

log = logging.getLogger(__name__)
REPORTED = (ReleaseStatus.FINISHED, ReleaseStatus.ROLLED_BACK)
MAX_LINES = 25  # per section: a release with hundreds of ticks still fits one section of 3000 characters


def _lines(items: list[str]) -> str:
    shown = items[:MAX_LINES]
    if len(items) > MAX_LINES:
        shown.append(f"… +{len(items) - MAX_LINES}")
    return "\n".join(shown)


def render_summary(summary: Summary, lang: str, now: datetime) -> tuple[str, list[Block]]:
    """The thread summary: at most 7 blocks, each within Slack's 3000 characters."""
    duration = fmt_duration((summary.ended_at or now) - summary.started_at)
    status = t(lang, f"status_{summary.status}")
    blocks = [section(t(lang, "summary_title", version=summary.version, status=status, duration=duration))]
    phases = [f"• {escape(title)}: {fmt_duration(total)}" for _k, title, total in summary.phases]
    stages = [
        f"    ◦ {span.key}: {fmt_duration(span.duration(now))}"
        for span in summary.steps
        if span.key != span.phase_key
    ]
    if phases:
        blocks.append(section(t(lang, "summary_phases", lines=_lines(phases + stages))))
    if summary.people:
        blocks.append(
            section(
                t(lang, "summary_people", lines=_lines([f"• {escape(n)}: {w}" for n, w in summary.people]))
            )
        )
    if summary.overrides:
        lines = [
            f"• {e.actor.mention} {slack_date(e.at, '{time}')}: "
            f"{', '.join(t(lang, f'gate_{g}') for g in e.details.get('gates', []))} — "
            f"{escape(str(e.details.get('reason', '')))}"
            for e in summary.overrides
        ]
        blocks.append(section(t(lang, "summary_overrides", lines=_lines(lines))))
    if summary.incidents:
        lines = [f"• {escape(incident_title(e))} {slack_date(e.at, '{time}')}" for e in summary.incidents]
        blocks.append(section(t(lang, "summary_incidents", lines=_lines(lines))))
    parts = " · ".join(f"{escape(title)} {done}/{total}" for title, done, total in summary.completion)
    if summary.checklist_version:
        parts += " · " + t(lang, "checklist_version", version=escape(summary.checklist_version))
    blocks.append(
        {
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": clip(t(lang, "summary_completion", parts=parts))}],
        }
    )
    blocks.append(
        {
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": t(lang, "summary_more", version=summary.version)}],
        }
    )
    return t(lang, "summary_fallback", version=summary.version), blocks


class ReportPoster:
    """Posts the summary after a release ends, and uploads the Markdown report on request."""

    def __init__(
        self, *, uow: UowFactory, services: Services, publisher: Publisher, clock: Clock, lang: str
    ) -> None:
        self._uow = uow
        self._services = services
        self._publisher = publisher
        self._clock = clock
        self._lang = lang

    def _read(self, release_id: int) -> tuple[ReleaseView, list[AuditEvent]]:
        with self._uow() as uow:
            return self._services.view_in(uow, release_id), uow.audit.for_release(release_id)

    def on_transition(self, transition: Transition) -> None:
        """Lifecycle hook: a release that finished or was rolled back gets its summary, off this thread."""
        if transition.status in REPORTED:
            self._publisher.submit(self.post_summary, transition.release_id)

    def post_summary(self, release_id: int) -> str | None:
        view, events = self._read(release_id)
        now = self._clock.now()
        text, blocks = render_summary(summarize(view, events, now, self._lang), self._lang, now)
        return self._publisher.thread_reply(release_id, text, blocks)

    def markdown(self, release_id: int) -> tuple[ReleaseView, str]:
        view, events = self._read(release_id)
        return view, markdown_report(view, events, self._clock.now(), lang=self._lang)

    def upload(self, release_id: int, response_url: str | None = None) -> str | None:
        """Upload the report into the release thread (or its channel); tell the asker when Slack refuses."""
        view, text = self.markdown(release_id)
        record = view.release
        try:
            return self._publisher.gateway.upload_file(
                record.channel_id,
                text.encode("utf-8"),
                f"release-{record.version}.md",
                title=t(self._lang, "summary_fallback", version=record.version),
                thread_ts=record.thread_ts,
            )
        except ChatError as e:
            log.warning("report upload for release %s failed: %s", release_id, e.code)
            self._publisher.gateway.respond(
                response_url, t(self._lang, "report_upload_failed", code=e.code, version=record.version)
            )
            return None

    def command(self, cmd: Command, ack: Ack) -> None:
        """``/release report VERSION``: answer at once, upload in the background."""
        view = self._services.find(
            cmd.channel_id, cmd.version, cmd.service
        )  # NotFound is answered in the ack
        ack(text=t(self._lang, "report_uploading", version=view.release.version), response_type="ephemeral")
        self._publisher.submit(self.upload, view.release.id, cmd.response_url)
