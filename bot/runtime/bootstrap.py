"""The composition root: the one place that names concrete adapters and wires the bot together."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from slack_bolt import App
from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from sqlalchemy import Engine, text

from bot.checklist.loading import load_checklist_set
from bot.config import Settings
from bot.db.engine import READONLY, make_engine, make_session_factory
from bot.db.pacing import shared_turns
from bot.db.uow import SqlUnitOfWork
from bot.domain.checklist import Checklist
from bot.domain.leadership import LeaseTiming
from bot.ports import (
    Clock,
    CodeHost,
    Deployer,
    HealthChecker,
    HealthResult,
    Metrics,
    Pager,
    SystemClock,
    TrafficProvider,
)
from bot.runtime.clockwork import Clockwork, TimerPoster, worker_name
from bot.runtime.dashboard_wiring import install as install_dashboard
from bot.runtime.dashboard_wiring import make_dashboard
from bot.runtime.github_webhook import GitHubWebhook
from bot.runtime.heartbeat import BEAT_S, Heartbeat
from bot.runtime.leader import PostgresLeader, SqliteLeader, make_leader
from bot.runtime.traffic_wiring import ByTarget, rollback_deployer
from bot.runtime.traffic_wiring import install as install_traffic
from bot.runtime.watch_wiring import install as install_watch
from bot.runtime.watch_wiring import make_parts as make_watch_parts
from bot.runtime.web import WebApp
from bot.slack.app import create_app, new_work_pool
from bot.slack.authz import Managers
from bot.slack.evidence_listeners import EvidenceContext, register_evidence
from bot.slack.gateway import ChannelPacer, SlackGateway, UpdatePacer
from bot.slack.github_hooks import GitHubHooks, handle_soon
from bot.slack.home import HOME_PUBLISHES_PER_MINUTE
from bot.slack.identity import Identity
from bot.slack.lifecycle_listeners import LifecycleContext, register_lifecycle
from bot.slack.listeners import Guard, SlackContext
from bot.slack.publisher import Publisher
from bot.slack.rollback_listeners import RollbackContext, recovery_job, register_rollback
from bot.slack.sync import MessageSync
from bot.usecases.evidence import EvidenceService, EvidenceSources
from bot.usecases.gate_window import GateWindow
from bot.usecases.lifecycle import Lifecycle
from bot.usecases.releases import Services
from bot.usecases.rollback import LazyDeployer, RollbackService

if TYPE_CHECKING:
    from bot.runtime.hand_off import WorkChannel

log = logging.getLogger(__name__)
A = TypeVar("A")


def _kube_deployer(settings: Settings) -> Deployer:
    # Imported on first rollback: the kubernetes client costs ~57 MB of memory that most processes never need.
    from bot.adapters.kube import KubeDeployer

    return KubeDeployer.from_environment(settings.kubeconfig)


def _deployer(
    settings: Settings, checklist: Checklist, *, several: bool, traffic: TrafficProvider | None
) -> Any:
    """What the rollback button drives: the Deployment undo, or for an Argo Rollouts checklist its Rollout."""
    kube = LazyDeployer(lambda: _kube_deployer(settings))
    rollout = rollback_deployer(settings, checklist.traffic) if traffic is None else None
    if rollout is None:
        return kube
    if not several or checklist.rollback is None:
        return rollout
    return ByTarget(rollout, (checklist.rollback.deployment, checklist.rollback.namespace), kube)


def _close_with_bot(adapter: object, closers: list[Callable[[], None]]) -> None:
    """Remember to close an adapter build() made itself, if it holds anything to close."""
    close = getattr(adapter, "close", None)
    if callable(close):
        closers.append(close)


def _owned(adapter: A, closers: list[Callable[[], None]]) -> A:
    _close_with_bot(adapter, closers)
    return adapter


class HealthOnFirstUse:
    """The HTTP health checker, made on the first check: importing httpx (~1.5 MB, ~30 ms of start-up) and its
    client's TLS context, which loads the CA bundle (~2.3 MB in each process), wait for a health URL to check."""

    def __init__(self, timeout_s: float) -> None:
        self._timeout_s = timeout_s
        self._checker: HealthChecker | None = None
        self._making = threading.Lock()

    def check(self, url: str) -> HealthResult:
        with self._making:
            if self._checker is None:
                from bot.adapters.health import HttpHealthChecker

                self._checker = HttpHealthChecker(timeout_s=self._timeout_s)
        return self._checker.check(url)

    def close(self) -> None:
        with self._making:
            checker, self._checker = self._checker, None
        close = getattr(checker, "close", None)
        if close is not None:
            close()


