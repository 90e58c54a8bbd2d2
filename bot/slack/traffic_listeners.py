"""The drift acknowledgement button, and the thread notes of the traffic provider."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from slack_bolt import Ack, App, Respond

from bot.errors import PermissionDenied
from bot.i18n import t
from bot.observability import release_id as release_ctx
from bot.slack import notices, parsing
from bot.slack.blocks import escape
from bot.slack.ids import ActionId
from bot.slack.listeners import Guard, SlackContext
from bot.usecases.releases import ReleaseView
from bot.usecases.traffic import TrafficService

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrafficContext:
    slack: SlackContext
    traffic: TrafficService

    def note(self, view: ReleaseView, text: str) -> None:
        """Say something in the release's thread (drift, an abort the bot made, a refusal)."""
        if view.release.thread_ts is None:
            return
        try:
            self.slack.publisher.gateway.post(
                view.release.channel_id, text, [notices.section(text)], thread_ts=view.release.thread_ts
            )
        except Exception:
            log.warning("could not post a traffic note for release %s", view.release.id)

    def redraw(self, message_ids: Iterable[int]) -> None:
        self.slack.publisher.sync.mark_dirty(message_ids)


def register_traffic(app: App, ctx: TrafficContext, guard: Guard) -> None:
    @app.action(ActionId.TRAFFIC_ACK.value)
    @guard
    def on_ack(ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond) -> None:
        ack()
        value = action.get("value")
        if not isinstance(value, str) or not value.isdigit():
            raise PermissionDenied("forged_action")
        release_ctx.set(int(value))
        guard.defer(body, respond, acknowledge, ctx, int(value), body, respond)


def acknowledge(ctx: TrafficContext, release_id: int, body: dict[str, Any], respond: Respond) -> None:
    channel, _ts = parsing.container(body)
    view = ctx.slack.services.view(release_id)
    if view.release.channel_id != channel:
        raise PermissionDenied("forged_action")
    actor = parsing.actor_of(body)
    drift = ctx.traffic.acknowledge(release_id, actor=actor)
    lang = ctx.slack.lang
    if drift is None:
        respond(text=t(lang, "traffic_no_drift"), response_type="ephemeral", replace_original=False)
        return
    what = escape(", ".join(drift.get("what") or []))
    ctx.note(view, t(lang, "traffic_drift_acknowledged", who=actor.mention, what=what))
