"""The bot's clock: persisted timers fired exactly once, woken by APScheduler.

The ``timers`` table is the truth. APScheduler (in memory only: its SQLAlchemyJobStore pickles function
references, silently deletes jobs whose function moved, and must not be shared between processes) merely wakes
this process at the next due time and every few seconds for a sweep. A due timer is claimed with an UPDATE that
only one process can win, then posted, then marked fired. The claim and the mark are leader-only writes: each checks
the leadership epoch in its own transaction (``SqlUnitOfWork.leader_only``), so a deposed leader claims nothing more.

A process killed between claim and outcome leaves the timer "firing". At the next start the thread is searched
for the reminder's marker (message metadata): if Slack has it, the timer is marked fired; if not, it is posted
now, late, and says so. So no reminder is lost and none is posted twice.

Reminders go out in per-channel lanes (``Clockwork``): one in flight a channel, the next one of a channel claimed
once its post turn is free, so no claimed reminder sleeps for a busy channel while another channel's is due. A
pass does not wait for what it claimed; the timers this process has in flight are never taken for interrupted ones
(neither by its own settling of a Slack outage's leftovers nor by ``recover`` on being elected again). The leader
also looks for an earlier due time every second, since a timer another replica schedules wakes only that replica.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.background import BackgroundScheduler

from bot.errors import ChatError, NotLeader
from bot.observability import TIMER_LATENESS, TIMERS_FIRED
from bot.slack import notices
from bot.slack.gateway import SlackGateway
from bot.usecases.lifecycle import STAGE_WAIT, WATCH_END, ClaimedTimer, DueTimer, Lifecycle

log = logging.getLogger(__name__)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


# Reminders in flight at once, each in its own channel's lane. A reminder's ~0.2 s is mostly waiting (the database,
# the gate figures' queries, Slack, its channel's turn), not CPU: with 8, some 200 reminders due within seconds
# across 50 channels queued for a thread (org bench: 1.61 s beyond Slack's pace); with 24, 0.32 s. Each holds a
# database connection only while it loads and records, so the pool (10 + 10 overflow) is not the limit.
FIRE_THREADS = 24
# How often the leader looks for a due time earlier than its wake-up (timers other replicas schedule): such a timer
# is claimed up to this late. At 1 s the org bench's claims were 0.77 s late at p50 (half its releases are on the
# other replica), which with the reminders' own work left 1.84 s at the post; an indexed min() twice a second is
# nothing beside that.
REARM_S = 0.5
# A channel's next reminder is claimed this long before its post turn comes, so that loading and rendering it
# (~0.05-0.2 s under load) overlap the wait instead of following it: claimed only once the turn had come, four
# reminders of a channel due together were each that much later than the one before (quick run: 0.6 s over the
# pace's own floor by the fourth). A thread sleeps at most this long for its turn.
TURN_LEAD_S = 0.25
LATE_S = 2.0  # a reminder posted later than this after its due time is logged as a warning
# Reminders of one channel due together go out in one message (``Clockwork.together``) when, posted one a turn,
# one of them that would be on time alone would be later than this; below ``LATE_S`` by what loading, rendering and
# posting them take (0.2-0.5 s at 200 releases). The org bench advances four releases of a channel in one second:
# one by one, at Slack's pace, the fourth was posted 3.3 s after its due time.
TOGETHER_WHEN_S = 1.5


class TimerPoster:
    """Turns a due timer into its Slack post."""

    def __init__(
        self,
        *,
        gateway: SlackGateway,
        lang: str,
        managers: tuple[str, ...],
        figures: Callable[[int], dict[str, object] | None],
        service_managers: Mapping[str, tuple[str, ...]] | None = None,
    ) -> None:
        self._gateway = gateway
        self._lang = lang
        self._managers = managers
        # A checklist's own managers are called to their service's decisions too (several checklists).
        self._service_managers = dict(service_managers or {})
        self._figures = figures
        # Called with each posted reminder and its ts (charts follow it); must return quickly.
        self.after_post: list[Callable[[DueTimer, str], None]] = []

    @staticmethod
    def marker(due: DueTimer) -> str:
        return f"timer:{due.timer.id}"

    def _render(self, due: DueTimer) -> notices.Message | None:
        """The reminder's text and blocks; None when it is not to be posted (the release ended, or has no thread)."""
        view = due.view
        if view.release.thread_ts is None or view.status.is_terminal:
            return None
        step = str(due.timer.payload.get("step", ""))
        who = [str(due.timer.payload.get("started_by") or "")]
        managers = tuple(
            dict.fromkeys((*self._managers, *self._service_managers.get(view.release.service, ())))
        )
        if due.timer.kind == STAGE_WAIT:
            return notices.stage_reminder(
                view,
                step,
                self._lang,
                who=who,
                managers=managers,
                late_s=due.late_s,
                figures=self._figures(view.release.id),
                serving_since=due.timer.payload.get("serving_since"),
            )
        if due.timer.kind == WATCH_END:
            return notices.watch_reminder(view, step, self._lang, who=who, managers=managers, late_s=due.late_s)
        log.warning("unknown timer kind %s", due.timer.kind)
        return None

    def post(
        self,
        due: DueTimer,
        still: Callable[[], bool] | None = None,
        timings: dict[str, float] | None = None,
    ) -> str | None:
        """Post the reminder in its release's thread; ``still`` (whether this process still leads) is asked just
        before it is sent.

        ``timings`` gets ``render_s`` and the gateway's ``turn_s`` and ``call_s`` (where a reminder's time goes)."""
        began = time.monotonic()
        message = self._render(due)
        if message is None:
            return None
        if timings is not None:
            timings["render_s"] = time.monotonic() - began
        return self._post_one(due, message, still, timings)

    def _post_one(
        self,
        due: DueTimer,
        message: notices.Message,
        still: Callable[[], bool] | None,
        timings: dict[str, float] | None,
    ) -> str:
        view = due.view
        ts = self._gateway.post(
            view.release.channel_id,
            message[0],
            message[1],
            thread_ts=view.release.thread_ts,
            marker=self.marker(due),
            still=still,
            timings=timings,
        )
        self._after(due, ts)
        return ts

    def post_together(
        self,
        dues: list[DueTimer],
        still: Callable[[], bool] | None = None,
        timings: dict[str, float] | None = None,
    ) -> dict[int, str | None]:
        """Post several reminders of one channel as one message in the channel (``notices.reminders_together``);
        each timer → the ts it went out in, None for one not to be posted. One left to post goes to its thread.

        The message carries every timer's marker, so that recovery finds each of them (``already_posted``)."""
        began = time.monotonic()
        rendered = [(due, self._render(due)) for due in dues]
        live = [(due, message) for due, message in rendered if message is not None]
        out: dict[int, str | None] = {due.timer.id: None for due in dues}
        if timings is not None:
            timings["render_s"] = time.monotonic() - began
        if len(live) == 1:
            out[live[0][0].timer.id] = self._post_one(*live[0], still, timings)
            return out
        if not live:
            return out
        text, blocks = notices.reminders_together([(due.view, message) for due, message in live], self._lang)
        ts = self._gateway.post(
            live[0][0].view.release.channel_id,
            text,
            blocks,
            markers=[self.marker(due) for due, _m in live],
            still=still,
            timings=timings,
        )
        for due, _message in live:
            out[due.timer.id] = ts
            self._after(due, ts)
        return out

    def _after(self, due: DueTimer, ts: str) -> None:
        for hook in self.after_post:
            try:
                hook(due, ts)
            except Exception:
                log.exception("after-post hook failed for reminder %s", due.timer.id)

    def turn_free_in(self, channel: str) -> float:
        """Seconds until a post in ``channel`` would not wait for its turn."""
        return self._gateway.turn_free_in(channel)

    @property
    def pace_s(self) -> float:
        """Seconds between two posts in one channel (Slack's one a second, kept with a margin)."""
        return self._gateway.pace_s

    def already_posted(self, due: DueTimer, channels: dict[str, dict[str, str]] | None = None) -> str | None:
        """The ts Slack has this reminder under: in its release's thread, or in a message for several reminders of
        the channel (``post_together``). ``channels`` keeps each channel's markers for the next call, so that
        settling several reminders of one channel reads its history once (conversations.history is Tier 3)."""
        view = due.view
        if view.release.thread_ts is None:
            return None
        marker = self.marker(due)
        ts = self._gateway.thread_markers(view.release.channel_id, view.release.thread_ts).get(marker)
        if ts is not None:
            return ts
        channels = {} if channels is None else channels
        if view.release.channel_id not in channels:
            channels[view.release.channel_id] = self._gateway.channel_markers(view.release.channel_id)
        return channels[view.release.channel_id].get(marker)


