"""Server-side behaviour of the fake Kubernetes API: Status bodies, discovery, patch formats, label selectors,
and the deployment controller's ReplicaSet bookkeeping (``deployment/util/deployment_util.go``)."""

from __future__ import annotations

import copy
import json
import re
from datetime import UTC, datetime
from typing import Any

DEFAULT_SA_USER = "system:serviceaccount:release-bot:release-bot"
REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
# The controller never copies these from a Deployment to its ReplicaSets.
SKIP_COPY = frozenset(
    {
        "kubectl.kubernetes.io/last-applied-configuration",
        REVISION,
        REVISION_HISTORY,
        "deployment.kubernetes.io/desired-replicas",
        "deployment.kubernetes.io/max-replicas",
        "deprecated.deployment.rollback.to",
    }
)
_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    415: "UnsupportedMediaType",
    422: "Invalid",
    500: "InternalError",
    503: "ServiceUnavailable",
}


# The API group of each resource the fake serves (a subresource shares its resource's group).
GROUPS = {
    "deployments": "apps",
    "replicasets": "apps",
    "rollouts": "argoproj.io",
    "httproutes": "gateway.networking.k8s.io",
}


def group_of(resource: str) -> str:
    return GROUPS.get(resource.split("/")[0], "apps")


def status_body(
    code: int,
    resource: str,
    name: str,
    detail: str = "",
    *,
    verb: str = "get",
    user: str = "",
    namespace: str = "",
) -> dict[str, Any]:
    """Build the ``Status`` document the API server answers an error with."""
    group = group_of(resource)
    gr = f"{resource.split('/')[0]}.{group}" if resource else ""
    obj = f'{gr} "{name}"' if name else gr
    messages = {
        401: "Unauthorized",
        403: f'{obj} is forbidden: User "{user}" cannot {verb} resource "{resource}" in API group "{group}"'
        f' in the namespace "{namespace}"',
        404: f"{obj} not found" if resource else "the server could not find the requested resource",
        409: f"Operation cannot be fulfilled on {obj}: the object has been modified; "
        "please apply your changes to the latest version and try again",
        415: f"the body of the request was in an unknown format - accepted media types include: {detail}"
        if detail
        else "the body of the request was in an unknown format",
        422: f"{resource.split('/')[0][:-1].capitalize()} {name!r} is invalid: {detail}".replace("'", '"'),
        500: "Internal error occurred: etcdserver: request timed out",
    }
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": messages.get(code, detail or _REASONS.get(code, "Failure")),
        "reason": _REASONS.get(code, "Unknown"),
        "code": code,
    }
    if name and resource:
        body["details"] = {"name": name, "group": group, "kind": resource.split("/")[0]}
    return body


def discovery(path: str, server_url: str) -> dict[str, Any] | None:
    """The legacy discovery document for ``path``; kubectl falls back to it from aggregated discovery."""
    verbs = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
    docs: dict[str, dict[str, Any]] = {
        "/version": {"major": "1", "minor": "32", "gitVersion": "v1.32.4", "platform": "linux/amd64"},
        "/api": {
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": server_url.split("//")[1]}
            ],
        },
        "/apis": {
            "kind": "APIGroupList",
            "apiVersion": "v1",
            "groups": [
                {
                    "name": "apps",
                    "versions": [{"groupVersion": "apps/v1", "version": "v1"}],
                    "preferredVersion": {"groupVersion": "apps/v1", "version": "v1"},
                }
            ],
        },
        "/api/v1": {
            "kind": "APIResourceList",
            "groupVersion": "v1",
            "resources": [
                {
                    "name": "pods",
                    "singularName": "pod",
                    "namespaced": True,
                    "kind": "Pod",
                    "verbs": verbs,
                    "shortNames": ["po"],
                    "categories": ["all"],
                },
                {
                    "name": "namespaces",
                    "singularName": "namespace",
                    "namespaced": False,
                    "kind": "Namespace",
                    "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
                    "shortNames": ["ns"],
                },
            ],
        },
        "/apis/apps/v1": {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": "apps/v1",
            "resources": [
                {
                    "name": "deployments",
                    "singularName": "deployment",
                    "namespaced": True,
                    "kind": "Deployment",
                    "verbs": verbs,
                    "shortNames": ["deploy"],
                    "categories": ["all"],
                },
                {
                    "name": "deployments/status",
                    "singularName": "",
                    "namespaced": True,
                    "kind": "Deployment",
                    "verbs": ["get", "patch", "update"],
                },
                {
                    "name": "replicasets",
                    "singularName": "replicaset",
                    "namespaced": True,
                    "kind": "ReplicaSet",
                    "verbs": verbs,
                    "shortNames": ["rs"],
                    "categories": ["all"],
                },
            ],
        },
    }
    return docs.get(path.rstrip("/") or path)


