"""The checklist template: what a team's release process is, as plain immutable data.

A checklist is loaded from a YAML file (``bot.checklist.loading``) and never changes during a release: the release
stores the snapshot it started with, so editing the file never rewrites history. Items are addressed by stable
keys (``phase.section.item``); their wording can change freely.

Imports only the standard library.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field, replace
from datetime import timedelta
from enum import StrEnum

from bot.domain.evidence import EvidenceSpec
from bot.domain.traffic import TrafficSpec

# How a command tells a version from a service name (`/release start web v1.4.0`): so no service may look like one.
_READS_AS_VERSION = re.compile(r"^[vV]\d")


def reads_as_version(word: str) -> bool:
    return _READS_AS_VERSION.match(word) is not None


class PhaseKind(StrEnum):
    """How a phase takes part in the release flow."""

    CHECKLIST = "checklist"  # items only: tick them, then move on (pre-deploy checks)
    DEPLOY = "deploy"  # a deploy to an environment, verified by its items and a health check (staging)
    CANARY = "canary"  # production canary stages with waits and the monitoring gate
    WATCH = "watch"  # the post-deploy watch with its timer
    ROLLBACK_FOLLOWUP = "rollback_followup"  # posted only after a rollback


class TickRole(StrEnum):
    """Who may tick the items of a phase."""

    ANYONE = "anyone"
    RELEASE_MANAGERS = "release_managers"


class CriterionKind(StrEnum):
    """How a rollback criterion is judged."""

    ERROR_RATE = "error_rate"  # ratio of 5xx responses, from Prometheus
    LATENCY_RATIO = "latency_ratio"  # p95 divided by the release's baseline p95
    MANUAL = "manual"  # declared by a person (core feature down, data loss)


@dataclass(frozen=True)
class Item:
    """One thing to check. ``key`` is unique within the checklist and never shown.

    ``evidence`` names the sources that can prove it (all of them must); empty for an item people tick on trust.
    """

    key: str
    text: str
    evidence: tuple[EvidenceSpec, ...] = ()


@dataclass(frozen=True)
class Section:
    """A titled group of items, optionally with a procedure (commands) shown above them."""

    key: str
    title: str
    items: tuple[Item, ...] = ()
    procedure: str | None = None


@dataclass(frozen=True)
class Phase:
    """A part of the release: its sections, its role in the flow, and who may tick it."""

    key: str
    title: str
    kind: PhaseKind
    sections: tuple[Section, ...] = ()
    environment: str | None = None
    tick_role: TickRole = TickRole.ANYONE

    @property
    def items(self) -> tuple[Item, ...]:
        return tuple(item for section in self.sections for item in section.items)


@dataclass(frozen=True)
class Environment:
    """A deploy target and where to check its health."""

    key: str
    title: str
    health_url: str


@dataclass(frozen=True)
class CanaryStage:
    """One production step: the share of traffic and how long to wait before the next."""

    key: str
    traffic_percent: int
    wait: timedelta | None


@dataclass(frozen=True)
class MonitoringGate:
    """Figures that must hold during the deploy before advancing (seed 3.3)."""

    max_error_rate: float
    max_p95_ms: float
    # A canary stage without a wait (100 %) is still watched this long before the gate judges it: the seed
    # judges every stage "during the deploy", and a stage nobody observed has no figures to judge.
    min_observation: timedelta = timedelta(minutes=5)


@dataclass(frozen=True)
class Criterion:
    """A rollback criterion (seed 5.1). ``threshold`` is a ratio: 0.05 for 5 %, 2.0 for 2x baseline."""

    key: str
    title: str
    kind: CriterionKind
    threshold: float | None = None
    dry_run: bool = False
    on_breach: str = "page"  # "abort": the bot aborts the canary itself (traffic provider), then pages


@dataclass(frozen=True)
class MetricsSpec:
    """How the metric watch reads Prometheus and how strict it is."""

    error_rate_query: str
    p95_query: str
    sample_interval: timedelta = timedelta(seconds=15)
    consecutive_breaches: int = 2
    no_data_warning_after: int = 3
    baseline_window: timedelta = timedelta(minutes=30)
    baseline_p95_ms: float | None = None  # fixed baseline; otherwise measured before canary stage 1
    # Seed 3.2 "100% → 전체 메트릭": CPU and memory use of the service (a ratio of its limits), read at 100 %
    # traffic and shown beside ``resource_item``'s box; at or over ``resource_max`` is marked.
    cpu_query: str | None = None
    memory_query: str | None = None
    resource_item: str | None = None
    resource_max: float = 0.8


@dataclass(frozen=True)
class RollbackTarget:
    """What a rollback undoes (seed 5.2)."""

    deployment: str
    namespace: str
    procedure: str | None = None


@dataclass(frozen=True)
class Contact:
    """An emergency contact (seed part 6).

    ``slack_id`` is a user id (U…/W…) or user-group id (S…) and makes a real mention; ``handle`` is the name the
    team knows (``@tech-lead``) and is shown as text when no id is configured.
    """

    key: str
    role: str
    via: str  # "pagerduty" or "slack"
    slack_id: str | None = None
    handle: str | None = None

    @property
    def mention(self) -> str | None:
        if self.slack_id:
            if self.slack_id.startswith("S"):
                return f"<!subteam^{self.slack_id}>"
            return f"<@{self.slack_id}>"
        return self.handle


def contact_matches(contact: Contact, name: str) -> bool:
    """Whether ``name`` (as written in RELEASE_CONTACTS) names this contact: its key, or its handle without "@".

    Keys are written with "_" in the file and handles with "-" (``tech_lead``, ``@tech-lead``); either spelling
    of either works, so the setting can be written the way the team says the role.
    """
    wanted = name.strip().lstrip("@").replace("_", "-").lower()
    names = {contact.key.replace("_", "-").lower()}
    if contact.handle:
        names.add(contact.handle.strip().lstrip("@").replace("_", "-").lower())
    return wanted in names


def with_contact_ids(contacts: tuple[Contact, ...], ids: tuple[tuple[str, str], ...]) -> tuple[Contact, ...]:
    """The contacts with the Slack ids given outside the file (RELEASE_CONTACTS), which win over the file's."""
    result = []
    for contact in contacts:
        given = next((slack_id for name, slack_id in ids if contact_matches(contact, name)), None)
        result.append(replace(contact, slack_id=given) if given else contact)
    return tuple(result)


