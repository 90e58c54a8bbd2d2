"""The monitoring gate judged over a whole window (seed 3.3 "배포 중 모니터링"), not over one moment.

A stage's figures are the window's own: the error ratio and the p95 Prometheus computes over the window (every
request of the stage counts, not the last minute's), and how many of the watch's samples in the window broke the
gate's lines. The verdict is the window figures' verdict; a figure Prometheus cannot give is NO_DATA, never a pass.

Imports only the standard library and ``bot.domain``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.domain.analysis import GateReport, Sample, Verdict, gate_status
from bot.domain.checklist import MonitoringGate

ERROR_RATE, P95 = "error_rate", "p95"


@dataclass(frozen=True)
class WindowSample:
    """One stored sample of one metric, as the window needs it."""

    at: datetime
    metric: str  # error_rate | p95
    value: float | None


@dataclass(frozen=True)
class WindowReport:
    """The gate over ``[start, end]``: the window's figures, and the samples that broke a line."""

    start: datetime
    end: datetime
    report: GateReport
    samples: int  # moments sampled (one per sample time, whichever metrics it read)
    breached: int  # of those, moments where a figure was at or over the gate's line

    @property
    def verdict(self) -> Verdict:
        return self.report.verdict

    @property
    def passed(self) -> bool:
        return self.report.passed

    @property
    def length(self) -> timedelta:
        return self.end - self.start


def breached_samples(gate: MonitoringGate, samples: Iterable[WindowSample]) -> tuple[int, int]:
    """(moments sampled, moments where the error rate or the p95 was at or over the gate's line)."""
    moments: dict[datetime, bool] = {}
    for s in samples:
        if s.metric not in (ERROR_RATE, P95):  # CPU and memory are shown, not gated
            continue
        over = False
        if s.value is not None:
            if s.metric == ERROR_RATE:
                over = s.value >= gate.max_error_rate
            elif s.metric == P95:
                over = s.value >= gate.max_p95_ms / 1000
        moments[s.at] = moments.get(s.at, False) or over
    return len(moments), sum(1 for over in moments.values() if over)


def judge_window(
    gate: MonitoringGate,
    *,
    start: datetime,
    end: datetime,
    error_rate: Sample,
    p95: Sample,
    samples: Iterable[WindowSample],
) -> WindowReport:
    """Judge the gate on the window's figures (error ratio, p95 in seconds) and count the breaching samples."""
    count, breached = breached_samples(gate, samples)
    return WindowReport(start, end, gate_status(gate, error_rate, p95), count, breached)
