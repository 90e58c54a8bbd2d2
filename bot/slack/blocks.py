"""Block Kit rendering: pure functions from read models to (fallback text, blocks).

Renderers enforce Slack's limits themselves (text ≤ 3000, ≤ 50 blocks, ≤ 10 options per checkbox element) so
a checklist of any size is split across messages, never truncated or rejected.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.domain.checklist import Checklist, CriterionKind, Phase, PhaseKind
from bot.domain.records import MessageRecord
from bot.domain.release import FINISHED_STEP, ReleaseStatus, Step, StepKind, progress
from bot.i18n import t
from bot.slack import evidence_blocks, traffic_blocks
from bot.slack.dates import slack_date
from bot.slack.ids import ActionId, block_id, declare_action_id
from bot.usecases.gate_window import record_line
from bot.usecases.releases import ReleaseView

Block = dict[str, Any]
MAX_TEXT = 3000
MAX_BLOCKS = 50
PAGE_BLOCK_BUDGET = 46
PAGE_CHAR_BUDGET = 9000  # Slack's undocumented cumulative cap starts near 11–13k characters
TICKER_RESERVE = 140  # the "who · when" line an item gains once ticked


def escape(text: str) -> str:
    """Escape the three characters Slack's mrkdwn reserves."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# Parameters of refusals and errors that the bot builds as Slack markup itself (a mention, a permalink).
MARKUP_PARAMS = frozenset({"who", "link", "channels"})  # channels: <#C…> of validated ids


def escape_params(params: Mapping[str, object]) -> dict[str, object]:
    """An error's parameters ready for mrkdwn: every string escaped but the markup the bot made itself.

    Errors carry what people typed (a lock's reason, an unknown subcommand, a malformed version) back to them.
    """
    return {k: escape(v) if isinstance(v, str) and k not in MARKUP_PARAMS else v for k, v in params.items()}


