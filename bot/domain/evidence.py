"""Evidence: what a checklist item can be proven by, and what one look at that source found.

An item of the checklist file may name evidence sources (``evidence:``): the GitHub checks of the release's commit,
the pull requests merged since the previous release, a file changed in that range, the GitHub release of the tag,
a deployment's status, a Prometheus query held to a bound, or a health URL answering 2xx. The bot evaluates them
and ticks the item itself when every source proves it; a person may still tick an item that failed, with a reason.

Imports only the standard library.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

# The audit action of a failing item ticked by a manager with a reason.
OVERRIDE_ACTION = "evidence_overridden"


class EvidenceSource(StrEnum):
    """Where evidence comes from; the value is how the checklist file names it."""

    GITHUB_CHECKS = "github.checks"  # check runs and commit statuses of the release's commit
    GITHUB_PULLS = "github.pulls"  # pull requests merged since the previous release tag: approved
    GITHUB_FILE = "github.file_changed"  # a file changed since the previous tag, or holds the version
    GITHUB_RELEASE = "github.release"  # a published GitHub release with notes for the tag
    GITHUB_DEPLOYMENT = "github.deployment"  # the latest deployment of the commit to an environment succeeded
    PROMETHEUS = "prometheus"  # a query whose value holds a bound
    HTTP = "http"  # a health URL answers 2xx

    @property
    def is_github(self) -> bool:
        return self.value.startswith("github.")


@dataclass(frozen=True)
class EvidenceSpec:
    """One source of evidence for an item, as the checklist file declares it.

    Only the fields of its source are set (the loader refuses the others).
    """

    source: EvidenceSource
    checks: tuple[str, ...] = ()  # github.checks: names or glob patterns; empty means every check
    path: str | None = None  # github.file_changed
    changed: bool = True  # github.file_changed: changed since the previous release tag
    contains_version: bool = False  # github.file_changed: holds the version (without its leading v too)
    environment: str | None = (
        None  # github.deployment: GitHub's environment name; http: a checklist environment
    )
    url: str | None = None  # http
    query: str | None = None  # prometheus
    min: float | None = None  # prometheus: the value must be at least this
    max: float | None = None  # prometheus: the value must be at most this

    def describe(self) -> str:
        """One line for ``checklist check``."""
        match self.source:
            case EvidenceSource.GITHUB_CHECKS:
                return f"{self.source}: {', '.join(self.checks) if self.checks else 'every check'}"
            case EvidenceSource.GITHUB_FILE:
                wants = [
                    w
                    for w, on in (("changed", self.changed), ("holds the version", self.contains_version))
                    if on
                ]
                return f"{self.source}: {self.path} ({' and '.join(wants)})"
            case EvidenceSource.GITHUB_DEPLOYMENT:
                return f"{self.source}: {self.environment}"
            case EvidenceSource.PROMETHEUS:
                bounds = [b for b in (_bound(">=", self.min), _bound("<=", self.max)) if b]
                return f"{self.source}: {' and '.join(bounds)}"
            case EvidenceSource.HTTP:
                return f"{self.source}: {self.url or self.environment or 'the phase environment'}"
        return str(self.source)


def _bound(op: str, value: float | None) -> str:
    return "" if value is None else f"value {op} {value:g}"


def check_matches(pattern: str, name: str) -> bool:
    """A check named in the file matches a check run by its exact name, or by a glob (``test (*)``)."""
    return name == pattern or fnmatch.fnmatchcase(name, pattern)


class EvidenceStatus(StrEnum):
    """What a look at the sources found."""

    PROVEN = "proven"  # every source proves the item
    FAILED = "failed"  # a source shows the item does not hold (a failing check, an unapproved PR)
    UNKNOWN = "unknown"  # a source could not tell (GitHub unreachable or rate-limited, no data)


@dataclass(frozen=True)
class EvidencePart:
    """What one source said, in words the renderer translates: a message key and its parameters."""

    source: str
    status: EvidenceStatus
    key: str
    params: Mapping[str, Any] = field(default_factory=dict)
    link: str | None = None
    link_label: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "status": self.status.value,
            "key": self.key,
            "params": dict(self.params),
            "link": self.link,
            "link_label": self.link_label,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EvidencePart:
        return cls(
            source=str(data.get("source", "")),
            status=EvidenceStatus(data.get("status", EvidenceStatus.UNKNOWN.value)),
            key=str(data.get("key", "")),
            params=dict(data.get("params") or {}),
            link=data.get("link"),
            link_label=data.get("link_label"),
        )


def overall(parts: Sequence[EvidencePart]) -> EvidenceStatus:
    """An item is proven only when every source proves it; one failure fails it; otherwise it is unknown."""
    statuses = {p.status for p in parts}
    if EvidenceStatus.FAILED in statuses:
        return EvidenceStatus.FAILED
    if EvidenceStatus.UNKNOWN in statuses or not parts:
        return EvidenceStatus.UNKNOWN
    return EvidenceStatus.PROVEN


@dataclass(frozen=True)
class EvidenceResult:
    """The latest evaluation of one item of one release."""

    item_key: str
    status: EvidenceStatus
    parts: tuple[EvidencePart, ...]
    at: datetime

    def headline(self) -> EvidencePart | None:
        """The part to show first: the first failure, else the first unknown, else the first proof."""
        for wanted in (EvidenceStatus.FAILED, EvidenceStatus.UNKNOWN, EvidenceStatus.PROVEN):
            for part in self.parts:
                if part.status is wanted:
                    return part
        return None


def version_strings(version: str) -> tuple[str, ...]:
    """How a file may write a version: ``v1.4.0`` and ``1.4.0``."""
    bare = version[1:] if version.startswith("v") else version
    return (version, bare) if bare != version else (version,)
