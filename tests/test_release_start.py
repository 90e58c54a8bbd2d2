"""/release start and ticking, end to end: signed HTTP into the bot, the real slack_sdk out to the fake Slack."""

from __future__ import annotations

import html
import json
import subprocess
import sys
from pathlib import Path

import pytest

from bot.checklist.loading import load_checklist
from bot.slack.gateway import ChannelPacer
from tests.conftest import SEED_CHECKLIST, RunningBot, make_settings, start_bot
from tests.fakes.slack_api import FakeSlack, render_text
from tests.slack_user import find_item

CHANNEL = "C0RELEASES"


def release_messages(fake: FakeSlack, channel: str = CHANNEL) -> list[dict]:
    """Top-level messages the bot posted in the channel, oldest first."""
    return [m for m in fake.messages.get(channel, []) if m.get("thread_ts") in (None, m["ts"])]


def wait_for_release(fake: FakeSlack, count: int, channel: str = CHANNEL) -> list[dict]:
    return fake.wait_for(lambda: (msgs := release_messages(fake, channel)) and len(msgs) >= count and msgs)


def item_message(fake: FakeSlack, item_key: str, channel: str = CHANNEL) -> dict:
    for message in release_messages(fake, channel):
        try:
            find_item(message, item_key)
            return message
        except AssertionError:
            continue
    raise AssertionError(f"no message holds {item_key}")


def ticked(message: dict, item_key: str) -> bool:
    _, element = find_item(message, item_key)
    return any(o["value"] == item_key for o in element.get("initial_options") or [])


def export(db_url: str, version: str, fmt: str = "json") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", "export", version, "--format", fmt],
        env={"DATABASE_URL": db_url, "PATH": "/usr/bin:/bin", "RELEASE_BOT_LANGUAGE": "en"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_start_posts_header_and_checklist_and_acks_privately(running: RunningBot) -> None:
    alice = running.user()
    response = alice.command("start v1.4.0")
    assert response.status_code == 200
    assert "Starting v1.4.0" in response.json()["text"]
    assert response.json()["response_type"] == "ephemeral"

    checklist = running.bot.services.checklist
    messages = wait_for_release(running.fake, 1 + len(checklist.flow_phases))
    header = messages[0]
    assert "Release v1.4.0" in render_text(header["blocks"])
    assert "<@U061F7AUR>" in render_text(header["blocks"])
    every_item = [item.key for phase in checklist.flow_phases for item in phase.items]
    shown = " ".join(render_text(m["blocks"]) for m in messages[1:])
    for phase in checklist.flow_phases:
        assert phase.title in shown
        for item in phase.items:
            assert item.text in shown
    for key in every_item:
        assert not ticked(item_message(running.fake, key), key)


def test_ticks_by_two_users_show_mentions_and_are_exported(running: RunningBot, db_url: str) -> None:
    alice, bob = running.user("U061F7AUR", "alice"), running.user("U0BOB00002", "bob")
    alice.command("start v1.4.0")
    checklist = running.bot.services.checklist
    wait_for_release(running.fake, 1 + len(checklist.flow_phases))
    first, second = [item.key for item in checklist.flow_phases[0].items][:2]

    assert alice.click_item(CHANNEL, item_message(running.fake, first), first).status_code == 200
    running.fake.wait_for(lambda: ticked(item_message(running.fake, first), first))
    # Bob clicks on his copy, fetched after Alice's tick landed.
    assert bob.click_item(CHANNEL, item_message(running.fake, second), second).status_code == 200
    message = running.fake.wait_for(
        lambda: (m := item_message(running.fake, second)) and ticked(m, second) and ticked(m, first) and m
    )
    text = render_text(message["blocks"])
    assert "<@U061F7AUR>" in text and "<@U0BOB00002>" in text
    assert "<!date^" in text  # each reader sees their own local time

    result = export(db_url, "v1.4.0")
    assert result.returncode == 0, result.stderr
    events = json.loads(result.stdout)
    ticks = [(e["actor_id"], e["item"]) for e in events if e["action"] == "item_checked"]
    assert ticks == [("U061F7AUR", first), ("U0BOB00002", second)]
    assert events[0]["action"] == "release_started"
    assert [e["at"] for e in events] == sorted(e["at"] for e in events)


def test_stale_view_never_undoes_someone_elses_tick(running: RunningBot) -> None:
    alice, bob = running.user("U061F7AUR", "alice"), running.user("U0BOB00002", "bob")
    alice.command("start v1.4.0")
    checklist = running.bot.services.checklist
    wait_for_release(running.fake, 1 + len(checklist.flow_phases))
    first, second = [item.key for item in checklist.flow_phases[0].items][:2]
    stale = item_message(running.fake, first)  # Bob's copy from before Alice ticks

    alice.click_item(CHANNEL, stale, first)
    running.fake.wait_for(lambda: ticked(item_message(running.fake, first), first))
    bob.click_item(CHANNEL, stale, second)  # his view still shows `first` unticked
    running.fake.wait_for(lambda: ticked(item_message(running.fake, second), second))

    view = running.services.find(CHANNEL, "v1.4.0")
    assert view.items[first].checked and view.items[first].actor.id == "U061F7AUR"
    assert view.items[second].checked and view.items[second].actor.id == "U0BOB00002"
    # Bob unticks on a stale copy where `first` still looks unticked: only his own item changes.
    bob.click_item(CHANNEL, stale, first, tick=False)
    view = running.services.find(CHANNEL, "v1.4.0")
    assert view.items[first].checked


def test_same_click_delivered_twice_is_recorded_once(running: RunningBot, db_url: str) -> None:
    alice = running.user()
    alice.command("start v1.4.0")
    checklist = running.bot.services.checklist
    wait_for_release(running.fake, 1 + len(checklist.flow_phases))
    key = checklist.flow_phases[0].items[0].key
    message = item_message(running.fake, key)
    for _ in range(2):
        assert alice.click_item(CHANNEL, message, key, action_ts="1718040200.000100").status_code == 200
    running.fake.wait_for(lambda: ticked(item_message(running.fake, key), key))
    events = json.loads(export(db_url, "v1.4.0").stdout)
    assert [e["action"] for e in events].count("item_checked") == 1


def test_second_start_links_to_the_existing_release(running: RunningBot) -> None:
    alice = running.user()
    alice.command("start v1.4.0")
    header = wait_for_release(running.fake, 1)[0]
    # The header is in Slack a moment before its ts is stored; only then can the answer link to it.
    running.fake.wait_for(lambda: running.services.find(CHANNEL, "v1.4.0").release.thread_ts)
    alice.command("start v1.4.0", response_name="second")
    reply = running.fake.wait_for(lambda: running.fake.responses("second"))[-1]
    assert "already in progress" in reply["text"]
    assert f"/archives/{CHANNEL}/p{header['ts'].replace('.', '')}" in reply["text"]
    assert len(running.services.recent(CHANNEL)) == 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("start", "Which version?"),
        ("start 1.4.0", "is not a release version"),
        ("start v1.4", "is not a release version"),
        ("start v1.4.0.1", "is not a release version"),
        ("start " + "v" * 500, "is not a release version"),
        ("launch v1.4.0", "I don't know `launch`"),
    ],
)
def test_bad_versions_get_a_private_answer_with_an_example(
    running: RunningBot, text: str, expected: str
) -> None:
    response = running.user().command(text)
    assert response.status_code == 200
    body = response.json()
    assert expected in body["text"] and body["response_type"] == "ephemeral"
    assert running.services.recent(CHANNEL) == []


