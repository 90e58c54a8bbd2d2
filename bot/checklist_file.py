"""Read a checklist file (YAML) into the immutable ``bot.domain.checklist`` dataclasses.

The format is documented in ``checklists/README.md``. Loading has two passes: strict pydantic models (unknown
fields refused) check the shape of every field, then ``_check`` validates what spans fields (unique keys,
phase order, references between parts). Every problem becomes one ``ChecklistError`` whose message names the
file and the path of the field, because the person reading it is editing YAML, not Python.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, NoReturn, get_args
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, PlainValidator, ValidationError
from pydantic_core import ErrorDetails

from bot.domain.checklist import (
    CanaryStage,
    Checklist,
    Contact,
    Criterion,
    CriterionKind,
    Environment,
    Item,
    MetricsSpec,
    MonitoringGate,
    Phase,
    PhaseKind,
    RollbackTarget,
    Section,
    TickRole,
    format_duration,
    parse_duration,
)
from bot.errors import ChecklistError

MAX_FULL_ITEM_KEY = 150  # the full key travels as a Slack option value, which Slack caps at 150 characters
MAX_ITEM_TEXT = 75  # Slack refuses checkbox option text longer than 75 characters
MAX_TITLE = 150  # titles become header blocks, capped at 150
MAX_PROCEDURE = 2500  # a procedure is shown in one section block (3000) with its heading and code fence
MAX_FILE_BYTES = 1_000_000
MAX_REPORTED = 20  # beyond this, more lines only bury the first mistake

_KEY = re.compile(r"[a-z][a-z0-9_.-]{0,63}")
_SLACK_ID = re.compile(r"[UWS][A-Z0-9]{2,}")
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
Lax = Field(strict=False)  # enums arrive from YAML as strings, which strict mode would refuse


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class ItemModel(_Model):
    key: Key
    text: Annotated[str, PlainValidator(_text(MAX_ITEM_TEXT))]


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


class CriterionModel(_Model):
    key: Key
    title: Title
    kind: Annotated[CriterionKind, Lax]
    threshold: Any = None  # its notation depends on kind, so _check parses it
    dry_run: bool = False


class TargetModel(_Model):
    deployment: Annotated[str, PlainValidator(_pattern(_K8S_NAME, "Kubernetes deployment name"))]
    namespace: Annotated[str, PlainValidator(_pattern(_K8S_NAMESPACE, "Kubernetes namespace"))]


class RollbackModel(_Model):
    target: TargetModel
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
    phases: list[PhaseModel] = Field(min_length=1)
    environments: list[EnvironmentModel] = []
    canary: list[CanaryStageModel] = []
    gate: GateModel | None = None
    post_deploy_watch: Duration | None = None
    rollback: RollbackModel | None = None
    metrics: MetricsModel | None = None
    contacts: list[ContactModel] = []


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


def default_checklist_path() -> Path:
    """Return the checklist shipped with the project (the Docker image copies checklists/ beside bot/)."""
    return Path(__file__).resolve().parent.parent / "checklists" / "deployment.yaml"


def load_checklist(path: str | Path) -> Checklist:
    """Read and validate a checklist file; raise ChecklistError naming the file and the field."""
    source = str(path)
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError as e:
        raise ChecklistError(f"{source}: no such file") from e
    except IsADirectoryError as e:
        raise ChecklistError(f"{source}: is a directory, not a checklist file") from e
    except OSError as e:
        raise ChecklistError(f"{source}: cannot read the file ({e.strerror})") from e
    if len(raw) > MAX_FILE_BYTES:
        raise ChecklistError(f"{source}: the file is larger than {MAX_FILE_BYTES // 1_000_000} MB")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ChecklistError(f"{source}: not UTF-8 text (bad byte at offset {e.start})") from e
    return load_checklist_text(text, source)


def load_checklist_text(text: str, source: str = "<text>") -> Checklist:
    """Validate checklist YAML given as text; ``source`` names it in error messages."""
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass: builds plain data only
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ChecklistError(f"{source}: {where}invalid YAML: {e.problem or e.context}") from e
    except yaml.YAMLError as e:
        raise ChecklistError(f"{source}: invalid YAML: {e}") from e
    if data is None:
        raise ChecklistError(f"{source}: the file is empty")
    if not isinstance(data, dict):
        raise ChecklistError(
            f"{source}: the top level must be a mapping (name:, title:, service:, phases:, ...)"
        )
    try:
        model = ChecklistModel.model_validate(data)
    except ValidationError as e:
        _fail(source, [(_path(err["loc"]), _message(err)) for err in e.errors()], e)
    problems = _check(model)
    if problems:
        _fail(source, problems)
    return _build(model, source)


def _fail(source: str, problems: list[tuple[str, str]], cause: Exception | None = None) -> NoReturn:
    lines = [f"{source}: {path}: {message}" if path else f"{source}: {message}" for path, message in problems]
    if len(lines) > MAX_REPORTED:
        lines = [*lines[:MAX_REPORTED], f"{source}: ... and {len(lines) - MAX_REPORTED} more problems"]
    raise ChecklistError("\n".join(lines)) from cause


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _message(err: ErrorDetails) -> str:
    kind, ctx = err["type"], err.get("ctx") or {}
    if kind == "value_error" and "error" in ctx:
        return str(ctx["error"])
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        return f"unknown field {err['loc'][-1]!r} (allowed here: {_allowed_fields(err['loc'])})"
    if kind == "model_type":
        return f"expected a mapping of fields (key: value lines), got {err['input']!r}"
    value = err.get("input")
    got = f", got {value!r}" if isinstance(value, str | int | float | bool) else ""
    return f"{err['msg']}{got}"


def _allowed_fields(loc: tuple[int | str, ...]) -> str:
    model: type[BaseModel] = ChecklistModel
    try:
        for part in loc[:-1]:
            if isinstance(part, str):
                annotation = model.model_fields[part].annotation
                model = next(
                    a
                    for a in (annotation, *get_args(annotation))
                    if isinstance(a, type) and issubclass(a, BaseModel)
                )
    except (KeyError, StopIteration):
        return "see checklists/README.md"
    return ", ".join(model.model_fields)


def _threshold(kind: CriterionKind, raw: Any) -> float | None:
    if kind is CriterionKind.MANUAL:
        if raw is not None:
            raise ValueError("a manual criterion is declared by a person and takes no threshold")
        return None
    if raw is None:
        raise ValueError(f"this {kind} criterion needs a threshold")
    return _percent(raw) if kind is CriterionKind.ERROR_RATE else _ratio(raw)


def _duplicates(entries: list[tuple[str, str]]) -> list[tuple[str, str]]:
    first: dict[str, str] = {}
    problems = []
    for path, key in entries:
        if key in first:
            problems.append((path, f"duplicate key {key!r} (also at {first[key]})"))
        else:
            first.setdefault(key, path)
    return problems


_FLOW_RANK = {PhaseKind.DEPLOY: 1, PhaseKind.CANARY: 2, PhaseKind.WATCH: 3}


class _Problems(list[tuple[str, str]]):
    def add(self, path: str, message: str) -> None:
        self.append((path, message))


def _check(m: ChecklistModel) -> _Problems:
    """Validate what spans fields; return (path, message) pairs."""
    problems = _Problems()
    env_keys = {e.key for e in m.environments}
    keys: dict[str, list[tuple[str, str]]] = {"sections": [], "items": []}
    first_of: dict[PhaseKind, str] = {}
    latest: tuple[int, str] = (0, "")  # flow rank and path of the last deploy/canary/watch phase
    for i, phase in enumerate(m.phases):
        at, kind = f"phases[{i}]", phase.kind
        if kind in first_of and kind not in (PhaseKind.CHECKLIST, PhaseKind.DEPLOY):
            problems.add(f"{at}.kind", f"at most one {kind} phase (the first is {first_of[kind]})")
        first_of.setdefault(kind, at)
        if kind is PhaseKind.ROLLBACK_FOLLOWUP and i != len(m.phases) - 1:
            problems.add(f"{at}.kind", "the rollback_followup phase must be the last phase")
        if (rank := _FLOW_RANK.get(kind)) is not None:
            if rank < latest[0]:
                problems.add(f"{at}.kind", f"a {kind} phase cannot come after {latest[1]}")
            latest = max(latest, (rank, f"the {kind} phase at {at}"))
            if phase.environment is None:
                problems.add(at, f"a {kind} phase needs an environment")
        if phase.environment is not None and phase.environment not in env_keys:
            known = ", ".join(sorted(env_keys)) or "none defined"
            problems.add(f"{at}.environment", f"unknown environment {phase.environment!r} (known: {known})")
        if kind is PhaseKind.CHECKLIST and not any(s.items for s in phase.sections):
            problems.add(at, "a checklist phase needs at least one item")
        for j, section in enumerate(phase.sections):
            keys["sections"].append((f"{at}.sections[{j}].key", f"{phase.key}.{section.key}"))
            if not section.items and section.procedure is None:
                problems.add(f"{at}.sections[{j}]", "a section needs items or a procedure")
            for k, item in enumerate(section.items):
                full, path = f"{phase.key}.{section.key}.{item.key}", f"{at}.sections[{j}].items[{k}].key"
                keys["items"].append((path, full))
                if len(full) > MAX_FULL_ITEM_KEY:
                    problems.add(
                        path,
                        f"the full key {full!r} is {len(full)} characters, at most {MAX_FULL_ITEM_KEY} "
                        "(it travels as a Slack option value): shorten the phase, section or item key",
                    )
    if set(first_of) == {PhaseKind.ROLLBACK_FOLLOWUP}:
        problems.add("phases", "needs at least one phase that is not rollback_followup")
    for name, listed in (
        ("phases", [p.key for p in m.phases]),
        ("environments", [e.key for e in m.environments]),
        ("canary", [s.key for s in m.canary]),
        ("rollback.criteria", [c.key for c in m.rollback.criteria] if m.rollback else []),
        ("contacts", [c.key for c in m.contacts]),
    ):
        problems += _duplicates([(f"{name}[{n}].key", key) for n, key in enumerate(listed)])
    problems += _duplicates(keys["sections"]) + _duplicates(keys["items"])
    _check_release_parts(m, set(first_of), problems)
    return problems


def _check_release_parts(m: ChecklistModel, kinds: set[PhaseKind], problems: _Problems) -> None:
    if PhaseKind.CANARY in kinds and not m.canary:
        problems.add("canary", "the canary phase needs canary stages (a list of key, traffic, wait)")
    if m.canary and PhaseKind.CANARY not in kinds:
        problems.add("canary", "canary stages are set but no phase has kind canary")
    for n, stage in enumerate(m.canary[1:], start=1):
        if stage.traffic <= m.canary[n - 1].traffic:
            problems.add(f"canary[{n}].traffic", "each stage must send more traffic than the one before")
    if m.canary and m.canary[-1].traffic != 100:
        problems.add(f"canary[{len(m.canary) - 1}].traffic", "the last canary stage must be 100")
    if PhaseKind.WATCH in kinds and m.post_deploy_watch is None:
        problems.add("post_deploy_watch", "the watch phase needs post_deploy_watch (how long, e.g. 30m)")
    if m.post_deploy_watch is not None and PhaseKind.WATCH not in kinds:
        problems.add("post_deploy_watch", "post_deploy_watch is set but no phase has kind watch")
    if kinds & {PhaseKind.CANARY, PhaseKind.WATCH} and m.rollback is None:
        problems.add("rollback", "a canary or watch phase needs rollback.target for the one-click rollback")
    if m.gate is not None and m.metrics is None:
        problems.add("gate", "the gate is judged from Prometheus: add a metrics section")
    for n, criterion in enumerate(m.rollback.criteria if m.rollback else []):
        try:
            _threshold(criterion.kind, criterion.threshold)
        except ValueError as e:
            problems.add(f"rollback.criteria[{n}].threshold", str(e))
        if criterion.kind is not CriterionKind.MANUAL and m.metrics is None:
            problems.add(
                f"rollback.criteria[{n}].kind",
                f"this {criterion.kind} criterion reads Prometheus: add a metrics section",
            )
    for n, contact in enumerate(m.contacts):
        if contact.via == "slack" and contact.handle is None and contact.slack_id is None:
            problems.add(f"contacts[{n}]", "a slack contact needs a handle or a slack_id")


def _build(m: ChecklistModel, source: str) -> Checklist:
    def section(phase_key: str, s: SectionModel) -> Section:
        key = f"{phase_key}.{s.key}"
        return Section(key, s.title, tuple(Item(f"{key}.{i.key}", i.text) for i in s.items), s.procedure)

    rollback, metrics = m.rollback, m.metrics
    return Checklist(
        name=m.name,
        title=m.title,
        service=m.service,
        phases=tuple(
            Phase(
                p.key,
                p.title,
                p.kind,
                tuple(section(p.key, s) for s in p.sections),
                p.environment,
                p.tick_role,
            )
            for p in m.phases
        ),
        environments=tuple(Environment(**e.model_dump()) for e in m.environments),
        canary_stages=tuple(CanaryStage(s.key, s.traffic, s.wait) for s in m.canary),
        gate=MonitoringGate(m.gate.max_error_rate, m.gate.max_p95) if m.gate else None,
        criteria=tuple(
            Criterion(c.key, c.title, c.kind, _threshold(c.kind, c.threshold), c.dry_run)
            for c in (rollback.criteria if rollback else [])
        ),
        rollback=RollbackTarget(**rollback.target.model_dump(), procedure=rollback.procedure)
        if rollback
        else None,
        post_deploy_watch=m.post_deploy_watch,
        contacts=tuple(Contact(**c.model_dump()) for c in m.contacts),
        metrics=(
            MetricsSpec(**metrics.model_dump(exclude={"baseline_p95"}), baseline_p95_ms=metrics.baseline_p95)
            if metrics
            else None
        ),
        source=source,
    )


def _pct(ratio: float) -> str:
    return f"{ratio * 100:g}%"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _rule(crit: Criterion) -> str:
    if crit.kind is CriterionKind.ERROR_RATE and crit.threshold is not None:
        rule = f"error rate >= {_pct(crit.threshold)}"
    elif crit.kind is CriterionKind.LATENCY_RATIO and crit.threshold is not None:
        rule = f"p95 >= {crit.threshold:g}x baseline"
    else:
        rule = "declared by a person"
    return f"{rule}, dry run" if crit.dry_run else rule


def summarize(checklist: Checklist) -> str:
    """Describe a loaded checklist in plain lines, for ``release-bot checklist check FILE``."""
    c = checklist
    lines = [f"{c.title} (name {c.name}, service {c.service})", "", "Phases:"]
    for n, phase in enumerate(c.phases, start=1):
        where = f" -> {phase.environment}" if phase.environment else ""
        role = "" if phase.tick_role is TickRole.ANYONE else f", ticked by {phase.tick_role}"
        count = _count(len(phase.items), "item")
        lines.append(f"  {n}. {phase.key} [{phase.kind}{where}{role}] {phase.title}: {count}")
        for s in phase.sections:
            parts = ([_count(len(s.items), "item")] if s.items else []) + (
                ["procedure"] if s.procedure else []
            )
            lines.append(f"       {s.title}: {', '.join(parts)}")
    lines += [f"Environment {e.key} ({e.title}): health {e.health_url}" for e in c.environments]
    if c.canary_stages:
        waits = [
            f"{s.key} {s.traffic_percent}%" + (f", wait {format_duration(s.wait)}" if s.wait else "")
            for s in c.canary_stages
        ]
        lines.append("Canary: " + " -> ".join(waits))
    if c.gate:
        lines.append(
            f"Gate: error rate below {_pct(c.gate.max_error_rate)}, p95 below {c.gate.max_p95_ms:g}ms"
        )
    if c.post_deploy_watch:
        lines.append(f"Post-deploy watch: {format_duration(c.post_deploy_watch)}")
    lines += [f"Rollback criterion {x.key}: {x.title} ({_rule(x)})" for x in c.criteria]
    if c.rollback:
        lines.append(
            f"Rollback target: deployment/{c.rollback.deployment} in namespace {c.rollback.namespace}"
        )
    if m := c.metrics:
        baseline = (
            f"fixed {m.baseline_p95_ms:g}ms"
            if m.baseline_p95_ms
            else f"measured over {format_duration(m.baseline_window)}"
        )
        lines.append(
            f"Metrics: sample every {format_duration(m.sample_interval)}, alert after "
            f"{m.consecutive_breaches} breaches in a row, warn after {m.no_data_warning_after} empty "
            f"samples, p95 baseline {baseline}"
        )
    lines += [
        f"Contact {x.role}: "
        + ("paged via PagerDuty" if x.via == "pagerduty" else f"{x.mention or '-'} on Slack")
        for x in c.contacts
    ]
    items, sections = sum(len(p.items) for p in c.phases), sum(len(p.sections) for p in c.phases)
    lines += [
        "",
        f"{_count(items, 'item')} in {_count(len(c.phases), 'phase')} ({_count(sections, 'section')})",
    ]
    return "\n".join(lines)
