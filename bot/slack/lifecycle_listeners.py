"""Listeners that move a release: advance, override, abort, health checks, and the rollback decision."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from slack_bolt import Ack, App, Respond

from bot.domain.records import Actor
from bot.errors import GateNotMet, PermissionDenied, UsageError
from bot.i18n import t
from bot.observability import release_id as release_ctx
from bot.ports import HealthChecker
from bot.slack import notices, parsing
from bot.slack.ids import ActionId, CallbackId
from bot.slack.listeners import Guard, SlackContext
from bot.usecases.lifecycle import Advanced, Lifecycle
from bot.usecases.releases import ReleaseView

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LifecycleContext:
    slack: SlackContext
    lifecycle: Lifecycle
    health: HealthChecker

    @property
    def lang(self) -> str:
        return self.slack.lang


def _parts(value: object, count: int) -> list[str]:
    if not isinstance(value, str):
        raise UsageError("bad_payload")
    parts = value.split(":")
    if len(parts) != count or not parts[0].isdigit():
        raise PermissionDenied("forged_action")
    return parts


def _release_for_action(ctx: LifecycleContext, release_id: int, body: dict[str, Any]) -> ReleaseView:
    """The release a button names, refusing one clicked in another channel than the release's own."""
    channel, _ts = parsing.container(body)
    view = ctx.slack.services.view(release_id)
    if view.release.channel_id != channel:
        raise PermissionDenied("forged_action")
    return view


def announce_advance(ctx: LifecycleContext, result: Advanced, actor: Actor) -> None:
    """After a transition: redraw, and tell the thread (the whole channel when the release is done)."""
    publisher = ctx.slack.publisher
    view = result.view
    if result.finished:
        publisher.sync.mark_dirty(m.id for m in view.messages)
        text, blocks = notices.finished_announcement(view, actor.id, ctx.lang)
        publisher.submit(publisher.thread_reply, view.release.id, text, blocks, True)
        return
    header = view.message("header")
    if header is not None:
        publisher.sync.mark_dirty([header.id])
    text, blocks = notices.transition_note(
        view, result.from_step, result.to_step, actor.id, ctx.lang, result.reason, result.overridden
    )
    publisher.submit(publisher.thread_reply, view.release.id, text, blocks)


def abort_release(ctx: LifecycleContext, release_id: int, actor: Actor, reason: str) -> None:
    view = ctx.lifecycle.abort(release_id, actor=actor, reason=reason)
    publisher = ctx.slack.publisher
    publisher.sync.mark_dirty(m.id for m in view.messages)
    text, blocks = notices.aborted_note(view, actor.id, reason, ctx.lang)
    publisher.submit(publisher.thread_reply, view.release.id, text, blocks, True)


