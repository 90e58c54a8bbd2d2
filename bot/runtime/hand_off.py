"""The pipe from the serving process to the work process (see ``bot.runtime.work_process``).

Kept apart from the process that reads it, so that the composition root (``bot.runtime.bootstrap``) can take the
serving end of the pipe without importing the work process, which builds the bot with it.
"""

from __future__ import annotations

import logging
import pickle
import queue
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from bot.observability import request_id

log = logging.getLogger(__name__)

Message = tuple[str, Any]


class WorkChannel:
    """The serving side of the pipe. ``forward`` and ``wake`` never block the caller: a feeder thread writes.

    ``ready`` says whether the work process is up and working, ``stalled`` why it is stuck (or None). The feeder
    starts with ``start()``, after the fork: the serving bot is built on the channel before it (see
    ``bot.runtime.server``), and a process must fork with no thread but its main one."""

    def __init__(
        self, conn: Connection, ready: Callable[[], bool], stalled: Callable[[], str | None] = lambda: None
    ) -> None:
        self._conn = conn
        self.ready = ready
        self.stalled = stalled
        # Pickled at once: while the work process is busy the queue holds bytes, ~5x smaller than the payload dicts.
        self._queue: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._feed, name="work-feed", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def forward(self, body: dict[str, Any]) -> None:
        self._put(("payload", (slim(body), request_id.get())))

    def github(self, event: str, delivery: str, payload: dict[str, Any]) -> None:
        """A verified GitHub delivery: the work process acts on it."""
        self._put(("github", (event, delivery, payload, request_id.get())))

    def wake(self) -> None:
        """Timers changed here: the clock runs in the work process."""
        self._put(("wake", None))

    def mark_dirty(self, message_ids: list[int]) -> None:
        """Messages to redraw: the work process draws them all, so that no message is drawn twice."""
        self._put(("dirty", message_ids))

    def _put(self, message: Message) -> None:
        self._queue.put(pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))

    def close(self, timeout: float) -> None:
        """Send what is queued, then close the pipe: the work process drains and exits."""
        self._queue.put(None)
        if self._thread.ident is None:  # never started: there is no work process to drain to
            self._conn.close()
            return
        self._thread.join(timeout)

    def _feed(self) -> None:
        try:
            while (item := self._queue.get()) is not None:
                self._conn.send_bytes(item)
        except OSError:
            log.error("the work process stopped reading; work handed to it since is lost")
        finally:
            self._conn.close()


def slim(body: dict[str, Any]) -> dict[str, Any]:
    """The payload without the blocks of its message that no action came from.

    A click carries the whole message it was made on (~14 KB for a phase of the checklist), and the handlers read
    only the clicked element's block from it. Cut down to that, a burst of clicks fits in the pipe: the serving
    process's feeder never blocks and wakes on it while the work process, which yields to the acks, is not reading.
    """
    message, actions = body.get("message"), body.get("actions")
    if (
        not isinstance(message, dict)
        or not isinstance(message.get("blocks"), list)
        or not isinstance(actions, list)
    ):
        return body
    clicked = {a.get("block_id") for a in actions if isinstance(a, dict)}
    kept = [b for b in message["blocks"] if isinstance(b, dict) and b.get("block_id") in clicked]
    return {**body, "message": {**message, "blocks": kept}}
