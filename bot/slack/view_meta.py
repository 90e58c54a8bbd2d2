"""Signed ``private_metadata`` for the modals the bot opens (abort, override, incident, rollback).

A view submission names its release and channel only through the metadata the bot wrote when it opened the view.
Sealing it with an HMAC (a key derived from the signing secret, so every replica and both processes of ``serve``
agree without sharing state) and the id of the person it was opened for means a submission cannot be redirected to
another release, another channel or another person's dialog: anything that does not verify is refused whole.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

MAX_METADATA = 3000  # Slack's limit on private_metadata
_CONTEXT = b"release-bot view metadata v1"


class ViewSeal:
    """Seals metadata for one user, and opens only what it sealed for that user."""

    def __init__(self, secret: str) -> None:
        # A derived key: the signing secret itself never signs anything but Slack's own scheme.
        self._key = hmac.new(secret.encode(), _CONTEXT, hashlib.sha256).digest()

    def _sign(self, body: str) -> str:
        return hmac.new(self._key, body.encode(), hashlib.sha256).hexdigest()

    def seal(self, meta: dict[str, Any], user_id: str) -> str:
        body = json.dumps({"m": meta, "u": user_id}, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
        sealed = f"{self._sign(body)}.{body}"
        if len(sealed) > MAX_METADATA:
            raise ValueError(f"view metadata of {len(sealed)} characters exceeds Slack's {MAX_METADATA}")
        return sealed

    def open(self, private_metadata: object, user_id: str) -> dict[str, Any] | None:
        """The metadata sealed for ``user_id``, or None when it is missing, altered or someone else's."""
        if not isinstance(private_metadata, str):
            return None
        signature, _, body = private_metadata.partition(".")
        if not body or not hmac.compare_digest(signature, self._sign(body)):
            return None
        try:
            decoded = json.loads(body)
        except ValueError:
            return None
        if not isinstance(decoded, dict) or decoded.get("u") != user_id or not isinstance(decoded.get("m"), dict):
            return None
        meta: dict[str, Any] = decoded["m"]
        return meta
