"""KubeDeployer: ``kubectl rollout undo`` and ``kubectl rollout status`` over the official client.

The algorithm (pure, in ``bot.adapters.kube_rollout``) follows kubectl's ``rollback.go`` and
``rollout_status.go`` step for step (reference/integrations.md §3), including kubectl's messages, so what the
bot does and says matches what an on-call engineer would get from the seed procedure. Objects are handled as
the server's raw JSON (``_preload_content=False``) rather than the client's models: the models drop fields
they do not know, so a template read through them and written back could silently lose a newer server's
fields.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping
from typing import Any, Self

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from bot.adapters.kube_credentials import credentials_source
from bot.adapters.kube_rollout import (
    PAUSED_MESSAGE,
    gitops_warnings,
    images_of,
    label_selector,
    revision_entry,
    revision_of,
    select_revision,
    status_of,
    template_of,
    templates_equal,
    undo_patch,
)
from bot.errors import (
    ConfigError,
    Conflict,
    DeployerError,
    NotFound,
    ReleaseBotError,
    Unavailable,
    UsageError,
)
from bot.ports import Deployer, Revision, RollbackPlan, RolloutStatus, UndoResult

__all__ = [
    "DEFAULT_TIMEOUT",
    "PAUSED_MESSAGE",
    "KubeDeployer",
    "label_selector",
    "load_api_client",
    "status_of",
    "wait_for_rollout",
]

DEFAULT_TIMEOUT = (3.0, 10.0)


class KubeDeployer:
    """Roll a deployment back exactly as ``kubectl rollout undo`` does, and read its rollout status."""

    def __init__(
        self,
        api_client: Any,
        *,
        request_timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        page_size: int = 500,
    ) -> None:
        self._api_client = api_client
        self._apps = client.AppsV1Api(api_client)
        self._timeout = request_timeout
        self._page_size = page_size

    @classmethod
    def from_environment(
        cls,
        kubeconfig: str | None = None,
        *,
        request_timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        environ: Mapping[str, str] | None = None,
    ) -> Self:
        """Load credentials: the given kubeconfig, else the pod's service account, else ``$KUBECONFIG``.

        With none of them there is no cluster to roll back: ``Unavailable`` says so and what to do instead."""
        return cls(load_api_client(kubeconfig, environ), request_timeout=request_timeout)

    def close(self) -> None:
        self._api_client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- Deployer ------------------------------------------------------------------------------------------

    def plan_rollback(self, deployment: str, namespace: str, *, to_revision: int = 0) -> RollbackPlan:
        """Read what an undo would do, without changing anything."""
        dep = self._get_deployment(deployment, namespace)
        owned = self._owned_replicasets(dep, namespace)
        target = select_revision(dep, owned, to_revision)
        current_rs = next(
            (rs for rs in owned if templates_equal(rs["spec"]["template"], template_of(dep))), None
        )
        current = Revision(
            number=revision_of(dep),
            images=images_of(template_of(dep)),
            replicaset=current_rs["metadata"]["name"] if current_rs else "",
        )
        history = sorted(owned, key=revision_of, reverse=True)
        return RollbackPlan(
            deployment=deployment,
            namespace=namespace,
            current=current,
            target=revision_entry(target),
            history=tuple(revision_entry(rs) for rs in history),
            paused=bool(dep["spec"].get("paused")),
            already_current=templates_equal(target["spec"]["template"], template_of(dep)),
            gitops_warnings=gitops_warnings(dep),
        )

    def undo(self, deployment: str, namespace: str, *, to_revision: int = 0) -> UndoResult:
        """Patch the deployment back to ``to_revision`` (0: the previous one), as ``kubectl rollout undo``."""
        if to_revision < 0:
            raise UsageError(f"unable to find specified revision {to_revision} in history")
        dep = self._get_deployment(deployment, namespace)
        target = select_revision(dep, self._owned_replicasets(dep, namespace), to_revision)
        if dep["spec"].get("paused"):
            raise Conflict(PAUSED_MESSAGE)
        if templates_equal(target["spec"]["template"], template_of(dep)):
            return UndoResult(
                rolled_back=False,
                message=f"deployment.apps/{deployment} skipped rollback "
                f"(current template already matches revision {to_revision})",
            )
        self._call(
            "patch",
            "deployments",
            namespace,
            deployment,
            self._apps.patch_namespaced_deployment,
            deployment,
            namespace,
            undo_patch(dep, target),
        )
        return UndoResult(rolled_back=True, message=f"deployment.apps/{deployment} rolled back")

    def rollout_status(self, deployment: str, namespace: str) -> RolloutStatus:
        """Read the deployment once and judge it as ``kubectl rollout status`` would."""
        return status_of(self._get_deployment(deployment, namespace))

    # --- API calls -----------------------------------------------------------------------------------------

    def _get_deployment(self, name: str, namespace: str) -> dict[str, Any]:
        return self._call(
            "get", "deployments", namespace, name, self._apps.read_namespaced_deployment, name, namespace
        )

    def _owned_replicasets(self, dep: dict[str, Any], namespace: str) -> list[dict[str, Any]]:
        """List the ReplicaSets the deployment controls, page by page, in the server's order."""
        selector = label_selector(dep["spec"].get("selector") or {})
        uid = dep["metadata"].get("uid")
        owned: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"label_selector": selector, "limit": self._page_size}
            if token:
                kwargs["_continue"] = token
            page = self._call(
                "list",
                "replicasets",
                namespace,
                "",
                self._apps.list_namespaced_replica_set,
                namespace,
                **kwargs,
            )
            for rs in page.get("items") or []:
                refs = rs["metadata"].get("ownerReferences") or []
                if any(r.get("controller") and r.get("uid") == uid for r in refs):
                    owned.append(rs)
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return owned

    def _call(
        self,
        verb: str,
        resource: str,
        namespace: str,
        name: str,
        fn: Callable[..., Any],
        *args: Any,
        **kwargs: Any,
    ) -> dict[str, Any]:
        try:
            response = fn(*args, _request_timeout=self._timeout, _preload_content=False, **kwargs)
            try:
                data = response.data
            finally:
                response.release_conn()
        except ApiException as e:
            raise api_error(e, verb=verb, resource=resource, namespace=namespace, name=name) from e
        except urllib3.exceptions.HTTPError as e:
            raise network_error(e, verb=verb, resource=resource, timeout=self._timeout) from e
        return parse_document(data, verb, resource)


