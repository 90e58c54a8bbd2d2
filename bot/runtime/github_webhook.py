"""``POST /github/webhook``: GitHub's deliveries, verified on their raw bytes before anything else is done.

The order is the point: the size is checked before the body is read, the ``X-Hub-Signature-256`` HMAC of the raw
body (the webhook secret, SHA-256, compared in constant time) before it is parsed, and the delivery's headers and
JSON before it is handed on. Anything unsigned, forged or malformed is answered 4xx at once and logged without its
body, which an attacker chose. A verified delivery is handed to the work that acts on it (``dispatch``, which
queues it) and answered ``202``: GitHub wants an answer within 10 seconds and does not redeliver by itself.

The stdlib's ``hmac`` does the verification: importing githubkit for its ``verify`` would cost the serving process
~18 MB.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
from collections.abc import Callable, Iterable
from typing import Any

log = logging.getLogger(__name__)

MAX_BODY = 5_000_000  # a tag push or a deployment status is a few KB; GitHub's own cap is 25 MB
HANDLED = ("push", "deployment_status", "workflow_run")
_DELIVERY = re.compile(r"[0-9A-Za-z-]{1,64}")
_EVENT = re.compile(r"[a-z_]{1,48}")

StartResponse = Callable[..., Any]
Dispatch = Callable[[str, str, dict[str, Any]], None]


def signature(secret: str, body: bytes) -> str:
    """The ``X-Hub-Signature-256`` value GitHub sends for ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class GitHubWebhook:
    """The WSGI handler of the webhook route."""

    def __init__(self, secret: str, dispatch: Dispatch) -> None:
        self._secret = secret
        self._dispatch = dispatch

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        status, message = self._answer(environ)
        body = json.dumps({"message": message}).encode()
        reason = {200: "OK", 202: "Accepted", 400: "Bad Request", 401: "Unauthorized", 405: "Method Not Allowed"}
        reason |= {413: "Payload Too Large"}
        start_response(
            f"{status} {reason.get(status, 'Status')}",
            [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
        )
        return [body]

    def _answer(self, environ: dict[str, Any]) -> tuple[int, str]:
        if environ.get("REQUEST_METHOD") != "POST":
            return 405, "POST only"
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return 400, "bad Content-Length"
        if length > MAX_BODY:
            return 413, "payload too large"
        raw = environ["wsgi.input"].read(length) if length > 0 else b""
        event = str(environ.get("HTTP_X_GITHUB_EVENT", ""))
        delivery = str(environ.get("HTTP_X_GITHUB_DELIVERY", ""))
        given = str(environ.get("HTTP_X_HUB_SIGNATURE_256", ""))
        # What may be logged about a refused delivery: its headers' shape and size, never its body.
        seen = f"event={event[:48]!r} delivery={delivery[:64]!r} bytes={len(raw)}"
        if not given:
            log.warning("refused a GitHub webhook without a signature (%s)", seen)
            return 401, "missing X-Hub-Signature-256"
        if not hmac.compare_digest(given.encode(), signature(self._secret, raw).encode()):
            log.warning("refused a GitHub webhook with a bad signature (%s)", seen)
            return 401, "bad signature"
        if not _EVENT.fullmatch(event) or not _DELIVERY.fullmatch(delivery):
            log.warning("refused a signed GitHub webhook without event or delivery headers (%s)", seen)
            return 400, "missing X-GitHub-Event or X-GitHub-Delivery"
        content_type = str(environ.get("CONTENT_TYPE", ""))
        if not content_type.startswith("application/json"):
            return 400, "send the webhook as application/json"
        try:
            payload = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            return 400, "body is not JSON"
        if not isinstance(payload, dict):
            return 400, "body is not a JSON object"
        if event == "ping":
            return 200, "pong"
        if event not in HANDLED:
            return 202, f"{event} is not used"
        self._dispatch(event, delivery, payload)
        return 202, "accepted"
