"""A simulated Argo Rollout for the playground: the canary split moves when the bot promotes it, so a newcomer
sees the header's "클러스터: 카나리 10 % · 2/4단계 · 일시 정지" follow the stages.

It implements the TrafficProvider port in memory (no API server): steps ``setWeight`` + ``pause`` per canary stage
below 100 %, a controller that takes ``STEP_S`` to set each new weight (the header shows the set weight before the
router reports it), abort, and undo. It announces every change beside Slack's messages. It is a stage prop, not a
test double: the tests drive the real adapters against the fake API server.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from bot.errors import Conflict
from bot.ports import ClusterRequest, RolloutPhase, TrafficResult, TrafficView

STEP_S = 1.0


class SimulatedRollout:
    def __init__(
        self, name: str, namespace: str, stages: tuple[int, ...], *, on_change: Callable[[str], None]
    ) -> None:
        self.name, self.namespace = name, namespace
        self.steps: list[tuple[str, int]] = []
        for percent in stages:
            if percent < 100:
                self.steps += [("setWeight", percent), ("pause", percent)]
        self.index = 0
        self.weight = 0  # what the router serves
        self.aborted = False
        self._changed = threading.Condition()
        self._announce = on_change
        self._timer: threading.Timer | None = None
        self._closed = False
        self._schedule()

    # --- the controller ----------------------------------------------------------------------------------

    def _schedule(self) -> None:
        if self._closed:
            return
        self._timer = threading.Timer(STEP_S, self._reconcile)
        self._timer.daemon = True
        self._timer.start()

    def _reconcile(self) -> None:
        with self._changed:
            if self.aborted or self.index >= len(self.steps) or self.steps[self.index][0] == "pause":
                if self.index >= len(self.steps) and not self.aborted and self.weight != 100:
                    self.weight = 100
                    self._say(f"rollout/{self.name}: fully promoted, the new version serves 100 %")
                return
            self.weight = self.steps[self.index][1]
            self.index += 1
            self._say(
                f"rollout/{self.name}: canary {self.weight} % (step {self.index + 1}/{len(self.steps)}, paused)"
            )
        self._schedule()

    def _say(self, line: str) -> None:
        self._changed.notify_all()
        self._announce(line)

    # --- the port ----------------------------------------------------------------------------------------

    def read(self) -> TrafficView:
        with self._changed:
            return self._view()

    def _view(self) -> TrafficView:
        at_pause = self.index < len(self.steps) and self.steps[self.index][0] == "pause"
        target = (
            0
            if self.aborted
            else (100 if self.index >= len(self.steps) else self.steps[max(self.index - 1, 0)][1])
        )
        phase = (
            RolloutPhase.DEGRADED
            if self.aborted
            else (RolloutPhase.PAUSED if at_pause else RolloutPhase.PROGRESSING)
        )
        if self.index >= len(self.steps) and self.weight == 100:
            phase = RolloutPhase.HEALTHY
        return TrafficView(
            provider="argo-rollouts",
            set_weight=target,
            actual_weight=self.weight,
            step=self.index,
            steps=len(self.steps),
            phase=phase,
            aborted=self.aborted,
            paused=at_pause,
            last_manager="release-bot",
        )

    def _request(self, patch: object) -> tuple[ClusterRequest, ...]:
        return (ClusterRequest("patch", f"rollouts/{self.name}/status", self.namespace, "merge", patch),)

    def advance(self, percent: int) -> TrafficResult:
        with self._changed:
            if self.aborted:
                raise Conflict(f"rollout '{self.name}' is aborted")
            if self._view().set_weight >= percent:
                return TrafficResult(f"rollout '{self.name}' already at {percent}%", (), self._view(), False)
            self.index += 1  # past the pause
            self._say(f"rollout/{self.name}: promoted past the pause")
        self._schedule()
        return TrafficResult(
            f"rollout '{self.name}' promoted",
            self._request({"status": {"pauseConditions": None}}),
            self.read(),
        )

    def abort(self) -> TrafficResult:
        with self._changed:
            self.aborted, self.weight = True, 0
            self._say(f"rollout/{self.name}: aborted, the stable version serves 100 %")
        return TrafficResult(
            f"rollout '{self.name}' aborted", self._request({"status": {"abort": True}}), self.read()
        )

    def undo(self) -> TrafficResult:
        return TrafficResult(f"rollout '{self.name}' undo", (), self.read(), False)

    def watch(
        self, on_change: Callable[[TrafficView], None], *, timeout_s: float, stop: Callable[[], bool]
    ) -> None:
        on_change(self.read())
        with self._changed:
            self._changed.wait(timeout_s)
            view = self._view()
        if not stop():
            on_change(view)

    def close(self) -> None:
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
