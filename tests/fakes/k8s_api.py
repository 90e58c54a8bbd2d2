"""A loopback Kubernetes API server speaking enough apps/v1 for the python client AND real ``kubectl``.

Plain HTTP on 127.0.0.1, or HTTPS with ``tls=`` (kubectl sends a bearer token only over TLS). Serves the
discovery documents kubectl reads (``/version``, ``/api``, ``/apis``, ``/api/v1``, ``/apis/apps/v1``),
deployments (GET, LIST with ``fieldSelector=metadata.name=``, WATCH as chunked JSON events, PATCH as JSON
patch, merge patch and a strategic merge subset) and replicasets (GET, LIST with ``labelSelector`` and
``limit``/``continue`` paging), answering errors with ``Status`` bodies.

A small deployment controller runs on reads, so tests are deterministic and need no sleeps: after a template
change the next read still shows the old ``observedGeneration``; each later read (or watch tick) moves the
rollout one step (RS found by template or created with the next revision, old number into
``revision-history``, then replicas surge one by one until ``NewReplicaSetAvailable``). ``rollout_mode``
picks ``complete``, ``stuck`` (ProgressDeadlineExceeded) or ``stall`` (waits forever, deadline not reached).
Faults per verb/resource: ``fail("patch", "deployments", 403)``, ``hang("get", "deployments")``.
Object rules (patches, selectors, the controller's ReplicaSet bookkeeping) are in ``tests.fakes.k8s_objects``,
the realistic starting state (``install_backend``, re-exported here) in ``tests.fakes.k8s_backend``.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import socketserver
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

from tests.fakes.k8s_backend import BACKEND_VERSIONS, backend_template, install_backend
from tests.fakes.k8s_objects import (
    DEFAULT_SA_USER,
    apply_patch,
    discovery,
    group_of,
    labels_match,
    rollout_steps,
    status_body,
    strip_nulls,
    sync_controller,
)
from tests.fakes.k8s_rollouts import (
    on_template_change,
    reconcile_rollout,
    reconcile_route,
    validate_rollout,
    validate_route,
)
from tests.fakes.tls import TlsFiles

__all__ = [
    "BACKEND_VERSIONS",
    "FakeKubeApi",
    "RecordedRequest",
    "backend_template",
    "install_backend",
    "rbac_allows",
]

RolloutMode = Literal["complete", "stuck", "stall"]
_COLLECTION = re.compile(
    r"^/apis/(apps/v1|argoproj\.io/v1alpha1|gateway\.networking\.k8s\.io/v1)/namespaces/([^/]+)/"
    r"(deployments|replicasets|rollouts|httproutes)(?:/([^/]+))?(?:/(status))?$"
)
_GROUP_VERSION = {
    "deployments": "apps/v1",
    "replicasets": "apps/v1",
    "rollouts": "argoproj.io/v1alpha1",
    "httproutes": "gateway.networking.k8s.io/v1",
}
_HAS_STATUS = ("rollouts", "httproutes")  # CRDs with the status subresource
_PATCH_TYPES = (
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
)


def rbac_allows(
    role: tuple[str, list[dict[str, Any]]],
    verb: str,
    resource: str,
    namespace: str,
    name: str | None,
    query: dict[str, str],
) -> bool:
    """Whether a Role (its namespace and rules) grants this request, as Kubernetes' RBAC authorizer decides.

    ``resourceNames`` restrict by the object's name; a list or watch names its object only through the field
    selector ``metadata.name=NAME`` (kubernetes.io/docs/reference/access-authn-authz/rbac/#referring-to-resources),
    and without one it is refused by a rule that lists names.
    """
    role_namespace, rules = role
    if namespace != role_namespace:
        return False
    if name is None:
        selector = query.get("fieldSelector", "")
        name = selector.removeprefix("metadata.name=") if selector.startswith("metadata.name=") else None
        if name is not None and ("," in name or not name):
            name = None
    group = group_of(resource)
    for rule in rules:
        if group not in rule.get("apiGroups", []) and "*" not in rule.get("apiGroups", []):
            continue
        if resource not in rule.get("resources", []) and "*" not in rule.get("resources", []):
            continue
        if verb not in rule.get("verbs", []) and "*" not in rule.get("verbs", []):
            continue
        names = rule.get("resourceNames")
        if not names or (name is not None and name in names):
            return True
    return False


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server saw it (the Authorization header is not kept)."""

    method: str
    path: str
    query: dict[str, str]
    verb: str  # get | list | watch | patch | discovery
    resource: str  # deployments | replicasets | "" for discovery
    content_type: str
    body: Any


@dataclass
class _Fault:
    status: int  # 0 means hang until the client gives up
    remaining: int | None


class FakeKubeApi:
    """A threaded fake API server; use as a context manager."""

    def __init__(
        self,
        *,
        token: str | None = None,
        tls: TlsFiles | None = None,
        watch_tick_s: float = 0.02,
        max_page_size: int = 0,
    ) -> None:
        self.token = token
        self.tls = tls  # kubectl sends credentials only over TLS (clientcmd skips auth info for http://)
        self.watch_tick_s = watch_tick_s
        self.max_page_size = max_page_size  # > 0: the server returns at most this many items per page
        self.rollout_mode: RolloutMode = "complete"
        self.user = DEFAULT_SA_USER
        # (verb, resource) pairs the caller's Role grants; None lets everything through.
        self.allowed: set[tuple[str, str]] | None = None
        # A Role's rules, authorized as the API server's RBAC does (resourceNames included); None: allow all.
        self.rbac: tuple[str, list[dict[str, Any]]] | None = None
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._objects: dict[str, dict[tuple[str, str], dict[str, Any]]] = {
            "deployments": {},
            "replicasets": {},
            "rollouts": {},
            "httproutes": {},
        }
        self._clock = 0  # ticks of the fake controllers, for timestamps
        self._pending: dict[tuple[str, str], list[dict[str, Any] | None]] = {}
        self._faults: dict[tuple[str, str], _Fault] = {}
        self._log: list[RecordedRequest] = []
        self._rv = 1000
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle -----------------------------------------------------------------------------------------

    def __enter__(self) -> FakeKubeApi:
        server = _Server(("127.0.0.1", 0), _Handler)
        server.api = self
        if self.tls is not None:
            server.socket = self.tls.server_context().wrap_socket(server.socket, server_side=True)
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    @property
    def url(self) -> str:
        assert self._server is not None, "start the server with `with FakeKubeApi() as api:`"
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self._server.server_address[1]}"

    def write_kubeconfig(self, path: str, *, namespace: str = "hallyulatino-prod") -> str:
        """Write a kubeconfig pointing at this server (with the bearer token, if any); return the path."""
        user: dict[str, Any] = {"token": self.token} if self.token else {}
        cluster: dict[str, Any] = {"server": self.url}
        if self.tls is not None:
            cluster["certificate-authority"] = str(self.tls.ca_path)
        doc = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": cluster}],
            "users": [{"name": "release-bot", "user": user}],
            "contexts": [
                {
                    "name": "fake",
                    "context": {"cluster": "fake", "user": "release-bot", "namespace": namespace},
                }
            ],
            "current-context": "fake",
        }
        with open(path, "w", encoding="utf-8") as f:
            json.dump(doc, f)  # JSON is YAML; both kubectl and the python client read it
        return path

    # --- state and knobs -----------------------------------------------------------------------------------

    def put(self, resource: str, obj: dict[str, Any]) -> None:
        """Store an object as the server would (nulls dropped, a new resourceVersion)."""
        with self._lock:
            meta = obj["metadata"]
            self._objects[resource][(meta["namespace"], meta["name"])] = self._stamp(strip_nulls(obj))

    def get_object(self, resource: str, namespace: str, name: str) -> dict[str, Any]:
        """Return a copy of a stored object without running the controller."""
        with self._lock:
            return copy.deepcopy(self._objects[resource][(namespace, name)])

    def list_objects(self, resource: str, namespace: str) -> list[dict[str, Any]]:
        with self._lock:
            objs = [o for (ns, _), o in sorted(self._objects[resource].items()) if ns == namespace]
            return copy.deepcopy(objs)

    def fail(self, verb: str, resource: str, status: int, *, times: int | None = None) -> None:
        """Answer ``verb`` on ``resource`` with ``status`` (a Status body), ``times`` times or forever."""
        with self._lock:
            self._faults[(verb, resource)] = _Fault(status, times)

    def hang(self, verb: str, resource: str, *, times: int | None = None) -> None:
        """Never answer ``verb`` on ``resource`` (until the server stops), so the client's timeout fires."""
        self.fail(verb, resource, 0, times=times)

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._log)

    def requests_for(self, verb: str, resource: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.verb == verb and r.resource == resource]

    def clear_log(self) -> None:
        with self._lock:
            self._log.clear()

    # --- internals used by the handler ---------------------------------------------------------------------

    def _stamp(self, obj: dict[str, Any]) -> dict[str, Any]:
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)
        return obj

    def _take_fault(self, verb: str, resource: str) -> _Fault | None:
        with self._lock:
            fault = self._faults.get((verb, resource))
            if fault is None:
                return None
            if fault.remaining is not None:
                fault.remaining -= 1
                if fault.remaining <= 0:
                    del self._faults[(verb, resource)]
            return fault

    def reconcile(self, resource: str, namespace: str, name: str) -> bool:
        """Run one controller step for the object; True when it changed."""
        if resource == "deployments":
            return self._advance(namespace, name)
        if resource not in _HAS_STATUS:
            return False
        with self._lock:
            obj = self._objects[resource].get((namespace, name))
            if obj is None:
                return False
            self._clock += 1
            changed = reconcile_rollout(obj, self._clock) if resource == "rollouts" else reconcile_route(obj)
            if changed:
                self._stamp(obj)
            return changed

    def settle(self, resource: str, namespace: str, name: str, *, limit: int = 50) -> dict[str, Any]:
        """Let the controller run until it rests (a test's "some time later"); return the object."""
        for _ in range(limit):
            if not self.reconcile(resource, namespace, name):
                break
        return self.get_object(resource, namespace, name)

    def outside_patch(
        self,
        resource: str,
        namespace: str,
        name: str,
        patch: Any,
        *,
        manager: str,
        subresource: str = "",
        content_type: str = "application/merge-patch+json",
    ) -> dict[str, Any]:
        """A change made by someone else (kubectl, Argo CD): the bot's watch should see it."""
        code, out = self._patch_custom(resource, subresource, namespace, name, content_type, patch, manager)
        assert code == 200, out
        return out

    def _advance(self, namespace: str, name: str) -> bool:
        """Run one controller step for a deployment; True when it changed."""
        with self._lock:
            key = (namespace, name)
            steps = self._pending.get(key)
            dep = self._objects["deployments"].get(key)
            if not steps or dep is None:
                return False
            step = steps.pop(0)
            if step is None:  # the sync: observe the new generation, pick or create the RS
                rss = [o for (ns, _), o in self._objects["replicasets"].items() if ns == namespace]
                new_rs, changed = sync_controller(dep, rss)
                for rs in changed:
                    self._objects["replicasets"][(namespace, rs["metadata"]["name"])] = self._stamp(rs)
                steps[:0] = rollout_steps(dep, new_rs["metadata"]["name"], self.rollout_mode)
                return self._advance(namespace, name)
            dep["status"] = step
            if step.get("_final"):
                del step["_final"]
                self._scale_finished(namespace, dep)
            self._stamp(dep)
            return True

    def _scale_finished(self, namespace: str, dep: dict[str, Any]) -> None:
        current = dep["metadata"]["annotations"].get("deployment.kubernetes.io/revision")
        for (ns, _), rs in self._objects["replicasets"].items():
            if (
                ns != namespace
                or rs["metadata"].get("ownerReferences", [{}])[0].get("uid") != dep["metadata"]["uid"]
            ):
                continue
            n = (
                dep["spec"]["replicas"]
                if rs["metadata"]["annotations"].get("deployment.kubernetes.io/revision") == current
                else 0
            )
            rs["spec"]["replicas"] = n
            rs["status"] = {
                "replicas": n,
                "fullyLabeledReplicas": n,
                "readyReplicas": n,
                "availableReplicas": n,
                "observedGeneration": rs["metadata"].get("generation", 1),
            }
            self._stamp(rs)

    def _patch_deployment(
        self, namespace: str, name: str, ctype: str, patch: Any, dry_run: bool
    ) -> tuple[int, Any]:
        with self._lock:
            current = self._objects["deployments"].get((namespace, name))
            if current is None:
                return 404, status_body(404, "deployments", name)
            try:
                patched = strip_nulls(apply_patch(current, patch, ctype))
            except ValueError as e:
                return 422, status_body(422, "deployments", name, str(e))
            rv = patched["metadata"].get("resourceVersion")
            if rv != current["metadata"]["resourceVersion"]:
                return 409, status_body(409, "deployments", name)
            for keep in ("name", "namespace", "uid", "creationTimestamp", "generation"):
                patched["metadata"][keep] = current["metadata"][keep]
            patched["status"] = current["status"]  # status is a subresource: the main resource ignores it
            problem = _validate(patched)
            if problem:
                return 422, status_body(422, "deployments", name, problem)
            if dry_run:
                return 200, patched
            if patched["spec"] != current["spec"]:
                patched["metadata"]["generation"] = current["metadata"]["generation"] + 1
                self._pending[(namespace, name)] = [None]
            self._objects["deployments"][(namespace, name)] = self._stamp(patched)
            return 200, copy.deepcopy(patched)

    def _patch_custom(
        self,
        resource: str,
        subresource: str,
        namespace: str,
        name: str,
        ctype: str,
        patch: Any,
        manager: str,
    ) -> tuple[int, Any]:
        """PATCH a Rollout or HTTPRoute (or its status), as the API server does for a CRD with the status
        subresource: the main resource ignores status, /status ignores everything but status."""
        what = f"{resource}/{subresource}" if subresource else resource
        with self._lock:
            current = self._objects[resource].get((namespace, name))
            if current is None:
                return 404, status_body(404, resource, name)
            try:
                patched = strip_nulls(apply_patch(current, patch, ctype))
            except ValueError as e:
                return 422, status_body(422, what, name, str(e))
            if patched["metadata"].get("resourceVersion") != current["metadata"]["resourceVersion"]:
                return 409, status_body(409, resource, name)
            for keep in ("name", "namespace", "uid", "creationTimestamp", "generation"):
                patched["metadata"][keep] = current["metadata"][keep]
            if subresource == "status":
                patched["spec"] = current["spec"]
                patched["metadata"] = copy.deepcopy(current["metadata"])
            else:
                patched["status"] = current["status"]
            problem = validate_rollout(patched) if resource == "rollouts" else validate_route(patched)
            if problem:
                return 422, status_body(422, what, name, problem)
            template_changed = patched["spec"].get("template") != current["spec"].get("template")
            if patched["spec"] != current["spec"]:
                patched["metadata"]["generation"] = current["metadata"]["generation"] + 1
            if patched == current:
                return 200, copy.deepcopy(current)  # a no-op patch writes nothing
            self._clock += 1
            fields = [
                f
                for f in patched["metadata"].get("managedFields") or []
                if (f.get("manager"), f.get("subresource", "")) != (manager, subresource)
            ]
            entry = {"manager": manager, "operation": "Update", "time": _clock_time(self._clock)}
            if subresource:
                entry["subresource"] = subresource
            patched["metadata"]["managedFields"] = [*fields, entry]
            if resource == "rollouts" and template_changed:
                rss = [o for (ns, _), o in self._objects["replicasets"].items() if ns == namespace]
                for rs in on_template_change(patched, rss):
                    self._objects["replicasets"][(namespace, rs["metadata"]["name"])] = self._stamp(rs)
            self._objects[resource][(namespace, name)] = self._stamp(patched)
            return 200, copy.deepcopy(patched)

    def _list(self, resource: str, namespace: str, query: dict[str, str]) -> tuple[int, Any]:
        try:
            labels_match({}, query.get("labelSelector", ""))
        except ValueError as e:
            return 400, status_body(400, resource, "", str(e))
        with self._lock:
            items = [o for o in self.list_objects(resource, namespace) if _selected(o, query)]
            list_rv = str(self._rv)
        start = 0
        if query.get("continue"):
            try:
                start = int(json.loads(base64.b64decode(query["continue"]))["start"])
            except (ValueError, KeyError, TypeError):
                return 400, status_body(
                    400, resource, "", "continue key is not valid: incorrect encoded start"
                )
        limit = int(query.get("limit") or 0)
        if self.max_page_size and limit > self.max_page_size:  # without a limit the server never pages
            limit = self.max_page_size
        page = items[start : start + limit] if limit else items[start:]
        meta: dict[str, Any] = {"resourceVersion": list_rv}
        if limit and start + limit < len(items):
            meta["continue"] = base64.b64encode(
                json.dumps({"rv": list_rv, "start": start + limit}).encode()
            ).decode()
            meta["remainingItemCount"] = len(items) - start - limit
        kind = {
            "deployments": "DeploymentList",
            "replicasets": "ReplicaSetList",
            "rollouts": "RolloutList",
            "httproutes": "HTTPRouteList",
        }[resource]
        return 200, {"kind": kind, "apiVersion": _GROUP_VERSION[resource], "metadata": meta, "items": page}


