"""Running the bot: start-up checks, the HTTP server or Socket Mode, and a graceful shutdown on SIGTERM."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from types import FrameType
from typing import Any

from bot.config import Settings
from bot.errors import ConfigError, ReleaseBotError

log = logging.getLogger(__name__)


def serve(settings: Settings) -> int:
    """Run until SIGTERM/SIGINT; return the exit code."""
    from bot.bootstrap import build
    from bot.checklist_file import load_checklist
    from bot.db.migrate import upgrade_if_needed
    from bot.observability import configure_logging

    settings.require_slack()
    load_checklist(settings.checklist_path)  # a broken checklist stops start-up before anything is touched
    configure_logging(level=settings.log_level, fmt=settings.log_format, secrets=settings.secrets())
    try:
        upgrade_if_needed(settings.database_url)
    except Exception as e:
        raise ConfigError(f"DATABASE_URL: cannot migrate the database ({type(e).__name__})") from e
    # Hand the GIL over sooner (default 5 ms): acks wait less behind background work on a busy process.
    sys.setswitchinterval(0.001)
    bot = build(settings)
    bot.start_background()
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %s received: finishing requests in flight, then stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    # The HTTP server runs in both modes: in Socket Mode it serves only /healthz, /livez and /metrics.
    server = make_http_server(settings.host, settings.port, bot.web, settings.http_threads)
    server.shutdown_timeout = 10
    server.prepare()
    log.info("listening on %s:%s", settings.host, server.bind_addr[1])
    thread = threading.Thread(target=server.serve, name="http", daemon=True)
    thread.start()
    handler = None
    if settings.socket_mode:
        from slack_bolt.adapter.socket_mode import SocketModeHandler

        handler = SocketModeHandler(bot.app, settings.slack_app_token)
        handler.connect()  # type: ignore[no-untyped-call]
        log.info("connected to Slack in Socket Mode")
    stop.wait()
    if handler is not None:
        handler.close()  # type: ignore[no-untyped-call]
    server.stop()  # stops accepting, then lets in-flight requests finish
    thread.join(15)
    bot.stop()
    log.info("stopped")
    return 0


def make_http_server(host: str, port: int, app: object, threads: int) -> Any:
    """cheroot with a listen backlog and keep-alive limit sized for bursts (its defaults drop connections at ~50)."""
    from cheroot import wsgi

    server = wsgi.Server((host, port), app, numthreads=threads, request_queue_size=128)
    server.keep_alive_conn_limit = 256
    return server


def resync(settings: Settings, version: str) -> int:
    """Re-render a release's messages from the database and push them to Slack."""
    from bot.bootstrap import build

    settings.require_slack()
    bot = build(settings)
    try:
        record, _ = bot.services.audit_trail(version)
        updated, posted = bot.publisher.resync_release(record.id)
    except ReleaseBotError as e:
        print(f"release-bot: {e.user_message}", file=sys.stderr)
        return 2
    finally:
        bot.stop()
    print(f"{version}: {updated} messages updated, {posted} posted")
    return 0
