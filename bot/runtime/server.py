"""Running the bot: start-up checks, the HTTP server or Socket Mode, and a graceful shutdown on SIGTERM."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import gc
import importlib
import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from types import FrameType
from typing import TYPE_CHECKING, Any

from bot.config import Settings
from bot.domain.checklist_set import ChecklistSet
from bot.errors import ChatError, ReleaseBotError

if TYPE_CHECKING:
    from bot.runtime.work_process import WorkProcess

if TYPE_CHECKING:
    from bot.runtime.http_server import HttpServer

log = logging.getLogger(__name__)
# SIGTERM to exit, whatever is stuck: inside Kubernetes' 30 s grace period even after the 5 s preStop sleep, and
# short enough that a rolling upgrade does not wait on a replica cut off from its database.
SHUTDOWN_S = 9.0
# Requests in flight get this long to finish: Slack has given up on any that takes longer (3 s).
HTTP_DRAIN_S = 3


def serve(settings: Settings) -> int:
    """Run until SIGTERM/SIGINT; return the exit code."""
    from bot.checklist.loading import load_checklist_set
    from bot.runtime.startup import check_port

    settings.require_slack()
    # A broken checklist, no managers or a taken port stops start-up before anything is touched or forked.
    checklists = load_checklist_set(settings.checklist_path)
    # Closed by default: nobody may act until someone is named (or * for everyone), here or in a checklist.
    if not any(c.managers for c in checklists):
        settings.require_managers()
    check_port(settings.host, settings.port)
    metrics_dir = _share_metrics() if settings.work_process else None
    _limit_malloc_arenas()
    try:
        return _serve(settings, checklists)
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def _serve(settings: Settings, checklists: ChecklistSet) -> int:
    from bot.db.migrate import prepare
    from bot.observability import configure_logging
    from bot.runtime.ack_gate import AckGate
    from bot.runtime.bootstrap import build
    from bot.runtime.leader import SqliteLeader, make_leader
    from bot.runtime.socket_link import quiet_client
    from bot.runtime.startup import (
        check_app_token,
        port_error,
        summary,
        warn_about_contacts,
        warn_about_managers,
    )
    from bot.runtime.work_process import WorkProcess
    from bot.slack.identity import check_token

    # The HTTP server (waitress) runs in this process only, but is loaded before the fork: loaded after it, its
    # new objects took free slots in pages shared with the work process, and each such page was copied (~0.6 MB).
    importlib.import_module("bot.runtime.http_server")
    configure_logging(level=settings.log_level, fmt=settings.log_format, secrets=settings.secrets())
    prepare(settings.database_url, only_if_needed=True)
    identity = check_token(quiet_client(settings.slack_bot_token, settings.slack_api_url))
    if settings.socket_mode:
        check_app_token(settings)
    log.info("%s", summary(settings, checklists, identity))
    warn_about_contacts(checklists, settings.release_contacts)
    warn_about_managers(checklists, settings)
    build_bot = functools.partial(build, identity=identity)
    stop = threading.Event()
    exit_code = [0]

    def stop_with(code: int) -> None:
        exit_code[0] = code
        stop.set()

    work: WorkProcess | None = None
    gate: AckGate | None = None
    if settings.work_process:
        leader = make_leader(settings.database_url)
        if isinstance(leader, SqliteLeader):
            leader.acquire()
        gate = AckGate()  # before the fork: the work process reads the count this process keeps
        work = WorkProcess(settings, leader, gate, build_bot)
        # This process's bot is built before the fork (building starts no thread; tests/test_lazy_imports.py).
        # Built after it, both builds wrote into the pages the imports left (first-use caches, reference counts),
        # and each process kept its own copy of them: idle PSS of the two 91 MB then, 83 MB built before
        # (bench/startup.py; the rest of the way in bench/RESULTS.md).
        bot = build_bot(settings, hand_off=work.open_channel())
        work.build_bot()  # the work process's too, for the same reason (WorkProcess.build_bot)
        _settle()
        work.start(on_exit=stop_with)  # before any thread exists here: it forks
        log.info("serving; work process %s", work.pid)
    else:
        _settle()
        # One process: hand the GIL over sooner (default 5 ms), so acks wait less behind the background work.
        sys.setswitchinterval(0.001)
        bot = build_bot(settings)
        bot.start_background()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %s received: finishing requests in flight, then stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    # The HTTP server runs in both modes: in Socket Mode it serves only /healthz, /livez and /metrics.
    web = gate.track(bot.web) if gate is not None else bot.web
    server = make_http_server(settings.host, settings.port, web, settings.http_threads)
    server.shutdown_timeout = HTTP_DRAIN_S
    try:
        server.prepare()
    except OSError as e:  # taken since check_port looked: nothing was served, so stop what was started
        if work is not None:
            work.stop()
        bot.stop()
        raise port_error(settings.host, settings.port, e) from None
    log.info("listening on %s:%s", settings.host, server.bind_addr[1])
    thread = threading.Thread(target=server.serve, name="http", daemon=True)
    thread.start()
    link = None
    if settings.socket_mode:
        from slack_bolt.adapter.socket_mode import SocketModeHandler

        from bot.runtime.socket_link import SocketLink

        handler = SocketModeHandler(
            bot.app,
            settings.slack_app_token,
            web_client=quiet_client(settings.slack_bot_token, settings.slack_api_url),
            logger=_socket_client_log(),
        )
        socket = link = SocketLink(
            handler,
            give_up_s=settings.socket_mode_timeout_s,
            on_down=stop_with,
        )
        heartbeat = bot.web.alive  # the work process's heartbeat; the socket's state joins it

        def alive() -> str | None:
            return heartbeat() or socket.problem()

        bot.web.alive = alive
        socket.start()
    stop.wait()
    deadline = time.monotonic() + SHUTDOWN_S
    _exit_at(deadline, work)
    if link is not None:
        link.close()
    server.stop()  # stops accepting, then lets in-flight requests finish
    thread.join(max(0.0, deadline - time.monotonic()))
    if work is not None:
        # It drains what it was handed before this process closes the database; a second is kept for the rest.
        work.stop(max(0.0, deadline - time.monotonic() - 1.0))
    bot.stop()
    log.info("stopped")
    return exit_code[0]


def _exit_at(deadline: float, work: WorkProcess | None) -> None:
    """End the process at ``deadline`` if a graceful stop has not by then.

    A statement on a database connection that a network cut left silent, a Slack call, a job of the clock: any of
    them can hold a graceful stop far beyond Kubernetes' grace period, and the orchestrator's SIGKILL would then come
    with nothing logged. The lease and the outbox make the hard exit safe: the lease lapses and a standby takes over,
    and nothing recorded is lost (work handed to the work process but not applied yet is; it is logged)."""

    def guard() -> None:
        time.sleep(max(0.0, deadline - time.monotonic()))
        log.error("shutdown did not finish within %.0f s of the signal: exiting now", SHUTDOWN_S)
        if work is not None:
            work.kill()
        metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        if metrics_dir:
            shutil.rmtree(metrics_dir, ignore_errors=True)
        logging.shutdown()
        os._exit(1)

    threading.Thread(target=guard, name="shutdown-guard", daemon=True).start()


def _settle() -> None:
    """Before the fork: finish what each process would otherwise do on its own, in pages they share."""
    from sqlalchemy.orm import configure_mappers

    # Done on the first query otherwise, in each process: it writes into every mapper and mapped class.
    configure_mappers()
    # Start-up objects live as long as the process: the collector need not walk them again, and a forked work
    # process that never touches them keeps sharing their pages with this one.
    gc.freeze()


def _socket_client_log() -> logging.Logger:
    # The Socket Mode client logs each reconnect attempt at INFO; the link says what matters in one line.
    client_log = logging.getLogger("bot.socket_mode")
    client_log.setLevel(logging.WARNING)
    return client_log


def _limit_malloc_arenas(arenas: int = 2) -> None:
    """glibc gives each thread that allocates its own malloc arena (up to 8 per core), and Slack payloads are
    large enough to bypass Python's small-object allocator: after bursts the serving process kept ~10 MB more in
    half-empty arenas (measured by PSS). The same as MALLOC_ARENA_MAX=2, for threads started after this call."""
    with contextlib.suppress(OSError, AttributeError):  # not glibc
        ctypes.CDLL(None).mallopt(_M_ARENA_MAX, arenas)


_M_ARENA_MAX = -8


def _share_metrics() -> str:
    """Both processes count into one directory that /metrics reads (prometheus_client's multiprocess mode).

    It must be set before prometheus_client is first imported, and it is private to this run."""
    path = tempfile.mkdtemp(prefix="release-bot-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    return path


def make_http_server(
    host: str, port: int, app: Any, threads: int, *, read_timeout_s: float | None = None
) -> HttpServer:
    """The bot's HTTP server (bot.runtime.http_server): waitress, bounded against clients that never finish."""
    from bot.runtime.http_server import READ_TIMEOUT_S, HttpServer

    return HttpServer(host, port, app, threads, read_timeout_s=read_timeout_s or READ_TIMEOUT_S)


def resync(settings: Settings, version: str, service: str | None = None) -> int:
    """Re-render a release's messages from the database and push them to Slack.

    It only calls Slack's Web API, so the bot token is all it needs of Slack (no signing secret, no app token)."""
    from bot.db.migrate import require_current
    from bot.db.problems import no_release
    from bot.errors import NotFound
    from bot.runtime.bootstrap import build

    settings.require_bot_token()
    require_current(settings.database_url)
    bot = build(settings)
    try:
        try:
            record, _ = bot.services.audit_trail(version, service)
        except NotFound as e:
            raise no_release(version, settings.database_url) from e
        updated, posted = bot.publisher.resync_release(record.id)
    except ChatError as e:
        raise ReleaseBotError(f"Slack refused the redraw of {version} ({e.code}); nothing was changed") from e
    finally:
        bot.stop()
    print(f"{version}: {updated} messages updated, {posted} posted")
    return 0
