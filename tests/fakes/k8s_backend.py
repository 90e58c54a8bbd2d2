"""The realistic starting state for the fake Kubernetes API: ``backend`` in ``hallyulatino-prod``.

Three revisions (``registry.example/backend:v1.3.0``, ``v1.3.1``, ``v1.4.0``), pod templates with the
fields the API server defaults (so template comparisons are as strict as against a real cluster), and the
annotations real deployments carry: kubectl's last-applied configuration, the controller's revision, a
change cause and team annotations.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from tests.fakes.k8s_objects import REVISION, deployment_status, new_replicaset

if TYPE_CHECKING:
    from tests.fakes.k8s_api import FakeKubeApi


BACKEND_VERSIONS = ("v1.3.0", "v1.3.1", "v1.4.0")


def backend_template(version: str, *, registry: str = "registry.example/backend") -> dict[str, Any]:
    """A pod template as the API server stores it: defaults filled in, so equality checks are realistic."""
    return {
        "metadata": {
            "labels": {"app": "backend", "app.kubernetes.io/name": "backend", "tier": "api"},
            "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": "9090"},
        },
        "spec": {
            "containers": [
                {
                    "name": "backend",
                    "image": f"{registry}:{version}",
                    "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                    "env": [
                        {"name": "APP_VERSION", "value": version},
                        {"name": "LOG_LEVEL", "value": "info"},
                    ],
                    "resources": {
                        "limits": {"memory": "512Mi"},
                        "requests": {"cpu": "250m", "memory": "256Mi"},
                    },
                    "readinessProbe": {
                        "httpGet": {"path": "/healthz", "port": "http", "scheme": "HTTP"},
                        "timeoutSeconds": 1,
                        "periodSeconds": 10,
                        "successThreshold": 1,
                        "failureThreshold": 3,
                    },
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


def install_backend(
    api: FakeKubeApi,
    *,
    namespace: str = "hallyulatino-prod",
    name: str = "backend",
    versions: tuple[str, ...] = BACKEND_VERSIONS,
    replicas: int = 3,
    paused: bool = False,
    selector_expressions: bool = False,
    gitops: str | None = None,
    decoy: bool = True,
) -> dict[str, Any]:
    """Store ``name`` rolled out once per version (revision 1..N), the last one live; return the deployment.

    ``decoy`` adds a canary ReplicaSet whose labels match the selector but which another deployment controls
    (revision 7): undo must ignore it. ``gitops`` is ``"argocd"`` or ``"flux"``.
    """
    selector: dict[str, Any] = {"matchLabels": {"app": "backend"}}
    if selector_expressions:
        selector["matchExpressions"] = [
            {"key": "tier", "operator": "In", "values": ["api", "api-v2"]},
            {"key": "track", "operator": "DoesNotExist"},
        ]
    labels = {"app": "backend", "app.kubernetes.io/name": "backend"}
    team = {"hallyulatino.example/owner": "backend-team"}
    if gitops == "argocd":
        labels["app.kubernetes.io/instance"] = "backend-prod"
        team["argocd.argoproj.io/tracking-id"] = f"backend-prod:apps/Deployment:{namespace}/{name}"
    elif gitops == "flux":
        labels |= {
            "kustomize.toolkit.fluxcd.io/name": "backend",
            "kustomize.toolkit.fluxcd.io/namespace": "flux-system",
        }
    dep: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": f"dep-{name}-0c6f3a",
            "generation": 0,
            "creationTimestamp": "2025-01-14T09:12:03Z",
            "labels": labels,
            "annotations": {},
        },
        "spec": {
            "replicas": replicas,
            "selector": selector,
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"},
            },
            "revisionHistoryLimit": 10,
            "progressDeadlineSeconds": 600,
        },
    }
    for number, version in enumerate(versions, 1):
        dep["metadata"]["generation"] += 1
        dep["spec"]["template"] = backend_template(version)
        ann = {**team, "kubernetes.io/change-cause": f"release {version}"}
        if number == len(versions):  # added after the older releases: an undo drops it, as kubectl does
            ann["hallyulatino.example/oncall"] = "#backend-oncall"
        dep["metadata"]["annotations"] = ann
        live = number == len(versions)
        api.put("replicasets", new_replicaset(dep, number, replicas=replicas if live else 0))
    applied = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"replicas": replicas, "selector": selector, "template": backend_template(versions[-1])},
    }
    dep["metadata"]["annotations"] |= {
        REVISION: str(len(versions)),
        "kubectl.kubernetes.io/last-applied-configuration": json.dumps(applied, separators=(",", ":")) + "\n",
    }
    rs_name = f"{name}-" + new_replicaset(dep, 0, replicas=0)["metadata"]["name"].rsplit("-", 1)[1]
    dep["status"] = deployment_status(dep, replicas, replicas, replicas, "NewReplicaSetAvailable", rs_name)
    if paused:
        dep["spec"]["paused"] = True
        dep["status"] = deployment_status(dep, replicas, replicas, replicas, "DeploymentPaused", rs_name)
    api.put("deployments", dep)
    if decoy:
        canary = {
            **dep,
            "metadata": {**dep["metadata"], "name": f"{name}-canary", "uid": "dep-canary-51d2e0"},
        }
        canary["spec"] = {**dep["spec"], "replicas": 1, "template": backend_template("v1.5.0-rc.1")}
        canary["spec"]["template"]["metadata"]["labels"]["track"] = "canary"
        api.put("replicasets", new_replicaset(canary, 7, replicas=1))
    return api.get_object("deployments", namespace, name)
