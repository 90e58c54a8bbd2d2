"""``release-bot serve`` as an operator meets it: one line that says what it runs with, quiet logs, refused tokens
in one line, and Socket Mode that reports its link and exits rather than running deaf."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from tests.conftest import FAST_CHECKLIST, ROOT
from tests.fakes.slack_api import FakeSlack
from tests.proc import BotProcess, bot_env, free_port
from tests.slack_user import BOT_TOKEN, SECRET

pytestmark = pytest.mark.slow


def _records(log: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in log.splitlines() if line.startswith("{")]


def test_start_up_says_in_one_line_what_the_bot_runs_with_and_then_stays_quiet(
    tmp_path: Path, db_url: str, fake_slack: FakeSlack
) -> None:
    if db_url.startswith("postgresql"):  # trust auth ignores the password; the log must still not show it
        db_url = sa.engine.make_url(db_url).set(password="hunter2").render_as_string(hide_password=False)
    env = bot_env(
        db_url, fake_slack.base_url, FAST_CHECKLIST, LOG_FORMAT="json", PROMETHEUS_URL="http://127.0.0.1:1/"
    )
    bot = BotProcess(env, tmp_path / "bot.log").start()
    try:
        time.sleep(5.5)  # the timer sweep runs every 5 s: its job lines were logged at INFO each time
    finally:
        assert bot.terminate() == 0
    log = bot.log()
    assert "Traceback" not in log and "hunter2" not in log and BOT_TOKEN not in log
    records = _records(log)
    lines = [str(r["message"]) for r in records if str(r["message"]).startswith("release-bot ")]
    assert len(lines) == 1, log
    line = lines[0]
    assert f"HTTP on 127.0.0.1:{bot.port}" in line
    assert f"checklist {FAST_CHECKLIST} (fast, sha256 " in line
    shown = sa.engine.make_url(db_url).render_as_string(hide_password=True)
    assert f"database {shown}" in line
    assert "language en" in line
    assert "Slack workspace Acme as bot user U0BOTUSER1" in line
    assert "Prometheus http://127.0.0.1:1/" in line
    assert "PagerDuty off" in line and "Kubernetes off" in line
    # The token was checked once, at start.
    assert len(fake_slack.calls("auth.test")) == 1
    # Quiet: no scheduler chatter, nothing said twice, no notes from Bolt about its constructor.
    loggers = {str(r["logger"]) for r in records}
    assert not any(name.startswith("apscheduler") for name in loggers), loggers
    warnings = [str(r["message"]) for r in records if r["level"] == "WARNING"]
    assert len(warnings) == len(set(warnings)), warnings
    assert not any("will be unused" in w or "will be ignored" in w for w in warnings), warnings


def _serve_once(env: dict[str, str], timeout: float) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "bot", "serve"],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )
    return done, time.monotonic() - started


def test_a_bot_token_slack_refuses_stops_start_up_with_one_line(
    tmp_path: Path, fake_slack: FakeSlack
) -> None:
    fake_slack.revoked_tokens.add(BOT_TOKEN)
    env = bot_env(
        f"sqlite:///{tmp_path / 'bot.db'}", fake_slack.base_url, FAST_CHECKLIST, PORT=str(free_port())
    )
    done, _ = _serve_once(env, 60)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        "release-bot: SLACK_BOT_TOKEN was refused by Slack (auth.test: invalid_auth): copy the Bot User OAuth "
        "Token of the installed app again (OAuth & Permissions), or reinstall the app"
    )
    assert "Traceback" not in done.stderr and BOT_TOKEN not in done.stderr


def _socket_env(tmp_path: Path, slack_url: str, **extra: str) -> dict[str, str]:
    env = bot_env(f"sqlite:///{tmp_path / 'bot.db'}", slack_url, FAST_CHECKLIST, LOG_FORMAT="json", **extra)
    del env["SLACK_SIGNING_SECRET"]
    return {**env, "SLACK_APP_TOKEN": "xapp-1-A0PLAYGRND-1-abcdef", "HOST": "127.0.0.1"}


def test_socket_mode_with_an_app_token_slack_refuses_exits_at_once_with_one_line(
    tmp_path: Path, fake_slack: FakeSlack
) -> None:
    # The fake takes only xoxb-/xoxp- tokens: any app-level token is refused, as a revoked one is by Slack.
    done, took = _serve_once(_socket_env(tmp_path, fake_slack.base_url, PORT=str(free_port())), 60)
    assert done.returncode == 2
    assert (
        done.stderr.strip()
        .splitlines()[-1]
        .startswith("release-bot: SLACK_APP_TOKEN was refused by Slack (apps.connections.open: invalid_auth)")
    )
    assert "Traceback" not in done.stderr
    assert took < 15


def test_socket_mode_without_slack_reports_it_on_livez_then_exits_within_its_bound(tmp_path: Path) -> None:
    unreachable = f"http://127.0.0.1:{free_port()}/api/"  # nothing listens there
    port = free_port()
    env = _socket_env(tmp_path, unreachable, PORT=str(port), SOCKET_MODE_TIMEOUT="6")
    log = tmp_path / "bot.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bot", "serve"], env=env, stdout=out, stderr=out, cwd=ROOT
        )
    try:
        started = time.monotonic()
        answers: list[tuple[int, str]] = []
        while proc.poll() is None and time.monotonic() - started < 40:
            try:
                reply = httpx.get(f"http://127.0.0.1:{port}/livez", timeout=1)
                answers.append((reply.status_code, reply.json()["status"]))
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        code = proc.wait(40)
        took = time.monotonic() - started
    finally:
        if proc.poll() is None:
            proc.kill()
    text = log.read_text()
    assert code == 1, text
    # Bound: SOCKET_MODE_TIMEOUT of not being connected, plus start-up and one connection attempt.
    assert took < 6 + 15, took
    assert (200, "ok") in answers  # a reconnect takes a moment: not reported at once
    down = [status for code, status in answers if code == 503]
    assert down and down[-1].startswith("Socket Mode not connected to Slack for"), answers
    messages = [str(r["message"]) for r in _records(text)]
    assert any(m.startswith("Socket Mode has not been connected to Slack for") for m in messages), messages
    assert "Traceback" not in text


def test_socket_mode_honours_sigterm_while_it_cannot_reach_slack(tmp_path: Path) -> None:
    unreachable = f"http://127.0.0.1:{free_port()}/api/"
    port = free_port()
    env = _socket_env(tmp_path, unreachable, PORT=str(port), SOCKET_MODE_TIMEOUT="600")
    log = tmp_path / "bot.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bot", "serve"], env=env, stdout=out, stderr=out, cwd=ROOT
        )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.get(f"http://127.0.0.1:{port}/livez", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        time.sleep(3)  # well into the reconnect attempts
        asked = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(10)
        assert time.monotonic() - asked < 10
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == 0, log.read_text()


def test_http_mode_serves_when_slack_is_unreachable_at_start(tmp_path: Path) -> None:
    # One warning line, then it serves: Slack's requests can still arrive, and /livez stays "ok".
    env = bot_env(f"sqlite:///{tmp_path / 'bot.db'}", f"http://127.0.0.1:{free_port()}/api/", FAST_CHECKLIST)
    bot = BotProcess(env, tmp_path / "bot.log").start()
    try:
        reply = httpx.get(f"{bot.url}/livez", timeout=2)
        assert (reply.status_code, reply.json()) == (200, {"status": "ok"})
        assert SECRET not in bot.log()
    finally:
        assert bot.terminate() == 0
    assert "Slack is unreachable at" in bot.log() and "Traceback" not in bot.log()
