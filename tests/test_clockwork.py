"""The clock's dispatch of due reminders: per-channel lanes, exactly once, leader fencing, Slack outages.

The real ``Clockwork`` over an in-memory stand-in for the timers (``Timers``: the claim is its one lock, as the
database's UPDATE is) and a poster that posts through the real ``SlackGateway`` and ``ChannelPacer`` to the fake
Slack, which enforces chat.postMessage at 1/s per channel. Nothing here asserts a duration: order and counts only.
"""

from __future__ import annotations

import io
import json
import logging
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any, cast

import pytest
from slack_sdk import WebClient

from bot.domain.records import TimerRecord
from bot.errors import ChatError, NotLeader
from bot.runtime.clockwork import Clockwork, TimerPoster
from bot.slack.gateway import ChannelPacer, SlackGateway
from bot.usecases.lifecycle import ClaimedTimer, DueTimer, Lifecycle
from tests.fakes.slack_api import FakeSlack
from tests.slack_user import BOT_TOKEN

WORKER = "test:1"


class Timers:
    """What ``Clockwork`` asks of ``Lifecycle``, in memory; ``channel_of`` maps a release to its channel."""

    def __init__(self, channel_of: dict[int, str], *, leads: Callable[[], bool] = lambda: True) -> None:
        self.channel_of = channel_of
        self.rows: dict[int, TimerRecord] = {}
        self.fired: list[tuple[int, str | None, float, float | None]] = []
        self.refused: dict[int, str] = {}  # timer → Slack's error code, for a post it refused for good
        self.together: dict[int, int] = {}  # timer → how many reminders went in its message, when several did
        self._lock = threading.Lock()
        self._leads = leads

    def add(self, timer_id: int, release_id: int, due_at: datetime) -> None:
        self.rows[timer_id] = TimerRecord(
            timer_id, release_id, "stage_wait", f"t{timer_id}", due_at, "pending", {"step": "canary-10"}
        )

    def status(self, timer_id: int) -> str:
        return self.rows[timer_id].status

    def now(self) -> datetime:
        return datetime.now(UTC)

    def _due(self, skip: Collection[str]) -> list[TimerRecord]:
        pending = [t for t in self.rows.values() if t.status == "pending"]
        return sorted(
            (t for t in pending if self.channel_of[t.release_id] not in skip), key=lambda t: (t.due_at, t.id)
        )

    def next_due(self, skip_channels: Collection[str] = ()) -> datetime | None:
        with self._lock:
            due = self._due(skip_channels)
        return due[0].due_at if due else None

    def _view(self, timer: TimerRecord) -> DueTimer:
        release = SimpleNamespace(id=timer.release_id, channel_id=self.channel_of[timer.release_id])
        view = SimpleNamespace(release=release)
        return DueTimer(timer, cast(Any, view), (self.now() - timer.due_at).total_seconds())

    def claim_due(
        self,
        worker: str,
        limit: int = 20,
        skip_channels: Collection[str] = (),
        together: Callable[[str, list[float]], int] | None = None,
    ) -> list[ClaimedTimer]:
        now = self.now()
        won: dict[str, list[TimerRecord]] = {}
        with self._lock:
            if not self._leads():
                raise NotLeader("not leading")
            for t in self._due(skip_channels):  # each channel's due ones, earliest first
                channel = self.channel_of[t.release_id]
                if t.due_at <= now and (channel in won or len(won) < limit):
                    won.setdefault(channel, []).append(t)
            for channel, due in won.items():
                lates = [(now - t.due_at).total_seconds() for t in due]
                take = 1 if together is None or len(due) == 1 else together(channel, lates)
                won[channel] = due[:take]
                for t in won[channel]:
                    self.rows[t.id] = replace(t, status="firing", claimed_by=worker)
        return [
            ClaimedTimer(self.rows[t.id], c, (now - t.due_at).total_seconds()) for c, ts in won.items() for t in ts
        ]

    def due_timer(self, claimed: ClaimedTimer) -> DueTimer:
        return replace(self._view(claimed.timer), late_s=claimed.late_s)

    def interrupted_timers(self, worker: str | None = None, skip: Collection[int] = ()) -> list[DueTimer]:
        with self._lock:
            firing = [
                t
                for t in self.rows.values()
                if t.status == "firing" and worker in (None, t.claimed_by) and t.id not in skip
            ]
            return [self._view(t) for t in firing]

    def timer_fired(
        self,
        timer_id: int,
        *,
        posted_ts: str | None,
        late_s: float,
        posted_late_s: float | None = None,
        timing: Mapping[str, float] | None = None,
        refused: str | None = None,
        together: int | None = None,
    ) -> None:
        with self._lock:
            if not self._leads():
                raise NotLeader("not leading")
            self.rows[timer_id] = replace(self.rows[timer_id], status="fired")
            self.fired.append((timer_id, posted_ts, late_s, posted_late_s))
            if refused is not None:
                self.refused[timer_id] = refused
            if together is not None:
                self.together[timer_id] = together


