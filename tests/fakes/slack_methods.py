"""State and Web API method handlers of the fake Slack (the HTTP server lives in ``slack_api``).

Each ``_m_<method>`` takes decoded params and returns the ``ok: true`` body, or raises ``SlackError`` with
the error code the real API uses for that case (reference/slack.md §5, §11). Callers hold the lock.
"""

from __future__ import annotations

import base64
import copy
import json
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from .blockkit_limits import (
    BLOCK_TEXT_CAP,
    VIEW_MAX_BYTES,
    block_text_chars,
    validate_blocks,
    validate_view,
    view_size,
)

TEAM_ID = "T0ABCDEF1"
BOT_USER_ID = "U0BOTUSER1"
BOT_ID = "B0BOT00001"
APP_ID = "A0RELEASE1"
PERMALINK_HOST = "https://fake.slack.test"
TS_BASE = 1718040000
POST_TEXT_MAX = 40_000
MEMBERS_LIMIT_MAX = 999  # conversations.members: "an integer with a max value of 999"
HISTORY_LIMIT_MAX = 999  # conversations.history: the same documented maximum
TIER_4_PER_MINUTE = 100  # conversations.members is Tier 4: 100+ a minute; over it, 429 with Retry-After
UPDATE_TEXT_MAX = 4_000


