"""A release driven from Slack moves the real traffic split: signed HTTP into the bot, the real slack_sdk out to the
fake Slack, and the real ``kubernetes`` client (from a kubeconfig) against the fake API server's Rollout or
HTTPRoute. On SQLite and Postgres (the ``db_url`` fixture)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.domain.records import Actor
from bot.slack.gateway import ChannelPacer
from tests.conftest import FAST_CHECKLIST, RunningBot, make_settings, start_bot
from tests.fakes.k8s_api import FakeKubeApi
from tests.fakes.k8s_rollouts import install_rollout, install_route
from tests.fakes.slack_api import FakeSlack, render_text
from tests.test_lifecycle import (
    ADVANCE,
    fresh_header,
    header,
    start,
    step_of,
    thread,
    thread_text,
    tick_phase,
)
from tests.test_release_start import CHANNEL, export

NS = "hallyulatino-prod"
ARGO = {"provider": "argo-rollouts", "namespace": NS, "name": "backend"}
GATEWAY = {
    "provider": "gateway-api",
    "namespace": NS,
    "name": "backend",
    "stable_backend": "backend-stable",
    "canary_backend": "backend-canary",
}


@pytest.fixture
def kube() -> Iterator[FakeKubeApi]:
    with FakeKubeApi() as api:
        yield api


def launch(
    db_url: str, fake: FakeSlack, kube: FakeKubeApi, tmp_path: Path, traffic: dict[str, Any]
) -> RunningBot:
    data = yaml.safe_load(FAST_CHECKLIST.read_text(encoding="utf-8"))
    data["traffic"] = traffic
    data["canary"][0]["wait"] = "1s"
    checklist = tmp_path / "checklist.yaml"
    checklist.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    settings = make_settings(
        db_url,
        fake,
        checklist_path=str(checklist),
        kubeconfig=kube.write_kubeconfig(str(tmp_path / "kubeconfig"), namespace=NS),
    )
    return start_bot(settings, fake, sync_interval_s=0.2, pacer=ChannelPacer(0.0), traffic_watch_s=1.0)


@pytest.fixture
def bot_with(db_url: str, fake_slack: FakeSlack, kube: FakeKubeApi, tmp_path: Path) -> Iterator[Callable[..., Any]]:
    started: list[RunningBot] = []

    def make(traffic: dict[str, Any]) -> RunningBot:
        rb = launch(db_url, fake_slack, kube, tmp_path, traffic)
        started.append(rb)
        return rb

    yield make
    for rb in started:
        rb.stop()


def header_text(rb: RunningBot) -> str:
    return render_text(header(rb.fake)["blocks"])


def audit(rb: RunningBot, action: str) -> list[dict[str, Any]]:
    _, events = rb.services.audit_trail("v1.4.0")
    return [e.details for e in events if e.action == action]


def to_canary(rb: RunningBot) -> None:
    alice = rb.user()
    start(rb, alice)
    for phase in ("pre_deploy", "staging"):
        tick_phase(rb, alice, phase)
    for step in ("staging", "production", "canary-10"):
        alice.click_button(CHANNEL, fresh_header(rb), ADVANCE)
        rb.fake.wait_for(lambda s=step: step_of(rb) == s, timeout=5)  # type: ignore[misc]


def advance_when_due(rb: RunningBot, to: str) -> None:
    """Click "advance" once the stage's wait is over (the gate refuses earlier clicks)."""
    user = rb.user()

    def moved() -> bool:
        if step_of(rb) == to:
            return True
        user.click_button(CHANNEL, fresh_header(rb), ADVANCE)
        return step_of(rb) == to

    rb.fake.wait_for(moved, timeout=10, interval=0.3)


