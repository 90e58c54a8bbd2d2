"""A simulated cluster for the playground: the few Kubernetes API calls a rollback makes, over loopback HTTP.

The bot's real ``KubeDeployer`` (the official client, kubectl's undo algorithm) talks to it through a kubeconfig,
as it would to a cluster. It holds one Deployment (the checklist's rollback target, ``deployment/backend`` in the
shipped checklist) rolled out once per version, so it has a few revisions, and a small deployment controller: an
undo patch makes the matching old ReplicaSet the newest revision, and the rollout then passes through the same
statuses a rolling update does (one surge pod at a time) over a few seconds, for ``kubectl rollout status`` (and
the bot) to follow. It answers what the bot asks and nothing else; it is a stage prop, not a test double.
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

REVISION = "deployment.kubernetes.io/revision"
HISTORY = "deployment.kubernetes.io/revision-history"
HASH = "pod-template-hash"
STEP_S = 0.8  # between two statuses of a rollout: slow enough to watch, quick enough not to wait for


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _template(name: str, image: str, version: str) -> dict[str, Any]:
    return {
        "metadata": {"labels": {"app": name}},
        "spec": {
            "containers": [
                {
                    "name": name,
                    "image": f"{image}:{version}",
                    "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                    "env": [{"name": "APP_VERSION", "value": version}],
                    "terminationMessagePath": "/dev/termination-log",
                    "terminationMessagePolicy": "File",
                    "imagePullPolicy": "IfNotPresent",
                }
            ],
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst",
            "schedulerName": "default-scheduler",
        },
    }


def _key(template: dict[str, Any]) -> str:
    t = copy.deepcopy(template)
    t.get("metadata", {}).get("labels", {}).pop(HASH, None)
    return json.dumps(t, sort_keys=True)


def _hash(template: dict[str, Any]) -> str:
    h = 0x811C9DC5
    for byte in _key(template).encode():
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    alphabet = "bcdfghjklmnpqrstvwxz2456789"
    return "".join(alphabet[ord(c) % len(alphabet)] for c in f"{h:010d}")


def _status(dep: dict[str, Any], replicas: int, updated: int, available: int, reason: str) -> dict[str, Any]:
    return {
        "observedGeneration": dep["metadata"]["generation"],
        "replicas": replicas,
        "updatedReplicas": updated,
        "readyReplicas": available,
        "availableReplicas": available,
        "conditions": [
            {
                "type": "Available",
                "status": "True",
                "reason": "MinimumReplicasAvailable",
                "lastUpdateTime": _now(),
            },
            {"type": "Progressing", "status": "True", "reason": reason, "lastUpdateTime": _now()},
        ],
    }


class ClusterStandIn:
    """One namespace with one Deployment and its ReplicaSets, served on 127.0.0.1."""

    def __init__(
        self,
        *,
        namespace: str,
        deployment: str,
        versions: tuple[str, ...] = ("v1.2.1", "v1.2.2", "v1.2.3"),
        replicas: int = 3,
        image: str = "registry.hallyulatino.example",
        on_change: Callable[[str], None] = lambda _line: None,
    ) -> None:
        self.namespace, self.name = namespace, deployment
        self._on_change = on_change
        self._lock = threading.Lock()
        self._replicasets: list[dict[str, Any]] = []
        self._steps: list[dict[str, Any]] = []
        self.deployment = self._install(versions, replicas, f"{image}/{deployment}")
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return None

            def _answer(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._answer(*stand_in.get(self.path))

            def do_PATCH(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length") or 0))
                self._answer(*stand_in.patch(self.path, self.headers.get("content-type", ""), raw))

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._threads = [
            threading.Thread(target=self._server.serve_forever, daemon=True, name="cluster-stand-in"),
            threading.Thread(target=self._controller, daemon=True, name="cluster-controller"),
        ]
        self._stopping = threading.Event()

    # --- lifecycle ------------------------------------------------------------------------------------

    def start(self) -> ClusterStandIn:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def write_kubeconfig(self, path: Path) -> Path:
        """A kubeconfig that points the client at this stand-in (JSON is valid YAML)."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "playground", "cluster": {"server": self.url}}],
            "users": [{"name": "playground", "user": {"token": "playground"}}],
            "contexts": [
                {
                    "name": "playground",
                    "context": {"cluster": "playground", "user": "playground", "namespace": self.namespace},
                }
            ],
            "current-context": "playground",
        }
        path.write_text(json.dumps(config, indent=2), encoding="utf-8")
        return path

    # --- state ----------------------------------------------------------------------------------------

    def _install(self, versions: tuple[str, ...], replicas: int, image: str) -> dict[str, Any]:
        dep: dict[str, Any] = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "uid": f"dep-{self.name}-playground",
                "generation": 0,
                "labels": {"app": self.name},
                "annotations": {},
            },
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": self.name}},
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
            dep["spec"]["template"] = _template(self.name, image, version)
            dep["metadata"]["annotations"] = {"kubernetes.io/change-cause": f"release {version}"}
            live = number == len(versions)
            self._replicasets.append(self._replicaset(dep, number, replicas if live else 0))
        dep["metadata"]["annotations"][REVISION] = str(len(versions))
        dep["status"] = _status(dep, replicas, replicas, replicas, "NewReplicaSetAvailable")
        return dep

    def _replicaset(self, dep: dict[str, Any], revision: int, replicas: int) -> dict[str, Any]:
        template = copy.deepcopy(dep["spec"]["template"])
        digest = _hash(template)
        template["metadata"]["labels"][HASH] = digest
        annotations = {k: v for k, v in dep["metadata"]["annotations"].items() if k != REVISION}
        return {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": f"{self.name}-{digest}",
                "namespace": self.namespace,
                "uid": f"rs-{digest}",
                "labels": dict(template["metadata"]["labels"]),
                "annotations": {**annotations, REVISION: str(revision)},
                "ownerReferences": [
                    {
                        "apiVersion": "apps/v1",
                        "kind": "Deployment",
                        "name": self.name,
                        "uid": dep["metadata"]["uid"],
                        "controller": True,
                    }
                ],
            },
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": dict(template["metadata"]["labels"])},
                "template": template,
            },
            "status": {"replicas": replicas, "readyReplicas": replicas, "availableReplicas": replicas},
        }

    def rolling(self) -> bool:
        """Whether a rollout is in progress (its statuses are still to come)."""
        with self._lock:
            return bool(self._steps)

    def revisions(self) -> list[tuple[int, str]]:
        """(revision, image) of each ReplicaSet, oldest first: what ``kubectl rollout history`` lists."""
        with self._lock:
            found = [
                (
                    int(rs["metadata"]["annotations"][REVISION]),
                    rs["spec"]["template"]["spec"]["containers"][0]["image"],
                )
                for rs in self._replicasets
            ]
        return sorted(found)

    # --- the API --------------------------------------------------------------------------------------

    def _path(self, raw: str) -> tuple[str, str | None, dict[str, list[str]]]:
        parts = urlsplit(raw)
        prefix = f"/apis/apps/v1/namespaces/{self.namespace}/"
        rest = parts.path.removeprefix(prefix) if parts.path.startswith(prefix) else ""
        kind, _, name = rest.partition("/")
        return kind, name or None, parse_qs(parts.query)

    @staticmethod
    def _not_found(what: str) -> tuple[int, dict[str, Any]]:
        return 404, {
            "kind": "Status",
            "apiVersion": "v1",
            "status": "Failure",
            "message": f"{what} not found",
            "reason": "NotFound",
            "code": 404,
        }

    def get(self, raw: str) -> tuple[int, dict[str, Any]]:
        kind, name, _query = self._path(raw)
        with self._lock:
            if kind == "deployments" and name == self.name:
                return 200, copy.deepcopy(self.deployment)
            if kind == "replicasets" and name is None:
                return 200, {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSetList",
                    "metadata": {"resourceVersion": "1"},
                    "items": copy.deepcopy(self._replicasets),
                }
        return self._not_found(f'{kind} "{name}"' if name else kind or raw)

    def patch(self, raw: str, content_type: str, body: bytes) -> tuple[int, dict[str, Any]]:
        kind, name, _query = self._path(raw)
        if kind != "deployments" or name != self.name:
            return self._not_found(f'{kind} "{name}"')
        try:
            ops = json.loads(body)
        except ValueError:
            ops = None
        if "json-patch" not in content_type or not isinstance(ops, list):
            return 415, {
                "kind": "Status",
                "status": "Failure",
                "message": "the playground takes JSON patches only",
                "code": 415,
            }
        with self._lock:
            dep = self.deployment
            for op in ops:
                if op.get("op") == "replace" and op.get("path") == "/spec/template":
                    dep["spec"]["template"] = op["value"]
                elif op.get("op") == "replace" and op.get("path") == "/metadata/annotations":
                    dep["metadata"]["annotations"] = op["value"]
            dep["metadata"]["generation"] += 1
            live = self._adopt(dep)
            answer = copy.deepcopy(dep)
        self._on_change(f"deployment.apps/{self.name} patched: rolling out revision {live}")
        return 200, answer

    def _adopt(self, dep: dict[str, Any]) -> int:
        """The controller's part of an undo: the matching ReplicaSet becomes the newest revision; then roll."""
        top = max(int(rs["metadata"]["annotations"][REVISION]) for rs in self._replicasets)
        key = _key(dep["spec"]["template"])
        target = next((rs for rs in self._replicasets if _key(rs["spec"]["template"]) == key), None)
        if target is None:
            target = self._replicaset(dep, top + 1, 0)
            self._replicasets.append(target)
        else:
            annotations = target["metadata"]["annotations"]
            old = annotations[REVISION]
            if int(old) < top:
                annotations[HISTORY] = ",".join(filter(None, [annotations.get(HISTORY, ""), old]))
                annotations[REVISION] = str(top + 1)
        dep["metadata"]["annotations"][REVISION] = target["metadata"]["annotations"][REVISION]
        replicas = dep["spec"]["replicas"]
        observed = {**dep["status"], "observedGeneration": dep["metadata"]["generation"] - 1}
        steps = [observed]  # the controller has not seen the new spec yet
        steps += [
            _status(dep, replicas + 1, i, replicas, "ReplicaSetUpdated") for i in range(1, replicas + 1)
        ]
        steps.append(_status(dep, replicas + 1, replicas, replicas, "ReplicaSetUpdated"))
        steps.append(_status(dep, replicas, replicas, replicas, "NewReplicaSetAvailable"))
        self._steps = steps
        for rs in self._replicasets:
            count = replicas if rs is target else 0
            rs["spec"]["replicas"] = count
            rs["status"] = {"replicas": count, "readyReplicas": count, "availableReplicas": count}
        return int(target["metadata"]["annotations"][REVISION])

    def _controller(self) -> None:
        while not self._stopping.wait(STEP_S):
            with self._lock:
                if not self._steps:
                    continue
                self.deployment["status"] = self._steps.pop(0)
                done = not self._steps
            if done:
                self._on_change(f'deployment "{self.name}" successfully rolled out')
