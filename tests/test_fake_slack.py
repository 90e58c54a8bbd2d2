"""The fake Slack Web API, driven by the real slack_sdk WebClient: limits, errors, retries, wire formats."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler, ServerErrorRetryHandler
from slack_sdk.http_retry.builtin_interval_calculators import BackoffRetryIntervalCalculator
from slack_sdk.webhook import WebhookClient

from tests.fakes.blockkit_limits import validate_blocks
from tests.fakes.slack_api import BOT_USER_ID, FakeSlack, render_text


class ManualClock:
    """Monotonic clock the test moves by hand, so rate-limit tests do not depend on scheduling."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def fake(clock: ManualClock) -> Iterator[FakeSlack]:
    with FakeSlack(clock=clock) as server:
        yield server


@pytest.fixture
def client(fake: FakeSlack) -> WebClient:
    return WebClient(token="xoxb-test-token", base_url=fake.base_url, timeout=5)


def section(text: str, block_id: str | None = None) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "section", "text": {"type": "mrkdwn", "text": text}}
    return block | ({"block_id": block_id} if block_id else {})


def button(text: str = "Go", action_id: str = "go", **extra: Any) -> dict[str, Any]:
    return {"type": "button", "action_id": action_id, "text": {"type": "plain_text", "text": text}} | extra


def option(text: str = "o", value: str = "v", **extra: Any) -> dict[str, Any]:
    return {"text": {"type": "plain_text", "text": text}, "value": value} | extra


def options(n: int) -> list[dict[str, Any]]:
    return [option(f"item {i}", f"v{i}") for i in range(n)]


def api_error(excinfo: pytest.ExceptionInfo[SlackApiError]) -> str:
    return str(excinfo.value.response["error"])


# ---- auth and wire formats ----------------------------------------------------------------------------


def test_auth_test_answers_bot_identity_over_form_post(client: WebClient, fake: FakeSlack) -> None:
    resp = client.auth_test()

    assert (resp["user_id"], resp["bot_id"], resp["team_id"]) == (BOT_USER_ID, "B0BOT00001", "T0ABCDEF1")
    assert fake.calls("auth.test")[0].params == {}, "the token must not be recorded"


@pytest.mark.parametrize(("token", "error"), [(None, "not_authed"), ("xoxq-bogus", "invalid_auth")])
def test_missing_or_invalid_token_is_refused(fake: FakeSlack, token: str | None, error: str) -> None:
    with pytest.raises(SlackApiError) as excinfo:
        WebClient(token=token, base_url=fake.base_url, timeout=5).auth_test()
    assert api_error(excinfo) == error


def test_get_style_methods_answer_from_configuration(client: WebClient, fake: FakeSlack) -> None:
    fake.set_usergroup("S0RELEASE", ["U1", "U2"], handle="release-managers")
    fake.set_user("U061F7AUR", name="alice", real_name="Alice Park", display_name="alice.p")

    assert client.usergroups_users_list(usergroup="S0RELEASE")["users"] == ["U1", "U2"]
    user = client.users_info(user="U061F7AUR")["user"]
    assert (user["name"], user["real_name"], user["profile"]["display_name"]) == (
        "alice",
        "Alice Park",
        "alice.p",
    )
    assert client.conversations_info(channel="C0RELEASES")["channel"]["id"] == "C0RELEASES"
    assert client.usergroups_list(include_users=True)["usergroups"][0]["users"] == ["U1", "U2"]
    with pytest.raises(SlackApiError) as excinfo:
        client.usergroups_users_list(usergroup="S0NOPE")
    assert api_error(excinfo) == "no_such_subteam"


# ---- chat ---------------------------------------------------------------------------------------------


