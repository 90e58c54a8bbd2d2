"""The small interfaces behind which every outbound system sits, and the value types they exchange.

Adapters (``bot/adapters``) implement them against the real systems; tests use recording fakes or real
loopback servers. Nothing here imports a vendor library.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal, Protocol


class Clock(Protocol):
    """The source of "now": tz-aware UTC."""

    def now(self) -> datetime: ...


class SystemClock:
    """The wall clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)


# --- Prometheus -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reading:
    """One answer from the metrics source.

    ``value`` is None when there is no data; ``no_data_reason`` then says why in plain words
    ("empty result", "NaN", "Prometheus error: ...", "timeout").
    """

    value: float | None
    no_data_reason: str | None = None
    is_error: bool = False  # a provider failure, as opposed to a quiet "no series matched"


class Metrics(Protocol):
    """Evaluates one PromQL expression to a single number."""

    def query(self, promql: str, *, at: datetime | None = None) -> Reading: ...


# --- PagerDuty --------------------------------------------------------------------------------------------

PageAction = Literal["trigger", "acknowledge", "resolve"]


@dataclass(frozen=True)
class PageEvent:
    """An Events v2 alert event. ``summary``/``source`` are required for triggers only."""

    action: PageAction
    dedup_key: str
    summary: str = ""
    source: str = ""
    severity: str = "critical"
    timestamp: datetime | None = None
    custom_details: dict[str, Any] = field(default_factory=dict)
    links: tuple[tuple[str, str], ...] = ()  # (href, text)


@dataclass(frozen=True)
class ChangeEvent:
    """An Events v2 change event: shown on the service's timeline, never notifies."""

    summary: str
    source: str
    timestamp: datetime
    custom_details: dict[str, Any] = field(default_factory=dict)
    links: tuple[tuple[str, str], ...] = ()


class Pager(Protocol):
    """Sends PagerDuty events. Raises ``PagerError`` with ``retryable`` set when delivery failed."""

    def send(self, event: PageEvent) -> None: ...

    def change(self, event: ChangeEvent) -> None: ...


# --- Kubernetes -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Revision:
    """One rollout revision of a deployment, as its ReplicaSet records it."""

    number: int
    images: tuple[str, ...]
    replicaset: str = ""


@dataclass(frozen=True)
class RollbackPlan:
    """What ``kubectl rollout undo`` would do, read before asking for confirmation."""

    deployment: str
    namespace: str
    current: Revision
    target: Revision
    history: tuple[Revision, ...]  # newest first, for picking an older revision
    paused: bool
    already_current: bool
    gitops_warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class UndoResult:
    """The outcome of the undo patch."""

    rolled_back: bool  # False when kubectl would print "skipped rollback"
    message: str  # kubectl's own words: "deployment.apps/backend rolled back"


@dataclass(frozen=True)
class RolloutStatus:
    """One reading of ``kubectl rollout status``."""

    done: bool
    failed: bool
    message: str


class Deployer(Protocol):
    """Rolls a Kubernetes deployment back the way ``kubectl rollout undo`` does and follows its rollout."""

    def plan_rollback(self, deployment: str, namespace: str, *, to_revision: int = 0) -> RollbackPlan: ...

    def undo(self, deployment: str, namespace: str, *, to_revision: int = 0) -> UndoResult: ...

    def rollout_status(self, deployment: str, namespace: str) -> RolloutStatus: ...


# --- Traffic providers (who moves the canary's share) -------------------------------------------------------


@dataclass(frozen=True)
class ClusterRequest:
    """One request the bot sent to the cluster, as the audit trail keeps it."""

    verb: str  # get | list | patch | watch
    object: str  # "rollouts/backend", "rollouts/backend/status", "httproutes/backend"
    namespace: str
    content_type: str = ""
    patch: Any = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "verb": self.verb,
            "object": self.object,
            "namespace": self.namespace,
            "content_type": self.content_type,
            "patch": self.patch,
        }


class RolloutPhase(StrEnum):
    PROGRESSING = "Progressing"
    PAUSED = "Paused"
    HEALTHY = "Healthy"
    DEGRADED = "Degraded"
    UNKNOWN = ""


@dataclass(frozen=True)
class TrafficView:
    """What the cluster says it serves, read from the live object.

    ``set_weight`` is the target the provider was told (the last ``setWeight`` reached, or the route's
    weight); ``actual_weight`` is what the traffic router reports serving (None when it does not tell)."""

    provider: str  # "argo-rollouts" | "gateway-api"
    set_weight: int
    actual_weight: int | None = None
    step: int | None = None  # Argo: currentStepIndex (== steps means all done)
    steps: int | None = None
    phase: RolloutPhase = RolloutPhase.UNKNOWN
    message: str = ""
    aborted: bool = False
    paused: bool = False
    stable_revision: str = ""
    canary_revision: str = ""
    stable_images: tuple[str, ...] = ()
    canary_images: tuple[str, ...] = ()
    resource_version: str = ""
    generation: int = 0
    last_manager: str = ""  # from managedFields: the last field manager that wrote the object
    accepted: bool | None = None  # gateway-api: every parent Gateway accepted the route

    @property
    def serving_weight(self) -> int:
        """The share that is known to be served: the router's report when there is one."""
        return self.actual_weight if self.actual_weight is not None else self.set_weight

    def serving(self, percent: int) -> bool:
        """Whether the cluster reports ``percent`` as served (the wait of a stage starts then)."""
        if self.aborted:
            return False
        if self.accepted is False:
            return False
        return self.serving_weight == percent

    def fingerprint(self) -> tuple[Any, ...]:
        """The parts people see; a watch event that changes none of them needs no header update."""
        return (
            self.set_weight,
            self.actual_weight,
            self.step,
            self.phase,
            self.aborted,
            self.paused,
            self.canary_revision,
            self.stable_revision,
        )


