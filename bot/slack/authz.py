"""Who counts as a release manager (user ids, and members of user groups), and who is a member of a channel:
both resolved through Slack and cached, so a check costs a Web API call at most once per cache period."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from bot.config import EVERYONE
from bot.errors import ChatError
from bot.slack.gateway import SlackGateway

log = logging.getLogger(__name__)


class Managers:
    """``RELEASE_MANAGERS``: the ids named there (users, and members of user groups), or everyone for ``*``.

    Closed by default: with nothing named, nobody is a manager (``serve`` refuses to start that way, so this only
    matters to tools that build the bot without serving).
    """

    def __init__(
        self,
        ids: tuple[str, ...],
        gateway: SlackGateway,
        *,
        ttl_s: float = 300.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.everyone = ids == (EVERYONE,)
        self.ids = () if self.everyone else ids
        self._users = {i for i in ids if not i.startswith("S")}
        self._groups = [i for i in ids if i.startswith("S")]
        self._gateway = gateway
        self._ttl = ttl_s
        self._monotonic = monotonic
        self._cache: dict[str, tuple[float, frozenset[str]]] = {}
        self._lock = threading.Lock()

    def is_manager(self, user_id: str) -> bool:
        if self.everyone or user_id in self._users:
            return True
        return any(user_id in self._members(group) for group in self._groups)

    def _members(self, group: str) -> frozenset[str]:
        now = self._monotonic()
        with self._lock:
            cached = self._cache.get(group)
        if cached is not None and cached[0] > now:
            return cached[1]
        try:
            members = frozenset(self._gateway.usergroup_members(group))
        except ChatError as e:
            # Slack is unavailable: a recently known membership is better than refusing everyone.
            log.warning("could not resolve user group %s (%s)", group, e.code)
            return cached[1] if cached is not None else frozenset()
        with self._lock:
            self._cache[group] = (now + self._ttl, members)
        return members


class ChannelMembers:
    """Who is in a channel (``conversations.members``, Tier 4), cached per channel for ``ttl_s``.

    The App Home shows a release only to members of its channel. Lookups are cached and one at a time per channel,
    so however many people open the tab, Slack is asked about each channel at most once per period. When Slack
    cannot answer, a recent list is used; with none, nobody is taken for a member (nothing is shown).
    """

    def __init__(
        self, gateway: SlackGateway, *, ttl_s: float = 300.0, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self._gateway = gateway
        self._ttl = ttl_s
        self._monotonic = monotonic
        self._cache: dict[str, tuple[float, frozenset[str]]] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()

    def is_member(self, channel: str, user_id: str) -> bool:
        return user_id in self.members(channel)

    def members(self, channel: str) -> frozenset[str]:
        cached = self._fresh(channel)
        if cached is not None:
            return cached
        with self._lock:
            fetching = self._locks.setdefault(channel, threading.Lock())
        with fetching:
            cached = self._fresh(channel)  # another thread may have just fetched it
            if cached is not None:
                return cached
            try:
                members = frozenset(self._gateway.conversation_members(channel))
            except ChatError as e:
                log.warning("could not read the members of %s (%s)", channel, e.code)
                with self._lock:
                    stale = self._cache.get(channel)
                return stale[1] if stale is not None else frozenset()
            with self._lock:
                self._cache[channel] = (self._monotonic() + self._ttl, members)
            return members

    def _fresh(self, channel: str) -> frozenset[str] | None:
        with self._lock:
            cached = self._cache.get(channel)
        return cached[1] if cached is not None and cached[0] > self._monotonic() else None
