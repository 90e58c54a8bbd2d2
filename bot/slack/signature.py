"""Slack's request signature, checked on the raw bytes before anything of the request is decoded or read.

Slack signs ``v0:<timestamp>:<body>`` with the app's signing secret (HMAC-SHA256) and sends the timestamp and
``v0=<hex>`` in two headers. Bolt checks the same, but only after it has decoded the body, and it turns a timestamp
that is not a number into an exception: so the check runs here first, on headers whose shape is checked before
they are used, and a request that fails it is answered without its body being looked at.
"""

from __future__ import annotations

import hashlib
import hmac
import re

MAX_SKEW_S = 300  # Slack's guidance: refuse requests more than five minutes old (replays)
_TIMESTAMP = re.compile(r"[0-9]{1,12}")  # Unix seconds; twelve digits reach the year 33658
_SIGNATURE = re.compile(r"v0=[0-9a-f]{64}")


def problem(secret: str, timestamp: str | None, signature: str | None, body: bytes, now: float) -> str | None:
    """Why the request is not Slack's (a short reason for the log), or None when its signature holds."""
    if not timestamp or not signature:
        return "unsigned"
    if not _TIMESTAMP.fullmatch(timestamp):
        return "malformed timestamp"
    if not _SIGNATURE.fullmatch(signature):
        return "malformed signature"
    if abs(now - int(timestamp)) > MAX_SKEW_S:
        return "timestamp outside five minutes"
    expected = hmac.new(
        secret.encode(), b"v0:" + timestamp.encode() + b":" + body, hashlib.sha256
    ).hexdigest()
    if not hmac.compare_digest(signature[3:].encode(), expected.encode()):
        return "bad signature"
    return None
