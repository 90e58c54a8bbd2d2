"""The composition root: the one place that names concrete adapters and wires the bot together."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slack_bolt import App
from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from sqlalchemy import Engine, text

from bot.adapters.health import HttpHealthChecker
from bot.checklist_file import load_checklist
from bot.config import Settings
from bot.db.engine import make_engine, make_session_factory
from bot.db.uow import SqlUnitOfWork
from bot.leader import PostgresLeader, SqliteLeader, make_leader
from bot.lifecycle import Lifecycle
from bot.ports import Clock, HealthChecker, SystemClock
from bot.scheduling import Clockwork, TimerPoster
from bot.services import Services
from bot.slack.app import create_app
from bot.slack.authz import Managers
from bot.slack.gateway import ChannelPacer, SlackGateway
from bot.slack.lifecycle_listeners import LifecycleContext, register_lifecycle
from bot.slack.listeners import SlackContext
from bot.slack.publisher import Publisher
from bot.slack.sync import MessageSync
from bot.web import WebApp

log = logging.getLogger(__name__)


def make_web_client(settings: Settings) -> WebClient:
    """The Slack client with bounded retries; it only runs on background threads, where a retry may wait."""
    return WebClient(
        token=settings.slack_bot_token or "xoxb-unset",
        base_url=settings.slack_api_url,
        timeout=10,
        retry_handlers=[
            ConnectionErrorRetryHandler(max_retry_count=1),
            RateLimitErrorRetryHandler(max_retry_count=1),
            ServerErrorRetryHandler(max_retry_count=1),
        ],
    )


@dataclass
class Bot:
    """Everything a running bot is made of."""

    settings: Settings
    engine: Engine
    services: Services
    gateway: SlackGateway
    sync: MessageSync
    publisher: Publisher
    app: App
    web: WebApp
    executor: ThreadPoolExecutor
    lifecycle: Lifecycle
    clockwork: Clockwork
    leader: SqliteLeader | PostgresLeader
    managers: Managers
    extras: dict[str, Any] = field(default_factory=dict)

    def database_ready(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except Exception:
            return False

    def start_background(self) -> None:
        """Start the message sync, the clock, and the leader election that lets the clock run."""
        if not self.managers.configured:
            log.warning(
                "RELEASE_MANAGERS is not set: everyone in the channel may advance, abort and roll back"
            )
        self.sync.start()
        self.clockwork.start()
        self.leader.start(on_elected=self._elected)

    def _elected(self) -> None:
        self.clockwork.recover()
        self.clockwork.wake()

    def stop(self) -> None:
        """Stop the clock first (no new work), then drain Slack work, then close the database."""
        self.clockwork.stop()
        self.leader.stop()
        self.sync.stop()
        self.executor.shutdown(wait=True, cancel_futures=False)
        self.engine.dispose()


def build(
    settings: Settings,
    *,
    clock: Clock | None = None,
    web_client: WebClient | None = None,
    pacer: ChannelPacer | None = None,
    sync_interval_s: float = 1.0,
    health: HealthChecker | None = None,
    sweep_s: float = 5.0,
    leader_retry_s: float = 2.0,
) -> Bot:
    """Wire the bot; nothing connects until it is used."""
    clock = clock or SystemClock()
    checklist_path = Path(settings.checklist_path)
    checklist = load_checklist(checklist_path)
    engine = make_engine(settings.database_url)
    session_factory = make_session_factory(engine)
    client = web_client or make_web_client(settings)
    gateway = SlackGateway(client, pacer=pacer)
    managers = Managers(settings.release_managers, gateway, ttl_s=settings.usergroup_cache_s)
    services = Services(
        uow=lambda: SqlUnitOfWork(session_factory),
        clock=clock,
        checklist=checklist,
        checklist_source=checklist_path.read_text(encoding="utf-8"),
        is_manager=managers.is_manager,
    )
    lifecycle = Lifecycle(
        uow=lambda: SqlUnitOfWork(session_factory),
        clock=clock,
        services=services,
        is_manager=managers.is_manager,
    )
    leader = make_leader(settings.database_url, retry_s=leader_retry_s)
    poster = TimerPoster(
        gateway=gateway, lang=settings.language, managers=settings.release_managers, figures=lambda _rid: None
    )
    clockwork = Clockwork(lifecycle=lifecycle, poster=poster, sweep_s=sweep_s, is_leader=leader.is_leader)
    lifecycle.on_timers_changed = clockwork.wake
    executor = ThreadPoolExecutor(8, thread_name_prefix="slack-out")
    publisher_ref: list[Publisher] = []
    sync = MessageSync(
        render=lambda mid: publisher_ref[0].render(mid),
        send=lambda rendered: publisher_ref[0].send(rendered),
        mark_synced=services.mark_synced,
        find_out_of_sync=services.out_of_sync,
        min_interval_s=sync_interval_s,
    )
    publisher = Publisher(
        services=services, gateway=gateway, sync=sync, executor=executor, lang=settings.language
    )
    publisher_ref.append(publisher)
    ctx = SlackContext(settings=settings, services=services, publisher=publisher)
    lifecycle_ctx = LifecycleContext(
        ctx, lifecycle, health or HttpHealthChecker(timeout_s=settings.health_timeout_s)
    )
    app = create_app(
        settings, client, ctx, extra=lambda app, guard: register_lifecycle(app, lifecycle_ctx, guard)
    )
    bot = Bot(
        settings,
        engine,
        services,
        gateway,
        sync,
        publisher,
        app,
        WebApp(app, ready=lambda: False),
        executor,
        lifecycle,
        clockwork,
        leader,
        managers,
    )
    bot.web = WebApp(app, ready=bot.database_ready)
    return bot
