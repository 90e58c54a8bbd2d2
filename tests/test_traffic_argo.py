"""The Argo Rollouts traffic provider against the fake API server's Rollout.

The expected requests are those of ``kubectl argo rollouts promote / abort / undo``, written here with the
patch constants copied from argoproj/argo-rollouts 9f8d111 (pkg/kubectl-argo-rollouts/cmd/promote/promote.go,
cmd/abort/abort.go, cmd/undo/undo.go), so a drift of the bot from the plugin shows as a failing comparison.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.adapters.traffic_argo import ArgoRolloutsProvider
from bot.errors import Conflict, DeployerError
from bot.ports import RolloutPhase, TrafficView
from tests.fakes.k8s_api import FakeKubeApi
from tests.fakes.k8s_objects import strip_nulls
from tests.fakes.k8s_rollouts import deploy_version, install_rollout, rollout_template

NS = "hallyulatino-prod"
RO = f"/apis/argoproj.io/v1alpha1/namespaces/{NS}/rollouts/backend"
MERGE = "application/merge-patch+json"
# The plugin's patches, verbatim (promote.go / abort.go constants).
CLEAR_PAUSE_CONDITIONS = json.loads('{"status":{"pauseConditions":null}}')
CLEAR_WITH_STEP = '{"status":{"pauseConditions":null, "currentStepIndex":%d}}'
UNPAUSE = json.loads('{"spec":{"paused":false}}')
UNPAUSE_AND_CLEAR = json.loads('{"spec":{"paused":false},"status":{"pauseConditions":null}}')
ABORT = json.loads('{"status":{"abort":true}}')


@pytest.fixture
def api() -> Iterator[FakeKubeApi]:
    with FakeKubeApi() as server:
        yield server


@pytest.fixture
def argo(api: FakeKubeApi, tmp_path: Path) -> Iterator[ArgoRolloutsProvider]:
    kubeconfig = api.write_kubeconfig(str(tmp_path / "kubeconfig"))
    provider = ArgoRolloutsProvider.from_environment(
        NS, "backend", kubeconfig=kubeconfig, environ={}, request_timeout=(2.0, 2.0)
    )
    yield provider
    provider.close()


def sent(api: FakeKubeApi) -> list[tuple[str, str, str, Any]]:
    """What the server received: JSON bodies as sent (nulls kept: they are what clears a field)."""
    return [
        (r.method, r.path, r.content_type if r.method == "PATCH" else "", r.body)
        for r in api.requests
        if r.verb != "discovery"
    ]


def at_first_pause(api: FakeKubeApi) -> dict[str, Any]:
    install_rollout(api)
    ro = api.settle("rollouts", NS, "backend")
    api.clear_log()
    return ro


def test_the_live_state_is_read_as_the_plugin_reads_it(api: FakeKubeApi, argo: ArgoRolloutsProvider) -> None:
    at_first_pause(api)
    view = argo.read()
    assert (view.set_weight, view.actual_weight, view.step, view.steps) == (10, 10, 1, 4)
    assert (view.phase, view.message, view.paused, view.aborted) == (
        RolloutPhase.PAUSED,
        "CanaryPauseStep",
        True,
        False,
    )
    assert view.canary_images == ("registry.example/backend:v1.5.0",)
    assert view.stable_revision and view.canary_revision and view.stable_revision != view.canary_revision
    assert view.serving(10) and not view.serving(50)
    assert view.last_manager == "argocd-controller"


def test_advance_promotes_one_step_with_the_plugins_requests(
    api: FakeKubeApi, argo: ArgoRolloutsProvider
) -> None:
    at_first_pause(api)

    result = argo.advance(50)

    assert result.message == "rollout 'backend' promoted"
    # promote.go: GET, then the status patch for a rollout with pause conditions; spec.paused is false.
    assert sent(api) == [("GET", RO, "", None), ("PATCH", f"{RO}/status", MERGE, CLEAR_PAUSE_CONDITIONS)]
    assert [(r.verb, r.object, r.patch) for r in result.requests] == [
        ("get", "rollouts/backend", None),
        ("patch", "rollouts/backend/status", CLEAR_PAUSE_CONDITIONS),
    ]
    ro = api.settle("rollouts", NS, "backend")
    assert ro["status"]["currentStepIndex"] == 3 and ro["status"]["canary"]["weights"]["canary"]["weight"] == 50
    assert argo.read().serving(50)

    api.clear_log()
    argo.advance(100)
    ro = api.settle("rollouts", NS, "backend")
    assert ro["status"]["stableRS"] == ro["status"]["currentPodHash"]
    assert ro["status"]["phase"] == "Healthy"
    view = argo.read()
    assert (view.set_weight, view.actual_weight, view.phase) == (100, 100, RolloutPhase.HEALTHY)


def test_advance_to_a_weight_already_served_sends_only_the_read(
    api: FakeKubeApi, argo: ArgoRolloutsProvider
) -> None:
    at_first_pause(api)
    result = argo.advance(10)
    assert not result.changed and "already at 10%" in result.message
    assert sent(api) == [("GET", RO, "", None)]


def test_a_manually_paused_rollout_is_unpaused_too(api: FakeKubeApi, argo: ArgoRolloutsProvider) -> None:
    at_first_pause(api)
    api.outside_patch("rollouts", NS, "backend", {"spec": {"paused": True}}, manager="kubectl-argo-rollouts")
    api.clear_log()
    argo.advance(50)
    assert sent(api)[1:] == [
        ("PATCH", f"{RO}/status", MERGE, CLEAR_PAUSE_CONDITIONS),
        ("PATCH", RO, MERGE, UNPAUSE),
    ]


def test_between_pauses_promote_moves_the_step_index(api: FakeKubeApi, argo: ArgoRolloutsProvider) -> None:
    install_rollout(api)
    api.reconcile("rollouts", NS, "backend")  # setWeight 10 done; the pause step has no condition yet
    assert api.get_object("rollouts", NS, "backend")["status"]["currentStepIndex"] == 1
    api.clear_log()
    argo.advance(50)
    assert sent(api)[1:] == [("PATCH", f"{RO}/status", MERGE, json.loads(CLEAR_WITH_STEP % 2))]


def test_without_the_status_subresource_the_unified_patch_goes_to_the_rollout(
    api: FakeKubeApi, argo: ArgoRolloutsProvider
) -> None:
    at_first_pause(api)
    api.fail("patch", "rollouts/status", 404, times=1)  # Argo Rollouts v0.9: no /status
    argo.advance(50)
    assert sent(api)[1:] == [
        ("PATCH", f"{RO}/status", MERGE, CLEAR_PAUSE_CONDITIONS),
        ("PATCH", RO, MERGE, UNPAUSE_AND_CLEAR),
    ]


def test_abort_then_undo_returns_to_the_previous_stable(api: FakeKubeApi, argo: ArgoRolloutsProvider) -> None:
    at_first_pause(api)
    stable_before = api.get_object("rollouts", NS, "backend")["status"]["stableRS"]

    aborted = argo.abort()
    assert aborted.message == "rollout 'backend' aborted"
    assert sent(api) == [("PATCH", f"{RO}/status", MERGE, ABORT)]  # abort.go sends no GET
    api.settle("rollouts", NS, "backend")
    view = argo.read()
    assert view.aborted and view.set_weight == 0 and view.actual_weight == 0
    assert view.phase is RolloutPhase.DEGRADED
    assert view.message.startswith("RolloutAborted: Rollout aborted update to revision 3")
    with pytest.raises(Conflict):
        argo.advance(50)

    api.clear_log()
    undone = argo.undo()
    assert undone.message == "rollout 'backend' undo"
    (get, lst, patch) = sent(api)
    assert get == ("GET", RO, "", None)
    assert lst[:2] == ("GET", f"/apis/apps/v1/namespaces/{NS}/replicasets")
    assert api.requests[1].query == {"labelSelector": "app=backend"}  # undo.go lists without paging
    assert patch[:3] == ("PATCH", RO, "application/json-patch+json")
    assert strip_nulls(patch[3]) == [
        {"op": "replace", "path": "/spec/template", "value": rollout_template("v1.4.0")}
    ]
    # Go's encoding of a PodTemplateSpec: creationTimestamp null (the server drops it on decode).
    assert patch[3][0]["value"]["metadata"]["creationTimestamp"] is None

    ro = api.settle("rollouts", NS, "backend")
    assert ro["status"]["stableRS"] == stable_before == ro["status"]["currentPodHash"]
    assert not ro["status"]["abort"] and ro["status"]["phase"] == "Healthy"
    assert ro["spec"]["template"] == rollout_template("v1.4.0")
    again = argo.undo()
    assert again.changed  # previous revision is now v1.5.0's: undo toggles like the plugin's


def test_undo_with_the_current_template_is_skipped(api: FakeKubeApi, argo: ArgoRolloutsProvider) -> None:
    install_rollout(api, new_version=None)
    deploy_version(api, "v1.3.1")  # back to an older revision's template: it becomes the newest revision
    api.settle("rollouts", NS, "backend")
    deploy_version(api, "v1.4.0")
    api.settle("rollouts", NS, "backend")
    api.clear_log()
    result = argo.undo()
    assert result.changed  # v1.3.1 is the previous revision now
    api.settle("rollouts", NS, "backend")


def test_the_api_servers_refusals_reach_people_in_plain_words(
    api: FakeKubeApi, argo: ArgoRolloutsProvider
) -> None:
    at_first_pause(api)
    api.rbac = (NS, [{"apiGroups": ["argoproj.io"], "resources": ["rollouts"], "verbs": ["get", "patch"]}])
    with pytest.raises(DeployerError) as refused:
        argo.abort()
    assert "may not patch rollouts/status" in refused.value.user_message
    assert "forbidden" in str(refused.value)
    api.rbac = None

    with pytest.raises(DeployerError) as invalid:
        argo._calls.patch("backend", {"status": {"currentStepIndex": 9}}, MERGE, status=True)
    assert "rejected" in invalid.value.user_message and "at most 4" in invalid.value.user_message

    api.fail("get", "rollouts", 404, times=1)
    with pytest.raises(DeployerError) as missing:
        argo.advance(50)
    assert "found no rollouts" in missing.value.user_message


def test_the_fake_refuses_a_stale_resource_version(api: FakeKubeApi, argo: ArgoRolloutsProvider) -> None:
    at_first_pause(api)
    with pytest.raises(DeployerError) as conflict:
        argo._calls.patch("backend", {"metadata": {"resourceVersion": "1"}, "spec": {"paused": True}}, MERGE)
    assert conflict.value.user_message.startswith("Conflict:")


def test_watch_reports_an_outside_promotion_with_who_did_it(
    api: FakeKubeApi, argo: ArgoRolloutsProvider
) -> None:
    at_first_pause(api)
    views: list[TrafficView] = []
    done = threading.Event()

    def seen(view: TrafficView) -> None:
        views.append(view)
        if view.set_weight == 50:
            done.set()

    thread = threading.Thread(
        target=argo.watch, args=(seen,), kwargs={"timeout_s": 5, "stop": done.is_set}, daemon=True
    )
    thread.start()
    api.outside_patch(
        "rollouts", NS, "backend", CLEAR_PAUSE_CONDITIONS, manager="kubectl-argo-rollouts", subresource="status"
    )
    assert done.wait(5)
    thread.join(5)
    assert views[0].set_weight == 10
    assert any(v.last_manager == "kubectl-argo-rollouts" for v in views)
    assert views[-1].set_weight == 50
