"""Metric charts: a real PNG of the expected size, uploaded to the thread after a stage-end reminder, and never
in the way of the reminder's text when drawing fails."""

from __future__ import annotations

import itertools
import struct
import threading
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from bot.db.uow import SqlUnitOfWork
from bot.domain.incident import SampleRecord
from bot.slack import chart_posts
from bot.slack.charts import ChartData, render_png
from bot.slack.gateway import ChannelPacer
from tests.conftest import RunningBot, make_settings, start_bot
from tests.fakes.slack_api import FakeSlack
from tests.test_lifecycle import start, step_of, thread, to_canary

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from the IHDR chunk, after checking the signature and the chunk's CRC."""
    assert data[:8] == PNG_SIGNATURE
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and length == 13
    crc = struct.unpack(">I", data[29:33])[0]
    assert crc == zlib.crc32(data[12:29])
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def series(
    start: datetime, values: list[float | None], step_s: int = 15
) -> list[tuple[datetime, float | None]]:
    return [(start + timedelta(seconds=i * step_s), v) for i, v in enumerate(values)]


def test_chart_is_a_png_of_the_requested_size() -> None:
    t0 = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
    data = ChartData(
        title="v1.2.3 · Canary 10%",
        start=t0,
        end=t0 + timedelta(minutes=5),
        error_rate=series(t0, [0.001, 0.002, None, 0.03, 0.07, 0.08]),
        p95_s=series(t0, [0.12, 0.13, 0.15, None, 0.31, 0.35]),
        error_threshold=0.05,
        error_gate=0.01,
        baseline_p95_s=0.12,
        p95_limit_s=0.24,
        p95_gate_s=0.2,
    )
    png = render_png(data)
    assert png_size(png) == (1000, 560)
    assert png.endswith(b"IEND\xaeB`\x82")
    assert png_size(render_png(data, width_px=640, height_px=360)) == (640, 360)


def test_a_chart_without_samples_is_refused() -> None:
    t0 = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
    empty = ChartData(title="x", start=t0, end=t0, error_rate=series(t0, [None]), p95_s=[])
    with pytest.raises(ValueError, match="no samples"):
        render_png(empty)


@pytest.fixture
def charting(db_url: str, fake_slack: FakeSlack) -> Iterator[RunningBot]:
    settings = make_settings(db_url, fake_slack)
    rb = start_bot(settings, fake_slack, sync_interval_s=0.2, pacer=ChannelPacer(0.0))
    try:
        yield rb
    finally:
        rb.stop()


def _to_canary_with_samples(rb: RunningBot) -> int:
    alice = rb.user()
    start(rb, alice)
    to_canary(rb, alice)
    view = rb.services.find("C0RELEASES", "v1.4.0")
    now = datetime.now(UTC)
    factory = rb.bot.lifecycle._uow  # the bot's own unit of work: samples land where the watch keeps them
    with factory() as uow:
        assert isinstance(uow, SqlUnitOfWork)
        for i, (rate, p95) in enumerate([(0.002, 0.11), (0.004, 0.12), (0.02, 0.18)]):
            at = now + timedelta(milliseconds=10 * i)  # inside the stage window, before its reminder
            uow.watch.samples.add(SampleRecord(view.release.id, at, "error_rate", rate, "pass"))
            uow.watch.samples.add(SampleRecord(view.release.id, at, "p95", p95, "pass"))
        uow.commit()
    assert step_of(rb) == "canary-10"
    return view.release.id


def test_stage_end_reminder_carries_a_chart_in_the_thread(charting: RunningBot) -> None:
    _to_canary_with_samples(charting)
    reminder = charting.fake.wait_for(
        lambda: [m for m in thread(charting.fake) if "wait of *Canary 10%*" in m.get("text", "")], timeout=8
    )[0]
    uploaded = charting.fake.wait_for(lambda: [f for f in charting.fake.files.values() if f.completed])
    chart = uploaded[0]
    assert chart.channel == "C0RELEASES"
    assert chart.thread_ts == reminder["thread_ts"]
    assert chart.filename.endswith(".png") and chart.data is not None
    assert png_size(chart.data) == (1000, 560)