def clip(text: str, limit: int = MAX_TEXT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _mrkdwn(text: str, *, verbatim: bool = False) -> Block:
    """A mrkdwn text object; ``verbatim`` for text carrying people's words (see notices.section)."""
    block: Block = {"type": "mrkdwn", "text": clip(text)}
    if verbatim:
        block["verbatim"] = True
    return block


def _plain(text: str, limit: int = 75) -> Block:
    return {"type": "plain_text", "text": clip(text, limit), "emoji": True}


# --- checklist pages ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """One block of a checklist page: a phase title, a section heading, a procedure or an item."""

    kind: str  # phase | section | procedure | item
    phase_key: str
    key: str
    text: str


def layout_pages(phases: Sequence[Phase]) -> list[list[Entry]]:
    """Split phases into pages that fit one message each; stable for a given checklist."""
    pages: list[list[Entry]] = []
    page: list[Entry] = []
    chars = 0

    def push(entry: Entry, cost: int) -> None:
        nonlocal page, chars
        if page and (len(page) + 1 > PAGE_BLOCK_BUDGET or chars + cost > PAGE_CHAR_BUDGET):
            pages.append(page)
            # A phase that spills over opens the next message with its title again, marked as continued.
            title = next(e for e in page if e.kind in ("phase", "continued"))
            page, chars = [Entry("continued", title.phase_key, title.key, title.text)], len(title.text)
        page.append(entry)
        chars += cost

    for phase in phases:
        if page:  # each phase starts its own message
            pages.append(page)
            page, chars = [], 0
        push(Entry("phase", phase.key, phase.key, phase.title), len(phase.title))
        for section in phase.sections:
            push(Entry("section", phase.key, section.key, section.title), len(section.title))
            if section.procedure:
                text = section.procedure
                push(Entry("procedure", phase.key, section.key, text), min(len(text), MAX_TEXT))
            for item in section.items:
                reserve = TICKER_RESERVE + evidence_blocks.EVIDENCE_RESERVE * len(item.evidence)
                push(Entry("item", phase.key, item.key, item.text), len(item.text) + reserve)
    if page:
        pages.append(page)
    return pages


def checklist_pages(checklist: Checklist, kind: str) -> list[list[Entry]]:
    followup = checklist.followup_phase
    if kind == "followup":
        return layout_pages([followup]) if followup else []
    return layout_pages(checklist.flow_phases)


def page_item_keys(checklist: Checklist, kind: str, page: int) -> frozenset[str]:
    pages = checklist_pages(checklist, kind)
    if not 0 <= page < len(pages):
        return frozenset()
    return frozenset(e.key for e in pages[page] if e.kind == "item")


def render_checklist(view: ReleaseView, message: MessageRecord, lang: str) -> tuple[str, list[Block]]:
    pages = checklist_pages(view.checklist, message.kind)
    entries = pages[message.page]
    ended = view.status.is_terminal and message.kind != "followup"
    blocks: list[Block] = []
    rel, mid, rev = view.release.id, message.id, message.content_rev
    for n, entry in enumerate(entries):
        if entry.kind in ("phase", "continued"):
            title = entry.text if entry.kind == "phase" else f"{entry.text} {t(lang, 'continued')}"
            blocks.append(
                {"type": "header", "block_id": block_id("ph", rel, mid, rev, n), "text": _plain(title, 150)}
            )
        elif entry.kind == "section":
            blocks.append(
                {
                    "type": "section",
                    "block_id": block_id("se", rel, mid, rev, n),
                    "text": _mrkdwn(f"*{escape(entry.text)}*"),
                }
            )
        elif entry.kind == "procedure":
            code = clip(entry.text, MAX_TEXT - 8)
            blocks.append(
                {
                    "type": "section",
                    "block_id": block_id("pr", rel, mid, rev, n),
                    "text": _mrkdwn(f"```{code}```"),
                }
            )
        else:
            blocks.append(_item_block(view, entry, block_id("it", rel, mid, rev, n), lang, ended))
    criteria = criteria_lines(view.checklist, lang)
    if message.kind == "followup" and message.page == 0 and criteria and blocks:
        # The seed's part 5 opens with 5.1, the criteria: the follow-up shows them under its title.
        lead = {"type": "context", "block_id": block_id("fc", rel, mid, rev), "elements": [_mrkdwn(criteria, verbatim=True)]}
        blocks.insert(1, lead)
    if ended:
        status = t(lang, f"status_{view.release.status}")
        blocks.insert(0, {"type": "context", "elements": [_mrkdwn(t(lang, "ended_banner", status=status))]})
    if message.kind == "followup" and message.page == len(pages) - 1:
        blocks.extend(_followup_actions(view, message, lang))
    first_phase = entries[0].text if entries else ""
    text = t(lang, "checklist_fallback", version=view.release.version, phase=first_phase)
    return text, blocks[:MAX_BLOCKS]


def _followup_actions(view: ReleaseView, message: MessageRecord, lang: str) -> list[Block]:
    """The seed's 5.2 ends with a health check of production: offer it again from the follow-up checklist."""
    production = [p for p in view.checklist.flow_phases if p.kind in (PhaseKind.CANARY, PhaseKind.WATCH)]
    phase = next((p for p in production if p.environment), None)
    if phase is None or phase.environment is None:
        return []
    button = {
        "type": "button",
        "action_id": ActionId.HEALTH_CHECK.value,
        "text": _plain(t(lang, "btn_health", env=_env_title(view.checklist, phase))),
        "value": f"{view.release.id}:{phase.environment}",
    }
    bid = block_id("fa", view.release.id, message.id, message.content_rev)
    return [{"type": "actions", "block_id": bid, "elements": [button]}]


def _resource_line(view: ReleaseView, item_key: str, lang: str) -> str | None:
    """CPU and memory measured at 100 % (seed 3.2), beside the 3.3 item that asks whether they are normal."""
    spec = view.checklist.metrics
    if spec is None or spec.resource_item != item_key or not view.resources:
        return None

    def figure(metric: str) -> str:
        sample = view.resources.get(metric)
        if sample is None or sample.value is None:
            return t(lang, "no_figure")
        mark = ":warning: " if sample.value >= spec.resource_max else ""
        return f"{mark}{sample.value * 100:.0f} %"

    newest = max(s.at for s in view.resources.values())
    return t(
        lang,
        "resource_figures",
        cpu=figure("cpu"),
        memory=figure("memory"),
        limit=f"{spec.resource_max * 100:g} %",
        when=slack_date(newest, "{time}"),
    )


def _item_block(view: ReleaseView, entry: Entry, bid: str, lang: str, ended: bool) -> Block:
    state = view.items.get(entry.key)
    checked = bool(state and state.checked)
    text = escape(entry.text)
    evidence = evidence_blocks.item_lines(view, entry.key, lang)
    if evidence:
        text += "\n" + evidence
    resources = _resource_line(view, entry.key, lang)
    if resources:
        text += "\n" + resources
    if checked and state is not None:
        who = state.actor.mention
        text += "\n:white_check_mark: " + t(lang, "ticked_by", who=who, when=slack_date(state.at))
    block: Block = {"type": "section", "block_id": bid, "text": _mrkdwn(text)}
    if ended:
        return block
    if evidence_blocks.needs_override(view, entry.key):
        block["accessory"] = evidence_blocks.override_button(view, entry.key, lang)
        return block
    option = {"text": _plain(t(lang, "item_done")), "value": entry.key}
    accessory: Block = {"type": "checkboxes", "action_id": ActionId.TOGGLE_ITEM.value, "options": [option]}
    if checked:
        accessory["initial_options"] = [option]
    block["accessory"] = accessory
    return block


# --- the header ------------------------------------------------------------------------------------------


def step_label(checklist: Checklist, step: Step | None, lang: str) -> str:
    if step is None:
        return t(lang, "step_finished")
    phase = checklist.phase(step.phase_key)
    if step.kind is StepKind.CANARY and step.stage is not None:
        return t(lang, "step_canary", pct=step.stage.traffic_percent)
    return t(lang, f"step_{step.kind.value}", phase=phase.title)


def _env_title(checklist: Checklist, phase: Phase) -> str:
    if phase.environment:
        try:
            return checklist.environment(phase.environment).title
        except KeyError:
            return phase.environment
    return phase.title


def advance_label(
    checklist: Checklist, steps: Sequence[Step], current: Step, target_key: str, lang: str
) -> str:
    if target_key == FINISHED_STEP:
        return t(lang, "btn_finish")
    target = next(s for s in steps if s.key == target_key)
    phase = checklist.phase(target.phase_key)
    if target.kind is StepKind.DEPLOY:
        return t(lang, "btn_start_deploy", env=_env_title(checklist, phase))
    if target.kind is StepKind.READY:
        return t(lang, "btn_verified", env=_env_title(checklist, checklist.phase(current.phase_key)))
    if target.kind is StepKind.CANARY and target.stage is not None:
        key = "btn_start_canary" if current.kind is StepKind.READY else "btn_advance"
        return t(lang, key, pct=target.stage.traffic_percent)
    if target.kind is StepKind.WATCH:
        return t(lang, "btn_start_watch")
    return t(lang, "btn_next_phase", phase=phase.title)


def _progress_bar(view: ReleaseView, lang: str) -> str:
    current = view.release.step
    finished = view.status is ReleaseStatus.FINISHED
    reached = False
    parts = []
    for step in view.steps:
        if step.key == current and not finished:
            mark, reached = ":large_blue_circle:", True
        elif reached or (view.status.is_terminal and not finished and _after(view, step)):
            mark = ":white_circle:"
        else:
            mark = ":white_check_mark:"
        parts.append(f"{mark} {step_label(view.checklist, step, lang)}")
    return "  →  ".join(parts)


def _after(view: ReleaseView, step: Step) -> bool:
    keys = [s.key for s in view.steps]
    return (
        step.key in keys
        and view.release.step in keys
        and keys.index(step.key) > keys.index(view.release.step)
    )


def criteria_lines(checklist: Checklist, lang: str) -> str:
    """The rollback criteria as the document lists them (seed 5.1): its lead-in sentence, then each criterion."""
    if not checklist.criteria:
        return ""
    lead = checklist.criteria_lead_in or t(lang, "criteria_default_lead_in")
    titles = " · ".join(escape(c.title) for c in checklist.criteria)
    return t(lang, "criteria_line", lead=escape(lead), criteria=titles)


def _closing_line(view: ReleaseView, lang: str) -> str:
    """The document's closing sentence and the version of the checklist this release runs."""
    parts = []
    if view.checklist.closing_note:
        parts.append(f"_{escape(view.checklist.closing_note)}_")
    if view.release.checklist_version:
        parts.append(t(lang, "checklist_version", version=escape(view.release.checklist_version)))
    return " · ".join(parts)


def _step_title(view: ReleaseView, key: str, lang: str) -> str:
    """A step's title as people read it ("1. 배포 전 체크리스트"), not its key; a key no longer in the plan as is."""
    step = next((s for s in view.steps if s.key == key), None)
    return step_label(view.checklist, step, lang) if step else escape(key)
def _gate_window_line(view: ReleaseView, step: Step | None, lang: str) -> str | None:
    """The monitoring gate over this canary stage so far (seed 3.3), live while the stage runs."""
    record = view.gate_window
    gate = view.checklist.gate
    if step is None or step.kind is not StepKind.CANARY or gate is None or not view.metrics_on:
        return None
    if record is None or record.get("step") != step.key:
        return t(lang, "header_gate_waiting")
    try:
        until = datetime.fromisoformat(str(record.get("end")))
    except ValueError:
        until = view.release.step_started_at
    # The end shows how fresh the figures are: drifting figures are refreshed every few minutes, not every sample.
    line = t(
        lang, "header_gate", since=slack_date(view.release.step_started_at, "{time}"), until=slack_date(until, "{time}")
    )
    return line + " " + record_line(record, lang)


def _checklist_named(view: ReleaseView) -> str:
    """Where one deployment runs several checklists, which one (and service) this release follows."""
    if not view.named:
        return ""
    return f"*{escape(view.checklist.title)}* (`{escape(view.release.service)}`) · "


def render_header(view: ReleaseView, message: MessageRecord, lang: str) -> tuple[str, list[Block]]:
    rel, mid, rev = view.release.id, message.id, message.content_rev
    record = view.release
    step = view.current_step
    status_text = t(lang, f"status_{record.status}")
    blocks: list[Block] = [
        {
            "type": "header",
            "block_id": block_id("hh", rel, mid, rev),
            "text": _plain(t(lang, "header_title", version=record.version), 150),
        },
        {
            "type": "context",
            "block_id": block_id("hc", rel, mid, rev),
            "elements": [
                _mrkdwn(
                    _checklist_named(view)
                    + t(lang, "started_by", who=record.started_by.mention, when=slack_date(record.started_at))
                    + f" · {status_text}"
                )
            ],
        },
        {
            "type": "section",
            "block_id": block_id("hp", rel, mid, rev),
            "text": _mrkdwn(_progress_bar(view, lang)),
        },
    ]
    if not view.status.is_terminal:
        now_line = t(lang, "current_step", step=step_label(view.checklist, step, lang))
        now_line += " · " + t(lang, "time_in_step", when=slack_date(record.step_started_at, "{ago}"))
        if view.next_timer is not None:
            now_line += " · " + t(
                lang, "next_reminder", when=slack_date(view.next_timer.due_at, "{time} ({ago})")
            )
        blocks.append(
            {"type": "section", "block_id": block_id("hs", rel, mid, rev), "text": _mrkdwn(now_line)}
        )
        gate_line = _gate_window_line(view, step, lang)
        if gate_line is not None:
            blocks.append(
                {"type": "context", "block_id": block_id("hw", rel, mid, rev), "elements": [_mrkdwn(gate_line)]}
            )
    # No tick counts here: the phase messages below show every box, and a header that changed with each tick
    # would spend chat.update's workspace-wide Tier 3 on every click of every release (App Home and
    # `/release status` give the counts).
    blocks.extend(traffic_blocks.header_blocks(view, rel, mid, rev, lang))
    evidence_line = evidence_blocks.header_line(view, lang)
    if evidence_line is not None:
        blocks.append(
            {"type": "context", "block_id": block_id("he", rel, mid, rev), "elements": [_mrkdwn(evidence_line)]}
        )
    for n, event in enumerate(view.overrides[-3:]):
        gates = ", ".join(t(lang, f"gate_{g}") for g in event.details.get("gates", []))
        note = t(
            lang,
            "override_note",
            who=event.actor.mention,
            gate=gates,
            step=_step_title(view, str(event.details.get("from", "")), lang),
            reason=escape(str(event.details.get("reason", ""))),
        )
        blocks.append(
            {
                "type": "context",
                "block_id": block_id("ho", rel, mid, rev, n),
                "elements": [_mrkdwn(note, verbatim=True)],
            }
        )
    criteria = criteria_lines(view.checklist, lang)
    if criteria and not view.status.is_terminal:
        blocks.append(
            {"type": "context", "block_id": block_id("hr", rel, mid, rev), "elements": [_mrkdwn(criteria, verbatim=True)]}
        )
    if not view.status.is_terminal and step is not None:
        blocks.append(_header_actions(view, step, message, lang))
    closing = _closing_line(view, lang)
    if closing:
        blocks.append(
            {"type": "context", "block_id": block_id("hz", rel, mid, rev), "elements": [_mrkdwn(closing, verbatim=True)]}
        )
    text = t(lang, "header_fallback", version=record.version, step=step_label(view.checklist, step, lang))
    if view.status.is_terminal:
        text = f"{text} ({status_text})"
    return text, blocks


def _header_actions(view: ReleaseView, step: Step, message: MessageRecord, lang: str) -> Block:
    from bot.domain.release import next_step_key

    rel = view.release.id
    target = next_step_key(view.steps, step.key)
    elements: list[Block] = [
        {
            "type": "button",
            "action_id": ActionId.ADVANCE.value,
            "text": _plain(advance_label(view.checklist, view.steps, step, target, lang)),
            "value": f"{rel}:{step.key}:{target}",
            "style": "primary",
        }
    ]
    phase = view.checklist.phase(step.phase_key)
    if phase.environment and step.kind is not StepKind.CHECKLIST:
        elements.append(
            {
                "type": "button",
                "action_id": ActionId.HEALTH_CHECK.value,
                "text": _plain(t(lang, "btn_health", env=_env_title(view.checklist, phase))),
                "value": f"{rel}:{phase.environment}",
            }
        )
    # Offered once this release changed production: before that, a rollback would undo an older release's work
    # (``/release rollback`` still opens it, behind an explicit confirmation of what is undone).
    if view.checklist.rollback is not None and view.reached_production:
        elements.append(
            {
                "type": "button",
                "action_id": ActionId.ROLLBACK.value,
                "text": _plain(t(lang, "btn_rollback")),
                "value": str(rel),
                "style": "danger",
            }
        )
        elements.append(
            {
                "type": "button",
                "action_id": ActionId.ROLLED_BACK_BY_HAND.value,
                "text": _plain(t(lang, "btn_rolled_back_by_hand")),
                "value": str(rel),
            }
        )
    recheck = evidence_blocks.recheck_button(view, lang)
    if recheck is not None:
        elements.append(recheck)
    elements.append(
        {
            "type": "button",
            "action_id": ActionId.ABORT.value,
            "text": _plain(t(lang, "btn_abort")),
            "value": str(rel),
            "style": "danger",
        }
    )
    # Human rollback criteria (core feature down, data loss): each opens a reason modal and pages once.
    for criterion in view.checklist.criteria:
        if criterion.kind is CriterionKind.MANUAL:
            elements.append(
                {
                    "type": "button",
                    "action_id": declare_action_id(criterion.key),
                    "text": _plain(f":rotating_light: {criterion.title}"),
                    "value": f"{rel}:{criterion.key}",
                }
            )
    return {
        "type": "actions",
        "block_id": block_id("ha", rel, message.id, message.content_rev),
        "elements": elements,
    }


def render_message(view: ReleaseView, message: MessageRecord, lang: str) -> tuple[str, list[Block]]:
    """Render any message a release owns, by its kind."""
    if message.kind == "header":
        return render_header(view, message, lang)
    return render_checklist(view, message, lang)


def message_slots(checklist: Checklist) -> list[tuple[str, int]]:
    """The messages a new release is drawn in: the header, then one per checklist page."""
    return [("header", 0)] + [("checklist", n) for n in range(len(checklist_pages(checklist, "checklist")))]


# --- ephemeral answers -----------------------------------------------------------------------------------


def render_status(view: ReleaseView, lang: str) -> str:
    record = view.release
    lines = [
        _checklist_named(view)
        + t(lang, "status_title", version=record.version, status=t(lang, f"status_{record.status}")),
        t(lang, "current_step", step=step_label(view.checklist, view.current_step, lang)),
    ]
    counts = progress(view.checklist, view.checked)
    for phase in view.checklist.phases:
        done, total = counts[phase.key]
        if not total:
            continue
        marker = ":white_check_mark:" if done == total else ":black_square_button:"
        lines.append(t(lang, "status_phase_line", marker=marker, phase=phase.title, done=done, total=total))
    lines.append(
        t(
            lang,
            "last_activity",
            when=slack_date(record.last_activity_at, "{date_short_pretty} {time} ({ago})"),
        )
    )
    return clip("\n".join(lines), 3000)


def render_contacts(checklist: Checklist, lang: str) -> str:
    """``/release contacts``: the seed's part 6 as configured, saying plainly who an incident would not reach."""
    if not checklist.contacts:
        return t(lang, "contacts_none")
    lines = [t(lang, "contacts_title")]
    for c in checklist.contacts:
        role = escape(c.role)
        if c.via == "pagerduty":
            lines.append(t(lang, "contacts_line_pagerduty", role=role))
        elif c.slack_id:
            lines.append(t(lang, "contacts_line_slack", role=role, mention=c.mention, handle=escape(c.handle or "")))
        else:
            lines.append(t(lang, "contacts_line_no_id", role=role, handle=escape(c.handle or "-")))
    return clip("\n".join(lines), 3000)


def render_list(views: Sequence[tuple[ReleaseView, str]], lang: str) -> str:
    if not views:
        return t(lang, "list_empty")
    lines = [t(lang, "list_title")]
    for view, link in views:
        lines.append(
            t(
                lang,
                "list_line",
                link=link,
                version=f"{view.release.service} {view.release.version}" if view.named else view.release.version,
                status=t(lang, f"status_{view.release.status}"),
                step=step_label(view.checklist, view.current_step, lang),
                when=slack_date(view.release.started_at),
            )
        )
    return clip("\n".join(lines), 3000)
