"""A loopback GitHub REST API (the read endpoints the bot uses), over real HTTP, with GitHub's rules.

What it enforces, as GitHub documents it (shared reference/github.md):

- **auth**: a fine-grained token (``Authorization: token …`` or ``Bearer …``), or a GitHub App: a JWT signed RS256
  with the app's key (``iss`` the app id, ``iat``/``exp`` at most 10 minutes apart, not expired) that may only call
  the ``/app/…`` endpoints and ``GET /repos/{o}/{r}/installation``, and installation tokens from
  ``POST /app/installations/{id}/access_tokens`` that expire (after an hour, or ``token_ttl``). Anything else is
  ``401 {"message": "Bad credentials", ...}``.
- **pagination**: ``per_page`` (default 30, at most 100) and ``page``, with a ``Link`` header (``next``, ``last``,
  ``prev``, ``first``) of full URLs; one page has no ``Link``.
- **rate limits**: every answer carries ``x-ratelimit-limit/-remaining/-used/-reset/-resource``; when the quota is
  spent the answer is ``403`` with ``x-ratelimit-remaining: 0`` and GitHub's message; ``secondary_limit()`` answers
  ``403`` (or ``429``) with ``retry-after``. ``GET /rate_limit`` and ``304`` answers cost nothing.
- **conditional requests**: every 200 has an ``ETag``; ``If-None-Match`` with it answers ``304`` with no body.
- **errors**: ``{"message", "documentation_url", "status"}`` bodies; 404 for unknown repos, refs, releases, files.

Tests build a repository with ``repo.commit``, ``repo.merge_pull``, ``repo.tag``, ``repo.check``, ``repo.release``
and ``repo.deploy``, and read ``requests`` (method, path, status) to count what the bot sent.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

import jwt

DOCS = "https://docs.github.com/rest"


class RawText(str):
    """A body sent as it is, for clients asking for the raw media type (``application/vnd.github.raw+json``)."""


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def fake_sha(seed: str) -> str:
    return hashlib.sha1(seed.encode()).hexdigest()


@dataclass
class Commit:
    sha: str
    message: str
    parents: tuple[str, ...]
    at: datetime
    changes: dict[str, str | None]  # path -> new text (None: deleted)
    author: str = "octocat"


@dataclass
class Pull:
    number: int
    title: str
    author: str
    merge_commit_sha: str | None
    merged_at: datetime | None
    updated_at: datetime
    state: str = "closed"
    reviews: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Deployment:
    id: int
    sha: str
    environment: str
    created_at: datetime
    statuses: list[dict[str, Any]] = field(default_factory=list)


class FakeRepo:
    """One repository's history and what CI, reviewers and releases said about it."""

    def __init__(self, fake: FakeGitHub, full_name: str) -> None:
        self.fake = fake
        self.full_name = full_name
        self.commits: dict[str, Commit] = {}
        self.head: str | None = None
        self.tags: dict[str, tuple[str, str | None]] = {}  # name -> (commit sha, tag object sha if annotated)
        self.check_runs: dict[str, list[dict[str, Any]]] = {}
        self.statuses: dict[str, list[dict[str, Any]]] = {}
        self.pulls: list[Pull] = []
        self.releases: dict[str, dict[str, Any]] = {}
        self.deployments: list[Deployment] = []
        self._clock = datetime.now(UTC) - timedelta(days=30)

    def _tick(self) -> datetime:
        self._clock += timedelta(minutes=5)
        return self._clock

    def commit(
        self, message: str, files: dict[str, str | None] | None = None, author: str = "octocat"
    ) -> str:
        sha = fake_sha(f"{self.full_name}:{len(self.commits)}:{message}")
        parents = (self.head,) if self.head else ()
        self.commits[sha] = Commit(sha, message, parents, self._tick(), dict(files or {}), author)
        self.head = sha
        return sha

    def merge_pull(
        self,
        title: str,
        *,
        author: str = "alice",
        files: dict[str, str | None] | None = None,
        approvals: tuple[str, ...] = ("bob",),
        reviews: tuple[tuple[str, str], ...] = (),
    ) -> Pull:
        """A squash-merged pull request: one commit on the main line, its PR closed as merged."""
        number = 100 + len(self.pulls) + 1
        sha = self.commit(
            f"{title} (#{number})", files or {f"src/change_{number}.py": f"# {title}\n"}, author
        )
        at = self.commits[sha].at
        pull = Pull(number, title, author, sha, at, at)
        for user, state in (*reviews, *((u, "APPROVED") for u in approvals)):
            pull.reviews.append(
                {
                    "id": len(pull.reviews) + 1,
                    "user": {"login": user, "type": "User"},
                    "state": state,
                    "commit_id": sha,
                    "submitted_at": _iso(at),
                    "body": "",
                }
            )
        self.pulls.append(pull)
        return pull

    def close_pull(self, title: str) -> Pull:
        """A pull request closed without merging."""
        number = 100 + len(self.pulls) + 1
        pull = Pull(number, title, "mallory", None, None, self._tick())
        self.pulls.append(pull)
        return pull

    def tag(self, name: str, sha: str | None = None, *, annotated: bool = True) -> str:
        sha = sha or self.head
        assert sha is not None
        self.tags[name] = (sha, fake_sha(f"tagobj:{name}:{sha}") if annotated else None)
        return sha

    def check(
        self, sha: str, name: str, conclusion: str | None = "success", *, status: str = "completed"
    ) -> None:
        runs = self.check_runs.setdefault(sha, [])
        run_id = len(runs) + 1 + 1000 * len(self.check_runs)
        runs[:] = [r for r in runs if r["name"] != name]  # the latest run of a name replaces the earlier one
        runs.append(
            {
                "id": run_id,
                "head_sha": sha,
                "name": name,
                "status": status,
                "conclusion": conclusion if status == "completed" else None,
                "html_url": f"{self.fake.html}/{self.full_name}/runs/{run_id}",
                "app": {"slug": "github-actions"},
            }
        )

    def status(self, sha: str, context: str, state: str) -> None:
        listed = self.statuses.setdefault(sha, [])
        listed[:] = [s for s in listed if s["context"] != context]
        listed.append(
            {"context": context, "state": state, "target_url": f"https://ci.example.com/{context}/{sha[:7]}"}
        )

    def release(self, tag: str, body: str = "## What's new\n- things", *, draft: bool = False) -> None:
        self.releases[tag] = {
            "id": len(self.releases) + 1,
            "tag_name": tag,
            "name": tag,
            "body": body,
            "draft": draft,
            "prerelease": False,
            "html_url": f"{self.fake.html}/{self.full_name}/releases/tag/{tag}",
        }

    def deploy(self, sha: str, environment: str, state: str = "success") -> Deployment:
        deployment = next(
            (d for d in self.deployments if d.sha == sha and d.environment == environment), None
        )
        if deployment is None:
            deployment = Deployment(len(self.deployments) + 1, sha, environment, self._tick())
            self.deployments.append(deployment)
        deployment.statuses.append(
            {
                "id": len(deployment.statuses) + 1,
                "state": state,
                "environment": environment,
                "environment_url": f"https://{environment}.example.com",
                "log_url": f"{self.fake.html}/{self.full_name}/actions/runs/{deployment.id}",
                "created_at": _iso(self._tick()),
            }
        )
        return deployment

    # --- history ------------------------------------------------------------------------------------------

    def ancestors(self, sha: str) -> list[str]:
        """sha and everything before it, newest first."""
        out, todo, seen = [], [sha], set()
        while todo:
            current = todo.pop(0)
            if current in seen or current not in self.commits:
                continue
            seen.add(current)
            out.append(current)
            todo.extend(self.commits[current].parents)
        return sorted(out, key=lambda s: self.commits[s].at, reverse=True)

    def resolve(self, ref: str) -> str | None:
        if ref in self.commits:
            return ref
        if ref in self.tags:
            return self.tags[ref][0]
        matches = [s for s in self.commits if s.startswith(ref)] if len(ref) >= 7 else []
        return matches[0] if len(matches) == 1 else None

    def text_at(self, path: str, sha: str) -> str | None:
        for commit in self.ancestors(sha):
            if path in self.commits[commit].changes:
                return self.commits[commit].changes[path]
        return None