def test_a_failing_chart_does_not_stop_the_reminder(
    charting: RunningBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    charts = charting.bot.extras["dashboard"].charts
    attempts: list[str] = []

    def broken(data: ChartData) -> bytes:
        attempts.append(data.title)
        raise RuntimeError("matplotlib fell over")

    monkeypatch.setattr(charts, "_render", broken)
    _to_canary_with_samples(charting)
    reminder = charting.fake.wait_for(
        lambda: [m for m in thread(charting.fake) if "wait of *Canary 10%*" in m.get("text", "")], timeout=8
    )
    assert reminder
    charting.fake.wait_for(lambda: attempts)  # the chart was tried, after the text went out
    assert "Canary 10%" in attempts[0]
    assert not [f for f in charting.fake.files.values() if f.completed]


def test_a_chart_waits_while_reminders_are_in_flight_then_follows(charting: RunningBot) -> None:
    """Drawing takes the CPU; the reminders due with the one just posted must not wait for its chart."""
    charts = charting.bot.extras["dashboard"].charts
    assert charts.hold == charting.bot.clockwork.posting  # wired to the clock's reminders in flight
    held = threading.Event()
    held.set()
    looks: list[bool] = []

    def hold() -> bool:
        looks.append(held.is_set())
        return held.is_set()

    charts.hold = hold
    _to_canary_with_samples(charting)
    charting.fake.wait_for(
        lambda: [m for m in thread(charting.fake) if "wait of *Canary 10%*" in m.get("text", "")], timeout=8
    )
    charting.fake.wait_for(lambda: len(looks) >= 3)  # looked again, more than once, while held
    assert not [f for f in charting.fake.files.values() if f.completed]
    held.clear()
    uploaded = charting.fake.wait_for(lambda: [f for f in charting.fake.files.values() if f.completed])
    assert len(uploaded) == 1 and looks[-1] is False


def test_many_held_charts_share_one_timer_and_all_follow(charting: RunningBot) -> None:
    """Held charts look again on one timer between them, not a thread each (200 at once in the org bench)."""
    charts = charting.bot.extras["dashboard"].charts
    held = threading.Event()
    held.set()
    asked = itertools.count()

    def hold() -> bool:
        next(asked)
        return held.is_set()

    charts.hold = hold
    rid = _to_canary_with_samples(charting)
    baseline = len([f for f in charting.fake.files.values() if f.completed])  # the reminder's own, if it came
    timers_seen: list[int] = []
    asked_before = next(asked)
    for n in range(12):
        charts.post_later(rid, f"test {n}")
    for _ in range(10):
        timers_seen.append(sum(isinstance(t, threading.Timer) for t in threading.enumerate()))
        threading.Event().wait(0.05)
    assert max(timers_seen) <= 2  # the timer that just re-queued may still be finishing as the next starts
    # Each chart asks once as it is queued; then the timer asks once a look for all of them (~3 looks in 0.5 s),
    # rather than each chart going round the pool to ask again (12 a look).
    assert next(asked) - asked_before - 1 <= 12 + 6
    held.clear()
    charting.fake.wait_for(
        lambda: len([f for f in charting.fake.files.values() if f.completed]) >= baseline + 12, timeout=20
    )


def test_a_chart_held_too_long_is_drawn_anyway(charting: RunningBot, monkeypatch: pytest.MonkeyPatch) -> None:
    """Reminders that keep coming make a chart late, never lost."""
    monkeypatch.setattr(chart_posts, "HOLD_MAX_S", 0.6)
    charts = charting.bot.extras["dashboard"].charts
    looks: list[float] = []
    charts.hold = lambda: looks.append(1.0) or True
    _to_canary_with_samples(charting)
    uploaded = charting.fake.wait_for(lambda: [f for f in charting.fake.files.values() if f.completed])
    assert len(uploaded) == 1
    assert len(looks) >= 2  # it was held before it was drawn


def test_a_korean_title_never_draws_empty_boxes(monkeypatch: pytest.MonkeyPatch) -> None:
    # The suite turns warnings into errors: matplotlib warns for each glyph its font lacks.
    start = datetime(2025, 6, 1, 9, 0, tzinfo=UTC)
    data = ChartData(
        title="v1.4.0 · 카나리 10%",
        latin_title="v1.4.0 · canary-10",
        start=start,
        end=start + timedelta(minutes=2),
        error_rate=series(start, [0.01, 0.02]),
        p95_s=series(start, [0.1, 0.12]),
    )
    from bot.slack import charts

    monkeypatch.setattr(charts, "_cjk_family", lambda: None)  # a slim image: no font with Hangul
    assert png_size(render_png(data)) == (1000, 560)
    # Pretend a font had Hangul: the title is then drawn as it is, and DejaVu Sans has none.
    monkeypatch.setattr(charts, "_cjk_family", lambda: "DejaVu Sans")
    with pytest.warns(UserWarning, match="missing from font"):
        render_png(data)
