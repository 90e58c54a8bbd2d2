"""Server-side behaviour of ``Rollout`` (argoproj.io/v1alpha1) and ``HTTPRoute`` (gateway.networking.k8s.io/v1)
for the fake Kubernetes API: validation, the status subresource split, and the Argo Rollouts controller's canary
step machine, one transition per reconcile so tests can see each intermediate state.

The machine follows the controller as reference/progressive-delivery.md describes it: ``setWeight`` sets
``status.canary.weights`` and moves on; ``pause: {}`` adds a ``CanaryPauseStep`` pause condition with
``controllerPause``; a pause condition cleared by a user (``controllerPause`` still true) completes the step;
after the last step the canary becomes stable; ``abort`` sends the weight back to 0 and the phase to Degraded;
a template change starts a new revision at step 0, unless it is the stable template (then it is stable at once,
as Argo's rollback to the stable ReplicaSet skips the steps). Timed pauses are treated as untimed: tests drive
the clock, not the controller.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from tests.fakes.k8s_objects import pod_template_hash

if TYPE_CHECKING:
    from tests.fakes.k8s_api import FakeKubeApi

ROLLOUT_REVISION = "rollout.argoproj.io/revision"
ROLLOUT_HASH = "rollouts-pod-template-hash"
BACKEND_IMAGE = "registry.example/backend"
DEFAULT_STEPS: list[dict[str, Any]] = [
    {"setWeight": 10},
    {"pause": {}},
    {"setWeight": 50},
    {"pause": {}},
]


def _stamp_time(n: int) -> str:
    return f"2026-12-06T10:{n // 60 % 60:02d}:{n % 60:02d}Z"


def rollout_template(version: str) -> dict[str, Any]:
    return {
        "metadata": {"labels": {"app": "backend"}},
        "spec": {
            "containers": [
                {
                    "name": "backend",
                    "image": f"{BACKEND_IMAGE}:{version}",
                    "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                    "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}},
                    "terminationMessagePath": "/dev/termination-log",
                    "terminationMessagePolicy": "File",
                    "imagePullPolicy": "IfNotPresent",
                }
            ],
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst",
            "securityContext": {},
            "schedulerName": "default-scheduler",
        },
    }


def rollout_replicaset(ro: dict[str, Any], revision: int, template: dict[str, Any]) -> dict[str, Any]:
    digest = pod_template_hash(template)
    tmpl = copy.deepcopy(template)
    tmpl.setdefault("metadata", {}).setdefault("labels", {})[ROLLOUT_HASH] = digest
    name = ro["metadata"]["name"]
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": f"{name}-{digest}",
            "namespace": ro["metadata"]["namespace"],
            "uid": f"rs-{digest}",
            "generation": 1,
            "labels": dict(tmpl["metadata"]["labels"]),
            "annotations": {ROLLOUT_REVISION: str(revision)},
            "ownerReferences": [
                {
                    "apiVersion": "argoproj.io/v1alpha1",
                    "kind": "Rollout",
                    "name": name,
                    "uid": ro["metadata"]["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": "backend", ROLLOUT_HASH: digest}},
            "template": tmpl,
        },
        "status": {"replicas": 0},
    }


def new_rollout(
    namespace: str,
    name: str,
    version: str,
    *,
    steps: list[dict[str, Any]] | None = None,
    replicas: int = 4,
) -> dict[str, Any]:
    """A Rollout fully promoted at ``version`` (stable), as the controller leaves it."""
    template = rollout_template(version)
    digest = pod_template_hash(template)
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": f"ro-{name}-4b1e",
            "generation": 1,
            "creationTimestamp": "2025-03-02T08:00:00Z",
            "annotations": {ROLLOUT_REVISION: "1"},
            "managedFields": [
                {"manager": "argocd-controller", "operation": "Update", "time": _stamp_time(0)}
            ],
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "backend"}},
            "template": template,
            "strategy": {
                "canary": {
                    "canaryService": f"{name}-canary",
                    "stableService": f"{name}-stable",
                    "trafficRouting": {"nginx": {"stableIngress": name}},
                    "steps": copy.deepcopy(DEFAULT_STEPS if steps is None else steps),
                }
            },
        },
        "status": {
            "observedGeneration": "1",
            "currentPodHash": digest,
            "stableRS": digest,
            "currentStepIndex": len(DEFAULT_STEPS if steps is None else steps),
            "canary": {"weights": {"canary": {"weight": 0}, "stable": {"weight": 100}}},
            "phase": "Healthy",
            "message": "",
            "replicas": replicas,
            "availableReplicas": replicas,
        },
    }


def validate_rollout(ro: dict[str, Any]) -> str:
    """What the CRD's schema (and the API server) would refuse, in the API's words."""
    spec, status = ro.get("spec") or {}, ro.get("status") or {}
    if "paused" in spec and not isinstance(spec["paused"], bool):
        return "spec.paused: Invalid value: must be of type boolean"
    template = spec.get("template")
    if not isinstance(template, dict) or not (template.get("spec") or {}).get("containers"):
        return "spec.template.spec.containers: Required value"
    steps = ((spec.get("strategy") or {}).get("canary") or {}).get("steps") or []
    index = status.get("currentStepIndex")
    if index is not None and (not isinstance(index, int) or isinstance(index, bool) or index < 0):
        return "status.currentStepIndex: Invalid value: must be a non-negative integer"
    if isinstance(index, int) and index > len(steps):
        return f"status.currentStepIndex: Invalid value: {index}: must be at most {len(steps)}"
    for key in ("abort", "promoteFull", "controllerPause"):
        if key in status and not isinstance(status[key], bool):
            return f"status.{key}: Invalid value: must be of type boolean"
    return ""


def on_template_change(ro: dict[str, Any], rss: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The controller sees a new pod template: the canary restarts at step 0 on a new revision, or, for the
    stable template, the Rollout is stable again at once. Returns the ReplicaSets it created or renumbered."""
    status = ro.setdefault("status", {})
    steps = ((ro["spec"].get("strategy") or {}).get("canary") or {}).get("steps") or []
    digest = pod_template_hash(ro["spec"]["template"])
    owned = [rs for rs in rss if _owned(rs, ro)]
    top = max((int(rs["metadata"]["annotations"].get(ROLLOUT_REVISION, "0")) for rs in owned), default=0)
    existing = next((rs for rs in owned if rs["metadata"]["labels"].get(ROLLOUT_HASH) == digest), None)
    rs = existing or rollout_replicaset(ro, top + 1, ro["spec"]["template"])
    rs["metadata"]["annotations"][ROLLOUT_REVISION] = str(top + 1)
    ro["metadata"].setdefault("annotations", {})[ROLLOUT_REVISION] = str(top + 1)
    status.update(currentPodHash=digest, abort=False, controllerPause=False)
    status.pop("abortedAt", None)
    status.pop("pauseConditions", None)
    if digest == status.get("stableRS"):
        status.update(currentStepIndex=len(steps), phase="Healthy", message="")
        status["canary"] = {"weights": {"canary": {"weight": 0}, "stable": {"weight": 100}}}
    else:
        status.update(currentStepIndex=0, phase="Progressing", message="more replicas need to be updated")
    return [rs]


