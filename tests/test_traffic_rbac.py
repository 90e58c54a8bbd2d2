"""The traffic providers' Kubernetes rights (deploy/rbac-traffic-*.yaml): the one Rollout or HTTPRoute the checklist
names, read, followed and driven, and nothing else. The API server's RBAC is played by the fake, which authorizes
every request the providers send with the Role's rules (resourceNames and subresources included)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.adapters.traffic_argo import ArgoRolloutsProvider
from bot.adapters.traffic_gateway import GatewayRouteProvider
from bot.domain.traffic import TrafficProviderKind, TrafficSpec
from bot.errors import DeployerError
from tests.conftest import ROOT
from tests.fakes.k8s_api import FakeKubeApi
from tests.fakes.k8s_rollouts import install_rollout, install_route

NS = "hallyulatino-prod"


def role(name: str) -> dict[str, Any]:
    docs = [d for d in yaml.safe_load_all((ROOT / "deploy" / name).read_text()) if d]
    (found,) = [d for d in docs if d["kind"] == "Role"]
    (binding,) = [d for d in docs if d["kind"] == "RoleBinding"]
    assert binding["roleRef"]["name"] == found["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "release-bot", "namespace": "release-bot"}]
    assert not [d for d in docs if d["kind"].startswith("Cluster")]
    assert "*" not in str(found["rules"])
    return found


def test_the_argo_role_names_the_one_rollout() -> None:
    rules = role("rbac-traffic-argo-rollouts.yaml")["rules"]
    by = {(g, r): rule for rule in rules for g in rule["apiGroups"] for r in rule["resources"]}
    assert set(by) == {("argoproj.io", "rollouts"), ("argoproj.io", "rollouts/status"), ("apps", "replicasets")}
    assert by[("argoproj.io", "rollouts")]["resourceNames"] == ["backend"]
    assert sorted(by[("argoproj.io", "rollouts")]["verbs"]) == ["get", "list", "patch", "watch"]
    assert by[("argoproj.io", "rollouts/status")] == {
        "apiGroups": ["argoproj.io"],
        "resources": ["rollouts/status"],
        "resourceNames": ["backend"],
        "verbs": ["patch"],
    }
    assert by[("apps", "replicasets")]["verbs"] == ["list"]


def test_every_argo_request_is_authorized_and_nothing_else(tmp_path: Path) -> None:
    found = role("rbac-traffic-argo-rollouts.yaml")
    with FakeKubeApi() as api:
        install_rollout(api)
        install_rollout(api, name="frontend")
        api.settle("rollouts", NS, "backend")
        api.rbac = (found["metadata"]["namespace"], found["rules"])
        kubeconfig = api.write_kubeconfig(str(tmp_path / "kc"))
        bot = ArgoRolloutsProvider.from_environment(NS, "backend", kubeconfig=kubeconfig, environ={})
        try:
            bot.read()
            bot.advance(50)
            stop = threading.Event()
            bot.watch(lambda v: stop.set(), timeout_s=1, stop=stop.is_set)
            bot.abort()
            api.settle("rollouts", NS, "backend")
            assert bot.undo().changed
        finally:
            bot.close()
        assert not [r for r in api.requests if r.verb != "discovery" and r.resource == ""]
        other = ArgoRolloutsProvider.from_environment(NS, "frontend", kubeconfig=kubeconfig, environ={})
        try:
            for action in (other.read, other.abort, lambda: other.advance(50)):
                with pytest.raises(DeployerError) as refused:
                    action()
                assert "may not" in refused.value.user_message
        finally:
            other.close()


def test_every_gateway_request_is_authorized_and_nothing_else(tmp_path: Path) -> None:
    found = role("rbac-traffic-gateway-api.yaml")
    assert found["rules"] == [
        {
            "apiGroups": ["gateway.networking.k8s.io"],
            "resources": ["httproutes"],
            "resourceNames": ["backend"],
            "verbs": ["get", "list", "watch", "patch"],
        }
    ]
    spec = TrafficSpec(TrafficProviderKind.GATEWAY_API, NS, "backend", "backend-stable", "backend-canary")
    with FakeKubeApi() as api:
        install_route(api)
        install_route(api, name="frontend")
        api.rbac = (found["metadata"]["namespace"], found["rules"])
        kubeconfig = api.write_kubeconfig(str(tmp_path / "kc"))
        bot = GatewayRouteProvider.from_environment(spec, kubeconfig=kubeconfig, environ={})
        try:
            bot.advance(10)
            stop = threading.Event()
            bot.watch(lambda v: stop.set(), timeout_s=1, stop=stop.is_set)
            bot.abort()
        finally:
            bot.close()
        other_spec = TrafficSpec(**{**spec.__dict__, "name": "frontend"})
        other = GatewayRouteProvider.from_environment(other_spec, kubeconfig=kubeconfig, environ={})
        try:
            with pytest.raises(DeployerError) as refused:
                other.advance(10)
            assert "may not get httproutes" in refused.value.user_message
        finally:
            other.close()
