"""Wiring of the traffic provider: built only for a checklist whose ``traffic:`` is not ``manual``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from slack_bolt import App

from bot.config import Settings
from bot.domain.checklist import Checklist, Criterion
from bot.domain.traffic import TrafficProviderKind, TrafficSpec
from bot.errors import DeployerError
from bot.i18n import t
from bot.ports import Clock, TrafficProvider
from bot.runtime.watch_wiring import WatchParts
from bot.slack.listeners import Guard, SlackContext
from bot.slack.traffic_listeners import TrafficContext, register_traffic
from bot.usecases.incident_words import value_and_threshold
from bot.usecases.lifecycle import Lifecycle
from bot.usecases.releases import Services, UowFactory
from bot.usecases.traffic import TrafficService, TrafficWatcher


def provider_for(settings: Settings, spec: TrafficSpec) -> TrafficProvider:
    """The adapter for the checklist's provider; the kubernetes client is imported only here (~57 MB)."""
    if spec.provider is TrafficProviderKind.ARGO_ROLLOUTS:
        from bot.adapters.traffic_argo import ArgoRolloutsProvider

        return ArgoRolloutsProvider.from_environment(spec.namespace, spec.name, kubeconfig=settings.kubeconfig)
    from bot.adapters.traffic_gateway import GatewayRouteProvider

    return GatewayRouteProvider.from_environment(spec, kubeconfig=settings.kubeconfig)


class ByTarget:
    """A set of several checklists, one of them on Argo Rollouts: its rollback target rolls back through the
    Rollout, every other service's Deployment the way it always did."""

    def __init__(self, rollout: Any, target: tuple[str, str], others: Any) -> None:
        self._rollout, self._target, self._others = rollout, target, others

    def _for(self, deployment: str, namespace: str) -> Any:
        return self._rollout if (deployment, namespace) == self._target else self._others

    def plan_rollback(self, deployment: str, namespace: str, *, to_revision: int = 0) -> Any:
        return self._for(deployment, namespace).plan_rollback(deployment, namespace, to_revision=to_revision)

    def undo(self, deployment: str, namespace: str, *, to_revision: int = 0) -> Any:
        return self._for(deployment, namespace).undo(deployment, namespace, to_revision=to_revision)

    def rollout_status(self, deployment: str, namespace: str) -> Any:
        return self._for(deployment, namespace).rollout_status(deployment, namespace)

    def take_requests(self) -> Any:
        return self._rollout.take_requests()

    def close(self) -> None:
        for part in (self._rollout, self._others):
            close = getattr(part, "close", None)
            if callable(close):
                close()


def rollback_deployer(settings: Settings, spec: TrafficSpec) -> Any:
    """For Argo Rollouts, the rollback button aborts and undoes the Rollout (there is no Deployment to undo)."""
    if spec.provider is not TrafficProviderKind.ARGO_ROLLOUTS:
        return None
    from bot.adapters.traffic_rollback import RolloutDeployer

    def provider() -> Any:
        from bot.adapters.traffic_argo import ArgoRolloutsProvider

        return ArgoRolloutsProvider.from_environment(spec.namespace, spec.name, kubeconfig=settings.kubeconfig)

    return RolloutDeployer(provider)


def cluster_check(spec: TrafficSpec, stages: tuple[int, ...], environ: Mapping[str, str]) -> list[str]:
    """``checklist check --cluster``: read the live object and name each way it does not fit the stages."""
    if spec.is_manual:
        return ["the checklist's traffic provider is manual: there is nothing in the cluster to compare"]
    if spec.provider is TrafficProviderKind.ARGO_ROLLOUTS:
        from bot.adapters.traffic_argo import ArgoRolloutsProvider
        from bot.domain.traffic import canary_steps, step_mismatches

        argo = ArgoRolloutsProvider.from_environment(
            spec.namespace, spec.name, kubeconfig=environ.get("KUBECONFIG"), environ=environ
        )
        try:
            steps = canary_steps(argo.get())
        finally:
            argo.close()
        return [f"rollout/{spec.name}: {problem}" for problem in step_mismatches(steps, stages)]
    from bot.adapters.traffic_gateway import GatewayRouteProvider, positions

    # Named explicitly: the client reads $KUBECONFIG once, when it is first imported.
    route = GatewayRouteProvider.from_environment(spec, kubeconfig=environ.get("KUBECONFIG"), environ=environ)
    try:
        positions(route._calls.get(spec.name), spec)
    except DeployerError as e:
        return [e.user_message]
    finally:
        route.close()
    return []


@dataclass
class TrafficParts:
    context: TrafficContext
    watcher: TrafficWatcher
    rollback: Any = None

    def register(self, app: App, guard: Guard) -> None:
        register_traffic(app, self.context, guard)

    def start(self) -> None:
        self.watcher.start()

    def stop(self) -> None:
        self.watcher.stop()
        self.context.traffic.close()
        if self.rollback is not None and hasattr(self.rollback, "close"):
            self.rollback.close()


def install(
    settings: Settings,
    checklist: Checklist,
    *,
    uow: UowFactory,
    clock: Clock,
    services: Services,
    lifecycle: Lifecycle,
    slack: SlackContext,
    watch: WatchParts,
    is_leader: Callable[[], bool],
    provider: TrafficProvider | None = None,
    watch_timeout_s: float = 10.0,
    rollback: Any = None,
) -> TrafficParts | None:
    """Join the provider to the lifecycle (guard and hook), the metric watch (abort on breach) and Slack."""
    spec = checklist.traffic
    if spec.is_manual:
        return None
    service = TrafficService(
        uow=uow,
        clock=clock,
        services=services,
        lifecycle=lifecycle,
        spec=spec,
        provider=(lambda: provider) if provider is not None else (lambda: provider_for(settings, spec)),
        lang=settings.language,
    )
    if rollback is not None and hasattr(rollback, "take_requests"):
        service.rollback_requests = rollback.take_requests
    context = TrafficContext(slack, service)
    service.note = context.note
    service.redraw = context.redraw
    lifecycle.guards.append(service.guard)
    lifecycle.hooks.append(service.on_transition)

    def on_fired(release_id: int, criterion: Criterion, details: dict[str, Any]) -> None:
        if criterion.on_breach != "abort":
            return
        value, threshold = value_and_threshold(details, settings.language)
        figures = t(settings.language, "traffic_breach_figures", value=value, threshold=threshold)
        service.abort_on_breach(release_id, criterion=criterion.key, title=criterion.title, figures=figures)

    watch.watch.on_fired.append(on_fired)
    watcher = TrafficWatcher(service, is_leader=is_leader, watch_timeout_s=watch_timeout_s)
    return TrafficParts(context, watcher, rollback)
