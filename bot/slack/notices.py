"""Block Kit for what the lifecycle posts in a release thread, and its modals. Pure functions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.domain.checklist import Checklist
from bot.domain.release import FINISHED_STEP, StepKind, next_step_key
from bot.i18n import t
from bot.i18n.units import human_duration, whole_minutes
from bot.ports import HealthResult
from bot.slack.blocks import Block, advance_label, clip, escape, step_label
from bot.slack.dates import slack_date
from bot.slack.ids import ActionId, CallbackId
from bot.usecases.gate_window import record_line
from bot.usecases.releases import ReleaseView

Message = tuple[str, list[Block]]


def section(text: str) -> Block:
    # verbatim: Slack does not turn bare URLs, #names or @here typed into a reason into links or mentions; the
    # bot's own <@U…>, <!date…> and <url|label> still render (they are explicit markup).
    return {"type": "section", "text": {"type": "mrkdwn", "text": clip(text), "verbatim": True}}


def context(text: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": clip(text), "verbatim": True}]}


def button(action: ActionId, label: str, value: str, style: str | None = None) -> Block:
    button: Block = {
        "type": "button",
        "action_id": action.value,
        "text": {"type": "plain_text", "text": label[:75]},
        "value": value,
    }
    if style:
        button["style"] = style
    return button


def mentions(user_ids: list[str], managers: tuple[str, ...]) -> str:
    seen: list[str] = []
    for uid in [*user_ids, *managers]:
        if uid and uid not in seen:
            seen.append(uid)
    return " ".join(f"<!subteam^{u}>" if u.startswith("S") else f"<@{u}>" for u in seen)


def gate_lines(checklist: Checklist, lang: str, figures: dict[str, Any] | None) -> str:
    gate = checklist.gate
    if gate is None:
        return ""
    threshold = t(lang, "gate_thresholds", error=f"{gate.max_error_rate * 100:g}", p95=f"{gate.max_p95_ms:g}")
    if not figures:
        return f"{threshold}\n{t(lang, 'gate_check_yourself')}"
    return f"{threshold}\n{figures.get('text', '')}"


def stage_reminder(
    view: ReleaseView,
    step_key: str,
    lang: str,
    *,
    who: list[str],
    managers: tuple[str, ...],
    late_s: float,
    figures: dict[str, Any] | None = None,
    timer_id: int | None = None,
    serving_since: str | None = None,
) -> Message:
    """The end of a canary wait: who to ping, the gate, and the buttons to move on or roll back.

    ``serving_since`` (ISO time) is set when a traffic provider paced the wait: it counted from when the cluster
    reported the stage's weight as served, not from the click."""
    step = next(s for s in view.steps if s.key == step_key)
    label = step_label(view.checklist, step, lang)
    wait = human_duration(step.wait, lang)
    lines = [t(lang, "reminder_stage_over", step=label, duration=wait) + " " + mentions(who, managers)]
    gate = gate_lines(view.checklist, lang, figures)
    if gate:
        lines.append(gate)
    if late_s > 2:
        lines.append(t(lang, "reminder_late", seconds=f"{late_s:.0f}"))
    if serving_since:
        try:
            since = slack_date(datetime.fromisoformat(serving_since), "{time}")
        except ValueError:
            since = serving_since
        lines.append(t(lang, "reminder_serving_since", when=since))
    blocks: list[Block] = [section("\n".join(lines))]
    target = next_step_key(view.steps, step_key)
    rid = view.release.id
    blocks.append(
        {
            "type": "actions",
            "elements": [
                button(
                    ActionId.ADVANCE,
                    advance_label(view.checklist, view.steps, step, target, lang),
                    f"{rid}:{step_key}:{target}",
                    "primary",
                ),
                button(ActionId.ROLLBACK, t(lang, "btn_rollback"), str(rid), "danger"),
                button(ActionId.ROLLED_BACK_BY_HAND, t(lang, "btn_rolled_back_by_hand"), str(rid)),
            ],
        }
    )
    return t(lang, "reminder_stage_over", step=label, duration=wait), blocks


