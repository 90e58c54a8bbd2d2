"""Judging evidence: what each source's answer means for an item, and one look at the repository per evaluation.

``RepoLook`` asks GitHub each question once per evaluation, however many items need the answer (the tests,
lint and type-check items all read the same check runs), and remembers a failure too, so that a GitHub that does
not answer costs one timeout, not one per item. The judge functions are pure: they turn answers into an
``EvidencePart`` (a message key and its parameters, translated when rendered).

Must not import slack_bolt, slack_sdk, httpx or sqlalchemy.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from bot.domain.evidence import EvidencePart, EvidenceSource, EvidenceSpec, EvidenceStatus, check_matches
from bot.domain.evidence import version_strings as _version_strings
from bot.domain.release import VERSION_RE
from bot.errors import GitHubError
from bot.ports import (
    CheckRun,
    CodeHost,
    Comparison,
    DeploymentState,
    HealthResult,
    PullRequest,
    Reading,
    ReleaseNotes,
    Review,
    TagRef,
)

T = TypeVar("T")
PROVEN, FAILED, UNKNOWN = EvidenceStatus.PROVEN, EvidenceStatus.FAILED, EvidenceStatus.UNKNOWN
MAX_PULLS = 50  # reviews are one request per pull request: beyond this, an evaluation says it cannot tell
MAX_LISTED = 5  # names listed in one line before "and N more"
_PASSING = {"success", "neutral", "skipped"}
_PENDING = {"queued", "in_progress", "requested", "waiting", "pending"}


def _short(sha: str) -> str:
    return sha[:7]


def _names(names: list[str]) -> str:
    shown = ", ".join(names[:MAX_LISTED])
    return shown if len(names) <= MAX_LISTED else f"{shown} +{len(names) - MAX_LISTED}"


def version_key(version: str) -> tuple[tuple[int, int, int], int, tuple[Any, ...]] | None:
    """A sort key that orders versions as SemVer does (a pre-release before its release), or None."""
    match = VERSION_RE.match(version)
    if match is None:
        return None
    core = (int(match[1]), int(match[2]), int(match[3]))
    pre = match[4]
    if not pre:
        return core, 1, ()
    fields = tuple((0, int(f), "") if f.isdigit() else (1, 0, f) for f in pre[1:].split("."))
    return core, 0, fields


class RepoLook:
    """What one evaluation reads of the repository, each question asked at most once."""

    def __init__(
        self, host: CodeHost, *, version: str, tag: str, tag_version: Callable[[str], str | None]
    ) -> None:
        self.host = host
        self.version = version
        self.tag = tag
        self._tag_version = tag_version
        self._memo: dict[tuple[Any, ...], Any] = {}

    def _once(self, key: tuple[Any, ...], ask: Callable[[], T]) -> T:
        if key not in self._memo:
            try:
                self._memo[key] = ask()
            except GitHubError as e:
                self._memo[key] = e
        value = self._memo[key]
        if isinstance(value, GitHubError):
            raise value
        return value  # type: ignore[no-any-return]

    def sha(self) -> str | None:
        return self._once(("sha",), lambda: self.host.tag_commit(self.tag))

    def checks(self, sha: str) -> tuple[CheckRun, ...]:
        return self._once(("checks", sha), lambda: self.host.check_runs(sha) + self.host.statuses(sha))

    def previous_tag(self) -> TagRef | None:
        """The release tag just before this one: the highest version below it among the tags of the pattern."""

        def ask() -> TagRef | None:
            mine = version_key(self.version)
            if mine is None:
                return None
            best: tuple[Any, TagRef] | None = None
            for tag in self.host.tags():
                version = self._tag_version(tag.name)
                key = version_key(version) if version else None
                if key is not None and key < mine and (best is None or key > best[0]):
                    best = (key, tag)
            return best[1] if best else None

        return self._once(("previous",), ask)

    def comparison(self, base: str) -> Comparison:
        return self._once(("compare", base), lambda: self.host.compare(base, self.tag))

    def pulls_since(self, since: datetime) -> tuple[PullRequest, ...]:
        return self._once(("pulls", since), lambda: self.host.merged_pulls(since))

    def reviews(self, number: int) -> tuple[Review, ...]:
        return self._once(("reviews", number), lambda: self.host.reviews(number))

    def commit_date(self, sha: str) -> datetime | None:
        return self._once(("date", sha), lambda: self.host.commit_date(sha))

    def file_text(self, path: str) -> str | None:
        return self._once(("file", path), lambda: self.host.file_text(path, self.tag))

    def last_commit_of(self, path: str) -> str | None:
        return self._once(("last", path), lambda: self.host.last_commit_of(path, self.tag))

    def release(self) -> ReleaseNotes | None:
        return self._once(("release",), lambda: self.host.release(self.tag))

    def deployment(self, sha: str, environment: str) -> DeploymentState | None:
        return self._once(("deploy", sha, environment), lambda: self.host.deployment(sha, environment))


def unknown(source: str, error: GitHubError) -> EvidencePart:
    """GitHub could not answer: the item can still be ticked by a person."""
    params: dict[str, Any] = {}
    if error.retry_at is not None:
        params["retry_at"] = int(error.retry_at.timestamp())
    key = {
        "rate_limited": "ev_rate_limited",
        "auth": "ev_github_auth",
        "unreachable": "ev_github_unreachable",
    }.get(error.kind, "ev_github_error")
    return EvidencePart(source, UNKNOWN, key, params)


def judge_github(spec: EvidenceSpec, look: RepoLook) -> EvidencePart:
    """Evaluate one GitHub source for the release's tag."""
    source = spec.source.value
    try:
        sha = look.sha()
        if sha is None:
            return EvidencePart(source, UNKNOWN, "ev_no_tag", {"tag": look.tag})
        match spec.source:
            case EvidenceSource.GITHUB_CHECKS:
                return judge_checks(spec, sha, look.checks(sha), look.host.html_url(f"commit/{sha}"))
            case EvidenceSource.GITHUB_PULLS:
                return _pulls(look, sha)
            case EvidenceSource.GITHUB_FILE:
                return _file(spec, look)
            case EvidenceSource.GITHUB_RELEASE:
                return judge_release(look.tag, look.release(), look.host.html_url(f"releases/tag/{look.tag}"))
            case EvidenceSource.GITHUB_DEPLOYMENT:
                assert spec.environment is not None
                state = look.deployment(sha, spec.environment)
                return judge_deployment(
                    spec.environment, state, look.host.html_url(f"deployments/{spec.environment}")
                )
    except GitHubError as e:
        return unknown(source, e)
    raise ValueError(f"not a GitHub source: {spec.source}")


