"""Liveness that tells the truth: the process that does the work proves every second that its clock still runs.

``serve``'s work process (or the one process, without it) beats from its scheduler, whose threads fire the timers and
run the metric watch and the outbox; the serving process reads the beat from memory the two share and answers
``/livez`` with 503 once it is ``LIVENESS_S`` old. A work process that is frozen (``SIGSTOP``), wedged or
dead then fails the orchestrator's liveness probe and the pod is restarted; its lease lapses meanwhile and a standby
leads (``bot.runtime.leader``).
"""

from __future__ import annotations

import ctypes
import multiprocessing
import time

BEAT_S = 1.0
# Ten missed beats: far above a busy machine's scheduling delays, far below Kubernetes' probe period × threshold.
LIVENESS_S = 10.0


class Heartbeat:
    """The time of the last beat (``time.monotonic``, one clock for every process on the machine).

    Create it before ``serve`` forks: it lives in a shared anonymous mapping, not in either process's heap."""

    def __init__(self, bound_s: float = LIVENESS_S) -> None:
        # Starts as a beat: a process gets the whole bound to start beating.
        self._last = multiprocessing.RawValue(ctypes.c_double, time.monotonic())
        self.bound_s = bound_s

    def beat(self) -> None:
        self._last.value = time.monotonic()

    def age(self) -> float:
        return time.monotonic() - float(self._last.value)

    def stalled(self) -> str | None:
        """Why the worker is not alive, or None when it beat within the bound."""
        age = self.age()
        return f"the clock has not run for {age:.0f} s" if age > self.bound_s else None
