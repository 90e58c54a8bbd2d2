"""Posts what a release shows in Slack, off the listener threads, and renders its messages from the database."""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from enum import Enum
from typing import Any

from bot.domain.checklist import Checklist
from bot.errors import ChatError, NotLeader
from bot.i18n import t
from bot.observability import release_id as release_ctx
from bot.slack import blocks
from bot.slack.gateway import SlackGateway, permalink
from bot.slack.sync import MessageSync, Rendered
from bot.usecases.releases import POST_CLAIM_LEASE, ReleaseView, Services

log = logging.getLogger(__name__)
RESPOND_RETRY_S = 25 * 60.0  # within the 30 minutes a response_url stays valid


@dataclass(frozen=True)
class Claim:
    """The right to post messages: ``token`` names the attempt in the rows, which nobody else can take over
    before ``held_until`` (``time.monotonic()``); after that each post claims its row again first."""

    token: str
    held_until: float = 0.0
    # The repair sweep's: each claim it takes is a leader-only write, fenced by the leadership epoch.
    leader_only: bool = False


class Posted(Enum):
    POSTED = "posted"
    TAKEN = "taken"  # another process holds the claim, or posted it first
    FAILED = "failed"  # Slack would not take it


@dataclass(frozen=True)
class Origin:
    """Where a command came from, to answer the person who ran it."""

    user_id: str
    channel_id: str
    response_url: str | None
    team_domain: str | None


