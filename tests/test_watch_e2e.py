"""The metric watch end to end: signed Slack HTTP into the bot, the real Prometheus scraping the test exporter
every second, the fake PagerDuty over HTTPS and the fake Slack.

Each test watches its own ``service`` label, so the module's one Prometheus serves them all. The checklist is
the fast test checklist with the shipped PromQL shapes, a short rate window and sampling every second.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.adapters.pagerduty import PagerDutyPager
from bot.adapters.prometheus import DEFAULT_ERROR_RATE_QUERY, DEFAULT_P95_QUERY, render_query
from bot.checklist.loading import DEFAULT_CPU_QUERY
from bot.db.engine import make_session_factory
from bot.db.uow import SqlUnitOfWork
from bot.slack.gateway import ChannelPacer
from tests.conftest import FAST_CHECKLIST, RunningBot, make_settings, start_bot
from tests.fakes.pagerduty_api import FakePagerDuty
from tests.fakes.slack_api import FakeSlack, render_text
from tests.fakes.tls import TlsFiles, make_tls_files
from tests.prom.exporter import Exporter, Step
from tests.prom.harness import PrometheusServer, exporter, prometheus, wait_for_samples
from tests.slack_user import SlackUser, find_button, submit_view
from tests.test_release_start import CHANNEL, item_message, release_messages, wait_for_release

__all__ = ("exporter", "prometheus")  # the harness's fixtures, used by name below
pytestmark = pytest.mark.slow
ROUTING_KEY = "R0UTINGKEY0123456789abcdef012345"
WINDOW = "4s"
VERSION = "v1.4.0"


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("pd-tls"))


@pytest.fixture
def pd(tls: TlsFiles) -> Iterator[FakePagerDuty]:
    with FakePagerDuty(tls) as server:
        yield server


def checklist_for(tmp_path: Path, service: str, *, dry_run: bool = False, sample: str = "1s") -> Path:
    """The fast checklist watching ``service`` with the shipped query shapes over a short window."""
    text = FAST_CHECKLIST.read_text(encoding="utf-8")
    selector = f'service="{service}"'
    metrics = (
        "metrics:\n"
        f"  error_rate_query: '{render_query(DEFAULT_ERROR_RATE_QUERY, selector=selector, window=WINDOW)}'\n"
        f"  p95_query: '{render_query(DEFAULT_P95_QUERY, selector=selector, window=WINDOW)}'\n"
        f"  sample_interval: {sample}\n"
        "  consecutive_breaches: 2\n"
        "  no_data_warning_after: 3\n"
        "  baseline_window: 10s\n\n"
    )
    text = re.sub(r"metrics:\n(.*\n)*?\n", metrics, text)
    if dry_run:
        text = text.replace('threshold: "5%"}', 'threshold: "5%", dry_run: true}')
    path = tmp_path / f"checklist-{service}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@contextmanager
def watched_bot(
    db_url: str, fake: FakeSlack, pd: FakePagerDuty, tls: TlsFiles, prom: PrometheusServer, checklist: Path
) -> Iterator[RunningBot]:
    settings = make_settings(
        db_url,
        fake,
        checklist_path=str(checklist),
        prometheus_url=prom.url,
        pagerduty_routing_key=ROUTING_KEY,
        pagerduty_events_url=pd.url,
        pagerduty_ca_bundle=str(tls.ca_path),
    )
    # The real adapter, with the client's sleeps shortened: an outage costs milliseconds, not seconds.
    pager = PagerDutyPager(
        routing_key=ROUTING_KEY,
        events_url=pd.url,
        verify=str(tls.ca_path),
        sleep_timer=0.001,
        max_retries=2,
        timeout_s=3,
    )
    rb = start_bot(
        settings,
        fake,
        sync_interval_s=0.2,
        pacer=ChannelPacer(0.0),
        pager=pager,
        outbox_interval_s=0.5,
        outbox_backoff_s=(0.5, 2.0),
    )
    try:
        yield rb
    finally:
        rb.stop()
        pager.close()


def uow_of(rb: RunningBot) -> SqlUnitOfWork:
    return SqlUnitOfWork(make_session_factory(rb.bot.engine))


# --- driving a release --------------------------------------------------------------------------------


def step_of(rb: RunningBot) -> str:
    return str(rb.services.find(CHANNEL, VERSION).release.step)


def release_id(rb: RunningBot) -> int:
    return int(rb.services.find(CHANNEL, VERSION).release.id)


def tick_phase(rb: RunningBot, user: SlackUser, phase_key: str) -> None:
    for item in rb.services.checklist.phase(phase_key).items:
        user.click_item(CHANNEL, item_message(rb.fake, item.key), item.key, tick=True)
    keys = [i.key for i in rb.services.checklist.phase(phase_key).items]
    rb.fake.wait_for(lambda: all(rb.services.find(CHANNEL, VERSION).checked.get(k) for k in keys))


def header(rb: RunningBot) -> dict[str, Any]:
    """The header once Slack shows the current step."""
    current = step_of(rb)

    def shown() -> dict[str, Any] | None:
        message = release_messages(rb.fake)[0]
        values = [
            e.get("value", "") for b in message["blocks"] if b["type"] == "actions" for e in b["elements"]
        ]
        return message if any(f":{current}:" in v for v in values) else None

    return rb.fake.wait_for(shown)


def advance(rb: RunningBot, user: SlackUser, expect: str, *, timeout: float = 10) -> None:
    """Click the header's advance button until the release moves (a canary wait may still be running)."""

    def moved() -> bool:
        if step_of(rb) == expect or rb.services.find(CHANNEL, VERSION).release.status == expect:
            return True
        user.click_button(CHANNEL, header(rb), "release-advance")
        return False

    rb.fake.wait_for(moved, timeout=timeout, interval=0.5)


