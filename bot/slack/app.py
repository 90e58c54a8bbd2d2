"""The Bolt app factory and its one error handler."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from slack_bolt import App
from slack_bolt.context.respond import Respond
from slack_sdk import WebClient

from bot.config import Settings
from bot.errors import ConfigError, IntegrationError, UserError
from bot.i18n import t
from bot.slack.blocks import escape_params
from bot.slack.gateway import permalink
from bot.slack.identity import BotAuthorization, Identity
from bot.slack.listeners import Guard, SlackContext, register, register_fallbacks

log = logging.getLogger(__name__)


def _team_domain(body: dict[str, Any]) -> str | None:
    domain = body.get("team_domain")
    if isinstance(domain, str):
        return domain
    team = body.get("team")
    return team.get("domain") if isinstance(team, dict) and isinstance(team.get("domain"), str) else None


def user_text(error: Exception, body: dict[str, Any], lang: str) -> str:
    """What the person sees for an error; unknown errors get an id that is also in the log."""
    if isinstance(error, UserError):
        params = escape_params(error.params)
        if "channel_id" in params:
            params["link"] = permalink(_team_domain(body), str(params["channel_id"]), params.get("thread_ts"))  # type: ignore[arg-type]
        log.info("refused: %s", error.user_message)
        return t(lang, error.user_message, **params)
    error_id = uuid.uuid4().hex[:8]
    if isinstance(error, ConfigError):
        # Set-up the bot found wrong only when asked to use it (a broken kubeconfig): one line, no traceback.
        log.warning("configuration error %s: %s", error_id, error)
        return t(
            lang, "integration_error", message=t(lang, error.user_message, **error.params), error_id=error_id
        )
    if isinstance(error, IntegrationError):
        log.warning("integration error %s: %s", error_id, error, exc_info=error)
        message = t(lang, error.user_message, **escape_params(error.params))
        return t(lang, "integration_error", message=message, error_id=error_id)
    log.error("unhandled error %s", error_id, exc_info=error)
    return t(lang, "internal_error", error_id=error_id)


def answer_error(error: Exception, body: dict[str, Any], respond: Respond | None, ctx: SlackContext) -> None:
    """Tell the person what went wrong, privately."""
    text = user_text(error, body, ctx.lang)
    if respond is not None and body.get("response_url"):
        try:
            respond(text=text, response_type="ephemeral", replace_original=False)
        except Exception:
            log.warning("could not answer through response_url")
        return
    user = body["user"].get("id") if isinstance(body.get("user"), dict) else body.get("user_id")
    channel_field = body.get("channel")
    channel = channel_field.get("id") if isinstance(channel_field, dict) else body.get("channel_id")
    if isinstance(user, str) and isinstance(channel, str):
        try:
            ctx.publisher.gateway.ephemeral(channel, user, text)
        except Exception:
            log.warning("could not answer ephemerally")


class _DropNotes(logging.Filter):
    def __init__(self, notes: set[str]) -> None:
        super().__init__()
        self._notes = notes

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() not in self._notes


def _quiet_bolt_construction() -> None:
    """Bolt warns at every App it builds that the token (read from SLACK_BOT_TOKEN) is unused, which is by design
    here: the client and BotAuthorization carry it. Once per process and app, those lines were only noise."""
    from slack_bolt.logger import messages

    bolt = logging.getLogger("slack_bolt.App")
    if not any(isinstance(f, _DropNotes) for f in bolt.filters):
        notes = {messages.warning_client_prioritized_and_token_skipped(), messages.warning_token_skipped()}
        bolt.addFilter(_DropNotes(notes))


def click_route(body: dict[str, Any]) -> tuple[str, str, str] | None:
    """(channel, ts, response_url) of the message a click came from, when its response_url can redraw it."""
    container = body.get("container")
    url = body.get("response_url")
    if body.get("type") != "block_actions" or not isinstance(container, dict) or not isinstance(url, str):
        return None
    channel, ts = container.get("channel_id"), container.get("message_ts")
    if container.get("type") != "message" or container.get("is_ephemeral") or not url:
        return None
    if not isinstance(channel, str) or not isinstance(ts, str):
        return None
    return channel, ts, url


def new_work_pool() -> ThreadPoolExecutor:
    """Where listeners' deferred work runs (``Guard.defer``)."""
    # Few workers on purpose: clicks on one release serialise on its row anyway, and every extra runnable thread
    # is one more contender for the GIL that a single-process bot's ack path needs.
    return ThreadPoolExecutor(3, thread_name_prefix="work")


def create_app(
    settings: Settings,
    client: WebClient,
    ctx: SlackContext,
    extra: Callable[[App, Guard], None] = lambda _app, _guard: None,
    *,
    work: ThreadPoolExecutor,
    forward: Callable[[dict[str, Any]], None] | None = None,
    answer_in_listener: bool = False,
    identity: Identity | None = None,
) -> App:
    """Build the Bolt app with its listeners; connects to nothing until a request arrives."""
    _quiet_bolt_construction()
    app = App(
        client=client,
        authorize=BotAuthorization(client.token or "", identity),
        signing_secret=settings.slack_signing_secret or "unused-in-socket-mode",
        token_verification_enabled=False,
        # bot.runtime.web checks the signature on the raw bytes before Bolt sees a request. Bolt's own check comes
        # after it has decoded the body, fails with a 500 on a timestamp that is not a number, and logs the whole
        # body of a request that fails it.
        request_verification_enabled=False,
        # The work process re-dispatches payloads that were acked already: no need to poll for its ack.
        process_before_response=answer_in_listener,
        raise_error_for_unhandled_request=False,
        listener_executor=ThreadPoolExecutor(settings.listener_threads, thread_name_prefix="listener"),
    )
    guard = Guard(
        lambda error, body, respond: answer_error(error, body, respond, ctx),
        lambda error, body: user_text(error, body, ctx.lang),
        work,
        forward,
    )
    @app.middleware
    def offer_reply_route(body: dict[str, Any], next: Callable[[], Any]) -> Any:
        route = click_route(body)
        if route is not None:
            ctx.publisher.sync.offer_route(*route)
        return next()

    register(app, ctx, guard)
    extra(app, guard)
    register_fallbacks(app, ctx)

    @app.error
    def on_error(error: Exception, body: dict[str, Any], respond: Respond | None) -> None:
        # Errors from Bolt itself (middleware); listener errors are answered by the listeners' guard.
        answer_error(error, body, respond, ctx)

    return app
