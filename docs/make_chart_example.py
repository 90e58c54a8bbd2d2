"""Draw docs/chart-example.png with the bot's own chart code (``bot.slack.charts.render_png``).

The figures are a made-up canary stage: error rate and p95 rise after the 10 % stage starts until the error rate
crosses the rollback threshold. Run: ``python docs/make_chart_example.py``.
"""

from __future__ import annotations

import math
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.slack.charts import ChartData, render_png

OUT = Path(__file__).resolve().parent / "chart-example.png"


def main() -> None:
    start = datetime(2025, 6, 1, 14, 0, tzinfo=UTC)
    samples = 60  # 15 minutes at one sample every 15 s
    at = [start + timedelta(seconds=15 * i) for i in range(samples)]
    error_rate: list[float | None] = []
    p95: list[float | None] = []
    for i in range(samples):
        drift = max(0, i - 35) / 25  # the bad change starts to bite two thirds of the way in
        error_rate.append(0.004 + 0.002 * math.sin(i / 3) + 0.06 * drift**1.5)
        p95.append(0.14 + 0.01 * math.cos(i / 4) + 0.2 * drift)
    error_rate[20] = p95[20] = None  # one scrape with no data: drawn as a gap, never as zero
    data = ChartData(
        title="v1.2.3 · Canary 10%",
        start=at[0],
        end=at[-1],
        error_rate=list(zip(at, error_rate, strict=True)),
        p95_s=list(zip(at, p95, strict=True)),
        error_threshold=0.05,
        error_gate=0.01,
        baseline_p95_s=0.14,
        p95_limit_s=0.28,
        p95_gate_s=0.2,  # the seed's gate: p95 < 200 ms
    )
    OUT.write_bytes(render_png(data))
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