def force(rb: RunningBot, user: SlackUser, expect: str, reason: str = "checked the dashboards by hand") -> None:
    """Advance, and when a gate refuses, override it with a reason (the refusal's button, then the modal)."""
    before = len(rb.fake.responses())
    user.click_button(CHANNEL, header(rb), "release-advance")

    def outcome() -> dict[str, Any] | str | None:
        if step_of(rb) == expect:
            return "moved"
        return next(
            (r for r in rb.fake.responses()[before:] if "gate-override" in json.dumps(r.get("blocks") or [])),
            None,
        )

    refusal = rb.fake.wait_for(outcome, timeout=10)
    if refusal == "moved":
        return
    assert isinstance(refusal, dict)
    views = len(rb.fake.views)
    user.click_button(CHANNEL, {"ts": header(rb)["ts"], "blocks": refusal["blocks"]}, "gate-override")
    rb.fake.wait_for(lambda: len(rb.fake.views) > views)
    assert submit_view(user, list(rb.fake.views.values())[-1], reason).status_code == 200
    rb.fake.wait_for(lambda: step_of(rb) == expect, timeout=10)


def to_canary(rb: RunningBot, user: SlackUser) -> int:
    user.command(f"start {VERSION}")
    wait_for_release(rb.fake, 1 + len(rb.services.checklist.flow_phases))
    tick_phase(rb, user, "pre_deploy")
    advance(rb, user, "staging")
    tick_phase(rb, user, "staging")
    advance(rb, user, "production")
    advance(rb, user, "canary-10")
    return release_id(rb)


def thread_texts(rb: RunningBot) -> list[str]:
    top = release_messages(rb.fake)[0]
    return [
        m.get("text", "") + "\n" + render_text(m.get("blocks") or [])
        for m in rb.fake.thread(CHANNEL, top["ts"])
    ]


def pings(fake: FakeSlack) -> list[dict[str, Any]]:
    """Channel-level (not thread) messages that mention @here: the incident pings."""
    return [m for m in release_messages(fake) if "<!here>" in m.get("text", "")]


def accepted_triggers(pd: FakePagerDuty, key: str) -> int:
    return sum(
        1
        for r in pd.requests
        if r.status == 202
        and isinstance(r.body, dict)
        and r.body.get("dedup_key") == key
        and r.body.get("event_action") == "trigger"
    )


def incidents(pd: FakePagerDuty, key: str) -> list[Any]:
    with pd.lock:
        return list(pd.incidents.get(key, []))


def settle(rb: RunningBot, samples: int) -> None:
    """Let the watch take ``samples`` more samples (sampling is every second)."""
    rid = release_id(rb)
    with uow_of(rb) as uow:
        start = uow.watch.samples.count(rid)
    rb.fake.wait_for(lambda: _count(rb, rid) >= start + 2 * samples, timeout=samples * 2 + 10, interval=0.2)