def _owned(rs: dict[str, Any], ro: dict[str, Any]) -> bool:
    return any(
        r.get("controller") and r.get("uid") == ro["metadata"]["uid"]
        for r in rs["metadata"].get("ownerReferences") or []
    )


def reconcile_rollout(ro: dict[str, Any], clock: int) -> bool:
    """One transition of the canary step machine; True when the status changed."""
    before = copy.deepcopy(ro.get("status") or {})
    status = ro.setdefault("status", {})
    status["observedGeneration"] = str(ro["metadata"].get("generation", 1))
    steps = ((ro["spec"].get("strategy") or {}).get("canary") or {}).get("steps") or []
    weights = status.setdefault("canary", {}).setdefault(
        "weights", {"canary": {"weight": 0}, "stable": {"weight": 100}}
    )
    revision = ro["metadata"].get("annotations", {}).get(ROLLOUT_REVISION, "?")
    if status.get("abort"):
        weights["canary"]["weight"], weights["stable"]["weight"] = 0, 100
        status.pop("pauseConditions", None)
        status["controllerPause"] = False
        status.setdefault("abortedAt", _stamp_time(clock))
        status["phase"] = "Degraded"
        status["message"] = f"RolloutAborted: Rollout aborted update to revision {revision}"
    elif status.get("currentPodHash") == status.get("stableRS"):
        weights["canary"]["weight"], weights["stable"]["weight"] = 0, 100
        status.update(phase="Healthy", message="")
    elif ro["spec"].get("paused"):
        status.update(phase="Paused", message="manually paused")
    else:
        index = int(status.get("currentStepIndex") or 0)
        step = steps[index] if index < len(steps) else None
        if step is None:  # past the last step: the canary becomes stable
            status["stableRS"] = status.get("currentPodHash")
            weights["canary"]["weight"], weights["stable"]["weight"] = 0, 100
            status.update(phase="Healthy", message="", controllerPause=False)
        elif "setWeight" in step:
            weight = int(step["setWeight"])
            weights["canary"]["weight"], weights["stable"]["weight"] = weight, 100 - weight
            status.update(currentStepIndex=index + 1, phase="Progressing", message="")
        elif "pause" in step:
            if status.get("pauseConditions"):
                status.update(phase="Paused", message="CanaryPauseStep")
            elif status.get("controllerPause"):  # a user removed the pause condition: the step is done
                status.update(currentStepIndex=index + 1, controllerPause=False, phase="Progressing")
            else:
                status["pauseConditions"] = [{"reason": "CanaryPauseStep", "startTime": _stamp_time(clock)}]
                status.update(controllerPause=True, phase="Paused", message="CanaryPauseStep")
        else:
            status.update(currentStepIndex=index + 1)  # steps the bot does not drive complete at once
    return status != before


