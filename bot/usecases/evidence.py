"""Evidence at work: evaluate the items a release has reached, tick what is proven, and let a manager override.

An evaluation reads the sources outside any transaction (GitHub, Prometheus and health URLs take seconds), then
records in one transaction what it found: each item's result, a tick by the bot for what is proven, an untick by
the bot for what the bot or a person had ticked and now fails, one ``evidence_evaluated`` audit event with the
counts, and the redraw of the release's messages. What a manager overrode (a failing item ticked with a reason)
stays ticked.

Only the phases the release has reached are evaluated: a health URL answering before the deploy proves nothing
about the deploy. The first phase is reached at the start; the lifecycle's hook evaluates each phase entered.

Must not import slack_bolt, slack_sdk, httpx or sqlalchemy.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bot.domain.checklist import Checklist, Item
from bot.domain.evidence import (
    OVERRIDE_ACTION,
    EvidencePart,
    EvidenceResult,
    EvidenceSource,
    EvidenceStatus,
    overall,
)
from bot.domain.records import BOT, Actor, AuditEvent
from bot.domain.release import ReleaseStatus, step_index
from bot.domain.roles import Action
from bot.errors import Conflict, InvalidTransition, NotFound, PermissionDenied, UsageError
from bot.i18n import t
from bot.ports import Clock, CodeHost, HealthChecker, Metrics
from bot.usecases.evidence_judge import RepoLook, judge_github, judge_http, judge_metric
from bot.usecases.permissions import denial
from bot.usecases.releases import ReleaseView, Services, UowFactory

log = logging.getLogger(__name__)

OVERRIDE = OVERRIDE_ACTION
EVALUATED = "evidence_evaluated"


@dataclass(frozen=True)
class EvidenceSources:
    """The systems evidence is read from; ``github`` None when no repository is configured."""

    github: CodeHost | None
    metrics: Metrics | None
    health: HealthChecker


@dataclass(frozen=True)
class Evaluation:
    """What one evaluation found and changed."""

    release_id: int
    results: tuple[EvidenceResult, ...]
    ticked: tuple[str, ...]
    unticked: tuple[str, ...]

    def count(self, status: EvidenceStatus) -> int:
        return sum(1 for r in self.results if r.status is status)


def overrides_of(events: list[AuditEvent]) -> dict[str, AuditEvent]:
    """The latest override of each item."""
    return {e.item_key: e for e in events if e.action == OVERRIDE and e.item_key}


def reached_phases(view: ReleaseView) -> tuple[str, ...]:
    """Keys of the flow phases the release has entered, in order."""
    if view.status is not ReleaseStatus.ACTIVE:
        return ()
    current = view.current_step
    if current is None:
        return ()
    last = step_index(view.steps, current.key)
    keys: list[str] = []
    for step in view.steps[: last + 1]:
        if step.phase_key not in keys:
            keys.append(step.phase_key)
    return tuple(keys)


class EvidenceService:
    """Evaluates evidence items and records what they proved."""

    def __init__(
        self,
        *,
        uow: UowFactory,
        clock: Clock,
        services: Services,
        sources: EvidenceSources,
        is_manager: Callable[[str], bool] = lambda _user: True,
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._services = services
        self._sources = sources
        self._is_manager = is_manager
        self._running: set[int] = set()
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self._services.evidence_on

    @property
    def github(self) -> CodeHost | None:
        return self._sources.github

    # --- evaluating -------------------------------------------------------------------------------------

    @contextmanager
    def _exclusive(self, release_id: int) -> Iterator[None]:
        # A re-check clicked while the start's evaluation runs would only ask GitHub the same questions again.
        with self._lock:
            if release_id in self._running:
                raise Conflict("evidence_running")
            self._running.add(release_id)
        try:
            yield
        finally:
            with self._lock:
                self._running.discard(release_id)

    def evaluate(
        self, release_id: int, *, actor: Actor = BOT, phases: tuple[str, ...] | None = None
    ) -> Evaluation:
        """Evaluate the evidence items of ``phases`` (default: every phase reached) and record what they show."""
        if not self.enabled:
            raise InvalidTransition("evidence_off")
        with self._exclusive(release_id):
            view = self._services.view(release_id)
            if view.status.is_terminal:
                raise InvalidTransition("release_ended", params={"status": view.release.status})
            reached = reached_phases(view)
            wanted = [p for p in (phases if phases is not None else reached) if p in reached]
            items = [i for key in wanted for i in view.checklist.phase(key).items if i.evidence]
            results = self._judge(view, items)
            return self._record(release_id, view.checklist, results, actor)

    def _judge(self, view: ReleaseView, items: list[Item]) -> list[EvidenceResult]:
        checklist, version = view.checklist, view.release.version
        look = None
        if self._sources.github is not None:
            look = RepoLook(
                self._sources.github,
                version=version,
                tag=checklist.tag_for(version),
                tag_version=checklist.version_of_tag,
            )
        results = []
        for item in items:
            parts = []
            for spec in item.evidence:
                if spec.source.is_github:
                    if look is None:
                        parts.append(EvidencePart(spec.source.value, EvidenceStatus.UNKNOWN, "ev_github_off"))
                    else:
                        parts.append(judge_github(spec, look))
                elif spec.source is EvidenceSource.PROMETHEUS:
                    metrics = self._sources.metrics
                    assert spec.query is not None
                    parts.append(judge_metric(spec, metrics.query(spec.query) if metrics else None))
                else:
                    assert spec.url is not None
                    parts.append(judge_http(self._sources.health.check(spec.url)))
            results.append(EvidenceResult(item.key, overall(parts), tuple(parts), self._clock.now()))
        return results

    def _record(
        self, release_id: int, checklist: Checklist, results: list[EvidenceResult], actor: Actor
    ) -> Evaluation:
        now = self._clock.now()
        ticked: list[str] = []
        unticked: list[str] = []
        with self._uow() as uow:
            record = uow.releases.get(release_id, for_update=True)
            if ReleaseStatus(record.status).is_terminal:
                raise InvalidTransition("release_ended", params={"status": record.status})
            states = uow.items.states(release_id)
            overridden = overrides_of(uow.audit.for_release(release_id, actions=(OVERRIDE,)))
            before = uow.evidence.for_release(release_id)
            changed = False
            for result in results:
                key = result.item_key
                state = states.get(key)
                checked = bool(state and state.checked)
                details = {"text": checklist.item(key).text, "evidence": _summary(result)}
                if result.status is EvidenceStatus.PROVEN and not checked:
                    uow.items.set(release_id, key, True, BOT, now)
                    uow.audit.append(release_id, "item_checked", BOT, now, item_key=key, details=details)
                    ticked.append(key)
                elif result.status is EvidenceStatus.FAILED and checked and key not in overridden:
                    uow.items.set(release_id, key, False, BOT, now)
                    uow.audit.append(release_id, "item_unchecked", BOT, now, item_key=key, details=details)
                    unticked.append(key)
                old = before.get(key)
                if old is None or old.status is not result.status or old.parts != result.parts:
                    changed = True
                uow.evidence.put(release_id, result)
            uow.audit.append(
                release_id,
                EVALUATED,
                actor,
                now,
                details={
                    status.value: [r.item_key for r in results if r.status is status]
                    for status in EvidenceStatus
                }
                | {"github_requests": self._requests()},
            )
            if changed or ticked or unticked:
                uow.releases.update(release_id, last_activity_at=now)
                uow.messages.bump_release(release_id, ["header", "checklist"])
            uow.commit()
        log.info(
            "evidence of release %s: %d proven, %d failed, %d unknown",
            release_id,
            *(sum(1 for r in results if r.status is s) for s in EvidenceStatus),
        )
        return Evaluation(release_id, tuple(results), tuple(ticked), tuple(unticked))

    def _requests(self) -> int:
        counts = getattr(self._sources.github, "counts", None)
        return int(getattr(counts, "sent", 0))

    # --- overriding -------------------------------------------------------------------------------------

    def override(self, release_id: int, item_key: str, *, actor: Actor, reason: str) -> ReleaseView:
        """Tick an item whose evidence failed, on a manager's word and reason; both are audited."""
        reason = reason.strip()
        if not reason:
            raise UsageError("reason_required")
        now = self._clock.now()
        with self._uow() as uow:
            record = uow.releases.get(release_id, for_update=True)
            if ReleaseStatus(record.status).is_terminal:
                raise InvalidTransition("release_ended", params={"status": record.status})
            checklist = self._services.checklist_of(uow, release_id, record.checklist_name)
            try:
                item = checklist.item(item_key)
            except KeyError:
                raise NotFound("unknown_item") from None
            if not (
                self._is_manager(actor.id) or self._services.permissions.is_manager(actor.id, record.service)
            ):
                self._services.permissions.record_refusal(
                    uow, release_id, actor, Action.OVERRIDE_EVIDENCE, item_key
                )
                uow.commit()
                raise PermissionDenied(denial(Action.OVERRIDE_EVIDENCE))
            result = uow.evidence.get(release_id, item_key)
            evidence = _summary(result) if result is not None else {}
            uow.audit.append(
                release_id,
                OVERRIDE,
                actor,
                now,
                item_key=item_key,
                details={"reason": reason[:1000], "evidence": evidence},
            )
            if uow.items.set(release_id, item_key, True, actor, now):
                uow.audit.append(
                    release_id,
                    "item_checked",
                    actor,
                    now,
                    item_key=item_key,
                    details={"text": item.text, "override": reason[:1000]},
                )
            uow.releases.update(release_id, last_activity_at=now)
            uow.messages.bump_release(release_id, ["header", "checklist"])
            uow.commit()
            return self._services.view_in(uow, release_id)


def _plain_date(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M UTC")


def part_words(
    part: EvidencePart,
    lang: str,
    *,
    date: Callable[[int], str] = _plain_date,
    escape: Callable[[str], str] = lambda text: text,
) -> str:
    """What one source found, in words: its message with parameters (``date`` shows the rate limit's reset)."""
    params: dict[str, Any] = {k: escape(str(v)) for k, v in part.params.items()}
    if "retry_at" in part.params:
        params["retry_at"] = date(int(part.params["retry_at"]))
    text = t(lang, part.key, **params)
    if part.status is EvidenceStatus.UNKNOWN:
        text = f"{t(lang, 'ev_cannot_tell')}: {text}"
    return text


def _summary(result: EvidenceResult) -> dict[str, Any]:
    """The evidence as the audit trail keeps it: the status and what each source said."""
    return {"status": result.status.value, "parts": [p.to_dict() for p in result.parts]}
