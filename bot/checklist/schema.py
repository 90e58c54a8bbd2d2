"""The checklist file's shape: strict pydantic models and the notations they accept (durations, percentages,
latencies, keys). ``bot.checklist.loading`` loads files with them; ``checklists/README.md`` documents them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable
from datetime import timedelta
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainValidator

from bot.domain.checklist import (
    CriterionKind,
    PhaseKind,
    TickRole,
    parse_duration,
)
from bot.domain.evidence import EvidenceSource
from bot.domain.traffic import TrafficProviderKind

MAX_FULL_ITEM_KEY = 150  # the full key travels as a Slack option value, which Slack caps at 150 characters
MAX_ITEM_TEXT = 75  # Slack refuses checkbox option text longer than 75 characters
MAX_TITLE = 150  # titles become header blocks, capped at 150
MAX_PROCEDURE = 2500  # a procedure is shown in one section block (3000) with its heading and code fence
MAX_FILE_BYTES = 1_000_000
MAX_REPORTED = 20  # beyond this, more lines only bury the first mistake
MAX_EVIDENCE = 5  # sources per item: each is shown on the item's line in Slack

_KEY = re.compile(r"[a-z][a-z0-9_.-]{0,63}")
_VERSION = re.compile(r"\d+(?:\.\d+){0,3}(?:[-+][0-9A-Za-z.-]{1,40})?")
_SLACK_ID = re.compile(r"[UWS][A-Z0-9]{2,}")
_CHANNEL_ID = re.compile(r"[CG][A-Z0-9]{2,20}")
_DNS_LABEL = r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?"
_K8S_NAMESPACE = re.compile(_DNS_LABEL)
_K8S_NAME = re.compile(rf"{_DNS_LABEL}(?:\.{_DNS_LABEL})*")


# Field notations. Each raises ValueError with the words shown to the person editing the file.


def _pattern(regex: re.Pattern[str], what: str, hint: str = "") -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if isinstance(value, str) and regex.fullmatch(value):
            return value
        raise ValueError(f"invalid {what} {value!r}{hint}")

    return check


def _text(limit: int) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            raise ValueError(
                f"expected text, got {value!r} (quote text that YAML reads as a number or yes/no)"
            )
        if len(value) > limit:
            raise ValueError(f"too long: {len(value)} characters, at most {limit}")
        return value

    return check


def _measure(
    what: str, units: dict[str, tuple[int, int]], hint: str, top: float | None = None
) -> Callable[[Any], float]:
    """Parse a positive number with a unit; ``units`` maps each unit to (multiplier, divisor)."""
    regex = re.compile(r"(\d+(?:\.\d+)?)\s*(" + "|".join(map(re.escape, units)) + ")")

    def check(value: Any) -> float:
        match = regex.fullmatch(value.strip()) if isinstance(value, str) else None
        if match is None or float(match[1]) <= 0 or (top is not None and float(match[1]) > top):
            raise ValueError(f"invalid {what} {value!r}: write it like {hint}")
        multiplier, divisor = units[match[2]]
        return float(match[1]) * multiplier / divisor

    return check


def _duration(value: Any) -> timedelta:
    if not isinstance(value, str):
        raise ValueError(f"invalid duration {value!r}: write it like 15m, 30m or 90s")
    result = parse_duration(value)
    if result <= timedelta(0):
        raise ValueError(f"invalid duration {value!r}: must be longer than 0s")
    return result


def _http_url(value: Any) -> str:
    parts = urlsplit(value) if isinstance(value, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc or " " in value:
        raise ValueError(f"invalid URL {value!r}: write a full http:// or https:// address")
    return str(value)


def _procedure(value: Any) -> str:
    return _text(MAX_PROCEDURE)(value).strip("\n")


_key = _pattern(_KEY, "key", ": use 1 to 64 of a-z 0-9 _ . - (lowercase), starting with a letter")
_percent = _measure("percentage", {"%": (1, 100)}, '"1%" or "0.5%" (above 0, at most 100)', top=100)
_latency_ms = _measure("latency", {"ms": (1, 1), "s": (1000, 1)}, "200ms or 1.5s")
_ratio = _measure("ratio", {"x": (1, 1)}, "2x or 1.5x (times the normal value)")
Key = Annotated[str, PlainValidator(_key)]
Title = Annotated[str, PlainValidator(_text(MAX_TITLE))]
Duration = Annotated[timedelta, PlainValidator(_duration)]
Percent = Annotated[float, PlainValidator(_percent)]
LatencyMs = Annotated[float, PlainValidator(_latency_ms)]
Procedure = Annotated[str, PlainValidator(_procedure)]
SlackId = Annotated[
    str, PlainValidator(_pattern(_SLACK_ID, "Slack id", ": U… for a user or S… for a user group"))
]
ChannelId = Annotated[
    str,
    PlainValidator(
        _pattern(_CHANNEL_ID, "channel id", ": C… (G… for an old private channel), from its details")
    ),
]
Version = Annotated[str, PlainValidator(_pattern(_VERSION, "version", ': write it like "1.0.0" (in quotes)'))]
Lax = Field(strict=False)  # enums arrive from YAML as strings, which strict mode would refuse


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def _bound(value: Any) -> float:
    """A Prometheus bound: a plain number (queries return unitless values) or a percentage ("80%" is 0.8)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str) and value.strip().endswith("%"):
        return _measure("percentage", {"%": (1, 100)}, '"80%"')(value)
    raise ValueError(f"invalid bound {value!r}: write a number (0.8, 200) or a percentage (\"80%\")")


