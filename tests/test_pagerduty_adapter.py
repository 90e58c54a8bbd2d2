"""PagerDutyPager against the loopback PagerDuty over real HTTPS, with the real ``pagerduty`` 6.x client."""

from __future__ import annotations

import json
import logging
import socket
import traceback
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from bot.adapters.pagerduty import PagerDutyPager
from bot.errors import ConfigError, PagerError
from bot.ports import ChangeEvent, PageEvent
from tests.fakes.pagerduty_api import FakePagerDuty
from tests.fakes.tls import TlsFiles, make_tls_files

ROUTING_KEY = "R0UT1NGK3Y5ECRET0123456789abcdef"  # 32 characters, like a real integration key
assert len(ROUTING_KEY) == 32
T0 = datetime(2025, 3, 4, 12, 30, tzinfo=UTC)

MakePager = Callable[..., PagerDutyPager]


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("pd-tls"))


@pytest.fixture
def fake(tls: TlsFiles) -> Iterator[FakePagerDuty]:
    with FakePagerDuty(tls) as server:
        yield server


@pytest.fixture
def make_pager(fake: FakePagerDuty, tls: TlsFiles) -> Iterator[MakePager]:
    made: list[PagerDutyPager] = []

    def make(**kwargs: Any) -> PagerDutyPager:
        options: dict[str, Any] = {
            "routing_key": ROUTING_KEY,
            "events_url": fake.url,
            # A path, as a PAGERDUTY_CA_BUNDLE setting would give it; httpx 0.28 warns on verify=<str>, which
            # our pytest config makes an error, so every test here also guards the SSLContext conversion.
            "verify": str(tls.ca_path),
            "sleep_timer": 0.001,
            "max_retries": 3,
        }
        options.update(kwargs)
        pager = PagerDutyPager(**options)
        made.append(pager)
        return pager

    yield make
    for pager in made:
        pager.close()


@pytest.fixture
def pager(make_pager: MakePager) -> PagerDutyPager:
    return make_pager()


def trigger(key: str = "release:42:error-rate", **kwargs: Any) -> PageEvent:
    fields: dict[str, Any] = {
        "summary": "web: 5xx ratio 7.1% > 5% for 2 checks",
        "source": "release-bot",
        "severity": "critical",
        "timestamp": T0,
    }
    fields.update(kwargs)
    return PageEvent("trigger", key, **fields)


def assert_no_secret(error: BaseException, caplog: pytest.LogCaptureFixture | None = None) -> None:
    texts = [error.user_message if isinstance(error, PagerError) else "", str(error)]
    texts.extend(traceback.format_exception(error))  # includes the chained vendor exception
    if caplog is not None:
        texts.extend(r.getMessage() for r in caplog.records)
        texts.extend(repr(r.args) for r in caplog.records)
    for text in texts:
        assert ROUTING_KEY not in text
        assert ROUTING_KEY[-4:] + ")" not in text  # the client's 401 message quotes the last four characters


# --- the happy paths and dedup semantics -------------------------------------------------------------------


def test_trigger_ack_resolve_lifecycle_follows_dedup_semantics(
    pager: PagerDutyPager, fake: FakePagerDuty
) -> None:
    key = "release:42:error-rate"
    pager.send(trigger(key))
    pager.send(trigger(key, summary="still breaching"))  # appended to the open alert
    assert len(fake.incidents[key]) == 1
    assert len(fake.incidents[key][0].events) == 2

    pager.send(PageEvent("acknowledge", key))
    assert fake.incidents[key][0].status == "acknowledged"
    pager.send(PageEvent("resolve", key))
    assert fake.incidents[key][0].status == "resolved"

    pager.send(trigger(key))  # a trigger after resolve opens a NEW incident, never re-opens
    assert [i.status for i in fake.incidents[key]] == ["resolved", "triggered"]
    assert fake.incidents[key][1].number != fake.incidents[key][0].number


