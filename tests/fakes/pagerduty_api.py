"""A loopback PagerDuty Events API v2 over real HTTPS, with incidents, dedup semantics and fault injection.

Serves ``POST /v2/enqueue`` and ``POST /v2/change/enqueue`` the way PagerDuty documents them
(reference/integrations.md §1): the body limits and required fields answer 400 ``invalid event`` with an
``errors`` list, accepted events answer 202 with the ``dedup_key``. Alert events drive a small incident model:

- a trigger on an open (triggered/acknowledged) alert with the same key is appended to it, no new incident;
- after resolve, a trigger with the same key opens a NEW incident;
- acknowledge/resolve for a key without an open alert is dropped, still 202;
- follow-up events only apply when sent with the routing key of the original trigger.

Only the routing-key 400 message is PagerDuty's verbatim text (from prometheus/alertmanager's tests); the
other ``errors`` strings follow its style. Faults: ``fail_next(n, status)``, ``go_down()``/``come_back()``
(the port refuses connections, then the SAME port is bound again), ``rate_limit_per_minute(n)`` per
routing key, and ``fault_for(dedup_key, status, delay_s)``: every alert event with that key is answered slowly
(after ``delay_s``) with ``status``, the way an overloaded PagerDuty behaves for one alert's requests.
"""

from __future__ import annotations

import contextlib
import json
import socket
import socketserver
import ssl
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.fakes.tls import TlsFiles

MAX_BODY_BYTES = 512 * 1024
SEVERITIES = ("critical", "error", "warning", "info")
ACTIONS = ("trigger", "acknowledge", "resolve")

_INVALID = {"status": "invalid event", "message": "Event object is invalid"}
# Bodies for injected faults. PagerDuty does not document its 429/5xx bodies; a load balancer answers
# 502/503 in HTML, which the client must cope with too.
_FAULT_BODIES: dict[int, tuple[str, bytes]] = {
    429: (
        "application/json",
        b'{"status":"throttle event","message":"Requests for this service are arriving too quickly.'
        b'  Please retry later."}',
    ),
    500: ("application/json", b'{"status":"error","message":"Internal server error"}'),
    502: ("text/html", b"<html><body><h1>502 Bad Gateway</h1></body></html>"),
    503: ("text/html", b"<html><body><h1>503 Service Unavailable</h1></body></html>"),
    504: ("text/html", b"<html><body><h1>504 Gateway Time-out</h1></body></html>"),
}


