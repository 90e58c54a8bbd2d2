"""Evidence end to end: a release started over signed HTTP reads the fake GitHub with the real client, ticks what is
proven as the bot, keeps a failing item unticked until a re-check proves it or a manager overrides it, and says
"can't tell" when GitHub rate-limits. Slack is the loopback fake; every test runs on SQLite and Postgres."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.slack.view_meta import ViewSeal
from tests.conftest import RunningBot
from tests.evidence_support import (
    CHANNEL,
    click_override,
    is_ticked,
    item_block,
    item_text,
    ready_repo,
    start_evidence_bot,
)
from tests.fakes.github_api import FakeGitHub
from tests.fakes.slack_api import FakeSlack, render_text
from tests.slack_user import SECRET, find_item, submit_view
from tests.test_release_start import export, release_messages

TESTS = "pre_deploy.checks.tests_pass"
LINT = "pre_deploy.checks.lint"
REVIEWED = "pre_deploy.checks.reviewed"
CHANGELOG = "pre_deploy.checks.changelog"
NOTES = "pre_deploy.checks.release_notes"
BACKUP = "pre_deploy.checks.backup_done"
PROVEN_AT_START = (TESTS, LINT, REVIEWED, CHANGELOG, NOTES)


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with FakeGitHub() as fake:
        yield fake


@pytest.fixture
def bot(db_url: str, fake_slack: FakeSlack, github: FakeGitHub, tmp_path: Path) -> Iterator[RunningBot]:
    rb = start_evidence_bot(db_url, fake_slack, github, tmp_path, release_managers=("U0MANAGER1",))
    try:
        yield rb
    finally:
        rb.stop()


def header(fake: FakeSlack) -> dict:
    return release_messages(fake)[0]


def wait_evaluated(fake: FakeSlack, item_key: str, mark: str = ":white_check_mark:") -> str:
    return fake.wait_for(
        lambda: (text := item_text(fake, item_key)) and mark in text.split("\n", 1)[-1] and text, 10
    )


def test_a_started_release_ticks_what_github_proves_with_links(bot: RunningBot, github: FakeGitHub) -> None:
    _repo, sha = ready_repo(github)
    bot.user("U0MANAGER1", "mia").command("start v1.4.0")  # starting is a manager's

    for key in PROVEN_AT_START:
        bot.fake.wait_for(lambda key=key: is_ticked(bot.fake, key), 10)
    tests_line = item_text(bot.fake, TESTS)
    assert "5/5 checks passed" in tests_line  # four check runs and one commit status
    assert f"/commit/{sha}|{sha[:7]}>" in tests_line
    assert "1/1 checks passed" in item_text(bot.fake, LINT)
    assert "3 pull request(s) since v1.3.0, all approved and merged" in item_text(bot.fake, REVIEWED)
    assert "compare/v1.3.0...v1.4.0|v1.3.0...v1.4.0>" in item_text(bot.fake, REVIEWED)
    assert "CHANGELOG.md changed since v1.3.0 and mentions v1.4.0" in item_text(bot.fake, CHANGELOG)
    assert "release v1.4.0 published with notes" in item_text(bot.fake, NOTES)
    assert "release-bot" in item_text(bot.fake, TESTS)  # who ticked it: the bot, not a person
    # An item without evidence and the later phases' items are left to people.
    assert not is_ticked(bot.fake, BACKUP)
    assert "Evidence: :white_check_mark: 5" in render_text(header(bot.fake)["blocks"])

    events = json.loads(export(bot.bot.settings.database_url, "v1.4.0").stdout)
    bot_ticks = {e["item"]: e for e in events if e["action"] == "item_checked" and e["actor_id"] == "bot"}
    assert set(bot_ticks) == set(PROVEN_AT_START)
    evidence = bot_ticks[TESTS]["details"]["evidence"]
    assert evidence["status"] == "proven"
    assert evidence["parts"][0]["params"] == {"passed": 5, "total": 5}
    assert any(e["action"] == "evidence_evaluated" for e in events)


def test_a_failing_check_keeps_its_item_unticked_until_a_recheck_sees_it_pass(
    bot: RunningBot, github: FakeGitHub
) -> None:
    repo, sha = ready_repo(github)
    repo.check(sha, "lint", "failure")
    alice = bot.user()
    bot.user("U0MANAGER1", "mia").command("start v1.4.0")  # starting is a manager's

    line = wait_evaluated(bot.fake, LINT, ":x:")
    assert "1 of 1 checks failed: lint" in line
    assert not is_ticked(bot.fake, LINT)
    assert not is_ticked(bot.fake, TESTS)  # "every check" includes lint too
    block = item_block(bot.fake, LINT)
    assert block["accessory"]["type"] == "button"  # no checkbox to tick: an override asks for a reason

    # A tick forged from a stale copy of the message (before the evidence arrived) is refused.
    stale = next(m for m in release_messages(bot.fake) if _has_checkbox(m, BACKUP))
    stale_block, _element = find_item(stale, BACKUP)
    forged = json.loads(json.dumps(stale))
    for b in forged["blocks"]:
        if b.get("block_id") == stale_block["block_id"]:
            b["accessory"]["options"][0]["value"] = LINT
    assert alice.click_item(CHANNEL, forged, LINT, tick=True).status_code == 200
    bot.fake.wait_for(lambda: any("evidence for" in json.dumps(r) for r in bot.fake.responses()), 5)
    assert not bot.services.find(CHANNEL, "v1.4.0").items.get(LINT)

    repo.check(sha, "lint", "success")  # the fix is pushed and CI re-runs green
    recheck = alice.click_button(CHANNEL, header(bot.fake), "evidence-recheck")
    assert recheck.status_code == 200
    bot.fake.wait_for(lambda: is_ticked(bot.fake, LINT) and is_ticked(bot.fake, TESTS), 10)
    assert any("Evidence checked" in json.dumps(r) for r in bot.fake.responses())


def _has_checkbox(message: dict, key: str) -> bool:
    try:
        find_item(message, key)
        return True
    except AssertionError:
        return False


def test_a_manager_may_tick_a_failing_item_with_a_reason_and_the_report_says_so(
    bot: RunningBot, github: FakeGitHub
) -> None:
    repo, _sha = ready_repo(github)
    repo.releases.clear()  # nobody wrote the release notes
    bot.user("U0MANAGER1", "mia").command("start v1.4.0")  # starting is a manager's
    wait_evaluated(bot.fake, NOTES, ":x:")
    assert "no published GitHub release for v1.4.0" in item_text(bot.fake, NOTES)

    mallory, manager = bot.user("U0MALLORY1", "mallory"), bot.user("U0MANAGER1", "mia")
    for person in (mallory, manager):
        assert click_override(person, bot.fake, NOTES).status_code == 200
    modal = bot.fake.wait_for(
        lambda: len(bot.fake.calls("views.open")) >= 2 and bot.fake.calls("views.open"), 5
    )
    assert "no published GitHub release" in json.dumps(modal[0].params)
    views = [c.params["view"] if isinstance(c.params["view"], dict) else json.loads(c.params["view"]) for c in modal]
    # Each dialog is sealed for the person it was opened for: each submits their own.
    mine, theirs = (
        next(v for v in views if ViewSeal(SECRET).open(v["private_metadata"], who.user_id) is not None)
        for who in (mallory, manager)
    )
    submit_view(mallory, mine, "notes are in the wiki")
    bot.fake.wait_for(lambda: bot.fake.calls("chat.postEphemeral"), 5)
    assert not is_ticked(bot.fake, NOTES)

    submit_view(manager, theirs, "notes are in the wiki this time")
    bot.fake.wait_for(lambda: is_ticked(bot.fake, NOTES), 5)
    text = item_text(bot.fake, NOTES)
    assert "<@U0MANAGER1>" in text and "notes are in the wiki this time" in text

    # A re-check with the release still missing keeps the manager's tick.
    manager.click_button(CHANNEL, header(bot.fake), "evidence-recheck")
    bot.fake.wait_for(lambda: sum("Evidence checked" in json.dumps(r) for r in bot.fake.responses()) >= 1, 10)
    assert is_ticked(bot.fake, NOTES)

    report = export(bot.bot.settings.database_url, "v1.4.0", "md").stdout
    assert "## Evidence" in report
    proven = report.split("### Proven", 1)[1].split("###", 1)[0]
    assert "CHANGELOG updated?" in proven and "Release notes written?" not in proven
    overridden = report.split("### Ticked despite the evidence", 1)[1].split("###", 1)[0]
    assert "Release notes written?" in overridden and "notes are in the wiki this time" in overridden
    events = json.loads(export(bot.bot.settings.database_url, "v1.4.0").stdout)
    refused = [e for e in events if e["action"] == "permission_denied"]
    assert refused and refused[0]["actor_id"] == "U0MALLORY1"


def test_a_rate_limited_github_shows_cant_tell_and_the_release_goes_on(
    bot: RunningBot, github: FakeGitHub
) -> None:
    ready_repo(github)
    github.spend_quota()
    alice = bot.user()
    bot.user("U0MANAGER1", "mia").command("start v1.4.0")  # starting is a manager's

    line = wait_evaluated(bot.fake, TESTS, ":grey_question:")
    assert "Can't tell: GitHub's rate limit is reached; it resets <!date^" in line
    assert github.count(status=403) == 1  # after the first refusal the bot waits for the reset
    # People can still tick an item nobody could prove.
    message = item_block(bot.fake, TESTS)["_message"]
    alice.click_item(CHANNEL, message, TESTS, tick=True)
    bot.fake.wait_for(lambda: is_ticked(bot.fake, TESTS), 5)
    text = item_text(bot.fake, TESTS)
    assert "<@U061F7AUR>" in text
