"""The metric watch: sample every active release in a canary stage or the post-deploy watch, judge its
rollback criteria, keep the evidence, and act on what the judge decides (reference/anchors.md §4).

One leader-only job calls ``tick``; its writes are fenced by the leadership epoch (``SqlUnitOfWork.leader_only``), so a
deposed leader's late sample is refused whole. Per release and sample: one query per metric, one judgement per metric
criterion, the samples and the criteria's states stored, and the decisions acted on in the same transaction
(an incident and its PagerDuty trigger are queued with the state that says "fired", so a restart neither
loses nor repeats a page). Slack is told after the commit.

Every release due in a tick is sampled in one batch: Prometheus is asked first (no transaction open), then one
fenced transaction reads and locks what the judges need for all of them (a handful of statements, however many
releases), judges in plain Python and writes every release's samples, states, verdicts and message bumps in a few
more. A release whose judging fails is left out of the batch (and one that breaks the batch's writes has the batch
written release by release), so one bad release never stops the others. Views are loaded only for releases with
news for Slack (a note, a redraw, an incident).

Must not import slack_bolt, slack_sdk, httpx or kubernetes.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from bot.db.uow import SqlUnitOfWork
from bot.domain.analysis import (
    Action,
    CriterionWatch,
    Decision,
    Sample,
    assess,
    baseline_from,
    explain,
    gate_status,
)
from bot.domain.checklist import Checklist, Criterion, CriterionKind, MetricsSpec, format_duration
from bot.domain.incident import SampleRecord, WatchedRelease, WatchRef
from bot.domain.records import BOT
from bot.domain.release import ReleaseStatus, Step, StepKind, plan_steps
from bot.domain.window import WindowReport, WindowSample, breached_samples
from bot.errors import ChatError, GateNotMet, MetricsError, NotFound, NotLeader
from bot.i18n import t
from bot.i18n.units import human_duration
from bot.observability import JUDGE_VERDICTS
from bot.ports import Clock, Metrics, Reading
from bot.usecases.gate_window import GateWindow, WindowFigures, record_line, window_line, window_record
from bot.usecases.incident_words import fmt_ms, fmt_rate, no_data_words, why_details
from bot.usecases.incidents import Fired, IncidentDesk
from bot.usecases.releases import ReleaseView, Services, UowFactory
from bot.usecases.watch_queries import freshness_query, rate_window, sample_due, widen

log = logging.getLogger(__name__)
ERROR_RATE, P95 = "error_rate", "p95"
WATCHED_STEPS = (StepKind.CANARY, StepKind.WATCH)
WATCH_CLOSED = "watch_window_closed"
CPU, MEMORY = "cpu", "memory"


def _percent(value: float | None) -> str:
    return "none" if value is None else f"{value * 100:.0f}"


def needs_tick(ref: WatchRef, step_kind: StepKind | None) -> bool:
    """Whether ``MetricWatch.tick_release`` would do anything for a release: reconcile it or sample it.

    An ended release among the refs is one the watch has not closed yet (``ReleaseWatches.refs``)."""
    if ref.status != ReleaseStatus.ACTIVE.value:
        return True
    return ref.announced_step != ref.step or step_kind in WATCHED_STEPS


def metric_of(criterion: Criterion) -> str:
    return ERROR_RATE if criterion.kind is CriterionKind.ERROR_RATE else P95


# How often the header's gate figures are refreshed when nothing else about them changed (see update_gate_window).
HEADER_FIGURES_EVERY = timedelta(minutes=5)
# chat.update is Tier 3 for the whole workspace and the bot paces it at 45 a minute (bot.slack.gateway.UpdatePacer).
# Refreshing figures that only drifted may take a third of that; the rest stays free for news (a verdict, an
# advance, a tick) so a backlog of refreshes never delays them. 200 headers then refresh about every 13 minutes.
DRIFT_REDRAWS_PER_MINUTE = 15.0
DRIFT_BURST = 3.0  # a small burst: what it lets through at once is what news may find queued ahead of it


class DriftBudget:
    """A token bucket on the injected clock: how many drifting-figure redraws the watch may still spend."""

    def __init__(
        self, clock: Clock, per_minute: float = DRIFT_REDRAWS_PER_MINUTE, burst: float = DRIFT_BURST
    ) -> None:
        self._clock = clock
        self._rate = per_minute / 60.0
        self._burst = max(min(burst, per_minute), 1.0)
        self._tokens = self._burst
        self._at: datetime | None = None

    def take(self) -> bool:
        now = self._clock.now()
        if self._at is not None:
            self._tokens = min(self._burst, self._tokens + (now - self._at).total_seconds() * self._rate)
        self._at = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True


def _header_news(old: dict[str, Any], new: dict[str, Any]) -> str | None:
    """Whether the header should show ``new`` in place of ``old``: "news" at once, "drift" when a refresh is due."""
    if record_line(old, "en") == record_line(new, "en"):
        return "news" if old.get("step") != new.get("step") else None
    if any(old.get(key) != new.get(key) for key in ("step", "verdict", "breached")):
        return "news"
    try:
        shown_at = datetime.fromisoformat(str(old.get("end")))
        taken_at = datetime.fromisoformat(str(new.get("end")))
    except ValueError:
        return "news"
    return "drift" if taken_at - shown_at >= HEADER_FIGURES_EVERY else None


def header_window(
    old: dict[str, Any] | None, new: dict[str, Any], may_drift: Callable[[], bool] = lambda: True
) -> dict[str, Any] | None:
    """The gate figures the header should show after a sample: ``new`` when it is news, else None (leave it).

    News is a new stage, a verdict that flips, or one more sample over a line: redrawn at once. Figures that
    merely drift are refreshed every ``HEADER_FIGURES_EVERY`` at most, and only when ``may_drift`` (the watch's
    ``DriftBudget``) gives a token: chat.update is Tier 3 for the whole workspace (~50 a minute), and 200 headers
    redrawn every sample would be 800 a minute, so none would ever show what the database holds; 200 refreshes due
    at once would still queue ahead of real news for four minutes. The lifecycle judges the window afresh when
    someone advances; this record is what the header shows, and the header shows when it was taken."""
    kind = "news" if old is None else _header_news(old, new)
    if kind is None or (kind == "drift" and not may_drift()):
        return None
    return new


def window_of(criterion: Criterion, spec: MetricsSpec) -> timedelta:
    query = spec.error_rate_query if metric_of(criterion) == ERROR_RATE else spec.p95_query
    return rate_window(query, spec.sample_interval)


def _sample(reading: Reading, at: datetime) -> Sample:
    return Sample(at, reading.value, reading.no_data_reason, reading.is_error)


@dataclass
class _Outcome:
    criterion: Criterion
    watch: CriterionWatch
    decision: Decision


def _at_full_traffic(step: Step) -> bool:
    return step.kind is StepKind.WATCH or (
        step.kind is StepKind.CANARY and step.stage is not None and step.stage.traffic_percent >= 100
    )


@dataclass(frozen=True)
class _Due:
    """A release to sample: where it is, as the tick (or its view) read it."""

    release_id: int
    checklist: Checklist
    spec: MetricsSpec
    step: Step
    step_started_at: datetime
    scrape: float | None = None  # the newest scrape this sample sees, remembered once it is taken


@dataclass(frozen=True)
class _Readings:
    """What Prometheus said for one release's sample, asked before any transaction opens."""

    due: _Due
    samples: dict[str, Sample]
    window: WindowFigures | None  # the gate over the canary stage so far
    resources: tuple[tuple[str, Reading], ...]  # CPU and memory at 100 %