def _count(rb: RunningBot, rid: int) -> int:
    with uow_of(rb) as uow:
        return int(uow.watch.samples.count(rid))


# --- the tests ------------------------------------------------------------------------------------------


def test_sustained_breach_pages_once_with_the_reason_ack_and_finish_resolve(
    db_url: str,
    fake_slack: FakeSlack,
    pd: FakePagerDuty,
    tls: TlsFiles,
    prometheus: PrometheusServer,
    exporter: Exporter,
    tmp_path: Path,
) -> None:
    service = f"breach-{db_url[:6]}"
    exporter.set(service, error_ratio=0.004, per_scrape=200, latencies=[(0.05, 1.0)])
    wait_for_samples(prometheus, service=service, scrapes=6)
    with watched_bot(db_url, fake_slack, pd, tls, prometheus, checklist_for(tmp_path, service)) as rb:
        alice = rb.user()
        rid = to_canary(rb, alice)
        rb.fake.wait_for(
            lambda: any("Normal p95 for this release" in t for t in thread_texts(rb)), timeout=10
        )
        settle(rb, 2)
        assert pd.incidents == {}

        exporter.set(service, error_ratio=0.2)
        key = f"release:{rid}:error_rate"
        rb.fake.wait_for(lambda: incidents(pd, key), timeout=20)
        settle(rb, 5)  # a sustained breach keeps breaching: still one page, one ping

        assert len(incidents(pd, key)) == 1
        assert accepted_triggers(pd, key) == 1
        trigger = incidents(pd, key)[0].events[0]
        summary = trigger["payload"]["summary"]
        assert VERSION in summary and "Error rate 5% or more" in summary and "threshold 5.00 %" in summary
        assert trigger["payload"]["severity"] == "critical"
        details = trigger["payload"]["custom_details"]
        assert details["value"] >= 0.05 and details["threshold"] == 0.05
        assert (
            details["baseline_p95_s"] > 0 and details["stage"] == "canary-10" and details["window"] == WINDOW
        )
        assert details["breaches_in_row"] == 2 and len(details["trend"]) >= 2
        assert details["slack_thread"].startswith("https://slack.com/archives/C0RELEASES/p")

        [ping] = pings(rb.fake)
        shown = ping["text"] + render_text(ping["blocks"])
        assert "On-call has been paged" in shown
        assert "<@U0TECHLEAD>" in shown and "<!subteam^S0DEVOPS01>" in shown
        assert "*Error rate*" in shown and "threshold 5.00 %" in shown and "*Baseline p95*" in shown
        assert "*Window* 4 s rate" in shown and "*Recent trend*" in shown
        assert {e["action_id"] for b in ping["blocks"] if b["type"] == "actions" for e in b["elements"]} == {
            "release-rollback",
            "release-rolled-back-by-hand",
            "incident-ack",
            "incident-dismiss",
        }
        assert find_button(ping, "release-rollback")[1]["value"] == str(rid)

        # Acknowledge in Slack → acknowledged in PagerDuty, and the message says who.
        assert alice.click_button(CHANNEL, ping, "incident-ack").status_code == 200
        rb.fake.wait_for(lambda: incidents(pd, key)[0].status == "acknowledged", timeout=10)
        rb.fake.wait_for(lambda: "Acknowledged by <@U061F7AUR>" in render_text(pings(rb.fake)[0]["blocks"]))

        # Finish the release → the incident is resolved in PagerDuty.
        # The stages' own windows saw the errors: the gate holds them, so each move is a manager's override.
        exporter.set(service, error_ratio=0.0)
        force(rb, alice, "canary-50")
        force(rb, alice, "canary-100")
        tick_phase(rb, alice, "production")
        force(rb, alice, "post_deploy")
        tick_phase(rb, alice, "post_deploy")
        advance(rb, alice, "finished")
        rb.fake.wait_for(lambda: incidents(pd, key)[0].status == "resolved", timeout=10)
        assert len(incidents(pd, key)) == 1
        changes = [c["payload"]["summary"] for c in pd.change_events]
        assert f"backend {VERSION}: canary started at 10%" in changes
        assert f"backend {VERSION}: canary at 50%" in changes
        rb.fake.wait_for(
            lambda: (
                f"backend {VERSION}: release finished" in [c["payload"]["summary"] for c in pd.change_events]
            )
        )
        assert len(pings(rb.fake)) == 1


