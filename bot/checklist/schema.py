"""The checklist file's shape: a model per mapping, the notations each field accepts (durations, percentages,
latencies, keys), and the reading that checks a whole file at once. ``bot.checklist.loading`` loads files with
them; ``checklists/README.md`` documents them.

Reading is hand-written rather than pydantic's: a field is declared on its model as ``name: type = field(check)``,
where ``check`` turns the YAML value into the field's value or raises ``ValueError`` with the words shown to the
person editing the file. Reading a mapping reports every problem in it (unknown, missing and invalid fields, and
the same within each nested mapping and list), each with the path of the field, e.g.
``phases[1].sections[0].items[2].key``. It saves the ~8 MB and ~50 ms that pydantic and the models' validators
cost every process of ``serve`` (bench/RESULTS.md, issue 20 part 3).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable
from datetime import timedelta
from enum import StrEnum
from typing import Any, ClassVar, TypeVar
from urllib.parse import urlsplit

import yaml

from bot.domain.checklist import (
    CriterionKind,
    PhaseKind,
    TickRole,
    parse_duration,
    reads_as_version,
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

Problems = list[tuple[str, str]]  # (path of the field, what is wrong with it)
E = TypeVar("E", bound=StrEnum)
M = TypeVar("M", bound="Model")


# Field notations. Each raises ValueError with the words shown to the person editing the file.


def _got(value: Any) -> str:
    # Containers are left out: their repr can run to pages, and the path already points at them.
    return f", got {value!r}" if isinstance(value, str | int | float) else ""


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


def _integer(low: int, high: int | None = None) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):  # YAML's true is an int to Python
            raise ValueError(f"Input should be a valid integer{_got(value)}")
        if value < low:
            raise ValueError(f"Input should be greater than or equal to {low}{_got(value)}")
        if high is not None and value > high:
            raise ValueError(f"Input should be less than or equal to {high}{_got(value)}")
        return value

    return check


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise ValueError(f"Input should be a valid boolean{_got(value)}")


def _listed(values: list[str]) -> str:
    quoted = [repr(v) for v in values]
    return f"{', '.join(quoted[:-1])} or {quoted[-1]}" if len(quoted) > 1 else quoted[0]


def _one_of(*values: str) -> Callable[[Any], str]:
    choices = _listed(list(values))

    def check(value: Any) -> str:
        if isinstance(value, str) and value in values:
            return value
        raise ValueError(f"Input should be {choices}{_got(value)}")

    return check


def _member(enum: type[E]) -> Callable[[Any], E]:
    """A value of ``enum``, written as its value (``kind: canary``)."""
    by_value = {str(m.value): m for m in enum}
    choices = _listed(list(by_value))

    def check(value: Any) -> E:
        if isinstance(value, str) and value in by_value:
            return by_value[value]
        raise ValueError(f"Input should be {choices}{_got(value)}")

    return check


def _bound(value: Any) -> float:
    """A Prometheus bound: a plain number (queries return unitless values) or a percentage ("80%" is 0.8)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str) and value.strip().endswith("%"):
        return _measure("percentage", {"%": (1, 100)}, '"80%"')(value)
    raise ValueError(f'invalid bound {value!r}: write a number (0.8, 200) or a percentage ("80%")')


_key = _pattern(_KEY, "key", ": use 1 to 64 of a-z 0-9 _ . - (lowercase), starting with a letter")
_title = _text(MAX_TITLE)


def _service(value: Any) -> str:
    """A key that cannot be read as a version: ``/release start SERVICE vX`` takes a word like ``v2`` for one."""
    name = _key(value)
    if reads_as_version(name):
        raise ValueError(
            f"invalid service {name!r}: it reads as a version in `/release start {name} v1.2.3`;"
            f" a service name may not start with v and a digit (e.g. svc-{name})"
        )
    return name


_percent = _measure("percentage", {"%": (1, 100)}, '"1%" or "0.5%" (above 0, at most 100)', top=100)
_latency_ms = _measure("latency", {"ms": (1, 1), "s": (1000, 1)}, "200ms or 1.5s")
_ratio = _measure("ratio", {"x": (1, 1)}, "2x or 1.5x (times the normal value)")
_slack_id = _pattern(_SLACK_ID, "Slack id", ": U… for a user or S… for a user group")
_channel_id = _pattern(_CHANNEL_ID, "channel id", ": C… (G… for an old private channel), from its details")
_version = _pattern(_VERSION, "version", ': write it like "1.0.0" (in quotes)')
_query = _text(4000)


# Reading mappings and lists: each reader appends (path, message) for what is wrong and reads on, so that one
# pass reports every problem of the file; what it returns is only used when nothing was appended.


class _Reader:
    def read(self, value: Any, at: str, problems: Problems) -> Any:
        raise NotImplementedError