def test_post_message_returns_increasing_ts_and_records_message(client: WebClient, fake: FakeSlack) -> None:
    first = client.chat_postMessage(channel="C0RELEASES", text="one", blocks=[section("*one*")])
    second = client.chat_postMessage(channel="C0RELEASES", text="two")

    assert float(first["ts"]) < float(second["ts"])
    assert first["message"]["blocks"][0]["text"]["text"] == "*one*"
    assert [m["text"] for m in fake.messages["C0RELEASES"]] == ["one", "two"]
    assert fake.message("C0RELEASES", first["ts"])["user"] == BOT_USER_ID


def test_thread_replies_need_the_parent_ts(client: WebClient, fake: FakeSlack) -> None:
    parent = client.chat_postMessage(channel="C0RELEASES", text="card")["ts"]
    reply = client.chat_postMessage(
        channel="C0RELEASES", text="stage 1", thread_ts=parent, reply_broadcast=True
    )

    assert [m["text"] for m in fake.thread("C0RELEASES", parent)] == ["stage 1"]
    assert fake.message("C0RELEASES", reply["ts"])["reply_broadcast"] is True
    with pytest.raises(SlackApiError) as excinfo:
        client.chat_postMessage(channel="C0RELEASES", text="nested", thread_ts=reply["ts"])
    assert api_error(excinfo) == "cannot_reply_to_message"
    with pytest.raises(SlackApiError) as excinfo:
        client.chat_postMessage(channel="C0RELEASES", text="lost", thread_ts="1.000001")
    assert api_error(excinfo) == "thread_not_found"


def test_channel_membership_and_existence(client: WebClient, fake: FakeSlack) -> None:
    fake.set_not_in_channel("C0PRIVATE1", "G0PRIVATE2")
    with pytest.raises(SlackApiError) as excinfo:
        client.chat_postMessage(channel="C0PRIVATE1", text="hi")
    assert api_error(excinfo) == "not_in_channel"

    client.conversations_join(channel="C0PRIVATE1")
    assert client.chat_postMessage(channel="C0PRIVATE1", text="hi")["ok"]
    with pytest.raises(SlackApiError) as excinfo:
        client.conversations_join(channel="G0PRIVATE2")
    assert api_error(excinfo) == "method_not_supported_for_channel_type"

    fake.set_known_channels({"C0RELEASES"})
    with pytest.raises(SlackApiError) as excinfo:
        client.chat_postMessage(channel="C0UNKNOWN", text="hi")
    assert api_error(excinfo) == "channel_not_found"


def test_post_without_text_or_blocks_is_no_text(client: WebClient) -> None:
    with pytest.raises(SlackApiError) as excinfo:
        client.api_call("chat.postMessage", json={"channel": "C0RELEASES"})
    assert api_error(excinfo) == "no_text"


def test_long_text_is_truncated_with_a_warning(client: WebClient, fake: FakeSlack) -> None:
    resp = client.chat_postMessage(channel="C0RELEASES", text="x" * 40_005)

    assert resp["warning"] == "message_truncated"
    assert len(fake.message("C0RELEASES", resp["ts"])["text"]) == 40_000


def test_update_replaces_content_and_keeps_omitted_blocks(client: WebClient, fake: FakeSlack) -> None:
    ts = client.chat_postMessage(channel="C0RELEASES", text="v1", blocks=[section("v1")])["ts"]
    client.chat_update(channel="C0RELEASES", ts=ts, text="v2", blocks=[section("v2")])
    client.chat_update(channel="C0RELEASES", ts=ts, text="v3")

    msg = fake.message("C0RELEASES", ts)
    assert (msg["text"], render_text(msg["blocks"]), msg["updated"]) == ("v3", "v2", 2)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"ts": "1718040999.000100", "text": "x"}, "message_not_found"),
        ({"text": "x" * 4001}, "msg_too_long"),
        ({"text": "x", "blocks": [{"type": "input"}]}, "invalid_blocks"),
    ],
)
def test_update_errors(client: WebClient, kwargs: dict[str, Any], error: str) -> None:
    ts = client.chat_postMessage(channel="C0RELEASES", text="v1")["ts"]
    with pytest.raises(SlackApiError) as excinfo:
        client.chat_update(**({"channel": "C0RELEASES", "ts": ts} | kwargs))
    assert api_error(excinfo) == error


