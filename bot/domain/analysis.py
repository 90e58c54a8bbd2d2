"""Canary analysis: judge metric samples against rollback criteria and the monitoring gate, and decide when
a run of verdicts deserves a page.

The rules, and why (reference/anchors.md §2, §4):

- Three verdicts: PASS, BREACH, NO_DATA. An empty result, NaN, ±Inf, a negative figure, a missing baseline
  and every provider error are NO_DATA: never a pass (Argo lets errors end an analysis Successful,
  argo-rollouts#4479) and never a breach (Flagger counts silence as a failed check and rolls back quiet
  services).
- A criterion fires after K *consecutive* breaches (``MetricsSpec.consecutive_breaches``), at most once per
  release until a person re-arms it: a single blip never pages and flapping around the threshold never pages
  twice. A NO_DATA sample breaks the streak: "breach, blind, breach" is two pieces of evidence with a gap,
  not a run, and waking someone needs a run. The price is at most one sample interval of delay; a long gap is
  reported as blindness instead.
- N consecutive NO_DATA samples (``MetricsSpec.no_data_warning_after``) warn "analysis blind" once per blind
  spell; the first sample with data ends the spell (and says so), so the next spell warns again.
- A watch is a small JSON-safe dict between samples, so the bot stores it with the release and a restart
  loses nothing.

Figures are in Prometheus's units: error rate as a ratio 0..1, latency in seconds.

Imports only the standard library, ``bot.errors`` and ``bot.domain.checklist``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from bot.domain.checklist import Criterion, CriterionKind, MetricsSpec, MonitoringGate
from bot.errors import GateNotMet, MetricsError

TREND_LENGTH = 5  # samples kept for the "why" of an alert
STATE_VERSION = 1


class Verdict(StrEnum):
    """What one sample says about one criterion or gate figure."""

    PASS = "pass"
    BREACH = "breach"
    NO_DATA = "no_data"


@dataclass(frozen=True)
class Sample:
    """One metric reading at one moment; ``value`` None means no data (see ``no_data_reason``)."""

    at: datetime
    value: float | None
    no_data_reason: str | None = None
    is_error: bool = False  # the provider failed, as opposed to a quiet "no series matched"


class ReadingLike(Protocol):
    """Anything shaped like ``bot.ports.Reading`` (the domain does not import ports)."""

    @property
    def value(self) -> float | None: ...

    @property
    def no_data_reason(self) -> str | None: ...

    @property
    def is_error(self) -> bool: ...


@dataclass(frozen=True)
class Judgement:
    """A verdict with the figures behind it: ``limit`` is the breach line in the figure's unit."""

    verdict: Verdict
    value: float | None
    limit: float | None
    reason: str | None = None  # why there is no verdict, for NO_DATA


def _unusable(sample: ReadingLike) -> str | None:
    """Say why a sample cannot be judged, or return None when it can."""
    value = sample.value
    if sample.is_error:
        return sample.no_data_reason or "the metrics provider failed"
    if value is None:
        return sample.no_data_reason or "no data"
    if math.isnan(value):
        return "NaN: no traffic in the window"
    if math.isinf(value):
        return f"{value:+} is not a usable figure (check the histogram buckets)"
    if value < 0:
        return f"negative figure {value:g}: a counter reset or a broken query"
    return None


def _check_threshold(criterion: Criterion) -> float:
    if criterion.kind is CriterionKind.MANUAL:
        raise ValueError(f"criterion {criterion.key!r} is declared by a person, not judged from metrics")
    threshold = criterion.threshold
    if threshold is None or not math.isfinite(threshold) or threshold <= 0:
        raise ValueError(f"criterion {criterion.key!r} needs a positive threshold, got {threshold!r}")
    return threshold