class _Leaf(_Reader):
    def __init__(self, check: Callable[[Any], Any]) -> None:
        self.check = check

    def read(self, value: Any, at: str, problems: Problems) -> Any:
        try:
            return self.check(value)
        except ValueError as e:
            problems.append((at, str(e)))
            return None


class _Many(_Reader):
    def __init__(self, each: _Reader, *, not_empty: bool = False, one_as_list: bool = False) -> None:
        self.each, self.not_empty, self.one_as_list = each, not_empty, one_as_list

    def read(self, value: Any, at: str, problems: Problems) -> list[Any] | None:
        if self.one_as_list and isinstance(value, dict):
            value = [value]  # one entry may be written as a mapping; several as a list of them
        if not isinstance(value, list):
            problems.append((at, f"expected a list (a line starting with - for each entry){_got(value)}"))
            return None
        if self.not_empty and not value:
            problems.append((at, "expected at least one entry, got an empty list"))
        return [self.each.read(entry, f"{at}[{n}]", problems) for n, entry in enumerate(value)]


def _reader(check: Callable[[Any], Any] | _Reader | type[Model]) -> _Reader:
    if isinstance(check, _Reader):
        return check
    if isinstance(check, type) and issubclass(check, Model):
        return _Nested(check)
    return _Leaf(check)


def many(
    each: Callable[[Any], Any] | type[Model], *, not_empty: bool = False, one_as_list: bool = False
) -> _Reader:
    """A list whose every entry ``each`` reads; ``one_as_list``: a single mapping is read as a list of one."""
    return _Many(_reader(each), not_empty=not_empty, one_as_list=one_as_list)


_REQUIRED: Any = object()


class Field:
    """One field of a model, declared on it as ``name: type = field(check, default)``."""

    def __init__(self, reader: _Reader, default: Any, factory: Callable[[], Any] | None) -> None:
        self.reader, self.default, self.factory = reader, default, factory

    @property
    def required(self) -> bool:
        return self.default is _REQUIRED and self.factory is None

    def missing(self) -> Any:
        return self.factory() if self.factory is not None else self.default


def field(
    check: Callable[[Any], Any] | _Reader | type[Model],
    default: Any = _REQUIRED,
    *,
    factory: Callable[[], Any] | None = None,
) -> Any:
    """A field read by ``check``; required unless it has a ``default`` (or a ``factory`` making one). A field
    whose default is None may also be written empty (``null``); any other value goes to ``check``."""
    return Field(_reader(check), default, factory)


class Model:
    """A mapping of the file, read into attributes. Fields not declared are refused by name, with the ones that
    are allowed. ``given`` holds the fields the file wrote (with a value or empty)."""

    fields: ClassVar[dict[str, Field]] = {}
    given: frozenset[str]

    def __init_subclass__(cls) -> None:
        super().__init_subclass__()
        cls.fields = {name: f for name, f in vars(cls).items() if isinstance(f, Field)}

    @classmethod
    def read(cls: type[M], value: Any, at: str, problems: Problems) -> M | None:
        if not isinstance(value, dict):
            problems.append((at, f"expected a mapping of fields (key: value lines), got {value!r}"))
            return None
        model = cls.__new__(cls)
        for name, f in cls.fields.items():
            here = f"{at}.{name}" if at else name
            if name not in value:
                if f.required:
                    problems.append((here, "required field is missing"))
                got = f.missing()
            elif value[name] is None and f.default is None:
                got = None
            else:
                got = f.reader.read(value[name], here, problems)
            model.__dict__[name] = got
        allowed = ", ".join(cls.fields)
        for name in value:
            if name not in cls.fields:
                here = f"{at}.{name}" if at else str(name)
                problems.append((here, f"unknown field {name!r} (allowed here: {allowed})"))
        model.__dict__["given"] = frozenset(name for name in value if name in cls.fields)
        return model

    def dump(self) -> dict[str, Any]:
        """Every field and its value, to build the domain's dataclass of the same fields."""
        return {name: self.__dict__[name] for name in self.fields}

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is read from the file and is not changed after")


class _Nested(_Reader):
    def __init__(self, model: type[Model]) -> None:
        self.model = model

    def read(self, value: Any, at: str, problems: Problems) -> Model | None:
        return self.model.read(value, at, problems)


def _k8s(what: str, regex: re.Pattern[str] = _K8S_NAME) -> Callable[[Any], str]:
    return _pattern(regex, what)


class EvidenceModel(Model):
    source: EvidenceSource = field(_member(EvidenceSource))
    checks: list[str] | None = field(many(_text(200)), None)
    path: str | None = field(_text(500), None)
    changed: bool | None = field(_boolean, None)
    contains_version: bool | None = field(_boolean, None)
    environment: str | None = field(_text(255), None)
    url: str | None = field(_http_url, None)
    query: str | None = field(_query, None)
    min: float | None = field(_bound, None)
    max: float | None = field(_bound, None)


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


