"""The judgement rules of evidence, the checklist's `evidence:` field and the GitHub settings, without a network."""

from __future__ import annotations

import string
from datetime import UTC, datetime

import pytest

from bot.checklist.loading import load_checklist_text
from bot.config import load_settings
from bot.domain.evidence import EvidenceSource, EvidenceSpec, EvidenceStatus
from bot.errors import ChecklistError, ConfigError
from bot.i18n.evidence import WORDS
from bot.ports import CheckRun, Comparison, HealthResult, Reading, Review
from bot.usecases.evidence_judge import (
    approved,
    judge_checks,
    judge_http,
    judge_metric,
    judge_pulls,
    version_key,
)

CHECKS = EvidenceSpec(EvidenceSource.GITHUB_CHECKS)


def run(name: str, conclusion: str | None = "success", status: str = "completed") -> CheckRun:
    return CheckRun(name, status, conclusion, None)


def test_a_reviewers_latest_decision_counts() -> None:
    assert approved((Review("bob", "APPROVED"),))
    assert not approved((Review("bob", "COMMENTED"),))
    assert not approved((Review("bob", "APPROVED"), Review("carol", "CHANGES_REQUESTED")))
    assert approved((Review("bob", "CHANGES_REQUESTED"), Review("bob", "APPROVED")))
    assert not approved((Review("bob", "APPROVED"), Review("bob", "DISMISSED")))
    assert approved((Review("bob", "APPROVED"), Review("bob", "COMMENTED")))  # a comment changes no decision


def test_versions_order_as_semver_with_prereleases_first() -> None:
    ordered = ["v1.2.10", "v1.10.0", "v2.0.0-rc.1", "v2.0.0-rc.2", "v2.0.0", "v1.9.9"]
    keys = {v: version_key(v) for v in ordered}
    assert sorted(ordered, key=lambda v: keys[v]) == [
        "v1.2.10",
        "v1.9.9",
        "v1.10.0",
        "v2.0.0-rc.1",
        "v2.0.0-rc.2",
        "v2.0.0",
    ]
    assert version_key("nightly") is None


def test_checks_fail_before_they_pend_and_names_may_be_globs() -> None:
    runs = (run("test (3.11)"), run("test (3.12)", None, "in_progress"), run("lint", "failure"))
    part = judge_checks(CHECKS, "a" * 40, runs, "link")
    assert part.status is EvidenceStatus.FAILED and part.params["names"] == "lint"
    tests_only = EvidenceSpec(EvidenceSource.GITHUB_CHECKS, checks=("test (*)",))
    part = judge_checks(tests_only, "a" * 40, runs, "link")
    assert part.status is EvidenceStatus.UNKNOWN and part.key == "ev_checks_pending"
    done = (run("test (3.11)"), run("test (3.12)", "skipped"), run("docs", "neutral"))
    assert judge_checks(tests_only, "a" * 40, done, "link").status is EvidenceStatus.PROVEN
    missing = EvidenceSpec(EvidenceSource.GITHUB_CHECKS, checks=("typecheck",))
    part = judge_checks(missing, "a" * 40, done, "link")
    assert part.status is EvidenceStatus.FAILED and part.key == "ev_checks_missing"
    assert judge_checks(CHECKS, "a" * 40, (), "link").status is EvidenceStatus.UNKNOWN
    for conclusion in ("timed_out", "cancelled", "action_required", "stale", "error"):
        assert judge_checks(CHECKS, "a" * 40, (run("ci", conclusion),), "l").status is EvidenceStatus.FAILED


def test_pulls_name_the_unapproved_and_commits_without_any() -> None:
    from bot.ports import PullRequest

    comparison = Comparison("v1", "v2", ("c1", "c2"), (), 2, True, "https://x/compare")
    pulls = [PullRequest(n, "t", "u", "a", f"c{n}", datetime.now(UTC)) for n in (1, 2)]
    part = judge_pulls(comparison, "v1", "v2", pulls, {1: (Review("bob", "APPROVED"),), 2: ()})
    assert part.status is EvidenceStatus.FAILED and part.params["numbers"] == "#2"
    assert judge_pulls(comparison, "v1", "v2", [], {}).key == "ev_pulls_none"


def test_metric_bounds_and_missing_data() -> None:
    spec = EvidenceSpec(EvidenceSource.PROMETHEUS, query="up", min=0.5, max=0.8)
    assert judge_metric(spec, Reading(0.6)).status is EvidenceStatus.PROVEN
    assert judge_metric(spec, Reading(0.9)).status is EvidenceStatus.FAILED
    assert judge_metric(spec, Reading(0.1)).status is EvidenceStatus.FAILED
    assert judge_metric(spec, Reading(None, "empty result")).status is EvidenceStatus.UNKNOWN
    assert judge_metric(spec, None).key == "ev_prometheus_off"