def test_ack_and_resolve_send_only_routing_key_dedup_key_and_action(
    pager: PagerDutyPager, fake: FakePagerDuty
) -> None:
    pager.send(trigger("k1"))
    pager.send(PageEvent("acknowledge", "k1", summary="ignored", custom_details={"x": 1}))
    pager.send(PageEvent("resolve", "k1", summary="ignored"))
    follow_ups = [r.body for r in fake.requests[1:]]
    assert [sorted(b) for b in follow_ups] == [["dedup_key", "event_action", "routing_key"]] * 2
    assert [b["event_action"] for b in follow_ups] == ["acknowledge", "resolve"]


def test_ack_of_unknown_key_is_accepted_and_dropped(pager: PagerDutyPager, fake: FakePagerDuty) -> None:
    pager.send(PageEvent("resolve", "never-triggered"))
    assert fake.incidents == {}
    assert [d["dedup_key"] for d in fake.dropped] == ["never-triggered"]


def test_trigger_body_carries_timestamp_details_links_and_truncated_summary(
    pager: PagerDutyPager, fake: FakePagerDuty
) -> None:
    kst = timezone(timedelta(hours=9))
    pager.send(
        trigger(
            summary="x" * 2000,
            severity="warning",
            timestamp=T0.astimezone(kst),
            custom_details={"metric": "5xx ratio", "value": 0.071, "threshold": 0.05},
            links=(("https://grafana.example/d/web", "Dashboard"), ("https://runbook.example/web", "")),
        )
    )
    body = fake.requests[0].body
    payload = body["payload"]
    assert len(payload["summary"]) == 1024
    assert payload["summary"].endswith("…")
    assert payload["severity"] == "warning"
    assert datetime.fromisoformat(payload["timestamp"]) == T0
    assert payload["timestamp"].endswith("+00:00")
    assert payload["custom_details"] == {"metric": "5xx ratio", "value": 0.071, "threshold": 0.05}
    assert body["links"] == [
        {"href": "https://grafana.example/d/web", "text": "Dashboard"},
        {"href": "https://runbook.example/web"},
    ]
    assert body["dedup_key"] == "release:42:error-rate"


def test_trigger_without_timestamp_uses_the_injected_clock(
    make_pager: MakePager, fake: FakePagerDuty
) -> None:
    class Clock:
        def now(self) -> datetime:
            return T0

    make_pager(clock=Clock()).send(trigger(timestamp=None))
    assert datetime.fromisoformat(fake.requests[0].body["payload"]["timestamp"]) == T0


def test_change_event_goes_to_change_endpoint_with_documented_shape(
    pager: PagerDutyPager, fake: FakePagerDuty
) -> None:
    pager.change(
        ChangeEvent(
            summary="web 1.4.2: canary 10% started",
            source="release-bot",
            timestamp=T0,
            custom_details={"release": 42, "stage": "canary-10"},
            links=(("https://slack.example/archives/C1/p1", "Release thread"),),
        )
    )
    assert [r.path for r in fake.requests] == ["/v2/change/enqueue"]
    (event,) = fake.change_events
    assert sorted(event) == ["links", "payload", "routing_key"]
    assert sorted(event["payload"]) == ["custom_details", "source", "summary", "timestamp"]
    assert event["payload"]["summary"] == "web 1.4.2: canary 10% started"
    assert datetime.fromisoformat(event["payload"]["timestamp"]) == T0
    assert event["links"] == [{"href": "https://slack.example/archives/C1/p1", "text": "Release thread"}]
    assert fake.incidents == {}  # change events never open incidents


