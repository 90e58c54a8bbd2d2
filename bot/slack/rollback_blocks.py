"""Block Kit for the rollback flow: the confirmation modal, the progress message, the report draft. Pure.

Modal limits enforced here: title/submit/close ≤ 24 characters, option text ≤ 75, ≤ 100 options, value ≤ 150,
private_metadata ≤ 3000; section text ≤ 3000.
"""

from __future__ import annotations

from typing import Any

from bot.domain.rollbacks import RollbackRecord
from bot.i18n import t
from bot.ports import Revision, RollbackPlan
from bot.slack.blocks import Block, clip, escape
from bot.slack.ids import CallbackId
from bot.slack.notices import section
from bot.usecases.releases import ReleaseView

Message = tuple[str, list[Block]]
REASON = "reason"
REVISION = "revision"
CONFIRM = "confirm_undo"
MAX_OPTIONS = 100
_REPORT_CHUNK = 2700  # leaves room for the intro line and the fences within 3000


def _plain(text: str, limit: int) -> Block:
    return {"type": "plain_text", "text": clip(text, limit)}


def images(revision: Revision | None, fallback: tuple[str, ...] = ()) -> str:
    shown = revision.images if revision is not None else fallback
    return ", ".join(f"`{escape(i)}`" for i in shown) or "?"


def _modal(external_id: str, lang: str, blocks: list[Block], *, submit: bool, private_metadata: str) -> Block:
    view: Block = {
        "type": "modal",
        "callback_id": CallbackId.ROLLBACK.value,
        "external_id": external_id,
        "title": _plain(t(lang, "rb_modal_title"), 24),
        "close": _plain(t(lang, "rb_close"), 24),
        "private_metadata": private_metadata,
        "blocks": blocks,
    }
    if submit:
        view["submit"] = _plain(t(lang, "rb_submit"), 24)
    return view


def loading_modal(external_id: str, lang: str, private_metadata: str) -> Block:
    """Opened right after the ack (the trigger id lives 3 s); replaced once the plan is read."""
    return _modal(
        external_id, lang, [section(t(lang, "rb_loading"))], submit=False, private_metadata=private_metadata
    )


def notice_modal(external_id: str, lang: str, text: str, private_metadata: str) -> Block:
    """A refusal or an error in place of the plan: no submit button, so nothing can be confirmed."""
    return _modal(
        external_id,
        lang,
        [section(t(lang, "rb_refused", text=text))],
        submit=False,
        private_metadata=private_metadata,
    )


def undo_value(plan: RollbackPlan) -> str:
    """The confirmation box's value: it names the two revisions, so a box ticked for another plan never matches."""
    return f"undo:{plan.current.number}:{plan.target.number}"


def _outside_blocks(view: ReleaseView, plan: RollbackPlan, lang: str) -> list[Block]:
    """A release that never reached production: say so, and make the person tick exactly what is undone."""
    step = view.current_step
    where = view.checklist.phase(step.phase_key).title if step else view.release.step
    statement = t(
        lang,
        "rb_outside_confirm",
        from_rev=plan.current.number,
        from_images=images(plan.current),
        to_rev=plan.target.number,
        to_images=images(plan.target),
    )
    warning = t(lang, "rb_outside_warning", version=view.release.version, step=escape(where))
    short = f"{plan.current.number} → {plan.target.number}"
    label = t(lang, "rb_outside_confirm_label")
    return [
        section(f"{warning}\n{statement}"),
        {
            "type": "input",
            "block_id": CONFIRM,
            "label": _plain(label, 2000),
            "element": {
                "type": "checkboxes",
                "action_id": CONFIRM,
                "options": [{"text": _plain(f"{label}: {short}", 75), "value": undo_value(plan)}],
            },
        },
    ]


def _option(revision: Revision) -> Block:
    label = f"{revision.number} — {', '.join(revision.images) or '?'}"
    return {"text": _plain(label, 75), "value": str(revision.number)}


