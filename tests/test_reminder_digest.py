"""Several reminders of one channel due at once: the channel is told of them all in one message, then each thread.

Slack takes one post a second in a channel, so of k reminders due together the last would reach its thread
(k - 1) x 1.1 s late. From three on the clock posts one digest first, each release's reminder in it with its own
buttons, and the thread posts follow in turn. Here the bot is down while three canary waits run out (as after an
outage), then starts, against the fake Slack enforcing chat.postMessage at 1/s per channel, with the real pacer.
"""

from __future__ import annotations

import json
import time

from bot.domain.records import Actor
from bot.slack.gateway import ChannelPacer
from tests.conftest import RunningBot, make_settings, start_bot
from tests.fakes.slack_api import FakeSlack, render_text
from tests.slack_user import buttons
from tests.test_release_start import CHANNEL, export, release_messages, wait_for_release

ADVANCE = "release-advance"
VERSIONS = ("v1.4.0", "v1.4.1", "v1.4.2")
ALICE = Actor("U061F7AUR", "alice")


def _reminders_in_thread(fake: FakeSlack, thread_ts: str) -> list[dict]:
    return [m for m in fake.thread(CHANNEL, thread_ts) if "wait of *Canary 10%*" in m.get("text", "")]


def due_while_down(db_url: str, fake: FakeSlack, versions: tuple[str, ...]) -> tuple[RunningBot, list[int]]:
    """Start ``versions`` in one channel, bring each into canary-10, stop the bot until their 2 s waits are over,
    and start it again with the real pacer against the fake enforcing Slack's 1 post a second per channel."""
    settings = make_settings(db_url, fake)
    rb = start_bot(settings, fake, pacer=ChannelPacer(0.0), sync_interval_s=0.2)
    user = rb.user()
    ids = []
    for n, version in enumerate(versions, start=1):
        user.command(f"start {version}")
        wait_for_release(fake, n * (1 + len(rb.services.checklist.flow_phases)))
        ids.append(rb.services.find(CHANNEL, version).release.id)
    # Into canary-10 by the use case (the clicks are other tests' subject).
    for rid in ids:
        for a, b in (("pre_deploy", "staging"), ("staging", "production"), ("production", "canary-10")):
            rb.bot.lifecycle.advance(rid, from_step=a, to_step=b, actor=ALICE, override_reason="set-up")
    rb.stop()
    time.sleep(2.5)  # every wait over while the bot is down
    fake.enforce_rate_limits()
    return start_bot(settings, fake), ids


def test_three_reminders_due_together_are_told_in_one_message_then_each_in_its_thread(
    db_url: str, fake_slack: FakeSlack
) -> None:
    rb2, ids = due_while_down(db_url, fake_slack, VERSIONS)
    try:
        threads = {
            rid: rb2.services.find(CHANNEL, v).release.thread_ts for rid, v in zip(ids, VERSIONS, strict=True)
        }
        fake_slack.wait_for(
            lambda: all(_reminders_in_thread(fake_slack, ts) for ts in threads.values()), timeout=15
        )
        digests = [
            m for m in release_messages(fake_slack) if "waits in this channel are over" in m.get("text", "")
        ]
        assert len(digests) == 1
        digest = digests[0]
        shown = render_text(digest["blocks"])
        assert all(v in shown for v in VERSIONS)
        assert shown.count("error rate < 1%") == 3  # each entry is that release's reminder, its gate included
        values = [
            e["value"]
            for b in digest["blocks"]
            if b["type"] == "actions"
            for e in b["elements"]
            if e["action_id"] == ADVANCE
        ]
        assert values == [f"{rid}:canary-10:canary-50" for rid in ids]
        assert "release-rollback" in buttons(digest)
        # Told first: the digest went out before any of the thread posts, and each thread has its reminder once.
        thread_posts = [_reminders_in_thread(fake_slack, ts) for ts in threads.values()]
        assert all(len(posts) == 1 for posts in thread_posts)
        assert all(float(digest["ts"]) < float(posts[0]["ts"]) for posts in thread_posts)
        assert not fake_slack.rate_limited()

        # The trail: each release was told (by that message) and reminded, once each.
        for version in VERSIONS:
            events = json.loads(export(db_url, version).stdout)
            told = [e for e in events if e["action"] == "reminder_told"]
            fired = [e for e in events if e["action"] == "reminder_fired"]
            assert [e["details"]["ts"] for e in told] == [digest["ts"]]
            assert told[0]["details"]["with"] == 3
            assert len(fired) == 1 and fired[0]["details"]["ts"]

        # The digest's buttons act on their own release: the second release advances from it.
        second = f"{ids[1]}:canary-10:canary-50"
        assert rb2.user().click_button(CHANNEL, digest, ADVANCE, value=second).status_code == 200
        fake_slack.wait_for(lambda: rb2.services.find(CHANNEL, VERSIONS[1]).release.step == "canary-50")
        assert rb2.services.find(CHANNEL, VERSIONS[0]).release.step == "canary-10"
    finally:
        rb2.stop()


def test_two_reminders_due_together_go_to_their_threads_without_a_digest(
    db_url: str, fake_slack: FakeSlack
) -> None:
    """Two are posted within the pace's 1.1 s of each other: a digest would only add a message."""
    rb2, _ids = due_while_down(db_url, fake_slack, VERSIONS[:2])
    try:
        threads = [rb2.services.find(CHANNEL, v).release.thread_ts for v in VERSIONS[:2]]
        fake_slack.wait_for(lambda: all(_reminders_in_thread(fake_slack, ts) for ts in threads), timeout=15)
        assert not [m for m in release_messages(fake_slack) if "over at once" in m.get("text", "")]
        for version in VERSIONS[:2]:
            events = json.loads(export(db_url, version).stdout)
            assert not [e for e in events if e["action"] == "reminder_told"]
    finally:
        rb2.stop()
