"""GitHubRepo: the ``CodeHost`` port over githubkit, read-only, for one repository.

githubkit brings GitHub App authentication (a JWT signed with the app's key, then an installation token it caches
and renews a minute before its hour is up), and turns GitHub's rate-limit answers into typed exceptions. Requests go
through ``EtagTransport`` so that a re-check of an unchanged release costs no quota. Pages are followed by their
``Link: rel="next"`` header, never built by hand, up to a stated number of pages per call.

When GitHub says to slow down (403/429 with ``retry-after`` or ``x-ratelimit-remaining: 0``), the adapter sends
nothing more until the time GitHub named and answers ``GitHubError(kind="rate_limited")`` at once: an evaluation
then shows "cannot tell" instead of waiting, and the quota recovers.

githubkit costs ~18 MB of memory to import: it is imported on the first request, in the process that evaluates.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx

from bot.adapters.github_cache import EtagTransport, WireCounts
from bot.errors import GitHubError
from bot.ports import (
    CheckRun,
    Comparison,
    DeploymentState,
    PullRequest,
    ReleaseNotes,
    Review,
    TagRef,
)

if TYPE_CHECKING:
    from githubkit import GitHub

log = logging.getLogger(__name__)

API_VERSION = "2022-11-28"
PER_PAGE = 100
# Pages followed per call, at most: each bound is stated in the README and bench/RESULTS.md.
MAX_PAGES = {"check-runs": 10, "statuses": 3, "tags": 10, "compare": 10, "pulls": 5, "reviews": 3}
MAX_FILE_BYTES = 1_000_000
COMPARE_FILES_CAP = 300  # GitHub lists at most 300 files of a comparison


def html_base(api_url: str) -> str:
    """Where people open what the API names: github.com for api.github.com, the host for GitHub Enterprise."""
    url = httpx.URL(api_url)
    path = url.path.rstrip("/")
    if url.host == "api.github.com":
        return "https://github.com"
    if path.endswith("/api/v3"):
        path = path[: -len("/api/v3")]
    return str(url.copy_with(path=path or "/")).rstrip("/")


def _when(text: Any) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        return None


class GitHubRepo:
    """Reads one repository. Thread-safe; every method raises ``GitHubError`` for what it cannot read."""

    def __init__(
        self,
        repository: str,
        *,
        api_url: str = "https://api.github.com",
        token: str = "",
        app_id: str = "",
        private_key: str = "",
        installation_id: int | None = None,
        timeout_s: float = 10.0,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        owner, _, name = repository.partition("/")
        if not owner or not name:
            raise ValueError(f"repository must be owner/name, got {repository!r}")
        if not token and not (app_id and private_key):
            raise ValueError("GitHub needs a token, or an app id with its private key")
        self._repo = repository
        self._api_url = api_url.rstrip("/") + "/"
        self._html = html_base(api_url)
        self._token = token
        self._app_id = app_id
        self._private_key = private_key
        self._installation_id = installation_id
        self._timeout = httpx.Timeout(timeout_s, connect=min(timeout_s, 5.0))
        self._cache = EtagTransport(transport or httpx.HTTPTransport(retries=1))
        self._clock = clock
        self._gh: GitHub[Any] | None = None
        self._lock = threading.Lock()
        self._blocked_until: datetime | None = None

    @property
    def repository(self) -> str:
        return self._repo

    @property
    def counts(self) -> WireCounts:
        return self._cache.counts

    def html_url(self, path: str) -> str:
        return f"{self._html}/{self._repo}/{path.lstrip('/')}"

    # --- the client ------------------------------------------------------------------------------------

    def _client(self) -> GitHub[Any]:
        with self._lock:
            if self._gh is None:
                self._gh = self._make_client()
            return self._gh

    def _make_client(self) -> GitHub[Any]:
        from githubkit import AppAuthStrategy, GitHub, TokenAuthStrategy
        from githubkit.cache import MemCacheStrategy

        def client(auth: Any) -> GitHub[Any]:
            return GitHub(
                auth,
                base_url=self._api_url,
                timeout=self._timeout,
                transport=self._cache,
                http_cache=False,  # the EtagTransport does it, bounded
                # Tokens and JWTs are cached per client: two bots in one process never share them.
                cache_strategy=MemCacheStrategy(),
                auto_retry=_retry_server_error_once,
                user_agent="release-bot",
            )

        if self._token:
            return client(TokenAuthStrategy(self._token))
        app = AppAuthStrategy(app_id=self._app_id, private_key=self._private_key)
        installation = self._installation_id
        if installation is None:
            # Which installation of the app reaches this repository (GitHub's answer changes only on reinstall).
            data = self._call(lambda: client(app).request("GET", f"repos/{self._repo}/installation"))
            installation = int(data["id"])
            self._installation_id = installation
        return client(app.as_installation(installation))

    def _call(self, send: Callable[[], Any]) -> Any:
        """Send one request; translate githubkit's exceptions into ``GitHubError``; return the JSON body."""
        response = self._send(send)
        return response.json() if response.raw_response.content else None

    def _send(self, send: Callable[[], Any]) -> Any:
        """Send one request and return githubkit's response; raise ``GitHubError`` for what went wrong."""
        from githubkit.exception import (
            AuthCredentialError,
            RateLimitExceeded,
            RequestFailed,
            RequestTimeout,
        )
        from githubkit.exception import RequestError as GhRequestError

        now = self._clock()
        blocked = self._blocked_until
        if blocked is not None and now < blocked:
            raise GitHubError("ev_rate_limited", kind="rate_limited", retry_at=blocked)
        try:
            response = send()
        except RateLimitExceeded as e:
            until = now + max(e.retry_after, timedelta(seconds=1))
            self._blocked_until = until
            log.warning("GitHub rate limit reached: sending nothing until %s", until.isoformat())
            raise GitHubError("ev_rate_limited", kind="rate_limited", retry_at=until, detail=str(e)) from None
        except RequestFailed as e:
            status = e.response.status_code
            message = _message(e.response.raw_response)
            if status == 404:
                raise _NotFound(message) from None
            if status in (401, 403):
                raise GitHubError(
                    "ev_github_auth", kind="auth", detail=f"GitHub answered {status}: {message}"
                ) from None
            if status >= 500:
                raise GitHubError(
                    "ev_github_unreachable", kind="unreachable", detail=f"GitHub answered {status}"
                ) from None
            raise GitHubError(
                "ev_github_error", kind="error", detail=f"GitHub answered {status}: {message}"
            ) from None
        except RequestTimeout:
            raise GitHubError(
                "ev_github_unreachable", kind="unreachable", detail="no answer in time"
            ) from None
        except GhRequestError as e:
            raise GitHubError(
                "ev_github_unreachable", kind="unreachable", detail=type(e.exc).__name__
            ) from None
        except AuthCredentialError as e:
            raise GitHubError("ev_github_auth", kind="auth", detail=str(e)) from None
        return response

    def _get(self, path: str, params: dict[str, Any] | None = None, accept: str | None = None) -> Any:
        headers = {"X-GitHub-Api-Version": API_VERSION}
        if accept:
            headers["Accept"] = accept
        gh = self._client()
        return self._call(lambda: gh.request("GET", path, params=params, headers=headers))

    def _get_text(self, path: str, params: dict[str, Any]) -> str | None:
        gh = self._client()
        headers = {"X-GitHub-Api-Version": API_VERSION, "Accept": "application/vnd.github.raw+json"}
        try:
            response = self._send(lambda: gh.request("GET", path, params=params, headers=headers))
        except _NotFound:
            return None
        return str(response.raw_response.content[:MAX_FILE_BYTES].decode("utf-8", "replace"))

    def _pages(self, path: str, params: dict[str, Any], what: str, key: str | None = None) -> Iterator[Any]:
        """Every element of a listing, following ``Link: rel="next"`` for at most ``MAX_PAGES[what]`` pages."""
        gh = self._client()
        headers = {"X-GitHub-Api-Version": API_VERSION}
        url: str | httpx.URL = path
        query: dict[str, Any] | None = {**params, "per_page": PER_PAGE}
        for _ in range(MAX_PAGES[what]):
            response = self._send(functools.partial(gh.request, "GET", url, params=query, headers=headers))
            data = response.json()
            yield from (data.get(key) or []) if key else (data or [])
            next_url = _next_link(response.headers.get("link", ""))
            if next_url is None:
                return
            url, query = httpx.URL(next_url), None  # the next link carries its own query
        log.info("stopped following %s pages of %s after %d", what, path, MAX_PAGES[what])

    def _repo_path(self, tail: str) -> str:
        return f"repos/{self._repo}/{tail}"

    # --- the port ---------------------------------------------------------------------------------------

    def tag_commit(self, tag: str) -> str | None:
        try:
            ref = self._get(self._repo_path(f"git/ref/tags/{quote(tag, safe='/')}"))
        except _NotFound:
            return None
        obj = ref.get("object") or {}
        # An annotated tag points at a tag object, which points at the commit (or, rarely, at another tag).
        for _ in range(3):
            if obj.get("type") != "tag":
                break
            obj = (self._get(self._repo_path(f"git/tags/{obj['sha']}")) or {}).get("object") or {}
        return str(obj["sha"]) if obj.get("type") == "commit" else None

    def check_runs(self, sha: str) -> tuple[CheckRun, ...]:
        runs = self._pages(self._repo_path(f"commits/{sha}/check-runs"), {}, "check-runs", key="check_runs")
        return tuple(
            CheckRun(str(r.get("name", "")), str(r.get("status", "")), r.get("conclusion"), r.get("html_url"))
            for r in runs
        )

    def statuses(self, sha: str) -> tuple[CheckRun, ...]:
        listed = self._pages(self._repo_path(f"commits/{sha}/status"), {}, "statuses", key="statuses")
        out = []
        for s in listed:
            state = str(s.get("state", ""))
            done = "queued" if state == "pending" else "completed"
            out.append(CheckRun(str(s.get("context", "")), done, state, s.get("target_url")))
        return tuple(out)

    def tags(self) -> tuple[TagRef, ...]:
        listed = self._pages(self._repo_path("tags"), {}, "tags")
        return tuple(TagRef(str(t["name"]), str((t.get("commit") or {}).get("sha", ""))) for t in listed)

    def compare(self, base: str, head: str) -> Comparison:
        path = self._repo_path(f"compare/{quote(base, safe='/')}...{quote(head, safe='/')}")
        commits: list[str] = []
        files: list[str] = []
        first: dict[str, Any] = {}
        gh = self._client()
        headers = {"X-GitHub-Api-Version": API_VERSION}
        url: str | httpx.URL = path
        query: dict[str, Any] | None = {"per_page": PER_PAGE}
        for page in range(MAX_PAGES["compare"]):
            response = self._send(functools.partial(gh.request, "GET", url, params=query, headers=headers))
            data = response.json()
            if page == 0:
                first = data
                # Files come on the first page only.
                files = [str(f.get("filename", "")) for f in data.get("files") or []]
            commits += [str(c.get("sha", "")) for c in data.get("commits") or []]
            next_url = _next_link(response.headers.get("link", ""))
            if next_url is None:
                break
            url, query = httpx.URL(next_url), None
        return Comparison(
            base=base,
            head=head,
            commits=tuple(commits),
            files=tuple(files),
            total_commits=int(first.get("total_commits") or len(commits)),
            files_complete=len(files) < COMPARE_FILES_CAP,
            url=str(first.get("html_url") or self.html_url(f"compare/{base}...{head}")),
        )

    def merged_pulls(self, since: datetime) -> tuple[PullRequest, ...]:
        params = {"state": "closed", "sort": "updated", "direction": "desc"}
        out = []
        for p in self._pages(self._repo_path("pulls"), params, "pulls"):
            updated = _when(p.get("updated_at"))
            if updated is not None and updated < since:
                break  # sorted by update, newest first: everything after this is older still
            merged = _when(p.get("merged_at"))
            if merged is None:
                continue
            out.append(
                PullRequest(
                    number=int(p["number"]),
                    title=str(p.get("title", "")),
                    url=str(p.get("html_url", "")),
                    author=str((p.get("user") or {}).get("login", "")),
                    # Read from the JSON: githubkit's model for this API version leaves the field out.
                    merge_commit_sha=p.get("merge_commit_sha"),
                    merged_at=merged,
                )
            )
        return tuple(out)

    def reviews(self, number: int) -> tuple[Review, ...]:
        listed = self._pages(self._repo_path(f"pulls/{number}/reviews"), {}, "reviews")
        return tuple(
            Review(str((r.get("user") or {}).get("login", "")), str(r.get("state", ""))) for r in listed
        )

    def file_text(self, path: str, ref: str) -> str | None:
        return self._get_text(self._repo_path(f"contents/{quote(path, safe='/')}"), {"ref": ref})

    def last_commit_of(self, path: str, ref: str) -> str | None:
        listed = self._get(self._repo_path("commits"), {"path": path, "sha": ref, "per_page": 1})
        return str(listed[0]["sha"]) if listed else None

    def commit_date(self, sha: str) -> datetime | None:
        try:
            commit = self._get(self._repo_path(f"git/commits/{sha}"))
        except _NotFound:
            return None
        return _when((commit.get("committer") or {}).get("date"))

    def release(self, tag: str) -> ReleaseNotes | None:
        try:
            r = self._get(self._repo_path(f"releases/tags/{quote(tag, safe='')}"))
        except _NotFound:
            return None
        return ReleaseNotes(
            tag=str(r.get("tag_name", tag)),
            name=str(r.get("name") or ""),
            body=str(r.get("body") or ""),
            url=str(r.get("html_url", "")),
            draft=bool(r.get("draft")),
            prerelease=bool(r.get("prerelease")),
        )

    def deployment(self, sha: str, environment: str) -> DeploymentState | None:
        listed = self._get(
            self._repo_path("deployments"), {"sha": sha, "environment": environment, "per_page": 1}
        )
        if not listed:
            return None
        deployment = listed[0]  # newest first
        statuses = self._get(self._repo_path(f"deployments/{deployment['id']}/statuses"), {"per_page": 1})
        if not statuses:
            return DeploymentState(environment, "pending", None, _when(deployment.get("created_at")))
        latest = statuses[0]
        url = latest.get("environment_url") or latest.get("log_url") or latest.get("target_url")
        return DeploymentState(
            environment, str(latest.get("state", "")), url, _when(latest.get("created_at"))
        )

    def close(self) -> None:
        self._cache.close()


class _NotFound(GitHubError):
    """A 404: for the reads where "there is none" is an answer (a tag, a release, a file)."""

    def __init__(self, message: str) -> None:
        super().__init__("ev_github_error", kind="error", detail=f"not found: {message}")


def _message(response: httpx.Response) -> str:
    """GitHub's error body is ``{"message": ..., "documentation_url": ...}``."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    return str(body.get("message", ""))[:200] if isinstance(body, dict) else ""


def _next_link(header: str) -> str | None:
    for part in header.split(","):
        section = part.split(";")
        if len(section) >= 2 and any(s.strip() == 'rel="next"' for s in section[1:]):
            return section[0].strip().strip("<>")
    return None


def _retry_server_error_once(exc: Exception, retry_count: int) -> Any:
    """githubkit's retry decision: a 5xx once after a second; never sleep for a rate limit (see the module)."""
    from githubkit.exception import RateLimitExceeded, RequestFailed
    from githubkit.retry import RetryOption

    if (
        retry_count < 1
        and isinstance(exc, RequestFailed)
        and not isinstance(exc, RateLimitExceeded)
        and exc.response.status_code >= 500
    ):
        return RetryOption(True, timedelta(seconds=1))
    return RetryOption(False)
