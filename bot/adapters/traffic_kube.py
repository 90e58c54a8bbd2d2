"""The Kubernetes calls the traffic providers make, each one recorded for the audit trail.

Objects travel as the server's raw JSON (``_preload_content=False``), as in ``bot.adapters.kube``: the
client's models would drop fields they do not know. Every call names its content type explicitly, because the
client otherwise picks one from the body's Python type (reference/integrations.md §3.3).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Generator, Mapping
from typing import Any

import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from bot.adapters.kube import DEFAULT_TIMEOUT, api_wording, load_api_client, network_error, parse_document
from bot.errors import DeployerError
from bot.ports import ClusterRequest

MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
FIELD_MANAGER = "release-bot"


class ClusterCalls:
    """GET / LIST / PATCH / WATCH one kind of custom object in one namespace, recording each request."""

    def __init__(
        self,
        api_client: Any,
        *,
        group: str,
        version: str,
        plural: str,
        namespace: str,
        request_timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        owns_client: bool = True,
    ) -> None:
        self.api_client = api_client
        self.custom = client.CustomObjectsApi(api_client)
        self.apps = client.AppsV1Api(api_client)
        self.group, self.version, self.plural, self.namespace = group, version, plural, namespace
        self.timeout = request_timeout
        self._owns_client = owns_client
        # Per thread: the watch thread's reads must not land in the audit of an action another thread runs.
        self._local = threading.local()

    @property
    def sent(self) -> list[ClusterRequest]:
        sent: list[ClusterRequest] | None = getattr(self._local, "sent", None)
        if sent is None:
            sent = self._local.sent = []
        return sent

    @classmethod
    def from_environment(
        cls,
        *,
        group: str,
        version: str,
        plural: str,
        namespace: str,
        kubeconfig: str | None = None,
        environ: Mapping[str, str] | None = None,
        request_timeout: tuple[float, float] = DEFAULT_TIMEOUT,
    ) -> ClusterCalls:
        api_client = load_api_client(kubeconfig, environ)
        # The API server names the field manager after the user agent's first word: managedFields then
        # tell the bot's own writes from everyone else's (drift).
        api_client.user_agent = f"{FIELD_MANAGER}/traffic"
        return cls(
            api_client,
            group=group,
            version=version,
            plural=plural,
            namespace=namespace,
            request_timeout=request_timeout,
        )

    def close(self) -> None:
        if self._owns_client:
            self.api_client.close()

    def take(self) -> tuple[ClusterRequest, ...]:
        """The requests sent since the last call, oldest first."""
        sent = tuple(self.sent)
        self._local.sent = []
        return sent

    # --- the calls ---------------------------------------------------------------------------------------

    def get(self, name: str) -> dict[str, Any]:
        self._record("get", name)
        return self._call(
            "get",
            name,
            self.custom.get_namespaced_custom_object,
            self.group,
            self.version,
            self.namespace,
            self.plural,
            name,
        )

    def patch(self, name: str, body: Any, content_type: str, *, status: bool = False) -> dict[str, Any]:
        self._record("patch", f"{name}/status" if status else name, content_type, body)
        fn = (
            self.custom.patch_namespaced_custom_object_status
            if status
            else self.custom.patch_namespaced_custom_object
        )
        return self._call(
            "patch",
            name,
            fn,
            self.group,
            self.version,
            self.namespace,
            self.plural,
            name,
            body,
            _content_type=content_type,
            resource=f"{self.plural}/status" if status else self.plural,
        )

    def list_replicasets(self, selector: str) -> list[dict[str, Any]]:
        self.sent.append(ClusterRequest("list", f"replicasets?labelSelector={selector}", self.namespace))
        doc = self._call(
            "list",
            "",
            self.apps.list_namespaced_replica_set,
            self.namespace,
            label_selector=selector,
            resource="replicasets",
        )
        return list(doc.get("items") or [])

    def watch(
        self, name: str, resource_version: str, timeout_s: float
    ) -> Generator[dict[str, Any], None, None]:
        """Follow one object: yield each watch event's object until the server ends the stream."""
        self.sent.append(ClusterRequest("watch", f"{self.plural}/{name}", self.namespace))
        try:
            response = self.custom.list_namespaced_custom_object(
                self.group,
                self.version,
                self.namespace,
                self.plural,
                field_selector=f"metadata.name={name}",
                resource_version=resource_version,
                timeout_seconds=max(1, int(timeout_s)),
                watch=True,
                _preload_content=False,
                _request_timeout=(self.timeout[0], timeout_s + self.timeout[1]),
            )
        except ApiException as e:
            raise traffic_api_error(e, "watch", self.plural, self.namespace, name) from e
        except urllib3.exceptions.HTTPError as e:
            raise network_error(e, verb="watch", resource=self.plural, timeout=self.timeout) from e
        try:
            buffer = b""
            for chunk in response.stream(4096, decode_content=True):
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    event = _event(line)
                    if event is not None:
                        yield event
        except (urllib3.exceptions.HTTPError, OSError):
            return  # the stream ended early: the caller reads again and watches anew
        finally:
            # A watch left before its end holds the connection: close it rather than pool a half-read stream.
            response.close()
            response.release_conn()

    # --- internals ---------------------------------------------------------------------------------------

    def _record(self, verb: str, name: str, content_type: str = "", body: Any = None) -> None:
        self.sent.append(ClusterRequest(verb, f"{self.plural}/{name}", self.namespace, content_type, body))

    def _call(
        self, verb: str, name: str, fn: Callable[..., Any], *args: Any, resource: str = "", **kwargs: Any
    ) -> dict[str, Any]:
        resource = resource or self.plural
        try:
            response = fn(*args, _request_timeout=self.timeout, _preload_content=False, **kwargs)
            try:
                data = response.data
            finally:
                response.release_conn()
        except ApiException as e:
            raise traffic_api_error(e, verb, resource, self.namespace, name) from e
        except urllib3.exceptions.HTTPError as e:
            raise network_error(e, verb=verb, resource=resource, timeout=self.timeout) from e
        return parse_document(data, verb, resource)


def _event(line: bytes) -> dict[str, Any] | None:
    line = line.strip()
    if not line:
        return None
    try:
        event = json.loads(line)
    except ValueError:
        return None
    if not isinstance(event, dict) or event.get("type") not in ("ADDED", "MODIFIED"):
        return None
    obj = event.get("object")
    return obj if isinstance(obj, dict) else None


class ClusterApiError(DeployerError):
    """The API server refused a request; ``status`` is its HTTP code (promote falls back on 404)."""

    def __init__(self, user_message: str, *, detail: str, status: int) -> None:
        super().__init__(user_message, detail=detail)
        self.status = status


def traffic_api_error(
    e: ApiException, verb: str, resource: str, namespace: str, name: str
) -> ClusterApiError:
    """The API's answer in plain words (the same words as a Deployment's); its Status message goes to ``detail``."""
    rbac = "deploy/rbac-traffic-argo-rollouts.yaml or deploy/rbac-traffic-gateway-api.yaml"
    text, detail = api_wording(e, verb=verb, resource=resource, namespace=namespace, name=name, rbac=rbac)
    return ClusterApiError(text, detail=detail, status=int(e.status or 0))
