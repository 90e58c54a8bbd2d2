"""Read a checklist file (YAML) into the immutable ``bot.domain.checklist`` dataclasses.

The format is documented in ``checklists/README.md``. Loading has two passes: the models of ``bot.checklist.schema``
(unknown fields refused) check the shape of every field, then ``_check`` validates what spans fields (unique keys,
phase order, references between parts). Every problem becomes one ``ChecklistError`` whose message names the
file and the path of the field, because the person reading it is editing YAML, not Python.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib.resources import files
from pathlib import Path
from typing import Any, NoReturn

import yaml

from bot.checklist.schema import (
    EVIDENCE_FIELDS,
    MAX_EVIDENCE,
    MAX_FILE_BYTES,
    MAX_FULL_ITEM_KEY,
    MAX_REPORTED,
    ChecklistModel,
    EvidenceModel,
    ItemModel,
    MetricsModel,
    SectionModel,
    TargetModel,
    _percent,
    _ratio,
    _StrictLoader,
    read_checklist_model,
)
from bot.config import SHIPPED_CHECKLIST
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
)
from bot.domain.checklist_set import ChecklistSet, Member, set_problems
from bot.domain.evidence import EvidenceSource, EvidenceSpec
from bot.domain.traffic import TrafficProviderKind, TrafficSpec
from bot.errors import ChecklistError, ConfigError


def default_checklist_path() -> Path:
    """The checklist shipped inside the package: the HallyuLatino process, and the start of a team's own."""
    # pip installs packages as plain folders, so the resource is a real file that can be named in messages.
    return Path(str(files("bot.checklist") / SHIPPED_CHECKLIST))


def write_starter(destination: str | Path, *, force: bool = False) -> Path:
    """Write the shipped checklist to ``destination`` as the start of a team's own; never overwrite by accident."""
    path = Path(destination)
    if path.is_dir():
        raise ChecklistError(
            f"{path}: is a directory; name the file to write, e.g. {path / 'checklist.yaml'}"
        )
    if path.exists() and not force:
        raise ChecklistError(f"{path}: already exists; choose another name, or add --force to replace it")
    if not path.parent.is_dir():
        raise ChecklistError(f"{path}: the folder {path.parent} does not exist")
    try:
        path.write_bytes(default_checklist_path().read_bytes())
    except OSError as e:
        raise ChecklistError(f"{path}: cannot write the file ({e.strerror})") from e
    return path


def load_checklist(path: str | Path) -> Checklist:
    """Read and validate a checklist file; raise ChecklistError naming the file and the field."""
    return read_checklist(path)[0]


def read_checklist(path: str | Path) -> tuple[Checklist, str]:
    """The checklist of a file and its text (a release stores the text it started with)."""
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
    return load_checklist_text(text, source), text


def checklist_files(spec: str | Path) -> list[Path]:
    """The files ``RELEASE_BOT_CHECKLIST`` names: one file, a directory (its *.yaml and *.yml, by name) or a
    comma-separated list of files."""
    parts = [p.strip() for p in str(spec).split(",") if p.strip()]
    if not parts:
        raise ChecklistError("RELEASE_BOT_CHECKLIST names no file")
    if len(parts) > 1:
        return [Path(p) for p in parts]
    path = Path(parts[0])
    if not path.is_dir():
        return [path]
    # Editors leave hidden swap and backup copies beside the files: only visible *.yaml/*.yml are checklists.
    found = sorted(
        f
        for f in path.iterdir()
        if f.suffix in (".yaml", ".yml") and not f.name.startswith(".") and f.is_file()
    )
    if not found:
        raise ChecklistError(f"{path}: no checklist in this directory (*.yaml or *.yml)")
    return found


def set_errors(members: Sequence[Member]) -> list[str]:
    """One line per broken rule of the set (services unique, one fallback), each naming its file."""
    return [f"{path}: {problem}" for path, problem in set_problems(tuple(members))]