def confirm_modal(
    external_id: str, view: ReleaseView, plan: RollbackPlan, lang: str, private_metadata: str
) -> Block:
    """What will happen, exactly; a reason; and the older revisions to pick instead (``--to-revision``).

    For a release that never reached production, no other revision to pick: a box to tick that names the two
    revisions and their images instead, since what is undone is not this release's doing."""
    lines = [
        t(
            lang,
            "rb_plan",
            version=view.release.version,
            deployment=plan.deployment,
            namespace=plan.namespace,
        ),
        t(lang, "rb_current", revision=plan.current.number, images=images(plan.current)),
        t(lang, "rb_target", revision=plan.target.number, images=images(plan.target)),
    ]
    blocks: list[Block] = [section("\n".join(lines))]
    for warning in plan.gitops_warnings:
        blocks.append(section(t(lang, "rb_gitops", warning=escape(warning))))
    outside = not view.reached_production
    if outside:
        blocks += _outside_blocks(view, plan, lang)
    older = [r for r in plan.history if r.number != plan.current.number and r.number > 0][:MAX_OPTIONS]
    if len(older) > 1 and not outside:
        options = [_option(r) for r in older]
        initial = next(
            (o for o, r in zip(options, older, strict=True) if r.number == plan.target.number), None
        )
        element: Block = {"type": "static_select", "action_id": REVISION, "options": options}
        if initial is not None:
            element["initial_option"] = initial
        blocks.append(
            {
                "type": "input",
                "block_id": REVISION,
                "optional": True,
                "label": _plain(t(lang, "rb_revision_label"), 2000),
                "element": element,
            }
        )
    blocks.append(
        {
            "type": "input",
            "block_id": REASON,
            "label": _plain(t(lang, "rb_reason_label"), 2000),
            "element": {
                "type": "plain_text_input",
                "action_id": REASON,
                "multiline": True,
                "max_length": 1000,
            },
        }
    )
    return _modal(external_id, lang, blocks, submit=True, private_metadata=private_metadata)


def submitted(view: dict[str, Any]) -> tuple[str, int | None, set[str]]:
    """(reason, picked revision or None, ticked confirmation values) of a submitted confirmation modal."""
    values = (view.get("state") or {}).get("values") or {}
    reason = str(((values.get(REASON) or {}).get(REASON) or {}).get("value") or "").strip()[:1000]
    picked = ((values.get(REVISION) or {}).get(REVISION) or {}).get("selected_option") or {}
    raw = str(picked.get("value") or "")
    revision = int(raw) if raw.isdigit() else None
    ticked = ((values.get(CONFIRM) or {}).get(CONFIRM) or {}).get("selected_options") or []
    confirmed = {str(o.get("value")) for o in ticked if isinstance(o, dict)}
    return reason, revision, confirmed


# --- in the thread -----------------------------------------------------------------------------------------


def progress_message(
    record: RollbackRecord, lang: str, state: str, extra: list[str] | None = None
) -> Message:
    """The one message that shows a rollback, updated in place from intent to result."""
    if record.from_revision is not None and record.to_revision is not None:
        title = t(
            lang,
            "rb_progress_title",
            target=record.target,
            from_rev=record.from_revision,
            to_rev=record.to_revision,
            images=", ".join(record.to_images) or "?",
            who=record.requested_by.mention,
            reason=escape(record.reason),
        )
    else:
        title = t(
            lang,
            "rb_progress_start",
            target=record.target,
            who=record.requested_by.mention,
            reason=escape(record.reason),
        )
    blocks = [section(title), section(state)]
    for line in extra or []:
        blocks.append(section(line))
    return clip(f"{title}\n{state}", 3000), blocks


def report_messages(markdown: str, version: str, lang: str) -> list[Message]:
    """The incident-report draft as code blocks (copied verbatim into the postmortem), split to fit."""
    chunks: list[str] = []
    current = ""
    for line in markdown.splitlines():
        if current and len(current) + len(line) + 1 > _REPORT_CHUNK:
            chunks.append(current)
            current = ""
        current += line[:_REPORT_CHUNK] if not current else "\n" + line[:_REPORT_CHUNK]
    if current:
        chunks.append(current)
    intro = t(lang, "rb_report_intro", version=version)
    out: list[Message] = []
    for n, chunk in enumerate(chunks):
        head = f"{intro}\n" if n == 0 else ""
        text = f"{head}```{escape(chunk)}```"
        out.append((clip(text, 3000), [section(text)]))
    return out


def code_blocks(text: str) -> str:
    """The draft back out of posted report messages (what a reader would copy)."""
    parts = text.split("```")
    return "\n".join(parts[i] for i in range(1, len(parts), 2))
