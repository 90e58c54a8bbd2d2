"""An in-process stand-in for the Slack Web API, for ``release-bot playground``.

The real ``WebClient`` talks to it over HTTP on 127.0.0.1, so the bot runs unchanged: posts, updates, ephemeral
messages, modals, the Home tab, file uploads (the three steps of ``files_upload_v2``) and ``response_url``
answers all land here. Every change is appended to ``events`` for the terminal to show. It answers the way Slack
does for the methods the bot uses (``ok``/``error``) and refuses anything else with ``unknown_method``; it is a
stage prop for trying the bot, not a test double.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

_JSON_FIELDS = ("blocks", "view", "metadata", "files", "attachments")


@dataclass
class Message:
    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]]
    thread_ts: str | None = None
    ephemeral_to: str | None = None  # only this user sees it
    rev: int = 0


@dataclass
class Event:
    """Something the person at the terminal should see: a new or changed message, a modal, a Home tab, a file."""

    kind: str  # posted | updated | ephemeral | modal | home | file | aside (the simulated world: pages, metrics)
    message: Message | None = None
    view: dict[str, Any] | None = None
    file: dict[str, Any] | None = None
    text: str | None = None


@dataclass
class Workspace:
    """The stand-in's state; guarded by one lock because the bot calls from several threads."""

    messages: dict[tuple[str, str], Message] = field(default_factory=dict)
    views: dict[str, dict[str, Any]] = field(default_factory=dict)
    home: dict[str, dict[str, Any]] = field(default_factory=dict)
    uploads: dict[str, dict[str, Any]] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)