class FakeGitHub:
    """The server. ``token`` is the fine-grained token it accepts; ``app(...)`` makes it accept a GitHub App."""

    def __init__(self, *, token: str = "github_pat_11TEST0000000000fine", rate_limit: int = 5000) -> None:
        self.token = token
        self.repos: dict[str, FakeRepo] = {}
        self.requests: list[tuple[str, str, int]] = []  # (method, path with query, status)
        self.limit = rate_limit
        self.used: dict[str, int] = {}
        self.reset_at = int(time.time()) + 3600
        self.app_id: str | None = None
        self.app_public_key: str | None = None
        self.installation_id = 4242
        self.token_ttl = timedelta(hours=1)
        self.installation_tokens: dict[str, datetime] = {}
        self.tokens_issued = 0
        self._secondary: tuple[int, int, int] | None = None  # (remaining answers, status, retry-after)
        self._faults: list[int] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self.base_url = ""
        self.html = ""

    # --- set-up -----------------------------------------------------------------------------------------------

    def repo(self, full_name: str) -> FakeRepo:
        return self.repos.setdefault(full_name, FakeRepo(self, full_name))

    def app(self, app_id: str, public_key_pem: str) -> None:
        self.app_id, self.app_public_key = app_id, public_key_pem

    def spend_quota(self, token_key: str | None = None) -> None:
        """Use up the primary rate limit of every credential (or one)."""
        with self._lock:
            for key in [token_key] if token_key else [*self.used, self.token, *self.installation_tokens]:
                self.used[key] = self.limit

    def restore_quota(self) -> None:
        with self._lock:
            self.used.clear()
            self.reset_at = int(time.time()) + 3600

    def secondary_limit(self, answers: int = 1, *, status: int = 403, retry_after: int = 60) -> None:
        self._secondary = (answers, status, retry_after)

    def fail_next(self, count: int = 1, status: int = 502) -> None:
        self._faults.extend([status] * count)

    def count(self, method: str = "GET", prefix: str = "/repos/", status: int | None = None) -> int:
        return sum(
            1
            for m, p, s in self.requests
            if m == method and p.startswith(prefix) and (status is None or s == status)
        )

    # --- serving ----------------------------------------------------------------------------------------------

    def __enter__(self) -> FakeGitHub:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                fake._handle(self, "GET")

            def do_POST(self) -> None:
                fake._handle(self, "POST")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        port = self._server.server_address[1]
        self.base_url = f"http://127.0.0.1:{port}"
        self.html = f"{self.base_url}/web"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        if length:
            handler.rfile.read(length)
        status, body, headers = self._answer(method, handler.path, handler.headers)
        with self._lock:
            self.requests.append((method, handler.path, status))
        if status == 304:
            raw = b""
        elif isinstance(body, RawText):
            raw = body.encode()
        else:
            raw = json.dumps(body).encode()
        handler.send_response(status)
        for name, value in headers.items():
            handler.send_header(name, value)
        if status != 304:
            kind = "text/plain" if isinstance(body, RawText) else "application/json"
            handler.send_header("Content-Type", f"{kind}; charset=utf-8")
        handler.send_header("Content-Length", str(len(raw)))
        handler.end_headers()
        handler.wfile.write(raw)

    def _error(self, status: int, message: str) -> tuple[int, Any, dict[str, str]]:
        return status, {"message": message, "documentation_url": DOCS, "status": str(status)}, {}

    def _answer(self, method: str, target: str, headers: Any) -> tuple[int, Any, dict[str, str]]:
        parts = urlsplit(target)
        path, query = unquote(parts.path), {k: v[-1] for k, v in parse_qs(parts.query).items()}
        if self._faults:
            status = self._faults.pop(0)
            return self._error(status, "Server Error")
        if path == "/rate_limit" and method == "GET":
            return 200, {"resources": {"core": {"limit": self.limit}}}, {}
        credential, problem = self._authenticate(path, method, headers.get("Authorization", ""))
        if problem is not None:
            return self._error(401, problem)
        if self._secondary is not None:
            answers, status, retry_after = self._secondary
            self._secondary = (answers - 1, status, retry_after) if answers > 1 else None
            return (
                status,
                {
                    "message": "You have exceeded a secondary rate limit. Please wait a few minutes before you "
                    "try again.",
                    "documentation_url": DOCS,
                    "status": str(status),
                },
                {"retry-after": str(retry_after)},
            )
        with self._lock:
            used = self.used.get(credential, 0)
        rate = {
            "x-ratelimit-limit": str(self.limit),
            "x-ratelimit-resource": "core",
            "x-ratelimit-reset": str(self.reset_at),
        }
        if used >= self.limit:
            rate |= {"x-ratelimit-remaining": "0", "x-ratelimit-used": str(used)}
            return (
                403,
                {"message": "API rate limit exceeded for installation ID 4242.", "documentation_url": DOCS},
                rate,
            )
        status, body, extra = self._route(method, path, query)
        if isinstance(body, dict) and "_raw" in body:
            raw = body.pop("_raw")
            if "raw" in headers.get("Accept", ""):
                body = RawText(raw)
        if status == 200 and method == "GET":
            etag = 'W/"' + hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:32] + '"'
            extra = {**extra, "ETag": etag}
            if headers.get("If-None-Match") == etag:
                rate |= {"x-ratelimit-remaining": str(self.limit - used), "x-ratelimit-used": str(used)}
                return 304, None, {**rate, "ETag": etag}
        with self._lock:
            self.used[credential] = used + 1
        rate |= {"x-ratelimit-remaining": str(self.limit - used - 1), "x-ratelimit-used": str(used + 1)}
        return status, body, {**rate, **extra}

    def _authenticate(self, path: str, method: str, header: str) -> tuple[str, str | None]:
        scheme, _, value = header.partition(" ")
        if scheme.lower() not in ("token", "bearer") or not value:
            return "", "Requires authentication"
        app_route = path.startswith("/app") or (
            method == "GET" and re.fullmatch(r"/repos/[^/]+/[^/]+/installation", path)
        )
        if value.count(".") == 2:  # a JWT: the app itself
            if self.app_public_key is None:
                return "", "A JSON web token could not be decoded"
            try:
                claims = jwt.decode(
                    value,
                    self.app_public_key,
                    algorithms=["RS256"],
                    options={"require": ["iat", "exp", "iss"]},
                )
            except jwt.ExpiredSignatureError:
                return (
                    "",
                    "'Expiration time' claim ('exp') must be a numeric value representing the future time at "
                    "which the assertion expires",
                )
            except jwt.PyJWTError:
                return "", "A JSON web token could not be decoded"
            if str(claims["iss"]) != self.app_id or claims["exp"] - claims["iat"] > 660:
                return "", "'Issuer' claim ('iss') must be an Integer"
            if not app_route:
                return "", "A JSON web token could not be decoded"  # an app JWT may not read repositories
            return f"app:{self.app_id}", None
        if value == self.token:
            return value, None
        expires = self.installation_tokens.get(value)
        if expires is not None and expires > datetime.now(UTC) and not app_route:
            return value, None
        return "", "Bad credentials"

    def _route(self, method: str, path: str, query: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        match = re.fullmatch(r"/app/installations/(\d+)/access_tokens", path)
        if match and method == "POST":
            if int(match[1]) != self.installation_id:
                return self._error(404, "Not Found")
            token = "ghs_" + secrets.token_hex(18)
            expires = datetime.now(UTC) + self.token_ttl
            self.installation_tokens[token] = expires
            self.tokens_issued += 1
            return 201, {"token": token, "expires_at": _iso(expires), "permissions": {"checks": "read"}}, {}
        match = re.fullmatch(r"/repos/([^/]+/[^/]+)(/.*)?", path)
        if method != "GET" or not match or match[1] not in self.repos:
            return self._error(404, "Not Found")
        repo, rest = self.repos[match[1]], match[2] or ""
        for pattern, handler in self._routes():
            found = re.fullmatch(pattern, rest)
            if found:
                return handler(repo, found, query, path)
        return self._error(404, "Not Found")

    def _routes(self) -> list[tuple[str, Callable[..., tuple[int, Any, dict[str, str]]]]]:
        return [
            (
                r"/installation",
                lambda r, m, q, p: (200, {"id": self.installation_id, "app_id": self.app_id}, {}),
            ),
            (r"/git/ref/tags/(.+)", self._git_ref),
            (r"/git/tags/([0-9a-f]{40})", self._git_tag),
            (r"/git/commits/([0-9a-f]{40})", self._git_commit),
            (r"/commits/([^/]+)/check-runs", self._check_runs),
            (r"/commits/([^/]+)/status", self._combined_status),
            (r"/commits", self._commits),
            (
                r"/tags",
                lambda r, m, q, p: self._paged(
                    [
                        {"name": n, "commit": {"sha": s}}
                        for n, (s, _o) in sorted(r.tags.items(), reverse=True)
                    ],
                    q,
                    p,
                ),
            ),
            (r"/compare/(.+)\.\.\.(.+)", self._compare),
            (r"/pulls", self._pulls),
            (r"/pulls/(\d+)/reviews", self._reviews),
            (r"/contents/(.+)", self._contents),
            (r"/releases/tags/(.+)", self._release),
            (r"/deployments", self._deployments),
            (r"/deployments/(\d+)/statuses", self._deployment_statuses),
        ]

    def _paged(
        self,
        items: list[Any],
        query: dict[str, str],
        path: str,
        wrap: Callable[[list[Any]], Any] | None = None,
    ) -> tuple[int, Any, dict[str, str]]:
        try:
            per_page = min(int(query.get("per_page", 30)), 100)
            page = max(int(query.get("page", 1)), 1)
        except ValueError:
            return self._error(422, "Invalid request.")
        last = max((len(items) + per_page - 1) // per_page, 1)
        chunk = items[(page - 1) * per_page : page * per_page]
        headers = {}
        if last > 1:

            def url(n: int) -> str:
                return f"{self.base_url}{quote(path)}?{urlencode({**query, 'page': n, 'per_page': per_page})}"

            links = []
            if page < last:
                links += [f'<{url(page + 1)}>; rel="next"', f'<{url(last)}>; rel="last"']
            if page > 1:
                links += [f'<{url(page - 1)}>; rel="prev"', f'<{url(1)}>; rel="first"']
            headers["Link"] = ", ".join(links)
        return 200, wrap(chunk) if wrap else chunk, headers

    def _git_ref(
        self, repo: FakeRepo, m: re.Match[str], q: dict[str, str], p: str
    ) -> tuple[int, Any, dict[str, str]]:
        if m[1] not in repo.tags:
            return self._error(404, "Not Found")
        sha, tag_object = repo.tags[m[1]]
        obj = {"type": "tag", "sha": tag_object} if tag_object else {"type": "commit", "sha": sha}
        return 200, {"ref": f"refs/tags/{m[1]}", "object": obj}, {}

    def _git_tag(
        self, repo: FakeRepo, m: re.Match[str], q: dict[str, str], p: str
    ) -> tuple[int, Any, dict[str, str]]:
        for name, (sha, tag_object) in repo.tags.items():
            if tag_object == m[1]:
                return 200, {"sha": tag_object, "tag": name, "object": {"type": "commit", "sha": sha}}, {}
        return self._error(404, "Not Found")

    def _git_commit(
        self, repo: FakeRepo, m: re.Match[str], q: dict[str, str], p: str
    ) -> tuple[int, Any, dict[str, str]]:
        commit = repo.commits.get(m[1])
        if commit is None:
            return self._error(404, "Not Found")
        return 200, {"sha": commit.sha, "message": commit.message, "committer": {"date": _iso(commit.at)}}, {}

    def _check_runs(
        self, repo: FakeRepo, m: re.Match[str], q: dict[str, str], p: str
    ) -> tuple[int, Any, dict[str, str]]:
        sha = repo.resolve(m[1])
        if sha is None:
            return self._error(422, f"No commit found for SHA: {m[1]}")
        runs = repo.check_runs.get(sha, [])
        return self._paged(runs, q, p, wrap=lambda chunk: {"total_count": len(runs), "check_runs": chunk})

    def _combined_status(
        self, repo: FakeRepo, m: re.Match[str], q: dict[str, str], p: str
    ) -> tuple[int, Any, dict[str, str]]:
        sha = repo.resolve(m[1])
        if sha is None:
            return self._error(422, f"No commit found for SHA: {m[1]}")
        statuses = repo.statuses.get(sha, [])
        states = {s["state"] for s in statuses}
        state = (
            "failure"
            if states & {"error", "failure"}
            else ("pending" if not statuses or "pending" in states else "success")
        )
        return self._paged(
            statuses,
            q,
            p,
            wrap=lambda chunk: {"state": state, "sha": sha, "total_count": len(statuses), "statuses": chunk},
        )

    def _commits(
        self, repo: FakeRepo, m: re.Match[str], q: dict[str, str], p: str
    ) -> tuple[int, Any, dict[str, str]]:
        head = repo.resolve(q.get("sha", "")) if q.get("sha") else repo.head
        if head is None:
            return self._error(404, "Not Found")
        shas = repo.ancestors(head)
        if "path" in q:
            shas = [s for s in shas if q["path"] in repo.commits[s].changes]
        return self._paged([{"sha": s, "commit": {"message": repo.commits[s].message}} for s in shas], q, p)

    def _compare(
        self, repo: FakeRepo, m: re.Match[str], q: dict[str, str], p: str
    ) -> tuple[int, Any, dict[str, str]]:
        base, head = repo.resolve(m[1]), repo.resolve(m[2])
        if base is None or head is None:
            return self._error(404, "Not Found")
        behind = set(repo.ancestors(base))
        ahead = [s for s in reversed(repo.ancestors(head)) if s not in behind]  # chronological
        files = sorted({path for s in ahead for path in repo.commits[s].changes})
        body = {
            "html_url": f"{self.html}/{repo.full_name}/compare/{m[1]}...{m[2]}",
            "status": "ahead" if ahead else "identical",
            "ahead_by": len(ahead),
            "behind_by": 0,
            "total_commits": len(ahead),
        }
        if "per_page" not in q and "page" not in q:
            commits = ahead[:250]
            return (
                200,
                {
                    **body,
                    "commits": [{"sha": s} for s in commits],
                    "files": [{"filename": f} for f in files[:300]],
                },
                {},
            )
        page = max(int(q.get("page", 1)), 1)

        def wrap(chunk: list[Any]) -> Any:
            out = {**body, "commits": chunk}
            if page == 1:
                out["files"] = [{"filename": f} for f in files[:300]]
            return out

        return self._paged([{"sha": s} for s in ahead], q, p, wrap=wrap)

    def _pulls(
        self, repo: FakeRepo, m: re.Match[str], q: dict[str, str], p: str
    ) -> tuple[int, Any, dict[str, str]]:
        state = q.get("state", "open")
        listed = [pr for pr in repo.pulls if state == "all" or pr.state == state]
        listed.sort(key=lambda pr: pr.updated_at, reverse=q.get("direction", "desc") == "desc")
        return self._paged(
            [
                {
                    "number": pr.number,
                    "title": pr.title,
                    "state": pr.state,
                    "html_url": f"{self.html}/{repo.full_name}/pull/{pr.number}",
                    "user": {"login": pr.author},
                    "merged_at": _iso(pr.merged_at) if pr.merged_at else None,
                    "merge_commit_sha": pr.merge_commit_sha,
                    "updated_at": _iso(pr.updated_at),
                }
                for pr in listed
            ],
            q,
            p,
        )

    def _reviews(
        self, repo: FakeRepo, m: re.Match[str], q: dict[str, str], p: str
    ) -> tuple[int, Any, dict[str, str]]:
        pull = next((pr for pr in repo.pulls if pr.number == int(m[1])), None)
        if pull is None:
            return self._error(404, "Not Found")
        return self._paged(pull.reviews, q, p)

    def _contents(
        self, repo: FakeRepo, m: re.Match[str], q: dict[str, str], p: str
    ) -> tuple[int, Any, dict[str, str]]:
        ref = repo.resolve(q.get("ref", "")) if q.get("ref") else repo.head
        text = repo.text_at(m[1], ref) if ref else None
        if text is None:
            return self._error(404, "Not Found")
        # JSON here; a client asking for the raw media type gets the text itself (see _handle's caller).
        content = base64.b64encode(text.encode()).decode()
        return 200, {"type": "file", "path": m[1], "encoding": "base64", "content": content, "_raw": text}, {}

    def _release(
        self, repo: FakeRepo, m: re.Match[str], q: dict[str, str], p: str
    ) -> tuple[int, Any, dict[str, str]]:
        release = repo.releases.get(m[1])
        if release is None or release["draft"]:  # drafts are not "published releases"
            return self._error(404, "Not Found")
        return 200, release, {}

    def _deployments(
        self, repo: FakeRepo, m: re.Match[str], q: dict[str, str], p: str
    ) -> tuple[int, Any, dict[str, str]]:
        listed = [
            d
            for d in reversed(repo.deployments)
            if q.get("sha") in (None, d.sha) and q.get("environment") in (None, d.environment)
        ]
        return self._paged(
            [
                {"id": d.id, "sha": d.sha, "environment": d.environment, "created_at": _iso(d.created_at)}
                for d in listed
            ],
            q,
            p,
        )

    def _deployment_statuses(
        self, repo: FakeRepo, m: re.Match[str], q: dict[str, str], p: str
    ) -> tuple[int, Any, dict[str, str]]:
        deployment = next((d for d in repo.deployments if d.id == int(m[1])), None)
        if deployment is None:
            return self._error(404, "Not Found")
        return self._paged(list(reversed(deployment.statuses)), q, p)