def register_lifecycle(app: App, ctx: LifecycleContext, guard: Guard) -> None:
    lang = ctx.lang
    gateway = ctx.slack.publisher.gateway

    def abort_command(cmd: parsing.Command, ack: Ack) -> None:
        ack()
        view = ctx.slack.services.find(
            ctx.slack.settings.release_channel or cmd.channel_id, cmd.version, cmd.service
        )
        release_ctx.set(view.release.id)
        abort_release(ctx, view.release.id, cmd.actor, cmd.reason)

    ctx.slack.commands["abort"] = abort_command

    @app.action(ActionId.ADVANCE.value)
    @guard
    def on_advance(ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond) -> None:
        ack()
        rid, from_step, to_step = _parts(action.get("value"), 3)
        release_ctx.set(int(rid))
        guard.defer(body, respond, advance_from_button, ctx, int(rid), from_step, to_step, body, respond)

    @app.action(ActionId.OVERRIDE.value)
    @guard
    def on_override(ack: Ack, body: dict[str, Any], action: dict[str, Any]) -> None:
        ack()
        rid, from_step, to_step = _parts(action.get("value"), 3)
        channel = _release_for_action(ctx, int(rid), body).release.channel_id
        meta = {"release": int(rid), "from": from_step, "to": to_step, "channel": channel}
        # views.open first: the trigger id expires 3 s after the click.
        gateway.open_view(
            str(body.get("trigger_id", "")),
            notices.reason_modal(
                CallbackId.OVERRIDE,
                t(lang, "modal_override_title"),
                t(lang, "modal_override_prompt"),
                t(lang, "modal_submit"),
                t(lang, "modal_cancel"),
                ctx.slack.seal.seal(meta, parsing.actor_of(body).id),
            ),
        )

    @app.view(CallbackId.OVERRIDE.value)
    def on_override_submitted(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        accepted = accept_reason(ctx.slack, ack, body, view, ("release", "from", "to", "channel"))
        if accepted is None:
            return
        reason, meta, actor = accepted
        _run_for_modal(
            ctx,
            meta,
            actor,
            lambda: announce_advance(
                ctx,
                ctx.lifecycle.advance(
                    int(meta["release"]),
                    from_step=str(meta["from"]),
                    to_step=str(meta["to"]),
                    actor=actor,
                    override_reason=reason,
                ),
                actor,
            ),
        )

    @app.action(ActionId.ABORT.value)
    @guard
    def on_abort(ack: Ack, body: dict[str, Any], action: dict[str, Any]) -> None:
        ack()
        rid = _parts(action.get("value"), 1)[0]
        channel = _release_for_action(ctx, int(rid), body).release.channel_id
        gateway.open_view(
            str(body.get("trigger_id", "")),
            notices.reason_modal(
                CallbackId.ABORT,
                t(lang, "modal_abort_title"),
                t(lang, "modal_abort_prompt"),
                t(lang, "modal_submit"),
                t(lang, "modal_cancel"),
                ctx.slack.seal.seal({"release": int(rid), "channel": channel}, parsing.actor_of(body).id),
            ),
        )

    @app.view(CallbackId.ABORT.value)
    def on_abort_submitted(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        accepted = accept_reason(ctx.slack, ack, body, view, ("release", "channel"))
        if accepted is None:
            return
        reason, meta, actor = accepted
        _run_for_modal(ctx, meta, actor, lambda: abort_release(ctx, int(meta["release"]), actor, reason))

    @app.action(ActionId.HEALTH_CHECK.value)
    @guard
    def on_health(ack: Ack, body: dict[str, Any], action: dict[str, Any]) -> None:
        ack()
        rid, env_key = _parts(action.get("value"), 2)
        view = _release_for_action(ctx, int(rid), body)
        actor = parsing.actor_of(body)
        try:
            env = view.checklist.environment(env_key)
        except KeyError:
            raise PermissionDenied("forged_action") from None
        ctx.slack.publisher.submit(
            run_health_check, ctx, view.release.id, env.key, env.title, env.health_url, actor
        )


def advance_from_button(
    ctx: LifecycleContext, rid: int, from_step: str, to_step: str, body: dict[str, Any], respond: Respond
) -> None:
    view = _release_for_action(ctx, rid, body)
    actor = parsing.actor_of(body)
    try:
        result = ctx.lifecycle.advance(view.release.id, from_step=from_step, to_step=to_step, actor=actor)
    except GateNotMet as gate:
        text, blocks = notices.gate_refusal(
            view,
            from_step,
            to_step,
            ctx.lang,
            gate.open_items,
            gate.wait_remaining_s,
            window=gate.window,
            observing_s=gate.observing_s,
        )
        respond(text=text, blocks=blocks, response_type="ephemeral", replace_original=False)
        return
    announce_advance(ctx, result, actor)


def run_health_check(
    ctx: LifecycleContext, release_id: int, env_key: str, env_title: str, url: str, actor: Actor
) -> None:
    """GET the health URL (off the listener threads), record the result and post it in the thread."""
    result = ctx.health.check(url)
    ctx.lifecycle.record_health(release_id, actor=actor, environment=env_key, result=result)
    text, blocks = notices.health_note(env_title, result, actor.id, ctx.lang)
    ctx.slack.publisher.thread_reply(release_id, text, blocks)


def accept_reason(
    slack: SlackContext, ack: Ack, body: dict[str, Any], view: dict[str, Any], keys: tuple[str, ...]
) -> tuple[str, dict[str, Any], Actor] | None:
    """Close the modal with its reason, its verified metadata and who submitted it; or keep it open with the
    reason field's error: when the reason is empty, or when the metadata is not what the bot sealed for this
    person (a submission redirected to another release or channel is refused whole)."""
    actor = parsing.actor_of(body)
    meta = slack.seal.open(view.get("private_metadata"), actor.id)
    if meta is None or any(k not in meta for k in keys) or not str(meta["release"]).isdigit():
        log.warning("refused a %s submission whose metadata the bot did not seal for %s", view.get("callback_id"), actor.id)
        ack(response_action="errors", errors={"reason": t(slack.lang, "view_forged")})
        return None
    values = ((view.get("state") or {}).get("values") or {}).get("reason") or {}
    reason = str((values.get("reason") or {}).get("value") or "").strip()[:1000]
    if not reason:
        ack(response_action="errors", errors={"reason": t(slack.lang, "reason_required")})
        return None
    ack()
    return reason, meta, actor


def _run_for_modal(
    ctx: LifecycleContext, meta: dict[str, Any], actor: Actor, work: Callable[[], None]
) -> None:
    """Modal submissions have no response_url: errors go to the person as an ephemeral in the release channel."""
    from bot.slack.app import user_text

    try:
        work()
    except Exception as error:  # every error is answered; none reaches Bolt
        channel = meta.get("channel")
        if isinstance(channel, str):
            try:
                ctx.slack.publisher.gateway.ephemeral(channel, actor.id, user_text(error, {}, ctx.lang))
            except Exception:
                return
