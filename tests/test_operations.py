"""Authorization, Slack's limits and outages, and what operators see: metrics, logs, shutdown."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from bot.slack.gateway import ChannelPacer
from tests.conftest import FAST_CHECKLIST, RunningBot, make_settings, start_bot
from tests.fakes.slack_api import FakeSlack, render_text
from tests.proc import BotProcess, bot_env
from tests.slack_user import BOT_TOKEN, SECRET, find_item
from tests.test_lifecycle import fresh_header, start, step_of, tick_phase
from tests.test_release_start import CHANNEL, export, item_message, ticked, wait_for_release

MANAGER, GROUP, MEMBER, OUTSIDER = "U0MANAGER1", "S0MANAGERS", "U0GROUPMEM", "U0OUTSIDER"


@pytest.mark.settings(release_managers=(MANAGER, GROUP))
def test_only_release_managers_move_a_release_and_refusals_are_recorded(
    running: RunningBot, db_url: str
) -> None:
    running.fake.set_usergroup(GROUP, [MEMBER])
    manager, member, outsider = (
        running.user(MANAGER, "mia"),
        running.user(MEMBER, "max"),
        running.user(OUTSIDER, "otto"),
    )
    start(running, manager)
    tick_phase(running, outsider, "pre_deploy")  # ticking stays open to the channel
    outsider.click_button(CHANNEL, fresh_header(running), "release-advance")
    refusal = running.fake.wait_for(
        lambda: [r for r in running.fake.responses() if "Only release managers" in r["text"]]
    )
    assert refusal and step_of(running) == "pre_deploy"
    member.click_button(CHANNEL, fresh_header(running), "release-advance")  # a member of the user group
    running.fake.wait_for(lambda: step_of(running) == "staging")
    manager.click_button(CHANNEL, fresh_header(running), "release-advance")
    refusal = running.fake.wait_for(lambda: [r for r in running.fake.responses() if "open" in r["text"]])
    # The group was resolved once and cached for the next check.
    outsider.click_button(CHANNEL, fresh_header(running), "release-advance")
    running.fake.wait_for(
        lambda: len([r for r in running.fake.responses() if "Only release managers" in r["text"]]) == 2
    )
    assert len(running.fake.calls("usergroups.users.list")) == 1
    events = json.loads(export(db_url, "v1.4.0").stdout)
    denied = [e for e in events if e["action"] == "permission_denied"]
    assert [(e["actor_id"], e["details"]["action"]) for e in denied] == [
        (OUTSIDER, "advance"),
        (OUTSIDER, "advance"),
    ]


def test_ticking_can_be_restricted_per_phase(db_url: str, fake_slack: FakeSlack, tmp_path: Path) -> None:
    checklist = tmp_path / "restricted.yaml"
    text = FAST_CHECKLIST.read_text()
    text = text.replace("    kind: canary\n", "    kind: canary\n    tick_role: release_managers\n")
    checklist.write_text(text)
    settings = make_settings(db_url, fake_slack, checklist_path=str(checklist), release_managers=(MANAGER,))
    rb = start_bot(settings, fake_slack, pacer=ChannelPacer(0.0), sync_interval_s=0.2)
    try:
        manager, outsider = rb.user(MANAGER, "mia"), rb.user(OUTSIDER, "otto")
        start(rb, manager)
        key = "production.monitoring.error_rate_ok"
        outsider.click_item(CHANNEL, item_message(fake_slack, key), key)
        fake_slack.wait_for(
            lambda: [r for r in fake_slack.responses() if "Only release managers" in r["text"]]
        )
        assert not rb.services.find(CHANNEL, "v1.4.0").checked.get(key)
        manager.click_item(CHANNEL, item_message(fake_slack, key), key)
        fake_slack.wait_for(lambda: rb.services.find(CHANNEL, "v1.4.0").checked.get(key))
        events = json.loads(export(db_url, "v1.4.0").stdout)
        assert [(e["actor_id"], e["item"]) for e in events if e["action"] == "permission_denied"] == [
            (OUTSIDER, key)
        ]
    finally:
        rb.stop()


def test_a_burst_of_clicks_coalesces_into_a_few_exact_updates(db_url: str, fake_slack: FakeSlack) -> None:
    settings = make_settings(db_url, fake_slack)
    rb = start_bot(settings, fake_slack, pacer=ChannelPacer(0.0), sync_interval_s=1.0)
    try:
        alice = rb.user()
        start(rb, alice)
        keys = [i.key for i in rb.services.checklist.phase("pre_deploy").items]
        message = item_message(fake_slack, keys[0])
        time.sleep(1.1)
        before = len(fake_slack.calls())
        began = time.monotonic()
        for n in range(30):  # 30 clicks in about 5 s, alternating two items, from one stale copy
            key = keys[n % 2]
            alice.click_item(CHANNEL, message, key, tick=(n // 2) % 2 == 0)
            time.sleep(max(0.0, began + (n + 1) * 5 / 30 - time.monotonic()))
        view = rb.services.find(CHANNEL, "v1.4.0")
        fake_slack.wait_for(
            lambda: all(ticked(item_message(fake_slack, k), k) == bool(view.checked.get(k)) for k in keys),
            timeout=5,
        )
        time.sleep(1.5)
        # The clicked message is redrawn through the clicks' response_urls (replace_original), else by chat.update.
        updates = [
            c
            for c in fake_slack.calls()[before:]
            if (c.method == "chat.update" and c.params["ts"] == message["ts"])
            or (c.method == "response_url" and c.params.get("replace_original"))
        ]
        gaps = [b.at - a.at for a, b in itertools.pairwise(updates)]
        print(
            f"\n30 clicks in 5 s → {len(updates)} redraws of that message; min gap {min(gaps, default=0):.2f} s"
        )
        assert 2 <= len(updates) <= 8
        assert all(gap >= 0.9 for gap in gaps)
        final = item_message(fake_slack, keys[0])
        for key in keys:
            assert ticked(final, key) == bool(rb.services.find(CHANNEL, "v1.4.0").checked.get(key))
    finally:
        rb.stop()


def test_new_posts_stay_within_one_a_second_per_channel(db_url: str, fake_slack: FakeSlack) -> None:
    # Slack: "one message per second per channel, with short bursts allowed". The fake stamps arrivals in this
    # process, beside the bot, so a post can arrive a GIL switch late; a burst of two absorbs that, and the pacing
    # itself is checked on the whole run below.
    fake_slack.enforce_rate_limits(post_per_channel_per_s=1.0, burst=2)
    settings = make_settings(db_url, fake_slack)
    rb = start_bot(settings, fake_slack, sync_interval_s=1.0)  # the real pacer
    try:
        rb.user().command("start v1.4.0")
        count = 1 + len(rb.services.checklist.flow_phases)
        fake_slack.wait_for(
            lambda: len([c for c in fake_slack.calls("chat.postMessage") if c.http_status == 200]) >= count,
            timeout=15,
        )
        posts = fake_slack.calls("chat.postMessage")
        assert all(c.http_status == 200 for c in posts)
        # Paced one a second or slower: over the whole run (arrival jitter cancels out), and no two back to back.
        assert posts[-1].at - posts[0].at >= (len(posts) - 1) * 1.0
        assert all(b.at - a.at >= 0.8 for a, b in itertools.pairwise(posts))
    finally:
        rb.stop()


def test_a_start_while_slack_is_unreachable_is_acked_keeps_nothing_and_is_answered_once_slack_is_back(
    running: RunningBot, caplog: pytest.LogCaptureFixture
) -> None:
    running.fake.go_down(mode="refuse")
    reply = running.user().command("start v1.4.0", response_name="start-while-down")
    # Bolt's authorization once called auth.test here: an HTTP 500 and an "unhandled error".
    assert reply.status_code == 200
    assert "Starting v1.4.0" in reply.json()["text"]
    time.sleep(3.0)  # the header's post and its one retry fail meanwhile
    running.fake.come_back()
    answer = running.fake.wait_for(lambda: running.fake.responses("start-while-down"), timeout=15)
    assert not running.services.recent(None)  # nothing half-made: the release was dropped before the answer
    assert answer[0]["text"] == (
        "Slack could not be reached, so v1.4.0 was not started and nothing of it was kept. "
        "Run the command again once Slack answers."
    )
    ours = [r for r in caplog.records if r.name.startswith("bot") and r.levelname == "ERROR"]
    assert not ours and not any(r.exc_info for r in caplog.records), [r.getMessage() for r in ours]
    # And once Slack is back, the same command simply works.
    running.user().command("start v1.4.0")
    wait_for_release(running.fake, 2)


def test_slack_outage_keeps_the_database_true_and_messages_catch_up(running: RunningBot, db_url: str) -> None:
    alice = running.user()
    start(running, alice)
    key = running.services.checklist.flow_phases[0].items[0].key
    message = item_message(running.fake, key)
    running.fake.go_down(mode="503")
    alice.click_item(CHANNEL, message, key)
    running.fake.wait_for(lambda: running.services.find(CHANNEL, "v1.4.0").checked.get(key))
    time.sleep(0.5)
    assert not ticked(item_message(running.fake, key), key)  # Slack could not be told yet
    running.fake.come_back()
    running.fake.wait_for(lambda: ticked(item_message(running.fake, key), key), timeout=15)


def test_resync_command_brings_messages_back_in_line(
    db_url: str, fake_slack: FakeSlack, tmp_path: Path
) -> None:
    settings = make_settings(db_url, fake_slack)
    rb = start_bot(settings, fake_slack, pacer=ChannelPacer(0.0), sync_interval_s=0.2)
    alice = rb.user()
    start(rb, alice)
    key = rb.services.checklist.flow_phases[0].items[0].key
    rb.bot.sync.stop()  # the bot loses its way to Slack before it can redraw
    alice.click_item(CHANNEL, item_message(fake_slack, key), key)
    fake_slack.wait_for(lambda: rb.services.find(CHANNEL, "v1.4.0").checked.get(key))
    rb.stop()
    assert not ticked(item_message(fake_slack, key), key)
    env = bot_env(db_url, fake_slack.base_url, FAST_CHECKLIST)
    result = subprocess.run(
        [sys.executable, "-m", "bot", "resync", "v1.4.0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "messages updated" in result.stdout
    assert ticked(item_message(fake_slack, key), key)


def test_metrics_endpoint_reports_acks_and_slack_errors(running: RunningBot) -> None:
    running.user().command("help")
    running.user().command("start v1.4.0")
    wait_for_release(running.fake, 2)
    text = running.http.get(f"{running.url}/metrics").text
    assert 'releasebot_ack_seconds_bucket{kind="command"' in text
    assert "releasebot_slack_calls_total" in text
    assert "releasebot_outbox_depth" in text
    assert running.http.get(f"{running.url}/healthz").json() == {"status": "ok"}


@pytest.mark.slow
def test_logs_are_json_with_request_ids_and_never_carry_a_secret(
    tmp_path: Path, fake_slack: FakeSlack
) -> None:
    pd_key = "R0UTINGKEY0123456789abcdef012345"
    env = bot_env(
        f"sqlite:///{tmp_path / 'bot.db'}",
        fake_slack.base_url,
        FAST_CHECKLIST,
        LOG_LEVEL="DEBUG",
        LOG_FORMAT="json",
        PAGERDUTY_ROUTING_KEY=pd_key,
    )
    bot = BotProcess(env, tmp_path / "bot.log").start()
    with httpx.Client(timeout=10) as http:
        from tests.slack_user import SlackUser

        alice = SlackUser(bot.url, "U061F7AUR", "alice", fake_slack, http)
        alice.command("start v1.4.0")
        wait_for_release(fake_slack, 2)
        alice.command("start not-a-version")
        fake_slack.go_down(mode="503")
        key = "pre_deploy.checks.tests_pass"
        alice.click_item(CHANNEL, item_message(fake_slack, key), key)
        time.sleep(1.5)
        fake_slack.come_back()
    assert bot.terminate() == 0  # SIGTERM: finish in-flight work, stop the clock, close the database
    log = bot.log()
    for secret in (BOT_TOKEN, SECRET, pd_key):
        assert secret not in log
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert lines and len(lines) == len([line for line in log.splitlines() if line.strip()])
    assert any(line.get("request_id") for line in lines)
    assert any(line["message"] == "stopped" for line in lines)


def test_every_item_shows_who_ticked_it_in_slack_date_format(running: RunningBot) -> None:
    alice = running.user()
    start(running, alice)
    key = running.services.checklist.flow_phases[0].items[0].key
    alice.click_item(CHANNEL, item_message(running.fake, key), key)
    message = running.fake.wait_for(lambda: (m := item_message(running.fake, key)) and ticked(m, key) and m)
    block, _ = find_item(message, key)
    assert "<@U061F7AUR>" in block["text"]["text"] and "<!date^" in render_text([block])
