"""Keeps the Slack messages of releases in line with the database, which is always the truth.

A change marks messages dirty. One worker thread renders each dirty message from the database and sends one
``chat.update``, at most once per ``min_interval_s`` per message, so a burst of clicks coalesces into a handful
of updates whose last one is exact. When Slack fails (429, 5xx, unreachable) the message stays dirty and is
retried with backoff; a periodic sweep also picks up anything the database says Slack has not seen yet, such as
changes made while this process was down.
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from bot.errors import ChatError, NotFound

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Rendered:
    """A message as it should look now."""

    message_id: int
    channel: str
    ts: str
    rev: int
    text: str
    blocks: list[dict[str, Any]]


class Pace(Protocol):
    """Turns for chat.update (``bot.slack.gateway.UpdatePacer``)."""

    def take(self) -> float: ...

    def give_back(self) -> None: ...

    def may_update(self) -> bool: ...


@dataclass
class _Route:
    """The response_url of the newest click on a message: it can redraw that message outside chat.update's tier."""

    url: str
    expires: float
    uses: int = 0


ROUTE_USES = 4  # of the 5 a response_url allows: one is left for an error answer to the click
ROUTE_TTL_S = 25 * 60.0  # of its 30 minutes, with margin for clocks
# What is kept of a message drawn this long ago and not due again is forgotten: kept for ever, it grew the leader's
# work process by every message of every release (the two-hour soak). Forgetting costs at most one redraw more.
FORGET_S = 15 * 60.0
FORGET_EVERY = 256  # draws between two looks for what to forget


