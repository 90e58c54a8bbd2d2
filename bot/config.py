"""Settings from the environment: one frozen object, validated once, secrets hidden from repr and logs."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

from bot.errors import ConfigError

_ID_RE = re.compile(r"^[UWS][A-Z0-9]{2,20}$")
_REPO_RE = re.compile(r"^[A-Za-z0-9-]{1,39}/[A-Za-z0-9._-]{1,100}$")
_LOGIN_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$")
_USER_RE = re.compile(r"^[UW][A-Z0-9]{2,20}$")
EVERYONE = "*"
_CHANNEL_RE = re.compile(r"^[CGD][A-Z0-9]{2,20}$")
LANGUAGES = ("ko", "en")


def _secret_field() -> str:
    return field(default="", repr=False)


@dataclass(frozen=True)
class Settings:
    """Everything the bot is configured with. Build it with ``load_settings``."""

    slack_bot_token: str = _secret_field()
    slack_signing_secret: str = _secret_field()
    slack_app_token: str = _secret_field()
    slack_api_url: str = "https://slack.com/api/"
    database_url: str = "sqlite:///release-bot.db"
    checklist_path: str = ""
    language: str = "ko"
    release_channel: str | None = None
    host: str = "0.0.0.0"
    port: int = 3000
    release_managers: tuple[str, ...] = ()
    # RELEASE_CONTACTS: (contact name, Slack id) pairs that win over the checklist's slack_id, so the file can be
    # shared without a workspace's ids in it.
    release_contacts: tuple[tuple[str, str], ...] = ()
    prometheus_url: str | None = None
    pagerduty_routing_key: str = _secret_field()
    pagerduty_events_url: str = "https://events.pagerduty.com"
    pagerduty_ca_bundle: str | None = None
    kubeconfig: str | None = None
    log_level: str = "INFO"
    log_format: str = "json"
    listener_threads: int = 5
    http_threads: int = 16
    work_process: bool = True
    health_timeout_s: float = 5.0
    rollout_timeout_s: float = 600.0
    usergroup_cache_s: float = 300.0
    socket_mode_timeout_s: float = 30.0
    github_repository: str | None = None
    github_api_url: str = "https://api.github.com"
    github_token: str = _secret_field()
    github_app_id: str = ""
    github_app_private_key: str = _secret_field()
    github_app_installation_id: int | None = None
    github_webhook_secret: str = _secret_field()
    github_users: tuple[tuple[str, str], ...] = ()  # (GitHub login, lower-case) -> Slack user id
    evidence: str = "auto"  # auto: on when GitHub is configured | on | off

    @property
    def evidence_on(self) -> bool:
        return self.evidence == "on" or (self.evidence == "auto" and self.github_repository is not None)

    def slack_user_of(self, login: str) -> str | None:
        return dict(self.github_users).get(login.lower())

    @property
    def socket_mode(self) -> bool:
        return bool(self.slack_app_token)

    @property
    def managers_everyone(self) -> bool:
        """``RELEASE_MANAGERS=*``: everyone in the channel was let in on purpose."""
        return self.release_managers == (EVERYONE,)

    @property
    def manager_ids(self) -> tuple[str, ...]:
        """The user and user-group ids named in ``RELEASE_MANAGERS`` (none for ``*``)."""
        return () if self.managers_everyone else self.release_managers

    def secrets(self) -> tuple[str, ...]:
        """Values that must never appear in a log line or a message."""
        values = (
            self.slack_bot_token,
            self.slack_signing_secret,
            self.slack_app_token,
            self.pagerduty_routing_key,
            self.github_token,
            self.github_app_private_key,
            self.github_webhook_secret,
        )
        return tuple(v for v in values if v)

    def require_bot_token(self) -> None:
        """Check the token every Web API call needs; raise ConfigError naming the problem."""
        if not self.slack_bot_token:
            raise ConfigError("SLACK_BOT_TOKEN is not set: give the bot token (xoxb-…)")
        if not self.slack_bot_token.startswith("xoxb-"):
            raise ConfigError("SLACK_BOT_TOKEN is invalid: a bot token starts with xoxb-")

    def require_slack(self) -> None:
        """Check the settings ``serve`` needs; raise ConfigError naming the first missing one."""
        self.require_bot_token()
        if self.slack_app_token:
            if not self.slack_app_token.startswith("xapp-"):
                raise ConfigError("SLACK_APP_TOKEN is invalid: an app-level token starts with xapp-")
        elif not self.slack_signing_secret:
            raise ConfigError("SLACK_SIGNING_SECRET is not set: HTTP mode verifies every request with it")

    def require_managers(self) -> None:
        """``serve`` is closed by default: someone must say who may start, move and roll back releases."""
        if not self.release_managers:
            raise ConfigError(
                "RELEASE_MANAGERS is not set: name the user ids (U…/W…) or user-group ids (S…) who may start, "
                "advance, abort and roll back releases, or set it to * to let everyone in the channel do so"
            )


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} is invalid: {raw!r}; use true or false")


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} is invalid: {raw!r} is not a whole number") from None
    if not low <= value <= high:
        raise ConfigError(f"{name} is invalid: {value} is outside {low}..{high}")
    return value


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} is invalid: {raw!r} is not a number") from None
    if value <= 0:
        raise ConfigError(f"{name} is invalid: it must be greater than 0")
    return value


def _url(env: Mapping[str, str], name: str, default: str | None, *, https_only: bool = False) -> str | None:
    raw = env.get(name, "").strip() or default
    if raw is None:
        return None
    schemes = ("https://",) if https_only else ("http://", "https://")
    if not raw.startswith(schemes):
        raise ConfigError(f"{name} is invalid: expected a URL starting with {' or '.join(schemes)}")
    return raw


def _github(env: Mapping[str, str], channel: str | None) -> dict[str, Any]:
    """The GitHub settings: a repository and a way in (a fine-grained token or an app), all or nothing."""
    repository = env.get("GITHUB_REPOSITORY", "").strip() or None
    token = env.get("GITHUB_TOKEN", "").strip()
    app_id = env.get("GITHUB_APP_ID", "").strip()
    key = env.get("GITHUB_APP_PRIVATE_KEY", "").strip()
    key_file = env.get("GITHUB_APP_PRIVATE_KEY_FILE", "").strip()
    secret = env.get("GITHUB_WEBHOOK_SECRET", "").strip()
    if key_file and not key:
        try:
            key = Path(key_file).read_text(encoding="utf-8").strip()
        except OSError as e:
            raise ConfigError(f"GITHUB_APP_PRIVATE_KEY_FILE is invalid: cannot read it ({e.strerror})") from None
    if repository is not None and not _REPO_RE.match(repository):
        raise ConfigError(f"GITHUB_REPOSITORY is invalid: {repository!r}; write it as owner/name")
    if repository is None and (token or app_id or secret):
        raise ConfigError("GITHUB_REPOSITORY is not set: the GitHub settings need the repository (owner/name)")
    if repository is not None:
        if token and app_id:
            raise ConfigError("GITHUB_TOKEN and GITHUB_APP_ID are both set: use one way to sign in to GitHub")
        if not token and not app_id:
            raise ConfigError("GITHUB_REPOSITORY needs GITHUB_TOKEN (a fine-grained token) or GITHUB_APP_ID")
        if app_id and not app_id.isdigit() and not app_id.startswith("Iv"):
            raise ConfigError("GITHUB_APP_ID is invalid: give the app's numeric id or its client id (Iv…)")
        if app_id and "PRIVATE KEY" not in key:
            raise ConfigError(
                "GITHUB_APP_PRIVATE_KEY is not set: give the app's private key (PEM), or GITHUB_APP_PRIVATE_KEY_FILE"
            )
    if secret and channel is None:
        raise ConfigError("GITHUB_WEBHOOK_SECRET needs RELEASE_CHANNEL: a pushed tag starts its release there")
    if secret and len(secret) < 16:
        raise ConfigError("GITHUB_WEBHOOK_SECRET is too short: use at least 16 random characters")
    users = []
    for pair in (p for p in re.split(r"[,\s]+", env.get("GITHUB_USERS", "").strip()) if p):
        login, _, user = pair.partition("=")
        if not _LOGIN_RE.match(login) or not _USER_RE.match(user):
            raise ConfigError(f"GITHUB_USERS is invalid: {pair!r}; write login=U0123ABCD, separated by commas")
        users.append((login.lower(), user))
    installation = env.get("GITHUB_APP_INSTALLATION_ID", "").strip()
    if installation and not installation.isdigit():
        raise ConfigError(f"GITHUB_APP_INSTALLATION_ID is invalid: {installation!r} is not a number")
    evidence = env.get("EVIDENCE", "auto").strip().lower() or "auto"
    if evidence not in ("auto", "on", "off"):
        raise ConfigError(f"EVIDENCE is invalid: {evidence!r}; use auto, on or off")
    return {
        "github_repository": repository,
        "github_api_url": _url(env, "GITHUB_API_URL", "https://api.github.com") or "",
        "github_token": token,
        "github_app_id": app_id,
        "github_app_private_key": key,
        "github_app_installation_id": int(installation) if installation else None,
        "github_webhook_secret": secret,
        "github_users": tuple(users),
        "evidence": evidence,
    }


SHIPPED_CHECKLIST = "deployment.yaml"


def _default_checklist() -> str:
    """The checklist shipped inside the package (bot/checklist/deployment.yaml), wherever the package is installed."""
    return str(files("bot.checklist") / SHIPPED_CHECKLIST)


def parse_contacts(raw: str) -> tuple[tuple[str, str], ...]:
    """``tech-lead=U0123ABCD,devops-team=S0456EFGH``: each contact (key or handle) and its user or group id."""
    pairs = []
    for entry in (e for e in re.split(r"[,\s]+", raw.strip()) if e):
        name, sep, slack_id = entry.partition("=")
        name, slack_id = name.strip().lstrip("@"), slack_id.strip()
        if not sep or not name or not _ID_RE.match(slack_id):
            raise ConfigError(
                f"RELEASE_CONTACTS is invalid: {entry!r}; write role=ID pairs such as "
                "tech-lead=U0123ABCD,devops-team=S0456EFGH (U…/W… a person, S… a user group)"
            )
        pairs.append((name, slack_id))
    return tuple(pairs)


def load_settings(env: Mapping[str, str]) -> Settings:
    """Read and validate settings; raise ConfigError with one line naming the bad setting."""
    language = env.get("RELEASE_BOT_LANGUAGE", "ko").strip().lower() or "ko"
    if language not in LANGUAGES:
        raise ConfigError(f"RELEASE_BOT_LANGUAGE is invalid: {language!r}; use one of {', '.join(LANGUAGES)}")

    channel = env.get("RELEASE_CHANNEL", "").strip() or None
    if channel is not None and not _CHANNEL_RE.match(channel):
        raise ConfigError(f"RELEASE_CHANNEL is invalid: {channel!r} is not a channel id such as C0123ABCD")

    managers = tuple(m for m in re.split(r"[,\s]+", env.get("RELEASE_MANAGERS", "").strip()) if m)
    if EVERYONE in managers and managers != (EVERYONE,):
        raise ConfigError("RELEASE_MANAGERS is invalid: * (everyone) cannot be combined with ids")
    for m in managers if managers != (EVERYONE,) else ():
        if not _ID_RE.match(m):
            raise ConfigError(
                f"RELEASE_MANAGERS is invalid: {m!r} is not a user id (U…/W…) or user-group id (S…)"
            )

    contacts = parse_contacts(env.get("RELEASE_CONTACTS", ""))

    database_url = env.get("DATABASE_URL", "").strip() or "sqlite:///release-bot.db"
    if not database_url.startswith(("sqlite", "postgresql")):
        raise ConfigError("DATABASE_URL is invalid: use sqlite:///PATH or postgresql+psycopg://…")
    if database_url.startswith("postgresql://") or database_url.startswith("postgres://"):
        # psycopg 3 is the driver we ship; the bare scheme would pick psycopg2.
        database_url = "postgresql+psycopg://" + database_url.split("://", 1)[1]

    slack_api_url = _url(env, "SLACK_API_URL", "https://slack.com/api/") or ""
    if not slack_api_url.endswith("/"):
        slack_api_url += "/"

    checklist = env.get("RELEASE_BOT_CHECKLIST", "").strip() or _default_checklist()
    log_format = env.get("LOG_FORMAT", "json").strip().lower() or "json"
    if log_format not in ("json", "text"):
        raise ConfigError("LOG_FORMAT is invalid: use json or text")
    log_level = env.get("LOG_LEVEL", "INFO").strip().upper() or "INFO"
    if log_level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError("LOG_LEVEL is invalid: use DEBUG, INFO, WARNING or ERROR")

    return Settings(
        slack_bot_token=env.get("SLACK_BOT_TOKEN", "").strip(),
        slack_signing_secret=env.get("SLACK_SIGNING_SECRET", "").strip(),
        slack_app_token=env.get("SLACK_APP_TOKEN", "").strip(),
        slack_api_url=slack_api_url,
        database_url=database_url,
        checklist_path=checklist,
        language=language,
        release_channel=channel,
        host=env.get("HOST", "").strip() or "0.0.0.0",
        port=_int(env, "PORT", 3000, 0, 65535),
        release_managers=managers,
        release_contacts=contacts,
        prometheus_url=_url(env, "PROMETHEUS_URL", None),
        pagerduty_routing_key=env.get("PAGERDUTY_ROUTING_KEY", "").strip(),
        pagerduty_events_url=_url(
            env, "PAGERDUTY_EVENTS_URL", "https://events.pagerduty.com", https_only=True
        )
        or "",
        pagerduty_ca_bundle=env.get("PAGERDUTY_CA_BUNDLE", "").strip() or None,
        kubeconfig=env.get("KUBECONFIG", "").strip() or None,
        log_level=log_level,
        log_format=log_format,
        listener_threads=_int(env, "LISTENER_THREADS", 5, 1, 64),
        http_threads=_int(env, "HTTP_THREADS", 16, 1, 256),
        work_process=_bool(env, "WORK_PROCESS", True),
        health_timeout_s=_float(env, "HEALTH_CHECK_TIMEOUT", 5.0),
        rollout_timeout_s=_float(env, "ROLLOUT_TIMEOUT", 600.0),
        usergroup_cache_s=_float(env, "USERGROUP_CACHE_SECONDS", 300.0),
        socket_mode_timeout_s=_float(env, "SOCKET_MODE_TIMEOUT", 30.0),
        **_github(env, channel),
    )