class Publisher:
    """Renders and posts release messages."""

    def __init__(
        self,
        *,
        services: Services,
        gateway: SlackGateway,
        sync: MessageSync,
        executor: Executor,
        lang: str,
    ) -> None:
        self._services = services
        self.gateway = gateway
        self.sync = sync
        self._executor = executor
        self.lang = lang

    def render(self, message_id: int) -> Rendered | None:
        message, view = self._services.message_view(message_id)
        if message.ts is None:
            return None
        text, rendered = blocks.render_message(view, message, self.lang)
        return Rendered(message.id, message.channel_id, message.ts, message.content_rev, text, rendered)

    def send(self, rendered: Rendered, *, paced: bool = False) -> None:
        """chat.update; ``paced``: the caller took its turn from the gateway's update pacer already."""
        self.gateway.update(rendered.channel, rendered.ts, rendered.text, rendered.blocks, paced=paced)

    def submit(self, fn: Any, *args: Any) -> Future[Any]:
        """Run slow Slack work on the background pool, keeping the release id in the log context."""
        context_release = release_ctx.get()

        def run() -> Any:
            token = release_ctx.set(context_release)
            try:
                return fn(*args)
            except Exception:
                log.exception("background Slack work failed")
                return None
            finally:
                release_ctx.reset(token)

        return self._executor.submit(run)

    # --- a new release ----------------------------------------------------------------------------------

    def publish_release(self, view: ReleaseView, origin: Origin | None) -> Future[Any]:
        """Post a new release in the background; ``origin`` is whom to answer (None: nobody, as for a tag push)."""
        # The task keeps the id, not the view: a burst of starts queues hundreds of them behind the post pacing.
        return self.submit(
            self._publish_release, view.release.id, view.checklist, view.release.channel_id, origin
        )

    def claim_token(self) -> str:
        """Names one posting attempt in message claims (Services.claim_post).

        One per publish, not one per process: the sweep in this process must not pass a claim that this
        process's slow publish still means to use."""
        # The pid is read here, not at build: the work process's bot is built before the fork that makes it.
        return f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:12]}"

    def reserve(
        self, release_id: int, slots: list[tuple[str, int]], channel: str, *, leader_only: bool = False
    ) -> tuple[ReleaseView, Claim] | None:
        """Add a release's message rows, claimed for the caller, who posts them next with the claim returned.

        None when another publish reserved them first."""
        token = self.claim_token()
        view = self._services.add_messages(
            release_id, slots, channel, posting_by=token, leader_only=leader_only
        )
        if view is None:
            return None
        # Half the lease: margin for the clocks of other replicas, which judge the lease by their own.
        return view, Claim(token, time.monotonic() + POST_CLAIM_LEASE.total_seconds() / 2, leader_only)

    def _publish_release(
        self, release_id: int, checklist: Checklist, channel: str, origin: Origin | None
    ) -> None:
        reserved = self.reserve(release_id, blocks.message_slots(checklist), channel)
        if reserved is None:
            return  # this publish waited in the queue past the lease, and the repair sweep published it
        self._post_release(*reserved, origin)

    def republish(self, release_id: int) -> int | None:
        """Publish a release a dead process left without a header in Slack: the number of messages posted, or
        None when Slack would not take the header for now. The repair sweep's: its claims are leader-only."""
        view = self._services.view(release_id)
        header = view.message("header")
        if header is None:  # it died before reserving them
            slots = blocks.message_slots(view.checklist)
            reserved = self.reserve(release_id, slots, view.release.channel_id, leader_only=True)
            if reserved is None:
                return 0
            return self._post_release(*reserved, None)
        claim = Claim(self.claim_token(), leader_only=True)
        if not self._services.claim_post(header.id, claim.token, leader_only=True):
            return 0
        return self._post_release(view, claim, None)

    def _post_release(self, view: ReleaseView, claim: Claim, origin: Origin | None) -> int | None:
        """Post the header, which ``claim`` holds, then the rest in order; answer ``origin`` (who started
        it) if given. The number of messages posted; None when, for the sweep, Slack would not take it yet."""
        channel = view.release.channel_id
        header = view.message("header")
        assert header is not None
        text, rendered = blocks.render_header(view, header, self.lang)
        try:
            ts = self.gateway.post(channel, text, rendered)
        except ChatError as e:
            if origin is None and e.retryable:
                # The sweep's next round tries again.
                self._services.drop_post_claims([m.id for m in view.messages], claim.token)
                return None
            # Nothing was posted, so nothing is kept: the person gets told why and can simply retry.
            self._services.discard_release(view.release.id)
            if origin is None:
                log.warning(
                    "release %s could not be posted in %s (%s): discarded", view.release.id, channel, e.code
                )
            elif e.code == "unreachable":
                # The answer too may not get through yet: it is tried again until Slack is back.
                text = t(self.lang, "slack_unreachable_start", version=view.release.version)
                self.gateway.respond(origin.response_url, text, retry_for_s=RESPOND_RETRY_S)
            else:
                key = (
                    "not_in_channel"
                    if e.code in ("not_in_channel", "channel_not_found", "is_archived")
                    else "post_failed"
                )
                self.gateway.respond(origin.response_url, t(self.lang, key, channel=channel, code=e.code))
            return 0
        if self._services.message_posted(header.id, ts, header.content_rev, thread=True):
            self.sync.mark_dirty([header.id])
        if origin is not None and origin.channel_id != channel:
            link = permalink(origin.team_domain, channel, ts)
            self.gateway.respond(
                origin.response_url,
                t(
                    self.lang,
                    "release_channel_elsewhere",
                    channel=channel,
                    version=view.release.version,
                    link=link,
                ),
            )
        posted = 1
        for message in view.messages:
            if message.kind != "header" and self.post_message(view, message.id, claim) is Posted.POSTED:
                posted += 1
        return posted

    def post_message(self, view: ReleaseView, message_id: int, claim: Claim | None = None) -> Posted:
        """Post one reserved message of a release, unless someone else holds its claim or has posted it.

        ``claim`` is the one ``reserve`` took; without one this is a new attempt (the sweep, a resync). When the
        post fails, the claim is dropped and the message stays unposted for the repair sweep to retry.
        """
        claim = claim or Claim(self.claim_token())
        token = claim.token
        # A reservation this young cannot have been taken over: claiming again would be a write per post for nothing.
        if time.monotonic() >= claim.held_until and not self._services.claim_post(
            message_id, token, leader_only=claim.leader_only
        ):
            return Posted.TAKEN
        message = next(m for m in view.messages if m.id == message_id)
        thread_ts = view.release.thread_ts if message.kind == "followup" else None
        try:
            text, rendered = blocks.render_message(view, message, self.lang)
            ts = self.gateway.post(view.release.channel_id, text, rendered, thread_ts=thread_ts)
        except ChatError as e:
            log.warning("posting message %s of release %s failed: %s", message_id, view.release.id, e.code)
            self._services.drop_post_claims([message_id], token)
            return Posted.FAILED
        except Exception:
            self._services.drop_post_claims([message_id], token)
            raise
        if self._services.message_posted(message.id, ts, message.content_rev):
            self.sync.mark_dirty([message.id])  # clicked while it was on its way: draw what it shows now
        return Posted.POSTED

    # --- thread replies ---------------------------------------------------------------------------------

    def thread_reply(
        self,
        release_id: int,
        text: str,
        rendered: list[dict[str, Any]] | None = None,
        broadcast: bool = False,
    ) -> str | None:
        """Post in the release thread (paced). Returns the ts, or None when Slack would not take it."""
        view = self._services.view(release_id)
        if view.release.thread_ts is None:
            return None
        return self.gateway.post(
            view.release.channel_id, text, rendered, thread_ts=view.release.thread_ts, broadcast=broadcast
        )

    # --- repair -----------------------------------------------------------------------------------------

    def post_missing(self) -> int:
        """Post what a Slack outage or a dead process kept from being posted; the leader runs this periodically.

        First releases that never got their header into Slack, then single messages, oldest first. Every claim it
        takes is a leader-only write: once this process no longer leads, the sweep stops where it is."""
        posted = [0]
        try:
            self._sweep(posted)
        except NotLeader as e:
            log.warning("repair sweep left to the next leader: %s", e)
        return posted[0]

    def _sweep(self, posted: list[int]) -> None:
        for release_id in self._services.unpublished():
            done = self.republish(release_id)
            if done is None:
                return  # Slack still refuses: try again on the next round, in order
            posted[0] += done
        for release_id, message_id in self._services.unposted():
            claim = Claim(self.claim_token(), leader_only=True)
            outcome = self.post_message(self._services.view(release_id), message_id, claim)
            if outcome is Posted.POSTED:
                posted[0] += 1
            elif outcome is Posted.FAILED:
                break  # Slack still refuses: try again on the next round, in order
            # TAKEN: claimed or posted by someone else since the list was read

    def resync_release(self, release_id: int) -> tuple[int, int]:
        """Re-render every message of a release now; post the ones Slack never got. Returns (updated, posted)."""
        view = self._services.view(release_id)
        updated = posted = 0
        for message in view.messages:
            if message.ts is None:
                if message.kind == "header" or view.release.thread_ts is None:
                    continue  # no header in Slack yet: its publish is still running, or failed and was undone
                if self.post_message(view, message.id) is Posted.POSTED:
                    posted += 1
                continue
            rendered = self.render(message.id)
            if rendered is not None:
                self.send(rendered)
                self._services.mark_synced(message.id, rendered.rev)
                updated += 1
        return updated, posted