def test_update_of_someone_elses_message_is_refused(client: WebClient, fake: FakeSlack) -> None:
    ts = fake.add_message("C0RELEASES", "a human wrote this")
    with pytest.raises(SlackApiError) as excinfo:
        client.chat_update(channel="C0RELEASES", ts=ts, text="edited")
    assert api_error(excinfo) == "cant_update_message"


def test_ephemeral_delete_permalink_reaction(client: WebClient, fake: FakeSlack) -> None:
    assert client.chat_postEphemeral(channel="C0RELEASES", user="U061F7AUR", text="only you")["message_ts"]
    assert fake.ephemerals[0]["user"] == "U061F7AUR"
    ts = client.chat_postMessage(channel="C0RELEASES", text="card")["ts"]
    link = client.chat_getPermalink(channel="C0RELEASES", message_ts=ts)["permalink"]
    assert link == f"https://fake.slack.test/archives/C0RELEASES/p{ts.replace('.', '')}"
    client.reactions_add(channel="C0RELEASES", timestamp=ts, name="rocket")
    with pytest.raises(SlackApiError) as excinfo:
        client.reactions_add(channel="C0RELEASES", timestamp=ts, name="rocket")
    assert api_error(excinfo) == "already_reacted"
    client.chat_delete(channel="C0RELEASES", ts=ts)
    assert "card" not in [m["text"] for m in fake.messages["C0RELEASES"]]


# ---- Block Kit limits ---------------------------------------------------------------------------------

