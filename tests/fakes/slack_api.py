"""A fake Slack Web API: a real HTTP server on 127.0.0.1 for the real ``slack_sdk.WebClient``.

A real socket (not a patched client) so the SDK's wire formats, retry handlers and timeouts run for real, and
so a bot started as a subprocess can use it too. Answers follow reference/slack.md §5, §6, §9: HTTP 200 with
``ok``/``error`` for API errors, 429 + ``Retry-After`` for rate limits, 5xx only when told to fail.
Rate limits are opt-in: ``enforce_rate_limits`` (chat.postMessage per channel) and ``enforce_tiers`` (chat.update and
chat.delete at Tier 3: 50 a minute for the workspace with a burst of 10; views.publish at Tier 4: 100 a minute with a
burst of 20; reference/slack.md §6 says "50+" and "100+" and that short bursts are tolerated, without a number, so
the fake holds the floor of each tier and a fifth of a minute's burst). ``rate_limited()`` counts the 429s per method.
Method handlers live in ``slack_methods``; this module owns the server, the faults and the recording.

    with FakeSlack() as fake:
        client = WebClient(token="xoxb-test", base_url=fake.base_url, timeout=5)
"""

from __future__ import annotations

import json
import math
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

from .blockkit_limits import render_text
from .slack_methods import BOT_USER_ID, TIER_4_PER_MINUTE, SlackError, SlackState

__all__ = ["BOT_USER_ID", "Call", "FakeSlack", "render_text"]

T = TypeVar("T")
_JSON_FIELDS = {
    "blocks": "invalid_blocks_format",
    "attachments": "invalid_attachments",
    "view": "invalid_arguments",
}
_JSON_FIELDS["files"] = "invalid_arguments"
TIER_4_METHODS = frozenset({"conversations.members"})  # the tiered methods whose allowance the fake counts
# enforce_tiers(): reference/slack.md §6 gives Tier 3 as "50+ a minute" and Tier 4 as "100+", per method, per app,
# per workspace, and says short bursts are tolerated without a number. The fake holds each method to exactly the
# floor of its tier over time (a token bucket refilled at per_minute / 60 a second) and lets a burst of a fifth of
# the minute through at once: stricter than Slack's "+", so a bot that makes no 429 here makes none there.
TIER_3_PER_MINUTE = 50
TIER_3_BURST = 10
TIER_4_BURST = 20
TIERED = {
    "chat.update": (TIER_3_PER_MINUTE, TIER_3_BURST),
    "chat.delete": (TIER_3_PER_MINUTE, TIER_3_BURST),
    "conversations.history": (TIER_3_PER_MINUTE, TIER_3_BURST),
    "views.publish": (TIER_4_PER_MINUTE, TIER_4_BURST),
}
RESPONSE_URL_USES = 5
RESPONSE_URL_TTL_S = 30 * 60