def judge_checks(spec: EvidenceSpec, sha: str, runs: tuple[CheckRun, ...], link: str) -> EvidencePart:
    source, label = spec.source.value, _short(sha)
    relevant = list(runs)
    if spec.checks:
        missing = [p for p in spec.checks if not any(check_matches(p, r.name) for r in runs)]
        relevant = [r for r in runs if any(check_matches(p, r.name) for p in spec.checks)]
        if missing:
            return EvidencePart(
                source, FAILED, "ev_checks_missing", {"names": _names(missing), "sha": label}, link, label
            )
    if not relevant:
        return EvidencePart(source, UNKNOWN, "ev_checks_none", {"sha": label}, link, label)
    failed = [r.name for r in relevant if r.status == "completed" and (r.conclusion or "") not in _PASSING]
    pending = [r.name for r in relevant if r.status != "completed" or r.conclusion in _PENDING]
    total = len(relevant)
    if failed:
        params = {"names": _names(failed), "failed": len(failed), "total": total}
        return EvidencePart(source, FAILED, "ev_checks_failed", params, link, label)
    if pending:
        params = {"names": _names(pending), "pending": len(pending), "total": total}
        return EvidencePart(source, UNKNOWN, "ev_checks_pending", params, link, label)
    return EvidencePart(source, PROVEN, "ev_checks_passed", {"passed": total, "total": total}, link, label)


def approved(reviews: tuple[Review, ...]) -> bool:
    """GitHub's rule: each reviewer's latest decisive review counts; an approval and no change request left."""
    latest: dict[str, str] = {}
    for review in reviews:
        if review.state in ("APPROVED", "CHANGES_REQUESTED", "DISMISSED"):
            latest[review.user] = review.state
    states = set(latest.values())
    return "APPROVED" in states and "CHANGES_REQUESTED" not in states


def _pulls(look: RepoLook, sha: str) -> EvidencePart:
    source = EvidenceSource.GITHUB_PULLS.value
    previous = look.previous_tag()
    if previous is None:
        return EvidencePart(source, UNKNOWN, "ev_no_previous_tag", {"tag": look.tag})
    comparison = look.comparison(previous.name)
    since = look.commit_date(previous.sha)
    if since is None:
        return EvidencePart(source, UNKNOWN, "ev_no_previous_tag", {"tag": look.tag})
    in_range = set(comparison.commits)
    pulls = [p for p in look.pulls_since(since) if p.merge_commit_sha in in_range]
    if len(pulls) > MAX_PULLS:
        return EvidencePart(source, UNKNOWN, "ev_pulls_too_many", {"count": len(pulls), "limit": MAX_PULLS})
    return judge_pulls(
        comparison, previous.name, look.tag, pulls, {p.number: look.reviews(p.number) for p in pulls}
    )