def _one_or_many(value: Any) -> Any:
    # One source may be written as a mapping; several as a list of them.
    return [value] if isinstance(value, dict) else value


class EvidenceModel(_Model):
    source: Annotated[EvidenceSource, Lax]
    checks: list[Annotated[str, PlainValidator(_text(200))]] | None = None
    path: Annotated[str, PlainValidator(_text(500))] | None = None
    changed: bool | None = None
    contains_version: bool | None = None
    environment: Annotated[str, PlainValidator(_text(255))] | None = None
    url: Annotated[str, PlainValidator(_http_url)] | None = None
    query: Annotated[str, PlainValidator(_text(4000))] | None = None
    min: Annotated[float, PlainValidator(_bound)] | None = None
    max: Annotated[float, PlainValidator(_bound)] | None = None


# The fields each source takes (beyond `source`); the loader refuses the others by name.
EVIDENCE_FIELDS: dict[EvidenceSource, tuple[str, ...]] = {
    EvidenceSource.GITHUB_CHECKS: ("checks",),
    EvidenceSource.GITHUB_PULLS: (),
    EvidenceSource.GITHUB_FILE: ("path", "changed", "contains_version"),
    EvidenceSource.GITHUB_RELEASE: (),
    EvidenceSource.GITHUB_DEPLOYMENT: ("environment",),
    EvidenceSource.PROMETHEUS: ("query", "min", "max"),
    EvidenceSource.HTTP: ("url", "environment"),
}


class ItemModel(_Model):
    key: Key
    text: Annotated[str, PlainValidator(_text(MAX_ITEM_TEXT))]
    evidence: Annotated[list[EvidenceModel], BeforeValidator(_one_or_many)] = []


class SectionModel(_Model):
    key: Key
    title: Title
    procedure: Procedure | None = None
    items: list[ItemModel] = []


class PhaseModel(_Model):
    key: Key
    title: Title
    kind: Annotated[PhaseKind, Lax]
    environment: Key | None = None
    tick_role: Annotated[TickRole, Lax] = TickRole.ANYONE
    sections: list[SectionModel] = []


class EnvironmentModel(_Model):
    key: Key
    title: Title
    health_url: Annotated[str, PlainValidator(_http_url)]


