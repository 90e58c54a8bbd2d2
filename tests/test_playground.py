"""The playground: a whole release typed at ``release-bot playground`` on its standard input."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = """\
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
advance
wait
home
advance
status
/release report v1.2.3
quit
"""


def test_a_whole_release_typed_into_the_playground(tmp_path: Path) -> None:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "bot", "playground"],
        input=SCRIPT,
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        cwd=tmp_path,  # nothing is written to the working directory: the database lives in a temp dir
    )
    out = done.stdout
    assert done.returncode == 0, done.stderr[-2000:]
    assert "click N" in out  # help
    assert "(clicking “Start Staging deploy”)" in out
    assert "The wait of this stage is not over" in out  # the early advance is refused like in Slack
    assert "The 5 s wait of Canary 10% is over." in out
    assert "The post-deploy watch is over" in out or "watch is over" in out
    assert "moved the release to Canary 100%" in out
    # The finish: the header, the announcement and the report summary in the thread.
    assert "is finished" in out
    assert "Release v1.2.3 report — ✔ finished after" in out
    assert "📎 Release v1.2.3 report (release-v1.2.3.md," in out
    assert "┌ App Home" in out and "Canary 100%" in out
    assert out.rstrip().endswith("bye")
    assert list(tmp_path.iterdir()) == []
    assert "Traceback" not in done.stderr
