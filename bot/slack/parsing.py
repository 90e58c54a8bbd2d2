"""Slack payloads → typed commands. Pure: raises UsageError (or PermissionDenied for forged ids), never KeyError."""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from bot.domain.checklist import reads_as_version
from bot.domain.records import Actor
from bot.domain.release import validate_version
from bot.errors import PermissionDenied, UsageError
from bot.slack.ids import parse_block_id
from bot.usecases.releases import ToggleItems

MAX_COMMAND_TEXT = 2000
SUBCOMMANDS = (
    "start", "status", "list", "help", "abort", "incident", "rollback", "unlock", "report", "rolledback", "contacts"
)
NEEDS_VERSION = ("start", "abort", "incident", "rollback", "report")
NEEDS_REASON = ("abort", "incident", "unlock", "rolledback")
# A version these take when given first ("rolledback v1.4.0 <reason>"); without one, the channel's active release.
MAY_NAME_VERSION = ("rolledback",)
# A checklist's service key (bot.checklist.schema), named before the version where a channel serves several.
_SERVICE = re.compile(r"[a-z][a-z0-9_.-]{0,63}")
# str.splitlines() breaks at these; Slack keeps a pasted line break in the command text.
_LINE_BREAKS = ("\n", "\r", "\v", "\f", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029")


@dataclass(frozen=True)
class Command:
    """A parsed ``/release`` invocation."""

    sub: str
    version: str | None
    reason: str
    actor: Actor
    channel_id: str
    response_url: str | None
    trigger_id: str | None
    team_domain: str | None
    service: str | None = None  # named before the version: `/release start backend v1.2.3`


def _str(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    return value if isinstance(value, str) else ""


def actor_of(body: dict[str, Any]) -> Actor:
    """The user of a command or an interaction payload; parse defensively, Slack's shapes vary."""
    user = body.get("user")
    if isinstance(user, dict):
        uid = user.get("id")
        name = user.get("name") or user.get("username") or uid
    else:
        uid = body.get("user_id")
        name = body.get("user_name") or uid
    if not isinstance(uid, str) or not uid:
        raise UsageError("bad_payload")
    return Actor(uid, str(name)[:128])


def parse_command(body: dict[str, Any], services: Collection[str] = ()) -> Command:
    """Parse ``/release <sub> [service] [version] [reason…]``; an unknown or missing subcommand means help.

    ``services`` are the deployment's service names, which may come before a version (and before an unlock's
    reason) where a channel serves several.

    Anything this grammar does not name is refused whole rather than dropped: a command pasted twice
    (``start v6.6.8`` then ``start v6.6.9`` on the next line) must not quietly start only the first."""
    text = _str(body, "text").strip()
    if len(text) > MAX_COMMAND_TEXT:
        raise UsageError("text_too_long", params={"length": len(text), "limit": MAX_COMMAND_TEXT})
    if any(mark in text for mark in _LINE_BREAKS):
        raise UsageError("command_multiline")
    words = text.split(maxsplit=1)
    sub = words[0].lower() if words else "help"
    rest = words[1].strip() if len(words) > 1 else ""
    if sub not in SUBCOMMANDS:
        raise UsageError("unknown_subcommand", params={"sub": sub[:40]})
    version: str | None = None
    service: str | None = None
    if sub in MAY_NAME_VERSION or sub in NEEDS_VERSION or (sub == "status" and rest) or sub == "unlock":
        service, rest = _service_first(sub, rest, services)
    if sub in MAY_NAME_VERSION and reads_as_version(rest):
        parts = rest.split(maxsplit=1)
        try:
            version = validate_version(parts[0])
        except UsageError as e:
            raise UsageError(e.user_message, params={"version": parts[0][:80]}) from None
        rest = parts[1].strip() if len(parts) > 1 else ""
    elif sub in NEEDS_VERSION or (sub == "status" and rest):
        parts = rest.split(maxsplit=1)
        raw = parts[0] if parts else ""
        try:
            version = validate_version(raw)
        except UsageError as e:
            raise UsageError(e.user_message, params={"version": raw[:80]}) from None
        rest = parts[1].strip() if len(parts) > 1 else ""
    # Only a start needs the service to have a checklist now: a running release of a service whose checklist was
    # since removed or renamed must still be reachable by the name it runs under (its lookup answers a typo).
    if sub == "start" and service is not None and services and service not in services:
        names = ", ".join(f"`{name}`" for name in services)
        raise UsageError("service_unknown", params={"service": service, "services": names})
    if sub in NEEDS_REASON and not rest:
        raise UsageError("reason_missing", params={"sub": sub})
    if sub not in NEEDS_REASON and rest:
        raise UsageError("command_extra_words", params={"sub": sub, "extra": rest[:80]})
    channel_id = _str(body, "channel_id")
    if not channel_id:
        raise UsageError("bad_payload")
    return Command(
        sub=sub,
        version=version,
        reason=rest,
        actor=actor_of(body),
        channel_id=channel_id,
        response_url=_str(body, "response_url") or None,
        trigger_id=_str(body, "trigger_id") or None,
        team_domain=_str(body, "team_domain") or _team_domain(body),
        service=service,
    )


def _service_first(sub: str, rest: str, services: Collection[str]) -> tuple[str | None, str]:
    """(service, the rest) when the words start with a service name, else (None, rest) unchanged.

    Before a version any service-shaped word is one (an unknown one is answered with the list). Where a reason
    may follow directly (rolledback, unlock), only a service this deployment has counts: "rolledback reverted
    v1.4.0 broke login" keeps its reason."""
    parts = rest.split(maxsplit=1)
    word = parts[0].lower() if parts else ""
    if not _SERVICE.fullmatch(word) or reads_as_version(word):
        return None, rest
    # A service this deployment has, where a version must follow: the next word is taken for the version, so a bad
    # or missing one is what is answered (`start web 1.4.0`: "`1.4.0` is not a release version", not "`web`").
    named = word in services and (sub == "status" or sub in NEEDS_VERSION)
    if len(parts) < 2:
        # `/release status web`: that service's active release here; `/release start web`: which version?
        return (word, "") if named else (None, rest)
    if sub in ("rolledback", "unlock") and word not in services:
        return None, rest
    if sub != "unlock" and not reads_as_version(parts[1]) and not named:
        return None, rest
    return word, parts[1].strip()


def _team_domain(body: dict[str, Any]) -> str | None:
    team = body.get("team")
    if isinstance(team, dict) and isinstance(team.get("domain"), str):
        return str(team["domain"])
    return None


def container(body: dict[str, Any]) -> tuple[str, str]:
    """(channel_id, message_ts) of the message an action was clicked on."""
    box = body.get("container")
    if not isinstance(box, dict):
        raise UsageError("bad_payload")
    channel, ts = box.get("channel_id"), box.get("message_ts")
    if not isinstance(channel, str) or not isinstance(ts, str):
        raise UsageError("bad_payload")
    return channel, ts


def _element_initial(body: dict[str, Any], block_id: str, action_id: str) -> set[str]:
    """Values the clicker's copy of the message showed as ticked for that element."""
    message = body.get("message")
    blocks = message.get("blocks") if isinstance(message, dict) else None
    for block in blocks if isinstance(blocks, list) else []:
        if not isinstance(block, dict) or block.get("block_id") != block_id:
            continue
        candidates = [block.get("accessory"), *list(block.get("elements") or [])]
        for element in candidates:
            if isinstance(element, dict) and element.get("action_id") == action_id:
                options = element.get("initial_options") or []
                return {str(o.get("value")) for o in options if isinstance(o, dict) and o.get("value")}
    return set()


def toggle(body: dict[str, Any], action: dict[str, Any]) -> ToggleItems:
    """A checkbox click → the set changes it means: selected − initial ticks, initial − selected unticks."""
    block_id, action_id = action.get("block_id"), action.get("action_id")
    if not isinstance(block_id, str) or not isinstance(action_id, str):
        raise UsageError("bad_payload")
    parsed = parse_block_id(block_id)
    if parsed is None or parsed[0] != "it":
        raise PermissionDenied("forged_action")
    _, release_id, message_id = parsed
    selected_raw = action.get("selected_options")
    if not isinstance(selected_raw, list):
        raise UsageError("bad_payload")
    selected = {str(o.get("value")) for o in selected_raw if isinstance(o, dict) and o.get("value")}
    initial = _element_initial(body, block_id, action_id)
    changes = [(v, True) for v in sorted(selected - initial)]
    changes += [(v, False) for v in sorted(initial - selected)]
    channel, ts = container(body)
    action_ts = action.get("action_ts")
    return ToggleItems(
        release_id=release_id,
        message_id=message_id,
        channel_id=channel,
        message_ts=ts,
        actor=actor_of(body),
        changes=tuple(changes),
        action_ts=action_ts if isinstance(action_ts, str) else None,
    )