def make_github(settings: Settings) -> CodeHost | None:
    """The repository the evidence is read from, or None when GitHub is not configured."""
    if settings.github_repository is None:
        return None
    from bot.adapters.github import GitHubRepo

    return GitHubRepo(
        settings.github_repository,
        api_url=settings.github_api_url,
        token=settings.github_token,
        app_id=settings.github_app_id,
        private_key=settings.github_app_private_key,
        installation_id=settings.github_app_installation_id,
    )


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
    work_pool: ThreadPoolExecutor | None = None  # listeners' deferred work: clicks, starts, advances
    hand_off: WorkChannel | None = None  # set in the serving process of a two-process ``serve``
    heartbeat: Heartbeat = field(default_factory=Heartbeat)  # beaten by this process's clock once started
    # Adapters build() made itself (a test's own are the test's to close); their pooled sockets go with stop().
    closers: list[Callable[[], None]] = field(default_factory=list)

    def github_delivery(self, event: str, delivery: str, payload: dict[str, Any]) -> None:
        """Act on a verified GitHub delivery off the request thread (here, or in the work process)."""
        if self.hand_off is not None:
            self.hand_off.github(event, delivery, payload)
            return
        hooks: GitHubHooks = self.extras["github_hooks"]
        handle_soon(hooks, self.work_pool or self.executor, event, delivery, payload)

    def database_ready(self) -> bool:
        try:
            # Read-only: on SQLite a plain transaction begins with the write lock (bot.db.engine), and the probe
            # would queue behind a burst of writes for up to a second (measured by bench/hostile.py).
            with self.engine.execution_options(**{READONLY: True}).connect() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except Exception:
            return False

    def not_ready(self) -> str | None:
        if self.hand_off is not None and not self.hand_off.ready():
            return "work process not running"
        stalled = self.not_alive()
        if stalled is not None:
            return stalled
        return None if self.database_ready() else "database unreachable"

    def not_alive(self) -> str | None:
        """Why the work is stuck (``/livez``): the work process's clock, or this process's without one."""
        return self.hand_off.stalled() if self.hand_off is not None else self.heartbeat.stalled()

    def start_background(self) -> None:
        """Start the message sync, the clock, and the leader election that lets the clock run."""
        if self.managers.everyone:
            log.warning("RELEASE_MANAGERS is *: everyone in the channel may start, advance, abort and roll back")
        self.sync.start()
        self.clockwork.start()
        self.heartbeat.beat()
        self.clockwork.every("heartbeat", self.heartbeat.beat, BEAT_S)
        self.leader.start(on_elected=self._elected)
        for hook in self.extras.get("on_start", ()):
            hook()

    def _elected(self) -> None:
        self.clockwork.recover()
        self.clockwork.wake()
        for hook in self.extras.get("on_elected", ()):
            hook()

    def stop(self) -> None:
        """Finish the clicks and starts in hand, stop the clock (no new work), drain Slack work, close the database."""
        if self.work_pool is not None:
            self.work_pool.shutdown(wait=True, cancel_futures=False)
        evidence = self.extras.get("evidence")
        if evidence is not None:  # an evaluation in flight finishes; queued ones are dropped
            evidence.executor.shutdown(wait=True, cancel_futures=True)
        dashboard = self.extras.get("dashboard")
        if dashboard is not None:  # the App Home's pending refreshes would read the database after it closed
            dashboard.home.stop()
        self.clockwork.stop()
        for hook in self.extras.get("on_stop", ()):
            hook()
        self.leader.stop()
        self.sync.stop()
        self.executor.shutdown(wait=True, cancel_futures=False)
        for close in self.closers:
            try:
                close()
            except Exception:  # one adapter failing to close must not keep the others, or the database, open
                log.exception("closing an adapter failed")
        self.engine.dispose()