def test_a_health_url_must_answer_2xx() -> None:
    assert judge_http(HealthResult("https://a/health", True, 200, 12.0, "ok")).status is EvidenceStatus.PROVEN
    failed = judge_http(HealthResult("https://a/health", False, None, 5000.0, "connection refused"))
    assert failed.status is EvidenceStatus.FAILED and "connection refused" in failed.params["summary"]


def test_every_evidence_message_says_the_same_things_in_both_languages() -> None:
    def fields(text: str) -> set[str]:
        return {name for _, name, _, _ in string.Formatter().parse(text) if name}

    for key, words in WORDS.items():
        assert set(words) == {"en", "ko"}, key
        assert fields(words["en"]) == fields(words["ko"]), key


BASE = """
name: web
title: "Web"
service: web
environments:
  - {key: production, title: "Production", health_url: "https://web.example.com/health"}
phases:
  - key: pre
    title: "Before"
    kind: checklist
    sections:
      - key: checks
        title: "Checks"
        items:
          - key: a
            text: "A?"
            evidence: EVIDENCE
"""


@pytest.mark.parametrize(
    ("evidence", "message"),
    [
        (
            "{source: github.checks, path: x}",
            "evidence[0].path: github.checks takes no path (it takes: checks)",
        ),
        ("{source: github.file_changed}", "github.file_changed needs a path"),
        ("{source: github.file_changed, path: /etc/passwd}", "write the path from the repository root"),
        ("{source: prometheus, query: up}", "prometheus evidence needs a bound"),
        ("{source: prometheus, query: up, max: 80}", None),
        ("{source: prometheus, query: up, max: 'lots'}", "invalid bound 'lots'"),
        ("{source: http}", "http evidence needs a url or environment"),
        ("{source: http, environment: nope}", "unknown environment 'nope'"),
        ("{source: github.deployment}", "github.deployment needs the GitHub environment name"),
        ("{source: gitlab.checks}", "Input should be 'github.checks'"),
        ("[" + ", ".join(["{source: github.release}"] * 6) + "]", "at most 5 evidence sources per item"),
    ],
)
def test_checklist_check_names_each_bad_evidence_field(evidence: str, message: str | None) -> None:
    text = BASE.replace("EVIDENCE", evidence)
    if message is None:
        checklist = load_checklist_text(text)
        assert checklist.item("pre.checks.a").evidence[0].max == 80
        return
    with pytest.raises(ChecklistError) as caught:
        load_checklist_text(text)
    assert message in caught.value.user_message


def test_tags_map_to_versions_by_the_pattern() -> None:
    checklist = load_checklist_text(
        BASE.replace("EVIDENCE", "{source: github.release}") + 'tag_pattern: "backend/v*"\n'
    )
    assert checklist.version_of_tag("backend/v1.4.0") == "v1.4.0"
    assert checklist.version_of_tag("v1.4.0") is None
    assert checklist.tag_for("v1.4.0") == "backend/v1.4.0"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"GITHUB_REPOSITORY": "not a repo"}, "GITHUB_REPOSITORY is invalid"),
        ({"GITHUB_REPOSITORY": "acme/backend"}, "needs GITHUB_TOKEN"),
        ({"GITHUB_TOKEN": "t"}, "GITHUB_REPOSITORY is not set"),
        ({"GITHUB_REPOSITORY": "acme/backend", "GITHUB_TOKEN": "t", "GITHUB_APP_ID": "1"}, "both set"),
        ({"GITHUB_REPOSITORY": "acme/backend", "GITHUB_APP_ID": "1"}, "GITHUB_APP_PRIVATE_KEY is not set"),
        (
            {
                "GITHUB_REPOSITORY": "acme/backend",
                "GITHUB_TOKEN": "t",
                "GITHUB_WEBHOOK_SECRET": "0123456789abcdef",
            },
            "needs RELEASE_CHANNEL",
        ),
        (
            {
                "GITHUB_REPOSITORY": "acme/backend",
                "GITHUB_TOKEN": "t",
                "GITHUB_WEBHOOK_SECRET": "short",
                "RELEASE_CHANNEL": "C0RELEASE",
            },
            "too short",
        ),
        ({"GITHUB_USERS": "octocat:U0123"}, "GITHUB_USERS is invalid"),
        ({"EVIDENCE": "maybe"}, "EVIDENCE is invalid"),
    ],
)
def test_github_settings_are_all_or_nothing_and_safe(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(env)
    assert message in caught.value.user_message


def test_github_settings_keep_their_secrets_out_of_repr() -> None:
    settings = load_settings(
        {
            "GITHUB_REPOSITORY": "acme/backend",
            "GITHUB_TOKEN": "github_pat_SECRET",
            "GITHUB_WEBHOOK_SECRET": "whsec-SECRET-0123456789",
            "RELEASE_CHANNEL": "C0RELEASE",
            "GITHUB_USERS": "OctoCat=U0OCTO1",
        }
    )
    assert "SECRET" not in repr(settings)
    assert "github_pat_SECRET" in settings.secrets() and settings.evidence_on
    assert settings.slack_user_of("octocat") == "U0OCTO1"
    assert not load_settings({}).evidence_on
