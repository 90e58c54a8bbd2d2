"""Rolling back from Slack: the Roll back button and ``/release rollback``, the confirmation modal, the
progress message in the thread, the follow-up checklist and the incident-report draft; ``/release unlock``.

The modal is opened with a "loading" state right after the ack and then replaced (``views.update`` by
``external_id``) once the plan is read: reading it takes a GET and a paged LIST against the Kubernetes API,
which can outlast the 3 s a trigger id lives. Everything slow runs on the publisher's background pool.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from slack_bolt import Ack, App

from bot.domain.records import Actor
from bot.domain.roles import Action
from bot.domain.rollbacks import RollbackRecord, RollbackStatus
from bot.errors import PermissionDenied, ReleaseBotError, UsageError
from bot.i18n import t
from bot.observability import release_id as release_ctx
from bot.ports import RolloutStatus
from bot.slack import blocks, notices, parsing
from bot.slack import rollback_blocks as rb
from bot.slack.app import user_text
from bot.slack.blocks import clip, escape
from bot.slack.dates import slack_date
from bot.slack.ids import ActionId, CallbackId
from bot.slack.lifecycle_listeners import accept_reason
from bot.slack.listeners import Guard, SlackContext
from bot.slack.notices import section
from bot.usecases.lifecycle import Lifecycle
from bot.usecases.releases import ReleaseView
from bot.usecases.rollback import Outcome, RollbackService, UndoConfirmation

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RollbackContext:
    slack: SlackContext
    lifecycle: Lifecycle
    rollbacks: RollbackService
    monotonic: Callable[[], float] = field(default=time.monotonic)

    @property
    def lang(self) -> str:
        return self.slack.lang


def _locked_note(lang: str, view: ReleaseView, service: str) -> str:
    return t(lang, "rb_locked_note_named" if view.named else "rb_locked_note", service=service)


def _service_to_unlock(ctx: RollbackContext, cmd: parsing.Command) -> str:
    if cmd.service is not None:
        return cmd.service
    serving = ctx.slack.services.serving(ctx.slack.settings.release_channel or cmd.channel_id)
    if len(serving) == 1:
        return serving[0].service
    if not serving:
        return ctx.slack.services.template.service
    raise UsageError(
        "unlock_ambiguous",
        params={
            "services": ", ".join(f"`{c.service}`" for c in serving),
            "example": f"/release unlock {serving[0].service} {cmd.reason}"[:200],
        },
    )


def register_rollback(app: App, ctx: RollbackContext, guard: Guard) -> None:
    lang = ctx.lang

    def rollback_command(cmd: parsing.Command, ack: Ack) -> None:
        ack()
        view = ctx.slack.services.find(
            ctx.slack.settings.release_channel or cmd.channel_id, cmd.version, cmd.service
        )
        release_ctx.set(view.release.id)
        open_confirmation(ctx, cmd.trigger_id or "", view.release.id, view.release.channel_id, cmd.actor)

    def unlock_command(cmd: parsing.Command, ack: Ack) -> None:
        service = _service_to_unlock(ctx, cmd)  # a channel of several services must name one: said in the ack
        ack()
        cleared = ctx.rollbacks.unlock(service, actor=cmd.actor, reason=cmd.reason)
        text = t(lang, "rb_unlocked", who=cmd.actor.mention, service=service, reason=escape(cmd.reason))
        publisher = ctx.slack.publisher
        publisher.gateway.respond(cmd.response_url, text)
        for release_id in sorted({lock.release_id for lock in cleared}):
            publisher.submit(publisher.thread_reply, release_id, text, [section(text)])

    def rolledback_command(cmd: parsing.Command, ack: Ack) -> None:
        view = ctx.slack.services.find(
            ctx.slack.settings.release_channel or cmd.channel_id, cmd.version, cmd.service
        )
        ack()
        release_ctx.set(view.release.id)
        ctx.slack.publisher.submit(
            _answering(ctx, view.release.channel_id, cmd.actor, record_by_hand),
            ctx,
            view.release.id,
            cmd.actor,
            cmd.reason,
            None,
        )

    ctx.slack.commands["rollback"] = rollback_command
    ctx.slack.commands["unlock"] = unlock_command
    ctx.slack.commands["rolledback"] = rolledback_command

    @app.action(ActionId.ROLLED_BACK_BY_HAND.value)
    @guard
    def on_by_hand(ack: Ack, body: dict[str, Any], action: dict[str, Any]) -> None:
        ack()
        release_id, channel, actor = _release_clicked(ctx, body, action)
        # Refused before the dialog opens (and again on submit): the refusal is recorded.
        ctx.lifecycle.require(release_id, actor, Action.RECORD_ROLLBACK)
        ctx.slack.publisher.gateway.open_view(
            str(body.get("trigger_id", "")),
            notices.reason_modal(
                CallbackId.ROLLED_BACK_BY_HAND,
                t(lang, "modal_by_hand_title"),
                t(lang, "modal_by_hand_prompt"),
                t(lang, "modal_submit"),
                t(lang, "modal_cancel"),
                ctx.slack.seal.seal({"release": release_id, "channel": channel}, actor.id),
            ),
        )

    @app.view(CallbackId.ROLLED_BACK_BY_HAND.value)
    def on_by_hand_submitted(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        accepted = accept_reason(ctx.slack, ack, body, view, ("release", "channel"))
        if accepted is None:
            return
        reason, meta, actor = accepted
        ctx.slack.publisher.submit(
            _answering(ctx, str(meta["channel"]), actor, record_by_hand),
            ctx,
            int(meta["release"]),
            actor,
            reason,
            str(view.get("id") or "") or None,
        )

    @app.action(ActionId.ROLLBACK.value)
    @guard
    def on_rollback(ack: Ack, body: dict[str, Any], action: dict[str, Any]) -> None:
        ack()
        release_id, channel, actor = _release_clicked(ctx, body, action)
        open_confirmation(ctx, str(body.get("trigger_id", "")), release_id, channel, actor)

    @app.view(CallbackId.ROLLBACK.value)
    def on_confirm(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        actor = parsing.actor_of(body)
        meta = ctx.slack.seal.open(view.get("private_metadata"), actor.id)
        if meta is None or not str(meta.get("release", "")).isdigit() or not isinstance(meta.get("channel"), str):
            log.warning("refused a rollback confirmation whose metadata the bot did not seal for %s", actor.id)
            ack(response_action="errors", errors={rb.REASON: t(lang, "view_forged")})
            return
        reason, revision, ticked = rb.submitted(view)
        undo = meta.get("undo")
        confirmed = _confirmation(undo) if isinstance(undo, dict) else None
        if isinstance(undo, dict) and (confirmed is None or undo.get("value") not in ticked):
            ack(response_action="errors", errors={rb.CONFIRM: t(lang, "rb_outside_required")})
            return
        if not reason:
            ack(response_action="errors", errors={rb.REASON: t(lang, "reason_required")})
            return
        ack()
        expected = meta.get("expected")
        ctx.slack.publisher.submit(
            run_rollback,
            ctx,
            int(meta["release"]),
            meta["channel"],
            actor,
            reason,
            revision or 0,
            expected if isinstance(expected, int) else None,
            str(view.get("id") or ""),
            confirmed,
        )


def _confirmation(undo: dict[str, Any]) -> UndoConfirmation | None:
    """The revisions a person ticked to undo, as the bot sealed them into the modal."""
    try:
        return UndoConfirmation(
            from_revision=int(undo["from"]),
            from_images=tuple(str(i) for i in undo["from_images"]),
            to_revision=int(undo["to"]),
            to_images=tuple(str(i) for i in undo["to_images"]),
        )
    except (KeyError, TypeError, ValueError):
        return None


# --- the modal ---------------------------------------------------------------------------------------------


def open_confirmation(
    ctx: RollbackContext, trigger_id: str, release_id: int, channel: str, actor: Actor
) -> None:
    """Open the modal now (the trigger expires in 3 s); the plan fills it in from the background."""
    external_id = f"rollback-{release_id}-{uuid.uuid4().hex[:12]}"
    meta = ctx.slack.seal.seal({"release": release_id, "channel": channel}, actor.id)
    ctx.slack.publisher.gateway.open_view(trigger_id, rb.loading_modal(external_id, ctx.lang, meta))
    ctx.slack.publisher.submit(fill_confirmation, ctx, external_id, release_id, channel, actor)


def _update_view(ctx: RollbackContext, external_id: str, view: dict[str, Any]) -> None:
    gateway = ctx.slack.publisher.gateway
    # Through the gateway's one call path: Slack errors become ChatError and the call is counted.
    gateway._call("views.update", gateway.client.views_update, external_id=external_id, view=view)


def fill_confirmation(
    ctx: RollbackContext, external_id: str, release_id: int, channel: str, actor: Actor
) -> None:
    lang = ctx.lang
    meta: dict[str, Any] = {"release": release_id, "channel": channel}
    sealed = ctx.slack.seal.seal(meta, actor.id)
    try:
        # Non-managers are refused before they see a confirm button (and again on confirm).
        ctx.lifecycle.require(release_id, actor, Action.ROLL_BACK)
        view, plan = ctx.rollbacks.plan(release_id)
    except Exception as error:
        text = user_text(error, {}, lang)
        _update_view(ctx, external_id, rb.notice_modal(external_id, lang, text, sealed))
        if isinstance(error, PermissionDenied):
            ctx.slack.publisher.gateway.ephemeral(channel, actor.id, text)
        return
    target = f"{plan.namespace}/{plan.deployment}"
    if plan.paused:
        text = t(lang, "rollback_paused", target=target)
    elif plan.already_current:
        text = t(lang, "nothing_to_roll_back", revision=plan.target.number)
    else:
        meta["expected"] = plan.current.number
        if not view.reached_production:
            # What the person will tick, sealed: the submission can only confirm exactly these revisions.
            meta["undo"] = {
                "value": rb.undo_value(plan),
                "from": plan.current.number,
                "from_images": [clip(i, 200) for i in plan.current.images[:4]],
                "to": plan.target.number,
                "to_images": [clip(i, 200) for i in plan.target.images[:4]],
            }
        sealed = ctx.slack.seal.seal(meta, actor.id)
        _update_view(ctx, external_id, rb.confirm_modal(external_id, view, plan, lang, sealed))
        return
    _update_view(ctx, external_id, rb.notice_modal(external_id, lang, text, sealed))


# --- doing it ----------------------------------------------------------------------------------------------


class ProgressMessage:
    """One thread message per rollback, updated in place: the first rollout status at once, then at most
    once a second (chat.update is rate limited), then always the result."""

    def __init__(self, ctx: RollbackContext, record: RollbackRecord, min_interval_s: float = 1.0) -> None:
        self._ctx = ctx
        self.record = record
        self._min = min_interval_s
        self._last = float("-inf")
        self.channel: str | None = None
        self.ts: str | None = None

    def start(self) -> None:
        lang = self._ctx.lang
        text, rendered = rb.progress_message(self.record, lang, t(lang, "rb_state_running", status="…"))
        publisher = self._ctx.slack.publisher
        self.ts = publisher.thread_reply(self.record.release_id, text, rendered)
        if self.ts is not None:
            self.channel = self._ctx.slack.services.view(self.record.release_id).release.channel_id
            self._ctx.rollbacks.set_progress_message(self.record.id, self.channel, self.ts)

    def progress(self, status: RolloutStatus) -> None:
        now = self._ctx.monotonic()
        if now - self._last < self._min:
            return
        self._last = now
        self.record = self._ctx.rollbacks.get(self.record.id)
        self._show(t(self._ctx.lang, "rb_state_running", status=escape(status.message)))

    def finish(self, outcome: Outcome) -> None:
        self.record = outcome.rollback
        self._show(*final_state(outcome, self._ctx.lang))

    def _show(self, state: str, extra: list[str] | None = None) -> None:
        text, rendered = rb.progress_message(self.record, self._ctx.lang, state, extra)
        publisher = self._ctx.slack.publisher
        try:
            if self.ts is None or self.channel is None:
                self.ts = publisher.thread_reply(self.record.release_id, text, rendered)
                return
            publisher.gateway.update(self.channel, self.ts, text, rendered)
        except Exception:
            log.exception("could not show rollback %s progress", self.record.id)


def final_state(outcome: Outcome, lang: str) -> tuple[str, list[str]]:
    """The result line of the progress message, and what follows it (health, lock, GitOps warnings)."""
    record = outcome.rollback
    message = t(lang, outcome.message, **outcome.params)
    extra: list[str] = []
    if record.status is RollbackStatus.SUCCEEDED:
        state = t(
            lang,
            "rolled_back",
            target=record.target,
            revision=record.to_revision,
            images=", ".join(record.to_images) or "?",
        )
        if outcome.rollout is not None:
            state += f"\n`{escape(outcome.rollout.message)}`"
        if outcome.health is not None and outcome.health_env is not None:
            env = outcome.view.checklist.environment(outcome.health_env)
            extra.append(notices.health_note(env.title, outcome.health, record.requested_by.id, lang)[0])
        if outcome.lock is not None:
            extra.append(_locked_note(lang, outcome.view, outcome.lock.service))
    elif record.status is RollbackStatus.FAILED:
        state = t(lang, "rb_failed", error=escape(message))
    else:
        state = t(lang, "rb_skipped", message=escape(message))
    extra += [t(lang, "rb_gitops", warning=escape(w)) for w in outcome.gitops_warnings]
    return state, extra


def run_rollback(
    ctx: RollbackContext,
    release_id: int,
    channel: str,
    actor: Actor,
    reason: str,
    to_revision: int,
    expected: int | None,
    action_ts: str,
    confirmed: UndoConfirmation | None = None,
) -> None:
    """Request (permission, intent), then execute with progress, then the follow-up and the report."""
    release_ctx.set(release_id)
    try:
        record = ctx.rollbacks.request(
            release_id,
            actor=actor,
            reason=reason,
            to_revision=to_revision,
            expected_revision=expected,
            action_ts=action_ts or None,
            confirmed=confirmed,
        )
    except Exception as error:
        tell(ctx, channel, actor, error)
        return
    message = ProgressMessage(ctx, record)
    message.start()
    outcome = ctx.rollbacks.execute(record.id, on_progress=message.progress)
    message.finish(outcome)
    publisher = ctx.slack.publisher
    publisher.sync.mark_dirty(m.id for m in outcome.view.messages)
    if outcome.rollback.status is RollbackStatus.SKIPPED:
        return  # nothing was rolled back: no follow-up to do
    # Seed 5.2 and 5.3 after every rollback, whether the bot's finished or not: a failed one is finished by hand.
    if outcome.rollback.status is RollbackStatus.FAILED:
        text, rendered = notices.rollback_procedure(outcome.view, ctx.lang, t(ctx.lang, "rb_procedure_after_failure"))
        publisher.thread_reply(release_id, text, rendered)
    post_followup(ctx, ctx.slack.services.view(release_id))
    post_report(ctx, release_id)


def record_by_hand(ctx: RollbackContext, release_id: int, actor: Actor, reason: str, action_ts: str | None) -> None:
    """A rollback done outside the bot: record it, then the same aftermath as the bot's own (5.2, 5.3, report)."""
    lang = ctx.lang
    view, _lock = ctx.rollbacks.record_by_hand(release_id, actor=actor, reason=reason, action_ts=action_ts)
    publisher = ctx.slack.publisher
    publisher.sync.mark_dirty(m.id for m in view.messages)
    when = slack_date(view.release.ended_at or view.release.last_activity_at)
    lead = t(lang, "rb_by_hand_recorded", who=actor.mention, when=when, reason=escape(reason))
    text, rendered = notices.rollback_procedure(view, lang, lead)
    publisher.thread_reply(release_id, text, rendered)
    locked = _locked_note(lang, view, view.release.service)
    publisher.thread_reply(release_id, locked, [section(locked)])
    post_followup(ctx, view)
    post_report(ctx, release_id)