@dataclass
class Incident:
    """One alert/incident as PagerDuty would show it."""

    number: int
    dedup_key: str
    routing_key: str
    status: str  # triggered | acknowledged | resolved
    summary: str
    severity: str
    events: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the fake saw it, with the status it answered."""

    path: str
    status: int
    body: Any  # decoded JSON, or None when it was not JSON / not read


def _is_iso8601(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def _common_errors(body: dict[str, Any]) -> list[str]:
    key = body.get("routing_key")
    if not isinstance(key, str) or len(key) != 32:
        return ["Length of 'routing_key' is incorrect (should be 32 characters)"]
    return []


def _links_errors(body: dict[str, Any]) -> list[str]:
    links = body.get("links", [])
    if not isinstance(links, list) or any(not isinstance(x, dict) or not x.get("href") for x in links):
        return ["'links' is invalid (each link needs an 'href')"]
    return []


def validate_alert(body: dict[str, Any]) -> list[str]:
    """The ``errors`` PagerDuty would list for an alert event; empty when valid."""
    errors = _common_errors(body)
    action = body.get("event_action")
    if action not in ACTIONS:
        errors.append("'event_action' is invalid (must be one of: 'trigger', 'acknowledge' or 'resolve')")
    dedup_key = body.get("dedup_key")
    if dedup_key is not None and (not isinstance(dedup_key, str) or len(dedup_key) > 255):
        errors.append("'dedup_key' is invalid (must be a string of at most 255 characters)")
    if action in ("acknowledge", "resolve") and not dedup_key:
        errors.append("'dedup_key' is missing or blank (required for acknowledge and resolve)")
    if action == "trigger":
        payload = body.get("payload")
        if not isinstance(payload, dict):
            return [*errors, "'payload' is missing or blank"]
        for name in ("summary", "source", "severity"):
            if not isinstance(payload.get(name), str) or not payload[name]:
                errors.append(f"'payload.{name}' is missing or blank")
        if isinstance(payload.get("summary"), str) and len(payload["summary"]) > 1024:
            errors.append("'payload.summary' is too long (must be at most 1024 characters)")
        if payload.get("severity") and payload["severity"] not in SEVERITIES:
            errors.append(
                "'payload.severity' is invalid (must be one of: 'critical', 'error', 'warning' or 'info')"
            )
        if "timestamp" in payload and not _is_iso8601(payload["timestamp"]):
            errors.append("'payload.timestamp' is invalid (must be an ISO 8601 timestamp)")
        if "custom_details" in payload and not isinstance(payload["custom_details"], dict | str):
            errors.append("'payload.custom_details' is invalid")
        errors.extend(_links_errors(body))
    return errors


def validate_change(body: dict[str, Any]) -> list[str]:
    """The ``errors`` PagerDuty would list for a change event; empty when valid."""
    errors = _common_errors(body)
    payload = body.get("payload")
    if not isinstance(payload, dict):
        return [*errors, "'payload' is missing or blank"]
    summary = payload.get("summary")
    if not isinstance(summary, str) or not summary:
        errors.append("'payload.summary' is missing or blank")
    elif len(summary) > 1024:
        errors.append("'payload.summary' is too long (must be at most 1024 characters)")
    if "timestamp" in payload and not _is_iso8601(payload["timestamp"]):
        errors.append("'payload.timestamp' is invalid (must be an ISO 8601 timestamp)")
    return [*errors, *_links_errors(body)]


class _Server(socketserver.ThreadingTCPServer):
    # TCPServer, not HTTPServer: HTTPServer.server_bind does a reverse DNS lookup (getfqdn) we do not need.
    allow_reuse_address = True  # come_back() rebinds the same port while old connections sit in TIME_WAIT
    daemon_threads = True

    def __init__(self, fake: FakePagerDuty, port: int) -> None:
        self.fake = fake
        super().__init__(("127.0.0.1", port), _Handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        # The TLS handshake runs here, in the per-connection thread, so a stuck client cannot block accept().
        request.settimeout(10)
        with self.fake.lock:
            self.fake.connections_accepted += 1
        try:
            tls = self.fake.ssl_context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            with self.fake.lock:
                self.fake.tls_failures += 1
            return
        self.fake.track(tls)
        try:
            super().finish_request(tls, client_address)
        finally:
            self.fake.untrack(tls)
            tls.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet: a client that hangs up mid-request is a normal event for this fake."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the real service
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the per-request stderr lines."""

    def do_POST(self) -> None:
        fake = self.server.fake
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        fault = fake.fault_of(raw)
        if fault is not None:
            time.sleep(fault[1])  # outside the lock: other requests are answered meanwhile
            with fake.lock:
                fake.requests.append(RecordedRequest(path=self.path, status=fault[0], body=json.loads(raw)))
            self._reply(fault[0], _FAULT_BODIES.get(fault[0], ("application/json", b'{"status":"error"}')))
            return
        status, answer = fake.answer(self.path, raw)
        self._reply(status, answer)

    def do_GET(self) -> None:
        self._reply(405, ("application/json", b'{"status":"error","message":"Method not allowed"}'))

    def _reply(self, status: int, answer: tuple[str, bytes]) -> None:
        content_type, payload = answer
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


