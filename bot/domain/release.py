"""The release as a state machine: its steps, derived from the checklist, and the rules for moving on.

A release walks a linear list of steps: one per checklist/deploy/watch phase, and for the canary phase a
"ready" step followed by one step per canary stage. Leaving the last step of a phase needs that phase's items
ticked; leaving a canary stage needs its wait to be over, and finishing the post-deploy watch needs its time
(``post_deploy_watch``) to be over. Either gate can be overridden with a reason.

Imports only the standard library, ``bot.errors`` and ``bot.domain.checklist``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from bot.domain.checklist import CanaryStage, Checklist, PhaseKind
from bot.errors import GateNotMet, InvalidTransition, UsageError

VERSION_RE = re.compile(r"^v(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z]+(\.[0-9A-Za-z]+)*)?$")
MAX_VERSION_LENGTH = 64
FINISHED_STEP = "finished"


class ReleaseStatus(StrEnum):
    """Where a release stands overall."""

    ACTIVE = "active"
    FINISHED = "finished"
    ABORTED = "aborted"
    ROLLED_BACK = "rolled_back"

    @property
    def is_terminal(self) -> bool:
        return self is not ReleaseStatus.ACTIVE


class StepKind(StrEnum):
    """What kind of step the release is in; decides the buttons and timers."""

    CHECKLIST = "checklist"
    DEPLOY = "deploy"
    READY = "ready"  # production phase entered, no traffic shifted yet
    CANARY = "canary"
    WATCH = "watch"


@dataclass(frozen=True)
class Step:
    """One position in the release flow."""

    key: str
    phase_key: str
    kind: StepKind
    stage: CanaryStage | None = None

    @property
    def wait(self) -> timedelta | None:
        return self.stage.wait if self.stage else None


def validate_version(text: str) -> str:
    """Return the version if it looks like vMAJOR.MINOR.PATCH[-pre]; raise UsageError otherwise."""
    version = text.strip()
    if not version:
        raise UsageError("version_missing")
    if len(version) > MAX_VERSION_LENGTH or not VERSION_RE.match(version):
        raise UsageError("version_invalid")
    return version


def plan_steps(checklist: Checklist) -> tuple[Step, ...]:
    """Derive the ordered steps of a release from its checklist."""
    steps: list[Step] = []
    for phase in checklist.flow_phases:
        if phase.kind is PhaseKind.CANARY:
            steps.append(Step(phase.key, phase.key, StepKind.READY))
            steps.extend(Step(s.key, phase.key, StepKind.CANARY, s) for s in checklist.canary_stages)
        else:
            steps.append(Step(phase.key, phase.key, StepKind(phase.kind.value)))
    return tuple(steps)


def step_wait(checklist: Checklist, step: Step) -> timedelta | None:
    """How long a step must last before it may be left without an override: a canary stage's wait, and the
    post-deploy watch (seed 4.2 "모니터링 (30분)": finishing early is a decision someone signs with a reason)."""
    if step.kind is StepKind.WATCH:
        return checklist.post_deploy_watch
    return step.wait


def step_index(steps: tuple[Step, ...], key: str) -> int:
    for i, step in enumerate(steps):
        if step.key == key:
            return i
    if key == FINISHED_STEP:
        return len(steps)
    raise InvalidTransition(f"unknown step {key!r}")


def next_step_key(steps: tuple[Step, ...], current: str) -> str:
    """The step after ``current``; ``finished`` after the last one."""
    i = step_index(steps, current)
    return steps[i + 1].key if i + 1 < len(steps) else FINISHED_STEP


def reached_production(steps: tuple[Step, ...], step_key: str) -> bool:
    """Whether a release at ``step_key`` has changed production: its first canary stage or anything after it
    (the post-deploy watch when the checklist has no canary). Before that, production still runs an older release,
    so rolling it back would undo someone else's work."""
    first = next((i for i, s in enumerate(steps) if s.kind is StepKind.CANARY), None)
    if first is None:
        first = next((i for i, s in enumerate(steps) if s.kind is StepKind.WATCH), None)
    if first is None:
        return False
    try:
        return step_index(steps, step_key) >= first
    except InvalidTransition:
        return False


def open_items(checklist: Checklist, phase_key: str, checked: Mapping[str, bool]) -> tuple[str, ...]:
    """Keys of the items of a phase that are not ticked, in checklist order."""
    return tuple(item.key for item in checklist.phase(phase_key).items if not checked.get(item.key))


@dataclass(frozen=True)
class Advance:
    """The outcome of a permitted move: where the release goes and which gates were overridden."""

    from_step: str
    to_step: str
    overridden: tuple[str, ...]  # "checklist" and/or "wait"

    @property
    def finishes(self) -> bool:
        return self.to_step == FINISHED_STEP


def advance(
    checklist: Checklist,
    *,
    status: ReleaseStatus,
    current: str,
    target: str,
    step_started_at: datetime,
    now: datetime,
    checked: Mapping[str, bool],
    override_reason: str | None = None,
) -> Advance:
    """Check a move from ``current`` to ``target`` and return it; raise when it is not allowed.

    ``target`` must be the next step: a button rendered for an older state (a stale view or a double click that
    already went through) is refused rather than skipping ahead.
    """
    if status.is_terminal:
        raise InvalidTransition("release_ended")
    steps = plan_steps(checklist)
    if target == current:
        raise InvalidTransition("already_there")
    if target != next_step_key(steps, current):
        raise InvalidTransition("not_next_step")

    step = steps[step_index(steps, current)]
    overridden: list[str] = []
    leaving_phase = target == FINISHED_STEP or steps[step_index(steps, target)].phase_key != step.phase_key
    if leaving_phase:
        missing = open_items(checklist, step.phase_key, checked)
        if missing:
            if not override_reason:
                raise GateNotMet("gate_open_items", open_items=missing)
            overridden.append("checklist")
    wait = step_wait(checklist, step)
    if wait is not None:
        remaining = (step_started_at + wait - now).total_seconds()
        if remaining > 0:
            if not override_reason:
                raise GateNotMet("gate_wait", wait_remaining_s=remaining)
            overridden.append("wait")
    return Advance(current, target, tuple(overridden))


def progress(checklist: Checklist, checked: Mapping[str, bool]) -> dict[str, tuple[int, int]]:
    """Ticked and total items per phase."""
    return {
        phase.key: (sum(1 for i in phase.items if checked.get(i.key)), len(phase.items))
        for phase in checklist.phases
    }
