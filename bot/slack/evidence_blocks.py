"""How evidence shows in Slack: a line per source under an item, the override button of a failing item, the
header's tally and its re-check button. Pure functions of the release view, like ``bot.slack.blocks``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bot.domain.evidence import EvidencePart, EvidenceStatus
from bot.i18n import t
from bot.slack.ids import ActionId
from bot.usecases.evidence import part_words
from bot.usecases.releases import ReleaseView

Block = dict[str, Any]
# Characters one evidence source may add to an item's block (text, link and its label); pages are laid out with
# this much room per source so that a result never pushes a page past Slack's limits.
EVIDENCE_RESERVE = 420
MARKS = {
    EvidenceStatus.PROVEN: ":white_check_mark:",
    EvidenceStatus.FAILED: ":x:",
    EvidenceStatus.UNKNOWN: ":grey_question:",
}


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _date(epoch: int) -> str:
    fallback = datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{epoch}^{{time}}|{fallback}>"


def part_text(part: EvidencePart, lang: str, *, plain: bool = False) -> str:
    """What one source found, in words; ``plain`` for places without Slack markup (a modal's text)."""
    if plain:
        return part_words(part, lang)
    return part_words(part, lang, date=_date, escape=_escape)


def _link(part: EvidencePart) -> str:
    if not part.link or any(c in part.link for c in "<>| "):
        return ""
    label = _escape(part.link_label or part.link)[:80]
    return f" · <{part.link}|{label}>"


def item_lines(view: ReleaseView, item_key: str, lang: str) -> str:
    """The evidence lines under an item, or "" when it has none yet."""
    result = view.evidence.get(item_key)
    lines = []
    if result is not None:
        for part in result.parts:
            line = f"{MARKS[part.status]} {part_text(part, lang)}"[: EVIDENCE_RESERVE - 200]
            lines.append(line + _link(part))
    override = view.item_overrides.get(item_key)
    if override is not None:
        reason = _escape(str(override.details.get("reason", "")))[:200]
        lines.append(":warning: " + t(lang, "ev_overridden", who=override.actor.mention, reason=reason))
    return "\n".join(lines)


def needs_override(view: ReleaseView, item_key: str) -> bool:
    """A failing item nobody overrode is ticked only with a reason: it shows a button instead of a checkbox."""
    result = view.evidence.get(item_key)
    state = view.items.get(item_key)
    return (
        result is not None
        and result.status is EvidenceStatus.FAILED
        and item_key not in view.item_overrides
        and not (state is not None and state.checked)
    )


def override_button(view: ReleaseView, item_key: str, lang: str) -> Block:
    return {
        "type": "button",
        "action_id": ActionId.EVIDENCE_OVERRIDE.value,
        "text": {"type": "plain_text", "text": t(lang, "btn_override_item"), "emoji": True},
        "value": f"{view.release.id}:{item_key}",
    }


def tally(view: ReleaseView) -> dict[str, int]:
    counts = {s.value: 0 for s in EvidenceStatus}
    for result in view.evidence.values():
        counts[result.status.value] += 1
    return counts


def header_line(view: ReleaseView, lang: str) -> str | None:
    """The header's count of proven, failing and undecided items; None before the first evaluation."""
    if not view.evidence:
        return None
    counts = tally(view)
    return t(lang, "ev_header", proven=counts["proven"], failed=counts["failed"], unknown=counts["unknown"])


def recheck_button(view: ReleaseView, lang: str) -> Block | None:
    if not view.evidence_on or not view.checklist.evidence_items or view.status.is_terminal:
        return None
    return {
        "type": "button",
        "action_id": ActionId.EVIDENCE_RECHECK.value,
        "text": {
            "type": "plain_text",
            "text": ":arrows_counterclockwise: " + t(lang, "btn_recheck"),
            "emoji": True,
        },
        "value": str(view.release.id),
    }