def judge_pulls(
    comparison: Comparison,
    base: str,
    head: str,
    pulls: list[PullRequest],
    reviews: dict[int, tuple[Review, ...]],
) -> EvidencePart:
    source = EvidenceSource.GITHUB_PULLS.value
    link, label = comparison.url, f"{base}...{head}"
    if not pulls:
        if comparison.total_commits:
            params = {"commits": comparison.total_commits, "base": base}
            return EvidencePart(source, FAILED, "ev_pulls_none", params, link, label)
        return EvidencePart(source, PROVEN, "ev_pulls_nothing", {"base": base}, link, label)
    unapproved = sorted(p.number for p in pulls if not approved(reviews.get(p.number, ())))
    if unapproved:
        params = {
            "numbers": _names([f"#{n}" for n in unapproved]),
            "count": len(unapproved),
            "total": len(pulls),
        }
        return EvidencePart(source, FAILED, "ev_pulls_unapproved", params, link, label)
    return EvidencePart(source, PROVEN, "ev_pulls_ok", {"count": len(pulls), "base": base}, link, label)


def _file(spec: EvidenceSpec, look: RepoLook) -> EvidencePart:
    source, path = spec.source.value, spec.path or ""
    link = look.host.html_url(f"blob/{look.tag}/{path}")
    text = look.file_text(path)
    if text is None:
        return EvidencePart(source, FAILED, "ev_file_missing", {"path": path, "tag": look.tag}, link, path)
    if spec.contains_version and not any(v in text for v in _version_strings(look.version)):
        return EvidencePart(
            source, FAILED, "ev_file_no_version", {"path": path, "version": look.version}, link, path
        )
    if spec.changed:
        previous = look.previous_tag()
        if previous is None:
            return EvidencePart(source, UNKNOWN, "ev_no_previous_tag", {"tag": look.tag})
        comparison = look.comparison(previous.name)
        changed = path in comparison.files
        if not changed and not comparison.files_complete:
            # GitHub lists 300 files at most: ask which commit last touched the file instead.
            changed = look.last_commit_of(path) in set(comparison.commits)
        if not changed:
            return EvidencePart(
                source, FAILED, "ev_file_unchanged", {"path": path, "base": previous.name}, link, path
            )
        key = "ev_file_changed_version" if spec.contains_version else "ev_file_changed"
        return EvidencePart(
            source, PROVEN, key, {"path": path, "base": previous.name, "version": look.version}, link, path
        )
    return EvidencePart(
        source, PROVEN, "ev_file_has_version", {"path": path, "version": look.version}, link, path
    )


def judge_release(tag: str, notes: ReleaseNotes | None, link: str) -> EvidencePart:
    source = EvidenceSource.GITHUB_RELEASE.value
    if notes is None or notes.draft:
        return EvidencePart(source, FAILED, "ev_release_missing", {"tag": tag}, link, tag)
    if not notes.body.strip():
        return EvidencePart(source, FAILED, "ev_release_empty", {"tag": tag}, notes.url, notes.name or tag)
    lines = len([line for line in notes.body.splitlines() if line.strip()])
    return EvidencePart(
        source, PROVEN, "ev_release_ok", {"tag": tag, "lines": lines}, notes.url, notes.name or tag
    )


def judge_deployment(environment: str, state: DeploymentState | None, link: str) -> EvidencePart:
    source = EvidenceSource.GITHUB_DEPLOYMENT.value
    if state is None:
        return EvidencePart(source, FAILED, "ev_deploy_none", {"env": environment}, link, environment)
    where = state.url or link
    if state.state == "success":
        return EvidencePart(source, PROVEN, "ev_deploy_ok", {"env": environment}, where, environment)
    if state.state in ("failure", "error"):
        return EvidencePart(
            source, FAILED, "ev_deploy_failed", {"env": environment, "state": state.state}, where, environment
        )
    if state.state == "inactive":
        return EvidencePart(source, FAILED, "ev_deploy_replaced", {"env": environment}, where, environment)
    return EvidencePart(
        source, UNKNOWN, "ev_deploy_pending", {"env": environment, "state": state.state}, where, environment
    )


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def judge_metric(spec: EvidenceSpec, reading: Reading | None) -> EvidencePart:
    source = EvidenceSource.PROMETHEUS.value
    if reading is None:
        return EvidencePart(source, UNKNOWN, "ev_prometheus_off")
    if reading.value is None:
        return EvidencePart(source, UNKNOWN, "ev_metric_no_data", {"reason": reading.no_data_reason or ""})
    value = reading.value
    bounds = []
    if spec.min is not None:
        bounds.append(f"≥ {_fmt(spec.min)}")
    if spec.max is not None:
        bounds.append(f"≤ {_fmt(spec.max)}")
    params = {"value": _fmt(value), "bound": " · ".join(bounds)}
    low = spec.min is not None and value < spec.min
    high = spec.max is not None and value > spec.max
    return EvidencePart(
        source, FAILED if low or high else PROVEN, "ev_metric_out" if low or high else "ev_metric_ok", params
    )


def judge_http(result: HealthResult) -> EvidencePart:
    source = EvidenceSource.HTTP.value
    host = re.sub(r"^https?://", "", result.url).split("/")[0]
    if result.ok:
        params = {"status": result.status_code or 0, "ms": round(result.latency_ms)}
        return EvidencePart(source, PROVEN, "ev_http_ok", params, result.url, host)
    return EvidencePart(source, FAILED, "ev_http_failed", {"summary": result.summary[:150]}, result.url, host)
