"""How many GitHub requests one evaluation of a 40-item evidence checklist costs, measured against the loopback GitHub.

    .venv/bin/python -m bench.evidence_requests

The checklist has 40 evidence items: 20 ``github.checks`` (named checks), 4 ``github.pulls``, 10
``github.file_changed`` over 5 files, 3 ``github.release`` and 3 ``github.deployment`` over 2 environments. The
repository has a previous release tag and 12 approved pull requests since. One evaluation reads it through the real
adapter (githubkit, ETag cache) and the same memo the bot uses; the fake counts what reaches it.

Prints, for a first evaluation and for a re-check of the unchanged release: requests sent, how many GitHub answered
304 (free: not counted against the rate limit), and how many counted against it; then the stated upper bound.
"""

from __future__ import annotations

import time

from bot.adapters.github import MAX_PAGES, GitHubRepo
from bot.domain.checklist import Checklist
from bot.domain.evidence import EvidenceSource, EvidenceSpec
from bot.usecases.evidence_judge import MAX_PULLS, RepoLook, judge_github
from tests.evidence_support import REPO, ready_repo
from tests.fakes.github_api import FakeGitHub

FILES = ("CHANGELOG.md", "pyproject.toml", "docs/api.md", "README.md", "VERSION")
PULLS = 12


def specs() -> list[EvidenceSpec]:
    items = [EvidenceSpec(EvidenceSource.GITHUB_CHECKS, checks=(f"job {n % 8}",)) for n in range(20)]
    items += [EvidenceSpec(EvidenceSource.GITHUB_PULLS) for _ in range(4)]
    items += [
        EvidenceSpec(EvidenceSource.GITHUB_FILE, path=FILES[n % 5], contains_version=n < 5) for n in range(10)
    ]
    items += [EvidenceSpec(EvidenceSource.GITHUB_RELEASE) for _ in range(3)]
    items += [
        EvidenceSpec(EvidenceSource.GITHUB_DEPLOYMENT, environment=("staging", "production")[n % 2])
        for n in range(3)
    ]
    assert len(items) == 40
    return items


def upper_bound(paths: int, environments: int, pulls: int) -> int:
    """Every request one evaluation may send, with each listing at its page bound (README, "Requests")."""
    tag = 2  # the tag's ref, and its tag object when annotated
    listings = MAX_PAGES["check-runs"] + MAX_PAGES["statuses"] + MAX_PAGES["tags"] + MAX_PAGES["compare"]
    listings += MAX_PAGES["pulls"] + 1  # + the previous tag's commit date
    reviews = min(pulls, MAX_PULLS) * MAX_PAGES["reviews"]
    files = 2 * paths  # its text, and the commit that last touched it when the comparison lists 300 files
    return tag + listings + reviews + files + 1 + 2 * environments


Row = tuple[str, int, int, int, float, int]


def measure() -> tuple[list[Row], int]:
    """(label, requests, 304s, counted, seconds, proven) for a first evaluation and a re-check; the bound."""
    checklist = Checklist(name="bench", title="bench", service="backend", phases=())
    with FakeGitHub() as fake:
        repo, _sha = ready_repo(fake)
        for n in range(PULLS - 3):
            repo.merge_pull(f"change {n}")
        head = repo.commit("Release", dict.fromkeys(FILES, "1.4.0\n"))
        repo.tags["v1.4.0"] = (head, repo.tags["v1.4.0"][1])
        for n in range(8):
            repo.check(head, f"job {n}", "success")
        repo.deploy(head, "staging")
        repo.deploy(head, "production")
        gh = GitHubRepo(REPO, api_url=fake.base_url, token=fake.token)
        rows = []
        for label in ("first evaluation", "re-check, nothing changed"):
            before = len(fake.requests)
            started = time.perf_counter()
            look = RepoLook(gh, version="v1.4.0", tag="v1.4.0", tag_version=checklist.version_of_tag)
            statuses = [judge_github(spec, look).status.value for spec in specs()]
            elapsed = time.perf_counter() - started
            sent = fake.requests[before:]
            free = sum(1 for _m, _p, status in sent if status == 304)
            rows.append((label, len(sent), free, len(sent) - free, elapsed, statuses.count("proven")))
        bound = upper_bound(len(FILES), 2, PULLS)
    return rows, bound


def main() -> None:
    rows, bound = measure()
    print("| evaluation of 40 evidence items | requests | 304 (free) | counted | time | proven |")
    print("|---|---|---|---|---|---|")
    for label, total, free, counted, elapsed, proven in rows:
        print(f"| {label} | {total} | {free} | {counted} | {elapsed * 1000:.0f} ms | {proven}/40 |")
    print(
        f"\nupper bound for this checklist ({len(FILES)} files, 2 environments, {PULLS} pull requests): {bound}"
    )
    print(f"general bound: 42 + 3 x min(pull requests, {MAX_PULLS}) + 2 x files + 2 x environments")


if __name__ == "__main__":
    main()