def strip_nulls(value: Any) -> Any:
    """Drop JSON nulls recursively, as the server's decode/encode round trip does."""
    if isinstance(value, dict):
        return {k: strip_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [strip_nulls(v) for v in value]
    return value


# --- patches ----------------------------------------------------------------------------------------------


def apply_patch(obj: dict[str, Any], patch: Any, content_type: str) -> dict[str, Any]:
    """Apply a JSON, merge or (subset of) strategic merge patch; ValueError when it does not apply."""
    if content_type == "application/json-patch+json":
        if not isinstance(patch, list):
            raise ValueError("a JSON patch must be a list of operations")
        doc = copy.deepcopy(obj)
        for op in patch:
            doc = _json_patch_op(doc, op)
        return doc
    if not isinstance(patch, dict):
        raise ValueError("a merge patch must be an object")
    return _merge(obj, patch, strategic=content_type == "application/strategic-merge-patch+json")


def _json_patch_op(doc: dict[str, Any], op: dict[str, Any]) -> dict[str, Any]:
    kind, path = op.get("op"), op.get("path", "")
    parts = [p.replace("~1", "/").replace("~0", "~") for p in path.split("/")[1:]]
    if not parts:
        raise ValueError(f"{kind} operation does not apply: path {path!r} is not a member path")
    parent: Any = doc
    for p in parts[:-1]:
        parent = parent[int(p)] if isinstance(parent, list) else parent.get(p)
        if parent is None:
            raise ValueError(f"{kind} operation does not apply: doc is missing path: {path}")
    last = parts[-1]
    exists = (int(last) < len(parent)) if isinstance(parent, list) else last in parent
    if kind == "test":
        if not exists or (parent[int(last)] if isinstance(parent, list) else parent[last]) != op.get("value"):
            raise ValueError(f"testing value {path} failed")
    elif kind in ("replace", "remove"):
        if not exists:
            raise ValueError(f"{kind} operation does not apply: doc is missing key: {path}")
        key: Any = int(last) if isinstance(parent, list) else last
        if kind == "remove":
            del parent[key]
        else:
            parent[key] = copy.deepcopy(op.get("value"))
    elif kind == "add":
        if isinstance(parent, list):
            parent.insert(len(parent) if last == "-" else int(last), copy.deepcopy(op.get("value")))
        else:
            parent[last] = copy.deepcopy(op.get("value"))
    else:
        raise ValueError(f"unsupported JSON patch operation {kind!r}")
    return doc


def _merge(target: Any, patch: Any, *, strategic: bool) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        elif strategic and isinstance(v, list) and _named(v) and _named(out.get(k)):
            merged = {item["name"]: item for item in out[k]}
            for item in v:
                merged[item["name"]] = _merge(merged.get(item["name"], {}), item, strategic=True)
            out[k] = list(merged.values())
        else:
            out[k] = _merge(out.get(k), v, strategic=strategic)
    return out


def _named(items: Any) -> bool:
    return isinstance(items, list) and bool(items) and all(isinstance(i, dict) and "name" in i for i in items)


# --- label selectors --------------------------------------------------------------------------------------

_TERM = re.compile(r"^\s*(!?)([\w./-]+)\s*(?:(==|!=|=|\s+in\s+|\s+notin\s+)\s*(\([^)]*\)|[\w.-]*))?\s*$")


def labels_match(labels: dict[str, str], selector: str) -> bool:
    """Match ``labels`` against a label selector string; ValueError when the selector does not parse."""
    for term in re.split(r",(?![^(]*\))", selector) if selector else []:
        m = _TERM.match(term)
        if m is None:
            raise ValueError(f"unable to parse requirement: {term!r}")
        neg, key, op, value = m.group(1), m.group(2), (m.group(3) or "").strip(), m.group(4) or ""
        values = {v.strip() for v in value.strip("()").split(",")}
        if not op:
            ok = (key in labels) != bool(neg)
        elif op in ("=", "=="):
            ok = labels.get(key) == value
        elif op == "!=":
            ok = labels.get(key) != value
        elif op == "in":
            ok = labels.get(key) in values
        else:
            ok = labels.get(key) not in values
        if not ok:
            return False
    return True


# --- the deployment controller ----------------------------------------------------------------------------


def template_key(template: dict[str, Any]) -> str:
    t = copy.deepcopy(template)
    t.get("metadata", {}).get("labels", {}).pop("pod-template-hash", None)
    return json.dumps(strip_nulls(t), sort_keys=True)


def pod_template_hash(template: dict[str, Any]) -> str:
    """A stable 10-character hash in the alphabet Kubernetes uses for ``pod-template-hash``."""
    h = 0x811C9DC5
    for byte in template_key(template).encode():
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    alphabet = "bcdfghjklmnpqrstvwxz2456789"
    return "".join(alphabet[ord(c) % len(alphabet)] for c in f"{h:010d}")


def revision_of(obj: dict[str, Any]) -> int:
    return int(obj["metadata"].get("annotations", {}).get(REVISION, "0") or 0)


def controlled_by(rs: dict[str, Any], dep: dict[str, Any]) -> bool:
    refs = rs["metadata"].get("ownerReferences", [])
    return any(r.get("controller") and r.get("uid") == dep["metadata"]["uid"] for r in refs)


def new_replicaset(dep: dict[str, Any], revision: int, *, replicas: int) -> dict[str, Any]:
    """Build the ReplicaSet the controller would create for the deployment's current template."""
    template = copy.deepcopy(dep["spec"]["template"])
    digest = pod_template_hash(template)
    template["metadata"].setdefault("labels", {})["pod-template-hash"] = digest
    selector = copy.deepcopy(dep["spec"]["selector"])
    selector.setdefault("matchLabels", {})["pod-template-hash"] = digest
    name = dep["metadata"]["name"]
    ann = {k: v for k, v in dep["metadata"].get("annotations", {}).items() if k not in SKIP_COPY}
    surge = dep["spec"]["replicas"] + 1
    ann |= {
        "deployment.kubernetes.io/desired-replicas": str(dep["spec"]["replicas"]),
        "deployment.kubernetes.io/max-replicas": str(surge),
        REVISION: str(revision),
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": f"{name}-{digest}",
            "namespace": dep["metadata"]["namespace"],
            "uid": f"rs-{digest}",
            "generation": 1,
            "creationTimestamp": _now(),
            "labels": dict(template["metadata"]["labels"]),
            "annotations": ann,
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "name": name,
                    "uid": dep["metadata"]["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {"replicas": replicas, "selector": selector, "template": template},
        "status": {
            "replicas": replicas,
            "fullyLabeledReplicas": replicas,
            "readyReplicas": replicas,
            "availableReplicas": replicas,
            "observedGeneration": 1,
        },
    }


def sync_controller(
    dep: dict[str, Any], rss: list[dict[str, Any]]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Find or create the new ReplicaSet and renumber revisions; return it and the ReplicaSets to store."""
    owned = [rs for rs in rss if controlled_by(rs, dep)]
    top = max((revision_of(rs) for rs in owned), default=0)
    key = template_key(dep["spec"]["template"])
    rs = next((copy.deepcopy(r) for r in owned if template_key(r["spec"]["template"]) == key), None)
    if rs is None:
        rs = new_replicaset(dep, top + 1, replicas=0)
    elif revision_of(rs) < top:
        ann = rs["metadata"].setdefault("annotations", {})
        old = ann.get(REVISION, "")
        ann[REVISION_HISTORY] = ",".join(filter(None, [*ann.get(REVISION_HISTORY, "").split(","), old]))
        ann[REVISION] = str(top + 1)
        ann |= {k: v for k, v in dep["metadata"].get("annotations", {}).items() if k not in SKIP_COPY}
    dep["metadata"].setdefault("annotations", {})[REVISION] = rs["metadata"]["annotations"][REVISION]
    return rs, [rs]


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def deployment_status(
    dep: dict[str, Any], replicas: int, updated: int, available: int, reason: str, rs_name: str
) -> dict[str, Any]:
    """A Deployment status as the controller writes it during a rolling update."""
    want = dep["spec"]["replicas"]
    progress = {
        "ReplicaSetUpdated": ("True", f'ReplicaSet "{rs_name}" is progressing.'),
        "NewReplicaSetAvailable": ("True", f'ReplicaSet "{rs_name}" has successfully progressed.'),
        "ProgressDeadlineExceeded": ("False", f'ReplicaSet "{rs_name}" has timed out progressing.'),
        "DeploymentPaused": ("Unknown", "Deployment is paused"),
    }[reason]
    now = _now()
    available_ok = available >= want
    status: dict[str, Any] = {
        "observedGeneration": dep["metadata"]["generation"],
        "replicas": replicas,
        "updatedReplicas": updated,
        "readyReplicas": available,
        "availableReplicas": available,
        "conditions": [
            {
                "type": "Available",
                "status": "True" if available_ok else "False",
                "reason": "MinimumReplicasAvailable" if available_ok else "MinimumReplicasUnavailable",
                "message": "Deployment has minimum availability."
                if available_ok
                else "Deployment does not have minimum availability.",
                "lastUpdateTime": now,
                "lastTransitionTime": now,
            },
            {
                "type": "Progressing",
                "status": progress[0],
                "reason": reason,
                "message": progress[1],
                "lastUpdateTime": now,
                "lastTransitionTime": now,
            },
        ],
    }
    if replicas > available:
        status["unavailableReplicas"] = replicas - available
    return status


def rollout_steps(dep: dict[str, Any], rs_name: str, mode: str) -> list[dict[str, Any]]:
    """The statuses a rolling update passes through (surge one pod at a time); the last carries ``_final``."""
    r = dep["spec"]["replicas"]
    if dep["spec"].get("paused"):
        old = dep.get("status", {})
        return [
            {
                **deployment_status(
                    dep,
                    old.get("replicas", r),
                    old.get("updatedReplicas", r),
                    old.get("availableReplicas", r),
                    "DeploymentPaused",
                    rs_name,
                )
            }
        ]
    first = deployment_status(dep, r + 1, 1, r, "ReplicaSetUpdated", rs_name)
    if mode == "stall":
        return [first]
    if mode == "stuck":
        return [first, deployment_status(dep, r + 1, 1, r, "ProgressDeadlineExceeded", rs_name)]
    steps = [deployment_status(dep, r + 1, i, r, "ReplicaSetUpdated", rs_name) for i in range(1, r + 1)]
    steps.append(deployment_status(dep, r, r, r - 1, "ReplicaSetUpdated", rs_name))
    steps.append({**deployment_status(dep, r, r, r, "NewReplicaSetAvailable", rs_name), "_final": True})
    return steps
