"""The small interfaces behind which every outbound system sits, and the value types they exchange.

Adapters (``bot/adapters``) implement them against the real systems; tests use recording fakes or real
loopback servers. Nothing here imports a vendor library.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
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