def _answering(
    ctx: RollbackContext, channel: str, actor: Actor, work: Callable[..., None]
) -> Callable[..., None]:
    """Run ``work`` in the background; a refusal or failure is told to the person, privately, in the channel."""

    def run(*args: Any) -> None:
        try:
            work(*args)
        except Exception as error:
            if not isinstance(error, ReleaseBotError):
                log.exception("recording a rollback by hand failed")
            tell(ctx, channel, actor, error)

    return run


def tell(ctx: RollbackContext, channel: str, actor: Actor, error: Exception) -> None:
    """Modal submissions have no response_url: answer privately in the release channel."""
    try:
        ctx.slack.publisher.gateway.ephemeral(channel, actor.id, user_text(error, {}, ctx.lang))
    except Exception:
        log.warning("could not tell %s why the rollback was refused", actor.id)


def post_followup(ctx: RollbackContext, view: ReleaseView) -> None:
    """Post the checklist's rollback follow-up phase in the thread: interactive and recorded like the rest."""
    if view.checklist.followup_phase is None or view.message("followup") is not None:
        return
    pages = len(blocks.checklist_pages(view.checklist, "followup"))
    reserved = ctx.slack.publisher.reserve(
        view.release.id, [("followup", n) for n in range(pages)], view.release.channel_id
    )
    if reserved is None:
        return  # another process is posting it
    view, claim = reserved
    for message in view.messages:
        if message.kind == "followup":
            ctx.slack.publisher.post_message(view, message.id, claim)


