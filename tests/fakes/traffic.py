"""A recording TrafficProvider: a Rollout-like split held in memory, every call recorded, failures on command."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from bot.errors import DeployerError
from bot.ports import ClusterRequest, RolloutPhase, TrafficResult, TrafficView


@dataclass
class RecordingTrafficProvider:
    weight: int = 0
    aborted: bool = False
    calls: list[tuple[str, int | None]] = field(default_factory=list)
    fail: set[str] = field(default_factory=set)  # method names that raise DeployerError
    closed: bool = False

    def view(self) -> TrafficView:
        return TrafficView(
            provider="argo-rollouts",
            set_weight=0 if self.aborted else self.weight,
            actual_weight=0 if self.aborted else self.weight,
            phase=RolloutPhase.DEGRADED if self.aborted else RolloutPhase.PAUSED,
            aborted=self.aborted,
        )

    def _do(self, name: str, percent: int | None, patch: object) -> TrafficResult:
        self.calls.append((name, percent))
        if name in self.fail:
            raise DeployerError(f"the fake refuses {name}", detail=f"{name}: HTTP 403")
        request = ClusterRequest("patch", "rollouts/backend/status", "test-prod", "merge", patch)
        return TrafficResult(f"{name} done", (request,), self.view())

    def read(self) -> TrafficView:
        return self.view()

    def advance(self, percent: int) -> TrafficResult:
        result = self._do("advance", percent, {"status": {"pauseConditions": None}})
        self.weight = percent
        return TrafficResult(result.message, result.requests, self.view())

    def abort(self) -> TrafficResult:
        result = self._do("abort", None, {"status": {"abort": True}})
        self.aborted = True
        return TrafficResult(result.message, result.requests, self.view())

    def undo(self) -> TrafficResult:
        result = self._do("undo", None, [{"op": "replace", "path": "/spec/template"}])
        return TrafficResult(result.message, result.requests, self.view())

    def watch(
        self, on_change: Callable[[TrafficView], None], *, timeout_s: float, stop: Callable[[], bool]
    ) -> None:
        on_change(self.view())

    def close(self) -> None:
        self.closed = True