def load_checklist_set(spec: str | Path) -> ChecklistSet:
    """Read every checklist ``spec`` names and check the set; raise ChecklistError (a file) or ConfigError
    (the set), each one line naming the file and the problem."""
    members = []
    for path in checklist_files(spec):
        checklist, text = read_checklist(path)
        members.append(Member(checklist, text, str(path)))
    errors = set_errors(members)
    if errors:
        more = (
            f" (and {len(errors) - 1} more: release-bot checklist check lists them)"
            if len(errors) > 1
            else ""
        )
        raise ConfigError(f"RELEASE_BOT_CHECKLIST is invalid: {errors[0]}{more}")
    return ChecklistSet(tuple(members))


def load_checklist_text(text: str, source: str = "<text>") -> Checklist:
    """Validate checklist YAML given as text; ``source`` names it in error messages."""
    key = (text, source)
    cached = _last.get(key)
    if cached is not None:
        return cached
    checklist = _validate(text, source)
    if len(_last) >= _KEPT:
        _last.clear()
    _last[key] = checklist
    return checklist


# The last checklist validated, by text and name: ``serve`` loads the same file three times (the start-up check,
# then each process's build), and in a forked work process a second validation wrote into ~2.5 MB of pages it
# shared with the serving process. A Checklist is immutable; an edited file is a different key.
# A deployment with several checklists validates each of them, so a few are kept.
_last: dict[tuple[str, str], Checklist] = {}
_KEPT = 32


def _validate(text: str, source: str) -> Checklist:
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
    model, problems = read_checklist_model(data)
    if problems or model is None:
        _fail(source, problems)
    problems = _check(model)
    if problems:
        _fail(source, problems)
    return _build(model, source)


def _fail(source: str, problems: list[tuple[str, str]]) -> NoReturn:
    lines = [f"{source}: {path}: {message}" if path else f"{source}: {message}" for path, message in problems]
    if len(lines) > MAX_REPORTED:
        lines = [*lines[:MAX_REPORTED], f"{source}: ... and {len(lines) - MAX_REPORTED} more problems"]
    raise ChecklistError("\n".join(lines))


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


def _listed_twice(name: str, ids: list[str]) -> list[tuple[str, str]]:
    first: dict[str, int] = {}
    problems = []
    for n, value in enumerate(ids):
        if value in first:
            problems.append((f"{name}[{n}]", f"{value} is listed twice (also at {name}[{first[value]}])"))
        first.setdefault(value, n)
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
                _check_evidence(m, phase.environment, item, f"{at}.sections[{j}].items[{k}].evidence", problems)
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
    problems += _listed_twice("channels", m.channels) + _listed_twice("managers", m.managers)
    _check_release_parts(m, set(first_of), problems)
    _check_traffic(m, problems)
    return problems


def _check_evidence(
    m: ChecklistModel, phase_env: str | None, item: ItemModel, at: str, problems: _Problems
) -> None:
    if len(item.evidence) > MAX_EVIDENCE:
        problems.add(at, f"at most {MAX_EVIDENCE} evidence sources per item, got {len(item.evidence)}")
    env_keys = {e.key for e in m.environments}
    for n, ev in enumerate(item.evidence):
        here = f"{at}[{n}]"
        allowed = EVIDENCE_FIELDS[ev.source]
        for name in ev.given - {"source"} - set(allowed):
            takes = ", ".join(allowed) or "nothing else"
            problems.add(f"{here}.{name}", f"{ev.source} takes no {name} (it takes: {takes})")
        match ev.source:
            case EvidenceSource.GITHUB_FILE:
                if ev.path is None:
                    problems.add(here, "github.file_changed needs a path (e.g. CHANGELOG.md)")
                elif ev.path.startswith("/") or ".." in ev.path.split("/"):
                    problems.add(f"{here}.path", f"write the path from the repository root, got {ev.path!r}")
                if ev.changed is False and not ev.contains_version:
                    problems.add(here, "set changed or contains_version (or both): there is nothing to check")
            case EvidenceSource.GITHUB_DEPLOYMENT:
                if ev.environment is None:
                    problems.add(here, "github.deployment needs the GitHub environment name (e.g. staging)")
            case EvidenceSource.PROMETHEUS:
                if ev.query is None:
                    problems.add(here, "prometheus evidence needs a query")
                if ev.min is None and ev.max is None:
                    problems.add(here, "prometheus evidence needs a bound: min, max or both")
                elif ev.min is not None and ev.max is not None and ev.min > ev.max:
                    problems.add(here, f"min ({ev.min:g}) is above max ({ev.max:g}): no value could pass")
            case EvidenceSource.HTTP:
                if ev.url is not None and ev.environment is not None:
                    problems.add(here, "give url or environment, not both")
                elif ev.environment is not None and ev.environment not in env_keys:
                    known = ", ".join(sorted(env_keys)) or "none defined"
                    problems.add(f"{here}.environment", f"unknown environment {ev.environment!r} (known: {known})")
                elif ev.url is None and ev.environment is None and phase_env is None:
                    problems.add(here, "http evidence needs a url or environment (this phase has no environment)")
            case _:
                pass