def test_nothing_connects_at_construction(make_pager: MakePager, fake: FakePagerDuty) -> None:
    make_pager()
    assert fake.connections_accepted == 0


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"events_url": "http://events.pagerduty.com"}, "https://"),
        ({"routing_key": ""}, "integration key is empty"),
        ({"max_retries": 0}, "1 or more"),
        ({"verify": "/nonexistent/ca.pem"}, "Cannot load the PagerDuty CA bundle"),
    ],
)
def test_bad_settings_are_config_errors(make_pager: MakePager, kwargs: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        make_pager(**kwargs)


# --- validation before sending ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (trigger(severity="fatal"), "severity 'fatal'"),
        (trigger(key=""), "non-empty string"),
        (trigger(key="k" * 256), "256 characters"),
        (PageEvent("resolve", "  "), "non-empty string"),
        (trigger(custom_details={"at": T0}), "not JSON-serialisable"),
        (trigger(custom_details={"ratio": float("nan")}), "not JSON-serialisable"),
        (trigger(timestamp=datetime(2025, 1, 1)), "timezone-aware"),
        (trigger(source=""), "summary and a source"),
        (trigger(links=(("", "no href"),)), "href"),
        (trigger(custom_details={"blob": "x" * 600_000}), "512 KB"),
    ],
)
def test_invalid_events_are_refused_before_sending(
    pager: PagerDutyPager, fake: FakePagerDuty, event: PageEvent, reason: str
) -> None:
    with pytest.raises(PagerError) as caught:
        pager.send(event)
    assert caught.value.retryable is False
    assert reason in caught.value.user_message
    assert fake.request_count() == 0


def test_dedup_key_of_255_characters_is_accepted(pager: PagerDutyPager, fake: FakePagerDuty) -> None:
    pager.send(trigger(key="k" * 255))
    assert len(fake.incidents["k" * 255]) == 1


# --- errors from PagerDuty -------------------------------------------------------------------------------


