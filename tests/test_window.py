"""The gate over a whole window and the post-deploy watch's time, as pure rules (no fixtures)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.checklist.loading import load_checklist
from bot.domain.analysis import Sample, Verdict
from bot.domain.checklist import MonitoringGate
from bot.domain.release import ReleaseStatus, advance, plan_steps, step_wait
from bot.domain.window import WindowSample, breached_samples, judge_window
from bot.errors import GateNotMet
from tests.conftest import FAST_CHECKLIST, SEED_CHECKLIST

T0 = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
GATE = MonitoringGate(max_error_rate=0.01, max_p95_ms=200)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_samples_over_a_line_are_counted_per_moment() -> None:
    samples = [
        WindowSample(at(0), "error_rate", 0.002),
        WindowSample(at(0), "p95", 0.150),
        WindowSample(at(15), "error_rate", 0.02),  # over 1 %
        WindowSample(at(15), "p95", 0.250),  # over 200 ms too: still one moment
        WindowSample(at(30), "error_rate", None),
        WindowSample(at(30), "p95", 0.210),
        WindowSample(at(45), "error_rate", 0.01),  # at the line: "< 1 %" fails
    ]
    assert breached_samples(GATE, samples) == (4, 3)


def test_the_window_passes_on_its_own_figures_and_never_without_them() -> None:
    good = judge_window(
        GATE, start=at(0), end=at(600), error_rate=Sample(at(600), 0.004), p95=Sample(at(600), 0.140), samples=[]
    )
    assert good.verdict is Verdict.PASS and good.length == timedelta(minutes=10)
    bad = judge_window(
        GATE, start=at(0), end=at(600), error_rate=Sample(at(600), 0.012), p95=Sample(at(600), 0.140), samples=[]
    )
    assert bad.verdict is Verdict.BREACH
    blind = judge_window(
        GATE,
        start=at(0),
        end=at(600),
        error_rate=Sample(at(600), None, "empty result"),
        p95=Sample(at(600), 0.140),
        samples=[],
    )
    assert blind.verdict is Verdict.NO_DATA and not blind.passed


def test_finishing_the_post_deploy_watch_early_needs_a_reason() -> None:
    checklist = load_checklist(FAST_CHECKLIST)
    steps = plan_steps(checklist)
    watch = next(s for s in steps if s.key == "post_deploy")
    assert step_wait(checklist, watch) == checklist.post_deploy_watch == timedelta(seconds=3)
    ticked = {i.key: True for i in checklist.phase("post_deploy").items}
    common = {
        "status": ReleaseStatus.ACTIVE,
        "current": "post_deploy",
        "target": "finished",
        "step_started_at": at(0),
        "checked": ticked,
    }
    with pytest.raises(GateNotMet) as refused:
        advance(checklist, now=at(1), **common)  # type: ignore[arg-type]
    assert refused.value.wait_remaining_s == pytest.approx(2)
    early = advance(checklist, now=at(1), override_reason="hotfix verified by hand", **common)  # type: ignore[arg-type]
    assert early.finishes and early.overridden == ("wait",)
    assert advance(checklist, now=at(3), **common).overridden == ()  # type: ignore[arg-type]


def test_the_shipped_watch_is_thirty_minutes() -> None:
    checklist = load_checklist(SEED_CHECKLIST)
    watch = next(s for s in plan_steps(checklist) if s.kind.value == "watch")
    assert step_wait(checklist, watch) == timedelta(minutes=30)