class Poster:
    """Posts ``timer <id>`` into the release's channel through the real gateway (paced per channel)."""

    def __init__(self, gateway: SlackGateway) -> None:
        self.gateway = gateway
        self.posted: list[int] = []
        self.before_post: Callable[[DueTimer], None] = lambda due: None
        self.markers: dict[str, str] = {}
        self.together: list[list[int]] = []  # the timers of each message that carried several

    def post(
        self, due: DueTimer, still: Callable[[], bool] | None = None, timings: dict[str, float] | None = None
    ) -> str | None:
        self.before_post(due)
        marker = TimerPoster.marker(due)
        ts = self.gateway.post(
            due.view.release.channel_id, f"timer {due.timer.id}", marker=marker, still=still, timings=timings
        )
        self.posted.append(due.timer.id)
        self.markers[marker] = ts
        return ts

    def post_together(
        self, dues: list[DueTimer], still: Callable[[], bool] | None = None, timings: dict[str, float] | None = None
    ) -> dict[int, str | None]:
        for due in dues:
            self.before_post(due)
        markers = [TimerPoster.marker(due) for due in dues]
        ts = self.gateway.post(
            dues[0].view.release.channel_id,
            "timers " + " ".join(str(due.timer.id) for due in dues),
            markers=markers,
            still=still,
            timings=timings,
        )
        self.posted += [due.timer.id for due in dues]
        self.together.append([due.timer.id for due in dues])
        self.markers |= dict.fromkeys(markers, ts)
        return {due.timer.id: ts for due in dues}

    def turn_free_in(self, channel: str) -> float:
        return self.gateway.turn_free_in(channel)

    @property
    def pace_s(self) -> float:
        return self.gateway.pace_s

    def already_posted(self, due: DueTimer, channels: dict[str, dict[str, str]] | None = None) -> str | None:
        return self.markers.get(TimerPoster.marker(due))


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        fake.enforce_rate_limits()  # chat.postMessage: 1 a second per channel, as Slack
        yield fake


def clock_over(
    timers: Timers, slack: FakeSlack, *, threads: int, leads: Callable[[], bool] = lambda: True
) -> tuple[Clockwork, Poster]:
    client = WebClient(token=BOT_TOKEN, base_url=slack.base_url, timeout=5)
    poster = Poster(SlackGateway(client, pacer=ChannelPacer()))
    clock = Clockwork(
        lifecycle=cast(Lifecycle, timers),
        poster=cast(TimerPoster, poster),
        sweep_s=0.2,
        is_leader=leads,
        worker=WORKER,
        fire_threads=threads,
    )
    return clock, poster


def one_due(slack: FakeSlack) -> tuple[Timers, Clockwork, Poster]:
    """One reminder (timer 1) due a second ago in one channel, and a clock over it with two fire threads."""
    timers = Timers({1: "C0AAAAAAA"})
    timers.add(1, 1, datetime.now(UTC) - timedelta(seconds=1))
    clock, poster = clock_over(timers, slack, threads=2)
    return timers, clock, poster


