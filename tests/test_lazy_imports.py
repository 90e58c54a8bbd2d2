"""What ``serve`` loads before its first request: libraries that only some work needs wait for that work.

matplotlib (charts), the Kubernetes client (rollbacks), Alembic (a database behind the code), githubkit and the
pydantic it is built on (evidence; checklists are validated without it), the ``pagerduty`` client and httpx (pages,
metric queries, health checks) are each several MB in both of serve's processes and tens of ms of start-up. These
run in a fresh interpreter, so that no other test's imports count.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Each is loaded by the first use of the feature named, never by starting.
ON_FIRST_USE = (
    "matplotlib",
    "kubernetes",
    "alembic",
    "githubkit",
    "pydantic",
    "pagerduty",
    "httpx",
    "psycopg",
)

# Everything serve imports, then the bot built as each of its processes builds it (connects nothing); then the
# code under test, given as argv[1], and the names of ON_FIRST_USE that are loaded, as JSON.
_SCRIPT = """
import json, os, sys
import bot.cli, bot.runtime.server, bot.runtime.work_process, bot.runtime.http_server, bot.runtime.startup
from bot.config import load_settings
from bot.runtime.bootstrap import build

bot_ = build(load_settings(dict(os.environ)))
try:
    exec(sys.argv[1])
finally:
    bot_.stop()
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules} & set(json.loads(sys.argv[2])))))
"""

# serve builds the serving process's bot before it forks the work process, and a process must fork with one thread.
_THREADS = "import threading; print('threads', threading.active_count())"


def run_built(tmp_path: Path, code: str = "", **env: str) -> list[str]:
    """The subprocess's output lines: what ``code`` printed, then the JSON of the modules loaded."""
    environ = {
        "PATH": "/usr/bin:/bin",
        "SLACK_BOT_TOKEN": "xoxb-test",
        "SLACK_SIGNING_SECRET": "secret",
        "RELEASE_MANAGERS": "U0123ABCD",
        "SLACK_API_URL": "http://127.0.0.1:9/api/",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'bot.db'}",
        **env,
    }
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT, code, json.dumps(ON_FIRST_USE)],
        env=environ,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()


def loaded_after(tmp_path: Path, code: str = "", **env: str) -> list[str]:
    loaded: list[str] = json.loads(run_built(tmp_path, code, **env)[-1])
    return loaded


def test_serve_starts_without_charts_cluster_migrations_github_paging_or_http_clients(tmp_path: Path) -> None:
    assert loaded_after(tmp_path) == []


def test_a_health_check_loads_the_http_client_when_it_runs(tmp_path: Path) -> None:
    # The same bot, proving that the check above would see a module loaded: the first check brings httpx in.
    code = "print(bot_.extras['rollbacks']._health.check('http://127.0.0.1:9/healthz').ok)"
    assert loaded_after(tmp_path, code) == ["httpx"]


def test_configured_paging_and_metrics_load_their_clients_at_build(tmp_path: Path) -> None:
    loaded = loaded_after(
        tmp_path, PROMETHEUS_URL="http://127.0.0.1:9", PAGERDUTY_ROUTING_KEY="R" * 32
    )
    assert loaded == ["httpx", "pagerduty"]


def test_building_the_bot_starts_no_thread(tmp_path: Path) -> None:
    assert run_built(tmp_path, _THREADS)[0] == "threads 1"


# serve builds the work process's bot too before the fork (WorkProcess.build_bot), beside the serving one.
_WORK_BOT = """
from bot.runtime.ack_gate import AckGate
from bot.runtime.leader import make_leader
from bot.runtime.work_process import WorkProcess
settings = load_settings(dict(os.environ))
work = WorkProcess(settings, make_leader(settings.database_url), AckGate(), build)
work.open_channel()
work.build_bot()
"""


def test_building_the_work_processes_bot_too_starts_no_thread_and_loads_nothing_lazy(tmp_path: Path) -> None:
    threads, loaded = run_built(tmp_path, _WORK_BOT + _THREADS)
    assert threads == "threads 1"
    assert json.loads(loaded) == []
