"""The command line and start-up: settings errors in one line, checklist check, exports, and big checklists."""

from __future__ import annotations

import csv
import functools
import io
import os
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from bot.db.models import MessageRow, ReleaseRow
from bot.domain.records import Actor
from bot.slack import blocks
from bot.slack.gateway import ChannelPacer
from bot.slack.publisher import Claim, Origin, Posted
from tests.conftest import (
    FAST_CHECKLIST,
    PG_ADMIN_URL,
    ROOT,
    SEED_CHECKLIST,
    RunningBot,
    make_settings,
    postgres_available,
    start_bot,
)
from tests.fakes.slack_api import FakeSlack, render_text
from tests.slack_user import BOT_TOKEN, SECRET
from tests.test_release_start import CHANNEL, export, item_message, release_messages, ticked, wait_for_release


def run_cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(ROOT), **(env or {})},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({}, "SLACK_BOT_TOKEN is not set"),
        ({"SLACK_BOT_TOKEN": "xoxp-user-token"}, "SLACK_BOT_TOKEN is invalid"),
        ({"SLACK_BOT_TOKEN": BOT_TOKEN}, "SLACK_SIGNING_SECRET is not set"),
        (
            {"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SECRET, "RELEASE_BOT_LANGUAGE": "fr"},
            "RELEASE_BOT_LANGUAGE",
        ),
        ({"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SECRET, "PORT": "http"}, "PORT is invalid"),
        (
            {"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SECRET, "WORK_PROCESS": "sometimes"},
            "WORK_PROCESS is invalid",
        ),
        (
            {"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SECRET, "RELEASE_MANAGERS": "alice"},
            "RELEASE_MANAGERS",
        ),
        # Closed by default: nobody named means serve does not start, rather than letting everyone act.
        ({"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SECRET}, "RELEASE_MANAGERS is not set"),
        (
            {"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SECRET, "RELEASE_MANAGERS": "*, U0ABCDEF1"},
            "cannot be combined",
        ),
        (
            {"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SECRET, "DATABASE_URL": "mysql://x"},
            "DATABASE_URL",
        ),
        (
            {
                "SLACK_BOT_TOKEN": BOT_TOKEN,
                "SLACK_SIGNING_SECRET": SECRET,
                "RELEASE_BOT_CHECKLIST": "/nope.yaml",
            },
            "/nope.yaml",
        ),
        (
            {"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_APP_TOKEN": "xoxb-not-an-app-token"},
            "SLACK_APP_TOKEN is invalid",
        ),
        (
            {
                "SLACK_BOT_TOKEN": BOT_TOKEN,
                "SLACK_SIGNING_SECRET": SECRET,
                "PAGERDUTY_EVENTS_URL": "http://pd",
            },
            "PAGERDUTY_EVENTS_URL",
        ),
    ],
)
def test_a_bad_setting_stops_start_up_with_one_line_naming_it(
    tmp_path: Path, env: dict[str, str], names: str
) -> None:
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'bot.db'}", "PORT": "0", **env}
    result = run_cli("serve", env=env)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert names in lines[0]
    assert "Traceback" not in result.stderr
    for secret in (BOT_TOKEN, SECRET):
        assert secret not in result.stderr


def _one_line(result: subprocess.CompletedProcess[str]) -> str:
    """The single stderr line of a command that failed the way a person should see it."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def test_a_taken_port_stops_start_up_with_one_line_before_anything_starts(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": SECRET,
            "RELEASE_MANAGERS": "U0ABCDEF1",
            "DATABASE_URL": f"sqlite:///{tmp_path / 'bot.db'}",
            "HOST": "127.0.0.1",
            "PORT": str(port),
        }
        line = _one_line(run_cli("serve", env=env))
    assert (
        line
        == f"release-bot: PORT {port} is already in use on 127.0.0.1: stop what listens there, or set PORT to a free port"
    )
    assert not (tmp_path / "bot.db").exists()  # refused before the database was touched


def _postgres(database: str, **parts: str) -> str:
    return (
        sa.engine.make_url(PG_ADMIN_URL).set(database=database, **parts).render_as_string(hide_password=False)
    )  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("url", "cause"),
    [
        ("sqlite:///{tmp}/no-such-folder/bot.db", "the folder {tmp}/no-such-folder does not exist"),
        ("sqlite:///{tmp}/not-a-db.db", "{tmp}/not-a-db.db is not a SQLite database file"),
        pytest.param(
            "postgresql+psycopg://postgres:hunter2@127.0.0.1:1/test",
            "connection refused: is Postgres running at 127.0.0.1:1?",
            id="refused",
        ),
        pytest.param(
            "{pg:release_bot_no_such_db}",
            'the database "release_bot_no_such_db" does not exist on',
            marks=pytest.mark.postgres,
            id="database-missing",
        ),
        pytest.param(
            "{pg-user:no_such_role}",
            'authentication failed: there is no user "no_such_role"',
            marks=pytest.mark.postgres,
            id="auth",
        ),
    ],
)
def test_database_failures_say_which_in_one_line(tmp_path: Path, url: str, cause: str) -> None:
    if "{pg" in url:
        reason = postgres_available()
        if reason is not None:
            pytest.skip(reason)
        url = (
            _postgres("release_bot_no_such_db")
            if url.startswith("{pg:")
            else _postgres("test", username="no_such_role")
        )
    url, cause = url.format(tmp=tmp_path), cause.format(tmp=tmp_path)
    (tmp_path / "not-a-db.db").write_text("these are not the tables you are looking for" * 100)
    for command in (["db", "upgrade"], ["export", "v1.0.0"]):
        line = _one_line(run_cli(*command, env={"DATABASE_URL": url}))
        assert line.startswith("release-bot: DATABASE_URL (") and cause in line, line
        assert "hunter2" not in line


def test_commands_that_read_refuse_a_database_never_migrated(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    sa.create_engine(url).connect().close()  # an empty SQLite file: there is a database, but not the bot's
    line = _one_line(run_cli("export", "v1.0.0", env={"DATABASE_URL": url}))
    assert "the database has no release-bot tables" in line and "release-bot db upgrade" in line
    line = _one_line(run_cli("resync", "v1.0.0", env={"DATABASE_URL": url, "SLACK_BOT_TOKEN": BOT_TOKEN}))
    assert "the database has no release-bot tables" in line


def test_a_release_the_database_does_not_hold_is_named_in_terminal_words(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'bot.db'}"
    assert run_cli("db", "upgrade", env={"DATABASE_URL": url}).returncode == 0
    expected = f"release-bot: no release v9.9.9 in the database at {url}"
    assert _one_line(run_cli("export", "v9.9.9", env={"DATABASE_URL": url})) == expected
    # resync only calls Slack's Web API: the bot token is all it needs (no signing secret).
    resync = run_cli("resync", "v9.9.9", env={"DATABASE_URL": url, "SLACK_BOT_TOKEN": BOT_TOKEN})
    assert _one_line(resync) == expected


def test_checklist_check_summarises_a_good_file_and_names_the_bad_field(tmp_path: Path) -> None:
    good = run_cli("checklist", "check", str(SEED_CHECKLIST))
    assert good.returncode == 0
    assert "44 items in 5 phases" in good.stdout
    # Without a file: the one the bot would run, here the shipped one (as an image checks itself).
    shipped = run_cli("checklist", "check")
    assert shipped.returncode == 0 and shipped.stdout.startswith(f"{SEED_CHECKLIST}:\n")
    assert shipped.stdout.endswith(good.stdout.split("\n", 1)[1])
    assert "15m" in good.stdout and "30m" in good.stdout
    bad_file = tmp_path / "bad.yaml"
    bad_file.write_text(FAST_CHECKLIST.read_text().replace("wait: 2s", "wait: 2 minutes"))
    bad = run_cli("checklist", "check", str(bad_file))
    assert bad.returncode == 2
    assert "bad.yaml" in bad.stderr and "canary[0].wait" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_checklist_init_writes_the_shipped_checklist_to_start_a_teams_own(tmp_path: Path) -> None:
    run = functools.partial(run_cli, cwd=tmp_path)
    made = run("checklist", "init")
    assert made.returncode == 0, made.stderr
    written = tmp_path / "checklist.yaml"
    assert written.read_bytes() == SEED_CHECKLIST.read_bytes()
    assert "release-bot checklist check checklist.yaml" in made.stdout
    assert run("checklist", "check", "checklist.yaml").returncode == 0
    # Never over a team's edits by accident; a named file, or --force.
    written.write_text("# ours\n")
    again = run("checklist", "init")
    assert again.returncode == 2 and "already exists" in again.stderr and "--force" in again.stderr
    assert written.read_text() == "# ours\n"
    assert (
        run("checklist", "init", "--force").returncode == 0
        and written.read_bytes() == SEED_CHECKLIST.read_bytes()
    )
    nowhere = run("checklist", "init", "missing/team.yaml")
    assert nowhere.returncode == 2
    assert nowhere.stderr.strip() == "release-bot: missing/team.yaml: the folder missing does not exist"


def test_export_csv_has_one_row_per_event(running: RunningBot, db_url: str) -> None:
    alice = running.user()
    alice.command("start v1.4.0")
    wait_for_release(running.fake, 1 + len(running.services.checklist.flow_phases))
    key = running.services.checklist.flow_phases[0].items[0].key
    alice.click_item(CHANNEL, item_message(running.fake, key), key)
    running.fake.wait_for(lambda: running.services.find(CHANNEL, "v1.4.0").checked.get(key))
    result = export(db_url, "v1.4.0", "csv")
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["action"] for r in rows] == ["release_started", "item_checked"]
    assert rows[1]["actor_id"] == "U061F7AUR" and rows[1]["item"] == key


def test_a_checklist_too_big_for_one_message_is_split_never_truncated(
    db_url: str, fake_slack: FakeSlack, tmp_path: Path
) -> None:
    items = "\n".join(
        f'          - key: item{n}\n            text: "Check number {n} of many"' for n in range(1, 71)
    )
    big = FAST_CHECKLIST.read_text().replace(
        """          - key: tests_pass
            text: "All tests pass?"
          - key: reviewed
            text: "Code review done?\"""",
        items,
    )
    path = tmp_path / "big.yaml"
    path.write_text(big)
    settings = make_settings(db_url, fake_slack, checklist_path=str(path))
    rb = start_bot(settings, fake_slack, pacer=ChannelPacer(0.0), sync_interval_s=0.2)
    try:
        rb.user().command("start v1.4.0")
        messages = fake_slack.wait_for(lambda: (m := release_messages(fake_slack)) and len(m) >= 6 and m)
        text = "\n".join(render_text(m["blocks"]) for m in messages)
        for n in range(1, 71):
            assert f"Check number {n} of many" in text
        assert all(len(m["blocks"]) <= 50 for m in messages)
        assert "(continued)" in text
        last = "pre_deploy.checks.item70"
        rb.user().click_item(CHANNEL, item_message(fake_slack, last), last)
        fake_slack.wait_for(lambda: ticked(item_message(fake_slack, last), last))
    finally:
        rb.stop()


def test_messages_slack_never_got_are_posted_once_it_answers_again(running: RunningBot, db_url: str) -> None:
    running.user().command("start v1.4.0")
    pages = len(running.services.checklist.flow_phases)
    wait_for_release(running.fake, 1 + pages)
    # As if Slack had refused every checklist message after the header, ten minutes ago.
    engine = sa.create_engine(db_url, poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        conn.execute(
            sa.update(MessageRow).where(MessageRow.kind == "checklist").values(ts=None, synced_rev=0)
        )
        conn.execute(sa.update(ReleaseRow).values(started_at=datetime.now(UTC) - timedelta(minutes=10)))
    engine.dispose()
    running.fake.go_down(mode="503")
    assert running.bot.publisher.post_missing() == 0  # Slack still down: nothing lost, nothing marked posted
    running.fake.come_back()
    assert running.bot.publisher.post_missing() == pages
    assert running.bot.publisher.post_missing() == 0
    assert len(release_messages(running.fake)) == 1 + 2 * pages


def test_no_repair_sweep_posts_a_release_still_being_posted(db_url: str, fake_slack: FakeSlack) -> None:
    # Paced posts: the release's messages trickle out after its header, as behind a burst of starts.
    rb = start_bot(
        make_settings(db_url, fake_slack), fake_slack, sync_interval_s=0.2, pacer=ChannelPacer(0.6)
    )
    sweepers = [rb]
    try:
        if not db_url.startswith("sqlite"):  # SQLite runs one process; replicas share a Postgres database
            # A second replica, whose leader runs the sweep: it shares nothing in memory with rb.
            sweepers.append(start_bot(make_settings(db_url, fake_slack), fake_slack, pacer=ChannelPacer(0.0)))
        rb.user().command("start v1.4.0")
        pages = len(rb.services.checklist.flow_phases)
        engine = sa.create_engine(db_url, poolclass=sa.pool.NullPool)

        def header_recorded() -> bool:
            with engine.connect() as conn:
                return conn.scalar(sa.select(ReleaseRow.thread_ts)) is not None

        fake_slack.wait_for(header_recorded)
        # A publish that waited in the queue begins long after the release was started: its age alone must not
        # make a sweep post the messages their publisher is about to post.
        with engine.begin() as conn:
            conn.execute(sa.update(ReleaseRow).values(started_at=datetime.now(UTC) - timedelta(minutes=10)))
        engine.dispose()
        assert len(release_messages(fake_slack)) < 1 + pages  # still posting
        for sweeper in sweepers:
            assert sweeper.bot.publisher.post_missing() == 0
        wait_for_release(fake_slack, 1 + pages)
        assert sweepers[-1].bot.publisher.post_missing() == 0
        assert len(release_messages(fake_slack)) == 1 + pages
    finally:
        for running_bot in reversed(sweepers):
            running_bot.stop()


def test_messages_claimed_by_a_replica_that_died_are_posted_once_the_claim_lapses(
    running: RunningBot, db_url: str
) -> None:
    running.user().command("start v1.4.0")
    pages = len(running.services.checklist.flow_phases)
    wait_for_release(running.fake, 1 + pages)
    engine = sa.create_engine(db_url, poolclass=sa.pool.NullPool)

    def claimed_by(owner: str, minutes_ago: float) -> None:
        """As if a replica had reserved the checklist messages and stopped before posting them."""
        with engine.begin() as conn:
            conn.execute(
                sa.update(MessageRow)
                .where(MessageRow.kind == "checklist")
                .values(
                    ts=None,
                    synced_rev=0,
                    posting_by=owner,
                    posting_since=datetime.now(UTC) - timedelta(minutes=minutes_ago),
                )
            )

    try:
        claimed_by("replica-b:7:alive", 1)
        assert running.bot.publisher.post_missing() == 0  # a live claim: its owner posts them
        claimed_by("replica-b:7:dead", 6)
        assert running.bot.publisher.post_missing() == pages
        assert running.bot.publisher.post_missing() == 0
        assert len(release_messages(running.fake)) == 1 + 2 * pages
        with engine.connect() as conn:
            left = conn.execute(sa.select(MessageRow.posting_by, MessageRow.posting_since)).all()
        assert set(left) == {(None, None)}  # posted messages hold no claim

        # This process's own publish, so slow that its reservation lapsed: the sweep here took a message over and
        # is posting it. When the publish reaches that message, it must not post it as well.
        publisher = running.bot.publisher
        publish_token = publisher.claim_token()
        claimed_by(publish_token, 6)
        view = running.services.view(running.services.recent(CHANNEL, 1)[0].id)
        first = next(m.id for m in view.messages if m.kind == "checklist")
        assert running.services.claim_post(first, publisher.claim_token())  # the sweep's attempt
        before = len(release_messages(running.fake))
        assert publisher.post_message(view, first, Claim(publish_token)) is Posted.TAKEN
        assert publisher.post_message(view, first) is Posted.TAKEN  # a resync, say
        assert len(release_messages(running.fake)) == before
    finally:
        engine.dispose()


def test_a_release_whose_process_died_before_posting_it_is_published_by_the_sweep(
    running: RunningBot, db_url: str
) -> None:
    services, publisher = running.services, running.bot.publisher
    pages = len(services.checklist.flow_phases)
    alice = Actor("U061F7AUR", "alice")
    # Recorded, but its publish was lost with its process: one died before reserving the messages, one after.
    lost = services.start_release(channel_id=CHANNEL, version="v1.4.0", actor=alice)
    reserved = services.start_release(channel_id=CHANNEL, version="v1.4.1", actor=alice)
    reserved_view = publisher.reserve(reserved.release.id, blocks.message_slots(reserved.checklist), CHANNEL)
    assert reserved_view is not None
    engine = sa.create_engine(db_url, poolclass=sa.pool.NullPool)

    def age(minutes: float) -> None:
        since = datetime.now(UTC) - timedelta(minutes=minutes)
        with engine.begin() as conn:
            conn.execute(sa.update(ReleaseRow).values(started_at=since))
            conn.execute(sa.update(MessageRow).values(posting_since=since))

    try:
        age(1)  # as young as a publish still running somewhere
        assert publisher.post_missing() == 0
        assert release_messages(running.fake) == []
        age(6)
        running.fake.go_down(mode="503")
        assert publisher.post_missing() == 0  # Slack down: both kept for the next round
        running.fake.come_back()
        assert publisher.post_missing() == 2 * (1 + pages)
        assert publisher.post_missing() == 0
        messages = release_messages(running.fake)
        assert len(messages) == 2 * (1 + pages)
        text = "\n".join(render_text(m["blocks"]) for m in messages)
        assert "v1.4.0" in text and "v1.4.1" in text
        # The lost publish, had it only waited in a queue, finds the work done and posts nothing.
        publisher.publish_release(lost, Origin(alice.id, CHANNEL, None, None)).result(timeout=10)
        assert len(release_messages(running.fake)) == 2 * (1 + pages)
        # Both are live checklists: a click is recorded and redrawn.
        key = services.checklist.flow_phases[0].items[0].key
        running.user().click_item(CHANNEL, item_message(running.fake, key), key)
        running.fake.wait_for(lambda: ticked(item_message(running.fake, key), key))
    finally:
        engine.dispose()
