"""What the bot does with a verified GitHub webhook: a pushed release tag starts its release in the release channel,
credited to the pusher; deployment and workflow results are told in the release's thread and re-check its evidence.

The HTTP side (``bot.runtime.github_webhook``) has checked the signature and the shape of the delivery before any of
this runs, off the request thread. Every handled delivery is recorded by its GUID: GitHub redelivers with the same
one, and a redelivery changes nothing.
"""

from __future__ import annotations

import logging
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from bot.config import Settings
from bot.domain.checklist import Checklist
from bot.domain.records import Actor
from bot.errors import Conflict, ReleaseBotError, UsageError
from bot.i18n import t
from bot.observability import release_id as release_ctx
from bot.slack.evidence_listeners import EvidenceContext
from bot.slack.listeners import SlackContext
from bot.usecases.releases import ReleaseView

log = logging.getLogger(__name__)

EVENTS = ("push", "deployment_status", "workflow_run")
_ZERO = "0" * 40
_DEPLOY_MARKS = {"success": ":white_check_mark:", "failure": ":x:", "error": ":x:"}
_RUN_MARKS = {
    "success": ":white_check_mark:",
    "failure": ":x:",
    "timed_out": ":x:",
    "cancelled": ":heavy_minus_sign:",
}


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


@dataclass(frozen=True)
class GitHubHooks:
    slack: SlackContext
    evidence: EvidenceContext
    settings: Settings

    @property
    def lang(self) -> str:
        return self.slack.lang

    def handle(self, event: str, delivery: str, payload: dict[str, Any]) -> str:
        """Act on one delivery; the outcome in a word, for the log."""
        repository = _str(_dict(payload.get("repository")).get("full_name"))
        if repository.lower() != (self.settings.github_repository or "").lower():
            log.info(
                "GitHub %s delivery %s is for %r, not the configured repository", event, delivery, repository
            )
            return "other repository"
        if event == "push":
            return self._push(delivery, payload)
        if event == "deployment_status":
            return self._deployment(delivery, payload)
        if event == "workflow_run":
            return self._workflow(delivery, payload)
        return "ignored"

    def actor_of(self, payload: dict[str, Any]) -> Actor:
        """The Slack user the pusher is mapped to, or the GitHub login itself (shown as text, never a mention)."""
        login = _str(_dict(payload.get("sender")).get("login")) or _str(
            _dict(payload.get("pusher")).get("name")
        )
        user = self.settings.slack_user_of(login) if login else None
        if user is not None:
            return Actor(user, login)
        return Actor(f"gh:{login}"[:32], f"{login or 'someone'} (GitHub)")

    # --- a pushed tag -----------------------------------------------------------------------------------

    def _push(self, delivery: str, payload: dict[str, Any]) -> str:
        ref = _str(payload.get("ref"))
        if not ref.startswith("refs/tags/") or payload.get("deleted") or _str(payload.get("after")) == _ZERO:
            return "not a new tag"
        tag = ref.removeprefix("refs/tags/")
        repository = _str(_dict(payload.get("repository")).get("name")).lower()
        checklist = self._checklist(repository)
        if checklist is None:
            log.warning(
                "a tag of %r was pushed, but no checklist's service is %r and several serve RELEASE_CHANNEL: "
                "nothing started",
                repository,
                repository,
            )
            return "no checklist"
        version = checklist.version_of_tag(tag)
        if version is None:
            return "tag outside the pattern"
        # On a tag's creation, head_commit is the tagged commit; `after` may be an annotated tag's own object.
        sha = _str(_dict(payload.get("head_commit")).get("id")) or _str(payload.get("after"))
        channel = self.settings.release_channel
        if channel is None:
            return "no release channel"
        actor = self.actor_of(payload)
        try:
            view = self.slack.services.start_release(
                channel_id=channel,
                version=version,
                actor=actor,
                delivery=(delivery, "push"),
                checklist=checklist,
            )
        except Conflict as e:
            if e.user_message == "delivery_seen":
                return "redelivery"
            existing = self._active(version, checklist.service)
            if existing is not None and self.slack.services.first_delivery(
                delivery, "push", existing.release.id
            ):
                # Started by hand before the tag was pushed: the tag's evidence can be read now.
                self._note(existing.release.id, self._tag_note(actor, tag, sha))
                self.evidence.soon(existing.release.id)
            return "already running"
        except UsageError:
            log.info("tag %s is not a release version; ignored", tag)
            return "not a version"
        release_ctx.set(view.release.id)
        published = self.slack.publisher.publish_release(view, None)
        note = self._tag_note(actor, tag, sha)
        published.add_done_callback(lambda _f: self._note(view.release.id, note))
        for hook in self.slack.on_started:
            hook(view.release.id, published)
        log.info("release %s started by the push of tag %s", view.release.version, tag)
        return "started"

    def _tag_note(self, actor: Actor, tag: str, sha: str) -> str:
        github = self.evidence.evidence.github
        link = github.html_url(f"commit/{sha}") if github is not None else ""
        return t(self.lang, "gh_started_by_tag", who=actor.mention, tag=tag, link=link, sha=sha[:7])

    # --- results of CI/CD -------------------------------------------------------------------------------

    def _deployment(self, delivery: str, payload: dict[str, Any]) -> str:
        status, deployment = _dict(payload.get("deployment_status")), _dict(payload.get("deployment"))
        state = _str(status.get("state"))
        if state not in _DEPLOY_MARKS:
            return "deployment not finished"
        view = self._release_for(_str(deployment.get("ref")), _str(deployment.get("sha")))
        if view is None:
            return "no release"
        if not self.slack.services.first_delivery(delivery, "deployment_status", view.release.id):
            return "redelivery"
        env = _str(status.get("environment")) or _str(deployment.get("environment"))
        sha = _str(deployment.get("sha"))
        link = (
            _str(status.get("environment_url"))
            or _str(status.get("log_url"))
            or _str(status.get("target_url"))
        )
        text = t(
            self.lang,
            "gh_deployment",
            mark=_DEPLOY_MARKS[state],
            env=env,
            state=state,
            link=link,
            sha=sha[:7],
        )
        self._note(view.release.id, text)
        self.evidence.soon(view.release.id)
        return "told"

    def _workflow(self, delivery: str, payload: dict[str, Any]) -> str:
        run = _dict(payload.get("workflow_run"))
        if _str(payload.get("action")) != "completed":
            return "workflow not finished"
        view = self._release_for(_str(run.get("head_branch")), _str(run.get("head_sha")))
        if view is None:
            return "no release"
        if not self.slack.services.first_delivery(delivery, "workflow_run", view.release.id):
            return "redelivery"
        conclusion = _str(run.get("conclusion")) or "completed"
        text = t(
            self.lang,
            "gh_workflow",
            mark=_RUN_MARKS.get(conclusion, ":grey_question:"),
            name=_str(run.get("name"))[:100],
            conclusion=conclusion,
            link=_str(run.get("html_url")),
            sha=_str(run.get("head_sha"))[:7],
        )
        self._note(view.release.id, text)
        self.evidence.soon(view.release.id)
        return "told"

    def _checklist(self, repository: str) -> Checklist | None:
        """The checklist a tag of the repository (its name) starts: the one whose service is that name, else the
        one serving RELEASE_CHANNEL (with one checklist, always that one); None when several serve it."""
        catalog = self.slack.services.catalog
        named = catalog.by_service(repository)
        if named is not None:
            return named
        serving = catalog.serving(self.settings.release_channel or "")
        return serving[0] if len(serving) == 1 else None

    def _active(self, version: str, service: str | None = None) -> ReleaseView | None:
        channel = self.settings.release_channel
        if channel is None:
            return None
        try:
            view = self.slack.services.find(channel, version, service)
        except ReleaseBotError:
            return None
        return view if not view.status.is_terminal else None

    def _release_for(self, ref: str, sha: str) -> ReleaseView | None:
        """The active release a deployment or run belongs to: by its tag when CI names one, else by its commit."""
        named = self._checklist((self.settings.github_repository or "").split("/")[-1].lower())
        checklist = named or self.slack.services.template
        version = checklist.version_of_tag(ref.removeprefix("refs/tags/")) if ref else None
        if version is not None:
            return self._active(version, named.service if named else None)
        github = self.evidence.evidence.github
        if not sha or github is None:
            return None
        for view in self.slack.services.recent_views(self.settings.release_channel, limit=5):
            if view.status.is_terminal:
                continue
            try:
                if github.tag_commit(checklist.tag_for(view.release.version)) == sha:
                    return view
            except ReleaseBotError:
                return None
        return None

    def _note(self, release_id: int, text: str) -> None:
        def post() -> None:
            self.slack.publisher.thread_reply(release_id, text)

        self.slack.publisher.submit(post)


def handle_soon(
    hooks: GitHubHooks, pool: Any, event: str, delivery: str, payload: dict[str, Any]
) -> Future[Any]:
    """Run ``hooks.handle`` on a work pool, logging (never raising) what went wrong."""

    def run() -> None:
        try:
            outcome = hooks.handle(event, delivery, payload)
            log.info("GitHub %s delivery %s: %s", event, delivery, outcome)
        except Exception:
            log.exception("GitHub %s delivery %s could not be handled", event, delivery)

    future: Future[Any] = pool.submit(run)
    return future