def assess(criterion: Criterion, sample: Sample, *, baseline_p95_s: float | None) -> Judgement:
    """Judge one sample against a metric criterion and keep the figures for the explanation."""
    threshold = _check_threshold(criterion)
    if criterion.kind is CriterionKind.ERROR_RATE:
        limit = threshold
    else:
        if baseline_p95_s is None:
            return Judgement(Verdict.NO_DATA, sample.value, None, "no baseline p95 recorded for this release")
        if not math.isfinite(baseline_p95_s) or baseline_p95_s <= 0:
            raise ValueError(f"baseline p95 must be positive and finite, got {baseline_p95_s!r}")
        limit = threshold * baseline_p95_s
    reason = _unusable(sample)
    if reason is not None or sample.value is None:
        return Judgement(Verdict.NO_DATA, None, limit, reason)
    verdict = Verdict.BREACH if sample.value >= limit else Verdict.PASS
    return Judgement(verdict, sample.value, limit)


def judge(criterion: Criterion, sample: Sample, *, baseline_p95_s: float | None) -> Verdict:
    """Return PASS, BREACH or NO_DATA for one sample of a metric criterion."""
    return assess(criterion, sample, baseline_p95_s=baseline_p95_s).verdict


def baseline_from(reading: ReadingLike) -> float:
    """Validate a measured baseline p95 (seconds) before it is stored with the release."""
    reason = _unusable(reading)
    if reading.is_error:
        raise MetricsError(f"Could not measure the baseline p95: {reason}.", detail=reason)
    if reason is None and reading.value == 0:
        reason = "zero: nothing to compare against"
    if reason is not None or reading.value is None:
        raise GateNotMet(
            f"No usable baseline p95 ({reason}). Wait for traffic and try again, "
            "or set metrics.baseline_p95_ms in the checklist."
        )
    return reading.value


# --- the monitoring gate during a deploy -------------------------------------------------------------------


@dataclass(frozen=True)
class GateFigure:
    """One gate figure: passes only when strictly below ``limit``."""

    verdict: Verdict
    value: float | None
    limit: float
    reason: str | None = None


@dataclass(frozen=True)
class GateReport:
    """The monitoring gate for one moment. Error rate as a ratio, p95 in seconds."""

    error_rate: GateFigure
    p95: GateFigure

    @property
    def verdict(self) -> Verdict:
        verdicts = (self.error_rate.verdict, self.p95.verdict)
        if Verdict.BREACH in verdicts:
            return Verdict.BREACH
        if Verdict.NO_DATA in verdicts:
            return Verdict.NO_DATA
        return Verdict.PASS

    @property
    def passed(self) -> bool:
        return self.verdict is Verdict.PASS

    @property
    def undecided(self) -> bool:
        """True when a figure is missing: a gate with no data never passes silently."""
        return self.verdict is Verdict.NO_DATA


def _gate_figure(sample: Sample, limit: float) -> GateFigure:
    reason = _unusable(sample)
    if reason is not None or sample.value is None:
        return GateFigure(Verdict.NO_DATA, None, limit, reason)
    return GateFigure(Verdict.PASS if sample.value < limit else Verdict.BREACH, sample.value, limit)


def gate_status(gate: MonitoringGate, error_rate: Sample, p95: Sample) -> GateReport:
    """Judge the deploy gate (error rate < max, p95 < max ms); p95 samples are in seconds."""
    return GateReport(
        error_rate=_gate_figure(error_rate, gate.max_error_rate),
        p95=_gate_figure(p95, gate.max_p95_ms / 1000),
    )


# --- the watch: consecutive breaches, once per release, blindness -------------------------------------------


class Action(StrEnum):
    """What the caller should do after one sample."""

    NONE = "none"
    FIRE = "fire"  # K consecutive breaches: page, or only report when ``dry_run``
    BLIND = "blind"  # N samples in a row without data: warn once for this spell
    DATA_BACK = "data_back"  # data returned after a BLIND warning: update the warning


@dataclass(frozen=True)
class TrendPoint:
    """A recent figure; None where the sample had no usable data."""

    at: datetime
    value: float | None


@dataclass(frozen=True)
class Decision:
    """The outcome of feeding one verdict to a watch."""

    action: Action
    verdict: Verdict
    dry_run: bool = False
    breaches_in_row: int = 0
    no_data_in_row: int = 0
    errors_in_row: int = 0  # provider errors within the current no-data run
    reason: str | None = None  # the latest no-data reason
    fire_number: int = 0  # 1 for the first page of this criterion, 2 after one re-arm, ...
    ended_blind_spell: bool = False


