"""A table of bad and hostile requests: each gets a clear answer, stores nothing, and never a 5xx or a traceback."""

from __future__ import annotations

import json
import time
from urllib.parse import quote, urlencode

import pytest

from tests.conftest import RunningBot
from tests.fakes.slack_api import Call
from tests.slack_user import SECRET, TEAM, signed_headers
from tests.test_release_start import CHANNEL, item_message, release_messages, ticked, wait_for_release


def _command_body(text: str, channel_name: str = "releases") -> str:
    return urlencode(
        {
            "team_id": TEAM["id"],
            "team_domain": TEAM["domain"],
            "channel_id": CHANNEL,
            "channel_name": channel_name,
            "user_id": "U061F7AUR",
            "user_name": "alice",
            "command": "/release",
            "text": text,
            "response_url": "http://127.0.0.1:1/unused",
            "trigger_id": "1.2.3",
        }
    )


def _recorded(rb: RunningBot, item_key: str) -> bool:
    """Whether the bot has recorded the ts of the message holding ``item_key``."""
    ts = item_message(rb.fake, item_key)["ts"]
    return any(m.ts == ts for m in rb.services.find(CHANNEL, "v1.4.0").messages)


def _audit_count(rb: RunningBot) -> int:
    total = 0
    for record in rb.services.recent(None, limit=100):
        total += len(rb.services.audit_trail(record.version)[1])
    return total


@pytest.mark.parametrize(
    ("case", "headers"),
    [
        ("bad signature", lambda body: {**signed_headers(body), "x-slack-signature": "v0=" + "0" * 64}),
        ("wrong secret", lambda body: signed_headers(body, secret="not-the-secret")),
        ("missing signature", lambda body: {"content-type": "application/x-www-form-urlencoded"}),
        ("stale timestamp", lambda body: signed_headers(body, ts=int(time.time()) - 301)),
        (
            "future timestamp",
            lambda body: signed_headers(body, ts=int(time.time()) + 310),
        ),  # margin for int()
    ],
)
def test_requests_that_are_not_from_slack_are_refused(
    running: RunningBot, case: str, headers: object
) -> None:
    body = _command_body("start v1.4.0")
    response = running.http.post(f"{running.url}/slack/events", content=body, headers=headers(body))  # type: ignore[operator]
    assert response.status_code == 401, case
    assert "Traceback" not in response.text
    time.sleep(0.2)
    assert running.services.recent(None) == []
    assert running.fake.calls("chat.postMessage") == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "Usage"),
        ("start", "Which version?"),
        ("start    ", "Which version?"),
        ("start 1.4.0", "is not a release version"),
        ("start v1", "is not a release version"),
        ("start v01.4.0", "is not a release version"),
        ("start v1.4.0-", "is not a release version"),
        ("start <script>alert(1)</script>", "is not a release version"),
        ("start v1.4.0; DROP TABLE releases;--", "is not a release version"),
        ("start " + "v1." * 3000, "too long"),
        ("start v" + "9" * 100 + ".0.0", "is not a release version"),
        ("deploy v1.4.0", "I don't know `deploy`"),
        ("x" * 10_000, "too long"),
        ("start payload-service", "is not a release version"),
        ("abort v1.4.0", "give a reason"),
        ("incident v1.4.0", "give a reason"),
        ("status not-a-version", "is not a release version"),
        ("status v9.9.9", "There is no release v9.9.9"),
        ("\u0000\u202e start v1.4.0", "I don't know"),
    ],
)
def test_bad_command_text_gets_a_clear_private_answer(running: RunningBot, text: str, expected: str) -> None:
    response = running.user().command(text)
    assert response.status_code == 200
    body = response.json()
    assert body["response_type"] == "ephemeral"
    assert expected.lower() in body["text"].lower(), body["text"]
    assert "Traceback" not in body["text"]
    assert running.services.recent(None) == []


def test_payload_in_a_command_body_is_not_mistaken_for_an_interaction(running: RunningBot) -> None:
    # Bolt parses any form body containing the text "payload" as an interaction; ours is repaired.
    body = _command_body("start v1.4.0", channel_name="payload-team")
    response = running.http.post(f"{running.url}/slack/events", content=body, headers=signed_headers(body))
    assert response.status_code == 200
    assert "Starting v1.4.0" in response.json()["text"]
    wait_for_release(running.fake, 1)


@pytest.mark.parametrize(
    "body",
    [
        "payload=" + quote("{not json"),
        "payload=" + quote("[]"),
        "payload=" + quote('{"type": "block_actions"}'),
        "payload=",
        "garbage=1&other=2",
        "",
    ],
)
def test_malformed_interaction_payloads_get_a_4xx_or_a_polite_200(running: RunningBot, body: str) -> None:
    response = running.http.post(f"{running.url}/slack/events", content=body, headers=signed_headers(body))
    assert response.status_code < 500
    assert "Traceback" not in response.text
    assert running.services.recent(None) == []


def test_huge_body_is_refused_without_reading_it(running: RunningBot) -> None:
    body = "payload=" + "a" * 2_000_000
    response = running.http.post(f"{running.url}/slack/events", content=body, headers=signed_headers(body))
    assert response.status_code == 413


def _start(running: RunningBot) -> None:
    running.user().command("start v1.4.0")
    wait_for_release(running.fake, 1 + len(running.services.checklist.flow_phases))


def test_unknown_action_ids_get_a_polite_answer(running: RunningBot) -> None:
    _start(running)
    alice = running.user()
    message = release_messages(running.fake)[0]
    payload = alice._base(CHANNEL, message)
    payload["actions"] = [
        {"type": "button", "action_id": "launch-missiles", "block_id": "x", "value": "1", "action_ts": "1.2"}
    ]
    response = alice.interact(payload)
    assert response.status_code == 200
    reply = running.fake.wait_for(lambda: running.fake.responses())[-1]
    assert "couldn't read that request" in reply["text"]


