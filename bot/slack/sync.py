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
from typing import Any

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


class MessageSync:
    """The per-message update coalescer."""

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
    ) -> None:
        self._render = render
        self._send = send
        self._mark_synced = mark_synced
        self._find_out_of_sync = find_out_of_sync
        self._min_interval = min_interval_s
        self._sweep_interval = sweep_interval_s
        self._monotonic = monotonic
        self._cv = threading.Condition()
        self._heap: list[tuple[float, int]] = []
        self._due: dict[int, float] = {}
        self._last_sent: dict[int, float] = {}
        self._sent_rev: dict[int, int] = {}
        self._failures: dict[int, int] = {}
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._busy = 0
        self._relay: Callable[[list[int]], None] | None = None

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
                self._push(mid, due)
            self._cv.notify_all()

    def _push(self, mid: int, due: float) -> None:
        self._due[mid] = due
        heapq.heappush(self._heap, (due, mid))

    def idle(self) -> bool:
        with self._cv:
            return not self._due and self._busy == 0

    def _run(self) -> None:
        next_sweep = self._monotonic()
        while True:
            with self._cv:
                while not self._stopping:
                    now = self._monotonic()
                    if now >= next_sweep:
                        break
                    if self._heap and self._heap[0][0] <= now:
                        break
                    wake = next_sweep if not self._heap else min(next_sweep, self._heap[0][0])
                    self._cv.wait(max(0.0, wake - now))
                if self._stopping:
                    return
                now = self._monotonic()
                mid: int | None = None
                if self._heap and self._heap[0][0] <= now:
                    due, mid = heapq.heappop(self._heap)
                    if self._due.get(mid) != due:
                        continue  # superseded entry
                    del self._due[mid]
                    self._busy += 1
            if mid is None:
                next_sweep = self._monotonic() + self._sweep_interval
                self._sweep()
                continue
            try:
                self._flush(mid)
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

    def _flush(self, mid: int) -> None:
        try:
            rendered = self._render(mid)
        except NotFound:
            return
        except Exception:
            log.exception("rendering message %s failed", mid)
            return
        if rendered is None or rendered.rev <= self._sent_rev.get(mid, 0):
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
        self._failures.pop(mid, None)
        self._last_sent[mid] = self._monotonic()
        self._sent_rev[mid] = rendered.rev
        try:
            latest = self._mark_synced(mid, rendered.rev)
        except Exception:
            log.exception("recording the sync of message %s failed", mid)
            return
        if latest is not None and latest > rendered.rev:
            # Another replica changed the message while this render was on its way; Slack may now show the older
            # one, so draw it again. Replicas converge on the newest content.
            self.mark_dirty([mid])
