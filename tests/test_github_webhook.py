"""The tag starts the release: GitHub deliveries over real HTTP into the bot, signed (or not) as GitHub signs them.

A pushed release tag starts its release in the release channel credited to the pusher; a redelivery changes
nothing; an unsigned, forged or malformed delivery is refused 4xx and logged without its body; deployment
results are told in the release thread and tick the item they prove. SQLite and Postgres."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.runtime.github_webhook import signature
from tests.conftest import RunningBot
from tests.evidence_support import (
    CHANNEL,
    REPO,
    WEBHOOK_SECRET,
    is_ticked,
    item_text,
    ready_repo,
    start_evidence_bot,
)
from tests.fakes import github_webhooks as hooks
from tests.fakes.github_api import FakeGitHub
from tests.fakes.slack_api import FakeSlack, render_text
from tests.test_release_start import export, release_messages

DEPLOYED = "staging.verify.deployed"


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with FakeGitHub() as fake:
        yield fake


@pytest.fixture
def bot(db_url: str, fake_slack: FakeSlack, github: FakeGitHub, tmp_path: Path) -> Iterator[RunningBot]:
    rb = start_evidence_bot(db_url, fake_slack, github, tmp_path, github_users=(("octocat", "U0OCTOCAT1"),))
    try:
        yield rb
    finally:
        rb.stop()


def deliver(bot: RunningBot, event: str, payload: dict | bytes, **kwargs: object) -> object:
    kwargs.setdefault("secret", WEBHOOK_SECRET)
    return hooks.deliver(bot.http, bot.url, event, payload, **kwargs)  # type: ignore[arg-type]


def thread(fake: FakeSlack) -> list[str]:
    return [m["text"] for m in fake.messages.get(CHANNEL, []) if m.get("thread_ts") not in (None, m["ts"])]


def test_githubs_documented_signature_example() -> None:
    assert signature("It's a Secret to Everybody", b"Hello, World!") == (
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    )


def test_a_pushed_tag_starts_the_release_credited_to_the_pusher(bot: RunningBot, github: FakeGitHub) -> None:
    _repo, sha = ready_repo(github)
    response = deliver(bot, "push", hooks.push_tag(REPO, "v1.4.0", sha, tag_object="a" * 40))
    assert response.status_code == 202  # type: ignore[attr-defined]

    messages = bot.fake.wait_for(
        lambda: len(release_messages(bot.fake)) >= 4 and release_messages(bot.fake), 10
    )
    assert "Release v1.4.0" in render_text(messages[0]["blocks"])
    assert "Started by <@U0OCTOCAT1>" in render_text(messages[0]["blocks"])
    note = bot.fake.wait_for(lambda: next((t for t in thread(bot.fake) if "push of tag" in t), None), 10)
    assert "<@U0OCTOCAT1>'s push of tag `v1.4.0`" in note and sha[:7] in note
    bot.fake.wait_for(lambda: is_ticked(bot.fake, "pre_deploy.checks.tests_pass"), 10)

    events = json.loads(export(bot.bot.settings.database_url, "v1.4.0").stdout)
    started = events[0]
    assert started["action"] == "release_started" and started["actor_id"] == "U0OCTOCAT1"
    assert started["details"]["github_delivery"]


def test_a_redelivered_push_changes_nothing(bot: RunningBot, github: FakeGitHub) -> None:
    _repo, sha = ready_repo(github)
    payload = hooks.push_tag(REPO, "v1.4.0", sha)
    assert deliver(bot, "push", payload, delivery="72d3162e-cc78-11e3-81ab-4c9367dc0958").status_code == 202  # type: ignore[attr-defined]
    bot.fake.wait_for(lambda: is_ticked(bot.fake, "pre_deploy.checks.tests_pass"), 10)
    bot.fake.wait_for(lambda: any("push of tag" in t for t in thread(bot.fake)), 10)
    posts = len(bot.fake.calls("chat.postMessage"))
    audit = export(bot.bot.settings.database_url, "v1.4.0").stdout

    # GitHub redelivers with the same GUID (from the UI or the API), here twice, once while the release is running.
    for _ in range(2):
        assert (
            deliver(bot, "push", payload, delivery="72d3162e-cc78-11e3-81ab-4c9367dc0958").status_code == 202
        )  # type: ignore[attr-defined]
    bot.bot.work_pool.submit(lambda: None).result(5)  # type: ignore[union-attr]
    bot.bot.executor.submit(lambda: None).result(5)
    assert len(bot.fake.calls("chat.postMessage")) == posts
    assert export(bot.bot.settings.database_url, "v1.4.0").stdout == audit

    # A new delivery of the same tag (a second webhook, another GUID) finds the release running and starts nothing.
    assert deliver(bot, "push", payload).status_code == 202  # type: ignore[attr-defined]
    bot.bot.work_pool.submit(lambda: None).result(5)  # type: ignore[union-attr]
    assert len(bot.services.recent(CHANNEL)) == 1


@pytest.mark.parametrize(
    ("case", "status"),
    [("unsigned", 401), ("forged", 401), ("other secret", 401), ("not json", 400), ("no delivery", 400)],
)
def test_unsigned_forged_and_malformed_deliveries_are_refused_and_logged_without_their_body(
    bot: RunningBot, github: FakeGitHub, caplog: pytest.LogCaptureFixture, case: str, status: int
) -> None:
    _repo, sha = ready_repo(github)
    payload = hooks.push_tag(REPO, "v1.4.0", sha)
    payload["head_commit"]["message"] = "SECRET-BODY-MARKER"
    body = json.dumps(payload).encode()
    caplog.set_level(logging.INFO)
    if case == "unsigned":
        response = deliver(bot, "push", body, secret=None)
    elif case == "forged":
        response = deliver(bot, "push", body, signature="sha256=" + "0" * 64)
    elif case == "other secret":
        response = deliver(bot, "push", body, secret="not-the-webhook-secret")
    elif case == "not json":
        response = deliver(bot, "push", b"{not json SECRET-BODY-MARKER")
    else:
        response = hooks.deliver(bot.http, bot.url, "push", body, secret=WEBHOOK_SECRET, delivery="")
    assert response.status_code == status  # type: ignore[attr-defined]
    assert "SECRET-BODY-MARKER" not in response.text  # type: ignore[attr-defined]
    assert "SECRET-BODY-MARKER" not in caplog.text
    assert WEBHOOK_SECRET not in caplog.text
    if status == 401:
        assert "refused a GitHub webhook" in caplog.text
    bot.bot.executor.submit(lambda: None).result(5)
    assert bot.services.recent(CHANNEL) == []
    assert bot.fake.calls("chat.postMessage") == []


def test_the_route_answers_only_signed_posts_of_known_size(bot: RunningBot) -> None:
    assert bot.http.get(f"{bot.url}/github/webhook").status_code == 405
    big = b"{" + b" " * 5_000_001 + b"}"
    assert deliver(bot, "push", big).status_code == 413  # type: ignore[attr-defined]
    assert deliver(bot, "ping", {"zen": "Design for failure.", "hook_id": 1}).status_code == 200  # type: ignore[attr-defined]
    assert deliver(bot, "issues", {"action": "opened"}).status_code == 202  # type: ignore[attr-defined]


def test_tags_outside_the_pattern_and_deleted_tags_start_nothing(bot: RunningBot, github: FakeGitHub) -> None:
    _repo, sha = ready_repo(github)
    for event, payload in (
        ("push", hooks.push_tag(REPO, "nightly-2026-12-06", sha)),
        ("push", hooks.delete_tag(REPO, "v1.4.0", sha)),
        ("push", hooks.push_tag("someone/else", "v1.4.0", sha)),
        ("push", {**hooks.push_tag(REPO, "v1.4.0", sha), "ref": "refs/heads/main"}),
    ):
        assert deliver(bot, event, payload).status_code == 202  # type: ignore[attr-defined]
    bot.bot.work_pool.submit(lambda: None).result(5)  # type: ignore[union-attr]
    assert bot.services.recent(CHANNEL) == []


def test_an_unmapped_pusher_is_named_not_mentioned(bot: RunningBot, github: FakeGitHub) -> None:
    _repo, sha = ready_repo(github)
    deliver(bot, "push", hooks.push_tag(REPO, "v1.4.0", sha, login="U0FAKEUSER"))
    header = bot.fake.wait_for(lambda: release_messages(bot.fake) and release_messages(bot.fake)[0], 10)
    text = render_text(header["blocks"])
    assert "U0FAKEUSER (GitHub)" in text and "<@U0FAKEUSER>" not in text


def test_a_staging_deployment_is_told_in_the_thread_and_ticks_its_item(
    bot: RunningBot, github: FakeGitHub
) -> None:
    repo, sha = ready_repo(github)
    deliver(bot, "push", hooks.push_tag(REPO, "v1.4.0", sha))
    bot.fake.wait_for(lambda: is_ticked(bot.fake, "pre_deploy.checks.tests_pass"), 10)
    view = bot.services.find(CHANNEL, "v1.4.0")
    alice = bot.user()
    # The team moves on to staging (the untrusted backup item overridden by the gate's reason modal is not the
    # point here): advance with the pre-deploy items ticked by hand where the bot could not prove them.
    from tests.slack_user import find_item

    for message in release_messages(bot.fake):
        try:
            find_item(message, "pre_deploy.checks.backup_done")
        except AssertionError:
            continue
        alice.click_item(CHANNEL, message, "pre_deploy.checks.backup_done", tick=True)
    bot.fake.wait_for(lambda: is_ticked(bot.fake, "pre_deploy.checks.backup_done"), 5)
    header = release_messages(bot.fake)[0]
    alice.click_button(CHANNEL, header, "release-advance")
    line = bot.fake.wait_for(lambda: (t := item_text(bot.fake, DEPLOYED)) and ":x:" in t and t, 10)
    assert "not deployed to staging yet" in line

    repo.deploy(sha, "staging", "success")
    payload = hooks.deployment_status(REPO, sha, "staging", "success", ref="v1.4.0")
    assert deliver(bot, "deployment_status", payload).status_code == 202  # type: ignore[attr-defined]
    note = bot.fake.wait_for(
        lambda: next((t for t in thread(bot.fake) if "deployment to *staging*" in t), None), 10
    )
    assert "success" in note
    bot.fake.wait_for(lambda: is_ticked(bot.fake, DEPLOYED), 10)
    assert "deployed to staging" in item_text(bot.fake, DEPLOYED)
    assert view.release.id == bot.services.find(CHANNEL, "v1.4.0").release.id

    # The same delivery again posts nothing more.
    notes = len(thread(bot.fake))
    deliver(bot, "deployment_status", payload, delivery="d-1")
    deliver(bot, "deployment_status", payload, delivery="d-1")
    bot.bot.work_pool.submit(lambda: None).result(5)  # type: ignore[union-attr]
    bot.fake.wait_for(lambda: len(thread(bot.fake)) >= notes + 1, 5)
    bot.bot.executor.submit(lambda: None).result(5)
    assert len(thread(bot.fake)) == notes + 1


def test_a_finished_workflow_run_is_told_once_in_the_thread(bot: RunningBot, github: FakeGitHub) -> None:
    _repo, sha = ready_repo(github)
    deliver(bot, "push", hooks.push_tag(REPO, "v1.4.0", sha))
    bot.fake.wait_for(lambda: is_ticked(bot.fake, "pre_deploy.checks.tests_pass"), 10)
    before = len(thread(bot.fake))

    # A run still in progress, and one for a commit no release is on, are no news for the thread.
    running = hooks.workflow_run(REPO, sha, name="Deploy", conclusion="", branch="v1.4.0")
    running["action"] = "in_progress"
    running["workflow_run"]["status"] = "in_progress"
    assert deliver(bot, "workflow_run", running).status_code == 202  # type: ignore[attr-defined]
    elsewhere = hooks.workflow_run(REPO, "f" * 40, name="Deploy", conclusion="failure", branch="main")
    assert deliver(bot, "workflow_run", elsewhere).status_code == 202  # type: ignore[attr-defined]

    done = hooks.workflow_run(REPO, sha, name="Deploy", conclusion="failure", branch="v1.4.0")
    assert deliver(bot, "workflow_run", done, delivery="run-1").status_code == 202  # type: ignore[attr-defined]
    note = bot.fake.wait_for(lambda: next((t for t in thread(bot.fake) if "Workflow *Deploy*" in t), None), 10)
    assert "failure" in note and ":x:" in note and f"|{sha[:7]}>" in note
    assert "/actions/runs/30433642" in note

    deliver(bot, "workflow_run", done, delivery="run-1")  # GitHub's redelivery of the same run
    bot.bot.work_pool.submit(lambda: None).result(5)  # type: ignore[union-attr]
    bot.bot.executor.submit(lambda: None).result(5)
    runs = [t for t in thread(bot.fake)[before:] if "Workflow *" in t]
    assert runs == [note]


@pytest.mark.slow
def test_under_serve_the_work_process_acts_on_a_verified_push(
    tmp_path: Path, fake_slack: FakeSlack, github: FakeGitHub
) -> None:
    """The two-process ``serve``: the serving process verifies and answers 202, the work process starts the release."""
    from tests.evidence_support import checklist_file
    from tests.proc import BotProcess, bot_env

    _repo, sha = ready_repo(github)
    env = bot_env(
        f"sqlite:///{tmp_path / 'bot.db'}",
        fake_slack.base_url,
        checklist_file(tmp_path),
        GITHUB_REPOSITORY=REPO,
        GITHUB_API_URL=github.base_url,
        GITHUB_TOKEN=github.token,
        GITHUB_WEBHOOK_SECRET=WEBHOOK_SECRET,
        RELEASE_CHANNEL=CHANNEL,
    )
    bot = BotProcess(env, tmp_path / "bot.log").start()
    try:
        import httpx

        with httpx.Client(timeout=10) as http:
            forged = hooks.deliver(
                http, bot.url, "push", hooks.push_tag(REPO, "v1.4.0", sha), secret="wrong-secret-000"
            )
            assert forged.status_code == 401
            payload = hooks.push_tag(REPO, "v1.4.0", sha)
            assert hooks.deliver(http, bot.url, "push", payload, secret=WEBHOOK_SECRET).status_code == 202
        fake_slack.wait_for(lambda: len(release_messages(fake_slack)) >= 4, 20)
        fake_slack.wait_for(lambda: is_ticked(fake_slack, "pre_deploy.checks.tests_pass"), 20)
    finally:
        bot.terminate()
