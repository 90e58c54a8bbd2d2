"""The bot's clock: persisted timers fired exactly once, woken by APScheduler.

The ``timers`` table is the truth. APScheduler (in memory only: its SQLAlchemyJobStore pickles function
references, silently deletes jobs whose function moved, and must not be shared between processes) merely wakes
this process at the next due time and every few seconds for a sweep. A due timer is claimed with an UPDATE that
only one process can win, then posted, then marked fired. The claim and the mark are leader-only writes: each checks
the leadership epoch in its own transaction (``SqlUnitOfWork.leader_only``), so a deposed leader claims nothing more.

A process killed between claim and outcome leaves the timer "firing". At the next start the thread is searched
for the reminder's marker (message metadata): if Slack has it, the timer is marked fired; if not, it is posted
now, late, and says so. So no reminder is lost and none is posted twice.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from apscheduler.schedulers.background import BackgroundScheduler

from bot.errors import ChatError, NotLeader
from bot.observability import TIMER_LATENESS, TIMERS_FIRED
from bot.slack import notices
from bot.slack.gateway import SlackGateway
from bot.usecases.lifecycle import STAGE_WAIT, WATCH_END, DueTimer, Lifecycle

log = logging.getLogger(__name__)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


FIRE_THREADS = 8  # reminders posted at once, each in its own channel's turn
LATE_S = 2.0  # a reminder posted later than this after its due time is logged as a warning


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

    def post(
        self,
        due: DueTimer,
        still: Callable[[], bool] | None = None,
        timings: dict[str, float] | None = None,
    ) -> str | None:
        """Post the reminder; ``still`` (whether this process still leads) is asked just before it is sent.

        ``timings`` gets ``render_s`` and the gateway's ``turn_s`` and ``call_s`` (where a reminder's time goes)."""
        began = time.monotonic()
        view = due.view
        if view.release.thread_ts is None or view.status.is_terminal:
            return None
        step = str(due.timer.payload.get("step", ""))
        who = [str(due.timer.payload.get("started_by") or "")]
        managers = tuple(
            dict.fromkeys((*self._managers, *self._service_managers.get(view.release.service, ())))
        )
        if due.timer.kind == STAGE_WAIT:
            text, blocks = notices.stage_reminder(
                view,
                step,
                self._lang,
                who=who,
                managers=managers,
                late_s=due.late_s,
                figures=self._figures(view.release.id),
                serving_since=due.timer.payload.get("serving_since"),
            )
        elif due.timer.kind == WATCH_END:
            text, blocks = notices.watch_reminder(
                view, step, self._lang, who=who, managers=managers, late_s=due.late_s
            )
        else:
            log.warning("unknown timer kind %s", due.timer.kind)
            return None
        if timings is not None:
            timings["render_s"] = time.monotonic() - began
        ts = self._gateway.post(
            view.release.channel_id,
            text,
            blocks,
            thread_ts=view.release.thread_ts,
            marker=self.marker(due),
            still=still,
            timings=timings,
        )
        for hook in self.after_post:
            try:
                hook(due, ts)
            except Exception:
                log.exception("after-post hook failed for reminder %s", due.timer.id)
        return ts

    def already_posted(self, due: DueTimer) -> str | None:
        view = due.view
        if view.release.thread_ts is None:
            return None
        return self._gateway.thread_markers(view.release.channel_id, view.release.thread_ts).get(
            self.marker(due)
        )


class Clockwork:
    """Wakes up for due timers and fires them; jobs run only while ``is_leader()`` says so."""

    def __init__(
        self,
        *,
        lifecycle: Lifecycle,
        poster: TimerPoster,
        sweep_s: float = 5.0,
        is_leader: Callable[[], bool] = lambda: True,
        worker: str | None = None,
    ) -> None:
        self._lifecycle = lifecycle
        self._poster = poster
        self._sweep_s = sweep_s
        self._is_leader = is_leader
        self._worker = worker or worker_name()
        self._lock = threading.Lock()
        self.scheduler = BackgroundScheduler(
            timezone=UTC,
            # Our jobs check lateness themselves; APScheduler must never drop a late run.
            job_defaults={"misfire_grace_time": None, "coalesce": True, "max_instances": 1},
        )

    def start(self) -> None:
        self.scheduler.add_job(
            self.tick, "interval", seconds=self._sweep_s, id="timer-sweep", replace_existing=True
        )
        self.scheduler.start()
        self.recover()
        self.wake()

    def stop(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=True)

    def add_interval(self, job_id: str, fn: Callable[[], None], seconds: float, *, overlap: int = 1) -> None:
        """Other leader-only periodic work (metric watch, outbox) shares this scheduler.

        ``overlap`` runs of the job may be under way at once (the outbox: a slow lane must not hold the rest)."""

        def guarded() -> None:
            if self._is_leader():
                fn()

        self.every(job_id, guarded, seconds, overlap=overlap)

    def every(self, job_id: str, fn: Callable[[], None], seconds: float, *, overlap: int = 1) -> None:
        """Periodic work every process runs, leader or not."""
        self.scheduler.add_job(
            fn, "interval", seconds=seconds, id=job_id, replace_existing=True, max_instances=overlap
        )

    def wake(self) -> None:
        """Re-arm the one-shot wake-up at the earliest pending due time."""
        if not self.scheduler.running:
            return
        due = self._lifecycle.next_due()
        if due is None:
            return
        run_at = max(due, datetime.now(UTC))
        self.scheduler.add_job(self.tick, "date", run_date=run_at, id="timer-wake", replace_existing=True)

    def tick(self) -> None:
        if not self._is_leader():
            return
        with self._lock:
            try:
                # Our own, left "firing" by a Slack outage.
                self._settle(self._lifecycle.interrupted_timers(self._worker))
                self._fire_due()
            except NotLeader as e:
                log.warning("timers left to the next leader: %s", e)
                return
        self.wake()

    def _fire_due(self) -> None:
        """Claim and fire the due timers, up to ``FIRE_THREADS`` at once.

        One claim per free thread, then its post: a timer is claimed only just before it is posted, while this
        process still leads, so a leader that loses the lease mid-way leaves the rest unclaimed for the next one.
        Several at once because each reminder waits for its channel's turn to post: fired one by one, 200 reminders
        due within a minute waited behind each other's channels and the last ones were 70 s late. Returns once every
        claimed timer is settled, so that no later tick takes an in-flight one for an interrupted one."""
        free = threading.Semaphore(FIRE_THREADS)
        deposed = threading.Event()

        def fire(due: DueTimer) -> None:
            try:
                self._fire(due)
            except NotLeader:
                deposed.set()
            except Exception:
                log.exception("firing timer %s failed", due.timer.id)
            finally:
                free.release()

        with ThreadPoolExecutor(FIRE_THREADS, thread_name_prefix="timer-fire") as pool:
            while self._is_leader() and not deposed.is_set():
                free.acquire()
                try:
                    won = [] if deposed.is_set() else self._lifecycle.claim_due(self._worker, limit=1)
                except BaseException:
                    free.release()
                    raise
                if not won:
                    free.release()
                    break
                pool.submit(fire, won[0])
        if deposed.is_set():
            raise NotLeader("the lease was not confirmed in time to post a reminder")

    def _fire(self, due: DueTimer) -> None:
        timings: dict[str, float] = {}
        try:
            ts = self._poster.post(due, self._is_leader, timings)
        except ChatError as e:
            if not e.retryable:
                # The channel is archived or the bot was removed: retrying would only repeat the refusal.
                log.error("reminder %s refused by Slack (%s); giving up", due.timer.id, e.code)
                self._lifecycle.timer_fired(due.timer.id, posted_ts=None, late_s=due.late_s)
                return
            # Slack is down: the claim stays "firing" and recovery posts it once Slack answers again.
            log.warning("reminder %s could not be posted (%s); will retry", due.timer.id, e.code)
            return
        # Lateness where the team sees it: Slack has the reminder now.
        posted_late_s = (self._lifecycle.now() - due.timer.due_at).total_seconds() if ts is not None else None
        recording = time.monotonic()
        self._lifecycle.timer_fired(
            due.timer.id, posted_ts=ts, late_s=due.late_s, posted_late_s=posted_late_s, timing=timings
        )
        TIMERS_FIRED.labels(kind=due.timer.kind).inc()
        TIMER_LATENESS.labels(kind=due.timer.kind).observe(max(due.late_s, 0.0))
        log.log(
            logging.WARNING if posted_late_s is not None and posted_late_s > LATE_S else logging.INFO,
            "timer %s (%s) fired: claimed %.3f s after its due time, posted %s s after it"
            " (render %.3f s, channel turn %.3f s, Slack %.3f s, record %.3f s)",
            due.timer.id,
            due.timer.kind,
            due.late_s,
            "-" if posted_late_s is None else f"{posted_late_s:.3f}",
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
                self._settle(self._lifecycle.interrupted_timers())
            except NotLeader as e:
                log.warning("interrupted timers left to the next leader: %s", e)

    def _settle(self, interrupted: list[DueTimer]) -> None:
        """Post each interrupted timer unless Slack already has it (found by its marker)."""
        for due in interrupted:
            if not self._is_leader():
                raise NotLeader("the lease was not confirmed in time")
            posted_late_s = None
            try:
                ts = self._poster.already_posted(due)
                if ts is None:
                    ts = self._poster.post(due, self._is_leader)
                    if ts is not None:
                        posted_late_s = (self._lifecycle.now() - due.timer.due_at).total_seconds()
            except ChatError as e:
                if e.retryable:
                    log.warning("recovering reminder %s failed (%s); will retry", due.timer.id, e.code)
                    continue
                log.error("reminder %s refused by Slack (%s); giving up", due.timer.id, e.code)
                ts = None
            self._lifecycle.timer_fired(
                due.timer.id, posted_ts=ts, late_s=due.late_s, posted_late_s=posted_late_s
            )
            TIMERS_FIRED.labels(kind=due.timer.kind).inc()
