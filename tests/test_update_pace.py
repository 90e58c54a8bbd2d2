"""chat.update within Slack's Tier 3 for the whole workspace, and clicked messages redrawn through the click's own
response_url: driven through signed HTTP, with the fake Slack enforcing the tiers and answering 429s like Slack."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.slack.gateway import ChannelPacer, UpdatePacer
from tests.conftest import RunningBot, make_settings, start_bot
from tests.fakes.slack_api import TIER_3_BURST, FakeSlack, render_text
from tests.slack_user import BOT_TOKEN, SlackUser
from tests.test_release_start import item_message, release_messages, ticked, wait_for_release

CHANNELS = [f"C0PACE{i:04d}" for i in range(12)]  # more releases than Tier 3's burst has turns


@pytest.fixture
def paced(db_url: str, fake_slack: FakeSlack) -> Iterator[RunningBot]:
    fake_slack.enforce_tiers()
    # Slack's own pace for chat.update (the default of `serve`); posts unpaced, they are not the subject here.
    rb = start_bot(
        make_settings(db_url, fake_slack),
        fake_slack,
        sync_interval_s=0.2,
        pacer=ChannelPacer(0.0),
        update_pacer=UpdatePacer(),
    )
    try:
        yield rb
    finally:
        rb.stop()


def start_in(rb: RunningBot, user: SlackUser, channels: list[str]) -> None:
    for channel in channels:
        user.command("start v1.4.0", channel=channel)
    for channel in channels:
        wait_for_release(rb.fake, 1 + len(rb.services.checklist.flow_phases), channel)


def converged(rb: RunningBot, channel: str) -> bool:
    """Every message of the channel's release shows in Slack what the bot renders from the database now."""
    view = rb.services.find(channel, "v1.4.0")
    shown = {m["ts"]: render_text(m["blocks"]) for m in release_messages(rb.fake, channel)}
    for message in view.messages:
        rendered = rb.bot.publisher.render(message.id)
        if rendered is None or shown.get(rendered.ts) != render_text(rendered.blocks):
            return False
    return True


def test_the_fake_holds_chat_update_to_tier_3_with_retry_after(fake_slack: FakeSlack) -> None:
    fake_slack.enforce_tiers()
    client = WebClient(token=BOT_TOKEN, base_url=fake_slack.base_url, timeout=5)
    ts = client.chat_postMessage(channel="C0TIERS", text="v1")["ts"]
    for n in range(TIER_3_BURST):
        client.chat_update(channel="C0TIERS", ts=ts, text=f"v{n + 2}")
    with pytest.raises(SlackApiError) as refused:
        client.chat_update(channel="C0TIERS", ts=ts, text="one too many")
    assert refused.value.response.status_code == 429
    assert int(refused.value.response.headers["Retry-After"]) >= 1
    assert fake_slack.messages["C0TIERS"][0]["text"] == f"v{TIER_3_BURST + 1}"  # the refused one did nothing
    assert fake_slack.rate_limited() == {"chat.update": 1}


def test_a_click_on_each_of_many_releases_makes_no_429_and_every_message_converges(paced: RunningBot) -> None:
    alice = paced.user()
    start_in(paced, alice, CHANNELS)
    key = paced.services.checklist.flow_phases[0].items[0].key
    before = len(paced.fake.calls("chat.update"))
    clicked = {}
    for channel in CHANNELS:
        message = item_message(paced.fake, key, channel)
        clicked[channel] = message["ts"]
        assert alice.click_item(channel, message, key, tick=True).status_code == 200

    for channel in CHANNELS:  # the clicks' work is done after the ack: first the database has them all
        paced.fake.wait_for(lambda channel=channel: paced.services.find(channel, "v1.4.0").checked.get(key))
    for channel in CHANNELS:
        paced.fake.wait_for(lambda channel=channel: converged(paced, channel), timeout=20)
        assert ticked(item_message(paced.fake, key, channel), key)
    # Each clicked message was redrawn through its click's response_url, and nothing else changed: the header
    # shows no tick counts, so twelve clicks spent none of the workspace's Tier 3.
    assert paced.fake.calls("chat.update")[before:] == []
    replaced = [r for r in paced.fake.responses() if r.get("replace_original")]
    assert len(replaced) >= len(CHANNELS)

    # Ending three releases redraws every message of each, more than Tier 3's burst: the pacer spreads them,
    # Slack refuses none, and each message ends up showing what the database holds.
    ended = CHANNELS[:3]
    for channel in ended:
        assert alice.command("abort v1.4.0 paced out", channel=channel).status_code == 200
    for channel in ended:
        paced.fake.wait_for(lambda channel=channel: paced.services.find(channel, "v1.4.0").status.value == "aborted")
    for channel in ended:
        paced.fake.wait_for(lambda channel=channel: converged(paced, channel), timeout=40)
    updates = paced.fake.calls("chat.update")[before:]
    assert len(updates) > TIER_3_BURST and {c.params.get("channel") for c in updates} == set(ended)
    assert paced.fake.rate_limited() == {}