LIMIT_CASES: list[tuple[str, list[dict[str, Any]], str]] = [
    (
        "51 blocks",
        [section(f"b{i}") for i in range(51)],
        "no more than 50 items allowed [json-pointer:/blocks]",
    ),
    (
        "section text",
        [section("x" * 3001)],
        "must be less than 3001 characters [json-pointer:/blocks/0/text/text]",
    ),
    ("empty text", [section("")], "must be more than 0 characters [json-pointer:/blocks/0/text/text]"),
    ("header mrkdwn", [{"type": "header", "text": {"type": "mrkdwn", "text": "h"}}], "/blocks/0/text/type]"),
    (
        "header 151",
        [{"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}],
        "/blocks/0/text/text]",
    ),
    (
        "11 fields",
        [{"type": "section", "fields": [{"type": "mrkdwn", "text": "f"}] * 11}],
        "no more than 10 items allowed [json-pointer:/blocks/0/fields]",
    ),
    (
        "field 2001",
        [{"type": "section", "fields": [{"type": "mrkdwn", "text": "f" * 2001}]}],
        "must be less than 2001 characters [json-pointer:/blocks/0/fields/0/text]",
    ),
    (
        "11 context elements",
        [{"type": "context", "elements": [{"type": "mrkdwn", "text": "c"}] * 11}],
        "no more than 10 items allowed [json-pointer:/blocks/0/elements]",
    ),
    (
        "26 actions",
        [{"type": "actions", "elements": [button(action_id=f"a{i}") for i in range(26)]}],
        "no more than 25 items allowed [json-pointer:/blocks/0/elements]",
    ),
    (
        "button text 76",
        [{"type": "actions", "elements": [button("b" * 76)]}],
        "/blocks/0/elements/0/text/text]",
    ),
    (
        "button value",
        [{"type": "actions", "elements": [button(value="v" * 2001)]}],
        "/blocks/0/elements/0/value]",
    ),
    ("button url", [{"type": "actions", "elements": [button(url="u" * 3001)]}], "/blocks/0/elements/0/url]"),
    (
        "11 checkboxes",
        [{"type": "actions", "elements": [{"type": "checkboxes", "action_id": "c", "options": options(11)}]}],
        "no more than 10 items allowed [json-pointer:/blocks/0/elements/0/options]",
    ),
    (
        "option text 76",
        [{"type": "actions", "elements": [{"type": "radio_buttons", "options": [option("t" * 76)]}]}],
        "/blocks/0/elements/0/options/0/text/text]",
    ),
    (
        "option value 151",
        [{"type": "actions", "elements": [{"type": "checkboxes", "options": [option(value="v" * 151)]}]}],
        "/blocks/0/elements/0/options/0/value]",
    ),
    (
        "option description 76",
        [
            {
                "type": "actions",
                "elements": [
                    {"type": "checkboxes", "options": [option(description=option("d" * 76)["text"])]}
                ],
            }
        ],
        "/blocks/0/elements/0/options/0/description/text]",
    ),
    (
        "select option mrkdwn",
        [
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "static_select",
                        "options": [{"text": {"type": "mrkdwn", "text": "o"}, "value": "v"}],
                    }
                ],
            }
        ],
        "must be a valid enum value [json-pointer:/blocks/0/elements/0/options/0/text/type]",
    ),
    (
        "initial option not an option",
        [
            {
                "type": "actions",
                "elements": [
                    {"type": "checkboxes", "options": options(2), "initial_options": [option("gone", "x")]}
                ],
            }
        ],
        "must match one of the options [json-pointer:/blocks/0/elements/0/initial_options/0]",
    ),
    (
        "block_id 256",
        [section("s", "b" * 256)],
        "must be less than 256 characters [json-pointer:/blocks/0/block_id]",
    ),
    (
        "duplicate block_id",
        [section("s", "same"), section("t", "same")],
        "must be unique [json-pointer:/blocks/1/block_id]",
    ),
    (
        "action_id 256",
        [{"type": "actions", "elements": [button(action_id="a" * 256)]}],
        "/blocks/0/elements/0/action_id]",
    ),
    (
        "duplicate action_id",
        [{"type": "actions", "elements": [button(action_id="x"), button(action_id="x")]}],
        "must be unique [json-pointer:/blocks/0/elements/1/action_id]",
    ),
    (
        "input in message",
        [
            {
                "type": "input",
                "label": {"type": "plain_text", "text": "l"},
                "element": {"type": "plain_text_input"},
            }
        ],
        "unsupported type: input [json-pointer:/blocks/0/type]",
    ),
    ("unknown type", [{"type": "carousel"}], "unsupported type: carousel [json-pointer:/blocks/0/type]"),
    (
        "confirm title 101",
        [
            {
                "type": "actions",
                "elements": [
                    button(
                        confirm={
                            "title": {"type": "plain_text", "text": "t" * 101},
                            "text": {"type": "mrkdwn", "text": "sure?"},
                            "confirm": {"type": "plain_text", "text": "Yes"},
                            "deny": {"type": "plain_text", "text": "No"},
                        }
                    )
                ],
            }
        ],
        "must be less than 101 characters [json-pointer:/blocks/0/elements/0/confirm/title/text]",
    ),
]


@pytest.mark.parametrize(
    ("blocks", "expected"), [c[1:] for c in LIMIT_CASES], ids=[c[0] for c in LIMIT_CASES]
)
def test_each_block_kit_limit_is_invalid_blocks(client: WebClient, blocks: list[Any], expected: str) -> None:
    with pytest.raises(SlackApiError) as excinfo:
        client.chat_postMessage(channel="C0RELEASES", text="fallback", blocks=blocks)

    assert api_error(excinfo) == "invalid_blocks"
    errors = excinfo.value.response["errors"]
    assert any(e.endswith(expected) for e in errors), errors


