"""``release-bot serve`` answers Slack in one process and does the work in a forked second one (bot.runtime.work_process).

These run the real ``serve`` as a subprocess: the split exists only there (in-process test bots run one process).
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import FAST_CHECKLIST, PG_URL, postgres_available, reset_postgres
from tests.fakes.slack_api import FakeSlack
from tests.proc import BotProcess, bot_env
from tests.slack_user import SlackUser
from tests.test_release_start import CHANNEL, export, item_message, release_messages, ticked

pytestmark = pytest.mark.slow

CHECKLIST_KEYS = ("pre_deploy.checks.tests_pass", "pre_deploy.checks.reviewed")


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        found.extend(int(child) for child in task.read_text().split())
    return found


def _nice(pid: int) -> int:
    # /proc/<pid>/stat: the command may hold spaces, so count fields after its closing parenthesis.
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[16])


def _policies(pid: int) -> list[int]:
    """Scheduling policy of each thread (0 normal, 5 SCHED_IDLE), the main thread first."""
    tids = sorted(int(t.name) for t in Path(f"/proc/{pid}/task").iterdir())
    tids.remove(pid)
    stats = [Path(f"/proc/{pid}/task/{tid}/stat").read_text() for tid in [pid, *tids]]
    return [int(stat.rsplit(")", 1)[1].split()[38]) for stat in stats]


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state in ("Z", "X")


def _database(kind: str, tmp_path: Path) -> str:
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'bot.db'}"
    reason = postgres_available()
    if reason is not None:
        pytest.skip(reason)
    reset_postgres()
    return PG_URL


def _start_release(bot: BotProcess, fake: FakeSlack, http: httpx.Client) -> SlackUser:
    alice = SlackUser(bot.url, "U061F7AUR", "alice", fake, http)
    assert alice.command("start v1.4.0").status_code == 200
    fake.wait_for(lambda: len(release_messages(fake)) >= 5, timeout=15)
    return alice


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_clicks_are_acked_here_and_applied_by_the_low_priority_work_process(
    kind: str, tmp_path: Path, fake_slack: FakeSlack
) -> None:
    db_url = _database(kind, tmp_path)
    bot = BotProcess(bot_env(db_url, fake_slack.base_url, FAST_CHECKLIST), tmp_path / "bot.log").start()
    try:
        assert bot.proc is not None
        [work] = _children(bot.proc.pid)
        # The serving process keeps the nice value it was started with (the suite may itself run under nice).
        assert _nice(work) == 19 and _nice(bot.proc.pid) == os.getpriority(os.PRIO_PROCESS, 0)
        # Its payload work gives way to the acks; its clock (timers, metric watch, pages) does not.
        policies = _policies(work)
        assert policies[0] == 5 and 0 in policies[1:]
        assert set(_policies(bot.proc.pid)) == {0}
        with httpx.Client(timeout=10) as http:
            alice = _start_release(bot, fake_slack, http)
            key = CHECKLIST_KEYS[0]
            response = alice.click_item(CHANNEL, item_message(fake_slack, key), key, tick=True)
            assert response.status_code == 200
            fake_slack.wait_for(lambda: ticked(item_message(fake_slack, key), key), timeout=10)
            metrics = http.get(f"{bot.url}/metrics").text
        # Both processes count into one /metrics: acks here, leadership and Slack calls over there.
        assert 'releasebot_ack_seconds_count{kind="interactive"} 1.0' in metrics
        assert "releasebot_leader 1.0" in metrics
        assert 'releasebot_slack_calls_total{method="chat.postMessage"}' in metrics
    finally:
        assert bot.terminate() == 0
    events = json.loads(export(db_url, "v1.4.0").stdout)
    checked = [e for e in events if e["action"] == "item_checked"]
    assert [(e["item"], e["actor_id"]) for e in checked] == [(key, "U061F7AUR")]


def test_sigterm_lets_the_work_process_finish_every_click_it_was_handed(
    tmp_path: Path, fake_slack: FakeSlack
) -> None:
    db_url = _database("sqlite", tmp_path)
    bot = BotProcess(bot_env(db_url, fake_slack.base_url, FAST_CHECKLIST), tmp_path / "bot.log").start()
    with httpx.Client(timeout=10) as http:
        alice = _start_release(bot, fake_slack, http)
        messages = {key: item_message(fake_slack, key) for key in CHECKLIST_KEYS}
        for key in CHECKLIST_KEYS:
            assert alice.click_item(CHANNEL, messages[key], key, tick=True).status_code == 200
    assert bot.terminate() == 0  # at once: the clicks are acked, maybe not yet applied
    events = json.loads(export(db_url, "v1.4.0").stdout)
    assert sorted(e["item"] for e in events if e["action"] == "item_checked") == sorted(CHECKLIST_KEYS)
    assert "work process" in bot.log() and "Traceback" not in bot.log()


def test_the_bot_stops_when_its_work_process_dies(tmp_path: Path, fake_slack: FakeSlack) -> None:
    db_url = _database("sqlite", tmp_path)
    bot = BotProcess(bot_env(db_url, fake_slack.base_url, FAST_CHECKLIST), tmp_path / "bot.log").start()
    assert bot.proc is not None
    [work] = _children(bot.proc.pid)
    os.kill(work, signal.SIGKILL)
    # Exit non-zero, so the orchestrator restarts both instead of leaving a bot that acks and never acts.
    assert bot.proc.wait(20) == 1
    assert "the work process exited with code -9" in bot.log()


def test_the_work_process_dies_with_the_bot(tmp_path: Path, fake_slack: FakeSlack) -> None:
    db_url = _database("sqlite", tmp_path)
    bot = BotProcess(bot_env(db_url, fake_slack.base_url, FAST_CHECKLIST), tmp_path / "bot.log").start()
    assert bot.proc is not None
    [work] = _children(bot.proc.pid)
    bot.kill9()
    deadline = time.monotonic() + 10
    while not _gone(work):
        assert time.monotonic() < deadline, "the work process outlived the bot"
        time.sleep(0.05)
    # The SQLite file is free again at once: a new bot starts on it.
    restarted = BotProcess(bot_env(db_url, fake_slack.base_url, FAST_CHECKLIST), tmp_path / "two.log").start()
    assert restarted.terminate() == 0


def test_work_process_false_runs_one_process(tmp_path: Path, fake_slack: FakeSlack) -> None:
    db_url = _database("sqlite", tmp_path)
    env = bot_env(db_url, fake_slack.base_url, FAST_CHECKLIST, WORK_PROCESS="false")
    bot = BotProcess(env, tmp_path / "bot.log").start()
    try:
        assert bot.proc is not None
        assert _children(bot.proc.pid) == []
        with httpx.Client(timeout=10) as http:
            alice = _start_release(bot, fake_slack, http)
            key = CHECKLIST_KEYS[0]
            alice.click_item(CHANNEL, item_message(fake_slack, key), key, tick=True)
            fake_slack.wait_for(lambda: ticked(item_message(fake_slack, key), key), timeout=10)
    finally:
        assert bot.terminate() == 0


def test_a_forwarded_click_keeps_only_the_block_it_came_from() -> None:
    from bot.runtime.hand_off import slim

    blocks = [
        {"type": "section", "block_id": f"b{i}", "text": {"type": "mrkdwn", "text": "x" * 300}}
        for i in range(40)
    ]
    body = {
        "type": "block_actions",
        "actions": [{"block_id": "b7", "action_id": "release-toggle"}],
        "message": {"ts": "1.2", "blocks": blocks},
        "container": {"channel_id": "C1", "message_ts": "1.2"},
    }
    slimmed = slim(body)
    assert slimmed["message"] == {"ts": "1.2", "blocks": [blocks[7]]}
    assert slimmed["container"] == body["container"] and len(body["message"]["blocks"]) == 40  # a copy
    command = {"command": "/release", "text": "start v1.0.0"}
    assert slim(command) is command


def test_one_thread_reaps_the_child_and_a_late_kill_signals_nothing() -> None:
    from bot.runtime.work_process import Child

    for _ in range(50):
        pid = os.fork()
        if pid == 0:
            os._exit(3)
        codes: list[int] = []
        child = Child(pid, codes.append)
        assert child.wait(10) and child.exited
        assert child.exitcode == 3 and codes == [3]
        child.kill()  # reaped: the pid may name another process by now, so nothing is sent
        assert _gone(pid)
    pid = os.fork()
    if pid == 0:
        time.sleep(60)
        os._exit(0)
    child = Child(pid)
    assert not child.wait(0.2)
    child.kill()
    assert child.wait(10) and child.exitcode == -signal.SIGKILL


def test_clean_stops_never_kill_the_work_process(tmp_path: Path, fake_slack: FakeSlack) -> None:
    """Each SIGTERM ends both processes cleanly. When two threads reaped the work process, stop() sometimes took
    an exited child for a live one and "killed" it (3 stops in 11 once; 1 in 12 on this machine)."""
    db_url = _database("sqlite", tmp_path)
    env = bot_env(db_url, fake_slack.base_url, FAST_CHECKLIST)
    for i in range(15):
        bot = BotProcess(env, tmp_path / f"bot-{i}.log").start()
        began = time.monotonic()
        assert bot.terminate() == 0, bot.log()
        assert "killing it" not in bot.log(), bot.log()
        assert time.monotonic() - began < 10
