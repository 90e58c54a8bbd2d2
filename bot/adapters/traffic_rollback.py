"""The one-click rollback when the checklist's traffic is an Argo Rollout: the ``Deployer`` port over the Rollout.

A Rollout replaces the Deployment, so ``kubectl rollout undo deployment/…`` has nothing to undo. The rollback
button then does what the Argo runbook does: ``kubectl argo rollouts abort`` (the stable version takes all
traffic at once), then ``kubectl argo rollouts undo`` (the spec goes back to the previous revision's template, so
the Rollout does not retry the bad version), and follows the Rollout until it is Healthy again. The plan shown
before confirming names the Rollout's revisions (``rollout.argoproj.io/revision``) and their images.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from bot.adapters.kube_rollout import gitops_warnings
from bot.adapters.traffic_argo import (
    REVISION_ANNOTATION,
    ArgoRolloutsProvider,
    _images,
    previous_replicaset,
    templates_equal,
    view_of,
)
from bot.errors import UsageError
from bot.ports import ClusterRequest, Revision, RollbackPlan, RolloutPhase, RolloutStatus, UndoResult


def _revision(obj: dict) -> int:  # type: ignore[type-arg]
    try:
        return int(((obj.get("metadata") or {}).get("annotations") or {}).get(REVISION_ANNOTATION, "0"))
    except ValueError:
        return -1


class RolloutDeployer:
    """Rolls the checklist's Rollout back (abort, then undo) and follows it, as the Deployer port asks."""

    def __init__(self, provider: Callable[[], ArgoRolloutsProvider]) -> None:
        self._factory = provider
        self._provider: ArgoRolloutsProvider | None = None
        self._lock = threading.Lock()
        self._sent: list[ClusterRequest] = []

    @property
    def provider(self) -> ArgoRolloutsProvider:
        with self._lock:
            if self._provider is None:
                self._provider = self._factory()
            return self._provider

    def take_requests(self) -> tuple[ClusterRequest, ...]:
        """The abort's and undo's requests since the last call, for the audit trail."""
        with self._lock:
            sent, self._sent = tuple(self._sent), []
            return sent

    def close(self) -> None:
        with self._lock:
            if self._provider is not None:
                self._provider.close()

    def plan_rollback(self, deployment: str, namespace: str, *, to_revision: int = 0) -> RollbackPlan:
        if to_revision < 0:
            raise UsageError(f"unable to find specified revision {to_revision} in history")
        provider = self.provider
        ro = provider.get()
        owned = provider.owned_replicasets(ro)
        provider._calls.take()  # reads for the confirmation: nothing changes
        target = previous_replicaset(provider.name, owned, to_revision)
        template = (ro.get("spec") or {}).get("template") or {}
        status = ro.get("status") or {}
        current_rs = next((rs for rs in owned if templates_equal(template, rs["spec"]["template"])), None)
        history = sorted(owned, key=_revision, reverse=True)
        return RollbackPlan(
            deployment=provider.name,
            namespace=provider.namespace,
            current=Revision(
                _revision(ro), _images(template), current_rs["metadata"]["name"] if current_rs else ""
            ),
            target=Revision(_revision(target), _images(target["spec"]["template"]), target["metadata"]["name"]),
            history=tuple(
                Revision(_revision(rs), _images(rs["spec"]["template"]), rs["metadata"]["name"]) for rs in history
            ),
            paused=False,  # an abort works on a paused Rollout too
            already_current=templates_equal(template, target["spec"]["template"])
            and status.get("stableRS") == status.get("currentPodHash"),
            gitops_warnings=gitops_warnings(ro),
        )

    def undo(self, deployment: str, namespace: str, *, to_revision: int = 0) -> UndoResult:
        provider = self.provider
        aborted = provider.abort()
        with self._lock:
            self._sent.extend(aborted.requests)
        undone = provider.undo(to_revision)
        with self._lock:
            self._sent.extend(undone.requests)
        return UndoResult(rolled_back=True, message=f"{aborted.message}; {undone.message}")

    def rollout_status(self, deployment: str, namespace: str) -> RolloutStatus:
        view = view_of(self.provider.get())
        self.provider._calls.take()
        name = self.provider.name
        promoted = bool(view.stable_revision) and view.stable_revision == view.canary_revision
        if view.phase is RolloutPhase.HEALTHY and promoted and not view.aborted:
            return RolloutStatus(True, False, f"rollout '{name}' is Healthy at the stable revision")
        if view.phase is RolloutPhase.DEGRADED and not view.aborted:
            return RolloutStatus(False, True, f"rollout '{name}' is Degraded: {view.message}")
        words = f"{view.phase or 'Progressing'}" + (f": {view.message}" if view.message else "")
        return RolloutStatus(False, False, f"Waiting for rollout '{name}' to be Healthy ({words})")
