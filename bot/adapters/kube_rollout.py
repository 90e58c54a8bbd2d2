"""kubectl's rollback and rollout-status logic as pure functions over the API server's JSON.

Mirrors ``kubectl/pkg/polymorphichelpers/rollback.go`` (``DeploymentRollbacker``, ``deploymentRevision``,
``equalIgnoreHash``) and ``rollout_status.go`` (``DeploymentStatusViewer``), messages included. No I/O here:
``bot.adapters.kube`` fetches the objects and sends the patch.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

from bot.errors import DeployerError, NotFound, UsageError
from bot.ports import Revision, RolloutStatus

REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
HASH_LABEL = "pod-template-hash"
# kubectl keeps the Deployment's own value for these and never copies them from the ReplicaSet.
SKIP_ANNOTATIONS = frozenset(
    {
        "kubectl.kubernetes.io/last-applied-configuration",
        REVISION_ANNOTATION,
        "deployment.kubernetes.io/revision-history",
        "deployment.kubernetes.io/desired-replicas",
        "deployment.kubernetes.io/max-replicas",
        "deprecated.deployment.rollback.to",
    }
)
PAUSED_MESSAGE = (
    "you cannot rollback a paused deployment; resume it first with 'kubectl rollout resume' and try again"
)
_ARGO_MESSAGE = "Argo CD manages this deployment; a sync may revert the rollback"
_FLUX_MESSAGE = "Flux manages this deployment; its next reconciliation may revert the rollback"


def revision_of(obj: Mapping[str, Any]) -> int:
    """The revision annotation as a number; missing is 0, unparsable is -1 (kubectl skips those)."""
    value = ((obj.get("metadata") or {}).get("annotations") or {}).get(REVISION_ANNOTATION)
    if value is None:
        return 0
    try:
        return int(value)
    except ValueError:
        return -1


def label_selector(selector: Mapping[str, Any]) -> str:
    """Render a LabelSelector as ``metav1.LabelSelectorAsSelector(...).String()`` does (sorted by key)."""
    terms: list[tuple[str, str]] = [(k, f"{k}={v}") for k, v in (selector.get("matchLabels") or {}).items()]
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], sorted(expr.get("values") or [])
        rendered = {
            "In": f"{key} in ({','.join(values)})",
            "NotIn": f"{key} notin ({','.join(values)})",
            "Exists": key,
            "DoesNotExist": f"!{key}",
        }.get(op)
        if rendered is None:
            raise DeployerError(f"The deployment's selector uses an unknown operator {op!r}.")
        terms.append((key, rendered))
    return ",".join(t for _, t in sorted(terms, key=lambda t: t[0]))


def select_revision(dep: Mapping[str, Any], owned: list[dict[str, Any]], to_revision: int) -> dict[str, Any]:
    """Pick the ReplicaSet to roll back to: ``to_revision``, or for 0 the second-highest revision."""
    if to_revision < 0:
        raise UsageError(f"unable to find specified revision {to_revision} in history")
    # kubectl walks the old ReplicaSets first and the one matching the current template last.
    current = [rs for rs in owned if templates_equal(rs["spec"]["template"], template_of(dep))][:1]
    ordered = [rs for rs in owned if rs not in current] + current
    found = pick_revision([(revision_of(rs), rs) for rs in ordered], to_revision)
    if found is None:
        raise NotFound(f"no rollout history found for deployment {json.dumps(dep['metadata']['name'])}")
    return found


def pick_revision(numbered: list[tuple[int | None, dict[str, Any]]], to_revision: int) -> dict[str, Any] | None:
    """kubectl's (and the Argo plugin's) choice among numbered ReplicaSets, walked in the given order: the one
    numbered ``to_revision``, or for 0 the second-highest; None when there is no second one. A negative or missing
    number is skipped, as both tools skip a ReplicaSet whose revision does not parse."""
    latest: tuple[int, dict[str, Any] | None] = (-1, None)
    previous: tuple[int, dict[str, Any] | None] = (-1, None)
    for number, rs in numbered:
        if number is None or number < 0:
            continue
        if to_revision == 0:
            if latest[0] < number:
                previous, latest = latest, (number, rs)
            elif previous[0] < number:
                previous = (number, rs)
        elif number == to_revision:
            return rs
    if to_revision > 0:
        raise NotFound(f"unable to find specified revision {to_revision} in history")
    return previous[1]


def _without_hash(template: Mapping[str, Any]) -> dict[str, Any]:
    t: dict[str, Any] = _drop_nulls(copy.deepcopy(dict(template)))
    meta = t.get("metadata") or {}
    labels = meta.get("labels")
    if isinstance(labels, dict):
        labels.pop(HASH_LABEL, None)
        if not labels:  # Go's semantic equality treats an empty map like a missing one
            del meta["labels"]
    return t


def templates_equal(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Compare pod templates as kubectl's ``equalIgnoreHash`` does."""
    return _without_hash(a) == _without_hash(b)


