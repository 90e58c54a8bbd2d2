"""Acting as Slack towards the bot: signed slash commands and interaction payloads over real HTTP.

Bodies are built exactly as Slack sends them (form-encoded; interactions as a single ``payload`` field) and
signed with the signing secret, then posted to the bot's ``/slack/events``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import httpx
from slack_sdk.signature import SignatureVerifier

SECRET = "test-signing-secret-5f2b9c"
BOT_TOKEN = "xoxb-test-token-0a1b2c3d4e"
TEAM = {"id": "T0ABCDEF1", "domain": "acme"}


def signed_headers(
    body: str, *, secret: str = SECRET, ts: int | None = None, content_type: str | None = None
) -> dict[str, str]:
    stamp = str(int(time.time()) if ts is None else ts)
    signature = SignatureVerifier(secret).generate_signature(timestamp=stamp, body=body)
    assert signature is not None  # None only without a secret
    return {
        "content-type": content_type or "application/x-www-form-urlencoded",
        "x-slack-request-timestamp": stamp,
        "x-slack-signature": signature,
    }


@dataclass
class SlackUser:
    """A person in the workspace, clicking and typing."""

    bot_url: str
    user_id: str
    name: str
    fake: Any  # tests.fakes.slack_api.FakeSlack
    http: httpx.Client

    def post(self, body: str, **kwargs: Any) -> httpx.Response:
        return self.http.post(
            f"{self.bot_url}/slack/events", content=body, headers=signed_headers(body, **kwargs)
        )

    def command(
        self, text: str, *, channel: str = "C0RELEASES", response_name: str | None = None
    ) -> httpx.Response:
        body = urlencode(
            {
                "token": "legacy",
                "team_id": TEAM["id"],
                "team_domain": TEAM["domain"],
                "channel_id": channel,
                "channel_name": "releases",
                "user_id": self.user_id,
                "user_name": self.name,
                "command": "/release",
                "text": text,
                "api_app_id": "A0RELEASE1",
                "is_enterprise_install": "false",
                "response_url": self.fake.response_url(response_name or f"cmd-{time.monotonic_ns()}"),
                "trigger_id": f"7234567890123.1234567890.{time.monotonic_ns():x}",
            }
        )
        return self.post(body)

    def interact(self, payload: dict[str, Any], **kwargs: Any) -> httpx.Response:
        return self.post("payload=" + quote(json.dumps(payload)), **kwargs)

    def _base(self, channel: str, message: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": "block_actions",
            "user": {"id": self.user_id, "username": self.name, "name": self.name, "team_id": TEAM["id"]},
            "api_app_id": "A0RELEASE1",
            "token": "legacy",
            "trigger_id": f"7234567890555.1234567890.{time.monotonic_ns():x}",
            "container": {
                "type": "message",
                "message_ts": message["ts"],
                "channel_id": channel,
                "is_ephemeral": False,
            },
            "team": TEAM,
            "enterprise": None,
            "is_enterprise_install": False,
            "channel": {"id": channel, "name": "releases"},
            "message": {
                "type": "message",
                "ts": message["ts"],
                "text": message.get("text", ""),
                "blocks": message.get("blocks", []),
            },
            "state": {"values": {}},
            # Bound to the message, as Slack's is: replace_original through it redraws that message.
            "response_url": self.fake.response_url(
                f"act-{time.monotonic_ns()}", channel=channel, message_ts=message["ts"]
            ),
        }

    def click_item(
        self,
        channel: str,
        message: dict[str, Any],
        item_key: str,
        *,
        tick: bool | None = None,
        action_ts: str | None = None,
    ) -> httpx.Response:
        """Click an item's checkbox in ``message`` as this user sees it (which may be stale)."""
        block, element = find_item(message, item_key)
        initial = element.get("initial_options") or []
        option = element["options"][0]
        ticked_now = any(o["value"] == item_key for o in initial)
        want = (not ticked_now) if tick is None else tick
        selected = [option] if want else []
        payload = self._base(channel, message)
        payload["state"] = {
            "values": {
                block["block_id"]: {
                    element["action_id"]: {"type": "checkboxes", "selected_options": selected}
                }
            }
        }
        payload["actions"] = [
            {
                "type": "checkboxes",
                "action_id": element["action_id"],
                "block_id": block.get("block_id") or "Xy1Z",  # Slack generates ids for blocks without one
                "selected_options": selected,
                "action_ts": action_ts or f"{time.time():.6f}",
            }
        ]
        return self.interact(payload)

    def click_button(
        self, channel: str, message: dict[str, Any], action_id: str, *, value: str | None = None
    ) -> httpx.Response:
        block, element = find_button(message, action_id)
        payload = self._base(channel, message)
        payload["actions"] = [
            {
                "type": "button",
                "action_id": action_id,
                "block_id": block.get("block_id") or "Xy1Z",  # Slack generates ids for blocks without one
                "value": value if value is not None else element.get("value", ""),
                "text": element["text"],
                "action_ts": f"{time.time():.6f}",
            }
        ]
        return self.interact(payload)


def find_item(message: dict[str, Any], item_key: str) -> tuple[dict[str, Any], dict[str, Any]]:
    for block in message.get("blocks", []):
        acc = block.get("accessory") or {}
        if acc.get("type") == "checkboxes" and any(o["value"] == item_key for o in acc.get("options", [])):
            return block, acc
    raise AssertionError(f"item {item_key} not in message {message.get('ts')}")


def find_button(message: dict[str, Any], action_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    for block in message.get("blocks", []):
        for element in block.get("elements", []) if block.get("type") == "actions" else []:
            if element.get("action_id") == action_id:
                return block, element
    raise AssertionError(f"no button {action_id} in message {message.get('ts')}: {buttons(message)}")


def buttons(message: dict[str, Any]) -> list[str]:
    return [
        e.get("action_id")
        for b in message.get("blocks", [])
        if b.get("type") == "actions"
        for e in b.get("elements", [])
    ]


def submit_view(user: SlackUser, view: dict[str, Any], reason: str) -> httpx.Response:
    """Submit a modal the bot opened, with a reason typed into it."""
    payload = {
        "type": "view_submission",
        "team": TEAM,
        "user": {"id": user.user_id, "username": user.name, "name": user.name, "team_id": TEAM["id"]},
        "api_app_id": "A0RELEASE1",
        "token": "legacy",
        "trigger_id": f"7234567890777.1234567890.{time.monotonic_ns():x}",
        "view": {
            "id": "V0FAKE0001",
            "type": "modal",
            "callback_id": view["callback_id"],
            "private_metadata": view.get("private_metadata", ""),
            "blocks": view["blocks"],
            "state": {"values": {"reason": {"reason": {"type": "plain_text_input", "value": reason}}}},
            "hash": "1718040300.abcdef",
        },
        "response_urls": [],
    }
    return user.interact(payload)
