"""Who the bot is in Slack: ``auth.test`` once at start, and Bolt's authorization without a call per request.

Bolt's single-workspace authorization calls ``auth.test`` on the first request it handles and lets any failure
other than Slack's own refusal escape: with Slack unreachable, a signed ``/release start`` became an HTTP 500 and
an "unhandled error". Here the token is checked once, at start (``check_token``), and every request is authorized
from what that check learnt, or, when Slack could not be reached then, from the token alone: nothing the bot's
listeners use needs the ids ``auth.test`` adds.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from slack_bolt.authorization import AuthorizeResult
from slack_bolt.authorization.authorize import Authorize
from slack_bolt.context import BoltContext
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from bot.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Identity:
    """What ``auth.test`` says about the token: the workspace and the bot's ids."""

    team: str
    team_id: str
    bot_id: str
    user_id: str
    enterprise_id: str | None = None

    @classmethod
    def of(cls, answer: Any) -> Identity:
        return cls(
            team=str(answer.get("team") or ""),
            team_id=str(answer.get("team_id") or ""),
            bot_id=str(answer.get("bot_id") or ""),
            user_id=str(answer.get("user_id") or ""),
            enterprise_id=answer.get("enterprise_id") or None,
        )


def check_token(client: WebClient) -> Identity | None:
    """``auth.test`` the bot token: its identity; None when Slack cannot be reached (said in one warning line).

    A token Slack refuses is a ConfigError: one line naming SLACK_BOT_TOKEN and Slack's reason."""
    try:
        return Identity.of(client.auth_test())
    except SlackApiError as e:
        code = str(e.response.get("error", "unknown_error")) if e.response is not None else "unknown_error"
        if code in ("ratelimited", "service_unavailable", "internal_error", "fatal_error", "request_timeout"):
            log.warning("Slack could not check SLACK_BOT_TOKEN now (auth.test: %s); carrying on", code)
            return None
        raise ConfigError(
            f"SLACK_BOT_TOKEN was refused by Slack (auth.test: {code}): copy the Bot User OAuth Token of the "
            "installed app again (OAuth & Permissions), or reinstall the app"
        ) from None
    except (SlackClientError, OSError) as e:
        log.warning(
            "Slack is unreachable at %s (%s): carrying on; commands are acknowledged and Slack is retried",
            client.base_url,
            type(e).__name__,
        )
        return None


class BotAuthorization(Authorize):
    """Bolt's ``authorize``: the bot token and what ``check_token`` learnt, without calling Slack."""

    def __init__(self, token: str, identity: Identity | None = None) -> None:
        self._token = token
        self.identity = identity

    def __call__(
        self,
        *,
        context: BoltContext,
        enterprise_id: str | None,
        team_id: str | None,
        user_id: str | None,
        actor_enterprise_id: str | None = None,
        actor_team_id: str | None = None,
        actor_user_id: str | None = None,
    ) -> AuthorizeResult:
        known = self.identity
        return AuthorizeResult(
            enterprise_id=known.enterprise_id if known else enterprise_id,
            team_id=known.team_id if known else team_id,
            team=known.team if known else None,
            bot_id=known.bot_id if known else None,
            bot_user_id=known.user_id if known else None,
            bot_token=self._token,
            user_id=user_id,
        )
