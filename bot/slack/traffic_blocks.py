"""The cluster's view on the release header: "클러스터: 카나리 10 % · 2/4단계 · 일시 정지", and drift."""

from __future__ import annotations

from typing import Any

from bot.domain.traffic import view_from_dict
from bot.i18n import t
from bot.slack.dates import slack_date
from bot.slack.ids import ActionId, block_id
from bot.usecases.releases import ReleaseView

Block = dict[str, Any]


def escape(text: str) -> str:
    # The same three characters as bot.slack.blocks.escape, which imports this module.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def cluster_line(view: ReleaseView, lang: str) -> str | None:
    """The cluster's view in one line, or None for a manual checklist (or before production)."""
    if view.checklist.traffic.is_manual or not view.reached_production:
        return None
    state = view.traffic
    if state is None or not state.view:
        return t(lang, "traffic_line_unread", target=view.checklist.traffic.describe())
    live = view_from_dict(state.view)
    step = ""
    if live.step is not None and live.steps:
        step = t(lang, "traffic_step", n=min(live.step + 1, live.steps), total=live.steps)
    if live.aborted:
        phase = t(lang, "traffic_aborted")
    elif live.provider == "gateway-api":
        phase = t(lang, "traffic_route_accepted" if live.accepted else "traffic_route_pending")
    else:
        phase = t(lang, f"traffic_phase_{live.phase}")
    line = t(lang, "traffic_line", weight=live.serving_weight, step=step, phase=phase)
    if live.actual_weight is not None and live.actual_weight != live.set_weight:
        line += t(lang, "traffic_weights", set=live.set_weight)
    if live.message and live.phase in ("Degraded",):
        line += f" · {escape(live.message)}"
    if state.serving_since is not None and not live.aborted:
        line += " · " + t(lang, "traffic_serving_since", when=slack_date(state.serving_since, "{time}"))
    return line


def header_blocks(view: ReleaseView, rel: int, mid: int, rev: int, lang: str) -> list[Block]:
    """The cluster line, and while drift is unacknowledged its warning with the acknowledge button."""
    line = cluster_line(view, lang)
    if line is None:
        return []
    blocks: list[Block] = [
        {
            "type": "context",
            "block_id": block_id("ht", rel, mid, rev),
            "elements": [{"type": "mrkdwn", "text": line}],
        }
    ]
    drift = view.traffic.unacknowledged_drift if view.traffic is not None else None
    if drift is not None and not view.status.is_terminal:
        text = t(
            lang,
            "traffic_drift_header",
            what=escape(", ".join(drift.get("what") or [])),
            by=escape(drift.get("by") or "?"),
        )
        blocks.append(
            {"type": "section", "block_id": block_id("hd", rel, mid, rev), "text": {"type": "mrkdwn", "text": text}}
        )
        blocks.append(
            {
                "type": "actions",
                "block_id": block_id("hk", rel, mid, rev),
                "elements": [
                    {
                        "type": "button",
                        "action_id": ActionId.TRAFFIC_ACK.value,
                        "text": {"type": "plain_text", "text": t(lang, "btn_ack_drift")},
                        "value": str(view.release.id),
                    }
                ],
            }
        )
    return blocks