def wait_until(what: Callable[[], bool], timeout_s: float = 20.0) -> None:
    done = threading.Event()
    deadline = datetime.now(UTC) + timedelta(seconds=timeout_s)
    while not what():
        assert datetime.now(UTC) < deadline, "not reached in time"
        done.wait(0.02)


def test_a_busy_channel_does_not_hold_up_another_channels_due_reminder(slack: FakeSlack) -> None:
    """Three reminders of channel A due together, then one of B: with one fire thread, B's goes out while A waits
    for its next post turn, not after all of A's (which the old dispatch did: its thread slept for A's turns).

    A's are 5 s overdue (the bot was down), so they keep their own posts (``Clockwork.together``)."""
    timers = Timers({1: "C0AAAAAAA", 2: "C0AAAAAAA", 3: "C0AAAAAAA", 4: "C0BBBBBBB"})
    due = datetime.now(UTC) - timedelta(seconds=5)
    for n in (1, 2, 3):
        timers.add(n, n, due)
    timers.add(4, 4, due + timedelta(milliseconds=1))  # the last by due time
    clock, poster = clock_over(timers, slack, threads=1)
    clock.start()
    try:
        wait_until(lambda: len(timers.fired) == 4)
    finally:
        clock.stop()
    assert poster.posted[:2] == [1, 4]
    assert sorted(poster.posted) == [1, 2, 3, 4]
    assert poster.together == []
    assert not slack.rate_limited()
    # Both lateness figures are kept, the one at the post never before the one at the claim.
    assert all(posted is not None and posted >= claim for _, _, claim, posted in timers.fired)


def due_together(slack: FakeSlack, count: int, *, late_s: float) -> tuple[Timers, Poster]:
    """``count`` reminders of channel A due at one time (``late_s`` ago; negative: still to come), and one of B
    just after; run the clock (two fire threads) until all are settled."""
    channels = dict.fromkeys(range(1, count + 1), "C0AAAAAAA") | {count + 1: "C0BBBBBBB"}
    timers = Timers(channels)
    due = datetime.now(UTC) - timedelta(seconds=late_s)
    for n in range(1, count + 1):
        timers.add(n, n, due)
    timers.add(count + 1, count + 1, due + timedelta(milliseconds=1))
    clock, poster = clock_over(timers, slack, threads=2)
    clock.start()
    try:
        wait_until(lambda: len(timers.fired) == count + 1)
    finally:
        clock.stop()
    assert sorted(poster.posted) == list(range(1, count + 2))
    assert not slack.rate_limited()
    return timers, poster


def test_reminders_of_a_channel_due_at_once_go_out_in_one_message_when_one_a_turn_would_make_them_late(
    slack: FakeSlack,
) -> None:
    """Four of A due in the same instant: at Slack's one post a second per channel the fourth would wait three
    turns, so all four go in one post; B's, in another channel, in its own."""
    timers, poster = due_together(slack, 4, late_s=-0.3)
    assert poster.together == [[1, 2, 3, 4]]
    posts = [c.params for c in slack.calls("chat.postMessage")]
    assert [p["channel"] for p in posts].count("C0AAAAAAA") == 1
    ts = {timer: posted for timer, posted, _claim, _post in timers.fired}
    assert ts[1] == ts[2] == ts[3] == ts[4] != ts[5]
    assert timers.together == {1: 4, 2: 4, 3: 4, 4: 4}
    # The one post carries every timer's marker, for recovery to find each (``TimerPoster.already_posted``).
    metadata = next(p for p in posts if p["channel"] == "C0AAAAAAA")["metadata"]
    metadata = json.loads(metadata) if isinstance(metadata, str) else metadata
    assert metadata["event_payload"]["markers"].split() == [f"timer:{n}" for n in (1, 2, 3, 4)]