def test_blocks_at_every_limit_are_accepted(client: WebClient, fake: FakeSlack) -> None:
    checklist = {
        "type": "checkboxes",
        "action_id": "toggle",
        "options": options(10),
        "initial_options": options(1),
    }
    blocks = [
        {"type": "header", "text": {"type": "plain_text", "text": "h" * 150}},
        {"type": "section", "block_id": "b" * 255, "text": {"type": "mrkdwn", "text": "s" * 3000}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": "f" * 200}] * 10},
        {"type": "section", "text": {"type": "mrkdwn", "text": "checklist"}, "accessory": checklist},
        {"type": "actions", "elements": [button("b" * 75, f"a{i}", value="v" * 2000) for i in range(25)]},
        *[{"type": "divider"} for _ in range(45)],
    ]
    ts = client.chat_postMessage(channel="C0RELEASES", text="card", blocks=blocks)["ts"]

    assert len(fake.message("C0RELEASES", ts)["blocks"]) == 50


def test_cumulative_block_text_cap_is_msg_blocks_too_long(client: WebClient) -> None:
    client.chat_postMessage(channel="C0RELEASES", text="ok", blocks=[section("x" * 2900) for _ in range(4)])
    with pytest.raises(SlackApiError) as excinfo:
        client.chat_postMessage(
            channel="C0RELEASES", text="big", blocks=[section("x" * 2900) for _ in range(5)]
        )
    assert api_error(excinfo) == "msg_blocks_too_long"


def test_validate_blocks_allows_input_in_modals_only() -> None:
    block = {
        "type": "input",
        "label": {"type": "plain_text", "text": "Why?"},
        "element": {"type": "plain_text_input"},
    }
    assert validate_blocks([block], "modal") == []
    assert validate_blocks([block], "message") == ["unsupported type: input [json-pointer:/blocks/0/type]"]


def test_render_text_flattens_blocks_for_assertions() -> None:
    blocks = [
        {"type": "header", "text": {"type": "plain_text", "text": "Release v1.2.3"}},
        {"type": "section", "text": {"type": "mrkdwn", "text": "Checklist"}, "accessory": {
            "type": "checkboxes", "options": [option("QA", "qa"), option("Docs", "docs")],
            "initial_options": [option("QA", "qa")]}},
        {"type": "divider"},
        {"type": "actions", "elements": [button("Approve")]},
    ]  # fmt: skip
    assert render_text(blocks) == "Release v1.2.3\nChecklist [x] QA [ ] Docs\n---\n[Approve]"


# ---- views --------------------------------------------------------------------------------------------


def modal(**extra: Any) -> dict[str, Any]:
    return {
        "type": "modal",
        "title": {"type": "plain_text", "text": "Roll back"},
        "blocks": [section("Sure?")],
    } | extra


def test_views_open_uses_a_trigger_once(client: WebClient, fake: FakeSlack) -> None:
    view = client.views_open(trigger_id="123.456.abc", view=modal(callback_id="rollback"))["view"]
    assert view["id"].startswith("V")
    assert fake.views[view["id"]]["callback_id"] == "rollback"

    with pytest.raises(SlackApiError) as excinfo:
        client.views_open(trigger_id="123.456.abc", view=modal())
    assert api_error(excinfo) == "exchanged_trigger_id"
    with pytest.raises(SlackApiError) as excinfo:
        client.views_open(trigger_id="expired-1", view=modal())
    assert api_error(excinfo) == "expired_trigger_id"


@pytest.mark.parametrize(
    ("view", "pointer"),
    [
        (modal(title={"type": "plain_text", "text": "t" * 25}), "/view/title/text"),
        (modal(submit={"type": "plain_text", "text": "s" * 25}), "/view/submit/text"),
        (modal(private_metadata="m" * 3001), "/view/private_metadata"),
        (modal(callback_id="c" * 256), "/view/callback_id"),
        (modal(blocks=[{"type": "divider"}] * 101), "/view/blocks"),
    ],
)
def test_modal_limits_are_invalid_arguments(client: WebClient, view: dict[str, Any], pointer: str) -> None:
    with pytest.raises(SlackApiError) as excinfo:
        client.views_open(trigger_id="t-limits", view=view)
    assert api_error(excinfo) == "invalid_arguments"
    assert any(
        m.endswith(f"[json-pointer:{pointer}]")
        for m in excinfo.value.response["response_metadata"]["messages"]
    )


def test_views_update_checks_hash(client: WebClient) -> None:
    view = client.views_open(trigger_id="t-hash", view=modal())["view"]
    updated = client.views_update(
        view_id=view["id"], hash=view["hash"], view=modal(blocks=[section("Done")])
    )["view"]
    assert updated["id"] == view["id"]
    assert updated["hash"] != view["hash"]
    with pytest.raises(SlackApiError) as excinfo:
        client.views_update(view_id=view["id"], hash=view["hash"], view=modal())
    assert api_error(excinfo) == "hash_conflict"


def test_home_tab_publish_limits(client: WebClient, fake: FakeSlack) -> None:
    client.views_publish(user_id="U061F7AUR", view={"type": "home", "blocks": [section("x")] * 100})
    assert len(fake.home_views["U061F7AUR"]["blocks"]) == 100

    with pytest.raises(SlackApiError) as excinfo:
        client.views_publish(
            user_id="U061F7AUR", view={"type": "home", "blocks": [{"type": "divider"}] * 101}
        )
    assert api_error(excinfo) == "invalid_arguments"
    big = {"type": "home", "blocks": [section("x" * 3000, f"b{i}") for i in range(90)]}
    with pytest.raises(SlackApiError) as excinfo:
        client.views_publish(user_id="U061F7AUR", view=big)
    assert api_error(excinfo) == "view_too_large"


# ---- rate limits, failures, outages -------------------------------------------------------------------


def test_injected_429_carries_retry_after(client: WebClient, fake: FakeSlack) -> None:
    fake.rate_limit("chat.update", retry_after=7)
    ts = client.chat_postMessage(channel="C0RELEASES", text="v1")["ts"]
    with pytest.raises(SlackApiError) as excinfo:
        client.chat_update(channel="C0RELEASES", ts=ts, text="v2")

    assert excinfo.value.response.status_code == 429
    assert api_error(excinfo) == "ratelimited"
    assert excinfo.value.response.headers["Retry-After"] == "7"


def test_rate_limit_retry_handler_retries_a_429(fake: FakeSlack) -> None:
    fake.rate_limit("chat.postMessage", retry_after=0)
    retrying = WebClient(
        token="xoxb-test",
        base_url=fake.base_url,
        timeout=5,
        retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=1)],
    )

    assert retrying.chat_postMessage(channel="C0RELEASES", text="hi")["ok"]
    assert [c.http_status for c in fake.calls("chat.postMessage")] == [429, 200]
    assert len(fake.messages["C0RELEASES"]) == 1


