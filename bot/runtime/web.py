"""The HTTP front: Slack's single request URL, health and metrics (served by bot.runtime.http_server).

A request to /slack/events is checked in this order, and each step answers a 4xx before the next one runs: its
length (400, 413), its signature on the raw bytes (401), its encoding and shape (400). Only then does Bolt see
it: nothing of a request that is not Slack's is decoded, logged or acted on (no reply to its ``response_url``).
"""

from __future__ import annotations

import json
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any
from urllib.parse import parse_qs

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from slack_bolt import App, BoltRequest, BoltResponse

from bot.observability import ACK_LATENCY, REQUESTS_REFUSED, release_id, request_id
from bot.slack import signature
from bot.slack.form_body import bolt_request

log = logging.getLogger(__name__)

StartResponse = Callable[..., Any]
MAX_BODY = 1_000_000  # Slack payloads are far smaller; refuse anything that is not Slack
_DIGITS = frozenset("0123456789")


def _metrics_text() -> bytes:
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return bytes(generate_latest())
    from prometheus_client import CollectorRegistry, multiprocess

    # ``serve`` with a work process: sum what both processes counted.
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return bytes(generate_latest(registry))


_ack_children: dict[str, Any] = {}


def _ack_latency(kind: str) -> Any:
    """The histogram's child for ``kind``: ``labels()`` costs as much again as the observation (profiled)."""
    child = _ack_children.get(kind)
    if child is None:
        child = _ack_children.setdefault(kind, ACK_LATENCY.labels(kind=kind))
    return child


def request_kind(raw: str, content_type: str) -> str:
    if content_type.startswith("application/json"):
        return "event"
    if raw.startswith("payload=") or "&payload=" in raw:
        return "interactive"
    return "command" if "command=" in raw else "other"


def _repair_form_body(request: BoltRequest, raw: str) -> None:
    # Bolt parses any form body that merely contains the text "payload" as an interactivity payload, so
    # "/release start payload-service" would arrive empty and 404. Re-parse such bodies as the form they are.
    if request.body == {} and "payload" in raw:
        form = parse_qs(raw, keep_blank_values=True)
        if "payload" not in form and "command" in form:
            request.body = {k: v[0] for k, v in form.items()}


def _status_line(status: int) -> str:
    reasons = {
        200: "OK",
        400: "Bad Request",
        401: "Unauthorized",
        411: "Length Required",
        404: "Not Found",
        405: "Method Not Allowed",
        413: "Payload Too Large",
        500: "Internal Server Error",
        503: "Service Unavailable",
    }
    return f"{status} {reasons.get(status, 'Status')}"


