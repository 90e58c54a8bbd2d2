"""Every action_id, callback_id and block_id shape the bot uses, in one place."""

from __future__ import annotations

import re
from enum import StrEnum


class ActionId(StrEnum):
    TOGGLE_ITEM = "item-toggle"
    ADVANCE = "release-advance"
    ABORT = "release-abort"
    HEALTH_CHECK = "health-check"
    DECLARE_INCIDENT = "incident-declare"
    ROLLBACK = "release-rollback"
    ROLLED_BACK_BY_HAND = "release-rolled-back-by-hand"
    ACK_INCIDENT = "incident-ack"
    DISMISS_INCIDENT = "incident-dismiss"
    OVERRIDE = "gate-override"
    OPEN_THREAD = "open-thread"
    EVIDENCE_RECHECK = "evidence-recheck"
    EVIDENCE_OVERRIDE = "evidence-override"
    TRAFFIC_ACK = "traffic-drift-ack"


class CallbackId(StrEnum):
    ABORT = "abort-modal"
    OVERRIDE = "override-modal"
    ROLLBACK = "rollback-modal"
    ROLLED_BACK_BY_HAND = "rolled-back-by-hand-modal"
    INCIDENT = "incident-modal"
    EVIDENCE_OVERRIDE = "evidence-override-modal"


_BLOCK_RE = re.compile(
    r"^(?P<kind>[a-z]{2})\.(?P<release>\d{1,18})\.(?P<message>\d{1,18})\.(?P<rev>\d{1,9})(\.\d+)?$"
)


def block_id(kind: str, release_id: int, message_id: int, rev: int, index: int | None = None) -> str:
    """A block id that names its release and message and changes with every render.

    Slack keeps a client's checkbox state per block_id; a new id on every render makes every client show the
    stored state instead of its own stale one.
    """
    base = f"{kind}.{release_id}.{message_id}.{rev}"
    return base if index is None else f"{base}.{index}"


def parse_block_id(value: str) -> tuple[str, int, int] | None:
    """(kind, release_id, message_id) of a block id we rendered, or None for anything else."""
    match = _BLOCK_RE.match(value or "")
    if not match:
        return None
    return match["kind"], int(match["release"]), int(match["message"])


DECLARE_INCIDENT_RE = re.compile(
    rf"^{ActionId.DECLARE_INCIDENT.value}:(?P<criterion>[A-Za-z0-9_.\-]{{1,64}})$"
)


def declare_action_id(criterion_key: str) -> str:
    """The action id of a header "declare" button: one per manual criterion, unique within its block."""
    return f"{ActionId.DECLARE_INCIDENT.value}:{criterion_key}"