def test_per_channel_post_rate(client: WebClient, fake: FakeSlack, clock: ManualClock) -> None:
    fake.enforce_rate_limits(post_per_channel_per_s=1, burst=1)
    client.chat_postMessage(channel="C0RELEASES", text="1")
    with pytest.raises(SlackApiError) as excinfo:
        client.chat_postMessage(channel="C0RELEASES", text="2")
    assert excinfo.value.response.status_code == 429
    assert excinfo.value.response.headers["Retry-After"] == "1"
    client.chat_postMessage(channel="C0OTHER", text="other channels have their own budget")

    clock.now += 1.0
    client.chat_postMessage(channel="C0RELEASES", text="3")
    assert [m["text"] for m in fake.messages["C0RELEASES"]] == ["1", "3"]


def test_server_errors_and_the_server_error_retry_handler(client: WebClient, fake: FakeSlack) -> None:
    fake.fail("users.info", status=503)
    with pytest.raises(SlackApiError) as excinfo:
        client.users_info(user="U1")
    assert excinfo.value.response.status_code == 503

    fake.fail("users.info", status=500)
    fast_backoff = BackoffRetryIntervalCalculator(backoff_factor=0.01)
    retrying = WebClient(
        token="xoxb-test",
        base_url=fake.base_url,
        timeout=5,
        retry_handlers=[ServerErrorRetryHandler(max_retry_count=1, interval_calculator=fast_backoff)],
    )
    assert retrying.users_info(user="U1")["user"]["id"] == "U1"
    assert [c.http_status for c in fake.calls("users.info")] == [503, 500, 200]


