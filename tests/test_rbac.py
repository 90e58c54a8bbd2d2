"""The bot's Kubernetes rights, as rendered from deploy/: the one Deployment the checklist names, read and undone,
and nothing else. Checked on the manifests as ``kubectl kustomize`` renders them, against the checklist, against
what deploy/README-rbac.md says, and by authorizing the real client's and real kubectl's requests with the Role's
rules the way the API server's RBAC does."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.adapters.kube import KubeDeployer, wait_for_rollout
from bot.checklist.loading import load_checklist
from bot.errors import ReleaseBotError
from tests.conftest import ROOT, SEED_CHECKLIST
from tests.fakes.k8s_api import FakeKubeApi, install_backend
from tests.fakes.tls import TlsFiles, make_tls_files

DEPLOY = ROOT / "deploy"
KUBECTL = shutil.which("kubectl")
TOKEN = "eyJhbGciOiJSUzI1NiJ9.release-bot-rbac-test.c2VjcmV0"


def rendered(tmp_path: Path) -> list[dict[str, Any]]:
    """Every manifest of deploy/ (the app's kustomization and rbac.yaml) as kubectl renders them."""
    folder = tmp_path / "render"
    folder.mkdir()
    kustomization = yaml.safe_load((DEPLOY / "kubernetes" / "kustomization.yaml").read_text())
    for name in kustomization["resources"]:
        shutil.copy(DEPLOY / "kubernetes" / name, folder / name)
    shutil.copy(DEPLOY / "rbac.yaml", folder / "rbac.yaml")
    kustomization["resources"] = [*kustomization["resources"], "rbac.yaml"]
    (folder / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    if KUBECTL is None:  # still a check of the files, if not of kustomize's reading of them
        return [d for f in sorted(folder.glob("*.yaml")) for d in yaml.safe_load_all(f.read_text()) if d]
    out = subprocess.run(
        [KUBECTL, "kustomize", str(folder)], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (found,) = [d for d in docs if d["kind"] == kind]
    return found


def test_the_role_grants_the_checklists_deployment_and_nothing_else(tmp_path: Path) -> None:
    docs = rendered(tmp_path)
    target = load_checklist(SEED_CHECKLIST).rollback
    assert target is not None
    role, binding = one(docs, "Role"), one(docs, "RoleBinding")
    assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] == target.namespace
    assert not [d for d in docs if d["kind"] in ("ClusterRole", "ClusterRoleBinding")]

    rules = role["rules"]
    assert all(rule["apiGroups"] == ["apps"] for rule in rules)
    assert "*" not in str(rules)
    by_resource = {r: rule for rule in rules for r in rule["resources"]}
    assert set(by_resource) == {"deployments", "replicasets"}
    deployments, replicasets = by_resource["deployments"], by_resource["replicasets"]
    assert deployments["resourceNames"] == [target.deployment]
    assert sorted(deployments["verbs"]) == ["get", "list", "patch", "watch"]
    assert replicasets["verbs"] == ["list"] and "resourceNames" not in replicasets

    # Bound to the bot's ServiceAccount, the one its Deployment runs as.
    account = one(docs, "ServiceAccount")
    deployment = one(docs, "Deployment")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "release-bot-rollback"}
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account["metadata"]["name"], "namespace": account["metadata"]["namespace"]}
    ]
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == account["metadata"]["name"]
    assert deployment["metadata"]["namespace"] == account["metadata"]["namespace"]


def test_the_rbac_readme_states_exactly_what_the_role_grants(tmp_path: Path) -> None:
    role = one(rendered(tmp_path), "Role")
    granted = {
        (resource, name, verb)
        for rule in role["rules"]
        for resource in rule["resources"]
        for name in rule.get("resourceNames", ["(any)"])
        for verb in rule["verbs"]
    }
    stated = set()
    for line in (DEPLOY / "README-rbac.md").read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0] in ("deployments", "replicasets"):
            names = re.findall(r"`([^`]+)`", cells[1]) or ["(any)"]
            stated |= {(cells[0], n, v.strip()) for n in names for v in cells[2].split(",")}
    assert stated == granted


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("rbac-tls"))


@pytest.fixture
def cluster(tls: TlsFiles, tmp_path: Path) -> Iterator[FakeKubeApi]:
    """A cluster whose API server authorizes every request with the rendered Role, as RBAC does."""
    role = one(rendered(tmp_path), "Role")
    with FakeKubeApi(token=TOKEN, tls=tls) as api:
        namespace = role["metadata"]["namespace"]
        install_backend(api, namespace=namespace)
        api.rbac = (namespace, role["rules"])
        yield api


def test_the_bot_can_roll_back_its_deployment_and_nothing_else(cluster: FakeKubeApi, tmp_path: Path) -> None:
    target = load_checklist(SEED_CHECKLIST).rollback
    assert target is not None
    kubeconfig = cluster.write_kubeconfig(str(tmp_path / "kubeconfig"), namespace=target.namespace)
    with KubeDeployer.from_environment(kubeconfig, request_timeout=(2.0, 2.0), environ={}) as bot:
        plan = bot.plan_rollback(target.deployment, target.namespace)
        assert bot.undo(target.deployment, target.namespace, to_revision=plan.target.number).rolled_back
        assert wait_for_rollout(bot, target.deployment, target.namespace, timeout_s=5, poll_s=0).done
        for namespace, name in ((target.namespace, "frontend"), ("default", target.deployment)):
            with pytest.raises(ReleaseBotError) as refused:
                bot.plan_rollback(name, namespace)
            assert "may not get deployments" in refused.value.user_message
    assert not [r for r in cluster.requests if r.verb == "patch" and not r.path.endswith(f"/{target.deployment}")]


@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not on PATH")
def test_on_call_can_run_the_seed_procedure_with_the_bots_rights(cluster: FakeKubeApi, tmp_path: Path) -> None:
    target = load_checklist(SEED_CHECKLIST).rollback
    assert target is not None and KUBECTL is not None
    kubeconfig = cluster.write_kubeconfig(str(tmp_path / "kubeconfig"), namespace=target.namespace)
    env = {"PATH": str(Path(KUBECTL).parent), "HOME": str(tmp_path), "KUBECONFIG": kubeconfig}

    def kubectl(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [KUBECTL, *args], env=env, capture_output=True, text=True, timeout=120, check=False
        )

    dep = f"deployment/{target.deployment}"
    assert kubectl("rollout", "undo", dep, "-n", target.namespace).returncode == 0
    status = kubectl("rollout", "status", dep, "-n", target.namespace, "--timeout=10s")
    assert status.returncode == 0, status.stderr
    # Anything else is refused by the API server: listing every deployment, another one, deleting this one.
    for args in (
        ("get", "deployments", "-n", target.namespace),
        ("rollout", "undo", "deployment/frontend", "-n", target.namespace),
        ("delete", dep, "-n", target.namespace),
    ):
        refused = kubectl(*args)
        assert refused.returncode != 0 and "forbidden" in refused.stderr.lower(), (args, refused.stderr)
