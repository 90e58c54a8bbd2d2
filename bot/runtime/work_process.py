"""``release-bot serve`` as two processes: one that answers Slack, and one that does the work behind the answers.

Slack gives a request 3 s, and Bolt answers only once the listener has acked. In one process the acks share a
GIL and two cores with everything after them: applying a click is a write transaction, a redraw renders and
sends a whole message, and the clock and the metric watch run beside them. Under a burst of clicks the acks
queued behind that work (the bench measured click p99 at 2.3-4.4x a bare Bolt app at 10 concurrent clicks,
and 0.92-1.13x once the work was taken out).

So the serving process verifies, parses and acks, and hands each verified payload whose work it would have
deferred to a forked work process. The work process re-dispatches the payload through its own Bolt app, as
Socket Mode delivers payloads (already verified, no HTTP), and that app's listeners run the work there. The work
process also runs the clock, the metric watch, the outbox and the leader election, at a lower CPU priority: the
acks are the only work with a deadline. Its low-priority transactions also wait while acks are in flight
(``bot.runtime.ack_gate``), so that the database's share of the work does not compete with them either.

The two are one unit: the work process dies with the serving process (``PR_SET_PDEATHSIG``), and the serving
process stops when the work process dies, so the orchestrator restarts both. On SIGTERM the serving process stops
taking requests, closes the pipe, and waits while the work process finishes what it was handed, for what is left of
the shutdown budget (``bot.runtime.server.SHUTDOWN_S``); then it kills it. The work process beats a shared heartbeat
(``bot.runtime.heartbeat``) from its clock, which ``/livez`` reads.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import logging
import multiprocessing
import os
import pickle
import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from multiprocessing.connection import Connection
from typing import Any, NoReturn, TypeVar

from bot.config import Settings
from bot.errors import ReleaseBotError
from bot.observability import request_id
from bot.runtime.ack_gate import AckGate
from bot.runtime.hand_off import WorkChannel
from bot.runtime.heartbeat import Heartbeat
from bot.runtime.leader import PostgresLeader, SqliteLeader

log = logging.getLogger(__name__)

# The work process's click work runs under SCHED_IDLE (Linux) at nice 19 (see _lower_priority). Measured with
# bench/run.py at c=50: click p99 ÷ floor 1.58 at nice 19 alone, 1.27 with SCHED_IDLE; nice 5 was worse still.
WORK_NICE = 19
_PR_SET_PDEATHSIG = 1
_F_SETPIPE_SZ = 1031
PIPE_BYTES = 1 << 20  # Linux's default pipe-max-size

T = TypeVar("T")


class Child:
    """A forked child that exactly one thread, the reaper, waits for and reaps; nothing else calls ``waitpid``.

    Two waiters race for the exit status: the loser takes a child that has exited for one that has not, and may
    then signal its pid, which by then can name another process (``serve`` once logged "did not finish; killing it"
    0.3 s after a clean stop this way). The reaper waits without reaping first (``WNOWAIT``) and reaps holding
    ``_reaping``; ``kill`` signals only under that lock, before the reap: the pid it signals is still this child's,
    at worst as a zombie. ``on_exit(exitcode)`` runs on the reaper's thread."""

    def __init__(self, pid: int, on_exit: Callable[[int], None] = lambda _code: None) -> None:
        self.pid = pid
        self.exitcode: int | None = None
        self._exited = threading.Event()
        self._reaping = threading.Lock()
        threading.Thread(target=self._reap, args=(on_exit,), name="child-reaper", daemon=True).start()

    def _reap(self, on_exit: Callable[[int], None]) -> None:
        with contextlib.suppress(ChildProcessError):
            os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOWAIT)  # it exited, and stays ours until reaped
        with self._reaping:
            _, status = os.waitpid(self.pid, 0)
            self.exitcode = os.waitstatus_to_exitcode(status)
            self._exited.set()
        on_exit(self.exitcode)

    @property
    def exited(self) -> bool:
        return self._exited.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Whether it has exited (and been reaped) within ``timeout``."""
        return self._exited.wait(timeout)

    def kill(self) -> None:
        """SIGKILL it, unless it has been reaped already."""
        with self._reaping:
            if not self._exited.is_set():
                os.kill(self.pid, signal.SIGKILL)


class WorkProcess:
    """Starts and supervises the work process from the serving process."""

    def __init__(
        self,
        settings: Settings,
        leader: SqliteLeader | PostgresLeader,
        gate: AckGate,
        build: Callable[..., Any],
    ) -> None:
        """``build`` is the composition root's ``build``, passed in so that this module does not import it."""
        self._settings = settings
        self._build = build
        self._leader = leader
        self._gate = gate
        self.heartbeat = Heartbeat()  # before the fork: the work process beats, this process reads
        self.channel: WorkChannel | None = None
        self._pipe: tuple[Connection, Connection] | None = None
        self._child: Child | None = None
        self._ready: Any = None
        self._stopping = False
        self._bot: Any = None

    def open_channel(self) -> WorkChannel:
        """The serving end of the pipe, before the fork: the serving bot is built on it first (bot.runtime.server),
        so that the work process inherits what that build warmed up instead of copying it page by page."""
        if self.channel is None:
            self._pipe = multiprocessing.Pipe(duplex=False)
            self._ready = multiprocessing.Event()
            _widen(self._pipe[1])
            self.channel = WorkChannel(self._pipe[1], self.ready, self.heartbeat.stalled)
        return self.channel

    def build_bot(self) -> None:
        """Build the work process's bot here, before the fork; the work process starts it.

        Building writes into pages the imports left (reference counts, first-use caches, the free slots of the
        allocator's pools), and a page either process writes after the fork is copied. Built here, beside the
        serving bot, it writes mostly pages that build already wrote (+0.2 MB), and the work process inherits
        it ready: idle PSS of the two 72.0 MB built there, 69.7 MB built here (SQLite; bench/RESULTS.md). This process
        keeps it unused (dropping it would write into its pages again). Building starts no thread and connects
        nothing (tests/test_lazy_imports.py), so no part of it belongs to this process."""
        if self._bot is None:
            self._bot = self._build(
                self._settings,
                leader=self._leader,
                heartbeat=self.heartbeat,
                answer_in_listener=True,
                work_pool=BoundedPool(3, 6),
            )
            self._gate.hold_low_priority_transactions(self._bot.engine)  # before any of the engine's threads

    def start(self, on_exit: Callable[[int], None]) -> WorkChannel:
        """Fork now, while this process has no threads; call ``on_exit(code)`` if it dies unasked."""
        channel = self.open_channel()
        self.build_bot()
        assert self._pipe is not None
        reader, writer = self._pipe
        args = (
            reader,
            writer,
            self._ready,
            self._gate,
            self._bot,
        )
        pid = os.fork()
        if pid == 0:
            _run_child(*args)

        def exited(code: int) -> None:
            if not self._stopping:
                log.error(
                    "the work process exited with code %s: stopping, so that both are restarted together",
                    code,
                )
                on_exit(1)

        self._child = Child(pid, exited)
        reader.close()
        channel.start()
        return channel

    @property
    def pid(self) -> int | None:
        return self._child.pid if self._child is not None else None

    def ready(self) -> bool:
        """Started, working, alive and beating: the serving process is only ready with it."""
        return (
            self._ready is not None
            and self._ready.is_set()
            and self._child is not None
            and not self._child.exited
            and self.heartbeat.stalled() is None
        )

    def kill(self) -> None:
        if self._child is not None:
            self._child.kill()

    def stop(self, timeout: float = 30.0) -> bool:
        """Close the pipe and wait for the work process to finish what it holds, killing it after ``timeout``.

        True when it finished by itself."""
        self._stopping = True
        deadline = time.monotonic() + timeout
        if self.channel is not None:
            self.channel.close(timeout)
        if self._child is None:
            return True
        finished = self._child.wait(max(0.0, deadline - time.monotonic()))
        if not finished:
            log.error("the work process did not finish within %.0f s; killing it", timeout)
            self._child.kill()
            self._child.wait(5)
        _forget_metrics(self._child.pid)
        return finished