def test_go_down_refuses_connections_and_comes_back_on_the_same_port(fake: FakeSlack) -> None:
    client = WebClient(token="xoxb-test", base_url=fake.base_url, timeout=5, retry_handlers=[])
    url = fake.base_url
    fake.go_down()
    with pytest.raises(urllib.error.URLError):
        client.auth_test()

    fake.come_back()
    assert fake.base_url == url
    assert client.auth_test()["ok"]


def test_go_down_503_mode(client: WebClient, fake: FakeSlack) -> None:
    fake.go_down(mode="503")
    with pytest.raises(SlackApiError) as excinfo:
        client.auth_test()
    assert excinfo.value.response.status_code == 503
    fake.come_back()
    assert client.auth_test()["ok"]


# ---- response_url, files, recording -------------------------------------------------------------------


def test_response_url_allows_five_uses(client: WebClient, fake: FakeSlack) -> None:
    ts = client.chat_postMessage(channel="C0RELEASES", text="card v1")["ts"]
    hook = WebhookClient(fake.response_url("click-1", channel="C0RELEASES", message_ts=ts), timeout=5)

    statuses = [hook.send(text="card v2", replace_original=True).status_code]
    statuses += [hook.send(text=f"note {i}", response_type="ephemeral").status_code for i in range(4)]
    sixth = hook.send(text="one too many")

    assert statuses == [200] * 5
    assert (sixth.status_code, json.loads(sixth.body)["error"]) == (404, "used_url")
    assert fake.message("C0RELEASES", ts)["text"] == "card v2"
    assert [r["text"] for r in fake.responses("click-1")][1:] == [f"note {i}" for i in range(4)]


def test_files_upload_v2_round_trip(client: WebClient, fake: FakeSlack) -> None:
    parent = client.chat_postMessage(channel="C0RELEASES", text="release")["ts"]
    resp = client.files_upload_v2(
        channel="C0RELEASES",
        thread_ts=parent,
        filename="canary.png",
        content=b"\x89PNG-bytes",
        initial_comment="p95",
    )

    uploaded = fake.files[resp["file"]["id"]]
    assert uploaded.data == b"\x89PNG-bytes"
    assert uploaded.completed
    assert (uploaded.channel, uploaded.thread_ts, uploaded.initial_comment) == ("C0RELEASES", parent, "p95")


def test_concurrent_posts_get_unique_ts(client: WebClient, fake: FakeSlack) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        ts = list(
            pool.map(lambda i: client.chat_postMessage(channel="C0RELEASES", text=str(i))["ts"], range(40))
        )

    assert len(set(ts)) == 40
    assert sorted(m["text"] for m in fake.messages["C0RELEASES"]) == sorted(str(i) for i in range(40))


def test_wait_for_times_out_with_a_dump(client: WebClient, fake: FakeSlack) -> None:
    client.chat_postMessage(channel="C0RELEASES", text="visible in the dump")
    with pytest.raises(AssertionError, match="visible in the dump"):
        fake.wait_for(lambda: fake.calls("chat.update"), timeout=0.05)

    fake.reset()
    assert fake.calls() == []
    assert fake.messages == {}


def test_a_separate_process_can_use_the_fake(fake: FakeSlack) -> None:
    script = (
        "import sys; from slack_sdk import WebClient\n"
        "c = WebClient(token='xoxb-sub', base_url=sys.argv[1], timeout=5)\n"
        "print(c.chat_postMessage(channel='C0RELEASES', text='from a subprocess')['ts'])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, fake.base_url], capture_output=True, text=True, timeout=30
    )

    assert out.returncode == 0, out.stderr
    assert fake.message("C0RELEASES", out.stdout.strip())["text"] == "from a subprocess"