def test_flapping_pages_at_most_once_and_no_data_warns_blind_once(
    db_url: str,
    fake_slack: FakeSlack,
    pd: FakePagerDuty,
    tls: TlsFiles,
    prometheus: PrometheusServer,
    exporter: Exporter,
    tmp_path: Path,
) -> None:
    service = f"calm-{db_url[:6]}"
    exporter.set(service, error_ratio=0.0, per_scrape=200)
    wait_for_samples(prometheus, service=service, scrapes=6)
    with watched_bot(db_url, fake_slack, pd, tls, prometheus, checklist_for(tmp_path, service)) as rb:
        alice = rb.user()
        rid = to_canary(rb, alice)
        settle(rb, 2)
        # Flapping around the threshold: breaching for about one sample at a time, for twelve seconds.
        stop = threading.Event()

        def flap() -> None:
            high = False
            while not stop.wait(1.0):
                high = not high
                exporter.set(service, error_ratio=0.09 if high else 0.0)

        flapper = threading.Thread(target=flap, daemon=True)
        flapper.start()
        settle(rb, 12)
        stop.set()
        flapper.join()
        exporter.set(service, error_ratio=0.0)
        # "At most once": with a 4 s window flapping may look sustained to the judge, never twice.
        assert accepted_triggers(pd, f"release:{rid}:error_rate") <= 1
        assert len(pings(rb.fake)) <= 1

        # Silence: no traffic at all makes every figure NaN. Blind is said once, nobody is paged for it.
        before = len(pd.requests)
        exporter.set(service, per_scrape=0)
        rb.fake.wait_for(lambda: any("I am blind" in t for t in thread_texts(rb)), timeout=25)
        settle(rb, 4)
        blind = [t for t in thread_texts(rb) if "I am blind" in t]
        assert len(blind) == 1 and "NaN: no traffic in the window" in blind[0]
        assert [r.body.get("event_action") for r in pd.requests[before:] if isinstance(r.body, dict)] == []
        # The gate is judged over the whole stage: the flapping errors count even though the last samples are
        # empty, and a silent minute never makes it pass.
        shown = rb.bot.extras["watch"].figures(rid)
        assert shown["verdict"] == "breach" and ":x: Whole window: error rate" in shown["text"], shown
        exporter.set(service, per_scrape=200)


def test_single_blips_are_seen_but_never_page(
    db_url: str,
    fake_slack: FakeSlack,
    pd: FakePagerDuty,
    tls: TlsFiles,
    prometheus: PrometheusServer,
    exporter: Exporter,
    tmp_path: Path,
) -> None:
    service = f"blip-{db_url[:6]}"
    exporter.set(service, error_ratio=0.0, per_scrape=200)
    wait_for_samples(prometheus, service=service, scrapes=6)
    # Sampling every 2 s: a blip Prometheus shows for one 1 s scrape can reach one sample, never two.
    with watched_bot(
        db_url, fake_slack, pd, tls, prometheus, checklist_for(tmp_path, service, sample="2s")
    ) as rb:
        rid = to_canary(rb, rb.user())
        settle(rb, 1)
        for _ in range(8):
            # A burst of errors drowned by a surge of good traffic on the next scrape (tests/prom/exporter.py).
            burst = 200.0 * 4
            exporter.script(service, [Step(ok=0, errors=burst), Step(ok=100 * burst, errors=0)])
            time.sleep(5)
        settle(rb, 2)
        with uow_of(rb) as uow:
            breaches = [s for s in uow.watch.samples.latest(rid, "error_rate", 100) if s.verdict == "breach"]
        assert breaches, "no sample saw a blip: the test proved nothing"
        assert incidents(pd, f"release:{rid}:error_rate") == []
        assert pings(rb.fake) == []


