"""The fast decoding of interactivity bodies gives exactly what Bolt's own parser gives, or steps aside."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from urllib.parse import quote, quote_plus, unquote_plus

import pytest
from slack_bolt import BoltRequest
from slack_bolt.request.internals import parse_body

from bot.slack.form_body import bolt_request, decode_payload

FORM = {"content-type": "application/x-www-form-urlencoded"}

CLICK = {
    "type": "block_actions",
    "user": {"id": "U061F7AUR", "name": "alice", "team_id": "T0ABCDEF1"},
    "team": {"id": "T0ABCDEF1", "domain": "acme"},
    "channel": {"id": "C0RELEASES", "name": "releases"},
    "message": {
        "ts": "1700000000.000100",
        "text": "v1.4.0 — 배포 전 확인",
        "blocks": [
            {
                "type": "section",
                "block_id": f"item-{n}",
                "text": {
                    "type": "mrkdwn",
                    "text": f"*{n}.* 스테이징 헬스체크 100% & p95 < 200ms = ok? +1 ~ `x`\n",
                },
                "accessory": {
                    "type": "checkboxes",
                    "action_id": "toggle_item",
                    "options": [{"text": {"type": "plain_text", "text": "✓"}, "value": f"pre.item{n}"}],
                },
            }
            for n in range(30)
        ],
    },
    "actions": [
        {"type": "checkboxes", "action_id": "toggle_item", "block_id": "item-3", "selected_options": []}
    ],
    "response_url": "https://hooks.slack.com/actions/T0/1/abc",
}


@pytest.mark.parametrize("encode", [quote, quote_plus], ids=["quote", "quote_plus"])
def test_a_click_decodes_to_what_bolt_decodes(encode: object) -> None:
    raw = "payload=" + encode(json.dumps(CLICK, ensure_ascii=False))  # type: ignore[operator]
    assert decode_payload(raw) == parse_body(raw, FORM["content-type"]) == CLICK


# What Slack's encoder writes inside a value (a space travels as "+")...
SLACK_PIECES = [
    "a",
    "Z",
    "0",
    " ",
    "+",
    "%2c",
    "%2C",
    "%0A",
    "%3D",
    "%25",
    "%E2%82%AC",
    "%E2%82",
    "%ff",
    "_",
    "~",
]
# ...and what anything else might: lowercase and invalid hex, stray "%", "=", "&", line breaks, control
# characters and partial UTF-8.
ODD_PIECES = [
    "a",
    " ",
    "+",
    "%",
    "%2",
    "%2c",
    "%zz",
    "%0a",
    "%0D",
    "%E2%82",
    "%AC",
    "%ff",
    "%00",
    "=",
    "&",
    "%22",
]
ODD_PIECES += ["\r", "\n", "\t", "\x7f", "_", "%5C"]


def _random(rng: random.Random, pieces: list[str]) -> str:
    return "".join(rng.choice(pieces) for _ in range(rng.randint(0, 10)))


def test_bodies_as_slack_encodes_them_take_the_fast_path_and_decode_as_bolt_does() -> None:
    rng = random.Random(7)
    for _ in range(20_000):
        text = json.dumps(unquote_plus(_random(rng, SLACK_PIECES)))
        raw = "payload=" + quote_plus(text)
        assert decode_payload(raw) == json.loads(text) == parse_body(raw, FORM["content-type"])


def _outcome(decode: Callable[[], object]) -> object:
    try:
        return decode()
    except ValueError:
        return ValueError


def test_any_body_either_decodes_as_bolt_decodes_or_is_left_to_bolt() -> None:
    rng = random.Random(11)
    fast = 0
    for _ in range(30_000):
        raw = "payload=%7B%22k%22%3A%22" + _random(rng, ODD_PIECES) + "%22%7D"
        got = _outcome(lambda: decode_payload(raw))  # noqa: B023 - called at once
        if got is not None:
            fast += 1
            assert got == _outcome(lambda: parse_body(raw, FORM["content-type"])), raw  # noqa: B023
    assert fast > 5_000  # the fast path was really exercised


@pytest.mark.parametrize(
    "raw",
    [
        "command=%2Frelease&text=start+v1.4.0",  # a slash command
        "payload=%7B%7D&extra=1",  # more than the payload
        "payload=%7B%22a%22%3A%22%zz%22%7D",  # an escape URL decoding keeps as it is
        "payload=%7B%22a%22%3A%22=%22%7D",  # a bare "="
        "payload=%7B\n%22a%22%3A1%7D",  # a raw line break
        'payload={"a":"ü"}',  # raw non-ASCII
        "",
    ],
)
def test_other_shapes_are_left_to_bolt(raw: str) -> None:
    assert decode_payload(raw) is None
    request = bolt_request(raw, "", dict(FORM))
    assert request.raw_body == raw
    if raw.startswith("payload=") and "&" not in raw:
        assert request.body == parse_body(raw, FORM["content-type"])  # Bolt decoded it, its own way


def test_malformed_json_raises_as_bolt_does() -> None:
    with pytest.raises(json.JSONDecodeError, match="Expecting property name"):
        decode_payload("payload=" + quote("{not json"))


def test_the_request_is_the_one_bolt_builds_with_the_raw_body_kept_for_the_signature() -> None:
    raw = "payload=" + quote_plus(json.dumps(CLICK))
    headers = {**FORM, "x-slack-signature": "v0=abc", "x-slack-request-timestamp": "1700000000"}
    ours, bolts = bolt_request(raw, "a=1", headers), BoltRequest(body=raw, query="a=1", headers=headers)
    assert ours.raw_body == bolts.raw_body == raw
    assert ours.body == bolts.body
    assert dict(ours.context) == dict(bolts.context)
    assert ours.query == bolts.query and ours.headers == bolts.headers
    assert ours.context.user_id == "U061F7AUR" and ours.context.channel_id == "C0RELEASES"
