"""What ``serve`` checks and says before it serves: a free port, an app token Slack accepts, and one line that
names what this bot is running with."""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import socket
from collections.abc import Mapping
from pathlib import Path

from bot import __version__
from bot.adapters.kube_credentials import credentials_source
from bot.config import Settings
from bot.db.problems import safe_url
from bot.domain.checklist import contacts_without_id, unmatched_contact_names, with_contact_ids
from bot.domain.checklist_set import ChecklistSet
from bot.errors import ConfigError
from bot.slack.identity import Identity

log = logging.getLogger(__name__)


def check_port(host: str, port: int) -> None:
    """Refuse, in one line, a HOST:PORT this process cannot listen on, before anything is started."""
    if port == 0:
        return
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as e:
        raise ConfigError(
            f"HOST is invalid: {host!r} is not an address of this machine ({e.strerror})"
        ) from None
    with socket.socket(family, kind, proto) as probe:
        # The server sets SO_REUSEADDR too: a port left in TIME_WAIT by a restart is free, a listener is not.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as e:
            raise port_error(host, port, e) from None


def port_error(host: str, port: int, error: OSError) -> ConfigError:
    if error.errno == errno.EADDRINUSE:
        return ConfigError(
            f"PORT {port} is already in use on {host}: stop what listens there, or set PORT to a free port"
        )
    if error.errno == errno.EACCES:
        return ConfigError(f"PORT {port} needs privileges this process does not have: use a port above 1023")
    if error.errno == errno.EADDRNOTAVAIL:
        return ConfigError(f"HOST is invalid: {host} is not an address of this machine")
    return ConfigError(f"cannot listen on {host}:{port} ({error.strerror})")


def check_app_token(settings: Settings) -> None:
    """Socket Mode: refuse an app-level token Slack refuses, in one line. Unreachable Slack is left to the link."""
    from slack_sdk.errors import SlackApiError, SlackClientError

    from bot.runtime.socket_link import REFUSED, quiet_client

    try:
        quiet_client(None, settings.slack_api_url).apps_connections_open(app_token=settings.slack_app_token)
    except SlackApiError as e:
        code = str(e.response.get("error", "unknown_error")) if e.response is not None else "unknown_error"
        if code in REFUSED:
            raise ConfigError(
                f"SLACK_APP_TOKEN was refused by Slack (apps.connections.open: {code}): create an app-level "
                "token with the connections:write scope (Basic Information → App-Level Tokens)"
            ) from None
    except (SlackClientError, OSError):
        pass


def checklist_version(path: str) -> str:
    """Which file runs: the start of its SHA-256, enough to tell two edits apart in a log."""
    return "sha256 " + hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]


def describe_set(checklists: ChecklistSet) -> str:
    """Each checklist's service and where it runs, with its file's digest."""
    return ", ".join(
        f"{m.checklist.service} from {m.path} ({m.checklist.name}, {checklist_version(m.path)}; "
        + (f"channels {' '.join(m.checklist.channels)}" if m.checklist.channels else "every other channel")
        + ")"
        for m in checklists.members
    )


def summary(
    settings: Settings,
    checklists: ChecklistSet,
    identity: Identity | None,
    *,
    environ: Mapping[str, str] | None = None,
) -> str:
    """The start-up line: mode, checklist, database, language, Slack, and which integrations are on."""
    env = os.environ if environ is None else environ
    if settings.socket_mode:
        mode = f"Socket Mode (health and metrics on {settings.host}:{settings.port})"
    else:
        mode = f"HTTP on {settings.host}:{settings.port}"
    slack = (
        f"Slack workspace {identity.team or identity.team_id} as bot user {identity.user_id}"
        if identity
        else "Slack not checked (unreachable at start)"
    )
    cluster = credentials_source(settings.kubeconfig, env)
    parts = [
        f"release-bot {__version__}: {mode}",
        (
            f"checklist {settings.checklist_path} ({checklists.default.name}, "
            f"{checklist_version(settings.checklist_path)})"
            if len(checklists) == 1 and not checklists.default.channels
            else f"checklists: {describe_set(checklists)}"
        ),
        f"database {safe_url(settings.database_url)}",
        f"language {settings.language}",
        slack,
        f"Prometheus {settings.prometheus_url}"
        if settings.prometheus_url
        else "Prometheus off (no metric watch; gates ask people to check dashboards)",
        f"PagerDuty on ({settings.pagerduty_events_url})"
        if settings.pagerduty_routing_key
        else "PagerDuty off (incidents are recorded, nobody is paged)",
        f"Kubernetes: {cluster}"
        if cluster
        else "Kubernetes off (the rollback button says to roll back by hand)",
    ]
    return " · ".join(parts)


def warn_about_contacts(checklists: ChecklistSet, ids: tuple[tuple[str, str], ...]) -> None:
    """Say at start when an incident would notify nobody on Slack, or when RELEASE_CONTACTS names nobody."""
    every = tuple(contact for c in checklists for contact in c.contacts)
    for name in unmatched_contact_names(every, ids):
        log.warning("RELEASE_CONTACTS names %r, which is no contact of any checklist: it is ignored", name)
    for checklist in checklists:
        for contact in contacts_without_id(with_contact_ids(checklist.contacts, ids)):
            log.warning(
                "contact %s (%s) of %s has no Slack id: no incident can notify it; "
                "set its slack_id in the checklist or RELEASE_CONTACTS",
                contact.key,
                contact.role,
                checklist.service,
            )


def warn_about_managers(checklists: ChecklistSet, settings: Settings) -> None:
    """A checklist nobody manages: its releases cannot be started or moved until someone is named."""
    if settings.release_managers:
        return
    for m in checklists.members:
        if not m.checklist.managers:
            log.warning(
                "%s (service %s) names no managers and RELEASE_MANAGERS is not set: nobody may start or move "
                "its releases",
                m.path,
                m.checklist.service,
            )