def reminders_together(parts: list[tuple[ReleaseView, Message]], lang: str) -> Message:
    """Several releases' reminders of one channel in one message, each under its release's name with its buttons.

    The clock sends this when posting them one by one, at Slack's one post a second per channel, would make the
    last of them late (``Clockwork``); each button still names its own release."""
    intro = t(lang, "reminders_together", count=len(parts))
    blocks: list[Block] = [section(intro)]
    for view, (_text, own) in parts:
        blocks.append({"type": "divider"})
        name = t(lang, "reminder_of_release", service=escape(view.release.service), version=escape(view.release.version))
        first, *rest = own
        if first.get("type") == "section":
            text = first["text"]["text"]
            blocks.append(section(f"{name}\n{text}"))
        else:
            blocks += [section(name), first]
        blocks += rest
    summary = "; ".join(f"{view.release.service} {view.release.version}: {text}" for view, (text, _b) in parts)
    return clip(f"{intro} {summary}"), blocks


def watch_reminder(
    view: ReleaseView, step_key: str, lang: str, *, who: list[str], managers: tuple[str, ...], late_s: float
) -> Message:
    """The end of the post-deploy watch, with the checks the seed lists for it."""
    minutes = human_duration(view.checklist.post_deploy_watch, lang)
    phase = view.checklist.phase(next(s for s in view.steps if s.key == step_key).phase_key)
    checks = [
        item.text
        for section in phase.sections
        for item in section.items
        if "monitor" in section.key or "모니터링" in section.title
    ]
    if not checks:
        checks = [item.text for item in phase.items]
    lines = [t(lang, "reminder_watch_over", duration=minutes) + " " + mentions(who, managers)]
    lines += [f"• {escape(c)}" for c in checks]
    if late_s > 2:
        lines.append(t(lang, "reminder_late", seconds=f"{late_s:.0f}"))
    rid = view.release.id
    blocks = [
        section("\n".join(lines)),
        {
            "type": "actions",
            "elements": [
                button(
                    ActionId.ADVANCE, t(lang, "btn_finish"), f"{rid}:{step_key}:{FINISHED_STEP}", "primary"
                )
            ],
        },
    ]
    return t(lang, "reminder_watch_over", duration=minutes), blocks


def transition_note(
    view: ReleaseView,
    from_step: str,
    to_step: str,
    actor: str,
    lang: str,
    reason: str | None,
    gates: tuple[str, ...],
) -> Message:
    to = next((s for s in view.steps if s.key == to_step), None)
    text = t(lang, "moved_to", who=f"<@{actor}>", step=step_label(view.checklist, to, lang))
    if to is not None and to.kind is StepKind.CANARY and to.wait is not None:
        text += " " + t(lang, "reminder_set", duration=human_duration(to.wait, lang))
    if gates:
        text += "\n" + t(
            lang,
            "override_recorded",
            gates=", ".join(t(lang, f"gate_{g}") for g in gates),
            reason=escape(reason or ""),
        )
    return text, [section(text)]


def finished_announcement(view: ReleaseView, actor: str, lang: str) -> Message:
    text = t(lang, "release_finished", version=view.release.version, who=f"<@{actor}>")
    return text, [section(text)]


def aborted_note(view: ReleaseView, actor: str, reason: str, lang: str) -> Message:
    text = t(lang, "release_aborted", version=view.release.version, who=f"<@{actor}>", reason=escape(reason))
    return text, [section(text)]