def test_prerelease_versions_are_accepted(running: RunningBot) -> None:
    running.user().command("start v2.0.0-rc.1")
    header = wait_for_release(running.fake, 1)[0]
    assert "v2.0.0-rc.1" in render_text(header["blocks"])


def test_not_in_channel_explains_how_to_invite_and_leaves_nothing(running: RunningBot) -> None:
    running.fake.set_not_in_channel("C0PRIVATE1")
    running.user().command("start v1.4.0", channel="C0PRIVATE1", response_name="private")
    reply = running.fake.wait_for(lambda: running.fake.responses("private"))[-1]
    assert "/invite @releasebot" in reply["text"]
    running.fake.wait_for(lambda: running.services.recent("C0PRIVATE1") == [])
    # It can be started again once the bot is invited.
    running.fake._not_in_channel.clear()  # the bot was invited
    running.user().command("start v1.4.0", channel="C0PRIVATE1")
    wait_for_release(running.fake, 1, channel="C0PRIVATE1")


@pytest.mark.settings(release_channel="C0RELCHAN1")
def test_release_channel_setting_posts_there_and_links_back(running: RunningBot) -> None:
    running.user().command("start v1.4.0", channel="C0ELSEWHERE", response_name="elsewhere")
    wait_for_release(running.fake, 1, channel="C0RELCHAN1")
    reply = running.fake.wait_for(
        lambda: [r for r in running.fake.responses("elsewhere") if "<#C0RELCHAN1>" in r.get("text", "")]
    )
    assert "/archives/C0RELCHAN1/" in reply[-1]["text"]
    assert release_messages(running.fake, "C0ELSEWHERE") == []


def test_status_list_help(running: RunningBot) -> None:
    alice = running.user()
    alice.command("start v1.4.0")
    wait_for_release(running.fake, 1)
    status = alice.command("status v1.4.0").json()["text"]
    assert "v1.4.0" in status and "in progress" in status and "0/2" in status
    assert "v1.4.0" in alice.command("status").json()["text"]
    assert "v1.4.0" in alice.command("list").json()["text"]
    assert "/release start" in alice.command("help").json()["text"]
    missing = alice.command("status v9.9.9")
    assert missing.status_code == 200
    assert "There is no release v9.9.9" in missing.json()["text"]


def test_seed_checklist_is_posted_word_for_word_within_block_kit_limits(
    db_url: str, fake_slack: FakeSlack
) -> None:
    settings = make_settings(db_url, fake_slack, checklist_path=str(SEED_CHECKLIST), language="ko")
    rb = start_bot(settings, fake_slack, pacer=ChannelPacer(0.0))
    try:
        rb.user().command("start v1.4.0")
        seed = load_checklist(SEED_CHECKLIST)
        messages = wait_for_release(fake_slack, 1 + len(seed.flow_phases))
        # Slack's mrkdwn carries <, > and & escaped; readers see the characters themselves.
        text = html.unescape("\n".join(render_text(m["blocks"]) for m in messages))
        for phase in seed.flow_phases:
            for section in phase.sections:
                assert section.title in text
                for item in section.items:
                    assert item.text in text
        assert all(len(m["blocks"]) <= 50 for m in messages)
        assert "릴리스 v1.4.0" in text
    finally:
        rb.stop()


def test_export_unknown_version_fails_clearly(db_url: str, tmp_path: Path) -> None:
    from bot.db.migrate import upgrade

    upgrade(db_url)
    result = export(db_url, "v9.9.9")
    assert result.returncode != 0
    assert "v9.9.9" in result.stderr and "Traceback" not in result.stderr
