"""Metrics and structured logs.

Metric objects are plain in-memory counters on prometheus_client's default registry: creating them connects to
nothing. Logs are JSON lines that carry the request id and release id of the work in hand (context variables),
and every record passes a filter that blanks the configured secrets.
"""

from __future__ import annotations

import contextvars
import logging
import sys
import threading
from collections.abc import Iterable
from types import TracebackType

from prometheus_client import Counter, Gauge, Histogram

ACK_LATENCY = Histogram(
    "releasebot_ack_seconds",
    "Time from receiving a Slack request to answering it",
    ["kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0),
)
REQUESTS_REFUSED = Counter(
    "releasebot_requests_refused_total",
    "Requests to /slack/events refused before reading them: unsigned, stale or forged",
    ["reason"],
)
SLACK_API_ERRORS = Counter("releasebot_slack_api_errors_total", "Slack Web API errors", ["method", "error"])
SLACK_CALLS = Counter("releasebot_slack_calls_total", "Slack Web API calls made", ["method"])
TIMERS_FIRED = Counter("releasebot_timers_fired_total", "Timers fired", ["kind"])
TIMER_LATENESS = Histogram(
    "releasebot_timer_lateness_seconds",
    "How late a timer fired after its due time",
    ["kind"],
    buckets=(0.1, 0.5, 1, 2, 5, 15, 60, 300, 3600),
)
JUDGE_VERDICTS = Counter("releasebot_judge_verdicts_total", "Metric watch verdicts", ["criterion", "verdict"])
PAGES_SENT = Counter("releasebot_pages_sent_total", "PagerDuty events delivered", ["action"])
WORK_HELD = Counter(
    "releasebot_work_held_seconds_total",
    "Time the work process's low-priority transactions waited for Slack requests in flight (bot.runtime.ack_gate)",
)
# With a work process (see bot.runtime.work_process) both processes report; the live maximum is the bot's figure.
OUTBOX_DEPTH = Gauge(
    "releasebot_outbox_depth", "PagerDuty events waiting in the outbox", multiprocess_mode="livemax"
)
IS_LEADER = Gauge(
    "releasebot_leader",
    "1 while this process runs timers, the metric watch and the outbox",
    multiprocess_mode="livemax",
)

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
release_id: contextvars.ContextVar[int | None] = contextvars.ContextVar("release_id", default=None)


class ContextFilter(logging.Filter):
    """Adds the request and release ids in hand to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        record.release_id = release_id.get()
        return True


class RedactFilter(logging.Filter):
    """Blanks secrets in the rendered message and arguments of every record."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._secrets = [s for s in secrets if s and len(s) >= 6]

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "[redacted]")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
        message = record.getMessage()
        scrubbed = self._scrub(message)
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = self._scrub(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        if scrubbed != message or record.args:
            record.msg, record.args = scrubbed, None
        return True


def configure_logging(*, level: str, fmt: str, secrets: Iterable[str], stream: object = None) -> None:
    """Send the root logger's records to stderr as JSON (or text), with context and redaction."""
    from pythonjsonlogger.json import JsonFormatter

    handler = logging.StreamHandler(stream or sys.stderr)  # type: ignore[arg-type]
    if fmt == "json":
        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s %(release_id)s",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            )
        )
    else:
        handler.setFormatter(
            logging.Formatter(
                "%(asctime)s %(levelname)s %(name)s [req=%(request_id)s rel=%(release_id)s] %(message)s"
            )
        )
    handler.addFilter(ContextFilter())
    handler.addFilter(RedactFilter(secrets))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # slack_sdk logs request bodies at DEBUG; keep it quiet even when we debug ourselves.
    logging.getLogger("slack_sdk").setLevel(max(logging.INFO, logging.getLevelName(level)))
    logging.getLogger("slack_bolt").setLevel(max(logging.INFO, logging.getLevelName(level)))
    # Alembic announces each of its plugins at INFO on every migration run; the migrations themselves still log.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    # APScheduler logs two INFO lines each time a job runs (the timer sweep every 5 s): its warnings still show.
    logging.getLogger("apscheduler").setLevel(max(logging.WARNING, logging.getLevelName(level)))
    scheduler_log = logging.getLogger("apscheduler.scheduler")
    if not any(isinstance(f, _RunStillUnderWay) for f in scheduler_log.filters):
        scheduler_log.addFilter(_RunStillUnderWay())
    # An exception that ends a thread (or the process) is printed by Python as plain text on stderr, outside the
    # JSON lines and their redaction: send it through the handler above instead.
    threading.excepthook = _log_thread_death
    sys.excepthook = _log_uncaught


class _RunStillUnderWay(logging.Filter):
    """Drops APScheduler's "skipped: maximum number of running instances reached".

    Every periodic job of ours runs at most ``max_instances`` at once on purpose: a run that outlasts its interval
    (the clock's one-second re-arm, the metric watch on a slow Prometheus) is not doubled, and the next one comes
    at the next interval. APScheduler logs each such skip as a warning: under load, one a second per replica, which
    buries the warnings that mean something. What a late run costs is measured where it matters (a reminder's
    lateness, the watch's sample age), not here."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "maximum number of running instances reached" not in str(record.msg)


_crash_log = logging.getLogger("bot.crash")


def _log_thread_death(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return
    name = args.thread.name if args.thread is not None else "?"
    exc_info = (args.exc_type, args.exc_value or args.exc_type(), args.exc_traceback)
    _crash_log.error("thread %s ended with an uncaught exception", name, exc_info=exc_info)


def _log_uncaught(exc_type: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
    _crash_log.critical("uncaught exception", exc_info=(exc_type, value, tb))
