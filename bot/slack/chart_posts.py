"""Charts that follow the incident ping and the stage-end reminders into the release thread.

The text is always posted first by its own code; the chart is drawn and uploaded afterwards on the background
pool, so a slow or failing chart (no samples, matplotlib error, Slack refusing the upload) never delays or
stops the message it illustrates. Nor does it delay the reminders due with it: a chart waits while reminders are
in flight (``hold``), since drawing one takes the CPU (and the GIL) for a few tenths of a second, and the soak's
late reminders had spent up to 1.7 s rendering while the charts of the ones posted just before them were drawn.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from datetime import datetime
from typing import Any

from bot.domain.checklist import CriterionKind
from bot.domain.incident import IncidentRecord
from bot.errors import ChatError
from bot.i18n import t
from bot.ports import Clock
from bot.slack.blocks import step_label
from bot.slack.charts import ChartData, render_png
from bot.slack.gateway import SlackGateway
from bot.usecases.incidents import AlertSink
from bot.usecases.lifecycle import DueTimer
from bot.usecases.releases import ReleaseView, Services, UowFactory

log = logging.getLogger(__name__)
ERROR_RATE, P95 = "error_rate", "p95"
Submit = Callable[..., "Future[Any]"]
HOLD_POLL_S = 0.2  # how often a held chart looks again
HOLD_MAX_S = 20.0  # a chart is drawn after this long even if reminders keep coming: it is late, not lost


def chart_data(
    view: ReleaseView, samples: list[Any], *, since: datetime, until: datetime, lang: str
) -> ChartData:
    """The chart of one release's samples, with the lines its checklist judges them against."""
    checklist = view.checklist
    error_threshold = latency_ratio = None
    for criterion in checklist.criteria:
        if criterion.kind is CriterionKind.ERROR_RATE and criterion.threshold is not None:
            error_threshold = criterion.threshold
        elif criterion.kind is CriterionKind.LATENCY_RATIO and criterion.threshold is not None:
            latency_ratio = criterion.threshold
    baseline = view.release.baseline_p95_s
    gate = checklist.gate
    title = f"{view.release.version} · {step_label(checklist, view.current_step, lang)}"
    step = view.current_step
    return ChartData(
        title=title,
        latin_title=f"{view.release.version} · {step.key if step else view.release.step}",
        start=since,
        end=until,
        error_rate=[(s.at, s.value) for s in samples if s.metric == ERROR_RATE],
        p95_s=[(s.at, s.value) for s in samples if s.metric == P95],
        error_threshold=error_threshold,
        error_gate=gate.max_error_rate if gate else None,
        baseline_p95_s=baseline,
        p95_limit_s=baseline * latency_ratio if baseline and latency_ratio else None,
        p95_gate_s=gate.max_p95_ms / 1000 if gate else None,
    )


