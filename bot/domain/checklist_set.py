"""Several checklists on one deployment: which one a channel runs, and the rules the set must keep.

Each checklist names its service and the channels it serves. A channel listed by one checklist runs that one; a
channel listed by checklists of several services serves each of them, and a start there must name the service; a
channel nobody lists runs the one checklist without channels (the fallback), if there is one. One file alone
without channels is today's deployment: it serves every channel.

Imports only the standard library, ``bot.errors`` and ``bot.domain.checklist``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from bot.domain.checklist import Checklist
from bot.errors import UsageError


@dataclass(frozen=True)
class Member:
    """One checklist of the set, with the YAML it was read from (each release stores that text)."""

    checklist: Checklist
    text: str
    path: str


def set_problems(members: tuple[Member, ...]) -> list[tuple[str, str]]:
    """(path, problem) for each rule of the set that is broken; empty when the set is usable."""
    problems: list[tuple[str, str]] = []
    by_service: dict[str, Member] = {}
    fallback: Member | None = None
    driving: Member | None = None
    for m in members:
        c = m.checklist
        if not c.traffic.is_manual:
            # One deployment follows one traffic object (its watch, its drift, its rollback through it).
            if driving is not None:
                problems.append(
                    (
                        m.path,
                        f"drives traffic ({c.traffic.provider}), and so does {driving.path}: only one checklist "
                        "of a deployment may name a traffic provider other than manual",
                    )
                )
            driving = driving or m
        other = by_service.get(c.service)
        if other is not None:
            shared = [ch for ch in c.channels if ch in other.checklist.channels]
            also = f"; both list {', '.join(shared)}" if shared else ""
            problems.append(
                (
                    m.path,
                    f"service {c.service!r} is also the service of {other.path}{also} (one checklist per service)",
                )
            )
        by_service.setdefault(c.service, m)
        if not c.channels:
            if fallback is not None:
                problems.append(
                    (
                        m.path,
                        f"lists no channels, nor does {fallback.path}: only one checklist may serve every channel "
                        "no other claims; add channels: [C…] to one of them",
                    )
                )
            fallback = fallback or m
    return problems


@dataclass(frozen=True)
class ChecklistSet:
    """The checklists this deployment runs, in the order they were given."""

    members: tuple[Member, ...]

    def __post_init__(self) -> None:
        if not self.members:
            raise ValueError("a checklist set needs at least one checklist")

    def __iter__(self) -> Iterator[Checklist]:
        return (m.checklist for m in self.members)

    def __len__(self) -> int:
        return len(self.members)

    @property
    def default(self) -> Checklist:
        """The fallback checklist, else the first: what a single-checklist caller (the playground) runs."""
        return self.fallback or self.members[0].checklist

    @property
    def fallback(self) -> Checklist | None:
        return next((c for c in self if not c.channels), None)

    @property
    def services(self) -> tuple[str, ...]:
        return tuple(c.service for c in self)

    @property
    def claimed_channels(self) -> tuple[str, ...]:
        """Every channel some checklist lists, in order of first mention."""
        return tuple(dict.fromkeys(ch for c in self for ch in c.channels))

    def text_of(self, service: str) -> str:
        return next(m.text for m in self.members if m.checklist.service == service)

    def by_service(self, service: str) -> Checklist | None:
        return next((c for c in self if c.service == service), None)

    def serving(self, channel: str) -> tuple[Checklist, ...]:
        """The checklists a start in ``channel`` may run: those listing it, else the fallback."""
        listed = tuple(c for c in self if channel in c.channels)
        if listed:
            return listed
        return (self.fallback,) if self.fallback is not None else ()

    def serves(self, checklist: Checklist, channel: str) -> bool:
        return any(c.service == checklist.service for c in self.serving(channel))

    def resolve(self, channel: str, service: str | None, version: str) -> Checklist:
        """The checklist ``/release start [SERVICE] VERSION`` in ``channel`` runs; UsageError says why none."""
        if service is not None:
            chosen = self.by_service(service)
            if chosen is None:
                raise UsageError(
                    "service_unknown", params={"service": service, "services": self._names(self)}
                )
            if not self.serves(chosen, channel):
                here = self._names(self.serving(channel)) or "-"
                if chosen.channels:
                    raise UsageError(
                        "service_elsewhere",
                        params={"service": service, "channels": _channels(chosen.channels), "here": here},
                    )
                raise UsageError("service_fallback_elsewhere", params={"service": service, "here": here})
            return chosen
        serving = self.serving(channel)
        if len(serving) == 1:
            return serving[0]
        if serving:
            names = self._names(serving)
            raise UsageError(
                "service_ambiguous",
                params={"services": names, "example": f"/release start {serving[0].service} {version}"},
            )
        raise UsageError("channel_unclaimed", params={"channels": _channels(self.claimed_channels)})

    @staticmethod
    def _names(checklists: Iterable[Checklist]) -> str:
        return ", ".join(f"`{c.service}` ({c.title})" for c in checklists)


def _channels(ids: tuple[str, ...]) -> str:
    return ", ".join(f"<#{ch}>" for ch in ids)
