"""Reminders of several releases of one channel in one message: what the channel sees, a click on one release's
button in it, and recovery of such a message after the claimant died.

When they go together is the clock's rule (tests/test_clockwork.py); here the real bot's ``TimerPoster`` posts
three claimed reminders together, as the clock does, so that nothing depends on when the waits end."""

from __future__ import annotations

import json

from bot.usecases.lifecycle import ClaimedTimer
from tests.conftest import RunningBot
from tests.fakes.slack_api import render_text
from tests.slack_user import SlackUser, find_item
from tests.test_lifecycle import ADVANCE
from tests.test_release_start import CHANNEL, export

VERSIONS = ("v1.4.0", "v1.5.0", "v1.6.0")


def message_at(rb: RunningBot, ts: str) -> dict:
    return next(m for m in rb.fake.messages[CHANNEL] if m["ts"] == ts)


def walk_to_canary(rb: RunningBot, user: SlackUser, version: str) -> int:
    """Start ``version`` and click it into canary-10 (its items ticked, its header's Advance three times)."""
    user.command(f"start {version}")
    record = rb.fake.wait_for(
        lambda: next((r for r in rb.services.recent(CHANNEL) if r.version == version), None)
    )
    rid = record.id
    view = rb.services.view(rid)
    rb.fake.wait_for(
        lambda: (
            len(ms := rb.services.view(rid).messages) == 1 + len(view.checklist.flow_phases)
            and all(m.ts for m in ms)
        )
    )
    for phase in ("pre_deploy", "staging"):
        for item in view.checklist.phase(phase).items:
            holder = next(
                message_at(rb, str(m.ts))
                for m in rb.services.view(rid).messages
                if item.key in json.dumps(message_at(rb, str(m.ts)).get("blocks", []))
            )
            find_item(holder, item.key)
            user.click_item(CHANNEL, holder, item.key, tick=True)
        keys = [i.key for i in view.checklist.phase(phase).items]
        rb.fake.wait_for(lambda keys=keys: all(rb.services.view(rid).checked.get(k) for k in keys))
    for step, target in (("pre_deploy", "staging"), ("staging", "production"), ("production", "canary-10")):
        header = rb.services.view(rid).message("header")
        assert header is not None and header.ts is not None
        shown = rb.fake.wait_for(
            lambda ts=header.ts, step=step: (
                (m := message_at(rb, ts)) and f":{step}:" in json.dumps(m["blocks"]) and m
            )
        )
        user.click_button(CHANNEL, shown, ADVANCE)
        rb.fake.wait_for(lambda target=target: rb.services.view(rid).release.step == target, timeout=5)
    return rid


def claim_all(rb: RunningBot, count: int) -> list[ClaimedTimer]:
    """The clock stopped, claim ``count`` due canary reminders of the channel at once, as the clock does when they
    go together."""
    claimed: list[ClaimedTimer] = []

    def won() -> bool:
        claimed.extend(rb.bot.lifecycle.claim_due("dead-host:1", together=lambda _c, lates: len(lates)))
        return len(claimed) == count

    rb.fake.wait_for(won, timeout=10)  # the canary waits are 2 s
    return claimed


def test_reminders_sent_together_each_keep_their_buttons_and_a_restart_does_not_send_them_twice(
    running: RunningBot, db_url: str
) -> None:
    alice = running.user()
    running.bot.clockwork.stop()  # nothing claims the reminders but this test
    rids = [walk_to_canary(running, alice, version) for version in VERSIONS]
    claimed = claim_all(running, 3)
    assert sorted(c.timer.release_id for c in claimed) == sorted(rids)

    poster = running.bot.clockwork.poster
    dues = [running.bot.lifecycle.due_timer(c) for c in claimed]
    posted = poster.post_together(dues)
    ts = {posted[d.timer.id] for d in dues}
    assert len(ts) == 1 and None not in ts  # one message for the three
    together = message_at(running, ts.pop())
    assert together.get("thread_ts") in (None, together["ts"])  # in the channel, not in one release's thread
    shown = render_text(together["blocks"])
    assert "3 releases in this channel reached the end of a wait at once" in shown
    for version in VERSIONS:
        assert f"*backend* `{version}`" in shown
    advances = [
        e["value"]
        for b in together["blocks"]
        if b["type"] == "actions"
        for e in b["elements"]
        if e["action_id"] == ADVANCE
    ]
    assert sorted(advances) == sorted(f"{rid}:canary-10:canary-50" for rid in rids)

    # The bot "died" before recording them: a restart's recovery finds all three in the one message (by the
    # markers it carries) and records them fired with its ts, without posting any of them again.
    posts_before = len(running.fake.calls("chat.postMessage"))
    running.bot.clockwork.recover()
    assert len(running.fake.calls("chat.postMessage")) == posts_before
    assert len(running.fake.calls("conversations.history")) == 1  # the channel's history read once for the three
    for version in VERSIONS:
        fired = [e for e in json.loads(export(db_url, version).stdout) if e["action"] == "reminder_fired"]
        assert [e["details"]["ts"] for e in fired] == [together["ts"]]

    # The second release's Advance in that message moves that release, and only it.
    second = next(
        b for b in together["blocks"] if b["type"] == "actions" and f'"{rids[1]}:canary-10' in json.dumps(b)
    )
    alice.click_button(CHANNEL, {"ts": together["ts"], "blocks": [second], "text": together["text"]}, ADVANCE)
    running.fake.wait_for(lambda: running.services.view(rids[1]).release.step == "canary-50", timeout=5)
    assert [running.services.view(r).release.step for r in (rids[0], rids[2])] == ["canary-10", "canary-10"]
