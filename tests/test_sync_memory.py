"""The message sync forgets what it kept of messages long drawn: kept for ever, it grew the leader's work process by
every message of every release (the two-hour soak, bench/soak.py)."""

from __future__ import annotations

import threading
import time

from bot.slack import sync as sync_module
from bot.slack.sync import MessageSync, Rendered


def test_what_is_kept_of_messages_drawn_long_ago_is_forgotten_and_they_can_still_be_redrawn() -> None:
    offset = [0.0]
    sent: list[tuple[int, int]] = []
    lock = threading.Lock()

    def send(rendered: Rendered) -> None:
        with lock:
            sent.append((rendered.message_id, rendered.rev))

    sync = MessageSync(
        render=lambda mid: Rendered(mid, "C0AAAAAAA", f"1700000000.{mid:06d}", 1, f"message {mid}", []),
        send=send,
        mark_synced=lambda mid, rev: None,
        find_out_of_sync=lambda: [],
        min_interval_s=0.0,
        sweep_interval_s=3600.0,
        monotonic=lambda: time.monotonic() + offset[0],
    )

    def drawn(n: int) -> None:
        deadline = time.monotonic() + 20
        while len(sent) < n:
            assert time.monotonic() < deadline, f"{len(sent)} of {n} drawn"
            time.sleep(0.01)

    sync.start()
    try:
        old = range(1, sync_module.FORGET_EVERY + 45)
        sync.mark_dirty(old)
        drawn(len(old))
        assert sync.kept() == len(old)
        offset[0] += sync_module.FORGET_S + 1  # a quarter of an hour later, new releases' messages are drawn
        new = range(10_000, 10_000 + sync_module.FORGET_EVERY)
        sync.mark_dirty(new)
        drawn(len(old) + len(new))
        assert sync.kept() <= len(new)  # the old ones are forgotten; the new ones are kept
        sync.mark_dirty([1])  # a forgotten message changes again: drawn as any other
        drawn(len(old) + len(new) + 1)
        assert sent[-1] == (1, 1)
    finally:
        sync.stop()
