"""Listeners and background runs of the evidence: the re-check button, the override of a failing item, and the
evaluations that follow a start or a move into a new phase."""

from __future__ import annotations

import logging
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from typing import Any

from slack_bolt import Ack, App, Respond

from bot.domain.evidence import EvidenceStatus
from bot.domain.records import BOT, Actor
from bot.errors import Conflict, InvalidTransition, NotFound, PermissionDenied, UsageError
from bot.i18n import t
from bot.observability import release_id as release_ctx
from bot.slack import evidence_blocks, notices, parsing
from bot.slack.app import user_text
from bot.slack.ids import ActionId, CallbackId
from bot.slack.lifecycle_listeners import accept_reason
from bot.slack.listeners import Guard, SlackContext
from bot.usecases.evidence import Evaluation, EvidenceService
from bot.usecases.lifecycle import Transition
from bot.usecases.releases import ReleaseView

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvidenceContext:
    slack: SlackContext
    evidence: EvidenceService
    executor: (
        Executor  # one thread: evaluations run one at a time, so GitHub sees one client's requests in turn
    )

    @property
    def lang(self) -> str:
        return self.slack.lang

    def redraw(self, release_id: int) -> None:
        view = self.slack.services.view(release_id)
        self.slack.publisher.sync.mark_dirty(m.id for m in view.messages if m.kind in ("header", "checklist"))

    def evaluate(
        self, release_id: int, actor: Actor = BOT, phases: tuple[str, ...] | None = None
    ) -> Evaluation | None:
        """Evaluate now and redraw; None when there was nothing to do (evidence off, release ended, running)."""
        try:
            result = self.evidence.evaluate(release_id, actor=actor, phases=phases)
        except (Conflict, InvalidTransition, NotFound):
            return None
        self.redraw(release_id)
        return result

    def soon(self, release_id: int, phases: tuple[str, ...] | None = None) -> Future[Any] | None:
        """Evaluate in the background (after a start or a phase change)."""
        if not self.evidence.enabled:
            return None
        context_release = release_ctx.get()

        def run() -> None:
            token = release_ctx.set(context_release or release_id)
            try:
                self.evaluate(release_id, BOT, phases)
            except Exception:
                log.exception("evaluating the evidence of release %s failed", release_id)
            finally:
                release_ctx.reset(token)

        return self.executor.submit(run)

    def start_hook(self, release_id: int, published: Future[Any]) -> None:
        """A release was started: evaluate its first phase once its messages are in Slack, to redraw them."""
        published.add_done_callback(lambda _done: self.soon(release_id))

    def on_transition(self, transition: Transition) -> None:
        """A move into a new phase evaluates that phase's evidence: a deploy is proven after it happened."""
        if transition.status.is_terminal:
            return
        view = self.slack.services.view(transition.release_id)
        phase_of = {s.key: s.phase_key for s in view.steps}
        entered = phase_of.get(transition.to_step)
        if entered is None or entered == phase_of.get(transition.from_step):
            return
        if any(i.evidence for i in view.checklist.phase(entered).items):
            self.soon(transition.release_id, (entered,))


def register_evidence(app: App, ctx: EvidenceContext, guard: Guard) -> None:
    lang = ctx.lang
    gateway = ctx.slack.publisher.gateway

    @app.action(ActionId.EVIDENCE_RECHECK.value)
    @guard
    def on_recheck(ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond) -> None:
        ack()
        value = action.get("value")
        if not isinstance(value, str) or not value.isdigit():
            raise PermissionDenied("forged_action")
        release_ctx.set(int(value))
        guard.defer(body, respond, recheck, ctx, int(value), body, respond)

    @app.action(ActionId.EVIDENCE_OVERRIDE.value)
    @guard
    def on_override(ack: Ack, body: dict[str, Any], action: dict[str, Any]) -> None:
        ack()
        rid, _, item_key = str(action.get("value") or "").partition(":")
        if not rid.isdigit() or not item_key:
            raise PermissionDenied("forged_action")
        view = _release_of(ctx, int(rid), body)
        try:
            item = view.checklist.item(item_key)
        except KeyError:
            raise PermissionDenied("forged_action") from None
        result = view.evidence.get(item_key)
        part = result.headline() if result is not None else None
        why = evidence_blocks.part_text(part, lang, plain=True) if part is not None else ""
        gateway.open_view(
            str(body.get("trigger_id", "")),
            notices.reason_modal(
                CallbackId.EVIDENCE_OVERRIDE,
                t(lang, "modal_evidence_title"),
                t(lang, "modal_evidence_prompt", item=item.text, why=why)[:2000],
                t(lang, "modal_submit"),
                t(lang, "modal_cancel"),
                ctx.slack.seal.seal(
                    {"release": int(rid), "item": item_key, "channel": view.release.channel_id},
                    parsing.actor_of(body).id,
                ),
            ),
        )

    @app.view(CallbackId.EVIDENCE_OVERRIDE.value)
    def on_override_submitted(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        accepted = accept_reason(ctx.slack, ack, body, view, ("release", "item", "channel"))
        if accepted is None:
            return
        reason, meta, actor = accepted
        item_key = str(meta.get("item") or "")

        try:
            if not item_key:
                raise UsageError("bad_payload")
            ctx.evidence.override(int(meta["release"]), item_key, actor=actor, reason=reason)
            ctx.redraw(int(meta["release"]))
        except Exception as error:  # a modal has no response_url: answer privately in the release channel
            channel = meta.get("channel")
            if isinstance(channel, str):
                try:
                    gateway.ephemeral(channel, actor.id, user_text(error, {}, lang))
                except Exception:
                    log.warning("could not answer an override privately")


def recheck(ctx: EvidenceContext, release_id: int, body: dict[str, Any], respond: Respond) -> None:
    view = _release_of(ctx, release_id, body)
    actor = parsing.actor_of(body)
    result = ctx.evidence.evaluate(view.release.id, actor=actor)
    ctx.redraw(view.release.id)
    counts = {s.value: result.count(s) for s in EvidenceStatus}
    respond(text=t(ctx.lang, "evidence_checked", **counts), response_type="ephemeral", replace_original=False)


def _release_of(ctx: EvidenceContext, release_id: int, body: dict[str, Any]) -> ReleaseView:
    """The release a button names, refusing one clicked in another channel than the release's own."""
    channel, _ts = parsing.container(body)
    view = ctx.slack.services.view(release_id)
    if view.release.channel_id != channel:
        raise PermissionDenied("forged_action")
    return view
