"""Block Kit as terminal text for the playground: readable lines, and numbered controls to click."""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from typing import Any

_EMOJI = {
    "white_check_mark": "✔",
    "large_blue_circle": "●",
    "white_circle": "○",
    "black_square_button": "☐",
    "rotating_light": "🚨",
    "warning": "⚠",
    "alarm_clock": "⏰",
    "no_entry": "⛔",
    "rewind": "⏪",
    "memo": "📝",
    "x": "✘",
    "hourglass_flowing_sand": "⏳",
    "rocket": "🚀",
    "tada": "🎉",
    "eyes": "👀",
    "red_circle": "🔴",
    "large_green_circle": "🟢",
    "lock": "🔒",
    "unlock": "🔓",
    "test_tube": "🧪",
    "straight_ruler": "📏",
    "see_no_evil": "🙈",
    "ok_hand": "👌",
    "information_source": "ℹ",
    "grey_question": "❔",
    "heavy_minus_sign": "➖",
    "label": "🏷",
    "checkered_flag": "🏁",
    "bar_chart": "📊",
}
_DATE = re.compile(r"<!date\^\d+\^[^|>]*\|([^>]*)>")
_LINK = re.compile(r"<(https?://[^|>]+)\|([^>]+)>")
_BARE_LINK = re.compile(r"<(https?://[^|>]+)>")
_USER = re.compile(r"<@([A-Z0-9]+)(?:\|([^>]+))?>")
_CHANNEL = re.compile(r"<#([A-Z0-9]+)(?:\|([^>]*))?>")
_SPECIAL = re.compile(r"<!(here|channel|everyone)[^>]*>")
_EMOJI_RE = re.compile(r":([a-z0-9_+\-]+):")
_BOLD = re.compile(r"(?<![\w*])\*([^*\n]+)\*(?![\w*])")


@dataclass(frozen=True)
class Control:
    """Something a person can click: a button or a checklist checkbox, in a message or a modal."""

    label: str
    element: dict[str, Any]
    block: dict[str, Any]
    channel: str | None
    message_ts: str | None


def plain(text: str, names: dict[str, str]) -> str:
    """Slack mrkdwn as plain terminal text."""
    text = _DATE.sub(lambda m: m.group(1), text)
    text = _LINK.sub(lambda m: f"{m.group(2)} ({m.group(1)})", text)
    text = _BARE_LINK.sub(lambda m: m.group(1), text)
    text = _USER.sub(lambda m: "@" + (m.group(2) or names.get(m.group(1), m.group(1))), text)
    text = _CHANNEL.sub(lambda m: "#" + (m.group(2) or names.get(m.group(1), m.group(1))), text)
    text = _SPECIAL.sub(lambda m: "@" + m.group(1), text)
    text = _EMOJI_RE.sub(lambda m: _EMOJI.get(m.group(1), m.group(0)), text)
    text = _BOLD.sub(lambda m: m.group(1), text)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _text_of(obj: Any) -> str:
    return str(obj.get("text", "")) if isinstance(obj, dict) else ""


def render_blocks(
    blocks: list[dict[str, Any]],
    names: dict[str, str],
    *,
    channel: str | None,
    message_ts: str | None,
    fallback: str = "",
    width: int = 100,
) -> tuple[list[str], list[Control]]:
    """Lines to print and the controls found, in reading order (the caller numbers them)."""
    lines: list[str] = []
    controls: list[Control] = []

    def add(text: str, indent: str = "") -> None:
        for raw in plain(text, names).splitlines() or [""]:
            wrapped = textwrap.wrap(raw, width - len(indent)) or [""]
            lines.extend(indent + w for w in wrapped)

    def control(label: str, element: dict[str, Any], block: dict[str, Any]) -> str:
        controls.append(Control(plain(label, names), element, block, channel, message_ts))
        return f"[#{len(controls)}]"

    for block in blocks:
        kind = block.get("type")
        if kind == "header":
            add("== " + _text_of(block.get("text")) + " ==")
        elif kind == "divider":
            lines.append("-" * 40)
        elif kind in ("section", "context"):
            parts = [_text_of(e) for e in block.get("elements", [])] if kind == "context" else []
            if kind == "section":
                parts = [_text_of(block.get("text"))] + [_text_of(f) for f in block.get("fields", [])]
            text = " · ".join(p for p in parts if p)
            accessory = block.get("accessory") or {}
            if accessory.get("type") == "checkboxes":
                ticked = bool(accessory.get("initial_options"))
                mark = control(text.splitlines()[0] if text else "item", accessory, block)
                add(f"{mark} {'[x]' if ticked else '[ ]'} {text}")
            elif accessory.get("type") == "button":
                add(
                    f"{text}  {control(_text_of(accessory.get('text')), accessory, block)} "
                    f"{_text_of(accessory.get('text'))}"
                )
            else:
                add(text, "   " if kind == "context" else "")
        elif kind == "actions":
            shown = []
            for element in block.get("elements", []):
                if element.get("type") == "button":
                    label = _text_of(element.get("text"))
                    shown.append(f"{control(label, element, block)} {plain(label, names)}")
            if shown:
                add("   ".join(shown))
        elif kind == "input":
            element = block.get("element") or {}
            label = _text_of(block.get("label"))
            if element.get("type") == "plain_text_input":
                add(f"  ({label}: type `submit <text>`)")
            else:
                options = [_text_of(o.get("text")) for o in element.get("options") or []]
                chosen = _text_of((element.get("initial_option") or {}).get("text"))
                add(
                    f"  ({label}: {' / '.join(options)}{f'; {chosen} unless you pick another' if chosen else ''})"
                )
    if not lines and fallback:
        add(fallback)
    return lines, controls
