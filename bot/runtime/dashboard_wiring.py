"""Wiring of the App Home, the release report and the charts; called by ``bot.runtime.bootstrap.build``."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from slack_bolt import Ack, App

from bot.ports import Clock
from bot.runtime.clockwork import TimerPoster
from bot.slack.authz import ChannelMembers
from bot.slack.chart_posts import ChartingAlerts, ChartPoster
from bot.slack.home import HOME_PUBLISHES_PER_MINUTE, HomePublisher, HomeReader
from bot.slack.ids import ActionId
from bot.slack.listeners import Guard, SlackContext
from bot.slack.report_posts import ReportPoster
from bot.usecases.incidents import IncidentDesk
from bot.usecases.lifecycle import Lifecycle
from bot.usecases.releases import Services, UowFactory


@dataclass
class Dashboard:
    home: HomePublisher
    reports: ReportPoster
    charts: ChartPoster


def make_dashboard(
    *,
    uow: UowFactory,
    services: Services,
    clock: Clock,
    slack: SlackContext,
    home_interval_s: float = 10.0,
    home_per_minute: float | None = HOME_PUBLISHES_PER_MINUTE,
    posting: Callable[[], bool] = lambda: False,
) -> Dashboard:
    """Build the parts; nothing runs until a listener or a hook calls them.

    ``posting``: whether the clock has reminders in flight (``Clockwork.posting``); charts wait for them."""
    publisher = slack.publisher
    return Dashboard(
        home=HomePublisher(
            reader=HomeReader(uow=uow, services=services, clock=clock),
            gateway=publisher.gateway,
            members=ChannelMembers(publisher.gateway, ttl_s=slack.settings.usergroup_cache_s),
            submit=publisher.submit,
            lang=slack.lang,
            min_interval_s=home_interval_s,
            per_minute=home_per_minute,
        ),
        reports=ReportPoster(uow=uow, services=services, publisher=publisher, clock=clock, lang=slack.lang),
        charts=ChartPoster(
            uow=uow,
            services=services,
            clock=clock,
            gateway=publisher.gateway,
            submit=publisher.submit,
            lang=slack.lang,
            hold=posting,
        ),
    )


def install(
    parts: Dashboard,
    *,
    lifecycle: Lifecycle,
    poster: TimerPoster,
    desk: IncidentDesk,
    slack: SlackContext,
) -> Callable[[App, Guard], None]:
    """Hook the parts into the lifecycle, the reminders and the incident ping; return the listener registration."""
    lifecycle.hooks.append(parts.home.on_transition)
    lifecycle.hooks.append(parts.reports.on_transition)
    poster.after_post.append(parts.charts.after_reminder)
    if desk.alerts is not None:
        desk.alerts = ChartingAlerts(desk.alerts, parts.charts)
    slack.commands["report"] = parts.reports.command

    def register(app: App, guard: Guard) -> None:
        @app.event("app_home_opened")
        def on_home_opened(event: dict[str, Any]) -> None:
            # Bolt acks events itself; the publish happens on the background pool.
            user = event.get("user")
            if event.get("tab", "home") == "home" and isinstance(user, str):
                parts.home.opened(user)

        @app.action(re.compile(rf"^{ActionId.OPEN_THREAD.value}(:\d+)?$"))
        @guard
        def on_open_thread(ack: Ack) -> None:
            ack()  # a url button: Slack opened the link; there is nothing to do but answer

    return register