class WebApp:
    """A WSGI application routing /slack/events to Bolt, plus /healthz, /readyz and /metrics."""

    def __init__(
        self,
        app: App,
        *,
        ready: Callable[[], str | None],
        slack_over_http: bool = True,
        github: Callable[[dict[str, Any], StartResponse], Iterable[bytes]] | None = None,
        alive: Callable[[], str | None] = lambda: None,
        signing_secret: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``ready`` answers why the bot cannot serve now, or None when it can; ``alive`` why it is stuck for
        good (a restart is the cure: a frozen work process, Socket Mode without Slack), or None; ``github`` serves
        the GitHub webhook route when a webhook secret is configured. Without a ``signing_secret`` every Slack
        request is refused."""
        self._app = app
        self._ready = ready
        self.alive = alive
        self._github = github
        # In Socket Mode requests are not signed, so this server must not accept them: health and metrics only.
        self._slack_over_http = slack_over_http
        self._secret = signing_secret
        self._clock = clock
        self._refusals = _RefusalLog()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        if path == "/slack/events" and self._slack_over_http:
            if method != "POST":
                return self._reply(start_response, 405, b"", "text/plain")
            return self._slack(environ, start_response)
        if path == "/github/webhook" and self._github is not None:
            return self._github(environ, start_response)
        if path in ("/healthz", "/readyz") and method == "GET":
            problem = self._ready()
            ok = problem is None
            body = json.dumps({"status": problem or "ok"}).encode()
            return self._reply(start_response, 200 if ok else 503, body, "application/json")
        if path == "/livez" and method == "GET":
            stuck = self.alive()
            body = json.dumps({"status": stuck or "ok"}).encode()
            return self._reply(start_response, 200 if stuck is None else 503, body, "application/json")
        if path == "/metrics" and method == "GET":
            return self._reply(start_response, 200, _metrics_text(), CONTENT_TYPE_LATEST)
        return self._reply(start_response, 404, b"not found", "text/plain")

    @staticmethod
    def _reply(
        start_response: StartResponse,
        status: int,
        body: bytes,
        content_type: str,
        headers: Iterable[tuple[str, str]] = (),
    ) -> list[bytes]:
        start_response(
            _status_line(status),
            [("Content-Type", content_type), ("Content-Length", str(len(body))), *headers],
        )
        return [body]

    def _slack(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        started = time.perf_counter()
        declared = environ.get("CONTENT_LENGTH") or ""
        if declared and not (len(declared) <= 12 and _DIGITS.issuperset(declared)):
            return self._reply(start_response, 400, b"bad Content-Length", "text/plain")
        length = int(declared) if declared else 0
        if length > MAX_BODY:
            return self._reply(start_response, 413, b"payload too large", "text/plain")
        raw_bytes = environ["wsgi.input"].read(length) if length else b""
        if len(raw_bytes) != length:
            return self._reply(start_response, 400, b"body shorter than its Content-Length", "text/plain")
        why = (
            signature.problem(
                self._secret or "",
                environ.get("HTTP_X_SLACK_REQUEST_TIMESTAMP"),
                environ.get("HTTP_X_SLACK_SIGNATURE"),
                raw_bytes,
                self._clock(),
            )
            if self._secret
            else "no signing secret configured"
        )
        if why is not None:
            # The body is not Slack's: it is neither decoded nor logged, and nothing in it is answered.
            REQUESTS_REFUSED.labels(reason=why).inc()
            self._refusals.note(why)
            return self._reply(start_response, 401, b"invalid request signature", "text/plain")
        try:
            raw = raw_bytes.decode("utf-8")
        except UnicodeDecodeError:
            return self._reply(start_response, 400, b"body is not UTF-8", "text/plain")
        headers: dict[str, str | Sequence[str]] = {}
        for key, value in environ.items():
            if key.startswith("HTTP_"):
                headers[key[5:].replace("_", "-").lower()] = value
        content_type = environ.get("CONTENT_TYPE", "")
        headers["content-type"] = content_type
        kind = request_kind(raw, content_type)
        # For log correlation, not a secret: getrandbits needs no syscall, where uuid4 reads urandom per request.
        token_req = request_id.set(f"{random.getrandbits(48):012x}")
        token_rel = release_id.set(None)
        try:
            try:
                request = bolt_request(raw, environ.get("QUERY_STRING", ""), headers)
            except (ValueError, AttributeError, TypeError, RecursionError):
                # Malformed or absurdly nested JSON in a payload: Slack never sends it, so say so.
                return self._reply(start_response, 400, b"malformed payload", "text/plain")
            if not isinstance(request.body, dict):
                return self._reply(start_response, 400, b"malformed payload", "text/plain")
            _repair_form_body(request, raw)
            try:
                response: BoltResponse = self._app.dispatch(request)
            except Exception:
                # Bolt choked on a payload of a shape Slack never sends; answer it as the bad request it is.
                log.exception("request could not be dispatched")
                return self._reply(start_response, 400, b"malformed payload", "text/plain")
        finally:
            request_id.reset(token_req)
            release_id.reset(token_rel)
        _ack_latency(kind).observe(time.perf_counter() - started)
        status = response.status
        body = response.body.encode("utf-8") if isinstance(response.body, str) else response.body
        out_headers = [
            (k, v) for k, values in response.headers.items() for v in values if k.lower() != "content-length"
        ]
        start_response(_status_line(status), [*out_headers, ("Content-Length", str(len(body)))])
        return [body]


class _RefusalLog:
    """Logs refused requests by reason, at most once a minute each, with how many there were meanwhile.

    One line per refusal would let anyone fill the log; none would hide a wrong signing secret from its operator."""

    EVERY_S = 60.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._since: dict[str, int] = {}

    def note(self, reason: str) -> None:
        now = time.monotonic()
        with self._lock:
            self._since[reason] = self._since.get(reason, 0) + 1
            last = self._last.get(reason)
            if last is not None and now - last < self.EVERY_S:
                return
            count, self._since[reason] = self._since[reason], 0
            self._last[reason] = now
        log.warning(
            "refused %d request(s) to /slack/events: %s (counted in releasebot_requests_refused_total)",
            count,
            reason,
        )
