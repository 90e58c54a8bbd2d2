"""The checklist's ``traffic:`` section: which provider moves the canary's share, validated by ``checklist check``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.checklist.loading import load_checklist, load_checklist_text
from bot.checklist.summary import summarize
from bot.domain.traffic import TrafficProviderKind, TrafficSpec
from bot.errors import ChecklistError
from tests.conftest import ROOT

FAST = ROOT / "tests" / "data" / "fast-checklist.yaml"
ARGO = {"provider": "argo-rollouts", "namespace": "hallyulatino-prod", "name": "backend"}
GATEWAY = {
    "provider": "gateway-api",
    "namespace": "hallyulatino-prod",
    "name": "backend",
    "stable_backend": "backend-stable",
    "canary_backend": "backend-canary",
}


def with_traffic(traffic: dict[str, Any] | None, **criterion: Any) -> str:
    data = yaml.safe_load(FAST.read_text(encoding="utf-8"))
    if traffic is not None:
        data["traffic"] = traffic
    if criterion:
        data["rollback"]["criteria"][0].update(criterion)
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)


def test_without_a_traffic_section_the_stage_stays_a_label() -> None:
    checklist = load_checklist(FAST)
    assert checklist.traffic == TrafficSpec()
    assert checklist.traffic.is_manual
    assert "Traffic:" not in summarize(checklist)
    assert all(c.on_breach == "page" for c in checklist.criteria)


def test_argo_rollouts_names_the_rollout() -> None:
    checklist = load_checklist_text(with_traffic(ARGO, on_breach="abort"), "team.yaml")
    assert checklist.traffic.provider is TrafficProviderKind.ARGO_ROLLOUTS
    assert (checklist.traffic.namespace, checklist.traffic.name) == ("hallyulatino-prod", "backend")
    assert checklist.criteria[0].on_breach == "abort"
    summary = summarize(checklist)
    assert "Traffic: Argo Rollouts: rollout/backend in namespace hallyulatino-prod" in summary
    assert "aborts the canary on breach" in summary


def test_gateway_api_names_the_route_and_both_services() -> None:
    checklist = load_checklist_text(with_traffic(GATEWAY), "team.yaml")
    t = checklist.traffic
    assert t.provider is TrafficProviderKind.GATEWAY_API
    assert (t.stable_backend, t.canary_backend, t.rule) == ("backend-stable", "backend-canary", 0)
    assert "httproute/backend in namespace hallyulatino-prod, rule 0" in summarize(checklist)


@pytest.mark.parametrize(
    ("traffic", "criterion", "path", "message"),
    [
        ({"provider": "istio"}, {}, "traffic.provider", "Input should be 'manual', 'argo-rollouts'"),
        ({"provider": "argo-rollouts", "name": "backend"}, {}, "traffic.namespace", "needs the namespace"),
        ({**ARGO, "name": "Back_End"}, {}, "traffic.name", "invalid Kubernetes object name"),
        ({**ARGO, "stable_backend": "x"}, {}, "traffic.stable_backend", "finds its Services in the Rollout"),
        ({**GATEWAY, "canary_backend": None}, {}, "traffic.canary_backend", "stable and the canary Service"),
        ({**GATEWAY, "canary_backend": "backend-stable"}, {}, "traffic.canary_backend", "must differ"),
        ({"provider": "manual", "name": "backend"}, {}, "traffic.name", "moves no traffic"),
        (None, {"on_breach": "abort"}, "traffic", "on_breach: abort needs a traffic provider"),
        (ARGO, {"on_breach": "rollback"}, "rollback.criteria[0].on_breach", "'page' or 'abort'"),
        ({**ARGO, "rolout": "x"}, {}, "traffic", "unknown field 'rolout'"),
    ],
)
def test_a_wrong_traffic_section_is_named(
    tmp_path: Path, traffic: dict[str, Any] | None, criterion: dict[str, Any], path: str, message: str
) -> None:
    if traffic is not None:
        traffic = {k: v for k, v in traffic.items() if v is not None}
    file = tmp_path / "team.yaml"
    file.write_text(with_traffic(traffic, **criterion), encoding="utf-8")
    with pytest.raises(ChecklistError) as caught:
        load_checklist(file)
    lines = caught.value.user_message.splitlines()
    assert any(line.startswith(f"{file}: {path}") and message in line for line in lines), lines


# --- checklist check --cluster ------------------------------------------------------------------------------


def test_check_cluster_names_each_mismatch_of_the_rollout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from bot.cli import main
    from tests.fakes.k8s_api import FakeKubeApi
    from tests.fakes.k8s_rollouts import install_rollout

    file = tmp_path / "team.yaml"
    file.write_text(with_traffic(ARGO), encoding="utf-8")
    with FakeKubeApi() as api:
        monkeypatch.setenv("KUBECONFIG", api.write_kubeconfig(str(tmp_path / "kc")))
        install_rollout(api, new_version=None)
        assert main(["checklist", "check", str(file), "--cluster"]) == 0
        assert "cluster: Argo Rollouts: rollout/backend in namespace hallyulatino-prod fits" in capsys.readouterr().out

        steps = [{"setWeight": 20}, {"pause": {}}, {"setWeight": 50}, {"pause": {"duration": "10m"}}, {"analysis": {}}]
        install_rollout(api, new_version=None, steps=steps)
        assert main(["checklist", "check", str(file), "--cluster"]) == 1
        out = capsys.readouterr().out
        assert "mismatch: rollout/backend: setWeight steps 20%, 50% differ from the checklist's stages 10%, 50%" in out
        assert "mismatch: rollout/backend: step 3 is a timed pause" in out
        assert "mismatch: rollout/backend: steps of kind analysis are not driven by the bot" in out


def test_drift_is_a_weight_other_than_the_stage_or_an_abort_the_bot_did_not_send() -> None:
    from bot.domain.traffic import detect_drift, stage_step_index
    from bot.ports import TrafficView

    view = TrafficView("argo-rollouts", set_weight=50, last_manager="kubectl-argo-rollouts")
    drift = detect_drift(view, 10)
    assert drift is not None and drift.by == "kubectl-argo-rollouts" and drift.what == ("weight 50% instead of 10%",)
    assert detect_drift(view, 50) is None
    assert detect_drift(TrafficView("argo-rollouts", set_weight=0), 50, settling=True) is None
    aborted = TrafficView("argo-rollouts", set_weight=0, aborted=True, last_manager="release-bot")
    assert detect_drift(aborted, 50) is not None and detect_drift(aborted, 50).by == ""  # type: ignore[union-attr]
    assert detect_drift(aborted, 0, aborted_by_bot=True) is None
    steps = [{"setWeight": 10}, {"pause": {}}, {"setWeight": 50}, {"pause": {}}]
    assert [stage_step_index(steps, p) for p in (10, 50, 100, 30)] == [1, 3, 4, None]
