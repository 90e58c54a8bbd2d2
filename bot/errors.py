"""Errors raised by the release bot.

Every error carries a ``user_message``: the words a person in Slack (or at the CLI) sees, or a key of the
message catalog (``bot.i18n``) that the presenter translates with ``params``. The Slack error
handler shows ``UserError`` messages as they are, ``IntegrationError`` messages with an error id, and anything
else as a generic message with an error id, logging the traceback.

ReleaseBotError                   base; carries user_message
├── ConfigError                   a setting is missing or invalid (start-up stops with one line)
├── ChecklistError                a checklist file is invalid; names the file and the field path
├── NotLeader                     a leader-only write was refused: this process no longer leads
├── UserError                     the user can fix it; shown as-is
│   ├── UsageError                malformed command or payload
│   ├── NotFound                  release / item / message does not exist
│   ├── PermissionDenied          actor lacks the role for this action
│   ├── InvalidTransition         the state machine refuses (e.g. advance a finished release)
│   ├── GateNotMet                checklist incomplete or wait not over; carries what is open
│   ├── Conflict                  the same thing already exists or is in progress (release, rollback)
│   ├── Locked                    production is locked after a rollback
│   └── Unavailable               a part the bot is not set up for here (no cluster): says what to do instead
└── IntegrationError              an outbound system failed
    ├── DeployerError             Kubernetes API error or timeout
    ├── PagerError                PagerDuty rejected the event or stayed unreachable
    ├── MetricsError              Prometheus unreachable or answered with an error envelope
    ├── GitHubError               GitHub unreachable, rate-limited, or refused the credentials
    └── ChatError                 Slack Web API call failed; ``code`` is Slack's error string
"""

from __future__ import annotations

from datetime import datetime
from typing import Any


class ReleaseBotError(Exception):
    """Base of every error the bot raises on purpose."""

    def __init__(
        self, user_message: str, *, detail: str | None = None, params: dict[str, object] | None = None
    ) -> None:
        super().__init__(detail or user_message)
        self.user_message = user_message
        # When user_message is a message-catalog key, params fill its placeholders (see bot.i18n).
        self.params = params or {}


class ConfigError(ReleaseBotError):
    """A setting is missing or invalid; raised while loading settings."""


class ChecklistError(ReleaseBotError):
    """A checklist file cannot be read or does not validate."""


class NotLeader(ReleaseBotError):
    """This process does not hold leadership (any more), so a leader-only write was refused in its transaction.

    Leader-only work stops when it sees this: the current leader does the work instead."""

    def __init__(self, detail: str = "this process no longer leads") -> None:
        # Background work only: never shown in Slack, so plain words rather than a catalog key.
        super().__init__("this process no longer leads; the current leader does this work", detail=detail)


class UserError(ReleaseBotError):
    """Something the person can fix; the message is shown to them as is."""


class UsageError(UserError):
    """A malformed command, version or payload."""


class NotFound(UserError):
    """The release, item or message named does not exist."""


class PermissionDenied(UserError):
    """The actor lacks the role for this action; every refusal is audited."""


class InvalidTransition(UserError):
    """The release state machine refuses the requested move."""


class GateNotMet(UserError):
    """A phase gate is not met: open checklist items, a canary wait or the post-deploy watch that is not over, or
    the monitoring gate over the stage (``window``: its JSON-safe record; ``observing_s``: the observation a stage
    without a wait still needs)."""

    def __init__(
        self,
        user_message: str,
        *,
        open_items: tuple[str, ...] = (),
        wait_remaining_s: float | None = None,
        window: dict[str, Any] | None = None,
        observing_s: float | None = None,
    ) -> None:
        super().__init__(user_message)
        self.open_items = open_items
        self.wait_remaining_s = wait_remaining_s
        self.window = window
        self.observing_s = observing_s


class Conflict(UserError):
    """The thing asked for already exists or is already in progress."""


class Locked(UserError):
    """Production stages of a service are locked after a rollback."""


class Unavailable(UserError):
    """A part of the bot that is not set up where it runs, such as a cluster for the rollback button."""


class IntegrationError(ReleaseBotError):
    """An outbound system failed; shown with an error id."""


class DeployerError(IntegrationError):
    """The Kubernetes API refused or did not answer."""


class PagerError(IntegrationError):
    """PagerDuty rejected the event or stayed unreachable after bounded retries."""

    def __init__(self, user_message: str, *, retryable: bool, detail: str | None = None) -> None:
        super().__init__(user_message, detail=detail)
        self.retryable = retryable


class MetricsError(IntegrationError):
    """Prometheus was unreachable, timed out, or answered with an error envelope."""


class GitHubError(IntegrationError):
    """GitHub did not answer, answered with an error, or asked us to slow down.

    ``kind`` is ``unreachable``, ``rate_limited``, ``auth`` (credentials refused or missing a permission) or
    ``error``; ``retry_at`` is when GitHub said it would take requests again (rate limits)."""

    def __init__(
        self, user_message: str, *, kind: str, retry_at: datetime | None = None, detail: str | None = None
    ) -> None:
        super().__init__(user_message, detail=detail)
        self.kind = kind
        self.retry_at = retry_at


class ChatError(IntegrationError):
    """A Slack Web API call failed; ``code`` is Slack's error string (``not_in_channel``, ``ratelimited``)."""

    def __init__(self, user_message: str, *, code: str, retryable: bool) -> None:
        super().__init__(user_message, detail=f"slack error: {code}")
        self.code = code
        self.retryable = retryable