def _evidence(m: ChecklistModel, phase_env: str | None, ev: EvidenceModel) -> EvidenceSpec:
    url = ev.url
    if ev.source is EvidenceSource.HTTP and url is None:
        env_key = ev.environment or phase_env
        url = next((e.health_url for e in m.environments if e.key == env_key), None)
    return EvidenceSpec(
        source=ev.source,
        checks=tuple(ev.checks or ()),
        path=ev.path,
        changed=ev.changed if ev.changed is not None else ev.source is EvidenceSource.GITHUB_FILE,
        contains_version=bool(ev.contains_version),
        environment=ev.environment,
        url=url,
        query=ev.query,
        min=ev.min,
        max=ev.max,
    )


# The CPU and memory of the service against its limits, for the common setup: cAdvisor (kubelet) for use,
# kube-state-metrics for limits. The busiest pod counts: one pod near its limit is the one that falls over.
DEFAULT_CPU_QUERY = (
    "max(sum by (pod) (rate(container_cpu_usage_seconds_total"
    '{{namespace="{namespace}",container="{container}"}}[5m]))'
    " / sum by (pod) (kube_pod_container_resource_limits"
    '{{namespace="{namespace}",container="{container}",resource="cpu"}}))'
)
DEFAULT_MEMORY_QUERY = (
    "max(sum by (pod) (container_memory_working_set_bytes"
    '{{namespace="{namespace}",container="{container}"}})'
    " / sum by (pod) (kube_pod_container_resource_limits"
    '{{namespace="{namespace}",container="{container}",resource="memory"}}))'
)


def _resource_item(m: ChecklistModel) -> str | None:
    """The full key (phase.section.item) of the item that shows CPU and memory, or None when ambiguous."""
    wanted = m.metrics.resource_item if m.metrics else None
    if wanted is None:
        return None
    full = [f"{p.key}.{sec.key}.{i.key}" for p in m.phases for sec in p.sections for i in sec.items]
    found = [k for k in full if k == wanted or k.endswith(f".{wanted}")]
    return found[0] if len(found) == 1 else None


def _metrics_spec(metrics: MetricsModel, target: TargetModel | None, resource_item: str | None) -> MetricsSpec:
    """The metrics section; CPU and memory default to cAdvisor/kube-state-metrics queries for the rollback
    target's deployment (its container is assumed to share the deployment's name) when the file gives none."""
    values = metrics.dump()
    del values["baseline_p95"]
    if target is not None:
        names = {"namespace": target.namespace, "container": target.deployment}
        values["cpu_query"] = values["cpu_query"] or DEFAULT_CPU_QUERY.format(**names)
        values["memory_query"] = values["memory_query"] or DEFAULT_MEMORY_QUERY.format(**names)
    values["resource_item"] = resource_item
    return MetricsSpec(**values, baseline_p95_ms=metrics.baseline_p95)


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
    if m.metrics is not None and m.metrics.resource_item is not None and _resource_item(m) is None:
        problems.add(
            "metrics.resource_item",
            f"no single item has the key {m.metrics.resource_item!r} (give its key, or phase.section.key)",
        )
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


