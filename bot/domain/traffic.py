"""Traffic providers: who moves the canary's share of traffic, and the cluster's view of it.

``manual`` is a label people set by clicking (the default). ``argo-rollouts`` drives a ``Rollout``'s canary
steps; ``gateway-api`` sets the ``backendRefs`` weights of an ``HTTPRoute`` rule. The rules here are pure:
what the cluster's answer means (``TrafficView``), whether it matches the stage the bot shows (drift), and
whether a Rollout's steps match the checklist's stages.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from bot.ports import RolloutPhase, TrafficView


class TrafficProviderKind(StrEnum):
    MANUAL = "manual"
    ARGO_ROLLOUTS = "argo-rollouts"
    GATEWAY_API = "gateway-api"


@dataclass(frozen=True)
class TrafficSpec:
    """The checklist's ``traffic:`` section. ``name`` is the Rollout's or the HTTPRoute's."""

    provider: TrafficProviderKind = TrafficProviderKind.MANUAL
    namespace: str = ""
    name: str = ""
    stable_backend: str = ""  # gateway-api: the Service that serves the stable version
    canary_backend: str = ""  # gateway-api: the Service that serves the canary
    rule: int = 0  # gateway-api: which of the route's rules splits the traffic

    @property
    def is_manual(self) -> bool:
        return self.provider is TrafficProviderKind.MANUAL

    def describe(self) -> str:
        if self.provider is TrafficProviderKind.ARGO_ROLLOUTS:
            return f"Argo Rollouts: rollout/{self.name} in namespace {self.namespace}"
        if self.provider is TrafficProviderKind.GATEWAY_API:
            return (
                f"Gateway API: httproute/{self.name} in namespace {self.namespace}, rule {self.rule}, "
                f"stable {self.stable_backend}, canary {self.canary_backend}"
            )
        return "manual (the stage is a label people set)"


@dataclass(frozen=True)
class Drift:
    """The cluster differs from what the bot shows. ``what`` lists each difference in plain words."""

    what: tuple[str, ...]
    expected_percent: int
    seen_percent: int
    by: str = ""  # the field manager that changed it, when managedFields tell

    def key(self) -> str:
        """Identifies the drift so it is posted once, not on every watch event."""
        return f"{self.expected_percent}->{self.seen_percent}:{'|'.join(self.what)}"


def detect_drift(
    view: TrafficView,
    expected_percent: int,
    *,
    aborted_by_bot: bool = False,
    own_manager: str = "release-bot",
    settling: bool = False,
) -> Drift | None:
    """Compare the cluster with the stage the bot shows.

    ``settling`` is true right after the bot asked for a change: the controller has not caught up yet, so a
    lower weight is not drift. An abort the bot did not send, or a weight that is not the stage's, is."""
    what: list[str] = []
    if view.aborted and not aborted_by_bot:
        what.append("aborted")
    elif not view.aborted and not settling and view.set_weight != expected_percent:
        what.append(f"weight {view.set_weight}% instead of {expected_percent}%")
    if not what:
        return None
    by = view.last_manager if view.last_manager and view.last_manager != own_manager else ""
    return Drift(tuple(what), expected_percent, view.set_weight, by)


# --- Argo Rollouts: the canary steps ------------------------------------------------------------------------


def canary_steps(rollout: dict[str, Any]) -> list[dict[str, Any]]:
    strategy = ((rollout.get("spec") or {}).get("strategy") or {}).get("canary") or {}
    steps = strategy.get("steps") or []
    return [s for s in steps if isinstance(s, dict)]


def weight_at(steps: Sequence[dict[str, Any]], index: int) -> int:
    """The target weight at ``index``: the last ``setWeight`` at or before it (0 before the first)."""
    weight = 0
    for step in steps[: index + 1]:
        if "setWeight" in step:
            weight = int(step["setWeight"])
    if index >= len(steps):
        return 100
    return weight


def step_mismatches(steps: Sequence[dict[str, Any]], stages: Sequence[int]) -> list[str]:
    """Name each way a Rollout's steps differ from the checklist's stage percentages.

    A stage below 100 % must be a ``setWeight`` followed by a ``pause`` (the bot promotes past the pause);
    the last stage, 100 %, is what the Rollout reaches after its last step, so it needs no step of its own."""
    problems: list[str] = []
    weights = [(n, int(s["setWeight"])) for n, s in enumerate(steps) if "setWeight" in s]
    wanted = [p for p in stages if p < 100]
    got = [w for _, w in weights if w < 100]
    if got != wanted:
        problems.append(
            "setWeight steps "
            + (", ".join(f"{w}%" for w in got) or "(none)")
            + " differ from the checklist's stages "
            + (", ".join(f"{p}%" for p in wanted) or "(none)")
        )
    for n, weight in weights:
        if weight >= 100:
            continue
        following = steps[n + 1] if n + 1 < len(steps) else None
        if following is None or "pause" not in following:
            problems.append(f"step {n} (setWeight {weight}%) is not followed by a pause step")
        elif (following.get("pause") or {}).get("duration") not in (None, "", 0):
            problems.append(
                f"step {n + 1} is a timed pause: the Rollout would move on without the checklist's gate"
            )
    kinds = {k for s in steps for k in s} - {"setWeight", "pause"}
    if kinds:
        problems.append(f"steps of kind {', '.join(sorted(kinds))} are not driven by the bot")
    return problems


def stage_step_index(steps: Sequence[dict[str, Any]], percent: int) -> int | None:
    """The index of the pause step that holds ``percent`` (where the Rollout waits for the bot)."""
    for n, step in enumerate(steps):
        if int(step.get("setWeight", -1)) == percent:
            return n + 1 if n + 1 < len(steps) and "pause" in steps[n + 1] else n
    return len(steps) if percent == 100 else None


@dataclass(frozen=True)
class StageTarget:
    """What one stage asks of the provider: its percentage and its place among the stages."""

    percent: int
    index: int  # 0-based among the canary stages
    stages: tuple[int, ...] = field(default=())


@dataclass(frozen=True)
class TrafficState:
    """The stored state of a release's traffic: the cluster's last view and what the bot made of it."""

    release_id: int
    view: dict[str, Any]
    observed_at: Any  # datetime (kept loose: the domain stores what the repository hands it)
    stage_percent: int | None = None
    requested_at: Any = None
    serving_since: Any = None
    drift: dict[str, Any] | None = None
    drift_posted: str | None = None
    drift_acknowledged: str | None = None
    acknowledged_by: str | None = None

    @property
    def unacknowledged_drift(self) -> dict[str, Any] | None:
        if self.drift is None or self.drift.get("key") == self.drift_acknowledged:
            return None
        return self.drift


def view_to_dict(view: TrafficView) -> dict[str, Any]:
    out = dict(view.__dict__)
    out["phase"] = str(view.phase)
    out["stable_images"] = list(view.stable_images)
    out["canary_images"] = list(view.canary_images)
    return out


def view_from_dict(data: dict[str, Any]) -> TrafficView:

    fields = {k: v for k, v in data.items() if k in TrafficView.__dataclass_fields__}
    fields["phase"] = RolloutPhase(fields.get("phase") or "")
    fields["stable_images"] = tuple(fields.get("stable_images") or ())
    fields["canary_images"] = tuple(fields.get("canary_images") or ())
    return TrafficView(**fields)


def drift_to_dict(drift: Drift) -> dict[str, Any]:
    return {
        "key": drift.key(),
        "what": list(drift.what),
        "expected": drift.expected_percent,
        "seen": drift.seen_percent,
        "by": drift.by,
    }