def health_note(env_title: str, result: HealthResult, actor: str, lang: str) -> Message:
    if result.ok:
        text = t(
            lang,
            "health_ok",
            env=env_title,
            code=result.status_code,
            ms=f"{result.latency_ms:.0f}",
            summary=escape(result.summary),
        )
    elif result.status_code is not None:
        text = t(
            lang,
            "health_bad",
            env=env_title,
            code=result.status_code,
            ms=f"{result.latency_ms:.0f}",
            summary=escape(result.summary),
        )
    else:
        text = t(lang, "health_unreachable", env=env_title, summary=escape(result.summary))
    text += f"\n<{result.url}> · <@{actor}>"
    return text, [section(text)]


def rollback_procedure(view: ReleaseView, lang: str, lead: str) -> Message:
    """The checklist's rollback procedure (seed 5.2) under ``lead``, posted after every rollback."""
    target = view.checklist.rollback
    text = f"{lead}\n{t(lang, 'rb_procedure_title')}"
    if target is not None:
        procedure = target.procedure or (
            f"kubectl rollout undo deployment/{target.deployment} -n {target.namespace}\n"
            f"kubectl rollout status deployment/{target.deployment} -n {target.namespace}"
        )
        text += f"\n```{clip(procedure, 2800)}```"
    return text, [section(text)]


def gate_refusal(
    view: ReleaseView,
    from_step: str,
    to_step: str,
    lang: str,
    open_items: tuple[str, ...],
    wait_remaining_s: float | None,
    window: dict[str, Any] | None = None,
    observing_s: float | None = None,
) -> Message:
    """Why the clicker may not move on yet, and the way to override with a reason."""
    lines = []
    if window is not None:
        if window.get("verdict") == "no_data":
            reasons = "; ".join(str(r) for r in window.get("reasons") or []) or t(lang, "gate_no_samples")
            lines.append(":grey_question: " + t(lang, "gate_window_undecided", reasons=escape(reasons)))
        else:
            lines.append(":x: " + t(lang, "gate_window_refused"))
            lines.append(record_line(window, lang))
    if observing_s is not None and view.checklist.gate is not None:
        lines.append(
            t(
                lang,
                "gate_observing_left",
                total=human_duration(view.checklist.gate.min_observation, lang),
                minutes=f"{max(observing_s, 0) / 60:.1f}",
            )
        )
    if open_items:
        lines.append(t(lang, "gate_open_items", count=len(open_items)))
        for key in open_items[:15]:
            lines.append(f"• {escape(view.checklist.item(key).text)}")
        if len(open_items) > 15:
            lines.append(t(lang, "and_more", count=len(open_items) - 15))
    if wait_remaining_s is not None:
        current = next((s for s in view.steps if s.key == from_step), None)
        # Leaving the post-deploy watch early is finishing the release before seed 4.2's 30 minutes are up.
        key = "gate_watch_left" if current is not None and current.kind is StepKind.WATCH else "gate_wait_left"
        lines.append(t(lang, key, minutes=whole_minutes(wait_remaining_s)))
    rid = view.release.id
    blocks = [
        section("\n".join(lines)),
        {
            "type": "actions",
            "elements": [
                button(ActionId.OVERRIDE, t(lang, "btn_override"), f"{rid}:{from_step}:{to_step}", "danger")
            ],
        },
    ]
    return "\n".join(lines), blocks


def reason_modal(
    callback: CallbackId, title: str, prompt: str, submit: str, cancel: str, private_metadata: str
) -> dict[str, Any]:
    """A modal that asks for a reason; ``private_metadata`` is the sealed ids (bot.slack.view_meta)."""
    return {
        "type": "modal",
        "callback_id": callback.value,
        "title": {"type": "plain_text", "text": title[:24]},
        "submit": {"type": "plain_text", "text": submit[:24]},
        "close": {"type": "plain_text", "text": cancel[:24]},
        "private_metadata": private_metadata,
        "blocks": [
            {
                "type": "input",
                "block_id": "reason",
                "label": {"type": "plain_text", "text": prompt[:2000]},
                "element": {
                    "type": "plain_text_input",
                    "action_id": "reason",
                    "multiline": True,
                    "max_length": 1000,
                },
            }
        ],
    }