class Clockwork:
    """Wakes up for due timers and fires them; jobs run only while ``is_leader()`` says so.

    Reminders are fired in per-channel lanes: at most one reminder of a channel is in flight in this process, and a
    channel's next one is claimed only once its post turn is (about to be: ``TURN_LEAD_S``) free
    (``TimerPoster.turn_free_in``), so a fire thread never sleeps for its channel's turn while another channel's
    reminder is due (with eight threads and four reminders a channel due together, the threads slept behind their
    channels' posts and the rest of the org waited: 21 s late). A thread and a lane coming free claim the next due
    reminder at once (``_kick``); a channel whose turn comes later is woken for at that time."""

    def __init__(
        self,
        *,
        lifecycle: Lifecycle,
        poster: TimerPoster,
        sweep_s: float = 5.0,
        is_leader: Callable[[], bool] = lambda: True,
        worker: str | None = None,
        fire_threads: int = FIRE_THREADS,
    ) -> None:
        self._lifecycle = lifecycle
        self._poster = poster
        self._sweep_s = sweep_s
        self._is_leader = is_leader
        self._named = worker
        # One pass at a time: the claims, and the settling of interrupted timers.
        self._lock = threading.Lock()
        self._again = threading.Event()  # another pass is wanted (a lane or thread came free meanwhile)
        self._state = threading.Lock()  # guards the two below, which fire threads change
        self._lanes: set[str] = set()  # channels with a reminder (or several, in one message) in flight
        self._in_flight: set[int] = set()
        self._recent: set[str] = set()  # channels fired in whose post turn may not have come round yet
        self._threads = fire_threads
        self._pool = ThreadPoolExecutor(fire_threads, thread_name_prefix="timer-fire")
        self._stopped = False
        self._arming = threading.Lock()  # a one-shot job scheduled (``run_once``), against ``stop`` (see there)
        self.scheduler = BackgroundScheduler(
            timezone=UTC,
            # Our jobs check lateness themselves; APScheduler must never drop a late run.
            job_defaults={"misfire_grace_time": None, "coalesce": True, "max_instances": 1},
        )

    @property
    def poster(self) -> TimerPoster:
        return self._poster

    def _worker(self) -> str:
        # Read at each claim, not at build: the work process's bot is built before the fork that makes that process.
        return self._named or worker_name()

    def start(self) -> None:
        self.scheduler.add_job(
            self.tick, "interval", seconds=self._sweep_s, id="timer-sweep", replace_existing=True
        )
        # A timer another replica schedules wakes only that replica (``on_timers_changed``), not the leader: without
        # this the leader found it at its next sweep, up to ``sweep_s`` late (the org bench: claims 0-4 s late with
        # nothing else in the way). One indexed min() each ``REARM_S`` re-arms the wake-up before such a timer is due.
        self.add_interval("timer-rearm", self.wake, REARM_S)
        self.scheduler.start()
        self.recover()
        self.wake()

    def stop(self) -> None:
        with self._arming:  # after this no job schedules another (``run_once``)
            self._stopped = True
        if self.scheduler.running:
            self.scheduler.shutdown(wait=True)
        with self._lock:  # a pass under way (a lane's kick) claims nothing more once it sees ``_stopped``
            pass
        self._pool.shutdown(wait=True)  # reminders in flight are posted and recorded (or left to recovery)

    def add_interval(self, job_id: str, fn: Callable[[], None], seconds: float, *, overlap: int = 1) -> None:
        """Other leader-only periodic work (metric watch, outbox) shares this scheduler.

        ``overlap`` runs of the job may be under way at once (the outbox: a slow lane must not hold the rest)."""

        def guarded() -> None:
            if self._is_leader():
                fn()

        self.every(job_id, guarded, seconds, overlap=overlap)

    def run_once(
        self, job_id: str, fn: Callable[[], object], run_at: datetime | None = None, *, overlap: int = 1
    ) -> None:
        """Run ``fn`` once at ``run_at`` (now when None), replacing a pending run of ``job_id``; nothing once stopped.

        Jobs call this from inside their runs (the wake-up re-arms itself, the page outbox is kicked), and APScheduler
        3's ``shutdown(wait=True)`` holds its job-store lock while it waits for the jobs under way: a job that added a
        job then waited for that lock, and the shutdown for the job, for ever (seen in CI: a test's teardown hung in
        ``Clockwork.stop``). Checking ``_stopped`` first is not enough on its own (a job can pass the check just
        before ``stop`` sets it); under ``_arming`` the check and the add are one step against ``stop``."""
        with self._arming:
            if self._stopped or not self.scheduler.running:
                return
            self.scheduler.add_job(
                fn, "date", run_date=run_at, id=job_id, replace_existing=True, max_instances=overlap
            )

    def every(self, job_id: str, fn: Callable[[], None], seconds: float, *, overlap: int = 1) -> None:
        """Periodic work every process runs, leader or not."""
        self.scheduler.add_job(
            fn, "interval", seconds=seconds, id=job_id, replace_existing=True, max_instances=overlap
        )

    def _held(self) -> tuple[set[str], float | None, int]:
        """Channels not to claim in now (a reminder in flight, or their turn not yet free), the seconds until the
        first of those turns comes, and how many fire threads are free."""
        with self._state:
            busy = set(self._lanes)
            free = self._threads - len(self._in_flight)
            recent = list(self._recent)
        soonest: float | None = None
        for channel in recent:
            if channel in busy:
                continue
            wait = self._poster.turn_free_in(channel) - TURN_LEAD_S
            if wait > 0:
                busy.add(channel)
                soonest = wait if soonest is None else min(soonest, wait)
            else:
                with self._state:
                    self._recent.discard(channel)
        return busy, soonest, free

    def wake(self) -> None:
        """Re-arm the one-shot wake-up at the earliest time a pending timer can be claimed."""
        if not self.scheduler.running or self._stopped:
            return
        busy, soonest, free = self._held()
        if free <= 0:
            return  # a thread coming free claims the next one (``_kick``)
        now = datetime.now(UTC)
        due = self._lifecycle.next_due(busy)
        run_at = None if due is None else max(due, now)
        if soonest is not None:
            turn = now + timedelta(seconds=soonest)
            run_at = turn if run_at is None else min(run_at, turn)
        if run_at is None:
            return
        # Two at once: a wake re-armed for "now" from inside a running pass must not be skipped as a second instance.
        self.run_once("timer-wake", self.tick, run_at, overlap=2)

    def tick(self) -> None:
        """A pass: settle our own timers left "firing" by a Slack outage, then claim what is due in free lanes."""
        self._pass(settle=True, block=True)

    def _kick(self) -> None:
        """A lane or a thread came free: claim the next due reminder now, unless a pass under way will."""
        try:
            self._pass(settle=False, block=False)
        except Exception:  # on a fire thread, where nobody would hear of it; the sweep tries again
            log.exception("claiming the next due timers failed")

    def _pass(self, *, settle: bool, block: bool) -> None:
        self._again.set()
        while self._again.is_set():
            if not self._lock.acquire(blocking=block):
                return  # the pass under way sees ``_again`` once it is done, and goes round again
            block = False
            try:
                self._again.clear()
                if self._stopped or not self._is_leader():
                    return
                if settle:
                    settle = False
                    # Our own, left "firing" by a Slack outage.
                    self._settle(self._interrupted(self._worker()))
                self._dispatch()
            except NotLeader as e:
                log.warning("timers left to the next leader: %s", e)
                return
            finally:
                self._lock.release()
        self.wake()

    def posting(self) -> bool:
        """Whether reminders are claimed and not yet settled here (charts wait for them: ``ChartPoster.hold``)."""
        with self._state:
            return bool(self._in_flight)

    def in_flight(self) -> frozenset[int]:
        """The timers this process has claimed and not yet settled."""
        with self._state:
            return frozenset(self._in_flight)

    def _interrupted(self, worker: str | None = None) -> list[DueTimer]:
        """Timers left "firing" (``Lifecycle.interrupted_timers``) but for those this process has in flight.

        Taken under ``_lock``, so no claim is added meanwhile; the set is read before the timers, so one that
        settles meanwhile is either left out or already recorded fired."""
        with self._state:
            in_flight = set(self._in_flight)
        return self._lifecycle.interrupted_timers(worker, skip=in_flight)

    def _dispatch(self) -> None:
        """Claim due timers, earliest first, one for each free thread in as many free lanes; returns without waiting.

        Each claim is taken only just before its reminder is posted (a thread is free for it), while this process
        still leads, so a leader that loses the lease mid-way leaves the rest unclaimed for the next one. The
        release is loaded on the fire thread, not here."""
        while self._is_leader() and not self._stopped:
            busy, _soonest, free = self._held()
            if free <= 0:
                return
            won = self._lifecycle.claim_due(
                self._worker(), limit=free, skip_channels=busy, together=self.together
            )
            if not won:
                return
            lanes: dict[str, list[ClaimedTimer]] = {}
            for claimed in won:
                lanes.setdefault(claimed.channel_id, []).append(claimed)
            for channel, claims in lanes.items():
                with self._state:
                    self._lanes.add(channel)
                    self._in_flight.update(c.timer.id for c in claims)
                    self._recent.add(channel)
                self._pool.submit(self._in_lane, channel, claims)

    def together(self, channel: str, lates: list[float]) -> int:
        """How many of a channel's due reminders (how late each is, earliest first) go out in one message.

        All of them when, posted one a turn, one that would be on time alone (``TOGETHER_WHEN_S``) would be late
        for the turns of those before it; else the earliest alone, in its release's thread. Reminders late already
        (the bot was down) gain nothing from sharing a message and keep their threads."""
        turn = max(self._poster.turn_free_in(channel), 0.0)
        pace = self._poster.pace_s
        rescued = any(
            late + turn <= TOGETHER_WHEN_S < late + turn + k * pace for k, late in enumerate(lates) if k > 0
        )
        return len(lates) if rescued else 1

    def _in_lane(self, channel: str, claims: list[ClaimedTimer]) -> None:
        ids = [c.timer.id for c in claims]
        try:
            began = time.monotonic()
            dues = [self._lifecycle.due_timer(claimed) for claimed in claims]
            timings = {"load_s": time.monotonic() - began}
            if len(dues) == 1:
                self._fire(dues[0], timings)
            else:
                self._fire_together(dues, timings)
        except NotLeader as e:
            # Claimed but not recorded: the next leader settles it by its marker.
            log.warning("reminders %s left to the next leader: %s", ids, e)
        except Exception:
            # Left "firing": the sweep settles it (by its marker) as one of ours.
            log.exception("firing timers %s failed", ids)
        finally:
            with self._state:
                self._lanes.discard(channel)
                self._in_flight.difference_update(ids)
            self._kick()

    def _fire(self, due: DueTimer, timings: dict[str, float]) -> None:
        try:
            ts = self._poster.post(due, self._is_leader, timings)
        except ChatError as e:
            self._not_posted([due], e)
            return
        self._record(due, ts, self._lifecycle.now(), timings)

    def _fire_together(self, dues: list[DueTimer], timings: dict[str, float]) -> None:
        try:
            posted = self._poster.post_together(dues, self._is_leader, timings)
        except ChatError as e:
            self._not_posted(dues, e)
            return
        at = self._lifecycle.now()
        went = sum(ts is not None for ts in posted.values())
        for due in dues:
            self._record(due, posted.get(due.timer.id), at, timings, together=went if went > 1 else None)

    def _not_posted(self, dues: list[DueTimer], e: ChatError) -> None:
        for due in dues:
            if not e.retryable:
                # The channel is archived or the bot was removed: retrying would only repeat the refusal.
                log.error("reminder %s refused by Slack (%s); giving up", due.timer.id, e.code)
                self._lifecycle.timer_fired(due.timer.id, posted_ts=None, late_s=due.late_s, refused=e.code)
            else:
                # Slack is down: the claim stays "firing" and recovery posts it once Slack answers again.
                log.warning("reminder %s could not be posted (%s); will retry", due.timer.id, e.code)

    def _record(
        self,
        due: DueTimer,
        ts: str | None,
        posted_at: datetime,
        timings: dict[str, float],
        *,
        together: int | None = None,
    ) -> None:
        # Lateness where the team sees it: when Slack had the reminder.
        posted_late_s = (posted_at - due.timer.due_at).total_seconds() if ts is not None else None
        recording = time.monotonic()
        self._lifecycle.timer_fired(
            due.timer.id,
            posted_ts=ts,
            late_s=due.late_s,
            posted_late_s=posted_late_s,
            timing=timings,
            together=together,
        )
        TIMERS_FIRED.labels(kind=due.timer.kind).inc()
        TIMER_LATENESS.labels(kind=due.timer.kind).observe(max(due.late_s, 0.0))
        log.log(
            logging.WARNING if posted_late_s is not None and posted_late_s > LATE_S else logging.INFO,
            "timer %s (%s) fired: claimed %.3f s after its due time, posted %s s after it"
            " (load %.3f s, render %.3f s, channel turn %.3f s, Slack %.3f s, record %.3f s)",
            due.timer.id,
            due.timer.kind,
            due.late_s,
            "-" if posted_late_s is None else f"{posted_late_s:.3f}",
            timings.get("load_s", 0.0),
            timings.get("render_s", 0.0),
            timings.get("turn_s", 0.0),
            timings.get("call_s", 0.0),
            time.monotonic() - recording,
        )

    def recover(self) -> None:
        """Settle timers a dead process claimed but never finished; called on start and on becoming leader."""
        if not self._is_leader():
            return
        with self._lock:
            try:
                # Not those this process has in flight (a leader elected again while its own are being posted).
                self._settle(self._interrupted())
            except NotLeader as e:
                log.warning("interrupted timers left to the next leader: %s", e)

    def _settle(self, interrupted: list[DueTimer]) -> None:
        """Post each interrupted timer unless Slack already has it (found by its marker)."""
        channels: dict[str, dict[str, str]] = {}  # each channel's markers, read once a settling
        for due in interrupted:
            if not self._is_leader():
                raise NotLeader("the lease was not confirmed in time")
            posted_late_s = None
            refused: str | None = None
            try:
                ts = self._poster.already_posted(due, channels)
                if ts is None:
                    ts = self._poster.post(due, self._is_leader)
                    if ts is not None:
                        posted_late_s = (self._lifecycle.now() - due.timer.due_at).total_seconds()
            except ChatError as e:
                if e.retryable:
                    log.warning("recovering reminder %s failed (%s); will retry", due.timer.id, e.code)
                    continue
                log.error("reminder %s refused by Slack (%s); giving up", due.timer.id, e.code)
                ts, refused = None, e.code
            self._lifecycle.timer_fired(
                due.timer.id, posted_ts=ts, late_s=due.late_s, posted_late_s=posted_late_s, refused=refused
            )
            TIMERS_FIRED.labels(kind=due.timer.kind).inc()
