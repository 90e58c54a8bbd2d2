"""Argo Rollouts as the traffic provider: the requests ``kubectl argo rollouts promote / abort / undo`` send.

Read from argoproj/argo-rollouts at 9f8d111 (CLI code identical to v1.9.1), and kept request for request:

- promote: ``pkg/kubectl-argo-rollouts/cmd/promote/promote.go`` ``PromoteRollout`` and ``getPatches`` (the
  default path, no flags): GET; a merge patch of ``/status``; on 404 (no status subresource, v0.9) the unified
  patch goes to the main resource instead; then, if ``spec.paused``, a merge patch ``{"spec":{"paused":false}}``.
- abort: ``cmd/abort/abort.go`` ``AbortRollout``: merge patch ``{"status":{"abort":true}}`` of ``/status``,
  on 404 of the main resource. No GET.
- undo: ``cmd/undo/undo.go`` ``RunUndoRollout``: GET; LIST ReplicaSets by the Rollout's selector, keep those it
  controls, pick the previous ``rollout.argoproj.io/revision``; if the template already matches (ignoring
  ``rollouts-pod-template-hash``) nothing is sent, else one JSON patch replacing ``/spec/template``.

The step index, weights and phase are read as the plugin's ``GetCurrentCanaryStep`` and
``utils/rollout/rolloututil.go`` ``GetRolloutPhase`` read them (reference/progressive-delivery.md §2-4).
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Mapping
from typing import Any

from bot.adapters.kube_rollout import label_selector, pick_revision
from bot.adapters.traffic_kube import JSON_PATCH, MERGE, ClusterApiError, ClusterCalls
from bot.domain.traffic import canary_steps, weight_at
from bot.errors import Conflict, DeployerError, NotFound
from bot.ports import RolloutPhase, TrafficResult, TrafficView

GROUP, VERSION, PLURAL = "argoproj.io", "v1alpha1", "rollouts"
REVISION_ANNOTATION = "rollout.argoproj.io/revision"
HASH_LABEL = "rollouts-pod-template-hash"  # v1alpha1.DefaultRolloutUniqueLabelKey
ABORT_PATCH: dict[str, Any] = {"status": {"abort": True}}  # abort.go abortPatch
UNPAUSE_PATCH: dict[str, Any] = {"spec": {"paused": False}}  # promote.go unpausePatch


# --- reading --------------------------------------------------------------------------------------------


def current_step_index(ro: Mapping[str, Any]) -> int:
    """``GetCurrentCanaryStep``: a missing index is read as 0."""
    return int(((ro.get("status") or {}).get("currentStepIndex")) or 0)


def view_of(ro: Mapping[str, Any]) -> TrafficView:
    """The live state of a Rollout as the bot shows it."""
    spec, status, meta = ro.get("spec") or {}, ro.get("status") or {}, ro.get("metadata") or {}
    steps = canary_steps(dict(ro))
    index = current_step_index(ro)
    aborted = bool(status.get("abort"))
    promoted = bool(status.get("stableRS")) and status.get("stableRS") == status.get("currentPodHash")
    set_weight = 0 if aborted else (100 if promoted else weight_at(steps, index))
    weights = ((status.get("canary") or {}).get("weights") or {}).get("canary")
    actual: int | None = None
    if isinstance(weights, dict) and "weight" in weights:
        # Once fully promoted the stable Service selects the new pods and the canary weight returns to 0.
        actual = 100 if promoted and not aborted else int(weights["weight"])
    pause_conditions = status.get("pauseConditions") or []
    return TrafficView(
        provider="argo-rollouts",
        set_weight=set_weight,
        actual_weight=actual,
        step=index,
        steps=len(steps),
        phase=_phase(meta, status),
        message=str(status.get("message") or ""),
        aborted=aborted,
        paused=bool(spec.get("paused")) or bool(pause_conditions),
        stable_revision=str(status.get("stableRS") or ""),
        canary_revision=str(status.get("currentPodHash") or ""),
        canary_images=_images(spec.get("template") or {}),
        resource_version=str(meta.get("resourceVersion") or ""),
        generation=int(meta.get("generation") or 0),
        last_manager=last_manager(meta),
    )


def _phase(meta: Mapping[str, Any], status: Mapping[str, Any]) -> RolloutPhase:
    # rolloututil.GetRolloutPhase: an unobserved generation, or a user unpause not yet reconciled, is Progressing.
    if str(status.get("observedGeneration") or "") != str(meta.get("generation") or ""):
        return RolloutPhase.PROGRESSING
    if status.get("controllerPause") and not status.get("pauseConditions"):
        return RolloutPhase.PROGRESSING
    try:
        return RolloutPhase(str(status.get("phase") or ""))
    except ValueError:
        return RolloutPhase.UNKNOWN


def last_manager(meta: Mapping[str, Any]) -> str:
    """The field manager that wrote the object last (managedFields entries carry a time)."""
    entries = [f for f in meta.get("managedFields") or [] if isinstance(f, dict)]
    if not entries:
        return ""
    latest = max(entries, key=lambda f: str(f.get("time") or ""))
    return str(latest.get("manager") or "")


def _images(template: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(str(c.get("image", "")) for c in (template.get("spec") or {}).get("containers") or [])


# --- promote ---------------------------------------------------------------------------------------------


def promote_patches(ro: Mapping[str, Any]) -> tuple[Any, Any, Any]:
    """``getPatches(rollout, false, false, false)``: (spec patch, status patch, unified patch)."""
    spec, status = ro.get("spec") or {}, ro.get("status") or {}
    steps = canary_steps(dict(ro))
    is_canary = bool(((spec.get("strategy") or {}).get("canary")) is not None)
    unified: Any = {"spec": {"paused": False}, "status": {"pauseConditions": None}}
    spec_patch: Any = copy.deepcopy(UNPAUSE_PATCH) if spec.get("paused") else None
    status_patch: Any = None
    analysis = ((status.get("canary") or {}).get("currentStepAnalysisRunStatus") or {}).get("status")
    conditions = status.get("pauseConditions") or []
    next_index = min(current_step_index(ro) + 1, len(steps))
    if is_canary and analysis == "Inconclusive" and conditions and status.get("controllerPause"):
        if steps:
            status_patch = {
                "status": {"pauseConditions": None, "controllerPause": False, "currentStepIndex": next_index}
            }
    elif conditions:
        status_patch = {"status": {"pauseConditions": None}}
    elif is_canary and steps:
        status_patch = {"status": {"pauseConditions": None, "currentStepIndex": next_index}}
        unified = {
            "spec": {"paused": False},
            "status": {"pauseConditions": None, "currentStepIndex": next_index},
        }
    return spec_patch, status_patch, unified


# --- undo ------------------------------------------------------------------------------------------------


def _revision(rs: Mapping[str, Any]) -> int | None:
    value = ((rs.get("metadata") or {}).get("annotations") or {}).get(REVISION_ANNOTATION)
    if value is None:
        return 0
    try:
        return int(value)
    except ValueError:
        return None  # undo.go skips a ReplicaSet whose revision does not parse


def previous_replicaset(name: str, owned: list[dict[str, Any]], to_revision: int = 0) -> dict[str, Any]:
    """``rolloutRevision``: the second-highest revision (or ``to_revision``), in the server's order."""
    found = pick_revision([(_revision(rs), rs) for rs in owned], to_revision)
    if found is None:
        raise NotFound(f'no revision found for rollout "{name}"')
    return found


