"""PNG charts of a release's error rate and p95 over a stage window, with its threshold and baseline lines.

matplotlib is imported only when a chart is drawn (it is slow to import and most processes never draw one),
and always through its Agg canvas on a private ``Figure``: pyplot's global state is not safe across the
threads that post charts.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

WIDTH_PX, HEIGHT_PX, DPI = 1000, 560, 100
Point = tuple[datetime, float | None]


@dataclass(frozen=True)
class ChartData:
    """What one chart shows: two series over a window, and the lines they are judged against."""

    title: str
    start: datetime
    end: datetime
    error_rate: Sequence[Point]  # ratios (0.05 = 5 %); None = no data at that sample
    p95_s: Sequence[Point]  # seconds
    error_threshold: float | None = None  # the rollback criterion
    error_gate: float | None = None  # the stage gate
    baseline_p95_s: float | None = None
    p95_limit_s: float | None = None  # baseline x the latency criterion's ratio
    p95_gate_s: float | None = None
    # The title in Latin letters, for a machine without a font for the title's script (a slim image has no
    # Korean font): better "v1.4.0 · canary-10" than a row of empty boxes.
    latin_title: str | None = None

    @property
    def has_data(self) -> bool:
        return any(v is not None for _t, v in self.error_rate) or any(v is not None for _t, v in self.p95_s)


def _split(points: Sequence[Point], scale: float) -> tuple[list[datetime], list[float]]:
    # A gap (no data) is drawn as a break in the line, not as a zero.
    xs = [at for at, _v in points]
    ys = [float("nan") if v is None else v * scale for _at, v in points]
    return xs, ys


def render_png(
    data: ChartData, *, width_px: int = WIDTH_PX, height_px: int = HEIGHT_PX, dpi: int = DPI
) -> bytes:
    """Draw the chart; the PNG is exactly ``width_px`` x ``height_px``. Raises ValueError without data."""
    if not data.has_data:
        raise ValueError("no samples to draw")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.dates import DateFormatter
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_px / dpi, height_px / dpi), dpi=dpi)
    FigureCanvasAgg(fig)
    top, bottom = fig.subplots(2, 1, sharex=True)
    family = None if data.title.isascii() else _cjk_family()
    if data.title.isascii() or family is not None:
        fig.suptitle(data.title, fontsize=12, fontfamily=[family or "DejaVu Sans", "DejaVu Sans"])
    else:
        fig.suptitle(data.latin_title or data.title.encode("ascii", "replace").decode(), fontsize=12)

    xs, ys = _split(data.error_rate, 100.0)
    top.plot(xs, ys, color="#1f77b4", marker="o", markersize=3, linewidth=1.5, label="error rate")
    if data.error_threshold is not None:
        top.axhline(data.error_threshold * 100, color="#d62728", linestyle="--", label="rollback threshold")
    if data.error_gate is not None:
        top.axhline(data.error_gate * 100, color="#ff7f0e", linestyle=":", label="stage gate")
    top.set_ylabel("error rate (%)")
    top.set_ylim(bottom=0)

    xs, ys = _split(data.p95_s, 1000.0)
    bottom.plot(xs, ys, color="#2ca02c", marker="o", markersize=3, linewidth=1.5, label="p95")
    if data.baseline_p95_s is not None:
        bottom.axhline(data.baseline_p95_s * 1000, color="#7f7f7f", linestyle="-.", label="baseline")
    if data.p95_limit_s is not None:
        bottom.axhline(data.p95_limit_s * 1000, color="#d62728", linestyle="--", label="rollback threshold")
    if data.p95_gate_s is not None:
        bottom.axhline(data.p95_gate_s * 1000, color="#ff7f0e", linestyle=":", label="stage gate")
    bottom.set_ylabel("p95 (ms)")
    bottom.set_ylim(bottom=0)
    bottom.set_xlim(data.start, max(data.end, data.start))
    bottom.xaxis.set_major_formatter(DateFormatter("%H:%M:%S"))  # type: ignore[no-untyped-call]
    bottom.set_xlabel("time (UTC)")
    for axes in (top, bottom):
        axes.grid(True, alpha=0.3)
        axes.legend(loc="upper left", fontsize=8)
    fig.subplots_adjust(left=0.08, right=0.98, top=0.92, bottom=0.1, hspace=0.15)
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=dpi)
    return out.getvalue()


# Fonts with Hangul (and the other CJK scripts) that Linux packages, macOS and Windows commonly install.
_CJK_FAMILIES = (
    "Noto Sans CJK KR",
    "Noto Sans KR",
    "Noto Sans CJK JP",
    "NanumGothic",
    "NanumBarunGothic",
    "Source Han Sans KR",
    "Apple SD Gothic Neo",
    "AppleGothic",
    "Malgun Gothic",
    "UnDotum",
)


def _cjk_family() -> str | None:
    """An installed font family that draws Hangul, or None."""
    from matplotlib import font_manager

    installed = {font.name for font in font_manager.fontManager.ttflist}
    return next((family for family in _CJK_FAMILIES if family in installed), None)