@dataclass(frozen=True)
class TrafficResult:
    """The outcome of one action on the traffic provider: what the bot sent, and the object afterwards."""

    message: str  # the equivalent command's own words: "rollout 'backend' promoted"
    requests: tuple[ClusterRequest, ...]
    view: TrafficView | None = None
    changed: bool = True


class TrafficProvider(Protocol):
    """Moves the canary's share of traffic in the cluster and reads it back.

    Every method may raise ``DeployerError`` (its ``detail`` carries the API's answer). Each result lists the
    requests sent, so the audit trail has every one of them, reads included."""

    def read(self) -> TrafficView: ...

    def advance(self, percent: int) -> TrafficResult: ...

    def abort(self) -> TrafficResult: ...

    def undo(self) -> TrafficResult: ...

    def watch(
        self, on_change: Callable[[TrafficView], None], *, timeout_s: float, stop: Callable[[], bool]
    ) -> None: ...

    def close(self) -> None: ...


# --- Health checks ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HealthResult:
    """One GET of a health URL."""

    url: str
    ok: bool
    status_code: int | None
    latency_ms: float
    summary: str  # a short summary of the body, or the error in plain words


class HealthChecker(Protocol):
    """Checks an environment's health URL."""

    def check(self, url: str) -> HealthResult: ...


# --- GitHub (the code host the evidence comes from) -------------------------------------------------------


@dataclass(frozen=True)
class CheckRun:
    """A check run (GitHub Actions job, app check) or a commit status, reduced to what the judgement needs.

    ``conclusion`` is GitHub's word once ``status`` is ``completed`` (success, failure, neutral, skipped,
    cancelled, timed_out, action_required, stale); for a commit status it is its state (success, failure,
    error, pending)."""

    name: str
    status: str  # queued | in_progress | completed (commit statuses: completed unless pending)
    conclusion: str | None
    url: str | None


@dataclass(frozen=True)
class TagRef:
    """A git tag and the commit it points at."""

    name: str
    sha: str


@dataclass(frozen=True)
class Comparison:
    """``git log base..head``: its commits and the files they changed.

    GitHub lists at most 300 files of a comparison: ``files_complete`` is False when it may have cut the list."""

    base: str
    head: str
    commits: tuple[str, ...]  # SHAs, oldest first
    files: tuple[str, ...]
    total_commits: int
    files_complete: bool
    url: str


@dataclass(frozen=True)
class PullRequest:
    """A merged pull request."""

    number: int
    title: str
    url: str
    author: str
    merge_commit_sha: str | None
    merged_at: datetime | None


@dataclass(frozen=True)
class Review:
    """One review of a pull request, in GitHub's order (oldest first)."""

    user: str
    state: str  # APPROVED | CHANGES_REQUESTED | COMMENTED | DISMISSED | PENDING


@dataclass(frozen=True)
class ReleaseNotes:
    """A published GitHub release of a tag."""

    tag: str
    name: str
    body: str
    url: str
    draft: bool
    prerelease: bool


@dataclass(frozen=True)
class DeploymentState:
    """The latest status of the latest deployment of a commit to an environment."""

    environment: str
    state: str  # success | failure | error | inactive | in_progress | queued | pending
    url: str | None
    created_at: datetime | None


class CodeHost(Protocol):
    """Reads one repository on GitHub. Read-only; every method may raise ``GitHubError``.

    ``html_url`` builds links people can open (``commit/<sha>``, ``compare/<a>...<b>``)."""

    @property
    def repository(self) -> str: ...

    def html_url(self, path: str) -> str: ...

    def tag_commit(self, tag: str) -> str | None: ...

    def check_runs(self, sha: str) -> tuple[CheckRun, ...]: ...

    def statuses(self, sha: str) -> tuple[CheckRun, ...]: ...

    def tags(self) -> tuple[TagRef, ...]: ...

    def compare(self, base: str, head: str) -> Comparison: ...

    def merged_pulls(self, since: datetime) -> tuple[PullRequest, ...]: ...

    def reviews(self, number: int) -> tuple[Review, ...]: ...

    def file_text(self, path: str, ref: str) -> str | None: ...

    def last_commit_of(self, path: str, ref: str) -> str | None: ...

    def commit_date(self, sha: str) -> datetime | None: ...

    def release(self, tag: str) -> ReleaseNotes | None: ...

    def deployment(self, sha: str, environment: str) -> DeploymentState | None: ...