class FakePagerDuty:
    """Threaded HTTPS Events API v2 on 127.0.0.1; use as a context manager or call ``start``/``stop``."""

    def __init__(self, tls: TlsFiles) -> None:
        self.ssl_context = tls.server_context()
        self.lock = threading.Lock()
        self.incidents: dict[str, list[Incident]] = {}
        self.change_events: list[dict[str, Any]] = []
        self.requests: list[RecordedRequest] = []
        self.dropped: list[dict[str, Any]] = []  # ack/resolve with no open alert: PagerDuty drops them
        self.tls_failures = 0
        self.connections_accepted = 0
        self.port = 0
        self._faults: deque[int] = deque()
        self._rate_limit: int | None = None
        self._key_faults: dict[str, tuple[int, float]] = {}
        self._accepted_at: dict[str, deque[float]] = {}
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        self._incident_numbers = 0

    # --- lifecycle ---------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self) -> FakePagerDuty:
        self._server = _Server(self, self.port)
        self.port = self._server.server_address[1]
        # A short poll interval keeps shutdown() (go_down, stop) quick.
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.02,), name="fake-pagerduty", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self._drop_connections()

    def __enter__(self) -> FakePagerDuty:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def go_down(self) -> None:
        """Refuse connections: close the listening socket and every open keep-alive connection."""
        self.stop()

    def come_back(self) -> None:
        """Listen again on the same port."""
        self.start()

    def track(self, sock: socket.socket) -> None:
        with self.lock:
            self._connections.add(sock)

    def untrack(self, sock: socket.socket) -> None:
        with self.lock:
            self._connections.discard(sock)

    def _drop_connections(self) -> None:
        with self.lock:
            connections = list(self._connections)
        for sock in connections:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    # --- fault injection ---------------------------------------------------------------------------------

    def fail_next(self, n: int, *, status: int = 500) -> None:
        """Answer the next ``n`` requests (either endpoint) with ``status``; the events are not ingested."""
        with self.lock:
            self._faults.extend([status] * n)

    def fault_for(self, dedup_key: str, status: int | None = 503, delay_s: float = 0.0) -> None:
        """Answer every alert event with ``dedup_key`` after ``delay_s`` with ``status`` (None = heal)."""
        with self.lock:
            if status is None:
                self._key_faults.pop(dedup_key, None)
            else:
                self._key_faults[dedup_key] = (status, delay_s)

    def fault_of(self, raw: bytes) -> tuple[int, float] | None:
        """The fault configured for this request's dedup key, if any."""
        with self.lock:
            if not self._key_faults:
                return None
        try:
            body = json.loads(raw)
        except ValueError:
            return None
        key = body.get("dedup_key") if isinstance(body, dict) else None
        with self.lock:
            return self._key_faults.get(key) if isinstance(key, str) else None

    def rate_limit_per_minute(self, limit: int | None) -> None:
        """Answer 429 once a routing key has had ``limit`` events accepted in the last 60 s (None = off)."""
        with self.lock:
            self._rate_limit = limit
            self._accepted_at.clear()

    def request_count(self, path: str | None = None) -> int:
        """How many requests arrived, optionally on one path."""
        with self.lock:
            return sum(1 for r in self.requests if path is None or r.path == path)

    # --- the API ----------------------------------------------------------------------------------------

    def answer(self, path: str, raw: bytes) -> tuple[int, tuple[str, bytes]]:
        """Decide the response to one POST; called from the handler threads."""
        with self.lock:
            body: Any = None
            status, answer = self._answer_locked(path, raw)
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
            self.requests.append(RecordedRequest(path=path, status=status, body=body))
            return status, answer

    def _answer_locked(self, path: str, raw: bytes) -> tuple[int, tuple[str, bytes]]:
        if path not in ("/v2/enqueue", "/v2/change/enqueue"):
            return 404, ("application/json", b'{"status":"error","message":"Not found"}')
        if self._faults:
            status = self._faults.popleft()
            return status, _FAULT_BODIES.get(status, ("application/json", b'{"status":"error"}'))
        if len(raw) > MAX_BODY_BYTES:
            return _invalid(["Event object is too large (must be at most 512 KB)"])
        try:
            body = json.loads(raw)
        except ValueError:
            return _invalid(["Could not parse the request body as JSON"])
        if not isinstance(body, dict):
            return _invalid(["Event object must be a JSON object"])
        errors = validate_alert(body) if path == "/v2/enqueue" else validate_change(body)
        if errors:
            return _invalid(errors)
        if self._rate_limited(body["routing_key"]):
            return 429, _FAULT_BODIES[429]
        if path == "/v2/change/enqueue":
            self.change_events.append(body)
            return 202, _json({"status": "success", "message": "Change event processed"})
        dedup_key = self._apply_alert(body)
        return 202, _json({"status": "success", "message": "Event processed", "dedup_key": dedup_key})

    def _rate_limited(self, routing_key: str) -> bool:
        if self._rate_limit is None:
            return False
        now = time.monotonic()
        window = self._accepted_at.setdefault(routing_key, deque())
        while window and now - window[0] >= 60:
            window.popleft()
        if len(window) >= self._rate_limit:
            return True
        window.append(now)
        return False

    def _apply_alert(self, body: dict[str, Any]) -> str:
        action = body["event_action"]
        # "A trigger event sent without a dedup_key will always generate a new alert".
        dedup_key = body.get("dedup_key") or uuid.uuid4().hex
        history = self.incidents.get(dedup_key, [])
        open_incident = next(
            (i for i in reversed(history) if i.status != "resolved" and i.routing_key == body["routing_key"]),
            None,
        )
        if action == "trigger":
            if open_incident is not None:
                open_incident.events.append(body)
            else:
                self._incident_numbers += 1
                payload = body["payload"]
                incident = Incident(
                    number=self._incident_numbers,
                    dedup_key=dedup_key,
                    routing_key=body["routing_key"],
                    status="triggered",
                    summary=payload["summary"],
                    severity=payload["severity"],
                    events=[body],
                )
                self.incidents.setdefault(dedup_key, []).append(incident)
        elif open_incident is None:
            self.dropped.append(body)
        else:
            open_incident.events.append(body)
            open_incident.status = "acknowledged" if action == "acknowledge" else "resolved"
        return dedup_key


def _json(value: dict[str, Any]) -> tuple[str, bytes]:
    return "application/json", json.dumps(value).encode()


def _invalid(errors: list[str]) -> tuple[int, tuple[str, bytes]]:
    return 400, _json({**_INVALID, "errors": errors})
