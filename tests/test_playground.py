"""The playground: whole releases typed at ``release-bot playground`` on its standard input, run as a newcomer runs
them, from an empty folder, against the simulated Slack, cluster, Prometheus and PagerDuty."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bot.i18n import CATALOG
from bot.playground.render import plain
from tests.conftest import FAST_CHECKLIST, ROOT

pytestmark = pytest.mark.slow

ROLLBACK = """\
/release start v1.2.3
tick all
advance
advance
advance
breach errors 7%
wait page
home
rollback
submit 에러율 급증
wait rollback
cluster
quit
"""

WHOLE = """\
help
/release start v1.2.3
tick all
advance
advance
advance
advance
wait
advance
wait
advance
wait 2
advance
wait
home
wait 3
advance
status
/release report v1.2.3
click abc
wait 1
quit
"""


def play(script: str, tmp_path: Path, *args: str, lang: str | None = None) -> tuple[str, str, Path]:
    out = tmp_path / "files"
    cwd = tmp_path / "here"
    cwd.mkdir()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "PYTHONPATH": str(ROOT),
        **({"RELEASE_BOT_LANGUAGE": lang} if lang else {}),
    }
    done = subprocess.run(
        [sys.executable, "-m", "bot", "playground", "--out", str(out), *args],
        input=script,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=cwd,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    # Nothing in the working directory (the database lives in a temp dir), no traceback, no warning.
    assert list(cwd.iterdir()) == []
    assert "Traceback" not in done.stderr + done.stdout, done.stderr[-3000:]
    assert "WARNING" not in done.stderr, done.stderr[-3000:]
    assert done.stdout.rstrip().endswith("bye")
    return done.stdout, done.stderr, out


def test_the_shipped_checklist_in_korean_with_a_breach_a_page_and_a_rollback(tmp_path: Path) -> None:
    out, _err, files = play(ROLLBACK, tmp_path)
    # The shipped checklist, in Korean, its waits compressed by the stated factor.
    assert "checklist deployment.yaml (HallyuLatino 배포 체크리스트) · language ko" in out
    assert "Time runs 180× faster here: canary canary-10 15m → 5s, canary canary-50 30m → 10s" in out
    assert "== 릴리스 v1.2.3 ==" in out and "모든 테스트가 통과하는가?" in out
    # The metric watch reads the simulated Prometheus; the baseline is recorded.
    assert "📈 metric watch: Prometheus answered error rate 0." in out
    assert "이번 릴리스의 정상 P95" in out
    # The breach: the incident ping with its numbers, and exactly one page.
    ping = out[out.index("🚨 @here v1.2.3: 에러율이 5% 이상 — 온콜을 호출했습니다.") :]
    assert re.search(r"에러율 [67]\.\d\d % — 임계값 5\.00 %", ping)
    assert "연속 2회 초과 (필요 2회)" in ping
    assert len(re.findall(r"📟 PagerDuty trigger: “backend v1\.2\.3: 에러율이 5% 이상", out)) == 1
    # The confirmation names the revisions, as kubectl rollout undo would move them.
    assert "현재: 리비전 3 — `registry.hallyulatino.example/backend:v1.2.3`" in out
    assert "되돌릴 대상: 리비전 2 — `registry.hallyulatino.example/backend:v1.2.2`" in out
    # The rollout followed to its end, by the real client against the simulated cluster.
    assert "☸ cluster: deployment.apps/backend patched: rolling out revision 4" in out
    assert "Waiting for deployment spec update to be observed..." in out
    assert (
        'Waiting for deployment "backend" rollout to finish: 1 out of 3 new replicas have been updated...'
        in out
    )
    assert "✔ 롤백 완료." in out and '`deployment "backend" successfully rolled out`' in out
    assert "📟 PagerDuty resolve:" in out
    # §5.3 follow-up and the report in the thread.
    assert "5.3 롤백 후 작업" in out and "팀에 롤백 사실을 알렸는가?" in out
    assert "📝 릴리스 v1.2.3 리포트" in out and "인시던트 리포트 초안" in out
    assert (
        "4         registry.hallyulatino.example/backend:v1.2.2" in out
    )  # `cluster`: the undo is revision 4
    # Charts are files you can open, their paths printed.
    charts = re.findall(r"📊 .* → (\S+\.png)", out)
    assert charts
    for chart in charts:
        assert Path(chart).parent == files and Path(chart).read_bytes().startswith(b"\x89PNG")
    # The Home tab shows the open incident by its title, with its state in Korean.
    assert "🚨 에러율이 5% 이상 (미확인)" in out


def test_any_checklist_in_english_at_any_speed_a_whole_release_with_its_report_printed(
    tmp_path: Path,
) -> None:
    out, _err, files = play(WHOLE, tmp_path, "--checklist", str(FAST_CHECKLIST), "--speed", "1", lang="en")
    assert "checklist fast-checklist.yaml (Fast test checklist) · language en" in out
    assert "Time runs 1× faster here: canary canary-10 2s → 2s" in out
    assert "click N" in out  # help
    assert "(clicking “Start Staging deploy”)" in out
    assert "The wait of this stage is not over" in out  # the early advance is refused like in Slack
    assert "The 2 s wait of Canary 10% is over." in out
    assert "moved the release to Canary 100%" in out
    assert "is finished" in out
    # The report file is printed, not only announced, and written where the charts go.
    assert "📎 Release v1.2.3 report (shared in the thread; written to" in out
    assert "# Release v1.2.3" in out
    assert (files / "release-v1.2.3.md").is_file()
    assert "┌ App Home" in out
    # Small things: a bad click number explains itself; a quiet wait says so.
    assert "! click needs the number of a control shown in [brackets], such as `click 4`" in out
    assert "(1 s passed; nothing new)" in out


EVIDENCE = """\
/release start v1.2.3
repo fail lint
recheck
repo unapprove 41
recheck
repo pass lint
repo approve 41
recheck
repo fail nope
quit
"""


def test_the_simulated_repository_proves_items_and_the_recheck_finds_what_changed(tmp_path: Path) -> None:
    out, _err, _files = play(EVIDENCE, tmp_path, lang="en")
    assert "GitHub (hallyulatino/backend: checks, pull requests, tags; type `repo`)" in out
    started = out[: out.index("> repo fail lint")]
    # On start the bot proves, from the simulated repository, what the shipped checklist asks GitHub for.
    assert "Evidence: ✔ 8 · ✘ 0 · can't tell 0" in started
    assert "✔ 3/3 checks passed" in started and "/hallyulatino/backend/commit/" in started
    assert "✔ 2 pull request(s) since v1.0.0, all approved and merged" in started
    assert "✔ release-bot" in started
    steps = out.split("> recheck")[1:]
    assert len(steps) == 3
    assert "✘ 1 of 1 checks failed: lint" in steps[0] and "Evidence: ✔ 6 · ✘ 2" in steps[0]
    assert "1 of 2 pull request(s) merged without approval: #41" in steps[1] and "Evidence: ✔ 4 · ✘ 4" in steps[1]
    assert "Evidence: ✔ 8 · ✘ 0" in steps[2]
    assert "! there is no check 'nope': the simulated ones are tests, lint, typecheck" in out


def test_every_emoji_the_bot_writes_is_drawn_in_the_terminal() -> None:
    codes = {
        code
        for entry in CATALOG.values()
        for text in entry.values()
        for code in re.findall(r":[a-z_]+:", text)
    }
    for path in (ROOT / "bot" / "slack").glob("*.py"):
        codes |= {f":{name}:" for name in re.findall(r'":([a-z_]+):"', path.read_text(encoding="utf-8"))}
    undrawn = sorted(c for c in codes if plain(c, {}) == c)
    assert not undrawn, undrawn


ROLLOUT = """\
/release start v1.2.3
tick all
advance
advance
advance
wait 2
wait
advance
wait 2
status
quit
"""


def test_a_simulated_rollout_moves_the_split_with_the_stages(tmp_path: Path) -> None:
    out, _err, _files = play(ROLLOUT, tmp_path, "--rollout", lang="en")
    assert "Argo Rollouts (rollout/backend in hallyulatino-prod: the split moves as you advance)" in out
    assert "☸ cluster: rollout/backend: canary 10 % (step 2/4, paused)" in out
    assert "Cluster: canary 10 % · step 2/4 · paused" in out
    assert "☸ cluster: rollout/backend: promoted past the pause" in out
    assert "☸ cluster: rollout/backend: canary 50 % (step 4/4, paused)" in out
    assert "when the cluster reported the stage's weight as serving" in out
