"""Listeners of the metric watch's incidents: declare (header buttons, modal, ``/release incident``),
acknowledge, and "not a problem, keep watching". Each acks first; PagerDuty is only reached by the outbox."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from slack_bolt import Ack, App

from bot.domain.incident import DECLARED
from bot.domain.records import Actor
from bot.errors import PermissionDenied, UsageError
from bot.i18n import t
from bot.observability import release_id as release_ctx
from bot.slack import notices, parsing
from bot.slack.ids import DECLARE_INCIDENT_RE, ActionId, CallbackId
from bot.slack.lifecycle_listeners import accept_reason
from bot.slack.listeners import Guard, SlackContext
from bot.usecases.incidents import IncidentDesk

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WatchContext:
    slack: SlackContext
    desk: IncidentDesk

    @property
    def lang(self) -> str:
        return self.slack.lang


def declare_and_ping(ctx: WatchContext, release_id: int, criterion: str, actor: Actor, reason: str) -> None:
    fired = ctx.desk.declare(release_id, criterion, actor=actor, reason=reason)
    ctx.slack.publisher.submit(ctx.desk.ping, fired.incident_id)


def register_watch(app: App, ctx: WatchContext, guard: Guard) -> None:
    lang = ctx.lang
    publisher = ctx.slack.publisher

    def incident_command(cmd: parsing.Command, ack: Ack) -> None:
        ack(text=t(lang, "incident_declaring", version=cmd.version), response_type="ephemeral")
        view = ctx.slack.services.find(
            ctx.slack.settings.release_channel or cmd.channel_id, cmd.version, cmd.service
        )
        release_ctx.set(view.release.id)
        declare_and_ping(ctx, view.release.id, DECLARED, cmd.actor, cmd.reason)

    ctx.slack.commands["incident"] = incident_command

    @app.action(DECLARE_INCIDENT_RE)
    @guard
    def on_declare(ack: Ack, body: dict[str, Any], action: dict[str, Any]) -> None:
        ack()
        value = action.get("value")
        parts = value.split(":") if isinstance(value, str) else []
        if len(parts) != 2 or not parts[0].isdigit():
            raise PermissionDenied("forged_action")
        channel, _ts = parsing.container(body)
        view = ctx.slack.services.view(int(parts[0]))
        criterion = next((c for c in view.checklist.criteria if c.key == parts[1]), None)
        if view.release.channel_id != channel or criterion is None:
            raise PermissionDenied("forged_action")
        # views.open first: the trigger id expires 3 s after the click.
        publisher.gateway.open_view(
            str(body.get("trigger_id", "")),
            notices.reason_modal(
                CallbackId.INCIDENT,
                t(lang, "modal_incident_title"),
                t(lang, "modal_incident_prompt", title=criterion.title),
                t(lang, "modal_submit"),
                t(lang, "modal_cancel"),
                ctx.slack.seal.seal(
                    {"release": view.release.id, "criterion": criterion.key, "channel": channel},
                    parsing.actor_of(body).id,
                ),
            ),
        )

    @app.view(CallbackId.INCIDENT.value)
    def on_declare_submitted(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        accepted = accept_reason(ctx.slack, ack, body, view, ("release", "criterion", "channel"))
        if accepted is None:
            return
        reason, meta, actor = accepted
        release_id, criterion = int(meta["release"]), str(meta["criterion"])
        try:
            declare_and_ping(ctx, release_id, criterion, actor, reason)
        except Exception as error:  # modal submissions have no response_url: answer in the channel, privately
            from bot.slack.app import user_text

            channel = meta.get("channel")
            if isinstance(channel, str):
                try:
                    publisher.gateway.ephemeral(channel, actor.id, user_text(error, {}, lang))
                except Exception:
                    log.warning("could not answer an incident modal's error")

    @app.action(ActionId.ACK_INCIDENT.value)
    @guard
    def on_acknowledge(ack: Ack, body: dict[str, Any], action: dict[str, Any]) -> None:
        ack()
        incident_id = incident_for_click(ctx, action.get("value"), body)
        ctx.desk.acknowledge(incident_id, actor=parsing.actor_of(body), action_ts=action.get("action_ts"))
        publisher.submit(ctx.desk.refresh, incident_id)

    @app.action(ActionId.DISMISS_INCIDENT.value)
    @guard
    def on_dismiss(ack: Ack, body: dict[str, Any], action: dict[str, Any]) -> None:
        ack()
        incident_id = incident_for_click(ctx, action.get("value"), body)
        ctx.desk.dismiss(incident_id, actor=parsing.actor_of(body), action_ts=action.get("action_ts"))
        publisher.submit(ctx.desk.refresh, incident_id)


def incident_for_click(ctx: WatchContext, value: object, body: dict[str, Any]) -> int:
    """The incident a button names; refuse a value that does not belong to the clicked message."""
    if not isinstance(value, str) or not value.isdigit():
        raise UsageError("bad_payload")
    channel, ts = parsing.container(body)
    incident = ctx.desk.get(int(value))
    if incident.channel_id != channel or incident.slack_ts != ts:
        raise PermissionDenied("forged_action")
    release_ctx.set(incident.release_id)
    return incident.id