def test_two_reminders_of_a_channel_due_at_once_each_keep_their_own_post(slack: FakeSlack) -> None:
    """The second of two waits one turn (1.1 s): on time still, so each goes to its own release's thread."""
    timers, poster = due_together(slack, 2, late_s=-0.3)
    assert poster.together == []
    assert [c.params["channel"] for c in slack.calls("chat.postMessage")].count("C0AAAAAAA") == 2
    assert len({posted for _t, posted, _c, _p in timers.fired}) == 3


def test_reminders_late_already_keep_their_own_posts(slack: FakeSlack) -> None:
    """Three of A ten seconds overdue (the bot was down): one message would not make them on time, so they keep
    their threads, one a turn."""
    _timers, poster = due_together(slack, 3, late_s=10)
    assert poster.together == []
    assert [c.params["channel"] for c in slack.calls("chat.postMessage")].count("C0AAAAAAA") == 3


def test_a_reminder_in_flight_is_not_settled_again_as_an_interrupted_one(slack: FakeSlack) -> None:
    """A pass does not wait for what it claimed, so the next one (which settles our own leftovers of a Slack
    outage, and ``recover``) sees the timer "firing" while its post is under way: it must leave it alone."""
    timers, clock, poster = one_due(slack)
    posting, go_on = threading.Event(), threading.Event()

    def hold(due: DueTimer) -> None:
        posting.set()
        go_on.wait(10)

    poster.before_post = hold
    clock.start()
    try:
        assert posting.wait(10)
        assert timers.status(1) == "firing"
        clock.tick()  # settles our own "firing" timers
        clock.recover()  # settles everyone's
        go_on.set()
        wait_until(lambda: timers.status(1) == "fired")
    finally:
        go_on.set()
        clock.stop()
    assert poster.posted == [1]
    assert [f[0] for f in timers.fired] == [1]
    assert len(slack.calls("chat.postMessage")) == 1


def test_a_leader_deposed_mid_way_leaves_the_rest_unclaimed(slack: FakeSlack) -> None:
    leading = threading.Event()
    leading.set()
    timers = Timers({n: f"C0CHAN000{n}" for n in range(1, 6)}, leads=leading.is_set)
    due = datetime.now(UTC) - timedelta(seconds=1)
    for n in range(1, 6):
        timers.add(n, n, due + timedelta(milliseconds=n))
    clock, poster = clock_over(timers, slack, threads=1, leads=leading.is_set)

    def depose_after_the_first(due: DueTimer) -> None:
        leading.clear()
        raise NotLeader("the lease was not confirmed in time to post")

    poster.before_post = depose_after_the_first
    clock.start()
    try:
        wait_until(lambda: timers.status(1) == "firing" and not clock.in_flight())
        clock.tick()
    finally:
        clock.stop()
    # The one claimed stays "firing" for the next leader to settle by its marker; the rest were never claimed.
    assert [timers.status(n) for n in range(1, 6)] == ["firing", "pending", "pending", "pending", "pending"]
    assert not slack.calls("chat.postMessage")


def test_slack_down_leaves_the_claim_firing_and_it_is_posted_once_slack_is_back(slack: FakeSlack) -> None:
    timers, clock, poster = one_due(slack)
    attempts = []

    def down_once(due: DueTimer) -> None:
        attempts.append(due.timer.id)
        if len(attempts) == 1:
            raise ChatError("post_failed", code="unreachable", retryable=True)

    poster.before_post = down_once
    clock.start()  # the sweep (every 0.2 s here) settles our own "firing" leftovers
    try:
        wait_until(lambda: timers.status(1) == "fired")
    finally:
        clock.stop()
    assert attempts == [1, 1]
    assert poster.posted == [1]
    assert [f[0] for f in timers.fired] == [1]