class SlackError(Exception):
    """An ``ok: false`` answer: ``error`` plus extra top-level fields (``errors``, ``response_metadata``)."""

    def __init__(self, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.extra = extra


@dataclass
class FakeFile:
    """A file uploaded through files.getUploadURLExternal → upload URL → files.completeUploadExternal."""

    file_id: str
    filename: str
    length: int
    data: bytes | None = None
    title: str | None = None
    channel: str | None = None
    thread_ts: str | None = None
    initial_comment: str | None = None
    completed: bool = False


def _truthy(value: Any) -> bool:
    return value is True or str(value).lower() in ("1", "true")


def _invalid_arguments(*messages: str) -> SlackError:
    return SlackError("invalid_arguments", response_metadata={"messages": [f"[ERROR] {m}" for m in messages]})


class SlackState:
    """Workspace state the fake serves: messages, views, files, users, groups, and configuration."""

    _lock: threading.RLock
    _clock: Callable[[], float]

    def reset(self) -> None:
        """Forget everything recorded and configured (the server keeps running)."""
        with self._lock:
            self._calls: list[Any] = []
            self._messages: dict[str, list[dict[str, Any]]] = {}
            self._files: dict[str, FakeFile] = {}
            self._response_urls: dict[str, dict[str, Any]] = {}
            self._faults: list[list[Any]] = []
            self._hooks: list[tuple[str, Any]] = []
            self._post_rate: tuple[float, int] | None = None
            self._buckets: dict[str, tuple[float, float]] = {}
            self._counter = 0
            self._used_triggers: set[str] = set()
            self._known_channels: set[str] | None = None
            self._not_in_channel: set[str] = set()
            self._usergroups: dict[str, dict[str, Any]] = {}
            self._members: dict[str, list[str]] = {}
            self._tier_calls: dict[str, list[float]] = {}
            self._tiers: dict[str, tuple[int, int]] = {}
            self._tier_buckets: dict[str, tuple[float, float]] = {}
            self._users: dict[str, dict[str, Any]] = {}
            self.revoked_tokens: set[str] = set()
            self.ephemerals: list[dict[str, Any]] = []
            self.views: dict[str, dict[str, Any]] = {}
            self.home_views: dict[str, dict[str, Any]] = {}

    # ---- configuration ---------------------------------------------------------------------------------
    def set_known_channels(self, channels: Iterable[str]) -> None:
        """Only these channels exist; any other id answers ``channel_not_found``."""
        with self._lock:
            self._known_channels = set(channels)

    def set_not_in_channel(self, *channels: str) -> None:
        """Private channels the bot is not a member of: posting answers ``not_in_channel``."""
        with self._lock:
            self._not_in_channel.update(channels)

    def set_members(self, channel: str, users: Iterable[str]) -> None:
        """The people in a channel (the bot is always one of them), as conversations.members lists them."""
        with self._lock:
            self._members[channel] = list(users)

    def set_usergroup(self, group_id: str, users: list[str], *, handle: str | None = None) -> None:
        with self._lock:
            self._usergroups[group_id] = {
                "id": group_id,
                "handle": handle or group_id.lower(),
                "users": list(users),
            }

    def set_user(
        self, user_id: str, *, name: str, real_name: str = "", display_name: str = "", **extra: Any
    ) -> None:
        with self._lock:
            self._users[user_id] = {
                "name": name,
                "real_name": real_name or name,
                "display_name": display_name,
                **extra,
            }

    def add_message(
        self, channel: str, text: str, *, user: str = "U061F7AUR", thread_ts: str | None = None
    ) -> str:
        """Seed a message someone else posted (the bot cannot update it); returns its ts."""
        with self._lock:
            return str(self._new_message(channel, text=text, blocks=[], thread_ts=thread_ts, user=user)["ts"])

    # ---- reading state ---------------------------------------------------------------------------------
    @property
    def messages(self) -> dict[str, list[dict[str, Any]]]:
        """Snapshot: channel → current messages (ts, thread_ts, text, blocks, updated, reactions, ...)."""
        with self._lock:
            return copy.deepcopy(self._messages)

    @property
    def files(self) -> dict[str, FakeFile]:
        with self._lock:
            return copy.deepcopy(self._files)

    def message(self, channel: str, ts: str) -> dict[str, Any]:
        """The current state of one message; KeyError (with what exists) if there is none."""
        with self._lock:
            found = self._find(channel, ts)
            if found is None:
                have = [m["ts"] for m in self._messages.get(channel, [])]
                raise KeyError(f"no message {ts} in {channel}; have {have}")
            return copy.deepcopy(found)

    def thread(self, channel: str, thread_ts: str) -> list[dict[str, Any]]:
        """Replies under ``thread_ts`` (the parent excluded), oldest first."""
        with self._lock:
            msgs = self._messages.get(channel, [])
            return copy.deepcopy([m for m in msgs if m["thread_ts"] == thread_ts and m["ts"] != thread_ts])

    # ---- helpers ---------------------------------------------------------------------------------------
    def _next(self) -> int:
        self._counter += 1
        return self._counter

    def _next_ts(self) -> str:
        n = self._next() * 100
        return f"{TS_BASE + n // 1_000_000}.{n % 1_000_000:06d}"

    def _find(self, channel: str, ts: Any) -> dict[str, Any] | None:
        return next((m for m in self._messages.get(channel, []) if m["ts"] == ts), None)

    def _channel(self, params: dict[str, Any], key: str = "channel", *, member: bool = True) -> str:
        channel = str(params.get(key) or "")
        if channel[:1] in ("U", "W"):  # posting to a user id opens (and answers with) the DM channel
            return "D" + channel[1:]
        known = channel in self._known_channels if self._known_channels is not None else channel[:1] in "CGD"
        if not channel or not known:
            raise SlackError("channel_not_found")
        if member and channel in self._not_in_channel:
            raise SlackError("not_in_channel")
        return channel

    @staticmethod
    def _blocks(params: dict[str, Any]) -> list[Any] | None:
        blocks = params.get("blocks")
        if blocks is None or blocks == []:
            return None
        if not isinstance(blocks, list):
            raise SlackError("invalid_blocks_format")
        errors = validate_blocks(blocks, "message")
        if errors:
            messages = [f"[ERROR] {e}" for e in errors]
            raise SlackError("invalid_blocks", errors=errors, response_metadata={"messages": messages})
        if block_text_chars(blocks) > BLOCK_TEXT_CAP:
            raise SlackError("msg_blocks_too_long")
        return blocks

    def _new_message(
        self, channel: str, *, text: str, blocks: list[Any] | None, **fields: Any
    ) -> dict[str, Any]:
        msg: dict[str, Any] = {
            "type": "message",
            "channel": channel,
            "ts": self._next_ts(),
            "user": BOT_USER_ID,
            "bot_id": BOT_ID,
        }
        msg.update(text=text, blocks=blocks or [], thread_ts=None, updated=0, reactions=[], reply_count=0)
        msg.update(fields)
        if msg["user"] != BOT_USER_ID:
            msg.pop("bot_id")
        self._messages.setdefault(channel, []).append(msg)
        return msg

    @staticmethod
    def _public(msg: dict[str, Any]) -> dict[str, Any]:
        keys = ("type", "user", "bot_id", "text", "ts", "blocks", "thread_ts", "edited")
        out = {k: copy.deepcopy(msg[k]) for k in keys if msg.get(k) is not None}
        if "bot_id" in out:
            out["app_id"] = APP_ID
        return out

    # ---- auth, chat ------------------------------------------------------------------------------------
    def _m_auth_test(self, p: dict[str, Any]) -> dict[str, Any]:
        return {
            "url": "https://acme.fake.slack.test/",
            "team": "Acme",
            "user": "releasebot",
            "team_id": TEAM_ID,
        } | {
            "user_id": BOT_USER_ID,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    def _m_chat_postMessage(self, p: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(p)
        blocks = self._blocks(p)
        text = str(p.get("text") or "")
        if not text and not blocks and not p.get("attachments"):
            raise SlackError("no_text")
        extra: dict[str, Any] = {}
        if len(text) > POST_TEXT_MAX:
            text = text[:POST_TEXT_MAX]
            extra = {"warning": "message_truncated", "response_metadata": {"warnings": ["message_truncated"]}}
        thread_ts = p.get("thread_ts") or None
        if thread_ts is not None:
            parent = self._find(channel, thread_ts)
            if parent is None:
                raise SlackError("thread_not_found")
            if parent["thread_ts"] not in (None, parent["ts"]):
                raise SlackError("cannot_reply_to_message")
            parent["thread_ts"] = parent["ts"]
            parent["reply_count"] += 1
        msg = self._new_message(
            channel,
            text=text,
            blocks=blocks,
            thread_ts=thread_ts,
            reply_broadcast=_truthy(p.get("reply_broadcast")),
        )
        metadata = p.get("metadata")
        if isinstance(metadata, str):
            metadata = json.loads(metadata)
        if metadata:
            # Message metadata (event_type + event_payload): returned by conversations.replies on request.
            msg["metadata"] = metadata
        return {"channel": channel, "ts": msg["ts"], "message": self._public(msg), **extra}

    def _m_chat_update(self, p: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(p, member=False)
        msg = self._find(channel, p.get("ts"))
        if msg is None:
            raise SlackError("message_not_found")
        if msg["user"] != BOT_USER_ID:
            raise SlackError("cant_update_message")
        text = p.get("text")
        if text is not None and len(str(text)) > UPDATE_TEXT_MAX:
            raise SlackError("msg_too_long")
        blocks = self._blocks(p)
        if text is None and "blocks" not in p:
            raise SlackError("no_text")
        if text is not None:
            msg["text"] = str(text)
        if "blocks" in p:  # omitted blocks are kept, an explicit [] clears them (as Slack does)
            msg["blocks"] = blocks or []
        msg["updated"] += 1
        msg["edited"] = {"user": BOT_USER_ID, "ts": self._next_ts()}
        return {"channel": channel, "ts": msg["ts"], "text": msg["text"], "message": self._public(msg)}

    def _m_chat_postEphemeral(self, p: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(p)
        if not str(p.get("user") or "").startswith(("U", "W")):
            raise SlackError("user_not_found")
        blocks = self._blocks(p)
        if not p.get("text") and not blocks:
            raise SlackError("no_text")
        ts = self._next_ts()
        self.ephemerals.append(
            {"channel": channel, "user": p["user"], "text": str(p.get("text") or "")}
            | {"blocks": blocks or [], "thread_ts": p.get("thread_ts"), "message_ts": ts}
        )
        return {"message_ts": ts}

    def _m_chat_delete(self, p: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(p, member=False)
        msg = self._find(channel, p.get("ts"))
        if msg is None:
            raise SlackError("message_not_found")
        if msg["user"] != BOT_USER_ID:
            raise SlackError("cant_delete_message")
        self._messages[channel].remove(msg)
        return {"channel": channel, "ts": msg["ts"]}

    def _m_chat_getPermalink(self, p: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(p, member=False)
        msg = self._find(channel, p.get("message_ts"))
        if msg is None:
            raise SlackError("message_not_found")
        link = f"{PERMALINK_HOST}/archives/{channel}/p{msg['ts'].replace('.', '')}"
        if msg["thread_ts"] not in (None, msg["ts"]):
            link += f"?thread_ts={msg['thread_ts']}&cid={channel}"
        return {"channel": channel, "permalink": link}

    def _m_reactions_add(self, p: dict[str, Any]) -> dict[str, Any]:
        msg = self._find(self._channel(p), p.get("timestamp"))
        if msg is None:
            raise SlackError("message_not_found")
        name = str(p.get("name") or "")
        if not name:
            raise SlackError("invalid_name")
        if name in msg["reactions"]:
            raise SlackError("already_reacted")
        msg["reactions"].append(name)
        return {}

    def _apply_response(self, body: dict[str, Any], channel: str | None, ts: str | None) -> None:
        """Apply a response_url POST to the message it came from, the channel, or the ephemeral list."""
        blocks = self._blocks(body)
        if not body.get("text") and not blocks and not _truthy(body.get("delete_original")):
            raise SlackError("no_text")
        source = self._find(channel, ts) if channel and ts else None
        if _truthy(body.get("delete_original")):
            if source is not None:
                self._messages[str(channel)].remove(source)
        elif _truthy(body.get("replace_original")) and source is not None:
            source.update(
                text=str(body.get("text") or ""), blocks=blocks or [], updated=source["updated"] + 1
            )
        elif body.get("response_type") == "in_channel" and channel:
            self._new_message(channel, text=str(body.get("text") or ""), blocks=blocks)
        else:
            self.ephemerals.append({"channel": channel, "text": body.get("text"), "blocks": blocks or []})

    # ---- views -----------------------------------------------------------------------------------------
    def _view(self, p: dict[str, Any], kind: str) -> dict[str, Any]:
        view = p.get("view")
        if not isinstance(view, dict):
            raise _invalid_arguments("missing required field: view [json-pointer:/view]")
        if view_size(view) > VIEW_MAX_BYTES:
            raise SlackError("view_too_large")
        errors = validate_view(view)
        if not errors and view.get("type") != kind:
            errors = [f"must be {kind} [json-pointer:/view/type]"]
        if errors:
            raise _invalid_arguments(*errors)
        return view

    def _trigger(self, p: dict[str, Any]) -> None:
        trigger = str(p.get("trigger_id") or "")
        if not trigger or trigger.startswith("invalid"):
            raise SlackError("invalid_trigger_id")
        if trigger.startswith("expired"):
            raise SlackError("expired_trigger_id")
        if trigger in self._used_triggers:
            raise SlackError("exchanged_trigger_id")
        self._used_triggers.add(trigger)

    def _store_view(self, view: dict[str, Any], view_id: str | None = None) -> dict[str, Any]:
        n = self._next()
        stored = copy.deepcopy(view) | {"id": view_id or f"V{n:010d}", "team_id": TEAM_ID, "app_id": APP_ID}
        stored |= {"bot_id": BOT_ID, "hash": f"{TS_BASE + n}.{n:08x}", "state": {"values": {}}}
        self.views[stored["id"]] = stored
        return {"view": copy.deepcopy(stored)}

    def _m_views_open(self, p: dict[str, Any]) -> dict[str, Any]:
        view = self._view(p, "modal")
        self._trigger(p)
        return self._store_view(view)

    _m_views_push = _m_views_open

    def _m_views_update(self, p: dict[str, Any]) -> dict[str, Any]:
        view = self._view(p, "modal")
        key = p.get("view_id") or p.get("external_id")
        current = next((v for v in self.views.values() if key in (v["id"], v.get("external_id"))), None)
        if not key or current is None:
            raise SlackError("not_found")
        if p.get("hash") and p["hash"] != current["hash"]:
            raise SlackError("hash_conflict")
        return self._store_view(view, current["id"])

    def _m_views_publish(self, p: dict[str, Any]) -> dict[str, Any]:
        user = str(p.get("user_id") or "")
        if not user.startswith(("U", "W")):
            raise SlackError("user_not_found")
        view = self._view(p, "home")
        current = self.home_views.get(user)
        if p.get("hash") and current is not None and p["hash"] != current["hash"]:
            raise SlackError("hash_conflict")
        result = self._store_view(view, current["id"] if current else None)
        self.home_views[user] = result["view"]
        return result

    # ---- users, groups, conversations ------------------------------------------------------------------
    def _m_users_info(self, p: dict[str, Any]) -> dict[str, Any]:
        user = str(p.get("user") or "")
        if user not in self._users and not user.startswith(("U", "W")):
            raise SlackError("user_not_found")
        info = self._users.get(user) or {
            "name": user.lower(),
            "real_name": f"User {user}",
            "display_name": "",
        }
        profile = {"real_name": info["real_name"], "display_name": info["display_name"]}
        rest = {k: v for k, v in info.items() if k not in ("name", "real_name", "display_name")}
        return {
            "user": {"id": user, "team_id": TEAM_ID, "name": info["name"], "real_name": info["real_name"]}
            | {"deleted": False, "is_bot": user == BOT_USER_ID, "tz": "UTC", "profile": profile}
            | rest
        }

    def _m_usergroups_users_list(self, p: dict[str, Any]) -> dict[str, Any]:
        group = self._usergroups.get(str(p.get("usergroup") or ""))
        if group is None:
            raise SlackError("no_such_subteam")
        return {"users": list(group["users"])}

    def _m_usergroups_list(self, p: dict[str, Any]) -> dict[str, Any]:
        groups = [
            {
                "id": g["id"],
                "team_id": TEAM_ID,
                "handle": g["handle"],
                "name": g["handle"],
                "user_count": len(g["users"]),
            }
            | ({"users": list(g["users"])} if _truthy(p.get("include_users")) else {})
            for g in self._usergroups.values()
        ]
        return {"usergroups": groups}

    def _conversation(self, channel: str) -> dict[str, Any]:
        return {
            "id": channel,
            "name": channel.lower(),
            "is_channel": channel[0] == "C",
            "is_im": channel[0] == "D",
        } | {"is_private": channel[0] == "G", "is_member": channel not in self._not_in_channel}

    def _m_conversations_info(self, p: dict[str, Any]) -> dict[str, Any]:
        return {"channel": self._conversation(self._channel(p, member=False))}

    def _m_conversations_replies(self, p: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(p, member=False)
        ts = str(p.get("ts") or "")
        parent = self._find(channel, ts)
        if parent is None:
            raise SlackError("thread_not_found")
        with_metadata = _truthy(p.get("include_all_metadata"))
        out = []
        for m in self._messages.get(channel, []):
            if m["ts"] == ts or m["thread_ts"] == ts:
                public = self._public(m)
                if with_metadata and m.get("metadata"):
                    public["metadata"] = m["metadata"]
                out.append(public)
        return {"messages": out, "has_more": False}

    def _m_conversations_history(self, p: dict[str, Any]) -> dict[str, Any]:
        """A channel's messages, newest first: top-level ones and replies also sent to the channel, not other thread
        replies. Paginated by an opaque cursor; ``limit`` 1-999 (Slack's documented maximum), 100 when omitted."""
        channel = self._channel(p)
        with_metadata = _truthy(p.get("include_all_metadata"))
        shown = [
            m
            for m in reversed(self._messages.get(channel, []))
            if m["thread_ts"] in (None, m["ts"]) or m.get("reply_broadcast")
        ]
        page, cursor = _page(p, shown, HISTORY_LIMIT_MAX)
        out = []
        for m in page:
            public = self._public(m)
            if with_metadata and m.get("metadata"):
                public["metadata"] = m["metadata"]
            out.append(public)
        return {"messages": out, "has_more": bool(cursor), "response_metadata": {"next_cursor": cursor}}

    def _m_conversations_members(self, p: dict[str, Any]) -> dict[str, Any]:
        """Paginated user ids of a channel. A private channel the bot is not in does not exist for it."""
        channel = self._channel(p, member=False)
        if channel in self._not_in_channel and channel[0] == "G":
            raise SlackError("channel_not_found")
        if channel[0] == "D":
            raise SlackError("method_not_supported_for_channel_type")
        members, cursor = _page(p, [BOT_USER_ID, *self._members.get(channel, [])], MEMBERS_LIMIT_MAX)
        return {"members": members, "response_metadata": {"next_cursor": cursor}}

    def _m_conversations_join(self, p: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(p, member=False)
        if channel[0] != "C":  # only public channels can be joined; private ones need an invite
            raise SlackError("method_not_supported_for_channel_type")
        self._not_in_channel.discard(channel)
        return {"channel": self._conversation(channel)}

    # ---- files (upload v2) -----------------------------------------------------------------------------
    def _m_files_upload(self, p: dict[str, Any]) -> dict[str, Any]:
        raise SlackError("method_deprecated")  # files.upload is retired: use files_upload_v2

    def _m_files_getUploadURLExternal(self, p: dict[str, Any]) -> dict[str, Any]:
        filename, length = str(p.get("filename") or ""), str(p.get("length") or "")
        if not filename or not length.isdigit():
            raise _invalid_arguments("filename and a numeric length are required")
        file_id = f"F{self._next():010d}"
        self._files[file_id] = FakeFile(file_id=file_id, filename=filename, length=int(length))
        # The port is only known to the server; slack_api's subclass supplies base_url.
        return {"upload_url": f"{self.base_url.removesuffix('api/')}upload/{file_id}", "file_id": file_id}

    def _m_files_completeUploadExternal(self, p: dict[str, Any]) -> dict[str, Any]:
        items = p.get("files")
        if not isinstance(items, list) or not items:
            raise _invalid_arguments("files must be a non-empty list")
        channel = self._channel(p, "channel_id") if p.get("channel_id") else None
        uploads = [self._files.get(str(item.get("id"))) for item in items if isinstance(item, dict)]
        if len(uploads) != len(items) or any(u is None or u.data is None for u in uploads):
            raise SlackError("file_not_found")
        done = []
        for item, upload in zip(items, uploads, strict=True):
            assert upload is not None
            upload.title = str(item.get("title") or upload.filename)
            upload.channel, upload.thread_ts = channel, p.get("thread_ts")
            upload.initial_comment, upload.completed = p.get("initial_comment"), True
            done.append(
                {"id": upload.file_id, "name": upload.filename, "title": upload.title, "size": upload.length}
            )
        return {"files": done}

    @property
    def base_url(self) -> str:
        raise NotImplementedError


def _page(p: dict[str, Any], items: list[Any], limit_max: int) -> tuple[list[Any], str]:
    """One page of ``items`` by ``limit`` (1..``limit_max``, 100 when omitted) and an opaque ``cursor``, as Slack's
    paginated methods answer; the next page's cursor, "" after the last."""
    raw_limit = str(p.get("limit") or "100")
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= limit_max:
        raise SlackError("invalid_limit")
    start = 0
    if p.get("cursor"):
        try:
            start = int(base64.b64decode(str(p["cursor"]), validate=True).decode().removeprefix("offset:"))
        except ValueError:
            raise SlackError("invalid_cursor") from None
        if not 0 < start < len(items):
            raise SlackError("invalid_cursor")
    end = start + int(raw_limit)
    cursor = base64.b64encode(f"offset:{end}".encode()).decode() if end < len(items) else ""
    return items[start:end], cursor