def test_invalid_event_400_is_not_retryable_and_carries_pagerduty_errors(
    make_pager: MakePager, fake: FakePagerDuty, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    short_key = ROUTING_KEY[:31]
    with pytest.raises(PagerError) as caught:
        make_pager(routing_key=short_key).send(trigger())
    error = caught.value
    assert error.retryable is False
    assert "Length of 'routing_key' is incorrect (should be 32 characters)" in error.user_message
    assert "Length of 'routing_key' is incorrect" in str(error)  # the detail keeps PD's errors list
    assert fake.request_count() == 1  # 400 is never retried
    for text in [error.user_message, str(error), *traceback.format_exception(error)]:
        assert short_key not in text
    assert all(short_key not in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("status", [401, 403])
def test_auth_refusal_is_not_retryable(
    pager: PagerDutyPager, fake: FakePagerDuty, caplog: pytest.LogCaptureFixture, status: int
) -> None:
    caplog.set_level(logging.DEBUG)
    fake.fail_next(1, status=status)
    with pytest.raises(PagerError) as caught:
        pager.send(trigger())
    assert caught.value.retryable is False
    assert caught.value.user_message == "PagerDuty rejected the integration key."
    assert fake.request_count() == 1
    assert_no_secret(caught.value, caplog)


def test_rate_limited_then_accepted_is_delivered(pager: PagerDutyPager, fake: FakePagerDuty) -> None:
    fake.fail_next(2, status=429)
    pager.send(trigger("k-429"))
    assert [r.status for r in fake.requests] == [429, 429, 202]
    assert len(fake.incidents["k-429"]) == 1


def test_rate_limited_forever_gives_up_after_bounded_attempts(
    make_pager: MakePager, fake: FakePagerDuty, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake.fail_next(1000, status=429)  # the client's default would retry this forever
    with pytest.raises(PagerError) as caught:
        make_pager(max_retries=3).send(trigger())
    assert caught.value.retryable is True
    assert "rate limiting" in caught.value.user_message
    assert fake.request_count() == 4  # one attempt + three retries
    assert fake.incidents == {}
    assert_no_secret(caught.value, caplog)


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_are_retried_then_delivered(
    pager: PagerDutyPager, fake: FakePagerDuty, status: int
) -> None:
    fake.fail_next(2, status=status)
    pager.send(trigger("k-5xx"))
    assert [r.status for r in fake.requests] == [status, status, 202]
    assert fake.incidents["k-5xx"][0].status == "triggered"


@pytest.mark.parametrize("status", [500, 502, 503])
def test_persistent_server_errors_are_retryable_after_bounded_attempts(
    make_pager: MakePager, fake: FakePagerDuty, status: int
) -> None:
    fake.fail_next(1000, status=status)
    with pytest.raises(PagerError) as caught:
        make_pager(max_retries=2).send(trigger())
    assert caught.value.retryable is True
    assert f"status {status}" in caught.value.user_message
    assert fake.request_count() == 3


def test_rate_limit_window_blocks_events_beyond_the_limit(make_pager: MakePager, fake: FakePagerDuty) -> None:
    fake.rate_limit_per_minute(2)
    pager = make_pager(max_retries=1)
    pager.send(trigger("a"))
    pager.send(trigger("b"))
    with pytest.raises(PagerError) as caught:
        pager.send(trigger("c"))
    assert caught.value.retryable is True
    assert sorted(fake.incidents) == ["a", "b"]  # a 429 means "not ingested"
    assert [r.status for r in fake.requests] == [202, 202, 429, 429]


def test_outage_is_retryable_and_the_same_pager_recovers(
    pager: PagerDutyPager, fake: FakePagerDuty, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    pager.send(trigger("before"))  # leaves a pooled keep-alive connection behind
    port = fake.port
    fake.go_down()
    with pytest.raises(PagerError) as caught:
        pager.send(trigger("during"))
    assert caught.value.retryable is True
    assert caught.value.user_message == "Could not reach PagerDuty; the event will be retried."
    assert "ConnectError" in str(caught.value)
    assert_no_secret(caught.value, caplog)

    fake.come_back()
    assert fake.port == port
    pager.send(trigger("after"))
    assert sorted(fake.incidents) == ["after", "before"]


def test_no_answer_is_a_retryable_timeout(make_pager: MakePager) -> None:
    # A socket that accepts TCP (backlog) but never speaks TLS: the handshake waits until the timeout.
    with socket.create_server(("127.0.0.1", 0)) as silent:
        port = silent.getsockname()[1]
        pager = make_pager(events_url=f"https://127.0.0.1:{port}", timeout_s=0.2, max_retries=1)
        with pytest.raises(PagerError) as caught:
            pager.send(trigger())
    assert caught.value.retryable is True
    assert caught.value.user_message == "PagerDuty did not answer within 0.2 s; the event will be retried."


# --- TLS trust ---------------------------------------------------------------------------------------------


def test_untrusted_certificate_is_reported_in_plain_words(
    make_pager: MakePager, fake: FakePagerDuty, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    with pytest.raises(PagerError) as caught:
        make_pager(verify=None, max_retries=1).send(trigger())
    assert caught.value.retryable is True
    assert "TLS certificate not trusted" in caught.value.user_message
    assert fake.tls_failures >= 1
    assert fake.request_count() == 0


def test_ssl_cert_file_is_honoured_when_no_ca_bundle_is_given(
    make_pager: MakePager, fake: FakePagerDuty, tls: TlsFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    # httpx reads SSL_CERT_FILE when the client is built (trust_env=True, verify=True).
    monkeypatch.setenv("SSL_CERT_FILE", str(tls.ca_path))
    make_pager(verify=None).send(trigger("via-env"))
    assert len(fake.incidents["via-env"]) == 1


# --- scrubbing a body that echoes the key ------------------------------------------------------------------


def test_routing_key_echoed_by_the_server_is_scrubbed(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    seen: list[dict[str, Any]] = []

    def echo(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        seen.append(body)
        problem = f"Routing key {body['routing_key']} is not enabled for this service"
        return httpx.Response(
            400, json={"status": "invalid event", "message": "Event object is invalid", "errors": [problem]}
        )

    pager = PagerDutyPager(
        routing_key=ROUTING_KEY,
        events_url="https://pd.test",
        transport=httpx.MockTransport(echo),
        sleep_timer=0.001,
    )
    try:
        with pytest.raises(PagerError) as caught:
            pager.send(trigger())
    finally:
        pager.close()
    assert seen[0]["routing_key"] == ROUTING_KEY  # the key really went out in the body
    assert "is not enabled for this service" in caught.value.user_message
    assert "[routing key redacted]" in caught.value.user_message
    assert_no_secret(caught.value, caplog)
