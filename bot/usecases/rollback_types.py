"""What the rollback service hands out, and the small pieces it is built from (no I/O, no vendor imports)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from bot.domain.checklist import Checklist, PhaseKind, RollbackTarget
from bot.domain.rollbacks import RollbackRecord, RollbackStatus, ServiceLock
from bot.errors import NotFound
from bot.ports import Deployer, HealthResult, RollbackPlan, RolloutStatus, UndoResult
from bot.usecases.releases import ReleaseView


class LazyDeployer:
    """A Deployer built on first use, so nothing reads credentials or connects at build time."""

    def __init__(self, factory: Callable[[], Deployer]) -> None:
        self._factory = factory
        self._deployer: Deployer | None = None
        self._lock = threading.Lock()

    def _get(self) -> Deployer:
        with self._lock:
            if self._deployer is None:
                self._deployer = self._factory()
            return self._deployer

    def plan_rollback(self, deployment: str, namespace: str, *, to_revision: int = 0) -> RollbackPlan:
        return self._get().plan_rollback(deployment, namespace, to_revision=to_revision)

    def undo(self, deployment: str, namespace: str, *, to_revision: int = 0) -> UndoResult:
        return self._get().undo(deployment, namespace, to_revision=to_revision)

    def rollout_status(self, deployment: str, namespace: str) -> RolloutStatus:
        return self._get().rollout_status(deployment, namespace)


@dataclass(frozen=True)
class UndoConfirmation:
    """What someone confirmed undoing when the release never reached production: exactly these revisions."""

    from_revision: int
    from_images: tuple[str, ...]
    to_revision: int
    to_images: tuple[str, ...]

    def as_details(self) -> dict[str, object]:
        return {
            "from_revision": self.from_revision,
            "from_images": list(self.from_images),
            "to_revision": self.to_revision,
            "to_images": list(self.to_images),
        }


@dataclass(frozen=True)
class Outcome:
    """How a rollback ended, with what the thread needs to say about it."""

    rollback: RollbackRecord
    message: str  # a catalog key or kubectl's / the API's own words
    params: dict[str, object]
    view: ReleaseView
    rollout: RolloutStatus | None = None
    health: HealthResult | None = None
    health_env: str | None = None
    lock: ServiceLock | None = None
    gitops_warnings: tuple[str, ...] = ()

    @property
    def succeeded(self) -> bool:
        return self.rollback.status is RollbackStatus.SUCCEEDED


@dataclass(frozen=True)
class Interrupted:
    """A rollback a dead process left between intent and outcome, now marked interrupted."""

    rollback: RollbackRecord
    view: ReleaseView
    live_status: str  # what Kubernetes says now, or why it could not be read


def rollback_target(checklist: Checklist) -> RollbackTarget:
    if checklist.rollback is None:
        raise NotFound("rollback_not_configured")
    return checklist.rollback


def production_environment(checklist: Checklist) -> str | None:
    """The environment a rollback restores: the canary phase's, else one keyed ``production``."""
    for phase in checklist.phases:
        if phase.kind is PhaseKind.CANARY and phase.environment:
            return phase.environment
    return next((e.key for e in checklist.environments if e.key == "production"), None)