@dataclass(frozen=True)
class Call:
    """One request the fake answered. ``params`` never holds the token."""

    method: str
    params: dict[str, Any]
    at: float
    http_status: int
    response: dict[str, Any]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeSlack


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: pytest output is for test failures, not access logs."""

    def do_GET(self) -> None:
        self.server.fake._serve(self)

    do_POST = do_GET


class FakeSlack(SlackState):
    """Threaded fake Slack Web API; ``start()``/``stop()`` or use as a context manager."""

    def __init__(self, *, port: int = 0, clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.RLock()
        self._clock = clock
        self._port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._answer_503 = False
        self.reset()

    # ---- lifecycle -------------------------------------------------------------------------------------
    def start(self) -> FakeSlack:
        """Bind (port 0 → ephemeral on first start, then the same port again) and serve in a daemon thread."""
        server = _Server(("127.0.0.1", self._port), _Handler)
        server.fake = self
        self._port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.01}, name="fake-slack", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket; idempotent."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeSlack:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def go_down(self, *, mode: str = "refuse") -> None:
        """Make Slack unreachable: ``refuse`` closes the socket (connection refused), ``503`` answers 503."""
        if mode == "refuse":
            self.stop()
        elif mode == "503":
            self._answer_503 = True
        else:
            raise ValueError(f"unknown mode {mode!r}")

    def come_back(self) -> None:
        """Serve again on the same port, so clients configured with ``base_url`` reconnect unchanged."""
        self._answer_503 = False
        if self._server is None:
            self.start()

    @property
    def port(self) -> int:
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._port}/api/"

    def response_url(self, name: str, *, channel: str | None = None, message_ts: str | None = None) -> str:
        """A response_url; with ``channel``/``message_ts`` it can replace or delete that message."""
        with self._lock:
            self._response_urls[name] = {
                "created": self._clock(),
                "channel": channel,
                "ts": message_ts,
                "n": 0,
            }
        return f"http://127.0.0.1:{self._port}/response/{urllib.parse.quote(name)}"

    # ---- faults ----------------------------------------------------------------------------------------
    def rate_limit(self, method: str, *, retry_after: int = 1, times: int = 1) -> None:
        """Answer the next ``times`` calls of ``method`` (``*`` = any) with 429 + ``Retry-After``."""
        with self._lock:
            self._faults.append([method, 429, retry_after, times])

    def fail(self, method: str, *, status: int = 503, times: int = 1) -> None:
        """Answer the next ``times`` calls of ``method`` (``*``, ``upload``, ``response_url`` too): 5xx."""
        with self._lock:
            self._faults.append([method, status, 0, times])

    def enforce_rate_limits(self, *, post_per_channel_per_s: float = 1.0, burst: int = 1) -> None:
        """Token bucket per channel for chat.postMessage, as Slack's ~1 message/s/channel."""
        with self._lock:
            self._post_rate = (post_per_channel_per_s, burst)
            self._buckets.clear()

    def enforce_tiers(self, limits: dict[str, tuple[int, int]] | None = None) -> None:
        """Hold chat.update and chat.delete to Tier 3 and views.publish to Tier 4 (``TIERED``: per minute, burst),
        across the whole workspace as Slack counts them; over it, 429 + ``Retry-After`` and a count in
        ``rate_limited()``. Opt-in like ``enforce_rate_limits``: most tests drive a bot whose update pacing is off."""
        with self._lock:
            self._tiers = dict(TIERED if limits is None else limits)
            self._tier_buckets.clear()

    def rate_limited(self) -> dict[str, int]:
        """429 answers so far, per method (enforced limits and injected ``rate_limit`` faults alike)."""
        with self._lock:
            counts: dict[str, int] = {}
            for call in self._calls:
                if call.http_status == 429:
                    counts[call.method] = counts.get(call.method, 0) + 1
            return counts

    def _bucket_wait(self, method: str) -> float:
        """Seconds until ``method`` may be called under ``enforce_tiers`` (0: allowed now, token taken)."""
        limit = self._tiers.get(method)
        if limit is None:
            return 0.0
        per_minute, burst = limit
        rate = per_minute / 60.0
        now = self._clock()
        tokens, last = self._tier_buckets.get(method, (float(burst), now))
        tokens = min(float(burst), tokens + (now - last) * rate)
        if tokens >= 1:
            self._tier_buckets[method] = (tokens - 1, now)
            return 0.0
        self._tier_buckets[method] = (tokens, now)
        return (1 - tokens) / rate

    def _take_fault(self, method: str) -> tuple[int, int] | None:
        for fault in self._faults:
            if fault[0] in (method, "*") and fault[3] > 0:
                fault[3] -= 1
                return fault[1], fault[2]
        return None

    def _post_wait(self, channel: str) -> float:
        """Seconds until ``channel`` may post again (0 = allowed now, token taken)."""
        if self._post_rate is None:
            return 0.0
        rate, burst = self._post_rate
        now = self._clock()
        tokens, last = self._buckets.get(channel, (float(burst), now))
        tokens = min(float(burst), tokens + (now - last) * rate)
        if tokens >= 1:
            self._buckets[channel] = (tokens - 1, now)
            return 0.0
        self._buckets[channel] = (tokens, now)
        return (1 - tokens) / rate

    def _tier_wait(self, method: str, per_minute: int) -> float:
        """Seconds until ``method`` may be called again within its per-minute allowance (0: counted, go)."""
        now = self._clock()
        recent = [at for at in self._tier_calls.get(method, []) if at > now - 60]
        if len(recent) >= per_minute:
            self._tier_calls[method] = recent
            return recent[0] + 60 - now
        self._tier_calls[method] = [*recent, now]
        return 0.0

    def before_answering(self, method: str, hook: Callable[[Call], bool]) -> None:
        """Run ``hook`` with each answered call of ``method`` after Slack has applied it but before the client hears
        back, as when Slack's answer is slow to arrive; the hook returns True once it has done its work (it is
        then removed). It runs outside the fake's lock, so it may make the bot call Slack meanwhile."""
        with self._lock:
            self._hooks.append((method, hook))

    def _run_hooks(self, call: Call) -> None:
        with self._lock:
            hooks = [h for h in self._hooks if h[0] == call.method]
        for entry in hooks:
            if entry[1](call):
                with self._lock:
                    self._hooks.remove(entry)

    # ---- recording and assertions ----------------------------------------------------------------------
    def calls(self, method: str | None = None) -> list[Call]:
        """Recorded calls, oldest first, optionally of one method."""
        with self._lock:
            return [c for c in self._calls if method is None or c.method == method]

    def wait_for(self, predicate: Callable[[], T], timeout: float = 5.0, *, interval: float = 0.01) -> T:
        """Poll ``predicate`` until truthy and return its value; AssertionError with a dump on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() >= deadline:
                raise AssertionError(f"condition not met within {timeout}s\n{self.dump()}")
            time.sleep(interval)

    def wait_for_call(
        self, method: str, predicate: Callable[[Call], bool] | None = None, timeout: float = 5.0
    ) -> Call:
        """Wait for the first call of ``method`` matching ``predicate`` and return it."""

        def found() -> Call | None:
            return next((c for c in self.calls(method) if predicate is None or predicate(c)), None)

        call = self.wait_for(found, timeout)
        assert call is not None  # wait_for only returns truthy values
        return call

    def dump(self, last: int = 20) -> str:
        """Recent calls and current messages, for failure messages."""
        with self._lock:
            lines = [f"last {last} of {len(self._calls)} calls:"]
            for c in self._calls[-last:]:
                outcome = "ok" if c.response.get("ok") else c.response.get("error")
                lines.append(f"  {c.method} -> {c.http_status} {outcome} {json.dumps(c.params)[:300]}")
            for channel, msgs in self._messages.items():
                for m in msgs:
                    body = (m["text"] + " | " + render_text(m["blocks"]).replace("\n", " / "))[:200]
                    lines.append(f"  {channel} {m['ts']} thread={m['thread_ts']} {body}")
            return "\n".join(lines)

    # ---- HTTP ------------------------------------------------------------------------------------------
    def _serve(self, handler: _Handler) -> None:
        url = urllib.parse.urlsplit(handler.path)
        raw = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        kind, _, rest = url.path.lstrip("/").partition("/")
        name = {"api": rest, "upload": "upload", "response": "response_url"}.get(kind, url.path)
        headers: dict[str, str] = {}
        with self._lock:
            fault = (503, 0) if self._answer_503 else self._take_fault(name)
            if fault is not None:
                status, retry_after = fault
                error = {429: "ratelimited", 500: "fatal_error"}.get(status, "service_unavailable")
                body: dict[str, Any] | str = {"ok": False, "error": error}
                params: dict[str, Any] = {}
                if status == 429:
                    headers["Retry-After"] = str(retry_after)
            elif kind == "api":
                params = self._params(url.query, handler.headers.get("Content-Type", ""), raw)
                body_token = str(params.pop("token", ""))
                token = handler.headers.get("Authorization", "").removeprefix("Bearer ").strip()
                status, body, headers = self._api(rest, params, token or body_token)
            elif kind == "upload":
                params = {"file_id": rest, "bytes": len(raw)}
                status, body = self._upload(rest, raw)
            elif kind == "response":
                params = {"name": urllib.parse.unquote(rest)}
                status, body = self._respond(params["name"], raw, params)
            else:
                params, status, body = {}, 404, {"ok": False, "error": "unknown_path"}
            recorded = body if isinstance(body, dict) else {"ok": status == 200, "body": body}
            call = Call(name, params, self._clock(), status, recorded)
            self._calls.append(call)
        self._run_hooks(call)
        payload = body if isinstance(body, str) else json.dumps(body)
        data = payload.encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "text/plain" if isinstance(body, str) else "application/json")
        handler.send_header("Content-Length", str(len(data)))
        for key, value in headers.items():
            handler.send_header(key, value)
        handler.end_headers()
        handler.wfile.write(data)

    @staticmethod
    def _params(query: str, content_type: str, raw: bytes) -> dict[str, Any]:
        params: dict[str, Any] = dict(urllib.parse.parse_qsl(query))
        if content_type.startswith("application/json") and raw:
            try:
                decoded = json.loads(raw)
            except ValueError:
                decoded = None
            params.update(decoded if isinstance(decoded, dict) else {"_invalid_json": True})
        elif raw:
            params.update(urllib.parse.parse_qsl(raw.decode()))
        return params

    def _api(
        self, method: str, params: dict[str, Any], token: str
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        try:
            if not token:
                raise SlackError("not_authed")
            if not token.startswith(("xoxb-", "xoxp-")) or token in self.revoked_tokens:
                raise SlackError("invalid_auth")
            if params.pop("_invalid_json", False):
                raise SlackError("invalid_json")
            for key, error in _JSON_FIELDS.items():
                if isinstance(params.get(key), str):
                    try:
                        params[key] = json.loads(params[key])
                    except ValueError as e:
                        raise SlackError(error) from e
            if method == "chat.postMessage":
                wait = self._post_wait(str(params.get("channel")))
                if wait > 0:
                    return 429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(math.ceil(wait))}
            wait = self._bucket_wait(method)
            if wait > 0:
                return 429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(math.ceil(wait))}
            if method in TIER_4_METHODS:
                wait = self._tier_wait(method, TIER_4_PER_MINUTE)
                if wait > 0:
                    return 429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(math.ceil(wait))}
            handler = getattr(self, "_m_" + method.replace(".", "_"), None)
            if handler is None:
                raise SlackError("unknown_method")
            return 200, {"ok": True, **handler(params)}, {}
        except SlackError as e:
            return 200, {"ok": False, "error": e.error, **e.extra}, {}

    def _upload(self, file_id: str, raw: bytes) -> tuple[int, str]:
        upload = self._files.get(file_id)
        if upload is None or upload.completed:
            return 404, "file_not_found"
        upload.data = raw
        return 200, f"OK - {len(raw)}"

    def _respond(self, name: str, raw: bytes, record: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        url = self._response_urls.setdefault(
            name, {"created": self._clock(), "channel": None, "ts": None, "n": 0}
        )
        if url["n"] >= RESPONSE_URL_USES:
            return 404, {"ok": False, "error": "used_url"}
        if self._clock() - url["created"] > RESPONSE_URL_TTL_S:
            return 404, {"ok": False, "error": "expired_url"}
        try:
            body = json.loads(raw)
            if not isinstance(body, dict):
                raise SlackError("invalid_payload")
            record.update(body)
            url["n"] += 1
            self._apply_response(body, url["channel"], url["ts"])
        except ValueError:
            return 400, {"ok": False, "error": "invalid_payload"}
        except SlackError as e:
            return 400, {"ok": False, "error": e.error, **e.extra}
        return 200, {"ok": True}

    def redraws(self, ts: str) -> list[Call]:
        """The calls that redrew message ``ts``, oldest first: chat.update, and replace_original through a
        response_url bound to it (as a click's is)."""
        with self._lock:
            bound = {n for n, u in self._response_urls.items() if u["ts"] == ts}
            return [
                c
                for c in self._calls
                if c.http_status == 200
                and (
                    (c.method == "chat.update" and c.params.get("ts") == ts)
                    or (c.method == "response_url" and c.params.get("replace_original") and c.params["name"] in bound)
                )
            ]

    def responses(self, name: str | None = None) -> list[dict[str, Any]]:
        """Bodies POSTed to response URLs (all, or one ``name``), oldest first."""
        return [
            c.params
            for c in self.calls("response_url")
            if c.http_status == 200 and name in (None, c.params["name"])
        ]


if __name__ == "__main__":  # python -m tests.fakes.slack_api: a fake for manual runs of the bot
    with FakeSlack() as _fake:
        print(_fake.base_url, flush=True)
        threading.Event().wait()