class MessageSync:
    """The per-message update coalescer.

    With ``pace``, chat.update waits its turn in a workspace-wide budget (Slack's Tier 3). A message clicked a
    moment ago does not wait: ``offer_route`` hands over the click's response_url, and the message is redrawn
    through it (``send_route``), in its own lane, ahead of the paced ones. Both lanes render from the database
    just before sending and never send a revision older than one already sent, so the last render wins.
    """

    def __init__(
        self,
        *,
        render: Callable[[int], Rendered | None],
        send: Callable[[Rendered], None],
        mark_synced: Callable[[int, int], int | None],
        find_out_of_sync: Callable[[], Iterable[int]],
        min_interval_s: float = 1.0,
        sweep_interval_s: float = 15.0,
        monotonic: Callable[[], float] = time.monotonic,
        pace: Pace | None = None,
        send_route: Callable[[Rendered, str], bool] | None = None,
    ) -> None:
        self._render = render
        self._send = send
        self._mark_synced = mark_synced
        self._find_out_of_sync = find_out_of_sync
        self._min_interval = min_interval_s
        self._sweep_interval = sweep_interval_s
        self._monotonic = monotonic
        self._pace = pace
        self._send_route = send_route
        self._cv = threading.Condition()
        self._heap: list[tuple[float, int]] = []  # paced lane
        self._fast: list[tuple[float, int]] = []  # redrawn through a click's response_url
        self._due: dict[int, float] = {}
        self._lane: dict[int, bool] = {}  # True: fast
        self._where: dict[int, tuple[str, str]] = {}
        self._at: dict[tuple[str, str], int] = {}
        self._routes: dict[tuple[str, str], _Route] = {}
        self._last_sent: dict[int, float] = {}
        self._sent_rev: dict[int, int] = {}
        self._failures: dict[int, int] = {}
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._busy = 0
        self._relay: Callable[[list[int]], None] | None = None
        self._draws = 0

    def relay_to(self, relay: Callable[[list[int]], None]) -> None:
        """Another process draws the messages (``serve``'s work process): marks go there, and this one, never
        started, does not sweep. Two sweepers would draw every out-of-sync message twice."""
        self._relay = relay

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="message-sync", daemon=True)
        self._thread.start()

    @property
    def thread_id(self) -> int | None:
        """The worker thread's OS id, once started."""
        return self._thread.native_id if self._thread is not None else None

    def stop(self, timeout: float = 5.0) -> None:
        with self._cv:
            self._stopping = True
            self._cv.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    def offer_route(self, channel: str, ts: str, response_url: str) -> None:
        """A click on message (channel, ts) came with this response_url: the next redraws of that message may use
        it. The process that draws (not a relaying one) is the one whose app also sees the click."""
        if self._relay is not None or self._send_route is None:
            return
        with self._cv:
            self._routes[(channel, ts)] = _Route(response_url, self._monotonic() + ROUTE_TTL_S)
            mid = self._at.get((channel, ts))
            if mid is not None and mid in self._due and not self._lane[mid]:
                self._push(mid, self._due[mid], fast=True)  # waiting for a paced turn: it need not any more
            self._cv.notify_all()

    def mark_dirty(self, message_ids: Iterable[int]) -> None:
        if self._relay is not None:
            self._relay(list(message_ids))
            return
        now = self._monotonic()
        with self._cv:
            for mid in message_ids:
                if mid in self._due:
                    continue  # already queued: it will render the newest state when it runs
                due = max(now, self._last_sent.get(mid, float("-inf")) + self._min_interval)
                self._push(mid, due, fast=self._fast_lane(mid, now))
            self._cv.notify_all()

    def _fast_lane(self, mid: int, now: float) -> bool:
        if self._pace is None:
            return False  # nothing to wait for in the paced lane
        where = self._where.get(mid)
        if where is None:
            # Where it is in Slack is learnt from its first render, which the fast lane does at no paced cost.
            return any(r.expires > now for r in self._routes.values())
        return self._live_route(where, now) is not None

    def _forget_old(self) -> None:
        """Drop what is kept of messages drawn over ``FORGET_S`` ago and not due: where they are, the revision last
        drawn (a later render is newer anyway) and their spacing (long past), and routes that have expired."""
        now = self._monotonic()
        with self._cv:
            old = [m for m, at in self._last_sent.items() if at < now - FORGET_S and m not in self._due]
            for mid in old:
                self._last_sent.pop(mid, None)
                self._sent_rev.pop(mid, None)
                where = self._where.pop(mid, None)
                if where is not None and self._at.get(where) == mid:
                    del self._at[where]
            for where in [w for w, r in self._routes.items() if r.expires <= now]:
                del self._routes[where]

    def kept(self) -> int:
        """Messages this sync keeps something of (bounded by ``_forget_old``)."""
        with self._cv:
            return len(self._last_sent.keys() | self._where.keys() | self._sent_rev.keys())

    def _live_route(self, where: tuple[str, str], now: float) -> _Route | None:
        route = self._routes.get(where)
        if route is not None and (route.uses >= ROUTE_USES or route.expires <= now):
            del self._routes[where]
            return None
        return route

    def _push(self, mid: int, due: float, *, fast: bool = False) -> None:
        self._due[mid] = due
        self._lane[mid] = fast
        heapq.heappush(self._fast if fast else self._heap, (due, mid))

    def idle(self) -> bool:
        with self._cv:
            return not self._due and self._busy == 0

    def _top(self, heap: list[tuple[float, int]], fast: bool) -> tuple[float, int] | None:
        """The earliest live entry of a lane; superseded entries are dropped on the way."""
        while heap:
            due, mid = heap[0]
            if self._due.get(mid) == due and self._lane.get(mid) == fast:
                return heap[0]
            heapq.heappop(heap)
        return None

    def _take(self, mid: int) -> None:
        del self._due[mid]
        del self._lane[mid]
        self._busy += 1

    def _pick(self, now: float) -> tuple[int | None, bool, float]:
        """(message, whether a paced turn was taken for it, when to look again). Called with the lock held."""
        wake = float("inf")
        top = self._top(self._fast, True)
        if top is not None:
            if top[0] <= now:
                heapq.heappop(self._fast)
                self._take(top[1])
                return top[1], False, now
            wake = top[0]
        top = self._top(self._heap, False)
        if top is None:
            return None, False, wake
        if top[0] > now:
            return None, False, min(wake, top[0])
        if self._pace is None:
            heapq.heappop(self._heap)
            self._take(top[1])
            return top[1], False, now
        if not self._pace.may_update():
            # Not this replica's to spend: the leader's sweep finds the message out of sync in the database.
            heapq.heappop(self._heap)
            self._take(top[1])
            self._busy -= 1
            return None, False, now
        pause = self._pace.take()
        if pause > 0:
            return None, False, min(wake, now + pause)
        heapq.heappop(self._heap)
        self._take(top[1])
        return top[1], True, now

    def _run(self) -> None:
        next_sweep = self._monotonic()
        while True:
            with self._cv:
                mid: int | None = None
                paced = False
                while not self._stopping:
                    now = self._monotonic()
                    if now >= next_sweep:
                        break
                    mid, paced, wake = self._pick(now)
                    if mid is not None:
                        break
                    if wake <= now:
                        continue
                    self._cv.wait(max(0.0, min(wake, next_sweep) - now))
                if self._stopping:
                    return
            if mid is None:
                next_sweep = self._monotonic() + self._sweep_interval
                if self._pace is None or self._pace.may_update():
                    self._sweep()
                continue
            try:
                self._flush(mid, paced)
            finally:
                with self._cv:
                    self._busy -= 1

    def _sweep(self) -> None:
        try:
            ids = list(self._find_out_of_sync())
        except Exception:
            log.exception("message sweep failed")
            return
        if ids:
            self.mark_dirty(ids)

    def _flush(self, mid: int, paced: bool = False) -> None:
        try:
            rendered = self._render(mid)
        except NotFound:
            rendered = None
        except Exception:
            log.exception("rendering message %s failed", mid)
            rendered = None
        if rendered is None or rendered.rev <= self._sent_rev.get(mid, 0):
            if paced and self._pace is not None:
                self._pace.give_back()
            return
        where = (rendered.channel, rendered.ts)
        now = self._monotonic()
        with self._cv:
            self._where[mid] = where
            self._at[where] = mid
            route = self._live_route(where, now) if self._send_route is not None else None
            if route is not None:
                route.uses += 1
        if route is not None:
            if paced and self._pace is not None:
                self._pace.give_back()
            assert self._send_route is not None
            if self._send_route(rendered, route.url):
                self._sent(mid, rendered)
                return
            log.warning("redrawing message %s through a response_url failed; it waits for chat.update", mid)
            with self._cv:
                if self._routes.get(where) is route:
                    del self._routes[where]
                if mid not in self._due:
                    self._push(mid, now)
                self._cv.notify_all()
            return
        if self._pace is not None and not paced:
            # Came by the fast lane to learn where it is, and has no route: it waits for a paced turn.
            with self._cv:
                if mid not in self._due:
                    self._push(mid, now)
                self._cv.notify_all()
            return
        try:
            self._send(rendered)
        except ChatError as e:
            if e.retryable:
                attempt = self._failures.get(mid, 0) + 1
                self._failures[mid] = attempt
                delay = min(60.0, 2.0**attempt)
                log.warning("chat.update of message %s failed (%s); retrying in %.0f s", mid, e.code, delay)
                with self._cv:
                    if mid not in self._due:
                        self._push(mid, self._monotonic() + delay)
                    self._cv.notify_all()
            else:
                # message_not_found, cant_update_message...: retrying repeats the refusal. Record it as seen so
                # the sweep stops, and say so loudly.
                log.error("Slack refused the update of message %s: %s", mid, e.code)
                self._mark_synced(mid, rendered.rev)
            return
        self._sent(mid, rendered)

    def _sent(self, mid: int, rendered: Rendered) -> None:
        self._failures.pop(mid, None)
        self._last_sent[mid] = self._monotonic()
        self._sent_rev[mid] = rendered.rev
        self._draws += 1
        if self._draws % FORGET_EVERY == 0:
            self._forget_old()
        try:
            latest = self._mark_synced(mid, rendered.rev)
        except Exception:
            log.exception("recording the sync of message %s failed", mid)
            return
        if latest is not None and latest > rendered.rev:
            # Another replica changed the message while this render was on its way; Slack may now show the older
            # one, so draw it again. Replicas converge on the newest content.
            self.mark_dirty([mid])
