"""A human summary of a checklist, printed by ``release-bot checklist check FILE``."""

from __future__ import annotations

from bot.domain.checklist import (
    Checklist,
    Criterion,
    CriterionKind,
    TickRole,
    format_duration,
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
    if crit.on_breach == "abort":
        rule = f"{rule}, aborts the canary on breach"
    return f"{rule}, dry run" if crit.dry_run else rule


def summarize(checklist: Checklist) -> str:
    """Describe a loaded checklist in plain lines, for ``release-bot checklist check FILE``."""
    c = checklist
    version = f", version {c.version}" if c.version else ""
    lines = [f"{c.title} (name {c.name}, service {c.service}{version})", "", "Phases:"]
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
            f"Gate: error rate below {_pct(c.gate.max_error_rate)}, p95 below {c.gate.max_p95_ms:g}ms, "
            "judged over each canary stage's whole window; a stage without a wait is first observed "
            + format_duration(c.gate.min_observation)
        )
    if c.post_deploy_watch:
        lines.append(f"Post-deploy watch: {format_duration(c.post_deploy_watch)}")
    if c.criteria and c.criteria_lead_in:
        lines.append(f"Rollback criteria: {c.criteria_lead_in}")
    lines += [f"Rollback criterion {x.key}: {x.title} ({_rule(x)})" for x in c.criteria]
    if c.rollback:
        lines.append(
            f"Rollback target: deployment/{c.rollback.deployment} in namespace {c.rollback.namespace}"
        )
    if not c.traffic.is_manual:
        lines.append(f"Traffic: {c.traffic.describe()}")
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
        if m.cpu_query or m.memory_query:
            shown = f", shown beside {m.resource_item}" if m.resource_item else " (no resource_item shows them)"
            lines.append(
                f"Resources at 100 %: CPU and memory against their limits{shown}, marked at "
                f"{_pct(m.resource_max)} or more"
            )
    evidence = c.evidence_items
    if evidence:
        lines.append(f"Evidence ({_count(len(evidence), 'item')}; release tags {c.tag_pattern}):")
        for item in evidence:
            lines.append(f"  {item.key}: " + "; ".join(spec.describe() for spec in item.evidence))
    lines += [
        f"Contact {x.role}: "
        + ("paged via PagerDuty" if x.via == "pagerduty" else f"{x.mention or '-'} on Slack")
        for x in c.contacts
    ]
    if c.closing_note:
        lines.append(f"Closing note (on every release header): {c.closing_note}")
    items, sections = sum(len(p.items) for p in c.phases), sum(len(p.sections) for p in c.phases)
    lines += [
        "",
        f"{_count(items, 'item')} in {_count(len(c.phases), 'phase')} ({_count(sections, 'section')})",
    ]
    return "\n".join(lines)
