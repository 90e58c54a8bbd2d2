"""Block Kit limits as Slack enforces them, as a pure validator for the fake Web API.

Limits follow reference/slack.md §5. Errors are Slack-style strings ending in a JSON pointer, e.g.
``must be less than 3001 characters [json-pointer:/blocks/0/text/text]``, so a test failure reads like the
``invalid_blocks`` answer the real API would give.
"""

from __future__ import annotations

import json
from typing import Any

MESSAGE_BLOCKS = 50
VIEW_BLOCKS = 100
VIEW_MAX_BYTES = 250 * 1024
# Undocumented: Slack answers msg_blocks_too_long somewhere around 11-13k chars of block text
# (bolt-js#2509, #2867); 12k keeps renderers honest without being stricter than Slack.
BLOCK_TEXT_CAP = 12_000

BLOCK_TYPES = frozenset(
    {"section", "divider", "header", "context", "actions", "image", "input", "rich_text", "markdown"}
    | {"video", "file", "context_actions", "table"}
)
TEXT_TYPES = ("plain_text", "mrkdwn")
_OPTION_ELEMENTS = frozenset({"checkboxes", "radio_buttons"})
_SELECTS = frozenset({"static_select", "multi_static_select", "overflow"})
_INTERACTIVE = frozenset(
    {"button", "datepicker", "timepicker", "datetimepicker", "users_select", "multi_users_select"}
    | {"conversations_select", "multi_conversations_select", "channels_select", "multi_channels_select"}
    | {"external_select", "multi_external_select", "workflow_button", "rich_text_input"}
    | _OPTION_ELEMENTS
    | _SELECTS
)
_INPUT_ONLY = frozenset(
    {"plain_text_input", "number_input", "email_text_input", "url_text_input", "file_input"}
)