def test_dry_run_reports_in_the_thread_and_never_pages(
    db_url: str,
    fake_slack: FakeSlack,
    pd: FakePagerDuty,
    tls: TlsFiles,
    prometheus: PrometheusServer,
    exporter: Exporter,
    tmp_path: Path,
) -> None:
    service = f"dry-{db_url[:6]}"
    exporter.set(service, error_ratio=0.0, per_scrape=200)
    wait_for_samples(prometheus, service=service, scrapes=6)
    with watched_bot(
        db_url, fake_slack, pd, tls, prometheus, checklist_for(tmp_path, service, dry_run=True)
    ) as rb:
        rid = to_canary(rb, rb.user())
        exporter.set(service, error_ratio=0.3)
        rb.fake.wait_for(lambda: any("Dry run" in t for t in thread_texts(rb)), timeout=20)
        settle(rb, 3)
        [note] = [t for t in thread_texts(rb) if "Dry run" in t]
        assert "*Error rate 5% or more* would have paged" in note and "≥ 5.00 %" in note
        assert incidents(pd, f"release:{rid}:error_rate") == []
        assert pings(rb.fake) == []
        exporter.set(service, error_ratio=0.0)


def test_pagerduty_outage_during_a_breach_ends_in_one_incident_after_a_restart(
    db_url: str,
    fake_slack: FakeSlack,
    pd: FakePagerDuty,
    tls: TlsFiles,
    prometheus: PrometheusServer,
    exporter: Exporter,
    tmp_path: Path,
) -> None:
    service = f"outage-{db_url[:6]}"
    exporter.set(service, error_ratio=0.0, per_scrape=200)
    wait_for_samples(prometheus, service=service, scrapes=6)
    checklist = checklist_for(tmp_path, service)
    pd.go_down()
    with watched_bot(db_url, fake_slack, pd, tls, prometheus, checklist) as rb:
        rid = to_canary(rb, rb.user())
        key = f"release:{rid}:error_rate"
        exporter.set(service, error_ratio=0.2)
        rb.fake.wait_for(lambda: pings(rb.fake), timeout=20)

        def tried() -> bool:
            with uow_of(rb) as uow:
                return any(r.attempts >= 2 and r.action == "trigger" for r in uow.watch.outbox.all(rid))

        rb.fake.wait_for(tried, timeout=15, interval=0.2)
    pd.come_back()
    with watched_bot(db_url, fake_slack, pd, tls, prometheus, checklist) as rb:
        rb.fake.wait_for(lambda: incidents(pd, key), timeout=15)
        settle(rb, 4)
        assert len(incidents(pd, key)) == 1
        assert accepted_triggers(pd, key) == 1
        assert len(pings(rb.fake)) == 1
        with uow_of(rb) as uow:
            audit = [e.action for e in uow.audit.for_release(rid)]
        assert audit.count("incident_opened") == 1 and "pagerduty_delivered" in audit
    exporter.set(service, error_ratio=0.0)


def test_people_declare_incidents_from_the_header_and_the_command_once_each(
    db_url: str,
    fake_slack: FakeSlack,
    pd: FakePagerDuty,
    tls: TlsFiles,
    prometheus: PrometheusServer,
    exporter: Exporter,
    tmp_path: Path,
) -> None:
    service = f"human-{db_url[:6]}"
    exporter.set(service, error_ratio=0.0, per_scrape=200)
    with watched_bot(db_url, fake_slack, pd, tls, prometheus, checklist_for(tmp_path, service)) as rb:
        alice = rb.user()
        alice.command(f"start {VERSION}")
        wait_for_release(rb.fake, 1 + len(rb.services.checklist.flow_phases))
        rid = release_id(rb)

        response = alice.command(f"incident {VERSION} checkout answers 500 for everyone")
        assert response.status_code == 200 and "Declaring an incident" in response.json()["text"]
        key = f"release:{rid}:declared"
        rb.fake.wait_for(lambda: incidents(pd, key), timeout=10)
        summary = incidents(pd, key)[0].summary
        assert "declared by alice: checkout answers 500 for everyone" in summary
        rb.fake.wait_for(lambda: pings(rb.fake))
        assert "checkout answers 500 for everyone" in render_text(pings(rb.fake)[0]["blocks"])
        alice.command(f"incident {VERSION} still broken", response_name="again")
        answer = rb.fake.wait_for(lambda: rb.fake.responses("again"))[0]
        assert "already declared" in answer["text"] and answer["response_type"] == "ephemeral"

        # The header's "Core feature down" button opens a reason modal; submitting it pages once.
        top = header(rb)
        _, button = find_button(top, "incident-declare:core_feature_down")
        assert "Core feature down" in button["text"]["text"]
        alice.click_button(CHANNEL, top, "incident-declare:core_feature_down")
        opened = rb.fake.wait_for_call("views.open")
        assert submit_view(alice, opened.params["view"], "login page is blank").status_code == 200
        core = f"release:{rid}:core_feature_down"
        rb.fake.wait_for(lambda: incidents(pd, core), timeout=10)
        assert "login page is blank" in incidents(pd, core)[0].summary
        rb.fake.wait_for(lambda: len(pings(rb.fake)) == 2)
        assert accepted_triggers(pd, key) == 1 and accepted_triggers(pd, core) == 1
        with uow_of(rb) as uow:
            opened_events = [e for e in uow.audit.for_release(rid) if e.action == "incident_opened"]
        assert [(e.actor.id, e.details["criterion"]) for e in opened_events] == [
            ("U061F7AUR", "declared"),
            ("U061F7AUR", "core_feature_down"),
        ]


