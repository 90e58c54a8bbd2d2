"""The monitoring gate over a window of a release: the figures Prometheus computes over the whole window and the
watch's samples in it (``bot.domain.window``). Used by the stage gate, the live header and the watch's summary.

Must not import slack_bolt, slack_sdk, httpx or kubernetes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.domain.analysis import Sample, Verdict, gate_status
from bot.domain.checklist import MetricsSpec, MonitoringGate
from bot.domain.window import WindowReport, WindowSample, judge_window
from bot.i18n import t
from bot.ports import Clock, Metrics, Reading
from bot.usecases.incident_words import fmt_ms, fmt_rate
from bot.usecases.releases import UowFactory
from bot.usecases.watch_queries import rate_window, widen


def _sample(reading: Reading, at: datetime) -> Sample:
    return Sample(at, reading.value, reading.no_data_reason, reading.is_error)


@dataclass(frozen=True)
class WindowFigures:
    """What Prometheus says of a window: its error ratio and p95, computed over the whole window."""

    start: datetime
    end: datetime
    error_rate: Sample
    p95: Sample

    def judge(self, gate: MonitoringGate, samples: Iterable[WindowSample]) -> WindowReport:
        """The gate over the window, with the watch's samples in it."""
        return judge_window(
            gate, start=self.start, end=self.end, error_rate=self.error_rate, p95=self.p95, samples=samples
        )

    def judge_counted(self, gate: MonitoringGate, moments: int, breached: int) -> WindowReport:
        """``judge`` with the samples already counted (``breached_samples``: moments sampled, moments over)."""
        return WindowReport(self.start, self.end, gate_status(gate, self.error_rate, self.p95), moments, breached)


class GateWindow:
    """Judges the monitoring gate over ``[start, end]`` of a release."""

    def __init__(self, *, uow: UowFactory, clock: Clock, metrics: Metrics | None) -> None:
        self._uow = uow
        self._clock = clock
        self._metrics = metrics

    @property
    def enabled(self) -> bool:
        return self._metrics is not None

    def judge(
        self,
        release_id: int,
        gate: MonitoringGate,
        spec: MetricsSpec,
        start: datetime,
        end: datetime | None = None,
    ) -> WindowReport | None:
        """The gate over the window, or None without a metrics source."""
        figures = self.figures(spec, start, end)
        if figures is None:
            return None
        with self._uow() as uow:
            stored = uow.watch.samples.between(release_id, figures.start, figures.end)
        return figures.judge(gate, [WindowSample(s.at, s.metric, s.value) for s in stored])

    def figures(self, spec: MetricsSpec, start: datetime, end: datetime | None = None) -> WindowFigures | None:
        """Prometheus's figures over ``[start, end]`` (end: now at the latest), or None without a metrics source."""
        if self._metrics is None:
            return None
        now = self._clock.now()
        end = min(end or now, now)
        # A window shorter than the query's own rate window has too few scrapes for a rate: widen to that.
        length = max(end - start, rate_window(spec.error_rate_query, spec.sample_interval))
        at = None if end >= now else end
        error_rate = self._metrics.query(widen(spec.error_rate_query, length), at=at)
        p95 = self._metrics.query(widen(spec.p95_query, length), at=at)
        return WindowFigures(start, end, _sample(error_rate, end), _sample(p95, end))


def window_record(report: WindowReport, step: str) -> dict[str, Any]:
    """A JSON-safe record of a window's judgement, kept for the header and the audit trail."""
    figures = report.report
    return {
        "step": step,
        "start": report.start.isoformat(),
        "end": report.end.isoformat(),
        "verdict": report.verdict.value,
        "error_rate": figures.error_rate.value,
        "p95_s": figures.p95.value,
        "max_error_rate": figures.error_rate.limit,
        "max_p95_s": figures.p95.limit,
        "samples": report.samples,
        "breached": report.breached,
        "reasons": [r for r in (figures.error_rate.reason, figures.p95.reason) if r],
    }


_MARKS = {
    Verdict.PASS.value: ":white_check_mark:",
    Verdict.BREACH.value: ":x:",
    Verdict.NO_DATA.value: ":grey_question:",
}


def record_line(record: dict[str, Any], lang: str) -> str:
    """One line for Slack from a stored record: the window's figures against the gate, the samples over it."""
    return t(
        lang,
        "window_figures",
        mark=_MARKS.get(str(record.get("verdict")), ":grey_question:"),
        error=fmt_rate(_float(record.get("error_rate")), lang),
        p95=fmt_ms(_float(record.get("p95_s")), lang),
        max_error=fmt_rate(_float(record.get("max_error_rate")), lang),
        max_p95=fmt_ms(_float(record.get("max_p95_s")), lang),
        samples=int(record.get("samples") or 0),
        breached=int(record.get("breached") or 0),
    )


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) else None


def window_line(report: WindowReport, lang: str) -> str:
    """One line for Slack: the window's figures against the gate, and the samples over its lines."""
    return record_line(window_record(report, ""), lang)