def test_argo_rollouts_release_moves_the_rollout_and_catches_drift(
    bot_with: Callable[..., RunningBot], kube: FakeKubeApi, db_url: str
) -> None:
    install_rollout(kube)  # CI deployed v1.5.0: the canary starts at step 0
    rb = bot_with(ARGO)
    to_canary(rb)

    # The header shows the cluster's view beside the bot's stage, from the watch.
    rb.fake.wait_for(lambda: "Cluster:* canary 10 % · step 2/4 · paused" in header_text(rb), timeout=10)
    rb.fake.wait_for(lambda: audit(rb, "traffic_serving"), timeout=5)
    rb.fake.wait_for(lambda: "serving since" in header_text(rb), timeout=5)
    # The stage's wait counted from when the cluster served 10 %, and the reminder says so.
    rb.fake.wait_for(lambda: "when the cluster reported the stage's weight as serving" in thread_text(rb.fake))

    kube.clear_log()
    advance_when_due(rb, "canary-50")
    rb.fake.wait_for(lambda: "Cluster:* canary 50 %" in header_text(rb), timeout=10)
    patches = [(r.path.rsplit("/", 1)[-1], r.body) for r in kube.requests if r.method == "PATCH"]
    assert patches == [("status", {"status": {"pauseConditions": None}})]  # kubectl argo rollouts promote
    requests = audit(rb, "cluster_request")
    assert {"verb": "patch", "object": "rollouts/backend/status", "namespace": NS} in [
        {k: r[k] for k in ("verb", "object", "namespace")} for r in requests
    ]
    assert any(r["patch"] == {"status": {"pauseConditions": None}} for r in requests)

    # Someone promotes from a terminal: the Rollout goes to 100 % while the bot shows 50 %.
    rb.fake.wait_for(lambda: audit(rb, "traffic_serving") and len(audit(rb, "traffic_serving")) >= 2, timeout=5)
    kube.outside_patch(
        "rollouts",
        NS,
        "backend",
        {"status": {"pauseConditions": None}},
        manager="kubectl-argo-rollouts",
        subresource="status",
    )
    rb.fake.wait_for(lambda: "kubectl-argo-rollouts" in thread_text(rb.fake), timeout=10)
    drift = audit(rb, "traffic_drift")
    assert len(drift) == 1 and drift[0]["drift"]["by"] == "kubectl-argo-rollouts"
    rb.fake.wait_for(lambda: "The cluster differs from the stage" in header_text(rb), timeout=5)

    # "Advance" is refused until a manager acknowledges the drift.
    rb.user().click_button(CHANNEL, fresh_header(rb), ADVANCE)
    rb.fake.wait_for(lambda: [r for r in rb.fake.responses() if "differs from the stage" in r.get("text", "")])
    assert step_of(rb) == "canary-50"
    rb.user().click_button(CHANNEL, header(rb.fake), "traffic-drift-ack")
    rb.fake.wait_for(lambda: audit(rb, "traffic_drift_acknowledged"), timeout=5)
    rb.fake.wait_for(lambda: "acknowledged the cluster's drift" in thread_text(rb.fake), timeout=5)
    posted = [m for m in thread(rb.fake) if "no longer matches the stage" in m.get("text", "")]
    assert len(posted) == 1  # posted once, however many watch events showed it
    advance_when_due(rb, "canary-100")

    # The Rollout is already at 100 % (the outside promote): the bot's promote only reads it.
    last = rb.fake.wait_for(lambda: (a := audit(rb, "traffic_advanced")) and len(a) == 3 and a[-1])
    assert last["message"] == "rollout 'backend' already at 100%" and not last["changed"]

    # The export shows every request the bot sent to the cluster, with its patch.
    exported = [e for e in json.loads(export(db_url, "v1.4.0").stdout) if e["action"] == "cluster_request"]
    status_patches = [e["details"] for e in exported if e["details"]["object"] == "rollouts/backend/status"]
    assert [p["patch"] for p in status_patches] == [{"status": {"pauseConditions": None}}]
    assert all(p["content_type"] == "application/merge-patch+json" for p in status_patches)