def test_a_periodic_run_that_outlasts_its_interval_is_skipped_without_a_warning_a_time(
    slack: FakeSlack, json_log: io.StringIO
) -> None:
    """The clock's one-second re-arm outlasted its second under load, and APScheduler logged each skip as a warning:
    one a second per replica. The skip is by design (never two runs of a job at once); the warnings that mean
    something must not drown in it."""
    clock, _ = clock_over(Timers({}), slack, threads=1)
    release = threading.Event()
    runs: list[float] = []

    def slow() -> None:
        runs.append(time.monotonic())
        release.wait(5)

    clock.every("slow", slow, 0.05)
    clock.scheduler.start()
    try:
        wait_until(lambda: len(runs) == 1)
        time.sleep(0.5)  # ten intervals while the first run is still under way
        assert len(runs) == 1  # skipped, not doubled
        logging.getLogger("bot.runtime.clockwork").warning("a warning that means something")
    finally:
        release.set()
        clock.scheduler.shutdown(wait=True)
    lines = [json.loads(line) for line in json_log.getvalue().splitlines()]
    assert [line["message"] for line in lines if line["level"] == "WARNING"] == ["a warning that means something"]


class StallingTimers(Timers):
    """``next_due`` stalls, once asked to, until let go: holds the one-second re-arm inside ``wake``."""

    def __init__(self, channel_of: dict[int, str]) -> None:
        super().__init__(channel_of)
        self.stall = threading.Event()
        self.stalled = threading.Event()
        self.go_on = threading.Event()

    def next_due(self, skip_channels: Collection[str] = ()) -> datetime | None:
        if self.stall.is_set():
            self.stalled.set()
            self.go_on.wait(10)
        return super().next_due(skip_channels)


def test_stop_while_a_job_is_about_to_schedule_another_does_not_hang(slack: FakeSlack) -> None:
    """The re-arm passed its ``_stopped`` check, then asked APScheduler to add the wake-up while ``stop`` was in
    ``shutdown(wait=True)``, which holds the job-store lock while it waits for that very job: both waited for ever
    (a CI run's teardown hung there). Now the wake-up is not added once ``stop`` has begun, and ``stop`` returns."""
    timers = StallingTimers({1: "C0AAAAAAA"})
    timers.add(1, 1, datetime.now(UTC) + timedelta(hours=1))  # pending: the re-arm has a due time to arm
    clock, _ = clock_over(timers, slack, threads=1)
    clock.start()
    timers.stall.set()
    assert timers.stalled.wait(5)  # the re-arm is inside wake, past its check
    stopping = threading.Thread(target=clock.stop, daemon=True)
    stopping.start()
    time.sleep(0.3)  # stop is in shutdown, holding the job-store lock, waiting for the re-arm
    timers.go_on.set()
    stopping.join(10)
    assert not stopping.is_alive()
    assert not clock.scheduler.running


def test_a_post_slack_refuses_for_good_is_given_up_once_with_slacks_reason(slack: FakeSlack) -> None:
    """An archived channel (or the bot removed) will refuse every retry: the reminder is settled at once, not left
    "firing" for the sweep to try again, and the record keeps Slack's reason."""
    timers, clock, poster = one_due(slack)
    attempts = []

    def archived(due: DueTimer) -> None:
        attempts.append(due.timer.id)
        raise ChatError("post_failed", code="is_archived", retryable=False)

    poster.before_post = archived
    clock.start()
    try:
        wait_until(lambda: timers.status(1) == "fired")
        clock.tick()  # a later pass finds nothing of ours left to settle
    finally:
        clock.stop()
    assert attempts == [1]
    assert [(f[0], f[1], f[3]) for f in timers.fired] == [(1, None, None)]  # recorded once, nothing posted
    assert timers.refused == {1: "is_archived"}
    assert not slack.calls("chat.postMessage")


def test_posting_is_true_from_a_reminders_claim_until_it_is_settled(slack: FakeSlack) -> None:
    """What charts wait on (``ChartPoster.hold``): a reminder claimed and not yet settled."""
    timers, clock, poster = one_due(slack)
    seen: list[bool] = []
    poster.before_post = lambda due: seen.append(clock.posting())
    assert not clock.posting()
    clock.start()
    try:
        wait_until(lambda: timers.status(1) == "fired")
        wait_until(lambda: not clock.in_flight())
    finally:
        clock.stop()
    assert seen == [True]
    assert not clock.posting()
