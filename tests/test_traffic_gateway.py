"""The Gateway API traffic provider against the fake API server's HTTPRoute: both weights in one request."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.adapters.traffic_gateway import GatewayRouteProvider
from bot.domain.traffic import TrafficProviderKind, TrafficSpec
from bot.errors import DeployerError
from tests.fakes.k8s_api import FakeKubeApi
from tests.fakes.k8s_rollouts import install_route

NS = "hallyulatino-prod"
ROUTE = f"/apis/gateway.networking.k8s.io/v1/namespaces/{NS}/httproutes/backend"
SPEC = TrafficSpec(TrafficProviderKind.GATEWAY_API, NS, "backend", "backend-stable", "backend-canary")


@pytest.fixture
def api() -> Iterator[FakeKubeApi]:
    with FakeKubeApi() as server:
        yield server


@pytest.fixture
def route(api: FakeKubeApi, tmp_path: Path) -> Iterator[GatewayRouteProvider]:
    kubeconfig = api.write_kubeconfig(str(tmp_path / "kubeconfig"))
    provider = GatewayRouteProvider.from_environment(SPEC, kubeconfig=kubeconfig, environ={})
    yield provider
    provider.close()


def weights(api: FakeKubeApi) -> list[int]:
    obj = api.get_object("httproutes", NS, "backend")
    return [ref.get("weight", 1) for ref in obj["spec"]["rules"][0]["backendRefs"]]


def test_each_stage_sets_both_weights_in_one_patch(api: FakeKubeApi, route: GatewayRouteProvider) -> None:
    install_route(api)
    api.clear_log()
    result = route.advance(10)
    patches = [r for r in api.requests if r.method == "PATCH"]
    assert len(patches) == 1 and patches[0].path == ROUTE
    assert patches[0].content_type == "application/json-patch+json"
    base = "/spec/rules/0/backendRefs"
    assert patches[0].body == [
        {"op": "test", "path": f"{base}/0/name", "value": "backend-stable"},
        {"op": "test", "path": f"{base}/1/name", "value": "backend-canary"},
        {"op": "replace", "path": f"{base}/0/weight", "value": 90},
        {"op": "replace", "path": f"{base}/1/weight", "value": 10},
    ]
    assert [(r.verb, r.object) for r in result.requests] == [
        ("get", "httproutes/backend"),
        ("patch", "httproutes/backend"),
    ]
    assert weights(api) == [90, 10]
    api.settle("httproutes", NS, "backend")
    view = route.read()
    assert (view.set_weight, view.accepted) == (10, True) and view.serving(10)

    route.advance(50)
    assert weights(api) == [50, 50]
    assert not route.advance(50).changed  # already there: only the read is sent
    route.abort()
    assert weights(api) == [100, 0]
    assert not route.undo().changed


def test_a_route_without_weights_gets_them_added(api: FakeKubeApi, route: GatewayRouteProvider) -> None:
    install_route(api, weights=None)  # both weigh 1: a 50/50 split
    assert route.read().set_weight == 50
    route.advance(10)
    assert weights(api) == [90, 10]
    assert [op["op"] for op in api.requests_for("patch", "httproutes")[0].body][2:] == ["add", "add"]


def test_a_route_that_changed_underneath_is_refused_not_swapped(
    api: FakeKubeApi, route: GatewayRouteProvider
) -> None:
    install_route(api, stable="backend-v1", canary="backend-canary")
    with pytest.raises(DeployerError) as missing:
        route.advance(10)
    assert "no backendRef backend-stable" in missing.value.user_message
    assert not api.requests_for("patch", "httproutes")

    # Someone reorders the backendRefs between the bot's read and its patch: the test ops refuse it (422).
    install_route(api)
    swapped = [{"op": "test", "path": "/spec/rules/0/backendRefs/0/name", "value": "backend-canary"}]
    with pytest.raises(DeployerError) as refused:
        route._calls.patch("backend", swapped, "application/json-patch+json")
    assert "rejected" in refused.value.user_message
    assert weights(api) == [100, 0]


def test_an_invalid_weight_and_a_missing_rule_are_refused(api: FakeKubeApi, route: GatewayRouteProvider) -> None:
    install_route(api)
    bad = [{"op": "replace", "path": "/spec/rules/0/backendRefs/1/weight", "value": -5}]
    with pytest.raises(DeployerError) as invalid:
        route._calls.patch("backend", bad, "application/json-patch+json")
    assert "must be between 0 and 1000000" in invalid.value.user_message
    other = GatewayRouteProvider(route._calls, TrafficSpec(**{**SPEC.__dict__, "rule": 3}))
    with pytest.raises(DeployerError) as no_rule:
        other.advance(10)
    assert "has no rule 3" in no_rule.value.user_message
