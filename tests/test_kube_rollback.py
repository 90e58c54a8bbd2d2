"""KubeDeployer against the fake API server, cross-checked with real ``kubectl`` where it is installed.

The cross-checks start two identical fake clusters, run ``kubectl rollout undo``/``status`` on one and
``KubeDeployer`` on the other, and compare what each left behind, what each sent and what each said.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.adapters.kube import PAUSED_MESSAGE, KubeDeployer, label_selector, status_of, wait_for_rollout
from bot.errors import ConfigError, Conflict, DeployerError, NotFound, ReleaseBotError, UsageError
from bot.ports import RolloutStatus
from tests.fakes.k8s_api import FakeKubeApi, install_backend
from tests.fakes.k8s_objects import strip_nulls
from tests.fakes.tls import TlsFiles, make_tls_files

NS = "hallyulatino-prod"
TOKEN = "eyJhbGciOiJSUzI1NiJ9.release-bot-test-token.c2VjcmV0"
KUBECTL = shutil.which("kubectl")
WAITING = 'Waiting for deployment "backend" rollout to finish: '
needs_kubectl = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not on PATH: the cross-check runs it")


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    # kubectl sends a bearer token only over TLS, so the fake speaks https like a real cluster.
    return make_tls_files(tmp_path_factory.mktemp("k8s-tls"))


@pytest.fixture
def api(tls: TlsFiles) -> Iterator[FakeKubeApi]:
    with FakeKubeApi(token=TOKEN, tls=tls) as server:
        yield server


@pytest.fixture
def twin(tls: TlsFiles) -> Iterator[FakeKubeApi]:
    """A second cluster, set up like ``api``, for kubectl."""
    with FakeKubeApi(token=TOKEN, tls=tls) as server:
        yield server


def connect(api: FakeKubeApi, tmp_path: Path, timeout: tuple[float, float] = (2.0, 2.0)) -> KubeDeployer:
    kubeconfig = api.write_kubeconfig(str(tmp_path / f"kubeconfig-{api.url.rsplit(':', 1)[1]}"))
    return KubeDeployer.from_environment(kubeconfig, request_timeout=timeout, environ={})


@pytest.fixture
def deployer(api: FakeKubeApi, tmp_path: Path) -> Iterator[KubeDeployer]:
    with connect(api, tmp_path) as d:
        yield d


def kubectl(api: FakeKubeApi, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert KUBECTL is not None
    kubeconfig = api.write_kubeconfig(str(tmp_path / "kubectl-kubeconfig"))
    env = {"PATH": str(Path(KUBECTL).parent), "HOME": str(tmp_path), "KUBECONFIG": kubeconfig}
    cmd = [KUBECTL, *args, "-n", NS]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, check=False)


def stored(api: FakeKubeApi) -> str:
    dep = api.get_object("deployments", NS, "backend")
    return json.dumps(
        {"template": dep["spec"]["template"], "annotations": dep["metadata"]["annotations"]}, sort_keys=True
    )


def patches(api: FakeKubeApi) -> list[Any]:
    return [strip_nulls(r.body) for r in api.requests_for("patch", "deployments")]


def no_token(error: BaseException) -> None:
    assert isinstance(error, ReleaseBotError)
    for text in (error.user_message, str(error), repr(error)):
        assert TOKEN not in text
        assert "c2VjcmV0" not in text


# --- cross-checks with kubectl ----------------------------------------------------------------------------


@pytest.mark.slow
@needs_kubectl
@pytest.mark.parametrize(
    ("to_revision", "expressions", "image"),
    [(0, False, "v1.3.1"), (1, False, "v1.3.0"), (0, True, "v1.3.1")],
    ids=["previous", "to-revision-1", "selector-expressions"],
)
def test_undo_leaves_the_same_deployment_as_kubectl(
    api: FakeKubeApi,
    twin: FakeKubeApi,
    deployer: KubeDeployer,
    tmp_path: Path,
    to_revision: int,
    expressions: bool,
    image: str,
) -> None:
    install_backend(api, selector_expressions=expressions)
    install_backend(twin, selector_expressions=expressions)

    out = kubectl(twin, tmp_path, "rollout", "undo", "deployment/backend", f"--to-revision={to_revision}")
    ours = deployer.undo("backend", NS, to_revision=to_revision)

    assert out.returncode == 0, out.stderr
    assert ours.rolled_back
    assert out.stdout.strip() == ours.message == "deployment.apps/backend rolled back"
    assert stored(api) == stored(twin)
    assert patches(api) == patches(twin)
    assert len(patches(api)) == 1
    kubectl_selector = [r.query["labelSelector"] for r in twin.requests_for("list", "replicasets")]
    assert {r.query["labelSelector"] for r in api.requests_for("list", "replicasets")} == set(
        kubectl_selector
    )
    # What the algorithm means, apart from kubectl: the old template and its annotations come back, the
    # Deployment keeps last-applied, and annotations the old revision never had are dropped.
    dep = api.get_object("deployments", NS, "backend")
    annotations = dep["metadata"]["annotations"]
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == f"registry.example/backend:{image}"
    assert "pod-template-hash" not in dep["spec"]["template"]["metadata"]["labels"]
    assert annotations["kubernetes.io/change-cause"] == f"release {image}"
    assert "hallyulatino.example/oncall" not in annotations
    assert "backend:v1.4.0" in annotations["kubectl.kubernetes.io/last-applied-configuration"]


@pytest.mark.slow
@needs_kubectl
def test_undo_to_the_current_revision_is_skipped_like_kubectl(
    api: FakeKubeApi, twin: FakeKubeApi, deployer: KubeDeployer, tmp_path: Path
) -> None:
    install_backend(api)
    install_backend(twin)

    out = kubectl(twin, tmp_path, "rollout", "undo", "deployment/backend", "--to-revision=3")
    ours = deployer.undo("backend", NS, to_revision=3)

    assert out.returncode == 0, out.stderr
    assert not ours.rolled_back
    assert out.stdout.strip() == ours.message
    assert (
        ours.message
        == "deployment.apps/backend skipped rollback (current template already matches revision 3)"
    )
    assert patches(api) == patches(twin) == []
    assert stored(api) == stored(twin)


@pytest.mark.slow
@needs_kubectl
@pytest.mark.parametrize(
    ("setup", "args", "error", "words"),
    [
        ({"paused": True}, (), Conflict, PAUSED_MESSAGE),
        ({"versions": ("v1.4.0",)}, (), NotFound, 'no rollout history found for deployment "backend"'),
        ({}, ("--to-revision=9",), NotFound, "unable to find specified revision 9 in history"),
        ({"paused": True, "versions": ("v1.4.0",)}, (), NotFound, "no rollout history found"),
    ],
    ids=["paused", "no-history", "unknown-revision", "paused-without-history"],
)
def test_refusals_use_kubectls_words(
    api: FakeKubeApi,
    twin: FakeKubeApi,
    deployer: KubeDeployer,
    tmp_path: Path,
    setup: dict[str, Any],
    args: tuple[str, ...],
    error: type[ReleaseBotError],
    words: str,
) -> None:
    install_backend(api, **setup)
    install_backend(twin, **setup)
    to_revision = int(args[0].split("=")[1]) if args else 0

    out = kubectl(twin, tmp_path, "rollout", "undo", "deployment/backend", *args)
    with pytest.raises(error) as caught:
        deployer.undo("backend", NS, to_revision=to_revision)

    assert out.returncode == 1
    assert words in out.stderr
    assert words in caught.value.user_message
    assert f"error: {caught.value.user_message}" in out.stderr
    assert patches(api) == patches(twin) == []


@pytest.mark.slow
@needs_kubectl
@pytest.mark.parametrize("mode", ["complete", "stuck", "stall"])
def test_rollout_status_agrees_with_kubectl(
    api: FakeKubeApi, twin: FakeKubeApi, deployer: KubeDeployer, tmp_path: Path, mode: str
) -> None:
    for server in (api, twin):
        install_backend(server)
        server.rollout_mode = mode
    assert kubectl(twin, tmp_path, "rollout", "undo", "deployment/backend").returncode == 0

    out = kubectl(twin, tmp_path, "rollout", "status", "deployment/backend", "--timeout=2s")
    deployer.undo("backend", NS)
    seen: list[RolloutStatus] = []
    ours = wait_for_rollout(deployer, "backend", NS, timeout_s=1, poll_s=0.01, on_progress=seen.append)

    kubectl_lines = [line for line in out.stdout.splitlines() if line]
    assert set(kubectl_lines) <= {s.message for s in seen}
    if mode == "complete":
        assert out.returncode == 0, out.stderr
        assert ours.done
        assert not ours.failed
        assert kubectl_lines[-1] == ours.message == 'deployment "backend" successfully rolled out'
    elif mode == "stuck":
        assert out.returncode == 1
        assert ours.failed
        assert not ours.done
        assert out.stderr.strip() == f"error: {ours.message}"
        assert ours.message == 'deployment "backend" exceeded its progress deadline'
    else:
        assert out.returncode == 1
        assert "timed out waiting for the condition" in out.stderr
        assert ours.failed
        assert ours.message.startswith('timed out after 1 s waiting for deployment "backend" to roll out')


@pytest.mark.slow
@needs_kubectl
def test_pause_and_resume_with_kubectl_gate_our_undo(
    api: FakeKubeApi, deployer: KubeDeployer, tmp_path: Path
) -> None:
    install_backend(api)

    assert kubectl(api, tmp_path, "rollout", "pause", "deployment/backend").returncode == 0
    with pytest.raises(Conflict, match="paused"):
        deployer.undo("backend", NS)
    assert kubectl(api, tmp_path, "rollout", "resume", "deployment/backend").returncode == 0
    result = deployer.undo("backend", NS)

    assert result.rolled_back
    assert {r.content_type for r in api.requests_for("patch", "deployments")} == {
        "application/strategic-merge-patch+json",
        "application/json-patch+json",
    }
    assert "paused" not in api.get_object("deployments", NS, "backend")["spec"]


# --- behaviour without kubectl ----------------------------------------------------------------------------


def test_plan_reads_history_and_ignores_replicasets_of_other_deployments(
    api: FakeKubeApi, deployer: KubeDeployer
) -> None:
    install_backend(api)  # with a canary ReplicaSet at revision 7 that matches the selector

    plan = deployer.plan_rollback("backend", NS)

    assert (plan.current.number, plan.current.images) == (3, ("registry.example/backend:v1.4.0",))
    assert (plan.target.number, plan.target.images) == (2, ("registry.example/backend:v1.3.1",))
    assert [r.number for r in plan.history] == [3, 2, 1]
    assert plan.current.replicaset == plan.history[0].replicaset
    assert not plan.paused
    assert not plan.already_current
    assert plan.gitops_warnings == ()
    assert api.requests_for("patch", "deployments") == []


def test_replicasets_are_read_page_by_page(tmp_path: Path) -> None:
    # Plain http here: the python client, unlike kubectl, sends its token over it.
    with FakeKubeApi(token=TOKEN, max_page_size=2) as api, connect(api, tmp_path) as deployer:
        install_backend(api)
        plan = deployer.plan_rollback("backend", NS, to_revision=1)
        lists = api.requests_for("list", "replicasets")

    assert plan.target.images == ("registry.example/backend:v1.3.0",)
    assert len(lists) == 2
    assert "continue" not in lists[0].query
    assert lists[1].query["continue"]


def test_label_selector_renders_like_kubectl() -> None:
    selector = {
        "matchLabels": {"app": "backend"},
        "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["api-v2", "api"]},
            {"key": "track", "operator": "DoesNotExist"},
            {"key": "env", "operator": "NotIn", "values": ["dev"]},
            {"key": "owner", "operator": "Exists"},
        ],
    }
    assert label_selector(selector) == "app=backend,env notin (dev),owner,tier in (api,api-v2),!track"


def test_already_current_sends_no_patch(api: FakeKubeApi, deployer: KubeDeployer) -> None:
    install_backend(api)

    plan = deployer.plan_rollback("backend", NS, to_revision=3)
    result = deployer.undo("backend", NS, to_revision=3)

    assert plan.already_current
    assert not result.rolled_back
    assert "skipped rollback (current template already matches revision 3)" in result.message
    assert api.requests_for("patch", "deployments") == []


def test_two_undos_toggle_between_the_latest_templates(api: FakeKubeApi, deployer: KubeDeployer) -> None:
    install_backend(api)

    deployer.undo("backend", NS)
    assert wait_for_rollout(deployer, "backend", NS, timeout_s=5, poll_s=0).done
    after_first = deployer.plan_rollback("backend", NS)
    deployer.undo("backend", NS)
    assert wait_for_rollout(deployer, "backend", NS, timeout_s=5, poll_s=0).done

    assert (after_first.current.number, after_first.current.images) == (
        4,
        ("registry.example/backend:v1.3.1",),
    )
    assert (after_first.target.number, after_first.target.images) == (3, ("registry.example/backend:v1.4.0",))
    dep = api.get_object("deployments", NS, "backend")
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.example/backend:v1.4.0"
    assert dep["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "5"


@pytest.mark.parametrize(
    ("gitops", "warning"),
    [("argocd", "Argo CD manages this deployment; a sync may revert the rollback"), ("flux", "Flux manages")],
)
def test_gitops_ownership_is_warned_about(
    api: FakeKubeApi, deployer: KubeDeployer, gitops: str, warning: str
) -> None:
    install_backend(api, gitops=gitops)

    (only,) = deployer.plan_rollback("backend", NS).gitops_warnings

    assert only.startswith(warning)


def test_paused_deployment_is_planned_but_not_undone(api: FakeKubeApi, deployer: KubeDeployer) -> None:
    install_backend(api, paused=True)

    assert deployer.plan_rollback("backend", NS).paused
    with pytest.raises(Conflict, match="resume it first"):
        deployer.undo("backend", NS)
    with pytest.raises(UsageError, match="unable to find specified revision -1 in history"):
        deployer.undo("backend", NS, to_revision=-1)
    assert api.requests_for("patch", "deployments") == []


def test_time_from_undo_to_rollout_done(api: FakeKubeApi, deployer: KubeDeployer, capsys: Any) -> None:
    install_backend(api)
    seen: list[str] = []

    started = time.perf_counter()
    deployer.undo("backend", NS)
    status = wait_for_rollout(
        deployer, "backend", NS, timeout_s=10, poll_s=0.005, on_progress=lambda s: seen.append(s.message)
    )
    elapsed = time.perf_counter() - started

    assert status.done
    assert seen[0] == "Waiting for deployment spec update to be observed..."
    assert len(seen) == len(set(seen)) == 6
    with capsys.disabled():
        print(
            f"\n[kube] undo() -> rollout done against the fake: {elapsed * 1000:.1f} ms, {len(seen)} statuses"
        )


# --- errors -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("verb", "resource", "code", "error", "words"),
    [
        ("get", "deployments", 401, DeployerError, "Kubernetes credentials were rejected"),
        (
            "patch",
            "deployments",
            403,
            DeployerError,
            f"service account may not patch deployments in namespace {NS}; see deploy/rbac.yaml",
        ),
        ("list", "replicasets", 403, DeployerError, f"may not list replicasets in namespace {NS}"),
        ("get", "deployments", 404, NotFound, f'Deployment "backend" was not found in namespace "{NS}"'),
        ("patch", "deployments", 409, DeployerError, 'Conflict: deployment "backend" changed'),
        ("list", "replicasets", 500, DeployerError, "Kubernetes API server failed"),
        ("patch", "deployments", 422, DeployerError, "Kubernetes rejected the change"),
    ],
)
def test_api_errors_become_plain_words_without_the_token(
    api: FakeKubeApi, deployer: KubeDeployer, verb: str, resource: str, code: int, error: type, words: str
) -> None:
    install_backend(api)
    api.fail(verb, resource, code)

    with pytest.raises(error) as caught:
        deployer.undo("backend", NS)

    assert words in caught.value.user_message
    assert f"HTTP {code}" in str(caught.value)  # the detail for the log keeps the server's answer
    assert caught.value.__cause__ is not None
    no_token(caught.value)


def test_403_detail_keeps_the_servers_reason(api: FakeKubeApi, deployer: KubeDeployer) -> None:
    install_backend(api)
    api.fail("patch", "deployments", 403)

    with pytest.raises(DeployerError) as caught:
        deployer.undo("backend", NS)

    assert 'cannot patch resource "deployments" in API group "apps"' in str(caught.value)


def test_a_wrong_token_is_rejected_and_not_repeated(api: FakeKubeApi, tmp_path: Path) -> None:
    install_backend(api)
    deployer = connect(api, tmp_path)
    api.token = "the-servers-token"  # the kubeconfig written above carries TOKEN

    with deployer, pytest.raises(DeployerError) as caught:
        deployer.rollout_status("backend", NS)

    assert "credentials were rejected" in caught.value.user_message
    no_token(caught.value)


def test_a_hanging_server_times_out(api: FakeKubeApi, tmp_path: Path) -> None:
    install_backend(api)
    api.hang("patch", "deployments")

    with connect(api, tmp_path, timeout=(1.0, 0.3)) as deployer, pytest.raises(DeployerError) as caught:
        deployer.undo("backend", NS)

    assert caught.value.user_message == (
        "The Kubernetes API did not answer within 0.3 s (the bot tried to patch deployments)."
    )
    assert len(api.requests_for("patch", "deployments")) == 1  # a PATCH is never retried blindly
    no_token(caught.value)


def test_a_closed_port_is_unreachable(tls: TlsFiles, tmp_path: Path) -> None:
    with FakeKubeApi(token=TOKEN, tls=tls) as api:
        kubeconfig = api.write_kubeconfig(str(tmp_path / "kubeconfig"))
    deployer = KubeDeployer.from_environment(kubeconfig, request_timeout=(0.5, 0.5), environ={})
    with deployer, pytest.raises(DeployerError) as caught:
        deployer.rollout_status("backend", NS)

    assert "could not be reached" in caught.value.user_message
    no_token(caught.value)


def test_in_cluster_config_is_used_inside_a_pod(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "6443")

    with pytest.raises(ConfigError) as caught:  # no service-account token is mounted on this machine
        KubeDeployer.from_environment(None)

    assert "Service token file does not exist" in str(caught.value)


# --- kubectl's status viewer ------------------------------------------------------------------------------


def _dep(generation: int = 2, reason: str = "ReplicaSetUpdated", **status: int) -> dict[str, Any]:
    return {
        "metadata": {"name": "backend", "generation": generation},
        "spec": {"replicas": 3},
        "status": {
            "observedGeneration": 2,
            **status,
            "conditions": [{"type": "Progressing", "reason": reason}],
        },
    }


@pytest.mark.parametrize(
    ("dep", "expected"),
    [
        (
            _dep(generation=3),
            RolloutStatus(False, False, "Waiting for deployment spec update to be observed..."),
        ),
        (
            _dep(reason="ProgressDeadlineExceeded", updatedReplicas=1),
            RolloutStatus(False, True, 'deployment "backend" exceeded its progress deadline'),
        ),
        (
            _dep(updatedReplicas=1, replicas=4),
            RolloutStatus(
                False,
                False,
                WAITING + "1 out of 3 new replicas have been updated...",
            ),
        ),
        (
            _dep(updatedReplicas=3, replicas=4, availableReplicas=3),
            RolloutStatus(
                False,
                False,
                WAITING + "1 old replicas are pending termination...",
            ),
        ),
        (
            _dep(updatedReplicas=3, replicas=3, availableReplicas=2),
            RolloutStatus(
                False,
                False,
                WAITING + "2 of 3 updated replicas are available...",
            ),
        ),
        (
            _dep(updatedReplicas=3, replicas=3, availableReplicas=3),
            RolloutStatus(True, False, 'deployment "backend" successfully rolled out'),
        ),
    ],
    ids=["not-observed", "deadline", "updating", "terminating", "available", "done"],
)
def test_status_viewer(dep: dict[str, Any], expected: RolloutStatus) -> None:
    assert status_of(dep) == expected


class _Scripted:
    """A Deployer whose rollout_status answers from a script; the clock moves only when the waiter sleeps."""

    def __init__(self, answers: list[RolloutStatus]) -> None:
        self.answers = answers
        self.now = 0.0
        self.sleeps: list[float] = []

    def rollout_status(self, deployment: str, namespace: str) -> RolloutStatus:
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_wait_reports_each_new_message_once_and_times_out() -> None:
    waiting = RolloutStatus(False, False, "Waiting for deployment spec update to be observed...")
    stuck = RolloutStatus(False, False, 'Waiting for deployment "backend" rollout to finish: 1 out of 3 ...')
    fake = _Scripted([waiting, waiting, stuck])
    seen: list[RolloutStatus] = []

    result = wait_for_rollout(
        fake,
        "backend",
        NS,
        timeout_s=25,
        poll_s=10,
        on_progress=seen.append,  # type: ignore[arg-type]
        sleep=fake.sleep,
        monotonic=lambda: fake.now,
    )

    assert seen == [waiting, stuck]
    assert fake.sleeps == [10, 10, 5]
    assert result.failed
    assert not result.done
    assert result.message.startswith('timed out after 25 s waiting for deployment "backend"')


# --- RBAC -------------------------------------------------------------------------------------------------


def role_grants() -> set[tuple[str, str]]:
    docs = list(yaml.safe_load_all((Path(__file__).parents[1] / "deploy" / "rbac.yaml").read_text()))
    (role,) = [d for d in docs if d["kind"] == "Role"]
    (binding,) = [d for d in docs if d["kind"] == "RoleBinding"]
    assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] == NS
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "release-bot", "namespace": "release-bot"}
    ]
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    return {(v, r) for rule in role["rules"] for r in rule["resources"] for v in rule["verbs"]}


def test_the_role_is_enough_for_the_bot_and_no_more_than_kubectl_needs(
    api: FakeKubeApi, deployer: KubeDeployer
) -> None:
    grants = role_grants()
    install_backend(api)
    api.allowed = grants

    deployer.plan_rollback("backend", NS)
    deployer.undo("backend", NS)
    assert wait_for_rollout(deployer, "backend", NS, timeout_s=5, poll_s=0).done

    used = {(r.verb, r.resource) for r in api.requests if r.verb != "discovery"}
    assert used == {("get", "deployments"), ("list", "replicasets"), ("patch", "deployments")}
    assert grants == used | {("list", "deployments"), ("watch", "deployments")}


def test_a_missing_grant_is_named(api: FakeKubeApi, deployer: KubeDeployer) -> None:
    install_backend(api)
    api.allowed = role_grants() - {("list", "replicasets")}

    with pytest.raises(DeployerError) as caught:
        deployer.plan_rollback("backend", NS)

    assert caught.value.user_message == (
        f"The bot's service account may not list replicasets in namespace {NS}; see deploy/rbac.yaml."
    )


@pytest.mark.slow
@needs_kubectl
def test_kubectl_needs_nothing_beyond_the_role(twin: FakeKubeApi, tmp_path: Path) -> None:
    install_backend(twin)
    twin.allowed = role_grants()

    undo = kubectl(twin, tmp_path, "rollout", "undo", "deployment/backend")
    status = kubectl(twin, tmp_path, "rollout", "status", "deployment/backend", "--timeout=10s")

    assert undo.returncode == 0, undo.stderr
    assert status.returncode == 0, status.stderr
    assert {(r.verb, r.resource) for r in twin.requests if r.verb != "discovery"} == role_grants()
