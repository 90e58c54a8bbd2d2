"""The metric watch: sample every active release in a canary stage or the post-deploy watch, judge its
rollback criteria, keep the evidence, and act on what the judge decides (reference/anchors.md §4).

One leader-only job calls ``tick``; its writes are fenced by the leadership epoch (``SqlUnitOfWork.leader_only``), so a
deposed leader's late sample is refused whole. Per release and sample: one query per metric, one judgement per metric
criterion, the samples and the criteria's states stored, and the decisions acted on in the same transaction
(an incident and its PagerDuty trigger are queued with the state that says "fired", so a restart neither
loses nor repeats a page). Slack is told after the commit.

Must not import slack_bolt, slack_sdk, httpx or kubernetes.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
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
from bot.domain.incident import SampleRecord, WatchRef
from bot.domain.records import BOT
from bot.domain.release import ReleaseStatus, StepKind, plan_steps
from bot.domain.window import WindowReport
from bot.errors import ChatError, GateNotMet, MetricsError, NotFound, NotLeader
from bot.i18n import t
from bot.i18n.units import human_duration
from bot.observability import JUDGE_VERDICTS
from bot.ports import Clock, Metrics, Reading
from bot.usecases.gate_window import GateWindow, record_line, window_line, window_record
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

    def tick(self) -> None:
        """One pass over every release the watch has work on: a step to announce, an end to close, a sample due.

        The rest are skipped on one shared read: a tick's cost follows the releases in a canary or the watch,
        not every release left open (the bench keeps a thousand open, each once cost ~12 queries a tick)."""
        with self._uow() as uow:
            listed = []
            for ref in uow.watch.releases.refs():
                kind = self._step_kind(uow, ref)
                if needs_tick(ref, kind):
                    checklist = self._services.checklist_of(uow, ref.release_id, ref.checklist_name)
                    listed.append((ref, kind, checklist))
        # The watch polls every second for a fresh scrape; a canary between two samples is skipped here on the
        # shared read instead of loading it (reconcile, view) to find that out: that cost a core at 100 releases.
        scrapes: dict[str, float | None] = {}
        due = [
            (r.release_id, r.status != ReleaseStatus.ACTIVE.value or r.announced_step != r.step)
            for r, kind, c in listed
            if not self._between_samples(r, kind, c, scrapes)
        ]
        for release_id, moved in due:
            try:
                self.tick_release(release_id, reconcile=moved)
            except NotLeader as e:
                log.warning("metric watch left to the next leader: %s", e)
                return
            except NotFound:
                continue  # dropped since this tick listed it: nothing left to watch
            except Exception:
                log.exception("metric watch failed for release %s", release_id)
        self._desk.ping_pending()

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

    def _step_kind(self, uow: SqlUnitOfWork, ref: WatchRef) -> StepKind | None:
        checklist = self._services.checklist_of(uow, ref.release_id, ref.checklist_name)
        return next((s.kind for s in plan_steps(checklist) if s.key == ref.step), None)

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
        self.sample(view, spec)
        if scrape is not None:
            self._scrapes[release_id] = scrape

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

    def sample(self, view: ReleaseView, spec: MetricsSpec) -> list[Decision]:
        """Query each metric once, judge every metric criterion, store it all and act on the decisions."""
        assert self._metrics is not None
        now = self._clock.now()
        samples = {
            ERROR_RATE: _sample(self._metrics.query(spec.error_rate_query), now),
            P95: _sample(self._metrics.query(spec.p95_query), now),
        }
        rid = view.release.id
        criteria = [c for c in view.checklist.criteria if c.kind is not CriterionKind.MANUAL]
        fired: list[Fired] = []
        breached: list[tuple[Criterion, dict[str, Any]]] = []
        outcomes: list[_Outcome] = []
        with self._uow() as uow:
            # The verdicts, the incidents they open and the pages they queue: accepted only from the leader.
            uow.leader_only()
            release = uow.releases.get(rid, for_update=True)
            baseline = release.baseline_p95_s
            states = uow.watch.states.load(rid, for_update=True)
            verdicts: dict[str, tuple[str, str | None]] = {}
            for criterion in criteria:
                stored = states.get(criterion.key)
                watch = (
                    CriterionWatch.from_dict(stored)
                    if stored
                    else CriterionWatch.for_criterion(criterion, spec)
                )
                sample = samples[metric_of(criterion)]
                judgement = assess(criterion, sample, baseline_p95_s=baseline)
                decision = watch.observe(sample, judgement.verdict, reason=judgement.reason)
                JUDGE_VERDICTS.labels(criterion=criterion.key, verdict=judgement.verdict.value).inc()
                uow.watch.states.save(rid, criterion.key, watch.to_dict(), now, sampled=True)
                verdicts.setdefault(metric_of(criterion), (judgement.verdict.value, judgement.reason))
                outcomes.append(_Outcome(criterion, watch, decision))
                if decision.action is Action.FIRE and not decision.dry_run:
                    window = window_of(criterion, spec)
                    details = why_details(
                        explain(criterion, watch, baseline_p95_s=baseline, window=window),
                        stage=release.step,
                        window=format_duration(window),
                    )
                    opened = self._desk.open_in(
                        uow, view, criterion=criterion.key, title=criterion.title, details=details, actor=BOT
                    )
                    if opened is not None:
                        fired.append(opened)
                        breached.append((criterion, details))
                elif decision.action is not Action.NONE:
                    uow.audit.append(
                        rid,
                        {Action.FIRE: "criterion_dry_run", Action.BLIND: "watch_blind"}.get(
                            decision.action, "watch_data_back"
                        ),
                        BOT,
                        now,
                        details={
                            "criterion": criterion.key,
                            "reason": decision.reason,
                            "value": samples[metric_of(criterion)].value,
                        },
                    )
            for metric, sample in samples.items():
                verdict, reason = verdicts.get(
                    metric, ("pass" if sample.value is not None else "no_data", None)
                )
                uow.watch.samples.add(
                    SampleRecord(rid, now, metric, sample.value, verdict, reason or sample.no_data_reason)
                )
            uow.watch.releases.update(rid, last_sample_at=now)
            uow.commit()
        if fired:
            self._desk.kick()
        for item in fired:
            self._desk.ping(item.incident_id)
        for criterion, details in breached:
            for hook in self.on_fired:
                try:
                    hook(rid, criterion, details)
                except Exception:
                    log.exception("breach hook failed for release %s", rid)
        self._tell_thread(view, spec, outcomes, baseline)
        self.update_gate_window(view, spec)
        self.sample_resources(view, spec)
        return [o.decision for o in outcomes]

    def sample_resources(self, view: ReleaseView, spec: MetricsSpec) -> None:
        """At 100 % traffic and in the post-deploy watch: CPU and memory against their limits (seed 3.2 "전체
        메트릭"), stored as samples and shown beside the 3.3 item's box. Redrawn only when a whole percent moves."""
        step = view.current_step
        at_full = step is not None and (
            step.kind is StepKind.WATCH
            or (step.kind is StepKind.CANARY and step.stage is not None and step.stage.traffic_percent >= 100)
        )
        if not at_full or self._metrics is None or not (spec.cpu_query or spec.memory_query):
            return
        now = self._clock.now()
        rid = view.release.id
        changed = False
        with self._uow() as uow:
            uow.leader_only()
            for metric, query in ((CPU, spec.cpu_query), (MEMORY, spec.memory_query)):
                if not query:
                    continue
                reading = self._metrics.query(query)
                value = reading.value if reading.value is not None and math.isfinite(reading.value) else None
                verdict = "no_data" if value is None else ("breach" if value >= spec.resource_max else "pass")
                before = uow.watch.samples.latest(rid, metric)
                shown_before = _percent(before[0].value) if before else "never"
                changed |= shown_before != _percent(value)
                uow.watch.samples.add(SampleRecord(rid, now, metric, value, verdict, reading.no_data_reason))
            if changed:
                uow.messages.bump_release(rid, ["checklist"])
            uow.commit()
        if changed and self._desk.alerts is not None:
            self._desk.alerts.redraw(view, ("checklist",))

    def update_gate_window(self, view: ReleaseView, spec: MetricsSpec) -> None:
        """Judge the gate over the canary stage so far and, when it is news, show it on the header.

        News is a new stage, a verdict that flips, or one more sample over a line: redrawn at once. Figures that
        merely drift are refreshed every ``HEADER_FIGURES_EVERY`` at most, and only while ``DriftBudget`` has
        a token: chat.update is Tier 3 for the whole workspace (~50 a minute), and 200 headers redrawn every
        sample would be 800 a minute, so none would ever show what the database holds; 200 refreshes due at
        once would still queue ahead of real news for four minutes. The lifecycle judges the window afresh when
        someone advances; this record is what the header shows, and the header shows when it was taken."""
        step, gate = view.current_step, view.checklist.gate
        if step is None or step.kind is not StepKind.CANARY or gate is None:
            return
        rid = view.release.id
        report = self._window.judge(rid, gate, spec, view.release.step_started_at)
        if report is None:
            return
        record = window_record(report, step.key)
        with self._uow() as uow:
            uow.leader_only()
            old = uow.watch.releases.gate_window(rid)
            kind = "news" if old is None else _header_news(old, record)
            if kind is None or (kind == "drift" and not self._drift.take()):
                return
            uow.watch.releases.update(rid, gate_window=record)
            uow.messages.bump_release(rid, ["header"])
            uow.commit()
        if self._desk.alerts is not None:
            self._desk.alerts.redraw(view, ("header",))

    def _tell_thread(
        self, view: ReleaseView, spec: MetricsSpec, outcomes: list[_Outcome], baseline: float | None
    ) -> None:
        """One thread note per kind of news in this sample: dry-run fires, blindness, data back."""
        lang = self._lang
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
                self._note(view, t(lang, "dry_run_fired", title=o.criterion.title) + f"\n{value} ≥ {limit}")
        blind = [o for o in outcomes if o.decision.action is Action.BLIND]
        if blind:
            lines = [t(lang, "watch_blind", count=max(o.decision.no_data_in_row for o in blind))]
            lines += [
                t(lang, "watch_blind_line", title=o.criterion.title, reason=no_data_words(o.decision.reason, lang))
                for o in blind
            ]
            self._note(view, "\n".join(lines))
        back = [o for o in outcomes if o.decision.action is Action.DATA_BACK]
        if back:
            self._note(view, t(lang, "watch_data_back", titles=", ".join(o.criterion.title for o in back)))

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