def _without_hash(template: Mapping[str, Any]) -> Any:
    t = _drop_nulls(copy.deepcopy(dict(template)))
    labels = (t.get("metadata") or {}).get("labels")
    if isinstance(labels, dict):
        labels.pop(HASH_LABEL, None)
        if not labels:
            del t["metadata"]["labels"]
    if isinstance(t.get("metadata"), dict) and not t["metadata"]:
        del t["metadata"]
    return t


def templates_equal(rollout_template: Mapping[str, Any], rs_template: Mapping[str, Any]) -> bool:
    """``equalIgnoreHash``: the pod templates without the hash label, as the server stores them."""
    return bool(_without_hash(rollout_template) == _without_hash(rs_template))


def go_template(rs_template: Mapping[str, Any]) -> dict[str, Any]:
    """The ReplicaSet's template as undo.go marshals it: a typed ``corev1.PodTemplateSpec`` through Go's
    encoding/json, which writes ``metadata.creationTimestamp: null`` and ``resources: {}`` (neither is
    omitted when empty). The server drops both on decode, so the stored template is the ReplicaSet's."""
    template = copy.deepcopy(dict(rs_template))
    meta = template.setdefault("metadata", {})
    (meta.get("labels") or {}).pop(HASH_LABEL, None)
    meta.setdefault("creationTimestamp", None)
    spec = template.setdefault("spec", {})
    for kind in ("initContainers", "containers"):
        for container in spec.get(kind) or []:
            container.setdefault("resources", {})
    return template


def undo_patch(rs: Mapping[str, Any]) -> list[dict[str, Any]]:
    """``getRolloutPatch``: one JSON patch op replacing ``/spec/template``."""
    return [{"op": "replace", "path": "/spec/template", "value": go_template(rs["spec"]["template"])}]


def _drop_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value]
    return value


# --- the provider ----------------------------------------------------------------------------------------