def _clock_time(n: int) -> str:
    return f"2026-12-06T11:{n // 60 % 60:02d}:{n % 60:02d}Z"


def _selected(obj: dict[str, Any], query: dict[str, str]) -> bool:
    fields = query.get("fieldSelector", "")
    for term in filter(None, fields.split(",")):
        key, _, value = term.partition("==") if "==" in term else term.partition("=")
        if key != "metadata.name" or obj["metadata"]["name"] != value:
            return key == "metadata.namespace" and obj["metadata"]["namespace"] == value
    return labels_match(obj["metadata"].get("labels", {}), query.get("labelSelector", ""))


def _validate(dep: dict[str, Any]) -> str:
    tmpl_labels = dep["spec"]["template"].get("metadata", {}).get("labels", {})
    sel = dep["spec"].get("selector", {})
    if any(tmpl_labels.get(k) != v for k, v in sel.get("matchLabels", {}).items()):
        return "spec.template.metadata.labels: Invalid value: `selector` does not match template `labels`"
    for where in (dep["metadata"], dep["spec"]["template"].get("metadata", {})):
        if any(not isinstance(v, str) for v in (where.get("annotations") or {}).values()):
            return "metadata.annotations: Invalid value: annotation values must be strings"
    return ""


class _Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True
    api: FakeKubeApi


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes; Nagle would delay the second
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:
        self._serve("GET")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_DELETE(self) -> None:
        self._serve("DELETE")  # authorized like any request; deleting itself is not implemented (405)

    def _serve(self, method: str) -> None:
        api = self.server.api
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        m = _COLLECTION.match(url.path)
        if m and _GROUP_VERSION[m.group(3)] != m.group(1):
            m = None  # e.g. rollouts under apps/v1: no such resource
        resource, name = (m.group(3), m.group(4)) if m else ("", None)
        subresource = (m.group(5) or "") if m else ""
        if subresource and (resource not in _HAS_STATUS or not name):
            m, resource, name = None, "", None
        if subresource:
            resource = f"{resource}/{subresource}"  # RBAC names the subresource so
        if not m:
            verb = "discovery"
        elif method == "PATCH":
            verb = "patch"
        elif method == "DELETE":
            verb = "delete"
        elif name:
            verb = "get"
        else:
            # Go's strconv.ParseBool, as the API server reads it: "True" is true too.
            verb = "watch" if query.get("watch", "").lower() in ("1", "t", "true") else "list"
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        with api._lock:
            api._log.append(RecordedRequest(method, url.path, query, verb, resource, ctype, body))

        if api.token and self.headers.get("Authorization") != f"Bearer {api.token}":
            return self._json(401, status_body(401, resource, name or ""))
        if not m:
            doc = discovery(url.path, api.url)
            return self._json(200, doc) if doc else self._json(404, status_body(404, "", url.path))
        ns = m.group(2)
        denied = api.allowed is not None and (verb, resource) not in api.allowed
        if api.rbac is not None and not rbac_allows(api.rbac, verb, resource, ns, name, query):
            denied = True
        if denied:
            doc = status_body(403, resource, name or "", verb=verb, user=api.user, namespace=ns)
            return self._json(403, doc)
        fault = api._take_fault(verb, resource)
        if fault is not None:
            if fault.status == 0:
                api._stop.wait(60)
                self.close_connection = True
                return None
            doc = status_body(fault.status, resource, name or "", verb=verb, user=api.user, namespace=ns)
            return self._json(fault.status, doc)
        base = resource.split("/")[0]
        if verb == "patch" and base in _HAS_STATUS and name is not None:
            if ctype not in _PATCH_TYPES[:2]:  # CRDs take no strategic merge patch
                return self._json(415, status_body(415, resource, name, ", ".join(_PATCH_TYPES[:2])))
            if not isinstance(body, list | dict):
                return self._json(400, status_body(400, resource, name, "invalid patch body"))
            agent = (self.headers.get("User-Agent") or "unknown").split("/")[0].strip() or "unknown"
            manager = query.get("fieldManager") or agent
            code, out = api._patch_custom(base, subresource, ns, name, ctype, body, manager)
            return self._json(code, out)
        if verb == "patch":
            if ctype not in _PATCH_TYPES:
                return self._json(415, status_body(415, resource, name or "", ", ".join(_PATCH_TYPES)))
            if not isinstance(body, list | dict) or resource != "deployments" or name is None:
                return self._json(400, status_body(400, resource, name or "", "invalid patch body"))
            code, out = api._patch_deployment(ns, name, ctype, body, query.get("dryRun") == "All")
            return self._json(code, out)
        if method != "GET":
            return self._json(405, status_body(405, resource, name or ""))
        if verb == "get":
            assert name is not None
            try:
                obj = api.get_object(base, ns, name)
            except KeyError:
                return self._json(404, status_body(404, resource, name))
            self._json(200, obj)
            api.reconcile(base, ns, name)
            return None
        if verb == "watch":
            return self._watch(ns, resource, query)
        code, out = api._list(resource, ns, query)
        self._json(code, out)
        if code == 200:
            for item in out["items"]:
                api.reconcile(resource, ns, item["metadata"]["name"])
        return None

    def _watch(self, ns: str, resource: str, query: dict[str, str]) -> None:
        api = self.server.api
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        since = int(query.get("resourceVersion") or 0)
        deadline_ticks = int(float(query.get("timeoutSeconds") or 300) / api.watch_tick_s)
        seen: dict[str, str] = {}
        try:
            for tick in range(deadline_ticks):
                if api._stop.is_set():
                    break
                if tick:
                    for obj in api.list_objects(resource, ns):
                        api.reconcile(resource, ns, obj["metadata"]["name"])
                for obj in api.list_objects(resource, ns):
                    if not _selected(obj, query):
                        continue
                    rv = obj["metadata"]["resourceVersion"]
                    if int(rv) > since and seen.get(obj["metadata"]["name"]) != rv:
                        seen[obj["metadata"]["name"]] = rv
                        self._chunk(json.dumps({"type": "MODIFIED", "object": obj}).encode() + b"\n")
                api._stop.wait(api.watch_tick_s)
            self._chunk(b"")
        except (BrokenPipeError, ConnectionResetError):
            pass
        self.close_connection = True

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _json(self, code: int, doc: Any) -> None:
        data = json.dumps(doc).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