def test_the_post_deploy_watch_lasts_its_time_then_reports_its_summary_and_stops(
    db_url: str,
    fake_slack: FakeSlack,
    pd: FakePagerDuty,
    tls: TlsFiles,
    prometheus: PrometheusServer,
    exporter: Exporter,
    tmp_path: Path,
) -> None:
    """Seed 4.2 "모니터링 (30분)", with 10 s for 30 minutes: finishing early is refused (an override with a reason
    is offered), the watch samples only inside the window, then says what it saw once and stops."""
    service = f"watchend-{db_url[:6]}"
    exporter.set(service, error_ratio=0.004, per_scrape=200, latencies=[(0.05, 1.0)])
    wait_for_samples(prometheus, service=service, scrapes=6)
    checklist = checklist_for(tmp_path, service)
    checklist.write_text(
        checklist.read_text(encoding="utf-8").replace("post_deploy_watch: 3s", "post_deploy_watch: 10s"),
        encoding="utf-8",
    )
    with watched_bot(db_url, fake_slack, pd, tls, prometheus, checklist) as rb:
        alice = rb.user()
        rid = to_canary(rb, alice)
        advance(rb, alice, "canary-50")
        advance(rb, alice, "canary-100")
        tick_phase(rb, alice, "production")
        advance(rb, alice, "post_deploy")
        tick_phase(rb, alice, "post_deploy")

        alice.click_button(CHANNEL, header(rb), "release-advance")
        refusal = rb.fake.wait_for(
            lambda: [r for r in rb.fake.responses() if "post-deploy watch is not over" in r.get("text", "")]
        )[-1]
        assert find_button({"blocks": refusal["blocks"]}, "gate-override")
        assert step_of(rb) == "post_deploy"

        def summary() -> str | None:
            return next((t for t in thread_texts(rb) if "post-deploy watch's 10 seconds are over" in t), None)

        note = rb.fake.wait_for(summary, timeout=30)
        assert "the metric watch and its paging have stopped" in note
        assert re.search(r":white_check_mark: Whole window: error rate 0\.[34]\d % · P95 \d+ ms", note), note
        assert "samples over a line" in note
        assert "Incidents during the watch: 0" in note
        started = rb.services.view(rid).release.step_started_at
        end = started + timedelta(seconds=10)
        settle_s = time.monotonic() + 3
        rb.fake.wait_for(lambda: time.monotonic() > settle_s, timeout=5, interval=0.5)
        with uow_of(rb) as uow:
            inside = uow.watch.samples.between(rid, started, end)
            after = uow.watch.samples.between(rid, end + timedelta(milliseconds=1), end + timedelta(hours=1))
            closed = [e for e in uow.audit.for_release(rid) if e.action == "watch_window_closed"]
        assert inside and after == []
        assert len(closed) == 1 and closed[0].details["verdict"] == "pass"
        assert closed[0].details["samples"] >= 3 and closed[0].details["breached"] == 0
        assert sum(1 for t in thread_texts(rb) if "seconds are over" in t) == 1

        # The time is up: finishing needs no override now.
        advance(rb, alice, "finished")
        with uow_of(rb) as uow:
            overrides = [e for e in uow.audit.for_release(rid) if e.action == "gate_overridden"]
        assert overrides == []