class ArgoRolloutsProvider:
    """Drives one Rollout: "advance" promotes one step, "roll back" aborts, "undo" restores the previous
    stable template. Every result lists the requests sent."""

    def __init__(self, calls: ClusterCalls, name: str) -> None:
        self._calls = calls
        self.name = name
        self.namespace = calls.namespace

    @classmethod
    def from_environment(
        cls,
        namespace: str,
        name: str,
        *,
        kubeconfig: str | None = None,
        environ: Mapping[str, str] | None = None,
        request_timeout: tuple[float, float] = (3.0, 10.0),
    ) -> ArgoRolloutsProvider:
        calls = ClusterCalls.from_environment(
            group=GROUP,
            version=VERSION,
            plural=PLURAL,
            namespace=namespace,
            kubeconfig=kubeconfig,
            environ=environ,
            request_timeout=request_timeout,
        )
        return cls(calls, name)

    def close(self) -> None:
        self._calls.close()

    def read(self) -> TrafficView:
        view = view_of(self._calls.get(self.name))
        self._calls.take()  # reads for display are not actions: nothing to audit
        return view

    def advance(self, percent: int) -> TrafficResult:
        """``kubectl argo rollouts promote NAME``, once, unless the Rollout already serves ``percent``."""
        ro = self._calls.get(self.name)
        view = view_of(ro)
        if view.aborted:
            self._calls.take()
            raise Conflict(f"rollout '{self.name}' is aborted; undo it or retry it before promoting")
        if view.set_weight >= percent:
            return TrafficResult(
                f"rollout '{self.name}' already at {view.set_weight}%", self._calls.take(), view, False
            )
        spec_patch, status_patch, unified = promote_patches(ro)
        out = ro
        if status_patch is not None:
            try:
                out = self._calls.patch(self.name, status_patch, MERGE, status=True)
            except ClusterApiError as e:
                if e.status != 404:
                    self._calls.take()
                    raise
                spec_patch = unified  # no status subresource (Rollouts v0.9): one patch of the main resource
        if spec_patch is not None:
            out = self._calls.patch(self.name, spec_patch, MERGE)
        return TrafficResult(f"rollout '{self.name}' promoted", self._calls.take(), view_of(out))

    def abort(self) -> TrafficResult:
        """``kubectl argo rollouts abort NAME``."""
        try:
            out = self._calls.patch(self.name, ABORT_PATCH, MERGE, status=True)
        except ClusterApiError as e:
            if e.status != 404:
                self._calls.take()
                raise
            out = self._calls.patch(self.name, ABORT_PATCH, MERGE)
        return TrafficResult(f"rollout '{self.name}' aborted", self._calls.take(), view_of(out))

    def owned_replicasets(self, ro: Mapping[str, Any]) -> list[dict[str, Any]]:
        """``listReplicaSets``: LIST by the Rollout's selector (no paging), keep those it controls."""
        selector = label_selector((ro.get("spec") or {}).get("selector") or {})
        uid = (ro.get("metadata") or {}).get("uid")
        return [
            rs
            for rs in self._calls.list_replicasets(selector)
            if any(
                r.get("controller") and r.get("uid") == uid
                for r in (rs.get("metadata") or {}).get("ownerReferences") or []
            )
        ]

    def get(self) -> dict[str, Any]:
        return self._calls.get(self.name)

    def undo(self, to_revision: int = 0) -> TrafficResult:
        """``kubectl argo rollouts undo NAME [--to-revision N]``: back to that revision's template."""
        try:
            ro = self._calls.get(self.name)
            if (ro.get("spec") or {}).get("workloadRef"):
                raise DeployerError(
                    f"rollout '{self.name}' takes its template from a workloadRef; undo that workload by hand"
                )
            target = previous_replicaset(self.name, self.owned_replicasets(ro), to_revision)
            if templates_equal((ro.get("spec") or {}).get("template") or {}, target["spec"]["template"]):
                return TrafficResult(
                    f"skipped rollback (current template already matches revision {to_revision})",
                    self._calls.take(),
                    view_of(ro),
                    False,
                )
            out = self._calls.patch(self.name, undo_patch(target), JSON_PATCH)
        except (DeployerError, NotFound):
            self._calls.take()
            raise
        return TrafficResult(f"rollout '{self.name}' undo", self._calls.take(), view_of(out))

    def watch(
        self, on_change: Callable[[TrafficView], None], *, timeout_s: float, stop: Callable[[], bool]
    ) -> None:
        """Read once, then follow the Rollout's watch events until ``timeout_s`` or ``stop()``."""
        ro = self._calls.get(self.name)
        on_change(view_of(ro))
        rv = str((ro.get("metadata") or {}).get("resourceVersion") or "")
        # closing(): leaving the loop early must end the stream now, not when the generator is collected.
        with contextlib.closing(self._calls.watch(self.name, rv, timeout_s)) as events:
            for obj in events:
                if stop():
                    break
                on_change(view_of(obj))
        self._calls.take()