def test_gateway_api_release_sets_the_route_weights_stage_by_stage(
    bot_with: Callable[..., RunningBot], kube: FakeKubeApi
) -> None:
    install_route(kube)
    rb = bot_with(GATEWAY)
    to_canary(rb)

    def weights() -> list[int]:
        route = kube.get_object("httproutes", NS, "backend")
        return [ref["weight"] for ref in route["spec"]["rules"][0]["backendRefs"]]

    rb.fake.wait_for(lambda: weights() == [90, 10], timeout=5)
    rb.fake.wait_for(lambda: "Cluster:* canary 10 % · route accepted" in header_text(rb), timeout=10)
    advance_when_due(rb, "canary-50")
    rb.fake.wait_for(lambda: weights() == [50, 50], timeout=5)
    patches = [r for r in kube.requests if r.method == "PATCH"]
    assert len(patches) == 2  # one request per stage, both weights at once
    requests = rb.fake.wait_for(lambda: (r := audit(rb, "cluster_request")) and len(r) == 4 and r)
    assert [r["verb"] for r in requests] == ["get", "patch", "get", "patch"]
    assert requests[1]["patch"][-1] == {"op": "replace", "path": "/spec/rules/0/backendRefs/1/weight", "value": 10}

    # A rollback sends everything back to the stable Service.
    rb.bot.extras["traffic"].context.traffic.abort(
        rb.services.find(CHANNEL, "v1.4.0").release.id, actor=Actor("U061F7AUR", "alice"), reason="test"
    )
    assert weights() == [100, 0]


def test_the_rollback_button_aborts_and_undoes_the_rollout(
    bot_with: Callable[..., RunningBot], kube: FakeKubeApi
) -> None:
    from tests.test_rollback_e2e import confirm, open_modal

    install_rollout(kube)
    rb = bot_with(ARGO)
    to_canary(rb)
    rb.fake.wait_for(lambda: "Cluster:* canary 10 %" in header_text(rb), timeout=10)
    stable = kube.get_object("rollouts", NS, "backend")["status"]["stableRS"]
    alice = rb.user()
    modal = open_modal(rb, alice)
    shown = render_text(modal["blocks"])
    assert "registry.example/backend:v1.5.0" in shown and "registry.example/backend:v1.4.0" in shown
    kube.clear_log()
    confirm(alice, modal, "error rate up")
    rb.fake.wait_for(lambda: rb.services.find(CHANNEL, "v1.4.0").release.status == "rolled_back", timeout=15)
    ro = kube.get_object("rollouts", NS, "backend")
    assert ro["status"]["stableRS"] == stable == ro["status"]["currentPodHash"]
    assert ro["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.example/backend:v1.4.0"
    patches = [(r.path.rsplit("/", 1)[-1], r.content_type, r.body) for r in kube.requests if r.method == "PATCH"]
    assert patches[0] == ("status", "application/merge-patch+json", {"status": {"abort": True}})
    assert patches[1][:2] == ("backend", "application/json-patch+json") and len(patches) == 2
    sent = rb.fake.wait_for(lambda: audit(rb, "traffic_aborted"))
    assert sent[0]["reason"] == "rollback"
    requests = [r for r in audit(rb, "cluster_request") if r["verb"] == "patch"]
    assert [r["object"] for r in requests][-2:] == ["rollouts/backend/status", "rollouts/backend"]


def test_a_rollback_that_fails_half_way_still_audits_what_it_sent_to_the_cluster(
    bot_with: Callable[..., RunningBot], kube: FakeKubeApi
) -> None:
    from tests.test_rollback_e2e import confirm, open_modal

    install_rollout(kube)
    rb = bot_with(ARGO)
    to_canary(rb)
    rb.fake.wait_for(lambda: "Cluster:* canary 10 %" in header_text(rb), timeout=10)
    alice = rb.user()
    modal = open_modal(rb, alice)
    # The abort is allowed; the undo's patch of the Rollout itself is not: the rollback fails after its abort.
    kube.rbac = (
        NS,
        [
            {"apiGroups": ["argoproj.io"], "resources": ["rollouts", "rollouts/status"], "verbs": ["get", "list", "watch"]},
            {"apiGroups": ["argoproj.io"], "resources": ["rollouts/status"], "verbs": ["patch"]},
            {"apiGroups": ["apps"], "resources": ["replicasets"], "verbs": ["get", "list", "watch"]},
        ],
    )
    confirm(alice, modal, "error rate up")
    failed = rb.fake.wait_for(lambda: audit(rb, "rollback_failed"), timeout=15)
    assert failed and rb.services.find(CHANNEL, "v1.4.0").release.status != "rolled_back"
    objects = [r["object"] for r in audit(rb, "cluster_request") if r["verb"] == "patch"]
    assert "rollouts/backend/status" in objects  # the abort that did reach the cluster is on the record
