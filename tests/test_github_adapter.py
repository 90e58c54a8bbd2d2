"""GitHubRepo (githubkit) against the loopback GitHub: auth, App installation tokens, Link pages, ETags, rate limits,
GitHub's error answers, and the number of requests one evaluation of a 40-item checklist costs."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from bot.adapters.github import MAX_PAGES, GitHubRepo, html_base
from bot.errors import GitHubError
from tests.evidence_support import REPO, ready_repo
from tests.fakes.github_api import FakeGitHub


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with FakeGitHub() as fake:
        yield fake


def client(fake: FakeGitHub, **kwargs: object) -> GitHubRepo:
    kwargs.setdefault("token", fake.token)
    return GitHubRepo(REPO, api_url=fake.base_url, timeout_s=5, **kwargs)  # type: ignore[arg-type]


def app_key() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


def test_reads_a_release_with_a_fine_grained_token(github: FakeGitHub) -> None:
    _repo, sha = ready_repo(github)
    gh = client(github)
    assert gh.tag_commit("v1.4.0") == sha  # an annotated tag: ref -> tag object -> commit
    assert gh.tag_commit("v9.9.9") is None
    assert {r.name for r in gh.check_runs(sha)} == {"test (3.11)", "test (3.12)", "lint", "typecheck"}
    assert [s.name for s in gh.statuses(sha)] == ["ci/coverage"]
    comparison = gh.compare("v1.3.0", "v1.4.0")
    assert comparison.total_commits == 4 and "CHANGELOG.md" in comparison.files and comparison.files_complete
    assert gh.file_text("CHANGELOG.md", "v1.4.0") == "# Changelog\n\n## 1.4.0\n- search\n"
    assert gh.file_text("missing.md", "v1.4.0") is None
    assert gh.release("v1.4.0") is not None and gh.release("v1.3.0") is None


def test_a_wrong_token_is_an_auth_error_with_githubs_message(github: FakeGitHub) -> None:
    ready_repo(github)
    with pytest.raises(GitHubError) as caught:
        client(github, token="github_pat_wrong").check_runs("0" * 40)
    assert caught.value.kind == "auth"
    assert "401: Bad credentials" in str(caught.value)
    assert "github_pat_wrong" not in str(caught.value)


def test_a_github_app_signs_in_with_a_jwt_and_renews_its_installation_token_before_it_expires(
    github: FakeGitHub,
) -> None:
    _repo, sha = ready_repo(github)
    private, public = app_key()
    github.app("123456", public)
    # githubkit renews a minute before expiry: a token of 64 s is renewed after four seconds (one second, as this
    # test had it, was less than a loaded CI machine took for the first two calls).
    github.token_ttl = timedelta(seconds=64)
    gh = GitHubRepo(REPO, api_url=github.base_url, app_id="123456", private_key=private)
    assert gh.tag_commit("v1.4.0") == sha
    issued = time.monotonic()  # the token was issued during that call: it is renewed 3-4 s after it at the latest
    assert github.count(prefix=f"/repos/{REPO}/installation") == 1  # the installation id, asked once
    assert github.tokens_issued == 1
    gh.check_runs(sha)
    assert github.tokens_issued == 1  # still fresh
    time.sleep(max(0.0, issued + 4.2 - time.monotonic()))
    gh.check_runs(sha)
    assert github.tokens_issued == 2
    # The app's own JWT cannot read the repository; a forged one is refused.
    other_private, _ = app_key()
    forged = GitHubRepo(REPO, api_url=github.base_url, app_id="123456", private_key=other_private)
    with pytest.raises(GitHubError) as caught:
        forged.tag_commit("v1.4.0")
    assert caught.value.kind == "auth"


def test_listings_follow_link_pages_up_to_their_bound(github: FakeGitHub) -> None:
    repo, sha = ready_repo(github)
    for n in range(230):
        repo.check(sha, f"shard {n:03d}", "success")
    gh = client(github)
    assert len(gh.check_runs(sha)) == 234
    pages = [p for m, p, s in github.requests if "/check-runs" in p]
    assert len(pages) == 3 and "page=2" in pages[1] and "page=3" in pages[2]  # the links GitHub gave
    for n in range(1200):
        repo.check(sha, f"more {n:04d}", "success")
    before = len(github.requests)
    assert len(gh.check_runs(sha)) == MAX_PAGES["check-runs"] * 100  # stops at the stated bound
    assert len(github.requests) - before == MAX_PAGES["check-runs"]


def test_a_second_read_revalidates_with_the_etag_at_no_cost(github: FakeGitHub) -> None:
    _repo, sha = ready_repo(github)
    gh = client(github)
    first = gh.check_runs(sha)
    used = github.used[github.token]
    assert gh.check_runs(sha) == first
    assert github.requests[-1][2] == 304
    assert github.used[github.token] == used  # a 304 does not count against the rate limit
    assert gh.counts.not_modified == 1


def test_the_primary_rate_limit_stops_all_requests_until_the_reset(github: FakeGitHub) -> None:
    _repo, sha = ready_repo(github)
    now = [datetime.now(UTC)]
    gh = client(github, clock=lambda: now[0])
    github.spend_quota()
    with pytest.raises(GitHubError) as caught:
        gh.check_runs(sha)
    assert caught.value.kind == "rate_limited"
    assert caught.value.retry_at is not None
    assert abs(caught.value.retry_at.timestamp() - github.reset_at) < 5  # x-ratelimit-reset
    sent = len(github.requests)
    with pytest.raises(GitHubError):
        gh.tags()
    assert len(github.requests) == sent  # nothing sent while GitHub said to wait
    github.restore_quota()
    now[0] = caught.value.retry_at + timedelta(seconds=1)
    assert gh.tags()


@pytest.mark.parametrize("status", [403, 429])
def test_a_secondary_rate_limit_waits_the_retry_after(github: FakeGitHub, status: int) -> None:
    _repo, sha = ready_repo(github)
    now = [datetime.now(UTC)]
    gh = client(github, clock=lambda: now[0])
    github.secondary_limit(status=status, retry_after=30)
    with pytest.raises(GitHubError) as caught:
        gh.check_runs(sha)
    assert caught.value.kind == "rate_limited"
    assert caught.value.retry_at == now[0] + timedelta(seconds=30)
    now[0] += timedelta(seconds=31)
    assert gh.check_runs(sha)


def test_a_server_error_is_retried_once_then_reported_unreachable(github: FakeGitHub) -> None:
    _repo, sha = ready_repo(github)
    gh = client(github)
    github.fail_next(1, 502)
    assert gh.check_runs(sha)  # retried after a second
    github.fail_next(2, 503)
    with pytest.raises(GitHubError) as caught:
        gh.check_runs(sha)
    assert caught.value.kind == "unreachable"


def test_a_github_that_does_not_answer_is_unreachable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    gh = GitHubRepo(REPO, api_url=f"http://127.0.0.1:{port}", token="t", timeout_s=1)
    with pytest.raises(GitHubError) as caught:
        gh.tags()
    assert caught.value.kind == "unreachable"


def test_links_point_where_people_open_them() -> None:
    assert html_base("https://api.github.com") == "https://github.com"
    assert html_base("https://ghe.example.com/api/v3/") == "https://ghe.example.com"


def test_one_evaluation_of_40_items_stays_within_its_stated_bound_and_a_recheck_costs_no_quota() -> None:
    from bench.evidence_requests import measure

    (first, recheck), bound = measure()
    assert first[5] == 40 and recheck[5] == 40  # every item proven both times
    assert first[1] <= bound
    assert recheck[3] == 0  # every answer a 304
