"""Pages do not queue behind each other: with PagerDuty failing and slow for one alert, another alert's first
attempt goes out at once. Driven through Slack (a declared incident and the header's "core feature down"),
judged on what reaches the fake PagerDuty over HTTPS."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bot.adapters.pagerduty import PagerDutyPager
from bot.slack.gateway import ChannelPacer
from tests.conftest import make_settings, start_bot
from tests.fakes.pagerduty_api import FakePagerDuty
from tests.fakes.slack_api import FakeSlack
from tests.fakes.tls import TlsFiles, make_tls_files
from tests.slack_user import submit_view
from tests.test_release_start import CHANNEL, release_messages, wait_for_release

ROUTING_KEY = "R0UTINGKEY0123456789abcdef012345"
VERSION = "v1.4.0"
SLOW_S = 2.0  # each request for the failing alert; one attempt is two requests (the adapter's bounded retry)


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("pd-lanes-tls"))


@pytest.fixture
def pd(tls: TlsFiles) -> Iterator[FakePagerDuty]:
    with FakePagerDuty(tls) as server:
        yield server


def requests_for(pd: FakePagerDuty, key: str) -> list[int]:
    with pd.lock:
        return [
            r.status
            for r in pd.requests
            if isinstance(r.body, dict) and r.body.get("dedup_key") == key and r.path == "/v2/enqueue"
        ]


def test_a_failing_slow_alert_never_delays_another_alerts_first_attempt(
    db_url: str, fake_slack: FakeSlack, pd: FakePagerDuty, tls: TlsFiles
) -> None:
    settings = make_settings(
        db_url,
        fake_slack,
        pagerduty_routing_key=ROUTING_KEY,
        pagerduty_events_url=pd.url,
        pagerduty_ca_bundle=str(tls.ca_path),
    )
    pager = PagerDutyPager(
        routing_key=ROUTING_KEY,
        events_url=pd.url,
        verify=str(tls.ca_path),
        sleep_timer=0.001,
        max_retries=2,
        timeout_s=10,
    )
    rb = start_bot(
        settings,
        fake_slack,
        sync_interval_s=0.2,
        pacer=ChannelPacer(0.0),
        pager=pager,
        outbox_interval_s=0.5,
        outbox_backoff_s=(0.5, 2.0),
    )
    try:
        alice = rb.user()
        alice.command(f"start {VERSION}")
        wait_for_release(rb.fake, 1 + len(rb.services.checklist.flow_phases))
        rid = rb.services.find(CHANNEL, VERSION).release.id
        first, second = f"release:{rid}:declared", f"release:{rid}:core_feature_down"
        pd.fault_for(first, 503, delay_s=SLOW_S)

        alice.command(f"incident {VERSION} checkout answers 500")
        rb.fake.wait_for(lambda: requests_for(pd, first), timeout=10, interval=0.05)
        # While the first alert's attempt is still stuck in PagerDuty's slow errors, declare a second one.
        top = release_messages(rb.fake)[0]
        alice.click_button(CHANNEL, top, "incident-declare:core_feature_down")
        opened = rb.fake.wait_for_call("views.open")
        assert submit_view(alice, opened.params["view"], "login page is blank").status_code == 200

        rb.fake.wait_for(lambda: 202 in requests_for(pd, second), timeout=10, interval=0.05)
        # One queue would have sent it only after the first alert's attempt (two slow 503s) gave up.
        assert requests_for(pd, first) == [503], "the second alert waited behind the first one's retries"
        assert "login page is blank" in pd.incidents[second][0].summary

        # The first alert is retried until PagerDuty takes it, once.
        rb.fake.wait_for(lambda: len(requests_for(pd, first)) >= 3, timeout=20, interval=0.1)
        pd.fault_for(first, None)
        rb.fake.wait_for(lambda: pd.incidents.get(first), timeout=20, interval=0.1)
        assert len(pd.incidents[first]) == 1 and len(pd.incidents[second]) == 1
        assert set(requests_for(pd, first)) == {503, 202} and requests_for(pd, first).count(202) == 1
    finally:
        rb.stop()
        pager.close()