class SlackStandIn:
    """Serves the Web API methods the bot uses; ``base_url`` goes into ``SLACK_API_URL``."""

    def __init__(self) -> None:
        self.ws = Workspace()
        self.lock = threading.Lock()
        self.last_activity = time.monotonic()
        self._ids = itertools.count(1)
        self._clock = itertools.count(1)
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return None

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length") or 0))
                status, body = stand_in.handle(self.path, self.headers.get("content-type", ""), raw)
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header(
                    "content-type", "application/json" if isinstance(body, dict) else "text/plain"
                )
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True, name="slack-stand-in")

    def start(self) -> SlackStandIn:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/"

    @property
    def base_url(self) -> str:
        return self.root + "api/"

    def response_url(self, channel: str, user: str, message_ts: str | None = None) -> str:
        return f"{self.root}respond/{channel}/{user}/{message_ts or '-'}"

    def _ts(self) -> str:
        return f"{int(time.time())}.{next(self._clock):06d}"

    # --- requests -------------------------------------------------------------------------------------

    def handle(self, path: str, content_type: str, raw: bytes) -> tuple[int, dict[str, Any] | bytes]:
        self.last_activity = time.monotonic()
        if path.startswith("/upload/"):
            return self._upload(path.removeprefix("/upload/"), raw)
        if path.startswith("/respond/"):
            return self._respond(path.removeprefix("/respond/").split("/"), raw)
        if not path.startswith("/api/"):
            return 404, {"ok": False, "error": "unknown_method"}
        params = self._params(content_type, raw)
        method = getattr(self, "_m_" + path.removeprefix("/api/").replace(".", "_"), None)
        if method is None:
            return 200, {"ok": False, "error": "unknown_method"}
        try:
            with self.lock:
                return 200, {"ok": True, **method(params)}
        except LookupError as e:
            return 200, {"ok": False, "error": str(e.args[0])}

    @staticmethod
    def _params(content_type: str, raw: bytes) -> dict[str, Any]:
        if "json" in content_type:
            loaded = json.loads(raw or b"{}")
            return loaded if isinstance(loaded, dict) else {}
        params: dict[str, Any] = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
        for name in _JSON_FIELDS:
            if isinstance(params.get(name), str):
                params[name] = json.loads(params[name])
        return params

    def _emit(self, event: Event) -> None:
        # A copy: the message itself changes with later updates, and each event shows it as it was then.
        self.ws.events.append(dataclasses.replace(event, message=copy.deepcopy(event.message)))

    def aside(self, text: str) -> None:
        """Something from outside Slack to show among its events, in order (a page, a metric sample)."""
        with self.lock:
            self.last_activity = time.monotonic()
            self._emit(Event("aside", text=text))

    # --- chat -----------------------------------------------------------------------------------------

    def _m_auth_test(self, p: dict[str, Any]) -> dict[str, Any]:
        return {
            "user_id": "UBOT000001",
            "bot_id": "BPLAYGROUND",
            "team_id": "TPLAYGRND",
            "team": "playground",
        }

    def _m_chat_postMessage(self, p: dict[str, Any]) -> dict[str, Any]:
        channel = str(p.get("channel") or "")
        if not channel:
            raise LookupError("channel_not_found")
        message = Message(channel, self._ts(), str(p.get("text") or ""), list(p.get("blocks") or []))
        message.thread_ts = p.get("thread_ts") or None
        self.ws.messages[(channel, message.ts)] = message
        self._emit(Event("posted", message))
        return {"channel": channel, "ts": message.ts, "message": {"ts": message.ts, "text": message.text}}

    def _m_chat_update(self, p: dict[str, Any]) -> dict[str, Any]:
        message = self.ws.messages.get((str(p.get("channel")), str(p.get("ts"))))
        if message is None:
            raise LookupError("message_not_found")
        message.text, message.blocks = str(p.get("text") or ""), list(p.get("blocks") or [])
        message.rev += 1
        self._emit(Event("updated", message))
        return {"channel": message.channel, "ts": message.ts}

    def _m_chat_postEphemeral(self, p: dict[str, Any]) -> dict[str, Any]:
        message = Message(
            str(p.get("channel")), self._ts(), str(p.get("text") or ""), list(p.get("blocks") or [])
        )
        message.ephemeral_to = str(p.get("user"))
        self._emit(Event("ephemeral", message))
        return {"message_ts": message.ts}

    def _m_conversations_replies(self, p: dict[str, Any]) -> dict[str, Any]:
        channel, ts = str(p.get("channel")), str(p.get("ts"))
        found = [m for m in self.ws.messages.values() if m.channel == channel and ts in (m.ts, m.thread_ts)]
        return {"messages": [{"ts": m.ts, "text": m.text} for m in found], "has_more": False}

    def _m_conversations_join(self, p: dict[str, Any]) -> dict[str, Any]:
        return {"channel": {"id": p.get("channel")}}

    def _m_usergroups_users_list(self, p: dict[str, Any]) -> dict[str, Any]:
        return {"users": ["UPLAYER01"]}

    def _m_conversations_members(self, p: dict[str, Any]) -> dict[str, Any]:
        # One person in one channel: you (the App Home shows releases of your channels only).
        return {"members": ["UPLAYER01"], "response_metadata": {"next_cursor": ""}}

    def _m_users_info(self, p: dict[str, Any]) -> dict[str, Any]:
        user = str(p.get("user"))
        return {"user": {"id": user, "name": user.lower(), "real_name": user, "tz": "UTC"}}

    # --- views ----------------------------------------------------------------------------------------

    def _m_views_open(self, p: dict[str, Any]) -> dict[str, Any]:
        view = dict(p.get("view") or {})
        view["id"] = f"V{next(self._ids):08d}"
        self.ws.views[view["id"]] = view
        self._emit(Event("modal", view=view))
        return {"view": view}

    def _m_views_update(self, p: dict[str, Any]) -> dict[str, Any]:
        view_id = str(p.get("view_id") or "")
        external_id = p.get("external_id")
        if external_id:  # the rollback dialog is filled in later, found by the id the bot gave it
            view_id = next(
                (v for v, view in self.ws.views.items() if view.get("external_id") == external_id), ""
            )
        if view_id not in self.ws.views:
            raise LookupError("not_found")
        view = {**dict(p.get("view") or {}), "id": view_id}
        self.ws.views[view_id] = view
        self._emit(Event("modal", view=view))
        return {"view": view}

    def _m_views_publish(self, p: dict[str, Any]) -> dict[str, Any]:
        view = dict(p.get("view") or {})
        if len(view.get("blocks") or []) > 100:
            raise LookupError("invalid_arguments")
        self.ws.home[str(p.get("user_id"))] = view
        self._emit(Event("home", view=view))
        return {"view": view}

    # --- files (files_upload_v2) ----------------------------------------------------------------------

    def _m_files_getUploadURLExternal(self, p: dict[str, Any]) -> dict[str, Any]:
        file_id = f"F{next(self._ids):08d}"
        self.ws.uploads[file_id] = {
            "id": file_id,
            "name": p.get("filename"),
            "length": int(p.get("length") or 0),
        }
        return {"upload_url": f"{self.root}upload/{file_id}", "file_id": file_id}

    def _upload(self, file_id: str, raw: bytes) -> tuple[int, bytes]:
        with self.lock:
            upload = self.ws.uploads.get(file_id)
            if upload is None:
                return 404, b"file_not_found"
            upload["data"] = raw
        return 200, f"OK - {len(raw)}".encode()

    def _m_files_completeUploadExternal(self, p: dict[str, Any]) -> dict[str, Any]:
        done = []
        for item in p.get("files") or []:
            upload = self.ws.uploads.get(str(item.get("id")))
            if upload is None or "data" not in upload:
                raise LookupError("file_not_found")
            upload |= {
                "title": item.get("title"),
                "channel": p.get("channel_id"),
                "thread_ts": p.get("thread_ts"),
            }
            self._emit(Event("file", file=upload))
            done.append({"id": upload["id"], "name": upload["name"], "title": upload["title"]})
        return {"files": done}

    # --- response_url ---------------------------------------------------------------------------------

    def _respond(self, parts: list[str], raw: bytes) -> tuple[int, bytes]:
        channel, user, message_ts = [*parts, "-", "-", "-"][:3]
        body = json.loads(raw or b"{}")
        with self.lock:
            original = self.ws.messages.get((channel, message_ts))
            if body.get("replace_original") and original is not None:
                original.text, original.blocks = str(body.get("text") or ""), list(body.get("blocks") or [])
                original.rev += 1
                self._emit(Event("updated", original))
            else:
                message = Message(
                    channel, self._ts(), str(body.get("text") or ""), list(body.get("blocks") or [])
                )
                message.ephemeral_to = user
                self._emit(Event("ephemeral", message))
        return 200, b"ok"