@dataclass
class CriterionWatch:
    """The running state of one criterion of one release, fed one verdict per sample."""

    criterion_key: str
    required_breaches: int = 2
    blind_after: int = 3
    dry_run: bool = False
    breaches_in_row: int = 0
    no_data_in_row: int = 0
    errors_in_row: int = 0
    fired: bool = False
    fires: int = 0
    blind_warned: bool = False
    streak_since: datetime | None = None
    trend: list[TrendPoint] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.required_breaches < 1 or self.blind_after < 1:
            raise ValueError("required_breaches and blind_after must be at least 1")

    @classmethod
    def for_criterion(cls, criterion: Criterion, spec: MetricsSpec | None) -> CriterionWatch:
        """Start a watch with the checklist's strictness (defaults: 2 breaches, blind after 3)."""
        if spec is None:
            return cls(criterion.key, dry_run=criterion.dry_run)
        return cls(
            criterion.key,
            required_breaches=spec.consecutive_breaches,
            blind_after=spec.no_data_warning_after,
            dry_run=criterion.dry_run,
        )

    def observe(self, sample: Sample, verdict: Verdict, *, reason: str | None = None) -> Decision:
        """Take one judged sample and say whether to page, warn or stay quiet.

        ``reason`` is the judgement's no-data reason when it is not the sample's own (e.g. no baseline).
        """
        if sample.is_error and verdict is not Verdict.NO_DATA:
            raise ValueError("a provider error can only be judged NO_DATA")
        value = sample.value if sample.value is not None and math.isfinite(sample.value) else None
        self.trend = [*self.trend, TrendPoint(sample.at, value)][-TREND_LENGTH:]
        if verdict is Verdict.NO_DATA:
            self.breaches_in_row, self.streak_since = 0, None
            self.no_data_in_row += 1
            self.errors_in_row += int(sample.is_error)
            reason = reason or sample.no_data_reason
            if self.no_data_in_row >= self.blind_after and not self.blind_warned:
                self.blind_warned = True
                return self._decision(Action.BLIND, verdict, reason=reason)
            return self._decision(Action.NONE, verdict, reason=reason)
        ended_blind_spell = self.blind_warned
        self.no_data_in_row = self.errors_in_row = 0
        self.blind_warned = False
        quiet = Action.DATA_BACK if ended_blind_spell else Action.NONE
        if verdict is Verdict.PASS:
            self.breaches_in_row, self.streak_since = 0, None
            return self._decision(quiet, verdict, ended_blind_spell=ended_blind_spell)
        self.breaches_in_row += 1
        if self.streak_since is None:
            self.streak_since = sample.at
        if self.breaches_in_row >= self.required_breaches and not self.fired:
            self.fired = True
            self.fires += 1
            return self._decision(Action.FIRE, verdict, ended_blind_spell=ended_blind_spell)
        return self._decision(quiet, verdict, ended_blind_spell=ended_blind_spell)

    def rearm(self) -> None:
        """After "not a problem, keep watching": page again, but only on fresh consecutive evidence."""
        self.fired = False
        self.breaches_in_row, self.streak_since = 0, None

    def _decision(
        self, action: Action, verdict: Verdict, *, reason: str | None = None, ended_blind_spell: bool = False
    ) -> Decision:
        return Decision(
            action=action,
            verdict=verdict,
            dry_run=self.dry_run,
            breaches_in_row=self.breaches_in_row,
            no_data_in_row=self.no_data_in_row,
            errors_in_row=self.errors_in_row,
            reason=reason,
            fire_number=self.fires,
            ended_blind_spell=ended_blind_spell,
        )

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dict (no NaN, datetimes as ISO text) for storing between samples."""
        return {
            "v": STATE_VERSION,
            "criterion": self.criterion_key,
            **{name: getattr(self, name) for name in (*_COUNTS, *_FLAGS)},
            "streak_since": self.streak_since.isoformat() if self.streak_since else None,
            "trend": [[p.at.isoformat(), p.value] for p in self.trend],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CriterionWatch:
        """Rebuild a watch stored by ``to_dict``; raise ValueError on anything else."""
        if data.get("v") != STATE_VERSION:
            raise ValueError(f"unknown watch state version {data.get('v')!r}")
        try:
            since = data["streak_since"]
            return cls(
                criterion_key=_typed(data, "criterion", str),
                **{name: _typed(data, name, int) for name in _COUNTS},
                **{name: _typed(data, name, bool) for name in _FLAGS},
                streak_since=None if since is None else _aware(since),
                trend=[TrendPoint(_aware(at), None if v is None else float(v)) for at, v in data["trend"]],
            )
        except (KeyError, TypeError) as e:
            raise ValueError(f"malformed watch state: {e}") from e


_COUNTS = ("required_breaches", "blind_after", "breaches_in_row", "no_data_in_row", "errors_in_row", "fires")
_FLAGS = ("dry_run", "fired", "blind_warned")


def _typed(data: Mapping[str, Any], key: str, kind: type[Any]) -> Any:
    value = data[key]
    # bool is an int subclass: a stored True must not pass for a count.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise TypeError(f"{key} should be {kind.__name__}, got {value!r}")
    return value


def _aware(text: str) -> datetime:
    at = datetime.fromisoformat(text)
    if at.tzinfo is None:
        raise ValueError(f"naive datetime in watch state: {text!r}")
    return at


# --- the "why" of an alert ---------------------------------------------------------------------------------


class Direction(StrEnum):
    """Where the recent figures are heading."""

    RISING = "rising"
    FALLING = "falling"
    STEADY = "steady"
    UNKNOWN = "unknown"  # fewer than two figures with data


@dataclass(frozen=True)
class Explanation:
    """Everything an alert needs to say why it fired, as data; the Slack and PagerDuty renderers word it."""

    criterion_key: str
    criterion_title: str
    kind: CriterionKind
    value: float | None  # the latest figure: a ratio, or p95 seconds
    threshold: float  # as declared: 0.05 for 5 %, 2.0 for 2x baseline
    limit: float | None  # the breach line in the figure's unit
    baseline_p95_s: float | None
    times_baseline: float | None  # latest p95 / baseline, for latency criteria
    window: timedelta  # the query's rate window
    breaches_in_row: int
    required_breaches: int
    since: datetime | None  # first breach of the current run
    trend: tuple[TrendPoint, ...]  # oldest first
    direction: Direction
    dry_run: bool


def _direction(trend: tuple[TrendPoint, ...]) -> Direction:
    figures = [p.value for p in trend if p.value is not None]
    if len(figures) < 2:
        return Direction.UNKNOWN
    first, last = figures[0], figures[-1]
    # Within 10 % of where it started counts as steady: scrape jitter moves rates by a few percent.
    if abs(last - first) <= 0.1 * max(abs(first), abs(last)):
        return Direction.STEADY
    return Direction.RISING if last > first else Direction.FALLING


def explain(
    criterion: Criterion, watch: CriterionWatch, *, baseline_p95_s: float | None, window: timedelta
) -> Explanation:
    """Collect the figures behind a watch's latest decision."""
    threshold = _check_threshold(criterion)
    trend = tuple(watch.trend)
    value = trend[-1].value if trend else None
    limit: float | None = threshold
    times_baseline = None
    if criterion.kind is CriterionKind.LATENCY_RATIO:
        limit = threshold * baseline_p95_s if baseline_p95_s else None
        times_baseline = value / baseline_p95_s if value is not None and baseline_p95_s else None
    return Explanation(
        criterion_key=criterion.key,
        criterion_title=criterion.title,
        kind=criterion.kind,
        value=value,
        threshold=threshold,
        limit=limit,
        baseline_p95_s=baseline_p95_s,
        times_baseline=times_baseline,
        window=window,
        breaches_in_row=watch.breaches_in_row,
        required_breaches=watch.required_breaches,
        since=watch.streak_since,
        trend=trend,
        direction=_direction(trend),
        dry_run=watch.dry_run,
    )
