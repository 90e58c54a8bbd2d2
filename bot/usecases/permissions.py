"""Checking an action against its role (``bot.domain.roles``), and recording every refusal.

Knows nothing of Slack: whether someone is a release manager is asked of ``is_manager`` (user ids and user groups
resolved by the Slack layer). Must not import slack_bolt, slack_sdk, kubernetes or httpx.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from bot.db.uow import SqlUnitOfWork
from bot.domain.records import Actor
from bot.domain.roles import Action, needs_manager
from bot.errors import PermissionDenied
from bot.ports import Clock

log = logging.getLogger(__name__)


class Permissions:
    """``require`` raises ``PermissionDenied`` (and audits the refusal) unless the actor may take the action.

    A release manager (``RELEASE_MANAGERS``) manages every release; a checklist's own ``managers`` manage the
    releases of its service (``service_managers``: service → the check of its managers), today's list, not the
    one a release started with. Nobody else does: closed by default.
    """

    def __init__(
        self,
        *,
        uow: Callable[[], SqlUnitOfWork],
        clock: Clock,
        is_manager: Callable[[str], bool],
        service_managers: Mapping[str, Callable[[str], bool]] | None = None,
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._is_manager = is_manager
        self._service_managers = dict(service_managers or {})

    def is_manager(self, user_id: str, service: str | None = None) -> bool:
        """Whether the user manages the releases of ``service`` (with None: every release)."""
        if self._is_manager(user_id):
            return True
        check = self._service_managers.get(service) if service is not None else None
        return check is not None and check(user_id)

    def allows(self, actor: Actor, action: Action, service: str | None = None) -> bool:
        return not needs_manager(action) or self.is_manager(actor.id, service)

    def require(
        self, release_id: int | None, actor: Actor, action: Action, *, service: str | None = None
    ) -> None:
        """Refuse unless allowed; the refusal lands in the release's audit trail (or the log, before one exists).

        ``service`` is the release's (read from it when not given); a start names the service it would start."""
        if not needs_manager(action) or self._is_manager(actor.id):
            return
        if service is None and release_id is not None and self._service_managers:
            with self._uow() as uow:
                service = uow.releases.get(release_id).service
        if self.allows(actor, action, service):
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