@dataclass
class _Judged:
    """One release's sample judged: what the batch writes for it, and what Slack and PagerDuty hear after."""

    due: _Due
    baseline: float | None
    outcomes: list[_Outcome] = field(default_factory=list)
    states: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    samples: list[SampleRecord] = field(default_factory=list)
    audits: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    verdicts: list[tuple[str, str]] = field(default_factory=list)  # (criterion, verdict) for JUDGE_VERDICTS
    fires: list[tuple[Criterion, dict[str, Any]]] = field(default_factory=list)
    fired: list[Fired] = field(default_factory=list)
    breached: list[tuple[Criterion, dict[str, Any]]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    header: dict[str, Any] | None = None  # the gate figures the header shows from now, when they are news
    resources_changed: bool = False


class MetricWatch:
    """Samples releases and acts on the judge's decisions."""

    def __init__(
        self,
        *,
        uow: UowFactory,
        clock: Clock,
        services: Services,
        metrics: Metrics | None,
        desk: IncidentDesk,
        lang: str,
        drift_per_minute: float = DRIFT_REDRAWS_PER_MINUTE,
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._services = services
        self._metrics = metrics
        self._desk = desk
        self._lang = lang
        # Called after commit with (release id, criterion, details) for each criterion that opened an incident
        # (the traffic provider aborts the canary for criteria with ``on_breach: abort``).
        self.on_fired: list[Callable[[int, Criterion, dict[str, Any]], None]] = []
        self._window = GateWindow(uow=uow, clock=clock, metrics=metrics)
        self._drift = DriftBudget(clock, drift_per_minute)
        self._closed: set[int] = set()  # releases whose post-deploy watch is over and reported
        # The newest scrape each release's last sample saw. In memory: after a restart the first sample is
        # spaced by ``last_sample_at`` alone, then alignment resumes.
        self._scrapes: dict[int, float] = {}
        self._steps: dict[int, tuple[Step, ...]] = {}

    def tick(self) -> None:
        """One pass over every release the watch has work on: a step to announce, an end to close, a sample due.

        The rest are skipped on one shared read: a tick's cost follows the releases in a canary or the watch,
        not every release left open (the bench keeps a thousand open, each once cost ~12 queries a tick).
        Releases whose only work is their sample are sampled together (``_sample_batch``); the others (a step to
        announce, a baseline to take, an end to report or close) one by one, as before."""
        with self._uow() as uow:
            listed = []
            refs = list(uow.watch.releases.refs())
            self._forget_all_but({ref.release_id for ref in refs})
            for ref in refs:
                try:
                    checklist = self._services.checklist_of(uow, ref.release_id, ref.checklist_name)
                    step = self._step_of(ref, checklist)
                except Exception as e:  # its snapshot no longer parses: the others are still watched
                    log.warning("metric watch skips release %s: its checklist cannot be read (%s)", ref.release_id, e)
                    continue
                kind = step.kind if step is not None else None
                if needs_tick(ref, kind):
                    listed.append((ref, step, checklist))
        # The watch polls every second for a fresh scrape; a canary between two samples is skipped here on the
        # shared read instead of loading it (reconcile, view) to find that out: that cost a core at 100 releases.
        scrapes: dict[str, float | None] = {}
        one_by_one: list[tuple[int, bool]] = []
        batch: list[_Due] = []
        for ref, step, checklist in listed:
            kind = step.kind if step is not None else None
            if self._between_samples(ref, kind, checklist, scrapes):
                continue
            batched, due = self._in_batch(ref, step, checklist, scrapes)
            if not batched:
                moved = ref.status != ReleaseStatus.ACTIVE.value or ref.announced_step != ref.step
                one_by_one.append((ref.release_id, moved))
            elif due is not None:
                batch.append(due)
        for release_id, moved in one_by_one:
            try:
                self.tick_release(release_id, reconcile=moved)
            except NotLeader as e:
                log.warning("metric watch left to the next leader: %s", e)
                return
            except NotFound:
                continue  # dropped since this tick listed it: nothing left to watch
            except Exception:
                log.exception("metric watch failed for release %s", release_id)
        try:
            self._sample_batch(batch)
        except NotLeader as e:
            log.warning("metric watch left to the next leader: %s", e)
            return
        self._desk.ping_pending()

    def _forget_all_but(self, watched: set[int]) -> None:
        """Drop what is kept of releases the watch no longer lists (ended and done with): kept for ever, it grew the
        leader's work process by every release it had watched. Looked at once the kept outnumber the watched."""
        if len(self._steps) + len(self._scrapes) + len(self._closed) <= 2 * len(watched) + 64:
            return
        for kept in (self._steps, self._scrapes):
            for rid in [r for r in kept if r not in watched]:
                del kept[rid]
        self._closed &= watched

    def kept(self) -> int:
        """Releases this watch keeps something of in memory."""
        return len(self._steps.keys() | self._scrapes.keys() | self._closed)

    def _in_batch(
        self, ref: WatchRef, step: Step | None, checklist: Checklist, scrapes: dict[str, float | None]
    ) -> tuple[bool, _Due | None]:
        """Whether the release's only work this tick is its sample, so that it is taken in the batch; and that
        sample when it is due (None: not yet). Every other case takes ``tick_release``'s full path."""
        spec = checklist.metrics
        if (
            self._metrics is None
            or spec is None
            or step is None
            or step.kind not in WATCHED_STEPS
            or ref.status != ReleaseStatus.ACTIVE.value
            or ref.announced_step != ref.step
            or ref.baseline_status is None
            or ref.step_started_at is None
        ):
            return False, None
        length = checklist.post_deploy_watch
        if step.kind is StepKind.WATCH and length is not None and self._clock.now() >= ref.step_started_at + length:
            return False, None  # the post-deploy watch is over: its summary is reported once, on the full path
        if spec.error_rate_query not in scrapes:
            try:
                scrapes[spec.error_rate_query] = self._newest_scrape(spec)
            except Exception:
                return False, None  # the full path meets the same failure and handles it per release
        scrape = scrapes[spec.error_rate_query]
        if not sample_due(self._clock.now(), ref.last_sample_at, scrape, self._scrapes.get(ref.release_id), spec):
            return True, None
        return True, _Due(ref.release_id, checklist, spec, step, ref.step_started_at, scrape)

    def _between_samples(
        self, ref: WatchRef, kind: StepKind | None, checklist: Checklist, scrapes: dict[str, float | None]
    ) -> bool:
        """Whether ``tick_release`` would do nothing for this release now: an active canary the watch has
        announced, with its baseline, whose next sample is not due (post-deploy watches take the full path: their
        end is reported on time)."""
        if (
            self._metrics is None
            or kind is not StepKind.CANARY
            or ref.status != ReleaseStatus.ACTIVE.value
            or ref.announced_step != ref.step
            or ref.baseline_status is None
            or ref.last_sample_at is None
        ):
            return False
        spec = checklist.metrics
        if spec is None:
            return False
        if spec.error_rate_query not in scrapes:
            try:
                scrapes[spec.error_rate_query] = self._newest_scrape(spec)
            except Exception:
                return False  # the full path meets the same failure and handles it per release
        scrape = scrapes[spec.error_rate_query]
        now = self._clock.now()
        return not sample_due(now, ref.last_sample_at, scrape, self._scrapes.get(ref.release_id), spec)

    def _step_of(self, ref: WatchRef, checklist: Checklist) -> Step | None:
        steps = self._steps.get(ref.release_id)
        if steps is None:  # a release's checklist never changes: its plan is made once per process
            steps = self._steps[ref.release_id] = plan_steps(checklist)
        return next((s for s in steps if s.key == ref.step), None)

    def tick_release(self, release_id: int, *, reconcile: bool = True) -> None:
        """``reconcile``: the release ended or moved since the watch last announced it (the shared read says so);
        otherwise reconciling would load it only to find nothing to tell PagerDuty."""
        if reconcile:
            self._desk.reconcile(release_id)
        view = self._services.view(release_id)
        step = view.current_step
        spec = view.checklist.metrics
        if view.status.is_terminal or step is None or step.kind not in WATCHED_STEPS or spec is None:
            return
        with self._uow() as uow:
            watch = uow.watch.releases.get_or_create(release_id, self._clock.now())
            baseline_status, last = watch.baseline_status, watch.last_sample_at
        if baseline_status is None:
            self.capture_baseline(view, spec)
            view = self._services.view(release_id)
        if self._metrics is None:
            return
        if self._watch_over(view, spec):
            return
        scrape = self._newest_scrape(spec)
        if not sample_due(self._clock.now(), last, scrape, self._scrapes.get(release_id), spec):
            return
        self.sample(view, spec, scrape=scrape)

    # --- the end of the post-deploy watch ----------------------------------------------------------------

    def _watch_over(self, view: ReleaseView, spec: MetricsSpec) -> bool:
        """Whether the post-deploy watch's time is up; the first time, report its summary in the thread.

        The watch and its paging cover exactly ``post_deploy_watch`` (seed 4.2 "모니터링 (30분)"): no sample is
        taken after it, so nothing pages after it either; incidents already open stay open."""
        step = view.current_step
        length = view.checklist.post_deploy_watch
        if step is None or step.kind is not StepKind.WATCH or length is None:
            return False
        start = view.release.step_started_at
        end = start + length
        if self._clock.now() < end:
            return False
        rid = view.release.id
        if rid in self._closed:
            return True
        with self._uow() as uow:
            done = any(
                e.action == WATCH_CLOSED and e.details.get("step") == step.key
                for e in uow.audit.for_release(rid)
            )
            incidents = [
                i for i in uow.watch.incidents.for_release(rid) if start <= i.created_at <= end
            ]
        if not done:
            gate = view.checklist.gate
            report = self._window.judge(rid, gate, spec, start, end) if gate is not None else None
            details: dict[str, Any] = {
                "step": step.key,
                "from": start.isoformat(),
                "to": end.isoformat(),
                "incidents": len(incidents),
            }
            if report is not None:
                details |= {
                    "verdict": report.verdict.value,
                    "error_rate": report.report.error_rate.value,
                    "p95_s": report.report.p95.value,
                    "samples": report.samples,
                    "breached": report.breached,
                }
            with self._uow() as uow:
                uow.leader_only()
                uow.audit.append(rid, WATCH_CLOSED, BOT, self._clock.now(), details=details)
                uow.commit()
            self._note(view, self._summary(length, report, len(incidents)))
        self._closed.add(rid)
        return True

    def _summary(self, length: timedelta, report: WindowReport | None, incidents: int) -> str:
        lang = self._lang
        minutes = str(round(length.total_seconds() / 60)) if length >= timedelta(minutes=1) else None
        span = (
            t(lang, "span_minutes", minutes=minutes)
            if minutes
            else t(lang, "span_seconds", seconds=int(length.total_seconds()))
        )
        lines = [t(lang, "watch_over", span=span)]
        if report is not None:
            lines.append(window_line(report, lang))
        lines.append(t(lang, "watch_over_incidents", count=incidents))
        return "\n".join(lines)

    def _newest_scrape(self, spec: MetricsSpec) -> float | None:
        """When Prometheus last scraped the watched series (epoch seconds), or None when it cannot say."""
        assert self._metrics is not None
        query = freshness_query(spec.error_rate_query)
        if query is None:
            return None
        reading = self._metrics.query(query)
        value = reading.value
        if reading.is_error or value is None or not math.isfinite(value):
            return None
        return value

    # --- the baseline ---------------------------------------------------------------------------------

    def _canary_started_at(self, view: ReleaseView) -> datetime:
        first = next(s.key for s in view.steps if s.kind is StepKind.CANARY)
        if view.release.step == first:
            return view.release.step_started_at
        with self._uow() as uow:
            for event in uow.audit.for_release(view.release.id):
                if event.action in ("step_advanced", "gate_overridden") and event.details.get("to") == first:
                    return event.at
        return view.release.step_started_at

    def capture_baseline(self, view: ReleaseView, spec: MetricsSpec) -> float | None:
        """Record "normal latency" for the release: fixed in the file, or p95 over the window before canary."""
        reason: str | None = None
        value: float | None = None
        window = format_duration(spec.baseline_window)
        if spec.baseline_p95_ms is not None:
            value, status, source = (
                spec.baseline_p95_ms / 1000,
                "fixed",
                t(self._lang, "baseline_source_fixed"),
            )
        else:
            status, source = "measured", t(
                self._lang, "baseline_source_measured", window=human_duration(spec.baseline_window, self._lang)
            )
            if self._metrics is None:
                reason = "no metrics source configured"
            else:
                reading = self._metrics.query(
                    widen(spec.p95_query, spec.baseline_window), at=self._canary_started_at(view)
                )
                try:
                    value = baseline_from(reading)
                except (GateNotMet, MetricsError):
                    reason = reading.no_data_reason or "zero: nothing to compare against"
            if value is None:
                status = "missing"
        now = self._clock.now()
        rid = view.release.id
        with self._uow() as uow:
            uow.leader_only()
            uow.releases.update(rid, baseline_p95_s=value)
            uow.watch.releases.update(rid, baseline_status=status)
            uow.audit.append(
                rid,
                "baseline_recorded" if value is not None else "baseline_missing",
                BOT,
                now,
                details={"p95_s": value, "source": status, "window": window, "reason": reason},
            )
            uow.commit()
        latency = next((c for c in view.checklist.criteria if c.kind is CriterionKind.LATENCY_RATIO), None)
        if value is not None:
            text = t(
                self._lang,
                "baseline_recorded",
                value=fmt_ms(value, self._lang),
                source=source,
                threshold=f"{latency.threshold:g}" if latency and latency.threshold else "2",
            )
        else:
            text = t(self._lang, "baseline_missing", reason=no_data_words(reason, self._lang))
        self._note(view, text)
        return value

    # --- sampling ---------------------------------------------------------------------------------------

    def sample(self, view: ReleaseView, spec: MetricsSpec, *, scrape: float | None = None) -> list[Decision]:
        """Query each metric once, judge every metric criterion, store it all and act on the decisions: the batch
        of one release, whose failures are raised rather than logged."""
        step = view.current_step
        if step is None:
            return []
        due = _Due(view.release.id, view.checklist, spec, step, view.release.step_started_at, scrape)
        judged = self._sample_batch([due], alone=True)
        return [o.decision for o in judged[0].outcomes] if judged else []

    def _sample_batch(self, dues: Sequence[_Due], *, alone: bool = False) -> list[_Judged]:
        """Sample releases together: Prometheus first, then one fenced transaction for them all, then Slack.

        ``alone``: one release's sample whose failure is the caller's; otherwise a release that fails is logged
        and left out, and ``NotLeader`` (the whole batch refused) is raised."""
        if not dues or self._metrics is None:
            return []
        now = self._clock.now()
        asked: list[_Readings] = []
        for due in dues:
            try:
                asked.append(self._ask(due))
            except Exception:
                if alone:
                    raise
                log.exception("metric watch failed for release %s", due.release_id)
        try:
            judged = self._write(asked, now, alone=alone)
        except NotLeader:
            raise
        except Exception:
            if alone:
                raise
            if len(asked) == 1:
                log.exception("metric watch failed for release %s", asked[0].due.release_id)
                return []
            # Something in the batch's writes broke the transaction (a bad row): nothing of it was written and
            # nobody was told, so write the same readings release by release, each on its own.
            log.exception("metric watch: the sample of %d releases failed as a whole; writing each alone", len(asked))
            judged = []
            try:
                for one in asked:
                    try:
                        judged += self._write([one], now, alone=False)
                    except NotLeader:
                        raise
                    except Exception:
                        log.exception("metric watch failed for release %s", one.due.release_id)
            finally:
                self._tell(judged)  # what committed before a NotLeader is told all the same
            return judged
        self._tell(judged)
        return judged

    def _ask(self, due: _Due) -> _Readings:
        """The release's readings, in the order it always asked them: its metrics, the stage's gate figures (a
        canary with a gate), CPU and memory (at 100 %)."""
        assert self._metrics is not None
        spec, at = due.spec, self._clock.now()
        samples = {
            ERROR_RATE: _sample(self._metrics.query(spec.error_rate_query), at),
            P95: _sample(self._metrics.query(spec.p95_query), at),
        }
        window = None
        if due.step.kind is StepKind.CANARY and due.checklist.gate is not None:
            window = self._window.figures(spec, due.step_started_at)
        resources: tuple[tuple[str, Reading], ...] = ()
        if _at_full_traffic(due.step):
            resources = tuple(
                (metric, self._metrics.query(query))
                for metric, query in ((CPU, spec.cpu_query), (MEMORY, spec.memory_query))
                if query
            )
        return _Readings(due, samples, window, resources)

    def _write(self, asked: Sequence[_Readings], now: datetime, *, alone: bool) -> list[_Judged]:
        """One transaction for the batch: one fence, a few reads for every release at once, the judges in Python,
        and a few writes for every release at once. The incidents the judges fire are opened in it, each
        release's in a savepoint of its own."""
        ids = [r.due.release_id for r in asked]
        windows = [r.due.release_id for r in asked if r.window is not None]
        at_full = [r.due.release_id for r in asked if r.resources]
        judged: list[_Judged] = []
        with self._uow() as uow:
            # The verdicts, the incidents they open and the pages they queue: accepted only from the leader.
            uow.leader_only()
            locked = uow.watch.releases.lock_watched(ids)
            states = uow.watch.states.load_many(ids, for_update=True)
            shown = uow.watch.releases.gate_windows(windows)
            stored = self._stage_moments(uow, [r for r in asked if r.window is not None], now)
            latest = uow.watch.samples.latest_of(at_full, (CPU, MEMORY))
            for r in asked:
                rid = r.due.release_id
                release = locked.get(rid)
                if release is None:
                    if alone:
                        raise NotFound(f"release {rid} no longer exists")
                    continue  # dropped since the tick listed it
                if (
                    release.status != ReleaseStatus.ACTIVE.value
                    or release.step != r.due.step.key
                    or release.step_started_at != r.due.step_started_at
                ):
                    continue  # it moved since: the next tick announces it first
                length = r.due.checklist.post_deploy_watch
                if r.due.step.kind is StepKind.WATCH and length is not None and now >= release.step_started_at + length:
                    continue  # the watch is over: the full path reports it, and nothing is sampled after it
                try:
                    one = self._judge(
                        r, release, states.get(rid, {}), shown.get(rid), stored.get(rid, (0, 0)), latest, now
                    )
                    if one.fires:
                        with uow.savepoint():
                            self._open(uow, one)
                except Exception:
                    if alone:
                        raise
                    log.exception("metric watch failed for release %s", rid)
                    continue
                judged.append(one)
            self._store(uow, judged, now, {(rid, key) for rid, found in states.items() for key in found})
            uow.commit()
        return judged

    @staticmethod
    def _stage_moments(
        uow: SqlUnitOfWork, asked: Sequence[_Readings], until: datetime
    ) -> dict[int, tuple[int, int]]:
        """(moments sampled, moments over the gate's lines) of each release's stage so far, counted by the
        database: one statement per distinct gate (per checklist, not per release)."""
        gates: dict[tuple[float, float], list[int]] = {}
        for r in asked:
            gate = r.due.checklist.gate
            if gate is not None:
                gates.setdefault((gate.max_error_rate, gate.max_p95_ms / 1000), []).append(r.due.release_id)
        found: dict[int, tuple[int, int]] = {}
        for (max_error_rate, max_p95_s), ids in gates.items():
            found |= uow.watch.samples.stage_moments(ids, until, max_error_rate, max_p95_s)
        return found

    def _judge(
        self,
        asked: _Readings,
        release: WatchedRelease,
        stored: dict[str, dict[str, Any]],
        shown: dict[str, Any] | None,
        stage: tuple[int, int],
        latest: dict[tuple[int, str], float | None],
        now: datetime,
    ) -> _Judged:
        """One release's sample judged in plain Python: its criteria, its samples, its header's gate figures."""
        due, spec, rid = asked.due, asked.due.spec, asked.due.release_id
        baseline = release.baseline_p95_s
        one = _Judged(due, baseline)
        verdicts: dict[str, tuple[str, str | None]] = {}
        for criterion in due.checklist.criteria:
            if criterion.kind is CriterionKind.MANUAL:
                continue
            state = stored.get(criterion.key)
            watch = CriterionWatch.from_dict(state) if state else CriterionWatch.for_criterion(criterion, spec)
            sample = asked.samples[metric_of(criterion)]
            judgement = assess(criterion, sample, baseline_p95_s=baseline)
            decision = watch.observe(sample, judgement.verdict, reason=judgement.reason)
            one.verdicts.append((criterion.key, judgement.verdict.value))
            one.states.append((criterion.key, watch.to_dict()))
            verdicts.setdefault(metric_of(criterion), (judgement.verdict.value, judgement.reason))
            one.outcomes.append(_Outcome(criterion, watch, decision))
            if decision.action is Action.FIRE and not decision.dry_run:
                length = window_of(criterion, spec)
                details = why_details(
                    explain(criterion, watch, baseline_p95_s=baseline, window=length),
                    stage=release.step,
                    window=format_duration(length),
                )
                one.fires.append((criterion, details))
            elif decision.action is not Action.NONE:
                action = {Action.FIRE: "criterion_dry_run", Action.BLIND: "watch_blind"}.get(
                    decision.action, "watch_data_back"
                )
                one.audits.append(
                    (action, {"criterion": criterion.key, "reason": decision.reason, "value": sample.value})
                )
        for metric, sample in asked.samples.items():
            verdict, reason = verdicts.get(metric, ("pass" if sample.value is not None else "no_data", None))
            one.samples.append(
                SampleRecord(rid, now, metric, sample.value, verdict, reason or sample.no_data_reason)
            )
        one.notes = self._thread_news(spec, one.outcomes, baseline)
        gate = due.checklist.gate
        if asked.window is not None and gate is not None:
            # The stage's samples so far, this one included (it is written with the rest of the batch).
            moments, breached = breached_samples(
                gate, [WindowSample(now, metric, s.value) for metric, s in asked.samples.items()]
            )
            report = asked.window.judge_counted(gate, stage[0] + moments, stage[1] + breached)
            one.header = header_window(shown, window_record(report, due.step.key), self._drift.take)
        for metric, reading in asked.resources:
            # At 100 % traffic and in the post-deploy watch: CPU and memory against their limits (seed 3.2 "전체
            # 메트릭"), stored as samples and shown beside the 3.3 item's box. Redrawn only when a whole percent moves.
            value = reading.value if reading.value is not None and math.isfinite(reading.value) else None
            verdict = "no_data" if value is None else ("breach" if value >= spec.resource_max else "pass")
            shown_before = _percent(latest[(rid, metric)]) if (rid, metric) in latest else "never"
            one.resources_changed |= shown_before != _percent(value)
            one.samples.append(SampleRecord(rid, now, metric, value, verdict, reading.no_data_reason))
        return one

    def _open(self, uow: SqlUnitOfWork, one: _Judged) -> None:
        """Open the incidents one release's judges fired (each criterion's once: ``IncidentDesk.open_in``)."""
        view = self._services.view_in(uow, one.due.release_id)
        for criterion, details in one.fires:
            opened = self._desk.open_in(
                uow, view, criterion=criterion.key, title=criterion.title, details=details, actor=BOT
            )
            if opened is not None:
                one.fired.append(opened)
                one.breached.append((criterion, details))

    @staticmethod
    def _store(
        uow: SqlUnitOfWork,
        judged: Sequence[_Judged],
        now: datetime,
        existing: set[tuple[int, str]],
    ) -> None:
        """Every judged release's writes, a statement or two for them all."""
        uow.watch.states.save_sampled(
            ((j.due.release_id, key, state) for j in judged for key, state in j.states), now, existing
        )
        uow.watch.samples.add_many([s for j in judged for s in j.samples])
        for j in judged:
            for action, details in j.audits:
                uow.audit.append(j.due.release_id, action, BOT, now, details=details)
        uow.watch.releases.sampled([j.due.release_id for j in judged], now)
        headers = {j.due.release_id: j.header for j in judged if j.header is not None}
        uow.watch.releases.show_gate_windows(headers)
        uow.messages.bump_releases(list(headers), ["header"])
        uow.messages.bump_releases([j.due.release_id for j in judged if j.resources_changed], ["checklist"])

    def _tell(self, judged: Sequence[_Judged]) -> None:
        """After the commit: PagerDuty's outbox woken, incidents pinged, breach hooks, thread notes and redraws.
        A view is loaded only for a release with news for Slack."""
        for j in judged:
            for criterion_key, verdict in j.verdicts:
                JUDGE_VERDICTS.labels(criterion=criterion_key, verdict=verdict).inc()
            if j.due.scrape is not None:
                self._scrapes[j.due.release_id] = j.due.scrape
        fired = [item for j in judged for item in j.fired]
        if fired:
            self._desk.kick()
        # The hooks first (the traffic provider's abort on breach), each on its own: a ping that breaks for one
        # release must not cost another its abort, which nothing would run later (the criterion has fired).
        for j in judged:
            for criterion, details in j.breached:
                for hook in self.on_fired:
                    try:
                        hook(j.due.release_id, criterion, details)
                    except Exception:
                        log.exception("breach hook failed for release %s", j.due.release_id)
        for item in fired:
            try:
                self._desk.ping(item.incident_id)
            except Exception:  # the desk's ping_pending retries it
                log.exception("incident %s: the channel ping failed", item.incident_id)
        alerts = self._desk.alerts
        news = [j for j in judged if j.notes or j.header is not None or j.resources_changed]
        if alerts is None or not news:
            return
        try:
            views = self._services.views([j.due.release_id for j in news])
        except Exception:  # the redraws are bumped in the database (the sync sweeps them); the notes are lost
            log.exception("metric watch could not read the views of %d releases to tell Slack", len(news))
            return
        for j in news:
            view = views.get(j.due.release_id)
            if view is None:
                continue
            try:
                for text in j.notes:
                    self._note(view, text)
                if j.header is not None:
                    alerts.redraw(view, ("header",))
                if j.resources_changed:
                    alerts.redraw(view, ("checklist",))
            except Exception:
                log.exception("metric watch could not tell Slack about release %s", j.due.release_id)

    def _thread_news(
        self, spec: MetricsSpec, outcomes: list[_Outcome], baseline: float | None
    ) -> list[str]:
        """One thread note per kind of news in this sample: dry-run fires, blindness, data back."""
        lang = self._lang
        notes: list[str] = []
        for o in outcomes:
            if o.decision.action is Action.FIRE and o.decision.dry_run:
                expl = explain(
                    o.criterion, o.watch, baseline_p95_s=baseline, window=window_of(o.criterion, spec)
                )
                value = (
                    fmt_rate(expl.value, lang)
                    if expl.kind is CriterionKind.ERROR_RATE
                    else fmt_ms(expl.value, lang)
                )
                limit = (
                    fmt_rate(expl.limit, lang)
                    if expl.kind is CriterionKind.ERROR_RATE
                    else fmt_ms(expl.limit, lang)
                )
                notes.append(t(lang, "dry_run_fired", title=o.criterion.title) + f"\n{value} ≥ {limit}")
        blind = [o for o in outcomes if o.decision.action is Action.BLIND]
        if blind:
            lines = [t(lang, "watch_blind", count=max(o.decision.no_data_in_row for o in blind))]
            lines += [
                t(lang, "watch_blind_line", title=o.criterion.title, reason=no_data_words(o.decision.reason, lang))
                for o in blind
            ]
            notes.append("\n".join(lines))
        back = [o for o in outcomes if o.decision.action is Action.DATA_BACK]
        if back:
            notes.append(t(lang, "watch_data_back", titles=", ".join(o.criterion.title for o in back)))
        return notes

    def _note(self, view: ReleaseView, text: str) -> None:
        if self._desk.alerts is None:
            return
        try:
            self._desk.alerts.thread_note(view, text)
        except ChatError as e:
            log.warning("release %s: thread note failed (%s)", view.release.id, e.code)


class GateFigures:
    """The gate figures of a release for the stage reminders: over the whole stage when a ``window`` judge is
    given (seed 3.3 "배포 중"), else the latest sample's; never "pass" without data."""

    def __init__(
        self,
        *,
        uow: UowFactory,
        services: Services,
        lang: str,
        enabled: bool,
        window: GateWindow | None = None,
    ) -> None:
        self._uow = uow
        self._services = services
        self._lang = lang
        self._enabled = enabled
        self._window = window

    def __call__(self, release_id: int) -> dict[str, Any] | None:
        if not self._enabled:
            return None
        if self._window is not None and self._window.enabled:
            return self._over_the_stage(release_id)
        return self._latest(release_id)

    def _over_the_stage(self, release_id: int) -> dict[str, Any] | None:
        assert self._window is not None
        view = self._services.view(release_id)
        gate, spec, step = view.checklist.gate, view.checklist.metrics, view.current_step
        if gate is None or spec is None or step is None:
            return None
        report = self._window.judge(release_id, gate, spec, view.release.step_started_at)
        if report is None:
            return None
        record = window_record(report, step.key)
        if report.report.undecided:
            reasons = "; ".join(str(r) for r in record["reasons"]) or t(self._lang, "gate_no_samples")
            return {"text": t(self._lang, "gate_undecided", reasons=reasons), "verdict": "no_data", "window": record}
        return {"text": record_line(record, self._lang), "verdict": report.verdict.value, "window": record}

    def _latest(self, release_id: int) -> dict[str, Any] | None:
        with self._uow() as uow:
            view = self._services.view_in(uow, release_id)
            latest = {m: uow.watch.samples.latest(release_id, m) for m in (ERROR_RATE, P95)}
        gate = view.checklist.gate
        if gate is None or view.checklist.metrics is None:
            return None
        lang = self._lang
        er, p95 = latest[ERROR_RATE], latest[P95]
        if not er or not p95:
            text = t(lang, "gate_undecided", reasons=t(lang, "gate_no_samples"))
            return {"text": text, "verdict": "no_data"}
        report = gate_status(
            gate,
            Sample(er[0].at, er[0].value, er[0].reason),
            Sample(p95[0].at, p95[0].value, p95[0].reason),
        )
        if report.undecided:
            reasons = "; ".join(
                t(lang, "gate_reason_line", metric=t(lang, f"gate_metric_{name}"), reason=no_data_words(fig.reason, lang))
                for name, fig in (("error_rate", report.error_rate), ("p95", report.p95))
                if fig.reason
            )
            return {"text": t(lang, "gate_undecided", reasons=reasons), "verdict": "no_data"}
        mark = ":white_check_mark:" if report.passed else ":x:"
        when = f"<!date^{int(er[0].at.timestamp())}^{{time}}|{er[0].at:%H:%M:%S} UTC>"
        text = t(
            lang,
            "gate_figures",
            mark=mark,
            error=fmt_rate(report.error_rate.value, lang),
            p95=fmt_ms(report.p95.value, lang),
            when=when,
        )
        return {"text": text, "verdict": report.verdict.value}