class CanaryStageModel(_Model):
    key: Key
    traffic: int = Field(ge=1, le=100)
    wait: Duration | None = None


class GateModel(_Model):
    max_error_rate: Percent
    max_p95: LatencyMs
    # How long a stage without a wait (the 100 % stage) is observed before the gate may judge it.
    min_observation: Duration = timedelta(minutes=5)


class CriterionModel(_Model):
    key: Key
    title: Title
    kind: Annotated[CriterionKind, Lax]
    threshold: Any = None  # its notation depends on kind, so _check parses it
    dry_run: bool = False
    on_breach: Literal["page", "abort"] = "page"


class TargetModel(_Model):
    deployment: Annotated[str, PlainValidator(_pattern(_K8S_NAME, "Kubernetes deployment name"))]
    namespace: Annotated[str, PlainValidator(_pattern(_K8S_NAMESPACE, "Kubernetes namespace"))]


class TrafficModel(_Model):
    provider: Annotated[TrafficProviderKind, Lax] = TrafficProviderKind.MANUAL
    namespace: Annotated[str, PlainValidator(_pattern(_K8S_NAMESPACE, "Kubernetes namespace"))] | None = None
    name: Annotated[str, PlainValidator(_pattern(_K8S_NAME, "Kubernetes object name"))] | None = None
    stable_backend: Annotated[str, PlainValidator(_pattern(_K8S_NAME, "Service name"))] | None = None
    canary_backend: Annotated[str, PlainValidator(_pattern(_K8S_NAME, "Service name"))] | None = None
    rule: int = Field(default=0, ge=0, le=63)


class RollbackModel(_Model):
    target: TargetModel
    criteria_lead_in: Title | None = None
    procedure: Procedure | None = None
    criteria: list[CriterionModel] = []


class MetricsModel(_Model):
    error_rate_query: Annotated[str, PlainValidator(_text(4000))]
    p95_query: Annotated[str, PlainValidator(_text(4000))]
    sample_interval: Duration = timedelta(seconds=15)
    consecutive_breaches: int = Field(default=2, ge=1)
    no_data_warning_after: int = Field(default=3, ge=1)
    baseline_window: Duration = timedelta(minutes=30)
    baseline_p95: LatencyMs | None = None
    cpu_query: Annotated[str, PlainValidator(_text(4000))] | None = None
    memory_query: Annotated[str, PlainValidator(_text(4000))] | None = None
    resource_item: Key | None = None
    resource_max: Percent = 0.8


class ContactModel(_Model):
    key: Key
    role: Title
    via: Literal["pagerduty", "slack"]
    handle: Title | None = None
    slack_id: SlackId | None = None


class ChecklistModel(_Model):
    name: Key
    title: Title
    service: Key
    # The channels whose `/release start` runs this checklist; none: every channel no other checklist claims.
    channels: list[ChannelId] = []
    # Who may start, advance, abort and roll back this service's releases, besides RELEASE_MANAGERS.
    managers: list[SlackId] = []
    phases: list[PhaseModel] = Field(min_length=1)
    environments: list[EnvironmentModel] = []
    canary: list[CanaryStageModel] = []
    gate: GateModel | None = None
    post_deploy_watch: Duration | None = None
    rollback: RollbackModel | None = None
    traffic: TrafficModel | None = None
    metrics: MetricsModel | None = None
    contacts: list[ContactModel] = []
    tag_pattern: Annotated[str, PlainValidator(_text(100))] = "v*"
    version: Version | None = None  # the document's own version, recorded with each release
    closing_note: Title | None = None


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key written twice in one mapping (plain PyYAML silently keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: set[tuple[str, str]] = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                if (key_node.tag, key_node.value) in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"the key {key_node.value!r} is written twice", key_node.start_mark
                    )
                seen.add((key_node.tag, key_node.value))
        return super().construct_mapping(node, deep=deep)