def _check_traffic(m: ChecklistModel, problems: _Problems) -> None:
    t = m.traffic
    if t is None:
        if any(c.on_breach == "abort" for c in (m.rollback.criteria if m.rollback else [])):
            problems.add("traffic", "on_breach: abort needs a traffic provider (argo-rollouts or gateway-api)")
        return
    kind = t.provider
    if kind is TrafficProviderKind.MANUAL:
        extra = [f for f in ("namespace", "name", "stable_backend", "canary_backend") if getattr(t, f)]
        if extra:
            problems.add(f"traffic.{extra[0]}", "the manual provider moves no traffic: remove this field")
        if any(c.on_breach == "abort" for c in (m.rollback.criteria if m.rollback else [])):
            problems.add("traffic.provider", "on_breach: abort needs argo-rollouts or gateway-api")
        return
    what = "Rollout" if kind is TrafficProviderKind.ARGO_ROLLOUTS else "HTTPRoute"
    for f in ("namespace", "name"):
        if not getattr(t, f):
            problems.add(f"traffic.{f}", f"{kind} needs the {f} of the {what}")
    if not m.canary:
        problems.add("traffic.provider", f"{kind} drives canary stages: add a canary phase and stages")
    if kind is TrafficProviderKind.GATEWAY_API:
        for f in ("stable_backend", "canary_backend"):
            if not getattr(t, f):
                problems.add(f"traffic.{f}", "gateway-api needs the stable and the canary Service names")
        if t.stable_backend and t.stable_backend == t.canary_backend:
            problems.add("traffic.canary_backend", "the canary Service must differ from the stable one")
    else:
        for f in ("stable_backend", "canary_backend"):
            if getattr(t, f):
                problems.add(f"traffic.{f}", "argo-rollouts finds its Services in the Rollout: remove this")
        if t.rule:
            problems.add("traffic.rule", "rule is for gateway-api routes only")


def _traffic(m: ChecklistModel) -> TrafficSpec:
    t = m.traffic
    if t is None:
        return TrafficSpec()
    return TrafficSpec(
        provider=t.provider,
        namespace=t.namespace or "",
        name=t.name or "",
        stable_backend=t.stable_backend or "",
        canary_backend=t.canary_backend or "",
        rule=t.rule,
    )


def _build(m: ChecklistModel, source: str) -> Checklist:
    def section(phase_key: str, env: str | None, s: SectionModel) -> Section:
        key = f"{phase_key}.{s.key}"
        items = tuple(
            Item(f"{key}.{i.key}", i.text, tuple(_evidence(m, env, ev) for ev in i.evidence)) for i in s.items
        )
        return Section(key, s.title, items, s.procedure)

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
                tuple(section(p.key, p.environment, s) for s in p.sections),
                p.environment,
                p.tick_role,
            )
            for p in m.phases
        ),
        environments=tuple(Environment(**e.dump()) for e in m.environments),
        canary_stages=tuple(CanaryStage(s.key, s.traffic, s.wait) for s in m.canary),
        gate=MonitoringGate(m.gate.max_error_rate, m.gate.max_p95, m.gate.min_observation) if m.gate else None,
        criteria=tuple(
            Criterion(c.key, c.title, c.kind, _threshold(c.kind, c.threshold), c.dry_run, c.on_breach)
            for c in (rollback.criteria if rollback else [])
        ),
        rollback=RollbackTarget(**rollback.target.dump(), procedure=rollback.procedure)
        if rollback
        else None,
        post_deploy_watch=m.post_deploy_watch,
        contacts=tuple(Contact(**c.dump()) for c in m.contacts),
        metrics=(
            _metrics_spec(metrics, rollback.target if rollback else None, _resource_item(m))
            if metrics
            else None
        ),
        tag_pattern=m.tag_pattern,
        traffic=_traffic(m),
        version=m.version,
        closing_note=m.closing_note,
        criteria_lead_in=rollback.criteria_lead_in if rollback else None,
        channels=tuple(m.channels),
        managers=tuple(m.managers),
        source=source,
    )