def parse_document(data: bytes, verb: str, resource: str) -> dict[str, Any]:
    """The JSON object the API server answered, or a DeployerError that says what came instead."""
    try:
        doc = json.loads(data)
    except json.JSONDecodeError as e:
        raise DeployerError(
            "The Kubernetes API answered with something that is not JSON.", detail=f"{verb} {resource}: {e}"
        ) from e
    if not isinstance(doc, dict):
        raise DeployerError(
            "The Kubernetes API answered with an unexpected document.",
            detail=f"{verb} {resource}: {type(doc).__name__}",
        )
    return doc


def load_api_client(kubeconfig: str | None = None, environ: Mapping[str, str] | None = None) -> Any:
    """An ApiClient with the credentials a rollback uses: the given kubeconfig, else the pod's service
    account, else ``$KUBECONFIG``. The traffic providers share it (``bot.adapters.traffic_kube``)."""
    env = os.environ if environ is None else environ
    if credentials_source(kubeconfig, env) is None:
        raise Unavailable("no_cluster")
    cfg = client.Configuration()
    try:
        if kubeconfig is None and env.get("KUBERNETES_SERVICE_HOST"):
            config.load_incluster_config(client_configuration=cfg)
        else:
            config.load_kube_config(config_file=kubeconfig, client_configuration=cfg)
    except (config.ConfigException, OSError) as e:
        raise ConfigError(
            "Kubernetes credentials could not be loaded; check the kubeconfig or the service account.",
            detail=f"kubernetes config: {type(e).__name__}: {e}",
        ) from e
    # urllib3's default retries a timed-out GET three times; retry only refused connections, quickly.
    cfg.retries = urllib3.Retry(total=2, connect=2, read=0, status=0, redirect=0, other=0, backoff_factor=0.1)
    return client.ApiClient(configuration=cfg)


# --- errors -----------------------------------------------------------------------------------------------


