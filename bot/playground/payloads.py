"""The requests Slack would send for what the playground's person types, shaped as Slack shapes them."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import urlencode

CHANNEL, CHANNEL_NAME = "C0PLAYGRND", "releases"
USER, USER_NAME = "UPLAYER01", "you"
TEAM = {"id": "TPLAYGRND", "domain": "playground"}
APP = "APLAYGROUND"
_USER = {"id": USER, "username": USER_NAME, "name": USER_NAME, "team_id": TEAM["id"]}


def _trigger() -> str:
    return f"{time.monotonic_ns()}.playground"


def slash_command(text: str, response_url: str) -> str:
    """A ``/release`` invocation, form-encoded."""
    return urlencode(
        {
            "token": "playground",
            "team_id": TEAM["id"],
            "team_domain": TEAM["domain"],
            "channel_id": CHANNEL,
            "channel_name": CHANNEL_NAME,
            "user_id": USER,
            "user_name": USER_NAME,
            "command": "/release",
            "text": text,
            "api_app_id": APP,
            "response_url": response_url,
            "trigger_id": _trigger(),
        }
    )


def block_actions(
    channel: str | None, message_ts: str | None, blocks: list[dict[str, Any]], response_url: str
) -> dict[str, Any]:
    """A click in a message, without its ``actions`` (the caller adds the one clicked)."""
    return {
        "type": "block_actions",
        "user": _USER,
        "api_app_id": APP,
        "token": "playground",
        "trigger_id": _trigger(),
        "team": TEAM,
        "container": {"type": "message", "message_ts": message_ts, "channel_id": channel},
        "channel": {"id": channel, "name": CHANNEL_NAME},
        "message": {"type": "message", "ts": message_ts, "blocks": blocks},
        "state": {"values": {}},
        "response_url": response_url,
    }


def view_submission(view: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """A modal submitted with ``values`` as its state."""
    return {
        "type": "view_submission",
        "team": TEAM,
        "user": _USER,
        "api_app_id": APP,
        "token": "playground",
        "trigger_id": _trigger(),
        "view": {**view, "state": {"values": values}, "hash": f"{time.time():.0f}.pg"},
        "response_urls": [],
    }


def app_home_opened() -> str:
    """The Events API callback for opening the Home tab, as JSON."""
    return json.dumps(
        {
            "token": "playground",
            "team_id": TEAM["id"],
            "api_app_id": APP,
            "type": "event_callback",
            "event_id": f"Ev{time.monotonic_ns()}",
            "event_time": int(time.time()),
            "event": {"type": "app_home_opened", "user": USER, "channel": "DPLAYGRND", "tab": "home"},
        }
    )