class ItemModel(Model):
    key: str = field(_key)
    text: str = field(_text(MAX_ITEM_TEXT))
    evidence: list[EvidenceModel] = field(many(EvidenceModel, one_as_list=True), factory=list)


class SectionModel(Model):
    key: str = field(_key)
    title: str = field(_title)
    procedure: str | None = field(_procedure, None)
    items: list[ItemModel] = field(many(ItemModel), factory=list)


class PhaseModel(Model):
    key: str = field(_key)
    title: str = field(_title)
    kind: PhaseKind = field(_member(PhaseKind))
    environment: str | None = field(_key, None)
    tick_role: TickRole = field(_member(TickRole), TickRole.ANYONE)
    sections: list[SectionModel] = field(many(SectionModel), factory=list)


class EnvironmentModel(Model):
    key: str = field(_key)
    title: str = field(_title)
    health_url: str = field(_http_url)


class CanaryStageModel(Model):
    key: str = field(_key)
    traffic: int = field(_integer(1, 100))
    wait: timedelta | None = field(_duration, None)


class GateModel(Model):
    max_error_rate: float = field(_percent)
    max_p95: float = field(_latency_ms)
    # How long a stage without a wait (the 100 % stage) is observed before the gate may judge it.
    min_observation: timedelta = field(_duration, timedelta(minutes=5))


class CriterionModel(Model):
    key: str = field(_key)
    title: str = field(_title)
    kind: CriterionKind = field(_member(CriterionKind))
    threshold: Any = field(lambda value: value, None)  # its notation depends on kind, so the loader parses it
    dry_run: bool = field(_boolean, False)
    on_breach: str = field(_one_of("page", "abort"), "page")


class TargetModel(Model):
    deployment: str = field(_k8s("Kubernetes deployment name"))
    namespace: str = field(_k8s("Kubernetes namespace", _K8S_NAMESPACE))


class TrafficModel(Model):
    provider: TrafficProviderKind = field(_member(TrafficProviderKind), TrafficProviderKind.MANUAL)
    namespace: str | None = field(_k8s("Kubernetes namespace", _K8S_NAMESPACE), None)
    name: str | None = field(_k8s("Kubernetes object name"), None)
    stable_backend: str | None = field(_k8s("Service name"), None)
    canary_backend: str | None = field(_k8s("Service name"), None)
    rule: int = field(_integer(0, 63), 0)


class RollbackModel(Model):
    target: TargetModel = field(TargetModel)
    criteria_lead_in: str | None = field(_title, None)
    procedure: str | None = field(_procedure, None)
    criteria: list[CriterionModel] = field(many(CriterionModel), factory=list)


class MetricsModel(Model):
    error_rate_query: str = field(_query)
    p95_query: str = field(_query)
    sample_interval: timedelta = field(_duration, timedelta(seconds=15))
    consecutive_breaches: int = field(_integer(1), 2)
    no_data_warning_after: int = field(_integer(1), 3)
    baseline_window: timedelta = field(_duration, timedelta(minutes=30))
    baseline_p95: float | None = field(_latency_ms, None)
    cpu_query: str | None = field(_query, None)
    memory_query: str | None = field(_query, None)
    resource_item: str | None = field(_key, None)
    resource_max: float = field(_percent, 0.8)


class ContactModel(Model):
    key: str = field(_key)
    role: str = field(_title)
    via: str = field(_one_of("pagerduty", "slack"))
    handle: str | None = field(_title, None)
    slack_id: str | None = field(_slack_id, None)


class ChecklistModel(Model):
    name: str = field(_key)
    title: str = field(_title)
    service: str = field(_service)
    # The channels whose `/release start` runs this checklist; none: every channel no other checklist claims.
    channels: list[str] = field(many(_channel_id), factory=list)
    # Who may start, advance, abort and roll back this service's releases, besides RELEASE_MANAGERS.
    managers: list[str] = field(many(_slack_id), factory=list)
    phases: list[PhaseModel] = field(many(PhaseModel, not_empty=True))
    environments: list[EnvironmentModel] = field(many(EnvironmentModel), factory=list)
    canary: list[CanaryStageModel] = field(many(CanaryStageModel), factory=list)
    gate: GateModel | None = field(GateModel, None)
    post_deploy_watch: timedelta | None = field(_duration, None)
    rollback: RollbackModel | None = field(RollbackModel, None)
    traffic: TrafficModel | None = field(TrafficModel, None)
    metrics: MetricsModel | None = field(MetricsModel, None)
    contacts: list[ContactModel] = field(many(ContactModel), factory=list)
    tag_pattern: str = field(_text(100), "v*")
    version: str | None = field(_version, None)  # the document's own version, recorded with each release
    closing_note: str | None = field(_title, None)


def read_checklist_model(data: Any) -> tuple[ChecklistModel | None, Problems]:
    """The file's top-level mapping read into models, and every problem found on the way (none: it is valid)."""
    problems: Problems = []
    return ChecklistModel.read(data, "", problems), problems


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