class BoundedPool(ThreadPoolExecutor):
    """A work pool that holds at most ``pending`` items, queued or running; ``submit`` waits for a free slot.

    This process reads the pipe faster than it applies clicks, and each payload is ~70 KB of Python objects once
    unpickled: without the bound a burst of 600 clicks parked ~40 MB here. With it, the backlog stays in the pipe
    and the serving process's queue, pickled."""

    def __init__(self, workers: int, pending: int) -> None:
        super().__init__(workers, thread_name_prefix="work")
        self._slots = threading.BoundedSemaphore(pending)

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        self._slots.acquire()
        try:
            future = super().submit(fn, *args, **kwargs)
        except BaseException:
            self._slots.release()
            raise
        future.add_done_callback(lambda _done: self._slots.release())
        return future


def _widen(conn: Connection) -> None:
    """A click's payload carries its whole message (~14 KB) and a pipe holds 64 KB: while the low-priority work
    process is busy, the feeder would block after four payloads and wake for every few KB after that."""
    with contextlib.suppress(OSError):  # above /proc/sys/fs/pipe-max-size, or not Linux: the default works
        fcntl.fcntl(conn.fileno(), _F_SETPIPE_SZ, PIPE_BYTES)


def _lower_priority(thread_id: int = 0) -> None:
    """SCHED_IDLE and nice 19 for one thread (0: the calling one); threads it starts later inherit both.

    Under SCHED_IDLE a waking ack preempts the thread at once, where a nice value alone only weighs the shares and
    the serving process waits up to a scheduler slice each time it wakes. Only the payloads' work and the redraws
    get it: the clock, the metric watch and the outbox keep normal priority, so a busy machine may delay a redraw
    but not a reminder or a page."""
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, thread_id, WORK_NICE)  # per thread on Linux
    with contextlib.suppress(AttributeError, OSError):  # not Linux
        os.sched_setscheduler(thread_id, os.SCHED_IDLE, os.sched_param(0))