def test_forged_values_from_another_release_or_channel_are_rejected(running: RunningBot) -> None:
    _start(running)
    alice = running.user()
    key = running.services.checklist.flow_phases[0].items[0].key
    message = item_message(running.fake, key)
    before = _audit_count(running)

    # The same checkbox click, but claiming to come from another channel.
    response = alice.click_item("C0OTHERCHAN", message, key)
    assert response.status_code == 200
    # A block id naming a release that does not exist.
    forged = json.loads(json.dumps(message))
    for block in forged["blocks"]:
        if block.get("block_id", "").startswith("it."):
            block["block_id"] = block["block_id"].replace("it.1.", "it.999.", 1)
    alice.click_item(CHANNEL, forged, key)
    # A header button whose value names another release.
    header = release_messages(running.fake)[0]
    alice.click_button(CHANNEL, header, "release-advance", value="999:pre_deploy:staging")
    alice.click_button(CHANNEL, header, "release-advance", value="../../etc/passwd")
    # The abort button, clicked in another channel: no modal opens for a release that lives elsewhere.
    alice.click_button("C0OTHERCHAN", header, "release-abort")

    def answers() -> list[str]:
        # Checkbox clicks are answered with chat.postEphemeral, buttons through their response_url.
        ephemeral = [c.params["text"] for c in running.fake.calls("chat.postEphemeral")]
        return ephemeral + [r["text"] for r in running.fake.responses()]

    texts = running.fake.wait_for(lambda: (a := answers()) and len(a) >= 5 and a)
    assert all(("does not belong" in t) or ("can't find" in t) or ("couldn't read" in t) for t in texts), (
        texts
    )
    view = running.services.find(CHANNEL, "v1.4.0")
    assert not view.checked.get(key)
    assert view.release.step == "pre_deploy"
    assert view.release.status == "active"
    assert running.fake.views == {}
    assert _audit_count(running) == before


def test_actions_on_ended_releases_are_refused(running: RunningBot) -> None:
    _start(running)
    alice = running.user()
    key = running.services.checklist.flow_phases[0].items[0].key
    stale = item_message(running.fake, key)
    alice.command("abort v1.4.0 wrong artifact")
    running.fake.wait_for(lambda: running.services.find(CHANNEL, "v1.4.0").release.status == "aborted")
    alice.click_item(CHANNEL, stale, key)
    reply = running.fake.wait_for(
        lambda: [r for r in running.fake.responses() if "has ended" in r.get("text", "")]
    )
    assert reply
    assert not running.services.find(CHANNEL, "v1.4.0").checked.get(key)
    assert SECRET not in json.dumps(running.fake.responses())


def test_a_click_before_the_bot_recorded_its_message_is_applied_not_refused_as_forged(
    running: RunningBot,
) -> None:
    # Slack shows a message as soon as it takes the post; the bot records its ts only once Slack's answer arrives.
    # A click in between is genuine: hold Slack's answer to the item message's post until the click is settled.
    key = "pre_deploy.checks.tests_pass"
    settled: list[str] = []

    def click_first(call: Call) -> bool:
        message = next(
            (m for m in release_messages(running.fake) if m["ts"] == call.response.get("ts")), None
        )
        if message is None or not any(
            b.get("accessory", {}).get("type") == "checkboxes" and key in json.dumps(b)
            for b in message["blocks"]
        ):
            return False
        running.user().click_item(CHANNEL, message, key)
        settled.append(
            running.fake.wait_for(
                lambda: (
                    "refused"
                    if any("does not belong" in r.get("text", "") for r in running.fake.responses())
                    else "applied"
                    if running.services.find(CHANNEL, "v1.4.0").checked.get(key)
                    else ""
                )
            )
        )
        return True

    running.fake.before_answering("chat.postMessage", click_first)
    running.user().command("start v1.4.0")
    running.fake.wait_for(lambda: settled)
    assert settled == ["applied"]
    # The post was drawn before the click: the message is redrawn once the bot knows where it is.
    running.fake.wait_for(lambda: ticked(item_message(running.fake, key), key))
    assert not [r for r in running.fake.responses() if "does not belong" in r.get("text", "")]


def test_a_click_changed_after_signing_is_refused(running: RunningBot) -> None:
    running.user().command("start v1.4.0")
    key = "pre_deploy.checks.tests_pass"
    wait_for_release(running.fake, 2)
    # Only once the bot has recorded where the message is, so that the click itself is certainly genuine.
    running.fake.wait_for(lambda: _recorded(running, key))
    message = item_message(running.fake, key)
    sent: list[tuple[str, dict[str, str]]] = []
    real_post = running.http.post

    def capture(url: str, *, content: str, headers: dict[str, str]) -> object:
        sent.append((content, headers))
        return real_post(url, content=content, headers=headers)

    running.http.post = capture  # type: ignore[method-assign]
    try:
        running.user().click_item(CHANNEL, message, key)
    finally:
        running.http.post = real_post  # type: ignore[method-assign]
    body, headers = sent[0]
    # The real click is applied after its ack: count the trail once Slack shows it ticked.
    running.fake.wait_for(lambda: ticked(item_message(running.fake, key), key))
    audit = _audit_count(running)
    forged = body.replace("U061F7AUR", "U0MALLORY")  # someone else's click, under alice's signature
    assert forged != body
    response = running.http.post(f"{running.url}/slack/events", content=forged, headers=headers)
    assert response.status_code == 401
    time.sleep(0.3)
    assert _audit_count(running) == audit
