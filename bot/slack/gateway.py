"""The outbound Slack Web API: one place that paces posts, translates errors and never leaks tokens."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.webhook import WebhookClient

from bot.errors import ChatError, NotLeader
from bot.observability import SLACK_API_ERRORS, SLACK_CALLS

log = logging.getLogger(__name__)

# Errors after which the same call may succeed later; anything else is our bug or the channel's state.
_RETRYABLE = {"ratelimited", "service_unavailable", "internal_error", "fatal_error", "request_timeout"}


def permalink(team_domain: str | None, channel_id: str, ts: str | None) -> str:
    """A link to a message built without an API call (Slack's archive URL scheme)."""
    if not ts:
        return f"<#{channel_id}>"
    host = f"https://{team_domain}.slack.com" if team_domain else "https://slack.com"
    return f"{host}/archives/{channel_id}/p{ts.replace('.', '')}"


class ChannelPacer:
    """Keeps new posts to one per interval per channel (Slack's chat.postMessage limit).

    With ``shared`` (``bot.db.pacing``: the replicas' turns in the database), turns are taken there, so that
    replicas posting in one channel keep the pace together; when the database cannot answer, this process's own
    pace is kept, as without it."""

    def __init__(
        self,
        interval_s: float = 1.1,  # a little over Slack's 1/s, so clock skew never tips a post into a 429
        *,
        shared: Callable[[str, float], float] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._interval = interval_s
        self._shared = shared
        self._next: dict[str, float] = {}
        self._lock = threading.Lock()
        self._monotonic = monotonic
        self._sleep = sleep

    @property
    def interval_s(self) -> float:
        return self._interval

    def wait(self, channel: str) -> None:
        if self._shared is not None and self._interval > 0:
            try:
                pause = self._shared(channel, self._interval)
            except Exception as e:
                log.warning("post turns from the database failed (%s); pacing this process alone", type(e).__name__)
            else:
                with self._lock:  # what this process knows of the channel's next turn (``free_in``)
                    self._next[channel] = max(
                        self._next.get(channel, 0.0), self._monotonic() + max(pause, 0.0) + self._interval
                    )
                if pause > 0:
                    self._sleep(pause)
                return
        with self._lock:
            now = self._monotonic()
            slot = max(now, self._next.get(channel, 0.0))
            self._next[channel] = slot + self._interval
        if slot > now:
            self._sleep(slot - now)


    def free_in(self, channel: str) -> float:
        """Seconds until the channel's next turn as far as this process knows (its own posts; another replica's
        post in the channel is learnt only when waiting for the turn). 0.0 when a post may go now."""
        with self._lock:
            return max(0.0, self._next.get(channel, 0.0) - self._monotonic())


class UpdatePacer:
    """Keeps chat.update within Slack's Tier 3 for the whole workspace: a token bucket of ``burst`` refilled at
    ``per_minute`` a minute. ``per_minute=None`` paces nothing (tests that are not about pacing).

    Tier 3 is "50+ a minute" per app per workspace (reference/slack.md §6), shared by every replica. So only the
    leader spends it (``may_update``): another replica redraws what it can through the clicks' own response_url,
    and leaves the rest to the leader, whose sweep finds every message the database says Slack has not seen.
    """

    def __init__(
        self,
        per_minute: float | None = 45.0,  # under 50: a minute of the bucket's own drift never tips into a 429
        burst: int = 8,  # under the short bursts Slack tolerates
        *,
        may_update: Callable[[], bool] = lambda: True,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._rate = None if per_minute is None else per_minute / 60.0
        self._burst = float(burst)
        self._tokens = float(burst)
        self._at = monotonic()
        self._lock = threading.Lock()
        self.may_update = may_update
        self._monotonic = monotonic
        self._sleep = sleep

    @classmethod
    def unlimited(cls) -> UpdatePacer:
        return cls(None)

    def take(self) -> float:
        """0.0 when an update may go now (its token taken), else the seconds until one may (nothing taken)."""
        if self._rate is None:
            return 0.0
        with self._lock:
            now = self._monotonic()
            self._tokens = min(self._burst, self._tokens + (now - self._at) * self._rate)
            self._at = now
            if self._tokens >= 1:
                self._tokens -= 1
                return 0.0
            return (1 - self._tokens) / self._rate

    def give_back(self) -> None:
        """An update taken for but not sent (it went through a response_url instead)."""
        if self._rate is not None:
            with self._lock:
                self._tokens = min(self._burst, self._tokens + 1)

    def wait(self) -> None:
        while (pause := self.take()) > 0:
            self._sleep(pause)


class SlackGateway:
    """Posts, updates and ephemeral replies, with Slack's errors turned into ``ChatError``."""

    def __init__(
        self, client: WebClient, *, pacer: ChannelPacer | None = None, update_pacer: UpdatePacer | None = None
    ) -> None:
        self.client = client
        self._pacer = pacer or ChannelPacer()
        self.update_pacer = update_pacer or UpdatePacer()

    def _call(self, method: str, fn: Callable[..., Any], **kwargs: Any) -> Any:
        SLACK_CALLS.labels(method=method).inc()
        try:
            return fn(**kwargs)
        except SlackApiError as e:
            code = (
                str(e.response.get("error", "unknown_error")) if e.response is not None else "unknown_error"
            )
            status = getattr(e.response, "status_code", 200)
            SLACK_API_ERRORS.labels(method=method, error=code).inc()
            retryable = code in _RETRYABLE or status == 429 or status >= 500
            raise ChatError("post_failed", code=code, retryable=retryable) from None
        except (SlackClientError, OSError) as e:
            # Connection refused, timeouts, DNS: Slack is unreachable for now.
            SLACK_API_ERRORS.labels(method=method, error="unreachable").inc()
            raise ChatError("post_failed", code="unreachable", retryable=True) from e

    def turn_free_in(self, channel: str) -> float:
        """Seconds until a post in ``channel`` would go without waiting for its turn (``ChannelPacer.free_in``)."""
        return self._pacer.free_in(channel)

    @property
    def pace_s(self) -> float:
        """Seconds between two posts in one channel."""
        return self._pacer.interval_s

    def post(
        self,
        channel: str,
        text: str,
        blocks: list[dict[str, Any]] | None = None,
        *,
        thread_ts: str | None = None,
        broadcast: bool = False,
        marker: str | None = None,
        markers: list[str] | None = None,
        still: Callable[[], bool] | None = None,
        timings: dict[str, float] | None = None,
    ) -> str:
        """Post a message (paced per channel) and return its ts.

        ``marker`` is stored as message metadata so a restarted bot can tell whether this post happened. ``still``
        is asked after the pacing wait, just before sending: a leader's post raises ``NotLeader`` instead of
        going out once the lease was not confirmed in time (the pacing can hold a post for a second or more).
        ``timings`` gets ``turn_s`` (waiting for the channel's turn) and ``call_s`` (Slack's round trip).
        """
        began = time.monotonic()
        self._pacer.wait(channel)
        turn = time.monotonic()
        if still is not None and not still():
            raise NotLeader("the lease was not confirmed in time to post")
        kwargs: dict[str, Any] = {
            "channel": channel,
            "text": text,
            "unfurl_links": False,
            "unfurl_media": False,
        }
        if marker or markers:
            payload: dict[str, Any] = {"marker": marker} if marker else {}
            if markers:
                # One post for several reminders (``channel_markers``); one string, the safest of metadata's types.
                payload["markers"] = " ".join(markers)
            kwargs["metadata"] = {"event_type": "release_bot_post", "event_payload": payload}
        if blocks is not None:
            kwargs["blocks"] = blocks
        if thread_ts:
            kwargs["thread_ts"] = thread_ts
            if broadcast:
                kwargs["reply_broadcast"] = True
        response = self._call("chat.postMessage", self.client.chat_postMessage, **kwargs)
        if timings is not None:
            timings["turn_s"] = turn - began
            timings["call_s"] = time.monotonic() - turn
        return str(response["ts"])

    def thread_markers(self, channel: str, thread_ts: str) -> dict[str, str]:
        """Markers of the bot's posts in a thread → their ts (used only to settle interrupted reminders).

        Follows the cursor through the whole thread: a long release thread must not hide the newest reminders.
        """
        found: dict[str, str] = {}
        cursor: str | None = None
        for _page in range(50):  # 50 × 200 replies: far beyond any release thread
            kwargs: dict[str, Any] = {
                "channel": channel,
                "ts": thread_ts,
                "include_all_metadata": True,
                "limit": 200,
            }
            if cursor:
                kwargs["cursor"] = cursor
            response = self._call("conversations.replies", self.client.conversations_replies, **kwargs)
            for message in response.get("messages", []):
                payload = (message.get("metadata") or {}).get("event_payload") or {}
                if isinstance(payload.get("marker"), str):
                    found[payload["marker"]] = str(message.get("ts"))
            cursor = (response.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                break
        return found

    def channel_markers(self, channel: str, pages: int = 5) -> dict[str, str]:
        """Markers of the bot's newest top-level posts in a channel → their ts, newest first up to ``pages`` × 200
        messages (used only to settle interrupted reminders that went out together: ``TimerPoster.post_together``).

        A post carrying several timers' markers (``markers``) maps each of them to its ts."""
        found: dict[str, str] = {}
        cursor: str | None = None
        for _page in range(pages):
            kwargs: dict[str, Any] = {"channel": channel, "include_all_metadata": True, "limit": 200}
            if cursor:
                kwargs["cursor"] = cursor
            response = self._call("conversations.history", self.client.conversations_history, **kwargs)
            for message in response.get("messages", []):
                payload = (message.get("metadata") or {}).get("event_payload") or {}
                markers = payload.get("markers")
                for marker in [payload.get("marker"), *(markers.split() if isinstance(markers, str) else [])]:
                    if isinstance(marker, str):
                        found.setdefault(marker, str(message.get("ts")))
            cursor = (response.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                break
        return found

    def update(
        self, channel: str, ts: str, text: str, blocks: list[dict[str, Any]], *, paced: bool = False
    ) -> None:
        """chat.update; ``paced``: the caller has taken its turn from ``update_pacer`` already."""
        if not paced:
            self.update_pacer.wait()
        self._call("chat.update", self.client.chat_update, channel=channel, ts=ts, text=text, blocks=blocks)

    def replace_through(self, response_url: str, text: str, blocks: list[dict[str, Any]]) -> bool:
        """Redraw the message a click came from through the click's response_url (``replace_original``): not a
        Web API method, so no tier counts it. False when Slack would not take it (used up, expired, down)."""
        SLACK_CALLS.labels(method="response_url.replace").inc()
        try:
            answer = WebhookClient(url=response_url, timeout=5).send(
                text=text, blocks=blocks, replace_original=True
            )
        except (SlackClientError, OSError):
            return False
        return bool(answer.status_code == 200)

    def ephemeral(
        self, channel: str, user: str, text: str, blocks: list[dict[str, Any]] | None = None
    ) -> None:
        kwargs: dict[str, Any] = {"channel": channel, "user": user, "text": text}
        if blocks is not None:
            kwargs["blocks"] = blocks
        self._call("chat.postEphemeral", self.client.chat_postEphemeral, **kwargs)

    def open_view(self, trigger_id: str, view: dict[str, Any]) -> None:
        self._call("views.open", self.client.views_open, trigger_id=trigger_id, view=view)

    def publish_home(self, user_id: str, view: dict[str, Any]) -> None:
        self._call("views.publish", self.client.views_publish, user_id=user_id, view=view)

    def upload_file(
        self,
        channel: str,
        content: bytes,
        filename: str,
        *,
        title: str | None = None,
        thread_ts: str | None = None,
        initial_comment: str | None = None,
    ) -> str:
        """Share a file in a channel or thread (files_upload_v2: upload URL, upload, complete); return its id."""
        kwargs: dict[str, Any] = {
            "channel": channel,
            "content": content,
            "filename": filename,
            "title": title or filename,
        }
        if thread_ts:
            kwargs["thread_ts"] = thread_ts
        if initial_comment:
            kwargs["initial_comment"] = initial_comment
        response = self._call("files.uploadV2", self.client.files_upload_v2, **kwargs)
        files = response.get("files") or [{}]
        return str(files[0].get("id", ""))

    def usergroup_members(self, usergroup: str) -> list[str]:
        response = self._call("usergroups.users.list", self.client.usergroups_users_list, usergroup=usergroup)
        return [str(u) for u in response.get("users", [])]

    def conversation_members(self, channel: str, *, max_pages: int = 100) -> list[str]:
        """Every member of a conversation (conversations.members, 200 a page as Slack recommends)."""
        members: list[str] = []
        cursor: str | None = None
        for _page in range(max_pages):
            kwargs: dict[str, Any] = {"channel": channel, "limit": 200}
            if cursor:
                kwargs["cursor"] = cursor
            response = self._call("conversations.members", self.client.conversations_members, **kwargs)
            members += [str(u) for u in response.get("members", [])]
            cursor = (response.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                break
        return members

    def respond(
        self, response_url: str | None, text: str, *, replace_original: bool = False, retry_for_s: float = 0.0
    ) -> None:
        """Answer through a payload's response_url; it is not a Web API call and has its own 5-use limit.

        With ``retry_for_s``, an answer Slack cannot take now is tried again in the background, with backoff, for
        that long (a response_url stays valid for 30 minutes): the person hears once Slack is back."""
        if not response_url:
            return
        if self._send_response(response_url, text, replace_original):
            return
        if retry_for_s <= 0:
            log.warning("could not answer through response_url")
            return
        log.warning("could not answer through response_url; trying again for %.0f s", retry_for_s)
        deadline = time.monotonic() + retry_for_s

        def again() -> None:
            pause = 1.0
            while time.monotonic() + pause < deadline:
                time.sleep(pause)
                if self._send_response(response_url, text, replace_original):
                    log.info("answered through response_url once Slack was back")
                    return
                pause = min(pause * 2, 30.0)
            log.warning("gave up answering through response_url after %.0f s", retry_for_s)

        threading.Thread(target=again, name="respond-retry", daemon=True).start()

    @staticmethod
    def _send_response(response_url: str, text: str, replace_original: bool) -> bool:
        try:
            answer = WebhookClient(url=response_url, timeout=5).send(
                text=text, response_type="ephemeral", replace_original=replace_original
            )
        except (SlackClientError, OSError):
            return False
        return bool(answer.status_code < 500)