def post_report(ctx: RollbackContext, release_id: int) -> None:
    view = ctx.slack.services.view(release_id)
    markdown = ctx.rollbacks.report(release_id)
    for text, rendered in rb.report_messages(markdown, view.release.version, ctx.lang):
        ctx.slack.publisher.thread_reply(release_id, text, rendered)


def report_interrupted(ctx: RollbackContext) -> None:
    """At start (and on becoming leader): say in each thread which rollback a dead process left behind."""
    lang = ctx.lang
    for found in ctx.rollbacks.recover():
        record = found.rollback
        text = t(
            lang,
            "rb_interrupted",
            target=record.target,
            who=record.requested_by.mention,
            status=record.status.value,
            live=escape(found.live_status),
            deployment=record.deployment,
            namespace=record.namespace,
        )
        publisher = ctx.slack.publisher
        try:
            if record.progress_channel and record.progress_ts:
                state, rendered = rb.progress_message(record, lang, text)
                publisher.gateway.update(record.progress_channel, record.progress_ts, state, rendered)
            publisher.thread_reply(record.release_id, text, [section(text)], True)
        except Exception:
            log.exception("could not report interrupted rollback %s", record.id)


def _never_raises(fn: Callable[[], None]) -> Callable[[], None]:
    def run() -> None:
        try:
            fn()
        except Exception:
            log.exception("rollback recovery failed")

    return run


def recovery_job(ctx: RollbackContext) -> Callable[[], None]:
    return _never_raises(lambda: report_interrupted(ctx))


def _release_clicked(ctx: RollbackContext, body: dict[str, Any], action: dict[str, Any]) -> tuple[int, str, Actor]:
    """The release a button names, checked against the channel it was clicked in; forged values are refused."""
    value = action.get("value")
    if not isinstance(value, str) or not value.isdigit():
        raise PermissionDenied("forged_action")
    release_id = int(value)
    release_ctx.set(release_id)
    channel, _ts = parsing.container(body)
    view = ctx.slack.services.view(release_id)
    if view.release.channel_id != channel:
        raise PermissionDenied("forged_action")
    return release_id, channel, parsing.actor_of(body)