def _gate_line(rb: RunningBot) -> str:
    """The header's "gate over this stage" line as Slack shows it now ('' when there is none)."""
    message = release_messages(rb.fake)[0]
    return next((line for line in render_text(message["blocks"]).splitlines() if "Gate over this stage" in line), "")


def _header_gate_updates(rb: RunningBot) -> list[str]:
    """Every gate line the bot sent in a redraw of the header (chat.update, or through a click's response_url)."""
    top = release_messages(rb.fake)[0]["ts"]
    lines = []
    for call in rb.fake.redraws(top):
        blocks = call.params.get("blocks")
        text = render_text(json.loads(blocks) if isinstance(blocks, str) else blocks or [])
        lines += [line for line in text.splitlines() if "Gate over this stage" in line]
    return lines


def test_the_gate_is_judged_over_the_whole_stage_live_on_the_header_and_failing_it_takes_an_override(
    db_url: str,
    fake_slack: FakeSlack,
    pd: FakePagerDuty,
    tls: TlsFiles,
    prometheus: PrometheusServer,
    exporter: Exporter,
    tmp_path: Path,
) -> None:
    """Seed 3.3 (error rate < 1 %, P95 < 200 ms during the deploy): the header follows the stage's own figures
    sample by sample; leaving a stage whose window fails is refused, and a manager's override with a reason
    (강제 진행) moves it on, audited with the figures; the 100 % stage is observed before it is judged."""
    service = f"gate-{db_url[:6]}"
    # No errors at first: a window of a few seconds holds a handful of error counts, too few for a steady ratio.
    exporter.set(service, error_ratio=0.0, per_scrape=200, latencies=[(0.05, 1.0)])
    wait_for_samples(prometheus, service=service, scrapes=6)
    checklist = checklist_for(tmp_path, service)
    checklist.write_text(
        checklist.read_text(encoding="utf-8").replace("min_observation: 1s", "min_observation: 8s"),
        encoding="utf-8",
    )
    with watched_bot(db_url, fake_slack, pd, tls, prometheus, checklist) as rb:
        alice = rb.user()
        rid = to_canary(rb, alice)
        rb.fake.wait_for(lambda: ":white_check_mark: Whole window" in _gate_line(rb), timeout=15)
        assert re.search(r"error rate 0\.00 % · P95 \d+ ms .*0 of \d+ samples over a line", _gate_line(rb))

        # 3 % errors: over the gate's 1 %, under the 5 % that pages. The stage's own ratio climbs over the line.
        exporter.set(service, error_ratio=0.03)
        rb.fake.wait_for(lambda: ":x: Whole window" in _gate_line(rb), timeout=20)
        updates = _header_gate_updates(rb)
        assert len(set(updates)) >= 3, updates  # redrawn as samples arrived, not once at the end
        assert pd.incidents == {}
        rb.fake.wait_for(lambda: any("wait of *Canary 10%* is over" in t for t in thread_texts(rb)), timeout=10)

        alice.click_button(CHANNEL, header(rb), "release-advance")
        refusal = rb.fake.wait_for(
            lambda: [r for r in rb.fake.responses() if "monitoring gate over this whole stage" in r.get("text", "")]
        )[-1]
        assert ":x: Whole window: error rate" in refusal["text"]
        assert step_of(rb) == "canary-10"

        alice.click_button(CHANNEL, {"ts": header(rb)["ts"], "blocks": refusal["blocks"]}, "gate-override")
        modal = rb.fake.wait_for(lambda: [v for v in rb.fake.views.values() if v["callback_id"] == "override-modal"])[-1]
        assert submit_view(alice, modal, "3 % is the known batch job; checked with the owners").status_code == 200
        rb.fake.wait_for(lambda: step_of(rb) == "canary-50", timeout=10)
        with uow_of(rb) as uow:
            [override] = [e for e in uow.audit.for_release(rid) if e.action == "gate_overridden"]
        assert override.details["gates"] == ["monitoring"]
        assert override.details["monitoring"]["verdict"] == "breach"
        assert override.details["monitoring"]["error_rate"] >= 0.01
        assert override.details["reason"].startswith("3 % is the known batch job")

        # Healthy again: canary-50's own window passes, and it moves on without an override.
        exporter.set(service, error_ratio=0.0)
        rb.fake.wait_for(lambda: ":white_check_mark: Whole window" in _gate_line(rb), timeout=25)
        advance(rb, alice, "canary-100")
        tick_phase(rb, alice, "production")
        # The 100 % stage has no wait: it is observed (8 s here, 5 minutes shipped) before the gate judges it.
        alice.click_button(CHANNEL, header(rb), "release-advance")
        observing = rb.fake.wait_for(
            lambda: [r for r in rb.fake.responses() if "no wait of its own" in r.get("text", "")]
        )[-1]
        assert "observed for 8 s before" in observing["text"] and step_of(rb) == "canary-100"
        advance(rb, alice, "post_deploy", timeout=20)
        with uow_of(rb) as uow:
            overrides = [e for e in uow.audit.for_release(rid) if e.action == "gate_overridden"]
        assert len(overrides) == 1