def undo_patch(dep: Mapping[str, Any], target: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Build kubectl's JSON patch: the target's template, and annotations rebuilt around the skip-list."""
    template = copy.deepcopy(dict(target["spec"]["template"]))
    labels = (template.get("metadata") or {}).get("labels")
    if isinstance(labels, dict):
        labels.pop(HASH_LABEL, None)
    own = dep["metadata"].get("annotations") or {}
    annotations = {k: v for k, v in own.items() if k in SKIP_ANNOTATIONS}
    annotations |= {
        k: v for k, v in (target["metadata"].get("annotations") or {}).items() if k not in SKIP_ANNOTATIONS
    }
    return [
        {"op": "replace", "path": "/spec/template", "value": template},
        {"op": "replace", "path": "/metadata/annotations", "value": annotations},
    ]


def status_of(dep: Mapping[str, Any]) -> RolloutStatus:
    """Apply kubectl's ``DeploymentStatusViewer.Status`` to one reading of a deployment."""
    name = json.dumps(dep["metadata"]["name"])  # Go's %q
    status = dep.get("status") or {}
    if (dep["metadata"].get("generation") or 0) > (status.get("observedGeneration") or 0):
        return RolloutStatus(False, False, "Waiting for deployment spec update to be observed...")
    progressing = next((c for c in status.get("conditions") or [] if c.get("type") == "Progressing"), None)
    if progressing is not None and progressing.get("reason") == "ProgressDeadlineExceeded":
        return RolloutStatus(False, True, f"deployment {name} exceeded its progress deadline")
    wanted = dep["spec"].get("replicas")
    updated = status.get("updatedReplicas") or 0
    replicas = status.get("replicas") or 0
    available = status.get("availableReplicas") or 0
    waiting = f"Waiting for deployment {name} rollout to finish: "
    if wanted is not None and updated < wanted:
        return RolloutStatus(
            False, False, f"{waiting}{updated} out of {wanted} new replicas have been updated..."
        )
    if replicas > updated:
        return RolloutStatus(
            False, False, f"{waiting}{replicas - updated} old replicas are pending termination..."
        )
    if available < updated:
        return RolloutStatus(
            False, False, f"{waiting}{available} of {updated} updated replicas are available..."
        )
    return RolloutStatus(True, False, f"deployment {name} successfully rolled out")


def gitops_warnings(dep: Mapping[str, Any]) -> tuple[str, ...]:
    """Warn when Argo CD or Flux owns the deployment: their next sync would undo our patch."""
    meta = dep.get("metadata") or {}
    keys = [*(meta.get("annotations") or {}), *(meta.get("labels") or {})]
    managers = {f.get("manager", "") for f in meta.get("managedFields") or []}
    warnings = []
    if any(k.startswith("argocd.argoproj.io/") for k in keys) or "argocd-controller" in managers:
        warnings.append(_ARGO_MESSAGE)
    flux = ("kustomize.toolkit.fluxcd.io/", "helm.toolkit.fluxcd.io/")
    if any(k.startswith(flux) for k in keys) or managers & {"kustomize-controller", "helm-controller"}:
        warnings.append(_FLUX_MESSAGE)
    return tuple(warnings)


def images_of(template: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(c.get("image", "") for c in (template.get("spec") or {}).get("containers") or [])


def template_of(dep: Mapping[str, Any]) -> dict[str, Any]:
    template: dict[str, Any] = dep["spec"]["template"]
    return template


def revision_entry(rs: Mapping[str, Any]) -> Revision:
    return Revision(
        number=revision_of(rs), images=images_of(rs["spec"]["template"]), replicaset=rs["metadata"]["name"]
    )


def _drop_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value]
    return value
