"""Timers survive kill -9 and restarts, and fire exactly once with several bot processes on one Postgres."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from tests.conftest import FAST_CHECKLIST, PG_URL, postgres_available, reset_postgres
from tests.fakes.slack_api import FakeSlack, render_text
from tests.proc import BotProcess, bot_env
from tests.slack_user import SlackUser, find_button
from tests.test_release_start import CHANNEL, export, item_message, release_messages

pytestmark = pytest.mark.slow


def _postgres() -> str:
    reason = postgres_available()
    if reason is not None:
        pytest.skip(reason)
    reset_postgres()
    return PG_URL


def _user(bot: BotProcess, fake: FakeSlack, http: httpx.Client) -> SlackUser:
    return SlackUser(bot.url, "U061F7AUR", "alice", fake, http)


def _walk_to_canary(user: SlackUser, fake: FakeSlack, db_url: str) -> None:
    """Start a release and move it to canary 10 % (a 2 s wait in the fast checklist)."""
    user.command("start v1.4.0")
    fake.wait_for(lambda: len(release_messages(fake)) >= 5, timeout=15)
    for key in ("pre_deploy.checks.tests_pass", "pre_deploy.checks.reviewed", "staging.verify.healthy"):
        user.click_item(CHANNEL, item_message(fake, key), key, tick=True)
    for expected in ("staging", "production", "canary-10"):
        _click_advance(user, fake, db_url, expected)


def _step(db_url: str) -> str:
    engine = sa.create_engine(db_url, poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        step = conn.execute(sa.text("SELECT step FROM releases WHERE version = 'v1.4.0'")).scalar()
    engine.dispose()
    return str(step)


def _click_advance(user: SlackUser, fake: FakeSlack, db_url: str, expected: str) -> None:
    def ready() -> dict | None:
        message = release_messages(fake)[0]
        _, button = find_button(message, "release-advance")
        return message if button["value"].endswith(f":{expected}") else None

    # Ticks are recorded asynchronously from Slack's point of view: retry until the gate lets us through.
    deadline = time.monotonic() + 15
    while _step(db_url) != expected:
        assert time.monotonic() < deadline, f"release never reached {expected}"
        user.click_button(CHANNEL, fake.wait_for(ready, timeout=10), "release-advance")
        time.sleep(0.3)


def _reminders(fake: FakeSlack) -> list[dict]:
    header = release_messages(fake)[0]
    return [m for m in fake.thread(CHANNEL, header["ts"]) if "wait of *Canary 10%*" in m.get("text", "")]


def test_kill9_before_the_due_time_then_restart_after_it(tmp_path: Path, fake_slack: FakeSlack) -> None:
    db_url = f"sqlite:///{tmp_path / 'bot.db'}"
    env = bot_env(db_url, fake_slack.base_url, FAST_CHECKLIST)
    bot = BotProcess(env, tmp_path / "bot.log").start()
    with httpx.Client(timeout=10) as http:
        _walk_to_canary(_user(bot, fake_slack, http), fake_slack, db_url)
    bot.kill9()  # the reminder is due in 2 s and nobody is running
    time.sleep(4.0)
    assert _reminders(fake_slack) == []
    restarted = BotProcess(env, tmp_path / "bot.log").start()  # the SQLite lock died with the killed process
    try:
        reminder = fake_slack.wait_for(lambda: _reminders(fake_slack), timeout=10)
        assert "late" in render_text(reminder[0]["blocks"])  # it says how late it is
        time.sleep(2.0)
        assert len(_reminders(fake_slack)) == 1
    finally:
        assert restarted.terminate() == 0
    events = json.loads(export(db_url, "v1.4.0").stdout)
    fired = [e for e in events if e["action"] == "reminder_fired"]
    assert len(fired) == 1
    print(f"\nreminder lateness after kill -9 and restart: {fired[0]['details']['late_s']} s")


def test_a_second_process_on_the_same_sqlite_file_is_refused(tmp_path: Path, fake_slack: FakeSlack) -> None:
    db_url = f"sqlite:///{tmp_path / 'bot.db'}"
    env = bot_env(db_url, fake_slack.base_url, FAST_CHECKLIST)
    first = BotProcess(env, tmp_path / "one.log").start()
    try:
        second = BotProcess(env, tmp_path / "two.log")
        with pytest.raises(AssertionError, match="exited with"):
            second.start()
        assert "another release-bot process already uses this SQLite file" in second.log()
        assert "Traceback" not in second.log()
    finally:
        first.terminate()


def test_interrupted_fire_is_settled_once_at_start(tmp_path: Path, fake_slack: FakeSlack) -> None:
    """A process killed between claiming a timer and recording it: Slack is asked whether the post happened."""
    db_url = f"sqlite:///{tmp_path / 'bot.db'}"
    env = bot_env(db_url, fake_slack.base_url, FAST_CHECKLIST)
    bot = BotProcess(env, tmp_path / "bot.log").start()
    with httpx.Client(timeout=10) as http:
        _walk_to_canary(_user(bot, fake_slack, http), fake_slack, db_url)
    bot.kill9()
    engine = sa.create_engine(db_url, poolclass=sa.pool.NullPool)
    with engine.begin() as conn:  # exactly the state a kill -9 right after the claim leaves
        conn.execute(
            sa.text("UPDATE timers SET status='firing', claimed_by='dead-host:1' WHERE status='pending'")
        )
    engine.dispose()
    restarted = BotProcess(env, tmp_path / "bot.log").start()
    try:
        fake_slack.wait_for(lambda: _reminders(fake_slack), timeout=10)
        time.sleep(1.5)
        assert len(_reminders(fake_slack)) == 1
    finally:
        restarted.terminate()
    # And a second restart finds it settled: nothing more is posted.
    again = BotProcess(env, tmp_path / "bot.log").start()
    try:
        time.sleep(2.0)
        assert len(_reminders(fake_slack)) == 1
    finally:
        again.terminate()


@pytest.mark.postgres
def test_two_processes_on_one_postgres_post_each_reminder_once(tmp_path: Path, fake_slack: FakeSlack) -> None:
    db_url = _postgres()
    env = bot_env(db_url, fake_slack.base_url, FAST_CHECKLIST)
    one = BotProcess(env, tmp_path / "one.log").start()
    two = BotProcess(env, tmp_path / "two.log").start()
    try:
        with httpx.Client(timeout=10) as http:
            # Requests go to both replicas: any replica serves Slack.
            _walk_to_canary(_user(two, fake_slack, http), fake_slack, db_url)
            fake_slack.wait_for(lambda: _reminders(fake_slack), timeout=10)
            _click_advance(_user(one, fake_slack, http), fake_slack, db_url, "canary-50")
        header_ts = release_messages(fake_slack)[0]["ts"]
        fake_slack.wait_for(
            lambda: [
                m
                for m in fake_slack.thread(CHANNEL, header_ts)
                if "wait of *Canary 50%*" in m.get("text", "")
            ],
            timeout=10,
        )
        time.sleep(2.0)
        thread = fake_slack.thread(CHANNEL, header_ts)
        assert len([m for m in thread if "wait of *Canary 10%*" in m.get("text", "")]) == 1
        assert len([m for m in thread if "wait of *Canary 50%*" in m.get("text", "")]) == 1
    finally:
        one.terminate()
        two.terminate()


@pytest.mark.postgres
def test_killing_the_leader_mid_canary_hands_the_clock_over(tmp_path: Path, fake_slack: FakeSlack) -> None:
    db_url = _postgres()
    env = bot_env(db_url, fake_slack.base_url, FAST_CHECKLIST)
    one = BotProcess(env, tmp_path / "one.log").start()
    time.sleep(0.5)  # let the first one win the election
    two = BotProcess(env, tmp_path / "two.log").start()
    try:
        with httpx.Client(timeout=10) as http:
            _walk_to_canary(_user(two, fake_slack, http), fake_slack, db_url)
        killed_at = time.monotonic()
        leader, follower = (one, two) if "became leader" in one.log() else (two, one)
        leader.kill9()
        fake_slack.wait_for(lambda: _reminders(fake_slack), timeout=15)
        took_over = [line for line in follower.log().splitlines() if "became leader" in line]
        assert took_over, follower.log()
        print(
            f"\nfollower posted the reminder {time.monotonic() - killed_at:.2f} s after the leader was killed"
        )
        time.sleep(2.0)
        assert len(_reminders(fake_slack)) == 1
    finally:
        for bot in (one, two):
            if bot.proc and bot.proc.poll() is None:
                bot.terminate()