def _die_with_parent() -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the closed pipe still ends the loop below
        pass


def _forget_metrics(pid: int) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


def _run_child(*args: Any) -> NoReturn:
    """The forked child: run the work process and leave with its code, never returning into the parent's code."""
    code = 1
    try:
        _work_main(*args)
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    except BaseException:
        log.exception("the work process failed")
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _work_main(reader: Connection, writer: Connection, ready: Any, gate: AckGate, bot: Any) -> None:
    writer.close()  # only the serving process writes: its exit is our end of input
    _die_with_parent()
    # Ctrl-C reaches the whole process group; the serving process decides when this one stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)

    from slack_bolt import BoltRequest

    try:
        bot.start_background()
    except ReleaseBotError as e:
        log.error("the work process cannot start: %s", e.user_message)
        raise SystemExit(2) from None
    # After start_background, whose clock and leader threads keep normal priority: this thread dispatches the
    # payloads and starts the work pool's threads, and the sync thread redraws.
    _lower_priority()
    if bot.sync.thread_id is not None:
        _lower_priority(bot.sync.thread_id)
    ready.set()
    log.info("work process %s ready", os.getpid())
    try:
        while True:
            try:
                kind, data = pickle.loads(reader.recv_bytes())
            except EOFError:
                break
            if kind == "wake":
                bot.clockwork.wake()
                continue
            if kind == "dirty":
                bot.sync.mark_dirty(data)
                continue
            if kind == "github":
                bot.github_delivery(*data[:3])
                continue
            body, rid = data
            # Dispatching runs Bolt's middleware and the listener's parsing here: CPU the acks in flight need more.
            gate.hold()
            token = request_id.set(rid)
            try:
                bot.app.dispatch(BoltRequest(body=body, mode="socket_mode"))
            except Exception:
                log.exception("a forwarded payload could not be handled")
            finally:
                request_id.reset(token)
    finally:
        bot.stop()
    log.info("work process %s stopped", os.getpid())