def test_two_quick_clicks_on_one_message_end_with_the_later_state(paced: RunningBot) -> None:
    alice, bob = paced.user(), paced.user("U0BOB00002", "bob")
    start_in(paced, alice, CHANNELS[:1])
    channel = CHANNELS[0]
    first, second = (i.key for i in paced.services.checklist.flow_phases[0].items[:2])
    stale = item_message(paced.fake, first, channel)  # both click on the message as it was before either
    alice.click_item(channel, stale, first, tick=True)
    bob.click_item(channel, stale, second, tick=True)
    checked = paced.services.find
    paced.fake.wait_for(lambda: all(checked(channel, "v1.4.0").checked.get(k) for k in (first, second)))
    paced.fake.wait_for(lambda: converged(paced, channel), timeout=10)
    final = item_message(paced.fake, first, channel)
    assert ticked(final, first) and ticked(final, second)
    assert paced.fake.rate_limited() == {}


def test_a_response_url_slack_refuses_falls_back_to_a_paced_chat_update(paced: RunningBot) -> None:
    alice = paced.user()
    start_in(paced, alice, CHANNELS[:1])
    channel = CHANNELS[0]
    key = paced.services.checklist.flow_phases[0].items[0].key
    message = item_message(paced.fake, key, channel)
    paced.fake.fail("response_url", status=404, times=1)  # used up, as after five answers
    alice.click_item(channel, message, key, tick=True)
    paced.fake.wait_for(lambda: ticked(item_message(paced.fake, key, channel), key), timeout=10)
    assert [c for c in paced.fake.calls("chat.update") if c.params.get("ts") == message["ts"]]
    paced.fake.wait_for(lambda: converged(paced, channel), timeout=10)


def test_two_replicas_posting_in_one_channel_keep_slacks_pace_together(db_url: str, fake_slack: FakeSlack) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("replicas share a Postgres database; SQLite runs one")
    fake_slack.enforce_rate_limits(post_per_channel_per_s=1.0, burst=1)
    # Both with the pacer `serve` builds (pacer=None): on Postgres it takes its turns in the database.
    replicas = [
        start_bot(make_settings(db_url, fake_slack), fake_slack, sync_interval_s=0.2),
        start_bot(make_settings(db_url, fake_slack), fake_slack, sync_interval_s=0.2),
    ]
    try:
        # Each replica publishes a release in the same channel at the same moment: ten posts for one channel.
        replicas[0].user().command("start v1.4.0", channel="C0SHARED")
        replicas[1].user().command("start v1.5.0", channel="C0SHARED")
        per_release = 1 + len(replicas[0].services.checklist.flow_phases)
        fake_slack.wait_for(
            lambda: len([c for c in fake_slack.calls("chat.postMessage") if c.http_status == 200])
            >= 2 * per_release,
            timeout=30,
        )
        assert fake_slack.rate_limited() == {}
        posts = [c for c in fake_slack.calls("chat.postMessage") if c.params.get("channel") == "C0SHARED"]
        assert len(posts) == 2 * per_release
    finally:
        for rb in replicas:
            rb.stop()