class _Errors:
    """Collects errors; ``at`` renders a JSON pointer for a path."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.items: list[str] = []

    def add(self, msg: str, *path: str | int) -> None:
        pointer = "/".join([self.root, *(str(p) for p in path)])
        self.items.append(f"{msg} [json-pointer:{pointer}]")


def _text(
    err: _Errors,
    obj: Any,
    path: tuple[str | int, ...],
    *,
    max_len: int = 3000,
    plain_only: bool = False,
) -> None:
    if not isinstance(obj, dict):
        err.add("must be an object", *path)
        return
    allowed = ("plain_text",) if plain_only else TEXT_TYPES
    if obj.get("type") not in allowed:
        err.add("must be a valid enum value", *path, "type")
    text = obj.get("text")
    if not isinstance(text, str):
        err.add("must provide a string", *path, "text")
    elif len(text) == 0:
        err.add("must be more than 0 characters", *path, "text")
    elif len(text) > max_len:
        err.add(f"must be less than {max_len + 1} characters", *path, "text")


def _max_str(err: _Errors, value: Any, max_len: int, *path: str | int) -> None:
    if value is None:
        return
    if not isinstance(value, str):
        err.add("must provide a string", *path)
    elif len(value) > max_len:
        err.add(f"must be less than {max_len + 1} characters", *path)


def _confirm(err: _Errors, obj: Any, path: tuple[str | int, ...]) -> None:
    if not isinstance(obj, dict):
        err.add("must be an object", *path)
        return
    _text(err, obj.get("title"), (*path, "title"), max_len=100, plain_only=True)
    _text(err, obj.get("text"), (*path, "text"), max_len=300)
    _text(err, obj.get("confirm"), (*path, "confirm"), max_len=30, plain_only=True)
    _text(err, obj.get("deny"), (*path, "deny"), max_len=30, plain_only=True)


def _options(
    err: _Errors, options: Any, path: tuple[str | int, ...], *, max_items: int, plain_only: bool
) -> list[tuple[str, str]]:
    if not isinstance(options, list) or not options:
        err.add("must provide at least 1 item", *path)
        return []
    if len(options) > max_items:
        err.add(f"no more than {max_items} items allowed", *path)
    keys: list[tuple[str, str]] = []
    for i, opt in enumerate(options):
        if not isinstance(opt, dict):
            err.add("must be an object", *path, i)
            continue
        _text(err, opt.get("text"), (*path, i, "text"), max_len=75, plain_only=plain_only)
        value = opt.get("value")
        if not isinstance(value, str) or not value:
            err.add("must provide a string", *path, i, "value")
        _max_str(err, value, 150, *path, i, "value")
        if opt.get("description") is not None:
            _text(err, opt["description"], (*path, i, "description"), max_len=75, plain_only=plain_only)
        keys.append((str(value), str((opt.get("text") or {}).get("text"))))
    return keys


def _element(err: _Errors, el: Any, path: tuple[str | int, ...], allowed: frozenset[str]) -> None:
    if not isinstance(el, dict):
        err.add("must be an object", *path)
        return
    kind = el.get("type")
    if kind not in allowed:
        err.add(f"unsupported type: {kind}", *path, "type")
        return
    _max_str(err, el.get("action_id"), 255, *path, "action_id")
    if el.get("confirm") is not None:
        _confirm(err, el["confirm"], (*path, "confirm"))
    if el.get("placeholder") is not None:
        _text(err, el["placeholder"], (*path, "placeholder"), max_len=150, plain_only=True)
    if kind == "button":
        _text(err, el.get("text"), (*path, "text"), max_len=75, plain_only=True)
        _max_str(err, el.get("value"), 2000, *path, "value")
        _max_str(err, el.get("url"), 3000, *path, "url")
    elif kind in _OPTION_ELEMENTS or kind in _SELECTS:
        is_checks = kind in _OPTION_ELEMENTS
        max_items = 10 if is_checks else 100 if kind != "overflow" else 5
        if kind in _SELECTS and "option_groups" in el:
            groups = el["option_groups"]
            if not isinstance(groups, list) or len(groups) > 100:
                err.add("no more than 100 items allowed", *path, "option_groups")
            return
        keys = _options(
            err, el.get("options"), (*path, "options"), max_items=max_items, plain_only=not is_checks
        )
        initial = el.get("initial_options") or ([el["initial_option"]] if el.get("initial_option") else [])
        field = "initial_options" if "initial_options" in el else "initial_option"
        for i, opt in enumerate(initial):
            # Slack rejects an initial option that is not one of the options (same value AND text).
            key = (
                (str(opt.get("value")), str((opt.get("text") or {}).get("text")))
                if isinstance(opt, dict)
                else None
            )
            if key not in keys:
                err.add(
                    "must match one of the options",
                    *path,
                    field,
                    *([i] if field == "initial_options" else []),
                )


def _block(err: _Errors, block: Any, i: int, surface: str, seen_ids: set[str]) -> None:
    if not isinstance(block, dict):
        err.add("must be an object", i)
        return
    kind = block.get("type")
    if kind not in BLOCK_TYPES or (kind == "input" and surface == "message"):
        err.add(f"unsupported type: {kind}", i, "type")
        return
    block_id = block.get("block_id")
    if block_id is not None:
        _max_str(err, block_id, 255, i, "block_id")
        if block_id in seen_ids:
            err.add("must be unique", i, "block_id")
        seen_ids.add(str(block_id))
    if kind == "section":
        if block.get("text") is None and not block.get("fields"):
            err.add("must provide either text or fields", i)
        if block.get("text") is not None:
            _text(err, block["text"], (i, "text"))
        fields = block.get("fields")
        if fields is not None:
            if not isinstance(fields, list) or len(fields) > 10:
                err.add("no more than 10 items allowed", i, "fields")
            else:
                for j, f in enumerate(fields):
                    _text(err, f, (i, "fields", j), max_len=2000)
        if block.get("accessory") is not None:
            _element(err, block["accessory"], (i, "accessory"), _INTERACTIVE | {"image"})
    elif kind == "header":
        _text(err, block.get("text"), (i, "text"), max_len=150, plain_only=True)
    elif kind == "context":
        elements = block.get("elements")
        if not isinstance(elements, list) or not elements:
            err.add("must provide at least 1 item", i, "elements")
            return
        if len(elements) > 10:
            err.add("no more than 10 items allowed", i, "elements")
        for j, el in enumerate(elements):
            if isinstance(el, dict) and el.get("type") == "image":
                _max_str(err, el.get("alt_text"), 2000, i, "elements", j, "alt_text")
            else:
                _text(err, el, (i, "elements", j))
    elif kind == "actions":
        elements = block.get("elements")
        if not isinstance(elements, list) or not elements:
            err.add("must provide at least 1 item", i, "elements")
            return
        if len(elements) > 25:
            err.add("no more than 25 items allowed", i, "elements")
        action_ids: set[str] = set()
        for j, el in enumerate(elements):
            _element(err, el, (i, "elements", j), _INTERACTIVE)
            aid = el.get("action_id") if isinstance(el, dict) else None
            if aid is not None:
                if aid in action_ids:
                    err.add("must be unique", i, "elements", j, "action_id")
                action_ids.add(aid)
    elif kind == "image":
        _max_str(err, block.get("image_url"), 3000, i, "image_url")
        if not block.get("alt_text"):
            err.add("must provide a string", i, "alt_text")
        _max_str(err, block.get("alt_text"), 2000, i, "alt_text")
    elif kind == "input":
        _text(err, block.get("label"), (i, "label"), max_len=2000, plain_only=True)
        if block.get("hint") is not None:
            _text(err, block["hint"], (i, "hint"), max_len=2000, plain_only=True)
        _element(err, block.get("element"), (i, "element"), _INTERACTIVE | _INPUT_ONLY)
    elif kind == "markdown":
        if surface != "message":
            err.add(f"unsupported type: {kind}", i, "type")
        _max_str(err, block.get("text"), 12_000, i, "text")


def validate_blocks(blocks: Any, surface: str = "message", *, root: str = "/blocks") -> list[str]:
    """Return Slack-style errors for ``blocks`` on ``surface`` ("message", "modal" or "home")."""
    err = _Errors(root)
    if not isinstance(blocks, list):
        err.add("must be an array")
        return err.items
    limit = MESSAGE_BLOCKS if surface == "message" else VIEW_BLOCKS
    if len(blocks) > limit:
        err.add(f"no more than {limit} items allowed")
    seen_ids: set[str] = set()
    for i, block in enumerate(blocks):
        _block(err, block, i, surface, seen_ids)
    return err.items


def validate_view(view: Any) -> list[str]:
    """Return Slack-style errors for a modal or Home tab view (pointers under ``/view``)."""
    err = _Errors("/view")
    if not isinstance(view, dict):
        err.add("must be an object")
        return err.items
    kind = view.get("type")
    if kind not in ("modal", "home"):
        err.add("must be a valid enum value", "type")
        return err.items
    if kind == "modal":
        _text(err, view.get("title"), ("title",), max_len=24, plain_only=True)
    for key in ("submit", "close"):
        if view.get(key) is not None:
            _text(err, view[key], (key,), max_len=24, plain_only=True)
    _max_str(err, view.get("private_metadata"), 3000, "private_metadata")
    _max_str(err, view.get("callback_id"), 255, "callback_id")
    _max_str(err, view.get("external_id"), 255, "external_id")
    err.items.extend(validate_blocks(view.get("blocks"), kind, root="/view/blocks"))
    return err.items


def view_size(view: Any) -> int:
    """Bytes of the view as Slack measures it for ``view_too_large``: its compact JSON encoding."""
    return len(json.dumps(view, separators=(",", ":"), ensure_ascii=False).encode())


def block_text_chars(node: Any) -> int:
    """Characters of text carried by blocks: what the undocumented ``msg_blocks_too_long`` cap counts."""
    if isinstance(node, list):
        return sum(block_text_chars(n) for n in node)
    if not isinstance(node, dict):
        return 0
    own = node.get("text")
    total = len(own) if isinstance(own, str) else 0
    return total + sum(block_text_chars(v) for k, v in node.items() if isinstance(v, dict | list))


def render_text(blocks: Any) -> str:
    """Flatten blocks into readable lines for assertions: buttons as ``[Label]``, options as ``[x] label``."""
    lines: list[str] = []
    for block in blocks or []:
        if not isinstance(block, dict):
            continue
        parts: list[str] = []
        for key in ("text", "label"):
            if isinstance(block.get(key), dict):
                parts.append(str(block[key].get("text", "")))
            elif isinstance(block.get(key), str):
                parts.append(block[key])
        parts.extend(str(f.get("text", "")) for f in block.get("fields") or [] if isinstance(f, dict))
        elements = [*(block.get("elements") or []), block.get("accessory"), block.get("element")]
        parts.extend(_render_element(el) for el in elements if isinstance(el, dict))
        line = " ".join(p for p in parts if p)
        if block.get("type") == "divider":
            line = "---"
        if line:
            lines.append(line)
    return "\n".join(lines)


def _render_element(el: dict[str, Any]) -> str:
    kind = el.get("type")
    if kind in TEXT_TYPES:
        return str(el.get("text", ""))
    if kind == "button":
        return f"[{(el.get('text') or {}).get('text', '')}]"
    if kind in _OPTION_ELEMENTS:
        chosen = {o.get("value") for o in el.get("initial_options") or [el.get("initial_option") or {}]}
        return " ".join(
            f"[{'x' if o.get('value') in chosen else ' '}] {(o.get('text') or {}).get('text', '')}"
            for o in el.get("options") or []
        )
    if kind == "image":
        return f"<image: {el.get('alt_text', '')}>"
    if kind == "rich_text_section":
        return "".join(str(e.get("text", "")) for e in el.get("elements") or [] if isinstance(e, dict))
    return ""
