"""The docs a newcomer follows agree with the code: names, modes, settings, figures and the order of the steps."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DEPLOY = ROOT / "deploy" / "README.md"
DOCS = [
    README,
    DEPLOY,
    ROOT / "checklists" / "README.md",
    ROOT / "deploy" / "kubernetes" / "POSTGRES.md",
    ROOT / "slack-app-manifest.yaml",
    ROOT / "slack-app-manifest.socket-mode.yaml",
    ROOT / "Dockerfile",
]


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _code_blocks(path: Path) -> list[str]:
    """The shell blocks: what a reader types."""
    return re.findall(r"```sh\n(.*?)```", _text(path), re.S)


def _commands(block: str) -> list[str]:
    """The programs a shell block runs, heredoc bodies and comments left out."""
    found: list[str] = []
    until: str | None = None
    for line in block.splitlines():
        if until is not None:
            until = None if line.strip() == until else until
            continue
        heredoc = re.search(r"<<'?(\w+)'?", line)
        until = heredoc.group(1) if heredoc else None
        if line.startswith((" ", "\t")):
            continue  # a continued line: its words are arguments
        tokens = shlex.split(line.rstrip().removesuffix("\\"), comments=True)
        starts = [0] + [i + 1 for i, token in enumerate(tokens) if token in ("&&", "||", "|", ";")]
        for i in starts:
            words = [w.lstrip("(") for w in tokens[i:] if not re.match(r"^\(?[A-Z_]+=", w)]
            if words:
                found.append(words[0])
    return found


def test_the_bot_is_invited_by_the_name_the_manifest_gives_it() -> None:
    manifest = yaml.safe_load(_text(ROOT / "slack-app-manifest.yaml"))
    name = manifest["features"]["bot_user"]["display_name"]
    from bot.i18n import CATALOG

    said = [*(_text(p) for p in DOCS), *(text for entry in CATALOG.values() for text in entry.values())]
    invites = {handle for text in said for handle in re.findall(r"/invite @([\w.-]+)", text)}
    assert invites == {name}


def test_socket_mode_is_described_as_the_code_runs_it() -> None:
    from bot.runtime.web import WebApp

    # In Socket Mode the HTTP server serves health and metrics (not Slack), and /livez tells of the socket.
    web = WebApp(None, ready=lambda: None, slack_over_http=False, alive=lambda: "Socket Mode not connected")  # type: ignore[arg-type]
    status: list[str] = []
    web({"PATH_INFO": "/livez", "REQUEST_METHOD": "GET"}, lambda s, _h: status.append(s))
    assert status == ["503 Service Unavailable"]
    for path in DOCS:
        assert not re.search(r"runs\s+(\*\*)?no HTTP server", _text(path)), path
    healthcheck = next(line for line in _text(ROOT / "Dockerfile").splitlines() if "/livez" in line)
    assert "SLACK_APP_TOKEN" not in healthcheck  # the check runs in both modes


def test_every_setting_the_bot_reads_is_in_both_settings_tables() -> None:
    source = _text(ROOT / "bot" / "config.py")
    names = set(re.findall(r'env\.get\(\s*"([A-Z][A-Z0-9_]*)"', source))
    names |= set(re.findall(r'_[a-z]+\(\s*env,\s*"([A-Z][A-Z0-9_]*)"', source))
    for doc in (README, DEPLOY):
        listed = set(
            re.findall(
                r"`([A-Z][A-Z0-9_]+)`", "\n".join(ln for ln in _text(doc).splitlines() if ln.startswith("|"))
            )
        )
        assert names <= listed, (doc.name, sorted(names - listed))


def test_the_deploy_guide_pushes_runs_and_deploys_one_image_with_the_tools_it_lists() -> None:
    blocks = "\n".join(_code_blocks(DEPLOY))
    # One image throughout: the one built is the one pushed, checked, deployed and run.
    assert re.search(r"^IMAGE=\S+", blocks, re.M)
    for line in blocks.splitlines():
        if re.match(r"\s*docker (build|push|run)\b", line) or "kustomize edit" in line:
            assert "$IMAGE" in line or line.rstrip().endswith("\\"), line
    # Every tool a step runs is named in "Before you start" or is a shell basic.
    before = _text(DEPLOY).split("## Before you start", 1)[1].split("\n## ", 1)[0].lower()
    basics = {"cat", "curl", "grep", "kill", "mkdir", "rm", "sed", "cd", "chmod", "umask"}
    for command in (c for block in _code_blocks(DEPLOY) for c in _commands(block)):
        assert command in basics or f"`{command}`" in before or command in before.split(), command


def test_the_deploy_guide_keeps_the_env_file_its_later_sections_read() -> None:
    blocks = _code_blocks(DEPLOY)
    removed = next(
        (i for i, b in enumerate(blocks) if re.search(r"^\s*rm ~/release-bot\.env", b, re.M)), None
    )
    used = [i for i, b in enumerate(blocks) if "--env-file ~/release-bot.env" in b]
    assert used and (removed is None or removed > max(used))


def test_postgres_guide_states_the_connection_ceiling_the_engine_allows() -> None:
    engine = _text(ROOT / "bot" / "db" / "engine.py")
    pool = int(re.search(r"pool_size=(\d+)", engine).group(1))  # type: ignore[union-attr]
    overflow = int(re.search(r"max_overflow=(\d+)", engine).group(1))  # type: ignore[union-attr]
    guide = _text(ROOT / "deploy" / "kubernetes" / "POSTGRES.md")
    # Two processes per replica (serve and its work process), each with a pool, and the leader's lock.
    assert f"ceiling of {2 * (pool + overflow) + 1} per replica" in guide
    assert "python -m bench.connections" in guide and (ROOT / "bench" / "connections.py").is_file()


def test_the_seed_document_lives_in_the_repository() -> None:
    seed = ROOT / "checklists" / "source" / "DEPLOYMENT_CHECKLIST.md"
    assert seed.is_file() and "HallyuLatino" in _text(seed)
    for path in (ROOT / "tests").rglob("*.py"):
        assert "shared/seed" not in _text(path).replace('"shared/seed"', ""), path


def test_local_build_and_lock_files_are_ignored() -> None:
    ignored = subprocess.run(
        ["git", "check-ignore", "--no-index", "build/lib/x.py", "release-bot.db.lock", "dist/x.whl"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert ignored.stdout.split() == ["build/lib/x.py", "release-bot.db.lock", "dist/x.whl"]
