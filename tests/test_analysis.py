"""The rollback judge and the criterion watch, on traces of samples (pure: no fixtures, no I/O)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from bot.domain.analysis import (
    Action,
    CriterionWatch,
    Direction,
    Sample,
    Verdict,
    assess,
    baseline_from,
    explain,
    gate_status,
    judge,
)
from bot.domain.checklist import Criterion, CriterionKind, MetricsSpec, MonitoringGate
from bot.errors import GateNotMet, MetricsError

T0 = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
ERRORS = Criterion("error-rate", "Error rate at or above 5 %", CriterionKind.ERROR_RATE, threshold=0.05)
LATENCY = Criterion("latency", "p95 at or above 2x normal", CriterionKind.LATENCY_RATIO, threshold=2.0)
BASELINE = 0.120  # seconds
NO_DATA = None  # in a trace: an empty result
ERR = "error"  # in a trace: Prometheus failed


def sample(i: int, value: float | str | None) -> Sample:
    at = T0 + timedelta(seconds=15 * i)
    if value == ERR:
        return Sample(at, None, "Prometheus did not answer within 5 s", is_error=True)
    if value is None:
        return Sample(at, None, "no series matched (empty result)")
    assert isinstance(value, float | int)
    return Sample(at, float(value))


def run(
    trace: Sequence[float | str | None], criterion: Criterion = ERRORS, watch: CriterionWatch | None = None
) -> tuple[list[Verdict], list[Action], CriterionWatch]:
    watch = watch or CriterionWatch.for_criterion(criterion, None)
    verdicts, actions = [], []
    for i, value in enumerate(trace):
        s = sample(i, value)
        verdict = judge(criterion, s, baseline_p95_s=BASELINE)
        verdicts.append(verdict)
        actions.append(watch.observe(s, verdict).action)
    return verdicts, actions, watch


# --- judge ---


@pytest.mark.parametrize(
    ("criterion", "value", "expected"),
    [
        (ERRORS, 0.0, Verdict.PASS),
        (ERRORS, 0.0499, Verdict.PASS),
        (ERRORS, 0.05, Verdict.BREACH),  # "5 % or more" includes 5 %
        (ERRORS, 1.0, Verdict.BREACH),
        (ERRORS, math.nan, Verdict.NO_DATA),
        (ERRORS, math.inf, Verdict.NO_DATA),
        (ERRORS, -0.01, Verdict.NO_DATA),
        (ERRORS, None, Verdict.NO_DATA),
        (LATENCY, 0.239, Verdict.PASS),
        (LATENCY, 0.240, Verdict.BREACH),  # exactly 2x the 120 ms baseline
        (LATENCY, math.nan, Verdict.NO_DATA),
    ],
)
def test_judge(criterion: Criterion, value: float | None, expected: Verdict) -> None:
    assert judge(criterion, Sample(T0, value), baseline_p95_s=BASELINE) is expected


def test_provider_error_is_no_data_even_with_a_stale_value() -> None:
    failed = Sample(T0, 0.9, "Prometheus answered HTTP 503 timeout: query timed out", is_error=True)
    judgement = assess(ERRORS, failed, baseline_p95_s=None)
    assert judgement.verdict is Verdict.NO_DATA
    assert judgement.reason == "Prometheus answered HTTP 503 timeout: query timed out"


def test_latency_without_baseline_is_no_data_with_a_reason() -> None:
    judgement = assess(LATENCY, Sample(T0, 5.0), baseline_p95_s=None)
    assert (judgement.verdict, judgement.reason) == (
        Verdict.NO_DATA,
        "no baseline p95 recorded for this release",
    )


def test_manual_criteria_and_missing_thresholds_are_not_judged() -> None:
    manual = Criterion("core-down", "A core feature is down", CriterionKind.MANUAL)
    with pytest.raises(ValueError, match="declared by a person"):
        judge(manual, Sample(T0, 1.0), baseline_p95_s=None)
    with pytest.raises(ValueError, match="positive threshold"):
        judge(Criterion("e", "e", CriterionKind.ERROR_RATE), Sample(T0, 1.0), baseline_p95_s=None)


# --- baseline and gate ---


def test_baseline_from_accepts_a_positive_finite_p95() -> None:
    assert baseline_from(Sample(T0, 0.12)) == 0.12


@pytest.mark.parametrize("value", [None, math.nan, math.inf, 0.0, -1.0])
def test_baseline_from_refuses_figures_that_cannot_anchor_a_ratio(value: float | None) -> None:
    with pytest.raises(GateNotMet, match="No usable baseline p95") as raised:
        baseline_from(Sample(T0, value, "no series matched (empty result)" if value is None else None))
    assert "baseline_p95_ms" in raised.value.user_message


def test_baseline_from_a_provider_error_is_a_metrics_error() -> None:
    with pytest.raises(MetricsError, match="did not answer"):
        baseline_from(Sample(T0, None, "Prometheus did not answer within 5 s", is_error=True))


GATE = MonitoringGate(max_error_rate=0.01, max_p95_ms=200)


@pytest.mark.parametrize(
    ("error_rate", "p95", "verdicts", "overall"),
    [
        (0.002, 0.150, (Verdict.PASS, Verdict.PASS), Verdict.PASS),
        (0.01, 0.150, (Verdict.BREACH, Verdict.PASS), Verdict.BREACH),  # "< 1 %": 1 % is not below
        (0.002, 0.200, (Verdict.PASS, Verdict.BREACH), Verdict.BREACH),
        (0.002, math.nan, (Verdict.PASS, Verdict.NO_DATA), Verdict.NO_DATA),
        (None, 0.150, (Verdict.NO_DATA, Verdict.PASS), Verdict.NO_DATA),
        (0.5, None, (Verdict.BREACH, Verdict.NO_DATA), Verdict.BREACH),
    ],
)
def test_gate_never_passes_without_every_figure(
    error_rate: float | None, p95: float | None, verdicts: tuple[Verdict, Verdict], overall: Verdict
) -> None:
    report = gate_status(GATE, Sample(T0, error_rate), Sample(T0, p95))
    assert (report.error_rate.verdict, report.p95.verdict) == verdicts
    assert report.verdict is overall
    assert report.passed is (overall is Verdict.PASS)
    assert report.undecided is (overall is Verdict.NO_DATA)
    assert report.p95.limit == 0.2


# --- watch: traces ---


def test_healthy_trace_never_fires() -> None:
    verdicts, actions, _ = run([0.001, 0.004, 0.0, 0.012, 0.049, 0.002])
    assert set(verdicts) == {Verdict.PASS}
    assert set(actions) == {Action.NONE}


def test_sudden_spike_fires_on_the_second_consecutive_breach_and_only_once() -> None:
    _, actions, watch = run([0.002, 0.003, 0.40, 0.45, 0.50, 0.48, 0.51])
    assert actions == [Action.NONE] * 3 + [Action.FIRE] + [Action.NONE] * 3
    assert watch.fires == 1
    assert watch.streak_since == T0 + timedelta(seconds=30)


def test_single_blip_never_fires() -> None:
    verdicts, actions, _ = run([0.002, 0.30, 0.002, 0.003])
    assert verdicts.count(Verdict.BREACH) == 1
    assert Action.FIRE not in actions


def test_flapping_around_the_threshold_fires_once() -> None:
    _, actions, _ = run([0.06, 0.04, 0.06, 0.07, 0.04, 0.06, 0.06, 0.04, 0.08, 0.09])
    assert actions.count(Action.FIRE) == 1
    assert actions.index(Action.FIRE) == 3


def test_slow_creep_to_twice_the_baseline_fires_once_it_holds() -> None:
    creep = [BASELINE * x for x in (1.0, 1.2, 1.5, 1.8, 1.95, 2.0, 2.1, 2.3)]
    verdicts, actions, watch = run(creep, LATENCY)
    assert verdicts.index(Verdict.BREACH) == 5
    assert actions.index(Action.FIRE) == 6
    why = explain(LATENCY, watch, baseline_p95_s=BASELINE, window=timedelta(minutes=1))
    assert why.direction is Direction.RISING
    assert why.limit == pytest.approx(0.240)
    assert why.times_baseline == pytest.approx(2.3)


def test_no_data_never_fires_and_warns_blind_once_after_three() -> None:
    verdicts, actions, watch = run([NO_DATA] * 7)
    assert set(verdicts) == {Verdict.NO_DATA}
    assert actions == [Action.NONE, Action.NONE, Action.BLIND] + [Action.NONE] * 4
    assert (watch.no_data_in_row, watch.errors_in_row) == (7, 0)


def test_provider_errors_are_blindness_reported_as_errors_never_a_breach_or_pass() -> None:
    watch = CriterionWatch.for_criterion(ERRORS, None)
    decisions = [
        watch.observe(s, judge(ERRORS, s, baseline_p95_s=None)) for s in (sample(i, ERR) for i in range(4))
    ]
    assert [d.action for d in decisions] == [Action.NONE, Action.NONE, Action.BLIND, Action.NONE]
    blind = decisions[2]
    assert (blind.verdict, blind.errors_in_row, blind.no_data_in_row) == (Verdict.NO_DATA, 3, 3)
    assert blind.reason == "Prometheus did not answer within 5 s"


def test_blindness_ends_when_data_returns_and_the_next_spell_warns_again() -> None:
    _, actions, _ = run([NO_DATA, ERR, NO_DATA, 0.01, NO_DATA, NO_DATA, NO_DATA])
    assert actions == [
        Action.NONE,
        Action.NONE,
        Action.BLIND,
        Action.DATA_BACK,
        Action.NONE,
        Action.NONE,
        Action.BLIND,
    ]


def test_no_data_breaks_the_breach_streak() -> None:
    # Two breaches with a blind sample between are not consecutive evidence.
    _, actions, _ = run([0.3, NO_DATA, 0.3, ERR, 0.3, 0.3])
    assert actions == [Action.NONE] * 5 + [Action.FIRE]


def test_breach_right_after_a_blind_spell_reports_both() -> None:
    watch = CriterionWatch("error-rate", required_breaches=1)
    run([NO_DATA, NO_DATA, NO_DATA], watch=watch)
    decision = watch.observe(sample(3, 0.5), Verdict.BREACH)
    assert (decision.action, decision.ended_blind_spell) == (Action.FIRE, True)


def test_dry_run_criterion_fires_marked_as_dry_run() -> None:
    dry = Criterion("error-rate", "Error rate", CriterionKind.ERROR_RATE, threshold=0.05, dry_run=True)
    watch = CriterionWatch.for_criterion(dry, None)
    decisions = [
        watch.observe(s, judge(dry, s, baseline_p95_s=None)) for s in (sample(0, 0.2), sample(1, 0.2))
    ]
    assert [(d.action, d.dry_run) for d in decisions] == [(Action.NONE, True), (Action.FIRE, True)]


def test_rearm_needs_fresh_consecutive_evidence_then_fires_again() -> None:
    _, actions, watch = run([0.2, 0.2, 0.2])
    assert actions == [Action.NONE, Action.FIRE, Action.NONE]
    watch.rearm()
    first = watch.observe(sample(3, 0.2), Verdict.BREACH)
    second = watch.observe(sample(4, 0.2), Verdict.BREACH)
    assert (first.action, second.action, second.fire_number) == (Action.NONE, Action.FIRE, 2)


def test_spec_sets_strictness() -> None:
    spec = MetricsSpec("q1", "q2", consecutive_breaches=3, no_data_warning_after=2)
    _, actions, _ = run([0.2, 0.2, 0.2, NO_DATA, NO_DATA], watch=CriterionWatch.for_criterion(ERRORS, spec))
    assert actions == [Action.NONE, Action.NONE, Action.FIRE, Action.NONE, Action.BLIND]


def test_judgement_reason_reaches_the_blind_warning() -> None:
    watch = CriterionWatch.for_criterion(LATENCY, None)
    for i in range(3):
        s = sample(i, 0.3)
        judgement = assess(LATENCY, s, baseline_p95_s=None)
        decision = watch.observe(s, judgement.verdict, reason=judgement.reason)
    assert (decision.action, decision.reason) == (Action.BLIND, "no baseline p95 recorded for this release")


def test_error_judged_as_data_is_refused() -> None:
    with pytest.raises(ValueError, match="provider error"):
        CriterionWatch("e").observe(sample(0, ERR), Verdict.PASS)


# --- persistence and explanation ---


def test_state_survives_a_json_round_trip_mid_streak() -> None:
    _, _, watch = run([NO_DATA, math.nan, 0.01, 0.3])
    stored = json.loads(json.dumps(watch.to_dict(), allow_nan=False))  # Postgres JSONB refuses NaN
    restored = CriterionWatch.from_dict(stored)
    assert restored == watch
    # The restarted bot continues the streak: the next breach is the second in a row.
    assert restored.observe(sample(4, 0.3), Verdict.BREACH).action is Action.FIRE


@pytest.mark.parametrize(
    "broken",
    [
        {},
        {"v": 2},
        {"v": 1, "criterion": "e"},
        {**CriterionWatch("e").to_dict(), "fires": True},
        {**CriterionWatch("e").to_dict(), "streak_since": "2024-06-01T12:00:00"},
        {**CriterionWatch("e").to_dict(), "required_breaches": 0},
    ],
)
def test_malformed_state_is_refused(broken: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"state|naive|at least 1"):
        CriterionWatch.from_dict(broken)


def test_explanation_carries_the_figures_behind_a_page() -> None:
    _, actions, watch = run([0.01, 0.02, 0.08, 0.12, 0.15, 0.18])
    assert actions[3] is Action.FIRE
    why = explain(ERRORS, watch, baseline_p95_s=None, window=timedelta(minutes=1))
    assert (why.criterion_key, why.value, why.threshold, why.limit) == ("error-rate", 0.18, 0.05, 0.05)
    assert (why.breaches_in_row, why.required_breaches) == (4, 2)
    assert why.since == T0 + timedelta(seconds=30)
    assert [p.value for p in why.trend] == [0.02, 0.08, 0.12, 0.15, 0.18]
    assert why.direction is Direction.RISING
    assert why.window == timedelta(minutes=1)
    assert why.times_baseline is None


def test_trend_direction_ignores_gaps_and_small_wobble() -> None:
    _, _, watch = run([0.10, NO_DATA, 0.104, 0.098])
    assert (
        explain(ERRORS, watch, baseline_p95_s=None, window=timedelta(minutes=1)).direction is Direction.STEADY
    )
    _, _, empty = run([NO_DATA, NO_DATA])
    assert (
        explain(ERRORS, empty, baseline_p95_s=None, window=timedelta(minutes=1)).direction
        is Direction.UNKNOWN
    )
