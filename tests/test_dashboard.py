"""The App Home tab and the release report: limits, the signed Events API path, the thread summary and the
uploaded Markdown file."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from bot.checklist.loading import load_checklist
from bot.domain.incident import IncidentRecord, IncidentStatus
from bot.domain.records import Actor, ReleaseRecord
from bot.domain.release import plan_steps
from bot.i18n import t
from bot.slack.alerts import render_alert
from bot.slack.gateway import ChannelPacer
from bot.slack.home import MAX_BLOCKS, MAX_BYTES, HomeData, render_home
from bot.usecases.releases import ReleaseView
from tests.conftest import FAST_CHECKLIST, RunningBot, make_settings, start_bot
from tests.fakes.slack_api import FakeSlack, render_text
from tests.slack_user import TEAM, SlackUser
from tests.test_lifecycle import CHANNEL, advance, start, step_of, thread, tick_phase, to_canary
from tests.test_release_start import export

T0 = datetime(2025, 6, 1, 9, 0, tzinfo=UTC)


def _view(n: int, *, status: str = "active", step: str = "canary-10", long: bool = False) -> ReleaseView:
    checklist = load_checklist(FAST_CHECKLIST)
    record = ReleaseRecord(
        id=n,
        version=f"v1.{n}.0-" + ("x" * 50 if long else "rc"),
        channel_id="C0RELEASES",
        service="backend",
        checklist_name="fast",
        status=status,
        step=step,
        step_started_at=T0,
        step_started_by="U1",
        started_by=Actor("U061F7AUR", "alice"),
        started_at=T0,
        ended_at=None if status == "active" else T0 + timedelta(minutes=42, seconds=7),
        thread_ts=f"17180400{n:02d}.000100",
        baseline_p95_s=None,
        last_activity_at=T0,
    )
    return ReleaseView(record, checklist, plan_steps(checklist), {}, ())


def test_home_view_fits_slacks_limits_however_many_releases() -> None:
    active = tuple((_view(n, long=True), ()) for n in range(1, 41))
    recent = tuple(_view(100 + n, status="finished", step="finished") for n in range(12))
    view = render_home(HomeData(active=active, recent=recent, now=T0 + timedelta(hours=1)), "en")
    blocks = view["blocks"]
    assert view["type"] == "home"
    assert len(blocks) <= MAX_BLOCKS
    assert len(json.dumps(view).encode()) <= MAX_BYTES
    text = render_text(blocks)
    assert "more in progress" in text  # the releases that did not fit are counted, not silently dropped
    assert "Last 10 releases" in text
    assert text.count("took 42m 07s") == 10
    urls = [b["accessory"]["url"] for b in blocks if b.get("accessory", {}).get("type") == "button"]
    assert "https://slack.com/archives/C0RELEASES/p1718040001000100" in urls
    action_ids = [b["accessory"]["action_id"] for b in blocks if "accessory" in b]
    assert len(action_ids) == len(set(action_ids))  # Slack refuses a view with repeated action ids


def test_home_view_shows_progress_checklist_and_reminder_of_an_active_release() -> None:
    view = render_home(HomeData(active=((_view(1), ()),), recent=(), now=T0), "en")
    text = render_text(view["blocks"])
    assert "*v1.1.0-rc*" in text and "Canary 10%" in text
    assert "1. Before deploying 0/2" in text
    assert "No reminder pending" in text
    assert "No release has ended yet." in text


def _declared(lang: str = "en", status: IncidentStatus = IncidentStatus.OPEN) -> IncidentRecord:
    return IncidentRecord(
        id=7,
        release_id=1,
        criterion="declared",
        dedup_key="release:1:declared",
        status=status,
        declared_by="U061F7AUR",
        declared_by_name="alice",
        reason="checkout is down",
        value=None,
        threshold=None,
        baseline_p95_s=None,
        stage="canary-10",
        fire_count=1,
        channel_id="C0RELEASES",
        slack_ts="1718040001.000200",
        details={"kind": "manual", "title": t(lang, "declared_title"), "stage": "canary-10"},
        created_at=T0,
        updated_at=T0,
    )


@pytest.mark.parametrize(
    ("lang", "line"),
    [("en", "*Incident declared* (open) since"), ("ko", "*인시던트 선언* (미확인)")],
)
def test_home_names_an_incident_once_with_its_state_in_the_readers_language(lang: str, line: str) -> None:
    view = render_home(HomeData(active=((_view(1), (_declared(lang),)),), recent=(), now=T0), lang)
    text = render_text(view["blocks"])
    assert line in text
    assert "Incident *Incident" not in text and "(open)" not in text.replace("(open) since", "")


def test_the_incident_ping_says_nobody_was_paged_when_no_pagerduty_is_set_up() -> None:
    incident = _declared()
    paged, _ = render_alert(_view(1), incident, "en")
    unpaged, _ = render_alert(_view(1), incident, "en", paged=False)
    assert "On-call has been paged" in paged
    assert unpaged == "<!here> v1.1.0-rc: Incident declared. Nobody was paged (PagerDuty is not set up)."
    _, blocks = render_alert(_view(1), _declared("ko"), "ko", paged=False)
    assert "PagerDuty가 설정되어 있지 않아 온콜을 호출하지 않았습니다." in render_text(blocks)


@pytest.fixture
def homely(db_url: str, fake_slack: FakeSlack) -> Iterator[RunningBot]:
    settings = make_settings(db_url, fake_slack)
    rb = start_bot(settings, fake_slack, sync_interval_s=0.2, pacer=ChannelPacer(0.0), home_interval_s=0.3)
    try:
        yield rb
    finally:
        rb.stop()


def open_home(user: SlackUser) -> int:
    body = json.dumps(
        {
            "token": "legacy",
            "team_id": TEAM["id"],
            "api_app_id": "A0RELEASE1",
            "type": "event_callback",
            "event_id": f"Ev{time.monotonic_ns()}",
            "event_time": int(time.time()),
            "event": {
                "type": "app_home_opened",
                "user": user.user_id,
                "channel": "D0HOME0001",
                "tab": "home",
            },
        }
    )
    return user.post(body, content_type="application/json").status_code


def test_opening_home_publishes_it_and_it_follows_the_release(homely: RunningBot) -> None:
    alice = homely.user()
    homely.fake.set_members(CHANNEL, [alice.user_id])  # the tab lists releases of the viewer's channels
    start(homely, alice)
    assert open_home(alice) == 200
    first = homely.fake.wait_for(lambda: homely.fake.home_views.get(alice.user_id))
    assert "v1.4.0" in render_text(first["blocks"]) and "Before deploying" in render_text(first["blocks"])

    # A forged event (bad signature) publishes nothing.
    bob = homely.user("U0BOB00002", "bob")
    body = json.dumps({"type": "event_callback", "event": {"type": "app_home_opened", "user": bob.user_id}})
    assert bob.post(body, content_type="application/json", secret="wrong").status_code == 401

    tick_phase(homely, alice, "pre_deploy")
    advance(homely, alice, "staging")
    # The lifecycle hook re-publishes for the person who looked at Home, without them reopening it.
    moved = homely.fake.wait_for(
        lambda: (
            (v := homely.fake.home_views.get(alice.user_id))
            and "*Now:* 2. Staging" in render_text(v["blocks"])
            and v
        )
    )
    assert "1. Before deploying 2/2" in render_text(moved["blocks"])
    assert bob.user_id not in homely.fake.home_views


def test_finished_release_gets_a_summary_and_report_uploads_the_export(
    homely: RunningBot, db_url: str
) -> None:
    alice = homely.user()
    start(homely, alice)
    to_canary(homely, alice)
    homely.fake.wait_for(
        lambda: [m for m in thread(homely.fake) if "wait of *Canary 10%*" in m.get("text", "")], timeout=8
    )
    advance(homely, alice, "canary-50")
    homely.fake.wait_for(
        lambda: [m for m in thread(homely.fake) if "wait of *Canary 50%*" in m.get("text", "")], timeout=8
    )
    advance(homely, alice, "canary-100")
    tick_phase(homely, alice, "production")
    advance(homely, alice, "post_deploy")
    tick_phase(homely, alice, "post_deploy")
    homely.fake.wait_for(
        lambda: [m for m in thread(homely.fake) if "watch is over" in m.get("text", "")], timeout=8
    )
    advance(homely, alice, "finished")
    assert step_of(homely) == "finished"

    summary = homely.fake.wait_for(
        lambda: [m for m in thread(homely.fake) if m.get("text") == "Release v1.4.0 report"]
    )[0]
    shown = render_text(summary["blocks"])
    assert "finished after" in shown
    assert "Time per phase" in shown and "Canary 10%" not in shown and "canary-10" in shown
    assert "alice: started the release, ticked 6 item(s), moved it on 6 time(s), finished it" in shown
    assert "◦ canary-10: 2s" in shown or "◦ canary-10: 3s" in shown  # the 2 s wait, to the second
    assert "1. Before deploying 2/2" in shown and "4. After deploying 2/2" in shown
    assert len(summary["blocks"]) <= 50 and all(len(json.dumps(b)) < 3500 for b in summary["blocks"])

    answer = alice.command("report v1.4.0")
    assert answer.status_code == 200 and "Uploading the report" in answer.json()["text"]
    uploaded = homely.fake.wait_for(lambda: [f for f in homely.fake.files.values() if f.completed])[0]
    assert uploaded.filename == "release-v1.4.0.md"
    assert uploaded.channel == CHANNEL and uploaded.thread_ts == summary["thread_ts"]
    assert uploaded.data is not None
    report = uploaded.data.decode("utf-8")
    assert "## Durations" in report and "| canary-10 |" in report and "## Who did what" in report
    assert "## Overrides\n\n- none" in report
    # The CLI prints the very same report.
    printed = export(db_url, "v1.4.0", "md")
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout.rstrip("\n") == report.rstrip("\n")


def test_report_of_an_unknown_version_is_answered_privately(homely: RunningBot) -> None:
    answer = homely.user().command("report v9.9.9")
    assert answer.status_code == 200
    assert "v9.9.9" in answer.json()["text"]
    assert not homely.fake.files


def test_home_publishes_keep_the_workspace_pace_with_many_viewers(db_url: str, fake_slack: FakeSlack) -> None:
    """views.publish is Tier 4 for the whole workspace. Forty people with the tab open and a release that moves:
    every tab is redrawn, none refused. The fake holds views.publish to 600 a minute with a burst of 3 (Slack's
    floor scaled so the test takes seconds) and the bot paces itself at 480."""
    fake_slack.enforce_tiers({"views.publish": (600, 3)})
    settings = make_settings(db_url, fake_slack)
    rb = start_bot(
        settings, fake_slack, sync_interval_s=0.2, pacer=ChannelPacer(0.0), home_interval_s=0.3, home_per_minute=480
    )
    try:
        people = [rb.user(f"U0VIEW{n:04d}", f"viewer{n}") for n in range(40)]
        fake_slack.set_members(CHANNEL, [p.user_id for p in people])
        start(rb, people[0])
        for person in people:
            assert open_home(person) == 200
        rb.fake.wait_for(lambda: len(rb.fake.home_views) == 40, timeout=30)
        tick_phase(rb, people[0], "pre_deploy")
        advance(rb, people[0], "staging")  # every viewer's tab is redrawn
        rb.fake.wait_for(
            lambda: all("*Now:* 2. Staging" in render_text(v["blocks"]) for v in rb.fake.home_views.values()),
            timeout=30,
        )
        assert fake_slack.rate_limited().get("views.publish", 0) == 0
    finally:
        rb.stop()

