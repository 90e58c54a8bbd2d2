"""The release lifecycle through Slack: steps, gates, overrides, abort, health checks and reminders."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from bot.slack.gateway import ChannelPacer
from tests.conftest import FAST_CHECKLIST, RunningBot, make_settings, start_bot
from tests.fakes.slack_api import FakeSlack, render_text
from tests.slack_user import SlackUser, buttons, submit_view
from tests.test_release_start import CHANNEL, export, item_message, release_messages, wait_for_release

ADVANCE = "release-advance"


def header(fake: FakeSlack, channel: str = CHANNEL) -> dict:
    return release_messages(fake, channel)[0]


def thread(fake: FakeSlack, channel: str = CHANNEL) -> list[dict]:
    return fake.thread(channel, header(fake, channel)["ts"])


def thread_text(fake: FakeSlack) -> str:
    return "\n".join(m.get("text", "") + "\n" + render_text(m.get("blocks", [])) for m in thread(fake))


def start(rb: RunningBot, user: SlackUser, version: str = "v1.4.0") -> None:
    user.command(f"start {version}")
    wait_for_release(rb.fake, 1 + len(rb.services.checklist.flow_phases))


def tick_phase(rb: RunningBot, user: SlackUser, phase_key: str) -> None:
    for item in rb.services.checklist.phase(phase_key).items:
        user.click_item(CHANNEL, item_message(rb.fake, item.key), item.key, tick=True)
    keys = [i.key for i in rb.services.checklist.phase(phase_key).items]
    rb.fake.wait_for(lambda: all(rb.services.find(CHANNEL, "v1.4.0").checked.get(k) for k in keys))


def step_of(rb: RunningBot, version: str = "v1.4.0") -> str:
    return str(rb.services.find(CHANNEL, version).release.step)


def fresh_header(rb: RunningBot) -> dict:
    """The header once Slack shows the current step (what a person would click on)."""
    current = step_of(rb)

    def shown() -> dict | None:
        message = header(rb.fake)
        values = [
            e.get("value", "") for b in message["blocks"] if b["type"] == "actions" for e in b["elements"]
        ]
        return message if any(f":{current}:" in v for v in values) else None

    return rb.fake.wait_for(shown)


def advance(rb: RunningBot, user: SlackUser, expect_step: str) -> None:
    before = fresh_header(rb)
    assert user.click_button(CHANNEL, before, ADVANCE).status_code == 200
    rb.fake.wait_for(lambda: step_of(rb) == expect_step, timeout=5)


def to_canary(rb: RunningBot, user: SlackUser) -> None:
    """Tick the pre-deploy and staging items and move the release to canary 10 %."""
    for phase in ("pre_deploy", "staging"):
        tick_phase(rb, user, phase)
    advance(rb, user, "staging")
    advance(rb, user, "production")
    advance(rb, user, "canary-10")


def test_walk_a_release_from_start_to_finished(running: RunningBot, db_url: str) -> None:
    alice = running.user()
    start(running, alice)
    assert step_of(running) == "pre_deploy"
    tick_phase(running, alice, "pre_deploy")
    advance(running, alice, "staging")
    tick_phase(running, alice, "staging")
    advance(running, alice, "production")
    advance(running, alice, "canary-10")
    # The header shows where we are and when the reminder is due.
    shown = render_text(fresh_header(running)["blocks"])
    assert "*Now:* Canary 10%" in shown
    assert "next reminder" in shown

    reminder = running.fake.wait_for(
        lambda: [m for m in thread(running.fake) if "wait of *Canary 10%*" in m.get("text", "")], timeout=8
    )[0]
    assert "<@U061F7AUR>" in render_text(reminder["blocks"])
    assert "error rate < 1%" in render_text(reminder["blocks"])
    assert "release-rollback" in buttons(reminder)
    # Advance from the reminder's own button.
    alice.click_button(CHANNEL, reminder, ADVANCE)
    running.fake.wait_for(lambda: step_of(running) == "canary-50")
    running.fake.wait_for(
        lambda: [m for m in thread(running.fake) if "wait of *Canary 50%*" in m.get("text", "")], timeout=8
    )
    advance(running, alice, "canary-100")
    tick_phase(running, alice, "production")
    advance(running, alice, "post_deploy")
    watch = running.fake.wait_for(
        lambda: [m for m in thread(running.fake) if "post-deploy watch is over" in m.get("text", "")],
        timeout=8,
    )[0]
    assert "All services healthy?" in render_text(watch["blocks"])
    tick_phase(running, alice, "post_deploy")
    alice.click_button(CHANNEL, watch, ADVANCE)
    running.fake.wait_for(lambda: running.services.find(CHANNEL, "v1.4.0").release.status == "finished")

    announcement = running.fake.wait_for(
        lambda: [m for m in thread(running.fake) if "is finished" in m.get("text", "")]
    )[0]
    assert announcement["reply_broadcast"] is True  # the whole channel hears it
    running.fake.wait_for(lambda: "finished" in render_text(header(running.fake)["blocks"]))
    assert ADVANCE not in buttons(header(running.fake))

    events = json.loads(export(db_url, "v1.4.0").stdout)
    moves = [(e["details"]["from"], e["details"]["to"]) for e in events if e["action"] == "step_advanced"]
    assert moves == [
        ("pre_deploy", "staging"),
        ("staging", "production"),
        ("production", "canary-10"),
        ("canary-10", "canary-50"),
        ("canary-50", "canary-100"),
        ("canary-100", "post_deploy"),
    ]
    fired = [e for e in events if e["action"] == "reminder_fired"]
    assert [e["details"]["kind"] for e in fired] == ["stage_wait", "stage_wait", "watch_end"]
    assert events[-1]["action"] == "release_finished"
    lateness = [e["details"]["late_s"] for e in fired]
    # Lateness is kept at both ends: at the claim, and when Slack took the post (later, never earlier), with the
    # time between them accounted for (load, render, the channel's turn, Slack's round trip).
    posted = [e["details"]["posted_late_s"] for e in fired]
    assert all(p is not None and p >= c for p, c in zip(posted, lateness, strict=True))
    assert all(set(e["details"]["timing"]) == {"load_s", "render_s", "turn_s", "call_s"} for e in fired)
    assert all(e["details"]["ts"] for e in fired)
    print(f"\nreminder lateness (s), normal running: at the claim {lateness}, at the post {posted}")


def test_open_items_block_leaving_a_phase_until_overridden_with_a_reason(
    running: RunningBot, db_url: str
) -> None:
    alice = running.user()
    start(running, alice)
    name = f"gate-{time.monotonic_ns()}"
    payload_header = header(running.fake)
    alice.click_button(CHANNEL, payload_header, ADVANCE)
    refusal = running.fake.wait_for(
        lambda: [r for r in running.fake.responses() if "can't move on yet" in r.get("text", "")]
    )[-1]
    assert "All tests pass?" in render_text(refusal["blocks"]) and "Code review done?" in render_text(
        refusal["blocks"]
    )
    assert step_of(running) == "pre_deploy"

    # The override button opens a modal that asks why.
    refusal_msg = {"ts": payload_header["ts"], "blocks": refusal["blocks"], "text": refusal["text"]}
    alice.click_button(CHANNEL, refusal_msg, "gate-override")
    modal = running.fake.wait_for(lambda: list(running.fake.views.values()))[-1]
    assert modal["callback_id"] == "override-modal"
    empty = submit_view(alice, modal, "   ")
    assert empty.json()["response_action"] == "errors"
    assert step_of(running) == "pre_deploy"
    submit_view(alice, modal, "hotfix for a customer outage; tests ran on the branch")
    running.fake.wait_for(lambda: step_of(running) == "staging")
    running.fake.wait_for(
        lambda: "hotfix for a customer outage" in render_text(header(running.fake)["blocks"])
    )
    events = json.loads(export(db_url, "v1.4.0").stdout)
    override = [e for e in events if e["action"] == "gate_overridden"]
    assert len(override) == 1 and override[0]["details"]["gates"] == ["checklist"]
    assert override[0]["actor_id"] == "U061F7AUR" and name


def test_advancing_before_the_canary_wait_is_over_needs_an_override(running: RunningBot) -> None:
    alice = running.user()
    start(running, alice)
    to_canary(running, alice)
    alice.click_button(CHANNEL, fresh_header(running), ADVANCE)
    refusal = running.fake.wait_for(
        lambda: [r for r in running.fake.responses() if "wait of this stage" in r.get("text", "")]
    )
    assert refusal and step_of(running) == "canary-10"


def test_stale_advance_button_changes_nothing(running: RunningBot) -> None:
    alice, bob = running.user(), running.user("U0BOB00002", "bob")
    start(running, alice)
    tick_phase(running, alice, "pre_deploy")
    stale = header(running.fake)
    alice.click_button(CHANNEL, stale, ADVANCE)
    running.fake.wait_for(lambda: step_of(running) == "staging")
    bob.click_button(CHANNEL, stale, ADVANCE)  # the same button, from before the move
    reply = running.fake.wait_for(
        lambda: [r for r in running.fake.responses() if "already moved on" in r.get("text", "")]
    )
    assert reply and step_of(running) == "staging"


def test_abort_button_asks_for_a_reason_cancels_timers_and_marks_every_message(
    running: RunningBot, db_url: str
) -> None:
    alice = running.user()
    start(running, alice)
    to_canary(running, alice)
    alice.click_button(CHANNEL, fresh_header(running), "release-abort")
    modal = running.fake.wait_for(
        lambda: [v for v in running.fake.views.values() if v["callback_id"] == "abort-modal"]
    )[-1]
    submit_view(alice, modal, "p95 doubled on the canary")
    running.fake.wait_for(lambda: running.services.find(CHANNEL, "v1.4.0").release.status == "aborted")
    running.fake.wait_for(
        lambda: all("aborted" in render_text(m["blocks"]) for m in release_messages(running.fake)), timeout=8
    )
    assert all("item-toggle" not in json.dumps(m["blocks"]) for m in release_messages(running.fake))
    time.sleep(2.5)  # past the canary's 2 s wait: the cancelled reminder must not appear
    assert not [m for m in thread(running.fake) if "wait of" in m.get("text", "")]
    note = [m for m in thread(running.fake) if "was aborted" in m.get("text", "")]
    assert note and "p95 doubled on the canary" in note[0]["text"]
    events = json.loads(export(db_url, "v1.4.0").stdout)
    aborted = next(e for e in events if e["action"] == "release_aborted")
    assert aborted["details"]["timers_cancelled"] == 1


def test_abort_command_with_reason(running: RunningBot) -> None:
    alice = running.user()
    start(running, alice)
    assert "reason" in alice.command("abort v1.4.0").json()["text"].lower()
    alice.command("abort v1.4.0 wrong build tagged")
    running.fake.wait_for(lambda: running.services.find(CHANNEL, "v1.4.0").release.status == "aborted")
    running.fake.wait_for(
        lambda: any("wrong build tagged" in m.get("text", "") for m in thread(running.fake))
    )


def test_a_reminder_claimed_as_its_release_ends_is_not_posted_and_the_trail_says_why(
    running: RunningBot, db_url: str
) -> None:
    """Found by the soak: an abort landing between a reminder's claim and its post. The claimed timer is no longer
    pending, so the abort does not cancel it; it must not be posted into the ended release's thread, and its
    audit event must not read as a reminder sent."""
    alice = running.user()
    start(running, alice)
    to_canary(running, alice)
    running.bot.clockwork.stop()  # nothing claims it but us (the clock would otherwise win the claim)
    deadline = time.monotonic() + 10
    while not (claimed := running.bot.lifecycle.claim_due("dead-host:1")):  # due 2 s after canary-10 began
        assert time.monotonic() < deadline, "the canary wait never fell due"
        time.sleep(0.1)
    assert [c.timer.kind for c in claimed] == ["stage_wait"]
    alice.command("abort v1.4.0 wrong build tagged")
    running.fake.wait_for(lambda: running.services.find(CHANNEL, "v1.4.0").release.status == "aborted")
    running.bot.clockwork.recover()  # what a replica does for a timer whose claimant died
    events = json.loads(export(db_url, "v1.4.0").stdout)
    assert next(e for e in events if e["action"] == "release_aborted")["details"]["timers_cancelled"] == 0
    fired = [e for e in events if e["action"] == "reminder_fired"]
    assert len(fired) == 1
    assert fired[0]["details"]["ts"] is None
    assert fired[0]["details"]["not_posted"] == "the release had ended (aborted)"
    assert not [m for m in thread(running.fake) if "wait of" in m.get("text", "")]


class _Health(BaseHTTPRequestHandler):
    mode = "ok"

    def log_message(self, *args: object) -> None:
        return None

    def do_GET(self) -> None:
        if _Health.mode == "slow":
            time.sleep(2)
        status = 500 if _Health.mode == "500" else 200
        body = json.dumps({"status": "ok" if status == 200 else "db down", "version": "v1.4.0"}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def health_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/health"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("ok", "HTTP 200"),
        ("500", "HTTP 500"),
        ("slow", "no answer within"),
        ("refused", "connection refused"),
    ],
)
def test_health_check_button_reports_in_the_thread(
    db_url: str, fake_slack: FakeSlack, tmp_path: Path, health_server: str, mode: str, expected: str
) -> None:
    url = "http://127.0.0.1:1/health" if mode == "refused" else health_server
    checklist = tmp_path / "checklist.yaml"
    checklist.write_text(FAST_CHECKLIST.read_text().replace("http://127.0.0.1:1/health", url))
    _Health.mode = mode
    settings = make_settings(db_url, fake_slack, checklist_path=str(checklist), health_timeout_s=0.5)
    rb = start_bot(settings, fake_slack, pacer=ChannelPacer(0.0), sync_interval_s=0.2)
    try:
        alice = rb.user()
        start(rb, alice)
        tick_phase(rb, alice, "pre_deploy")
        advance(rb, alice, "staging")
        alice.click_button(CHANNEL, fresh_header(rb), "health-check")
        note = fake_slack.wait_for(
            lambda: [m for m in thread(fake_slack) if "health check" in m.get("text", "")], timeout=8
        )
        assert expected in note[0]["text"]
        events = json.loads(export(db_url, "v1.4.0").stdout)
        check = next(e for e in events if e["action"] == "health_check")
        assert check["details"]["environment"] == "staging"
        assert check["details"]["ok"] is (mode == "ok")
        assert check["details"]["status_code"] == {"ok": 200, "500": 500}.get(mode)
    finally:
        rb.stop()


def test_reminder_survives_a_restart_before_its_due_time(db_url: str, fake_slack: FakeSlack) -> None:
    settings = make_settings(db_url, fake_slack)
    rb = start_bot(settings, fake_slack, pacer=ChannelPacer(0.0), sync_interval_s=0.2)
    alice = rb.user()
    start(rb, alice)
    to_canary(rb, alice)
    rb.stop()  # down before the 2 s wait is over

    rb2 = start_bot(settings, fake_slack, pacer=ChannelPacer(0.0), sync_interval_s=0.2)
    try:
        fake_slack.wait_for(
            lambda: [m for m in thread(fake_slack) if "wait of *Canary 10%*" in m.get("text", "")], timeout=8
        )
        time.sleep(1.0)
        reminders = [m for m in thread(fake_slack) if "wait of *Canary 10%*" in m.get("text", "")]
        assert len(reminders) == 1
        assert "late" not in reminders[0]["text"]
        fired = [e for e in json.loads(export(db_url, "v1.4.0").stdout) if e["action"] == "reminder_fired"]
        print(f"\nreminder lateness after a restart before its due time: {fired[0]['details']['late_s']} s")
    finally:
        rb2.stop()
