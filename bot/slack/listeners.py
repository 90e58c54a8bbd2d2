"""Bolt listeners: ack → parse → one service call → hand rendering/posting to the publisher.

No SQL, no business rules here. Errors raised after the ack go to the app's error handler, which answers the
person ephemerally.
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Callable
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field, replace
from typing import Any

from slack_bolt import Ack, App, Respond

from bot.config import Settings
from bot.errors import UsageError
from bot.i18n import t
from bot.observability import release_id as release_ctx
from bot.slack import blocks, parsing
from bot.slack.gateway import permalink
from bot.slack.ids import ActionId
from bot.slack.publisher import Origin, Publisher
from bot.slack.view_meta import ViewSeal
from bot.usecases.releases import Services, ToggleItems


@dataclass(frozen=True)
class SlackContext:
    """What the listeners are bound to."""

    settings: Settings
    services: Services
    publisher: Publisher
    # Subcommands other listener modules add (abort, incident, rollback, ...): name → handler(cmd, ack).
    commands: dict[str, Callable[[parsing.Command, Ack], None]] = field(default_factory=dict)
    # Called with each release started here and its publishing, which runs in the background (the evidence check).
    on_started: list[Callable[[int, Future[Any]], None]] = field(default_factory=list)

    @property
    def lang(self) -> str:
        return self.settings.language

    @functools.cached_property
    def seal(self) -> ViewSeal:
        """Signs the metadata of the modals the bot opens (bot.slack.view_meta)."""
        s = self.settings
        return ViewSeal(s.slack_signing_secret or s.slack_app_token or s.slack_bot_token)


def _usage_text(ctx: SlackContext, error: UsageError) -> str:
    text = t(ctx.lang, error.user_message, **blocks.escape_params(error.params))
    if error.user_message in ("unknown_subcommand", "bad_payload", "command_multiline", "command_extra_words"):
        text += "\n\n" + t(ctx.lang, "usage")
    return text


ErrorAnswer = Callable[[Exception, dict[str, Any], Respond | None], None]
ErrorText = Callable[[Exception, dict[str, Any]], str]


class Guard:
    """Answers listener errors ourselves, and runs slow work off the listener threads.

    Bolt's thread runner resets an already-sent ack to None when the listener raises, so an error raised
    right after ``ack()`` can turn the HTTP answer into a 404 ("didn't call ack"). Catching here keeps the
    ack, and the person still gets a private answer from the one error presenter.

    Bolt runs listeners on a pool of 5 threads and answers Slack only once the listener has called ``ack()``.
    Listeners therefore ack, parse, and hand database and Slack work to ``defer``: a burst of clicks then never
    leaves a new request waiting for a free listener thread before it can be acknowledged.

    With ``forward`` set (the serving process of ``release-bot serve``), deferred work does not run here at
    all: the verified payload goes to the work process, whose own app handles it again and runs the work there.
    """

    def __init__(
        self,
        on_error: ErrorAnswer,
        error_text: ErrorText,
        work: Executor,
        forward: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self._on_error = on_error
        self._error_text = error_text
        self._work = work
        self._forward = forward

    def __call__(self, fn: Callable[..., None]) -> Callable[..., None]:
        on_error, error_text = self._on_error, self._error_text

        @functools.wraps(fn)
        def run(**kwargs: Any) -> None:
            try:
                fn(**kwargs)
            except Exception as error:
                ack = kwargs.get("ack")
                body = kwargs.get("body") or {}
                if ack is not None and ack.response is None:
                    # Not acked yet: the answer rides on the ack itself, private and without an API call.
                    ack(text=error_text(error, body), response_type="ephemeral")
                else:
                    on_error(error, body, kwargs.get("respond"))

        # Bolt passes arguments by the listener's parameter names: keep the original signature.
        run.__signature__ = inspect.signature(fn)  # type: ignore[attr-defined]
        return run

    def defer(
        self, body: dict[str, Any], respond: Respond | None, fn: Callable[..., None], *args: Any
    ) -> None:
        """Run ``fn(*args)`` on the work pool; its errors are answered to the person like any other."""
        if self._forward is not None:
            self._forward(body)
            return
        release = release_ctx.get()

        def run() -> None:
            token = release_ctx.set(release)
            try:
                fn(*args)
            except Exception as error:
                self._on_error(error, body, respond)
            finally:
                release_ctx.reset(token)

        self._work.submit(run)


def register(app: App, ctx: SlackContext, guard: Guard) -> None:
    """Attach the core listeners to the app."""
    lang = ctx.lang

    @app.command("/release")
    @guard
    def on_release(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        try:
            cmd = parsing.parse_command(body, ctx.services.catalog.services)
        except UsageError as e:
            # Bad input is answered in the ack itself: instant, private, and no Slack API call.
            ack(text=_usage_text(ctx, e), response_type="ephemeral")
            return
        if cmd.sub == "help":
            ack(text=t(lang, "usage"), response_type="ephemeral")
        elif cmd.sub == "status":
            view = ctx.services.find(ctx.settings.release_channel or cmd.channel_id, cmd.version, cmd.service)
            ack(text=blocks.render_status(view, lang), response_type="ephemeral")
        elif cmd.sub == "list":
            views = ctx.services.recent_views(ctx.settings.release_channel or cmd.channel_id)
            pairs = [
                (v, permalink(cmd.team_domain, v.release.channel_id, v.release.thread_ts)) for v in views
            ]
            ack(text=blocks.render_list(pairs, lang), response_type="ephemeral")
        elif cmd.sub == "contacts":
            serving = ctx.services.serving(ctx.settings.release_channel or cmd.channel_id) or (
                ctx.services.template,
            )
            text = "\n\n".join(blocks.render_contacts(c, lang) for c in serving)
            ack(text=text, response_type="ephemeral")
        elif cmd.sub == "start":
            assert cmd.version is not None
            # Which checklist is asked here, before anything is said to start: a wrong or missing service is
            # answered in the ack, privately.
            channel = ctx.settings.release_channel or cmd.channel_id
            chosen = ctx.services.catalog.resolve(channel, cmd.service, cmd.version)
            cmd = replace(cmd, service=chosen.service)
            ack(text=t(lang, "starting", version=cmd.version), response_type="ephemeral")
            guard.defer(body, respond, start_release, ctx, cmd)
        elif cmd.sub in ctx.commands:
            ctx.commands[cmd.sub](cmd, ack)
        else:
            ack(text=_usage_text(ctx, UsageError("unknown_subcommand", params={"sub": cmd.sub})))

    @app.action(ActionId.TOGGLE_ITEM.value)
    @guard
    def on_toggle(ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond) -> None:
        ack()
        cmd = parsing.toggle(body, action)
        release_ctx.set(cmd.release_id)
        guard.defer(body, respond, apply_toggle, ctx, cmd)

    # app_home_opened is answered by bot.runtime.dashboard_wiring (the App Home tab).


def start_release(ctx: SlackContext, cmd: parsing.Command) -> None:
    assert cmd.version is not None
    channel = ctx.settings.release_channel or cmd.channel_id
    view = ctx.services.start_release(
        channel_id=channel, version=cmd.version, actor=cmd.actor, service=cmd.service
    )
    release_ctx.set(view.release.id)
    origin = Origin(cmd.actor.id, cmd.channel_id, cmd.response_url, cmd.team_domain)
    published = ctx.publisher.publish_release(view, origin)
    for hook in ctx.on_started:
        hook(view.release.id, published)


def apply_toggle(ctx: SlackContext, cmd: ToggleItems) -> None:
    result = ctx.services.toggle_items(cmd)
    ctx.publisher.sync.mark_dirty(result.dirty_messages)


def register_fallbacks(app: App, ctx: SlackContext) -> None:
    """Answer anything no other listener took; registered last because Bolt runs the first match."""

    @app.action(re.compile(".*"))
    def on_unknown_action(ack: Ack, respond: Respond | None) -> None:
        ack()
        if respond is not None:  # Home-tab and modal actions carry no response_url
            respond(text=t(ctx.lang, "bad_payload"), response_type="ephemeral", replace_original=False)

    @app.view(re.compile(".*"))
    def on_unknown_view(ack: Ack) -> None:
        ack()