def unmatched_contact_names(contacts: tuple[Contact, ...], ids: tuple[tuple[str, str], ...]) -> list[str]:
    """Names in RELEASE_CONTACTS that name no contact of the checklist (a typo would otherwise mention nobody)."""
    return [name for name, _ in ids if not any(contact_matches(c, name) for c in contacts)]


def contacts_without_id(contacts: tuple[Contact, ...]) -> list[Contact]:
    """Slack contacts nobody can be pinged as: the incident message would show their role as plain text."""
    return [c for c in contacts if c.via == "slack" and not c.slack_id]


@dataclass(frozen=True)
class Checklist:
    """A whole release process, as loaded from one file."""

    name: str
    title: str
    service: str
    phases: tuple[Phase, ...]
    environments: tuple[Environment, ...] = ()
    canary_stages: tuple[CanaryStage, ...] = ()
    gate: MonitoringGate | None = None
    criteria: tuple[Criterion, ...] = ()
    rollback: RollbackTarget | None = None
    post_deploy_watch: timedelta | None = None
    contacts: tuple[Contact, ...] = ()
    metrics: MetricsSpec | None = None
    tag_pattern: str = "v*"  # which pushed tags start a release (a glob over the tag name)
    traffic: TrafficSpec = field(default_factory=TrafficSpec)
    version: str | None = None  # the checklist document's own version (its front matter), recorded per release
    closing_note: str | None = None  # the document's last word ("반드시 확인해야 합니다"), shown on every header
    criteria_lead_in: str | None = None  # the sentence that introduces the rollback criteria (seed 5.1)
    channels: tuple[str, ...] = ()  # the channels it serves; empty: every channel no other checklist claims
    managers: tuple[str, ...] = ()  # user and user-group ids who manage this service's releases
    source: str = field(default="", compare=False)

    def phase(self, key: str) -> Phase:
        for phase in self.phases:
            if phase.key == key:
                return phase
        raise KeyError(key)

    def environment(self, key: str) -> Environment:
        for env in self.environments:
            if env.key == key:
                return env
        raise KeyError(key)

    @property
    def flow_phases(self) -> tuple[Phase, ...]:
        """Phases that make up the forward flow, in order (the rollback follow-up is not one of them)."""
        return tuple(p for p in self.phases if p.kind is not PhaseKind.ROLLBACK_FOLLOWUP)

    @property
    def followup_phase(self) -> Phase | None:
        return next((p for p in self.phases if p.kind is PhaseKind.ROLLBACK_FOLLOWUP), None)

    def item_phase(self, item_key: str) -> Phase:
        for phase in self.phases:
            if any(item.key == item_key for item in phase.items):
                return phase
        raise KeyError(item_key)

    @property
    def evidence_items(self) -> tuple[Item, ...]:
        return tuple(item for phase in self.phases for item in phase.items if item.evidence)

    def tag_for(self, version: str) -> str:
        """The git tag of a version: the version itself, behind the pattern's folder if it has one."""
        folder, slash, _name = self.tag_pattern.rpartition("/")
        return f"{folder}{slash}{version}"

    def version_of_tag(self, tag: str) -> str | None:
        """The version a pushed tag releases, or None when the tag does not match the pattern."""
        if not fnmatch.fnmatchcase(tag, self.tag_pattern):
            return None
        return tag.rpartition("/")[2]

    def item(self, item_key: str) -> Item:
        for phase in self.phases:
            for item in phase.items:
                if item.key == item_key:
                    return item
        raise KeyError(item_key)


def parse_duration(text: str) -> timedelta:
    """Parse ``90s``, ``15m``, ``2h`` or combinations such as ``1h30m``; raise ValueError otherwise."""
    units = {"h": 3600, "m": 60, "s": 1}
    text = text.strip()
    if not text:
        raise ValueError("empty duration")
    total, number = 0, ""
    for ch in text:
        if ch.isdigit():
            number += ch
        elif ch in units and number:
            total += int(number) * units[ch]
            number = ""
        else:
            raise ValueError(f"invalid duration {text!r}: write it like 15m, 30m or 90s")
    if number:
        raise ValueError(f"invalid duration {text!r}: the number needs a unit (s, m or h)")
    return timedelta(seconds=total)


def format_duration(value: timedelta) -> str:
    """Format a duration the way checklist files write it (``15m``, ``90s``, ``1h30m``)."""
    seconds = int(value.total_seconds())
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{n}{u}" for n, u in ((hours, "h"), (minutes, "m"), (secs, "s")) if n]
    return "".join(parts) or "0s"
