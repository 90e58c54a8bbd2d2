"""Who may do what to a release: the one table of actions and the role each needs.

``RELEASE_MANAGERS`` (bot/config.py) names the managers: user ids and user groups, or ``*`` for everyone. Anyone
else in the release channel may still raise the alarm and see where a release stands. The README's table of roles
is checked against ``ROLES`` by tests/test_authz.py, so the two cannot drift apart.

Imports only the standard library.
"""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum


class Role(StrEnum):
    """Who may take an action."""

    CHANNEL = "channel"  # anyone in the release channel
    PHASE = "phase"  # the phase's ``tick_role`` in the checklist decides (anyone by default)
    MANAGERS = "release_managers"


class Action(StrEnum):
    """Everything a person can do to a release. The value is what a refusal records in the audit trail."""

    START = "start"  # asked in Slack; a verified tag push is authorized by the repository instead
    TICK = "tick"
    ADVANCE = "advance"
    OVERRIDE = "override"
    OVERRIDE_EVIDENCE = "override_evidence"
    ABORT = "abort"
    ROLL_BACK = "roll_back"
    RECORD_ROLLBACK = "record_rollback"  # a rollback done by hand, outside the bot
    UNLOCK = "unlock"
    HEALTH_CHECK = "health_check"
    DECLARE = "declare"
    ACKNOWLEDGE = "acknowledge"
    DISMISS = "dismiss"
    READ = "read"  # status, list, report, the App Home


ROLES: dict[Action, Role] = {
    Action.START: Role.MANAGERS,
    Action.TICK: Role.PHASE,
    Action.ADVANCE: Role.MANAGERS,
    Action.OVERRIDE: Role.MANAGERS,
    Action.OVERRIDE_EVIDENCE: Role.MANAGERS,  # checked by bot.usecases.evidence
    Action.ABORT: Role.MANAGERS,
    Action.ROLL_BACK: Role.MANAGERS,
    # Recording one ends the release as rolled back and locks production, exactly like the bot's own rollback.
    Action.RECORD_ROLLBACK: Role.MANAGERS,
    Action.UNLOCK: Role.MANAGERS,
    Action.HEALTH_CHECK: Role.CHANNEL,
    # Anyone may raise the alarm; it stays one page per criterion while open (see IncidentDesk.declare).
    Action.DECLARE: Role.CHANNEL,
    # Acknowledging stops PagerDuty's escalation and dismissing resolves the page: both silence on-call.
    Action.ACKNOWLEDGE: Role.MANAGERS,
    Action.DISMISS: Role.MANAGERS,
    Action.READ: Role.CHANNEL,
}

# After a manager dismissed an incident, people outside RELEASE_MANAGERS cannot declare the same criterion again
# for this long: otherwise a declare–dismiss loop pages on-call and pings the channel again on every round.
REDECLARE_COOLDOWN = timedelta(minutes=10)


def needs_manager(action: Action) -> bool:
    return ROLES[action] is Role.MANAGERS