@contextmanager
def reading(database_url: str) -> Iterator[Services]:
    """Services that read stored releases (``release-bot export``): no Slack, no checklist file, no timers."""
    engine = make_engine(database_url)
    factory = make_session_factory(engine)
    try:
        yield Services.readonly(uow=lambda: SqlUnitOfWork(factory), clock=SystemClock())
    finally:
        engine.dispose()


def build(
    settings: Settings,
    *,
    clock: Clock | None = None,
    web_client: WebClient | None = None,
    pacer: ChannelPacer | None = None,
    update_pacer: UpdatePacer | None = None,
    sync_interval_s: float = 1.0,
    health: HealthChecker | None = None,
    sweep_s: float = 5.0,
    lease: LeaseTiming | None = None,
    deployer: Deployer | None = None,
    rollback_stale_s: float = 60.0,
    rollout_poll_s: float = 2.0,
    metrics: Metrics | None = None,
    pager: Pager | None = None,
    watch_interval_s: float | None = None,
    outbox_interval_s: float = 2.0,
    outbox_backoff_s: tuple[float, float] = (2.0, 60.0),
    home_interval_s: float = 10.0,
    home_per_minute: float | None = HOME_PUBLISHES_PER_MINUTE,
    leader: SqliteLeader | PostgresLeader | None = None,
    heartbeat: Heartbeat | None = None,
    hand_off: WorkChannel | None = None,
    answer_in_listener: bool = False,
    work_pool: ThreadPoolExecutor | None = None,
    github: CodeHost | None = None,
    identity: Identity | None = None,
    traffic: TrafficProvider | None = None,
    traffic_watch_s: float = 10.0,
) -> Bot:
    """Wire the bot; nothing connects until it is used.

    ``hand_off`` and ``answer_in_listener`` split the bot over two processes (see ``bot.runtime.work_process``): the
    serving side hands deferred work, redraws and timer changes to the work side, which re-dispatches the payloads
    it is handed.
    """
    clock = clock or SystemClock()
    checklists = load_checklist_set(settings.checklist_path)
    # The one checklist that drives traffic, if any (ChecklistSet allows one); the watch and the traffic wiring
    # that once followed "the" checklist follow it, else the fallback.
    checklist = next((c for c in checklists if not c.traffic.is_manual), checklists.default)
    engine = make_engine(settings.database_url)
    session_factory = make_session_factory(engine)
    read_factory = make_session_factory(engine, readonly=True)
    leader = leader or make_leader(settings.database_url, timing=lease)

    def unit_of_work() -> SqlUnitOfWork:
        # Every write transaction can be fenced as leader-only (SqlUnitOfWork.leader_only) with this term.
        return SqlUnitOfWork(session_factory, term=leader.term)

    client = web_client or make_web_client(settings)
    # chat.update's Tier 3 is the workspace's, whatever the number of replicas: only the leader spends it.
    update_pacer = update_pacer or UpdatePacer(may_update=leader.is_leader)
    # Posts per channel are the workspace's too: on Postgres the replicas take their turns in the database.
    pacer = pacer or ChannelPacer(shared=shared_turns(engine))
    gateway = SlackGateway(client, pacer=pacer, update_pacer=update_pacer)
    managers = Managers(settings.release_managers, gateway, ttl_s=settings.usergroup_cache_s)
    service_managers = {
        c.service: Managers(c.managers, gateway, ttl_s=settings.usergroup_cache_s).is_manager
        for c in checklists
        if c.managers
    }
    services = Services(
        uow=unit_of_work,
        clock=clock,
        checklist=None,
        checklist_source="",
        checklists=checklists,
        service_managers=service_managers,
        is_manager=managers.is_manager,
        read_uow=lambda: SqlUnitOfWork(read_factory),
        evidence_on=settings.evidence_on,
        contact_ids=settings.release_contacts,
    )
    lifecycle = Lifecycle(
        uow=unit_of_work,
        clock=clock,
        services=services,
    )
    watch = make_watch_parts(
        settings,
        uow=unit_of_work,
        clock=clock,
        services=services,
        metrics=metrics,
        pager=pager,
        outbox_backoff_s=outbox_backoff_s,
    )
    owned_closers: list[Callable[[], None]] = []
    if metrics is None:
        _close_with_bot(watch.metrics, owned_closers)
    if pager is None:
        _close_with_bot(watch.pager, owned_closers)
    services.metrics_on = watch.metrics is not None
    # Leaving a canary stage is judged on the gate over the whole stage (seed 3.3).
    lifecycle.gate_window = GateWindow(uow=unit_of_work, clock=clock, metrics=watch.metrics)
    poster = TimerPoster(
        gateway=gateway,
        lang=settings.language,
        managers=settings.manager_ids,
        figures=watch.figures,
        service_managers={c.service: c.managers for c in checklists if c.managers},
    )
    clockwork = Clockwork(lifecycle=lifecycle, poster=poster, sweep_s=sweep_s, is_leader=leader.is_leader)
    lifecycle.on_timers_changed = hand_off.wake if hand_off is not None else clockwork.wake

    def post_missing() -> None:
        publisher_ref[0].post_missing()

    clockwork.add_interval("post-missing", post_missing, 15.0)
    executor = ThreadPoolExecutor(8, thread_name_prefix="slack-out")
    publisher_ref: list[Publisher] = []
    sync = MessageSync(
        render=lambda mid: publisher_ref[0].render(mid),
        send=lambda rendered: publisher_ref[0].send(rendered, paced=True),
        mark_synced=services.mark_synced,
        find_out_of_sync=services.out_of_sync,
        min_interval_s=sync_interval_s,
        pace=update_pacer,
        send_route=lambda rendered, url: gateway.replace_through(url, rendered.text, rendered.blocks),
    )
    publisher = Publisher(
        services=services, gateway=gateway, sync=sync, executor=executor, lang=settings.language
    )
    publisher_ref.append(publisher)
    ctx = SlackContext(settings=settings, services=services, publisher=publisher)
    lifecycle_ctx = LifecycleContext(
        ctx, lifecycle, health or _owned(HealthOnFirstUse(settings.health_timeout_s), owned_closers)
    )
    rollbacks = RollbackService(
        uow=unit_of_work,
        clock=clock,
        services=services,
        lifecycle=lifecycle,
        # Credentials are read on the first rollback, not at build time.
        deployer=deployer or _deployer(settings, checklist, several=len(checklists) > 1, traffic=traffic),
        health=lifecycle_ctx.health,
        rollout_timeout_s=settings.rollout_timeout_s,
        # Named when a rollback starts: this bot may be built before the fork that makes the process it runs in.
        worker=worker_name,
        poll_s=rollout_poll_s,
        stale_after_s=rollback_stale_s,
    )
    rollback_ctx = RollbackContext(ctx, lifecycle, rollbacks)
    rollout_rollback = rollbacks.deployer if deployer is None and traffic is None else None
    evidence = EvidenceService(
        uow=unit_of_work,
        clock=clock,
        services=services,
        sources=EvidenceSources(
            github=github or _owned(make_github(settings), owned_closers), metrics=watch.metrics, health=lifecycle_ctx.health
        ),
        is_manager=managers.is_manager,
    )
    evidence_ctx = EvidenceContext(ctx, evidence, ThreadPoolExecutor(1, thread_name_prefix="evidence"))
    ctx.on_started.append(evidence_ctx.start_hook)
    lifecycle.hooks.append(evidence_ctx.on_transition)

    # The watch polls at the pace of the most frequently sampled checklist; each release samples at its own.
    sampled = [c for c in checklists if c.metrics is not None]
    register_watch = install_watch(
        watch,
        checklist=min(sampled, key=lambda c: c.metrics.sample_interval) if sampled else checklist,  # type: ignore[union-attr]
        lifecycle=lifecycle,
        clockwork=clockwork,
        slack=ctx,
        is_leader=leader.is_leader,
        interval_s=watch_interval_s,
        outbox_interval_s=outbox_interval_s,
    )

    traffic_parts = install_traffic(
        settings,
        checklist,
        uow=unit_of_work,
        clock=clock,
        services=services,
        lifecycle=lifecycle,
        slack=ctx,
        watch=watch,
        is_leader=leader.is_leader,
        provider=traffic,
        watch_timeout_s=traffic_watch_s,
        rollback=rollout_rollback,
    )

    dashboard = make_dashboard(
        uow=unit_of_work,
        services=services,
        clock=clock,
        slack=ctx,
        home_interval_s=home_interval_s,
        home_per_minute=home_per_minute,
        posting=clockwork.posting,
    )
    register_dashboard = install_dashboard(
        dashboard, lifecycle=lifecycle, poster=poster, desk=watch.desk, slack=ctx
    )

    def listeners(app: App, guard: Guard) -> None:
        register_lifecycle(app, lifecycle_ctx, guard)
        register_rollback(app, rollback_ctx, guard)
        register_watch(app, guard)
        register_dashboard(app, guard)
        register_evidence(app, evidence_ctx, guard)
        if traffic_parts is not None:
            traffic_parts.register(app, guard)

    work_pool = work_pool or new_work_pool()
    app = create_app(
        settings,
        client,
        ctx,
        extra=listeners,
        forward=hand_off.forward if hand_off is not None else None,
        answer_in_listener=answer_in_listener,
        work=work_pool,
        identity=identity,
    )
    if hand_off is not None:
        sync.relay_to(hand_off.mark_dirty)
    bot = Bot(
        settings,
        engine,
        services,
        gateway,
        sync,
        publisher,
        app,
        WebApp(app, ready=lambda: "starting"),
        executor,
        lifecycle,
        clockwork,
        leader,
        managers,
    )
    webhook = GitHubWebhook(settings.github_webhook_secret, bot.github_delivery)
    bot.web = WebApp(
        app,
        ready=bot.not_ready,
        alive=bot.not_alive,
        slack_over_http=not settings.socket_mode,
        github=webhook if settings.github_webhook_secret else None,
        signing_secret=settings.slack_signing_secret,
    )
    bot.work_pool = work_pool
    bot.hand_off = hand_off
    bot.closers = owned_closers
    if heartbeat is not None:
        bot.heartbeat = heartbeat
    recover_rollbacks = recovery_job(rollback_ctx)
    clockwork.add_interval("rollback-recovery", recover_rollbacks, max(rollback_stale_s / 4, 1.0))
    bot.extras |= {"rollbacks": rollbacks, "on_elected": [recover_rollbacks]}
    bot.extras["watch"] = watch
    bot.extras["dashboard"] = dashboard
    bot.extras["evidence"] = evidence_ctx
    bot.extras["github_hooks"] = GitHubHooks(ctx, evidence_ctx, settings)
    if traffic_parts is not None:
        bot.extras |= {"traffic": traffic_parts, "on_start": [traffic_parts.start], "on_stop": [traffic_parts.stop]}
    return bot
