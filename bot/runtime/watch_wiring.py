"""Wiring of the metric watch, incidents and the PagerDuty outbox; called by ``bot.runtime.bootstrap.build``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from slack_bolt import App

from bot.config import Settings
from bot.domain.checklist import Checklist
from bot.ports import Clock, Metrics, Pager
from bot.runtime.clockwork import Clockwork
from bot.slack.alerts import SlackAlerts
from bot.slack.listeners import Guard, SlackContext
from bot.slack.watch_listeners import WatchContext, register_watch
from bot.usecases.gate_window import GateWindow
from bot.usecases.incidents import IncidentDesk
from bot.usecases.lifecycle import Lifecycle, Transition
from bot.usecases.outbox import PagerOutbox
from bot.usecases.releases import Services, UowFactory
from bot.usecases.shared_readings import SharedReadings
from bot.usecases.watch import GateFigures, MetricWatch

DEFAULT_SAMPLE_S = 15.0
WATCH_POLL_S = 1.0
OUTBOX_OVERLAP = 4  # outbox runs under way at once; each takes only lanes no other run is working


@dataclass
class WatchParts:
    figures: GateFigures
    desk: IncidentDesk
    watch: MetricWatch
    outbox: PagerOutbox | None
    metrics: Metrics | None
    pager: Pager | None
    readings: SharedReadings | None = None  # the watch's view of ``metrics``: one query per expression a sample


def make_parts(
    settings: Settings,
    *,
    uow: UowFactory,
    clock: Clock,
    services: Services,
    metrics: Metrics | None = None,
    pager: Pager | None = None,
    outbox_backoff_s: tuple[float, float] = (2.0, 60.0),
) -> WatchParts:
    """Build the watch's parts; adapters come from settings unless a test hands them in. Connects nothing.

    An adapter's module is imported only when its setting is on: httpx and the ``pagerduty`` client are ~2-3 MB and
    ~40 ms of start-up in a process that uses neither."""
    # Adapters made here are closed by Bot.stop (bootstrap's closers); handed-in ones are their owner's.
    if metrics is None and settings.prometheus_url:
        from bot.adapters.prometheus import PrometheusMetrics

        metrics = PrometheusMetrics(settings.prometheus_url, timeout_s=5.0)
    if pager is None and settings.pagerduty_routing_key:
        from bot.adapters.pagerduty import PagerDutyPager

        pager = PagerDutyPager(
            routing_key=settings.pagerduty_routing_key,
            events_url=settings.pagerduty_events_url,
            verify=settings.pagerduty_ca_bundle,
            clock=clock,
        )
    desk = IncidentDesk(uow=uow, clock=clock, services=services, lang=settings.language)
    window = GateWindow(uow=uow, clock=clock, metrics=metrics)
    readings = SharedReadings(metrics) if metrics is not None else None
    return WatchParts(
        figures=GateFigures(
            uow=uow, services=services, lang=settings.language, enabled=metrics is not None, window=window
        ),
        desk=desk,
        watch=MetricWatch(
            uow=uow, clock=clock, services=services, metrics=readings, desk=desk, lang=settings.language
        ),
        outbox=None
        if pager is None
        else PagerOutbox(
            uow=uow,
            clock=clock,
            pager=pager,
            base_backoff_s=outbox_backoff_s[0],
            max_backoff_s=outbox_backoff_s[1],
        ),
        metrics=metrics,
        pager=pager,
        readings=readings,
    )


def install(
    parts: WatchParts,
    *,
    checklist: Checklist,
    lifecycle: Lifecycle,
    clockwork: Clockwork,
    slack: SlackContext,
    is_leader: Callable[[], bool],
    interval_s: float | None = None,
    outbox_interval_s: float = 2.0,
) -> Callable[[App, Guard], None]:
    """Register the leader-only jobs and the lifecycle hook; return the listener registration for the app."""
    publisher = slack.publisher
    parts.desk.alerts = SlackAlerts(publisher, slack.lang, paged=parts.outbox is not None)
    outbox = parts.outbox
    if outbox is not None:

        def kick() -> None:
            # A page should leave as soon as it is queued, not at the outbox's next interval.
            if is_leader():
                # Several kicks may run at once: a kick while an earlier run still retries a slow key must
                # send the new key now (a second instance of the same job id would otherwise be skipped).
                clockwork.run_once("pager-outbox-now", outbox.deliver_due, overlap=OUTBOX_OVERLAP)

        parts.desk.kick = kick

        def deliver() -> None:
            outbox.deliver_due()

        clockwork.add_interval("pager-outbox", deliver, outbox_interval_s, overlap=OUTBOX_OVERLAP)
    # Whether PagerDuty and Prometheus are on is said once, in serve's start-up line (bot.runtime.startup).
    spec = checklist.metrics
    sample_s = spec.sample_interval.total_seconds() if spec else DEFAULT_SAMPLE_S
    # The watch polls often and samples when Prometheus has scraped anew (``bot.usecases.watch.sample_due``):
    # the poll period is all the delay left between a scrape and the sample that judges it.
    seconds = interval_s or min(sample_s, WATCH_POLL_S)
    tick = parts.watch.tick if parts.readings is None else parts.readings.per_sample(parts.watch.tick)
    clockwork.add_interval("metric-watch", tick, seconds)

    # After a transition commits: queue change events and resolves at once, off the listener's thread.
    def on_transition(transition: Transition) -> None:
        publisher.submit(parts.desk.reconcile, transition.release_id)

    lifecycle.hooks.append(on_transition)
    context = WatchContext(slack, parts.desk)
    return lambda app, guard: register_watch(app, context, guard)
