"""A simulated GitHub repository for the playground, so a newcomer sees the checklist fill itself with evidence.

It answers the bot's ``CodeHost`` questions (see ``bot.ports``) from memory: the previous release tag, two
approved pull requests merged since, the tag of whatever version you start (pushed by the simulated CI), its check
runs (tests, lint, typecheck), a CHANGELOG and a pyproject.toml that name the version, release notes, and a
staging deployment of the tag. The bot's evidence judgement (``bot.usecases.evidence_judge``) reads it exactly as it
reads GitHub through the real adapter. ``repo fail lint`` / ``repo pass lint`` / ``repo unapprove 42`` change the
story, so the re-check button has something to find. Links point at ``github.invalid``: they are for show.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from bot.ports import (
    CheckRun,
    Comparison,
    DeploymentState,
    PullRequest,
    ReleaseNotes,
    Review,
    TagRef,
)
from bot.usecases.evidence_judge import version_key

REPOSITORY = "hallyulatino/backend"
PREVIOUS = "v1.0.0"
CHECKS = ("tests", "lint", "typecheck")
_PREVIOUS_SHA = "3f2a9c1e" + "0" * 32
_MERGES = {41: "8b1d0e47" + "1" * 32, 42: "c47e5a90" + "2" * 32}
_TITLES = {41: "결제 재시도 로직 개선", 42: "K-드라마 추천 API 응답 캐시"}


def _sha_of(tag: str) -> str:
    """A stable, made-up commit for a tag: the same tag is always the same commit."""
    return hashlib.sha1(tag.encode(), usedforsecurity=False).hexdigest()


class SimulatedRepository:
    """Implements ``bot.ports.CodeHost`` in memory; thread-safe, since evidence is judged off the request thread."""

    def __init__(self, version_of_tag: Callable[[str], str | None], *, now: datetime | None = None) -> None:
        self._version_of_tag = version_of_tag  # the checklist's tag pattern decides which tags are releases
        self._lock = threading.Lock()
        self._started = now or datetime.now(UTC)
        self._failing: set[str] = set()
        self._unapproved: set[int] = set()

    # --- what the person at the terminal can change ---------------------------------------------------------

    def fail(self, check: str) -> None:
        with self._lock:
            self._failing.add(self._known_check(check))

    def pass_(self, check: str) -> None:
        with self._lock:
            self._failing.discard(self._known_check(check))

    def unapprove(self, number: int) -> None:
        if number not in _MERGES:
            raise ValueError(f"there is no pull request #{number}: the simulated ones are #41 and #42")
        with self._lock:
            self._unapproved.add(number)

    def approve(self, number: int) -> None:
        if number not in _MERGES:
            raise ValueError(f"there is no pull request #{number}: the simulated ones are #41 and #42")
        with self._lock:
            self._unapproved.discard(number)

    def describe(self) -> list[str]:
        with self._lock:
            failing, unapproved = set(self._failing), set(self._unapproved)
        checks = ", ".join(f"{c} {'✗ failing' if c in failing else '✓'}" for c in CHECKS)
        pulls = ", ".join(
            f"#{n} {_TITLES[n]} ({'not approved' if n in unapproved else 'approved'}, merged)" for n in _MERGES
        )
        return [
            f"{REPOSITORY} (simulated): previous release tag {PREVIOUS}; your tag is pushed when you start",
            f"check runs on the tag: {checks}",
            f"pull requests since {PREVIOUS}: {pulls}",
            "CHANGELOG.md and pyproject.toml name the version; release notes published; deployed to staging",
        ]

    @staticmethod
    def _known_check(check: str) -> str:
        if check not in CHECKS:
            raise ValueError(f"there is no check {check!r}: the simulated ones are {', '.join(CHECKS)}")
        return check

    # --- CodeHost -------------------------------------------------------------------------------------------

    @property
    def repository(self) -> str:
        return REPOSITORY

    def html_url(self, path: str) -> str:
        return f"https://github.invalid/{REPOSITORY}/{path.lstrip('/')}"

    def _version(self, tag: str) -> str:
        """The bare version number of a tag (``1.2.3`` of ``v1.2.3``), as a CHANGELOG heading writes it."""
        return (self._version_of_tag(tag.removeprefix("refs/tags/")) or "").removeprefix("v")

    def _is_release_tag(self, tag: str) -> bool:
        version = self._version_of_tag(tag.removeprefix("refs/tags/"))
        return version is not None and version_key(version) is not None

    def tag_commit(self, tag: str) -> str | None:
        if tag == PREVIOUS:
            return _PREVIOUS_SHA
        return _sha_of(tag) if self._is_release_tag(tag) else None

    def check_runs(self, sha: str) -> tuple[CheckRun, ...]:
        with self._lock:
            failing = set(self._failing)
        return tuple(
            CheckRun(
                name=name,
                status="completed",
                conclusion="failure" if name in failing else "success",
                url=self.html_url(f"actions/runs/{abs(hash((sha, name))) % 10**8}"),
            )
            for name in CHECKS
        )

    def statuses(self, sha: str) -> tuple[CheckRun, ...]:
        return ()

    def tags(self) -> tuple[TagRef, ...]:
        return (TagRef(PREVIOUS, _PREVIOUS_SHA),)

    def compare(self, base: str, head: str) -> Comparison:
        commits = (*_MERGES.values(), _sha_of(head))
        return Comparison(
            base=base,
            head=head,
            commits=commits,
            files=("CHANGELOG.md", "pyproject.toml", "app/payments/retry.py", "app/recommend/cache.py"),
            total_commits=len(commits),
            files_complete=True,
            url=self.html_url(f"compare/{base}...{head}"),
        )

    def merged_pulls(self, since: datetime) -> tuple[PullRequest, ...]:
        return tuple(
            PullRequest(
                number=n,
                title=_TITLES[n],
                url=self.html_url(f"pull/{n}"),
                author="mina",
                merge_commit_sha=sha,
                merged_at=self._started - timedelta(hours=10 - n % 10),
            )
            for n, sha in _MERGES.items()
        )

    def reviews(self, number: int) -> tuple[Review, ...]:
        with self._lock:
            approved = number not in self._unapproved
        return (Review("jun", "APPROVED" if approved else "COMMENTED"),)

    def file_text(self, path: str, ref: str) -> str | None:
        version = self._version(ref)
        if path == "CHANGELOG.md":
            return f"# Changelog\n\n## {version}\n\n- 결제 재시도 로직 개선 (#41)\n- 추천 API 캐시 (#42)\n"
        if path == "pyproject.toml":
            return f'[project]\nname = "backend"\nversion = "{version}"\n'
        return None

    def last_commit_of(self, path: str, ref: str) -> str | None:
        return _sha_of(ref) if path in ("CHANGELOG.md", "pyproject.toml") else None

    def commit_date(self, sha: str) -> datetime | None:
        return self._started - timedelta(days=7) if sha == _PREVIOUS_SHA else self._started

    def release(self, tag: str) -> ReleaseNotes | None:
        if not self._is_release_tag(tag):
            return None
        return ReleaseNotes(
            tag=tag,
            name=f"backend {tag}",
            body="결제 재시도 로직 개선, 추천 API 캐시",
            url=self.html_url(f"releases/tag/{tag}"),
            draft=False,
            prerelease=False,
        )

    def deployment(self, sha: str, environment: str) -> DeploymentState | None:
        if environment != "staging":
            return None
        return DeploymentState(
            environment=environment, state="success", url=self.html_url("deployments/staging"), created_at=None
        )