def test_at_100_percent_cpu_and_memory_are_read_and_shown_beside_the_33_item(
    db_url: str,
    fake_slack: FakeSlack,
    pd: FakePagerDuty,
    tls: TlsFiles,
    prometheus: PrometheusServer,
    exporter: Exporter,
    tmp_path: Path,
) -> None:
    """Seed 3.2 "100% → 전체 메트릭": CPU and memory against their limits from cAdvisor and kube-state-metrics
    (the default queries for the rollback target), read at 100 % traffic only, shown beside the item's box."""
    service = f"res-{db_url[:6]}"
    namespace = f"res-{db_url[:6]}"
    exporter.set(service, error_ratio=0.0, per_scrape=200, latencies=[(0.05, 1.0)])
    pods = {"cpu_limit": 0.5, "memory_limit": 1e9}
    exporter.set_pod(namespace, "backend-7d9f-a1", "backend", cpu_cores=0.25, memory_bytes=3e8, **pods)
    exporter.set_pod(namespace, "backend-7d9f-b2", "backend", cpu_cores=0.1, memory_bytes=2e8, **pods)
    wait_for_samples(prometheus, service=service, scrapes=6)
    checklist = checklist_for(tmp_path, service)
    text = checklist.read_text(encoding="utf-8").replace("test-prod", namespace)
    # The shipped default shapes, with a rate window the test's young counters fill (5m in production).
    cpu = DEFAULT_CPU_QUERY.format(namespace=namespace, container="backend").replace("[5m]", "[5s]")
    extra = f"  resource_item: error_rate_ok\n  cpu_query: '{cpu}'\n"
    text = text.replace("  baseline_window: 10s\n", "  baseline_window: 10s\n" + extra)
    checklist.write_text(text, encoding="utf-8")

    def item_text() -> str:
        production = next(m for m in release_messages(rb.fake) if "3.3 Monitoring during the deploy" in str(m))
        return render_text(production["blocks"])

    with watched_bot(db_url, fake_slack, pd, tls, prometheus, checklist) as rb:
        alice = rb.user()
        rid = to_canary(rb, alice)
        advance(rb, alice, "canary-50")
        with uow_of(rb) as uow:
            assert uow.watch.samples.latest(rid, "cpu") == []  # not read below 100 %
        assert "Measured at 100 %" not in item_text()
        advance(rb, alice, "canary-100")
        shown = rb.fake.wait_for(
            lambda: re.search(r"Measured at 100 %: CPU (\d+) % · memory (\d+) % of their limits", item_text()),
            timeout=15,
        )
        # The busiest pod: CPU 0.25 of 0.5 cores, memory 300 of 1000 MB. rate() over a 5 s window of a counter
        # scraped every second extrapolates from the samples it has, so a late scrape moves CPU by a few points.
        assert 45 <= int(shown.group(1)) <= 55 and shown.group(2) == "30", shown.group(0)
        assert ":warning:" not in item_text()

        exporter.set_pod(namespace, "backend-7d9f-a1", "backend", cpu_cores=0.25, memory_bytes=9e8, **pods)
        rb.fake.wait_for(lambda: "memory :warning: 90 %" in item_text(), timeout=15)
        with uow_of(rb) as uow:
            [memory] = uow.watch.samples.latest(rid, "memory")
        assert memory.verdict == "breach" and memory.value == pytest.approx(0.9)