# --- HTTPRoute ---------------------------------------------------------------------------------------------


def new_route(
    namespace: str, name: str, stable: str, canary: str, *, weights: tuple[int, int] | None = (100, 0)
) -> dict[str, Any]:
    refs: list[dict[str, Any]] = [
        {"group": "", "kind": "Service", "name": stable, "port": 8080},
        {"group": "", "kind": "Service", "name": canary, "port": 8080},
    ]
    if weights is not None:
        refs[0]["weight"], refs[1]["weight"] = weights
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": f"route-{name}-77c2",
            "generation": 1,
            "creationTimestamp": "2025-03-02T08:00:00Z",
            "managedFields": [{"manager": "helm", "operation": "Update", "time": _stamp_time(0)}],
        },
        "spec": {
            "parentRefs": [{"name": "public", "namespace": "gateway"}],
            "hostnames": ["api.hallyulatino.example"],
            "rules": [
                {"matches": [{"path": {"type": "PathPrefix", "value": "/"}}], "backendRefs": refs},
            ],
        },
        "status": {"parents": [_parent_status(1)]},
    }


def _parent_status(generation: int) -> dict[str, Any]:
    return {
        "parentRef": {"name": "public", "namespace": "gateway"},
        "controllerName": "gateway.envoyproxy.io/gatewayclass-controller",
        "conditions": [
            {"type": kind, "status": "True", "reason": kind, "observedGeneration": generation}
            for kind in ("Accepted", "ResolvedRefs")
        ],
    }


def validate_route(route: dict[str, Any]) -> str:
    for r, rule in enumerate((route.get("spec") or {}).get("rules") or []):
        for b, ref in enumerate(rule.get("backendRefs") or []):
            where = f"spec.rules[{r}].backendRefs[{b}]"
            if not isinstance(ref.get("name"), str) or not ref["name"]:
                return f"{where}.name: Required value"
            weight = ref.get("weight", 1)
            if not isinstance(weight, int) or isinstance(weight, bool) or not 0 <= weight <= 1_000_000:
                return f"{where}.weight: Invalid value: {weight!r}: must be between 0 and 1000000"
    return ""


def reconcile_route(route: dict[str, Any]) -> bool:
    """The Gateway controller accepts the route's new generation."""
    generation = int(route["metadata"].get("generation", 1))
    parents = (route.get("status") or {}).get("parents") or []
    if parents and all(c.get("observedGeneration") == generation for p in parents for c in p["conditions"]):
        return False
    route.setdefault("status", {})["parents"] = [_parent_status(generation)]
    return True


# --- starting states ---------------------------------------------------------------------------------------


def install_rollout(
    api: FakeKubeApi,
    *,
    namespace: str = "hallyulatino-prod",
    name: str = "backend",
    versions: tuple[str, ...] = ("v1.3.1", "v1.4.0"),
    new_version: str | None = "v1.5.0",
    steps: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Store ``name`` stable at ``versions[-1]`` (one ReplicaSet per version), then, if ``new_version`` is
    given, CI's image update (by Argo CD): the canary starts at step 0. Returns the Rollout."""
    ro = new_rollout(namespace, name, versions[0], steps=steps)
    for number, version in enumerate(versions, 1):
        ro["spec"]["template"] = rollout_template(version)
        api.put("replicasets", rollout_replicaset(ro, number, ro["spec"]["template"]))
    digest = pod_template_hash(ro["spec"]["template"])
    ro["metadata"]["annotations"][ROLLOUT_REVISION] = str(len(versions))
    ro["status"].update(currentPodHash=digest, stableRS=digest)
    api.put("rollouts", ro)
    if new_version is not None:
        deploy_version(api, new_version, namespace=namespace, name=name)
    return api.get_object("rollouts", namespace, name)


def deploy_version(
    api: FakeKubeApi, version: str, *, namespace: str = "hallyulatino-prod", name: str = "backend"
) -> dict[str, Any]:
    """CI (through Argo CD) sets a new image: the canary of a new revision begins."""
    patch = {"spec": {"template": rollout_template(version)}}
    return api.outside_patch("rollouts", namespace, name, patch, manager="argocd-controller")


def install_route(
    api: FakeKubeApi,
    *,
    namespace: str = "hallyulatino-prod",
    name: str = "backend",
    stable: str = "backend-stable",
    canary: str = "backend-canary",
    weights: tuple[int, int] | None = (100, 0),
) -> dict[str, Any]:
    api.put("httproutes", new_route(namespace, name, stable, canary, weights=weights))
    return api.get_object("httproutes", namespace, name)
