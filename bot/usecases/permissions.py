"""Checking an action against its role (``bot.domain.roles``), and recording every refusal.

Knows nothing of Slack: whether someone is a release manager is asked of ``is_manager`` (user ids and user groups
resolved by the Slack layer). Must not import slack_bolt, slack_sdk, kubernetes or httpx.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from bot.db.uow import SqlUnitOfWork
from bot.domain.records import Actor
from bot.domain.roles import Action, needs_manager
from bot.errors import PermissionDenied
from bot.ports import Clock

log = logging.getLogger(__name__)


class Permissions:
    """``require`` raises ``PermissionDenied`` (and audits the refusal) unless the actor may take the action."""

    def __init__(
        self,
        *,
        uow: Callable[[], SqlUnitOfWork],
        clock: Clock,
        is_manager: Callable[[str], bool],
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._is_manager = is_manager

    def is_manager(self, user_id: str) -> bool:
        return self._is_manager(user_id)

    def allows(self, actor: Actor, action: Action) -> bool:
        return not needs_manager(action) or self._is_manager(actor.id)

    def require(self, release_id: int | None, actor: Actor, action: Action) -> None:
        """Refuse unless allowed; the refusal lands in the release's audit trail (or the log, before one exists)."""
        if self.allows(actor, action):
            return
        if release_id is None:
            log.warning("refused %s to %s: not a release manager", action.value, actor.id)
        else:
            with self._uow() as uow:
                self.record_refusal(uow, release_id, actor, action)
                uow.commit()
        raise PermissionDenied(denial(action))

    def record_refusal(
        self, uow: SqlUnitOfWork, release_id: int, actor: Actor, action: Action, item: str | None = None
    ) -> None:
        uow.audit.append(
            release_id,
            "permission_denied",
            actor,
            self._clock.now(),
            item_key=item,
            details={"action": action.value},
        )


def denial(action: Action) -> str:
    """The message key that tells someone they may not take ``action``."""
    return f"denied_{action.value}"
