"""What the bot says about an incident to PagerDuty and in summaries: figures in words, the "why" of a fired
criterion as stored data, and the Events v2 bodies the outbox sends. Pure functions of read models."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.domain.analysis import Explanation
from bot.domain.checklist import CriterionKind
from bot.domain.incident import IncidentRecord
from bot.domain.records import BOT
from bot.i18n import t
from bot.i18n.units import no_data_key
from bot.usecases.releases import ReleaseView


def fmt_rate(value: float | None, lang: str) -> str:
    return t(lang, "no_figure") if value is None else f"{value * 100:.2f} %"


def fmt_ms(value_s: float | None, lang: str) -> str:
    return t(lang, "no_figure") if value_s is None else f"{value_s * 1000:.0f} ms"


def no_data_words(reason: str | None, lang: str) -> str:
    """Why a metric has no figure: the adapter's own words in English, the catalog's in Korean."""
    if lang == "en":
        return reason or t(lang, "nodata_none")
    return t(lang, no_data_key(reason))


def why_details(expl: Explanation, *, stage: str | None, window: str) -> dict[str, Any]:
    """The figures behind a fired criterion, JSON-safe, as stored with the incident and sent to PagerDuty."""
    return {
        "kind": expl.kind.value,
        "title": expl.criterion_title,
        "value": expl.value,
        "threshold": expl.threshold,
        "limit": expl.limit,
        "baseline_p95_s": expl.baseline_p95_s,
        "times_baseline": expl.times_baseline,
        "window": window,
        "breaches_in_row": expl.breaches_in_row,
        "required_breaches": expl.required_breaches,
        "since": expl.since.isoformat() if expl.since else None,
        "trend": [[p.at.isoformat(), p.value] for p in expl.trend],
        "direction": expl.direction.value,
        "stage": stage,
    }


def value_and_threshold(details: dict[str, Any], lang: str) -> tuple[str, str]:
    """The figure and its threshold in words, for summaries."""
    if details.get("kind") == CriterionKind.ERROR_RATE.value:
        return fmt_rate(details.get("value"), lang), fmt_rate(details.get("threshold"), lang)
    times = details.get("times_baseline")
    value = fmt_ms(details.get("value"), lang)
    if times:
        value = t(lang, "latency_times", value=value, times=f"{times:.1f}")
    limit = fmt_ms(details.get("limit"), lang)
    return value, t(lang, "latency_limit", threshold=f"{details.get('threshold', 0):g}", limit=limit)


def thread_link(view: ReleaseView) -> str | None:
    """A link to the release thread; no team domain in a background job, and slack.com/archives redirects."""
    ts = view.release.thread_ts
    if not ts:
        return None
    return f"https://slack.com/archives/{view.release.channel_id}/p{ts.replace('.', '')}"


def trigger_body(view: ReleaseView, incident: IncidentRecord, lang: str, now: datetime) -> dict[str, Any]:
    """The stored body of an incident's trigger: summary with version, criterion, value and threshold."""
    release = view.release
    details = incident.details
    title = str(details.get("title") or incident.criterion)
    if incident.declared_by != BOT.id:
        summary = t(
            lang,
            "pd_summary_declared",
            service=release.service,
            version=release.version,
            title=title,
            who=incident.declared_by_name,
            reason=incident.reason or "",
        )
    else:
        value, threshold = value_and_threshold(details, lang)
        summary = t(
            lang,
            "pd_summary_metric",
            service=release.service,
            version=release.version,
            title=title,
            value=value,
            threshold=threshold,
        )
    link = thread_link(view)
    custom = {
        "release": release.version,
        "service": release.service,
        "criterion": incident.criterion,
        **{k: v for k, v in details.items() if v is not None},
        "declared_by": incident.declared_by_name,
        "reason": incident.reason,
        "slack_thread": link,
    }
    return {
        "summary": summary,
        "source": release.service,
        "severity": "critical",
        "timestamp": now.isoformat(),
        "custom_details": {k: v for k, v in custom.items() if v is not None},
        "links": [[link, "Slack thread"]] if link else [],
    }


def change_body(view: ReleaseView, summary: str, now: datetime) -> dict[str, Any]:
    """The stored body of a change event (a release moved)."""
    release = view.release
    link = thread_link(view)
    return {
        "summary": summary,
        "source": release.service,
        "timestamp": now.isoformat(),
        "custom_details": {"release": release.version, "step": release.step, "status": release.status},
        "links": [[link, "Slack thread"]] if link else [],
    }