class ChartPoster:
    """Draws a release's chart over its current stage and uploads it to the release thread."""

    def __init__(
        self,
        *,
        uow: UowFactory,
        services: Services,
        clock: Clock,
        gateway: SlackGateway,
        submit: Submit,
        lang: str,
        render: Callable[[ChartData], bytes] = render_png,
        hold: Callable[[], bool] = lambda: False,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._uow = uow
        self._services = services
        self._clock = clock
        self._gateway = gateway
        self._submit = submit
        self._lang = lang
        self._render = render
        # True while charts must wait (the clock's reminders in flight: ``Clockwork.posting``).
        self.hold = hold
        self._monotonic = monotonic
        # Charts held back, and the one timer that looks again for all of them (a timer a chart started a thread
        # each, 200 at once in the org bench).
        self._held: list[tuple[int, str, float]] = []
        self._held_lock = threading.Lock()
        self._look_again: threading.Timer | None = None

    def data(self, release_id: int) -> tuple[ReleaseView, ChartData] | None:
        """The chart of the release's current stage window, or None without a sample in it."""
        view = self._services.view(release_id)
        since, until = view.release.step_started_at, self._clock.now()
        samples = self._services.samples(release_id, since, until)
        data = chart_data(view, samples, since=since, until=until, lang=self._lang)
        return (view, data) if data.has_data else None

    def post_now(self, release_id: int, reason: str) -> str | None:
        """Draw and upload; return the file id, or None when there was nothing to draw or Slack refused."""
        found = self.data(release_id)
        if found is None:
            log.info("no metric samples to chart for release %s (%s)", release_id, reason)
            return None
        view, data = found
        if view.release.thread_ts is None:
            return None
        png = self._render(data)
        name = f"{view.release.version}-{view.release.step}-{int(data.end.timestamp())}.png"
        try:
            return self._gateway.upload_file(
                view.release.channel_id,
                png,
                name,
                title=t(self._lang, "chart_title", version=view.release.version),
                thread_ts=view.release.thread_ts,
            )
        except ChatError as e:
            log.warning("chart upload for release %s failed: %s", release_id, e.code)
            return None

    def post_later(self, release_id: int, reason: str) -> None:
        """Queue the chart; the caller's message is already out. It is drawn once no reminder is in flight."""
        self._queue(release_id, reason, self._monotonic() + HOLD_MAX_S)

    def _queue(self, release_id: int, reason: str, until: float) -> None:
        self._submit(self._when_quiet, release_id, reason, until)

    def _when_quiet(self, release_id: int, reason: str, until: float) -> str | None:
        # Waiting is done off the pool (the timer looks again): a held chart must not keep a pool thread that
        # redraws and thread notes need.
        if self.hold() and self._monotonic() < until:
            self._keep([(release_id, reason, until)])
            return None
        return self.post_now(release_id, reason)

    def _keep(self, charts: list[tuple[int, str, float]]) -> None:
        """Hold ``charts`` until the timer's next look, starting it unless it is running."""
        with self._held_lock:
            self._held.extend(charts)
            if self._look_again is None:
                self._look_again = threading.Timer(HOLD_POLL_S, self._look)
                self._look_again.daemon = True
                self._look_again.start()

    def _look(self) -> None:
        """The timer: charts still held stay with it; only those that may go now are queued for the pool (sending
        every held chart round the pool to be held again cost 200 submissions each look in the org bench)."""
        with self._held_lock:
            held, self._held, self._look_again = self._held, [], None
        if not held:
            return
        holding, now = self.hold(), self._monotonic()
        still: list[tuple[int, str, float]] = []
        go: list[tuple[int, str, float]] = []
        for chart in held:
            (still if holding and now < chart[2] else go).append(chart)
        if still:
            self._keep(still)
        for release_id, reason, until in go:
            try:
                self._queue(release_id, reason, until)
            except RuntimeError:  # the pool is shut down: the bot is stopping, and a chart is not worth holding it
                log.info("chart for release %s dropped: the bot is stopping", release_id)

    def after_reminder(self, due: DueTimer, _ts: str) -> None:
        self.post_later(due.view.release.id, f"reminder {due.timer.kind}")


class ChartingAlerts:
    """The Slack ``AlertSink`` with a chart uploaded to the thread after each incident ping."""

    def __init__(self, inner: AlertSink, charts: ChartPoster) -> None:
        self._inner = inner
        self._charts = charts

    def ping(self, view: ReleaseView, incident: IncidentRecord) -> str:
        ts = self._inner.ping(view, incident)
        self._charts.post_later(view.release.id, f"incident {incident.id}")
        return ts

    def refresh(self, view: ReleaseView, incident: IncidentRecord) -> None:
        self._inner.refresh(view, incident)

    def redraw(self, view: ReleaseView, kinds: tuple[str, ...]) -> None:
        self._inner.redraw(view, kinds)

    def thread_note(self, view: ReleaseView, text: str) -> None:
        self._inner.thread_note(view, text)