def api_wording(
    e: ApiException,
    *,
    verb: str,
    resource: str,
    namespace: str,
    name: str,
    rbac: str,
    noun: str | None = None,
) -> tuple[str, str]:
    """What a person reads about an API answer, and the detail that goes to logs only (the server's Status message).

    ``rbac`` names the shipped manifest that grants the verb; ``noun`` is how a conflict names the object (the
    resource's plural by default)."""
    code = int(e.status or 0)
    server = _status_message(e.body) or str(e.reason or "")
    what = f'{resource} "{name}"' if name else resource
    detail = f"{verb} {what} in namespace {namespace}: HTTP {code}: {server}"
    conflicted = f'{noun} "{name}"' if noun and name else what
    messages = {
        0: "The bot could not open a secure connection to the Kubernetes API.",
        401: "The bot's Kubernetes credentials were rejected (401): the token may be expired or revoked.",
        403: f"The bot's service account may not {verb} {resource} in namespace {namespace}; see {rbac}.",
        404: f"The Kubernetes API found no {what} in namespace {namespace} (404).",
        409: f"Conflict: {conflicted} changed while the bot was updating it; look again and retry.",
        422: f"Kubernetes rejected the change to {what}: {server}",
        429: "The Kubernetes API is throttling the bot (429); try again in a minute.",
    }
    if code >= 500:
        text = (
            f"The Kubernetes API server failed while the bot tried to {verb} {what} (HTTP {code}); try again."
        )
    else:
        text = messages.get(code, f"The Kubernetes API refused to {verb} {what} (HTTP {code}).")
    return text, detail


def api_error(e: ApiException, *, verb: str, resource: str, namespace: str, name: str) -> ReleaseBotError:
    """Translate an API answer into our error tree."""
    text, detail = api_wording(
        e,
        verb=verb,
        resource=resource,
        namespace=namespace,
        name=name,
        rbac="deploy/rbac.yaml",
        noun="deployment",
    )
    if int(e.status or 0) == 404 and resource == "deployments" and name:
        return NotFound(f'Deployment "{name}" was not found in namespace "{namespace}".', detail=detail)
    return DeployerError(text, detail=detail)


def network_error(
    e: urllib3.exceptions.HTTPError, *, verb: str, resource: str, timeout: tuple[float, float]
) -> DeployerError:
    """Translate a transport failure (refused, timed out, reset) into plain words."""
    cause = e.reason if isinstance(e, urllib3.exceptions.MaxRetryError) and e.reason else e
    # NewConnectionError subclasses ConnectTimeoutError in urllib3 2, so it is checked first.
    if isinstance(cause, urllib3.exceptions.NewConnectionError):
        text = "The Kubernetes API could not be reached (connection refused or no route)."
    elif isinstance(cause, urllib3.exceptions.ConnectTimeoutError):
        text = f"The Kubernetes API did not accept a connection within {timeout[0]:g} s."
    elif isinstance(cause, urllib3.exceptions.ReadTimeoutError):
        text = (
            f"The Kubernetes API did not answer within {timeout[1]:g} s (the bot tried to {verb} {resource})."
        )
    else:
        text = f"The connection to the Kubernetes API failed while the bot tried to {verb} {resource}."
    return DeployerError(text, detail=f"{verb} {resource}: {type(cause).__name__}")


def _status_message(body: Any) -> str:
    try:
        doc = json.loads(body) if body else None
    except (ValueError, TypeError):
        return ""
    return str(doc.get("message", "")) if isinstance(doc, dict) else ""


# --- following a rollout ----------------------------------------------------------------------------------


def wait_for_rollout(
    deployer: Deployer,
    deployment: str,
    namespace: str,
    *,
    timeout_s: float,
    poll_s: float = 2.0,
    on_progress: Callable[[RolloutStatus], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
) -> RolloutStatus:
    """Poll ``rollout_status`` until done, failed or ``timeout_s``; pass new messages to ``on_progress``."""
    started = monotonic()
    last = ""
    while True:
        status = deployer.rollout_status(deployment, namespace)
        if status.message != last:
            last = status.message
            if on_progress is not None:
                on_progress(status)
        if status.done or status.failed:
            return status
        elapsed = monotonic() - started
        if elapsed >= timeout_s:
            return RolloutStatus(
                done=False,
                failed=True,
                message=f'timed out after {timeout_s:g} s waiting for deployment "{deployment}" to roll out '
                f"(last status: {status.message})",
            )
        sleep(min(poll_s, timeout_s - elapsed))
