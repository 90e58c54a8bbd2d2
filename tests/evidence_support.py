"""A repository on the fake GitHub with a release ready to go, and a bot configured to read it."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from tests.conftest import ROOT, RunningBot, make_settings, start_bot
from tests.fakes.github_api import FakeGitHub, FakeRepo
from tests.fakes.slack_api import FakeSlack, render_text
from tests.slack_user import find_item

REPO = "hallyulatino/backend"
CHANNEL = "C0RELEASES"
EVIDENCE_CHECKLIST = ROOT / "tests" / "data" / "evidence-checklist.yaml"
WEBHOOK_SECRET = "whsec-test-7c1f0e9a2b4d"


def ready_repo(fake: FakeGitHub, version: str = "v1.4.0", previous: str = "v1.3.0") -> tuple[FakeRepo, str]:
    """A previous release, three approved pull requests, the changelog bumped, CI green, notes published."""
    repo = fake.repo(REPO)
    repo.commit("Initial", {"CHANGELOG.md": "# Changelog\n", "pyproject.toml": 'version = "1.3.0"\n'})
    repo.tag(previous)
    repo.merge_pull("Search by artist", approvals=("bob",))
    repo.merge_pull(
        "Faster feed", approvals=("carol",), reviews=(("bob", "CHANGES_REQUESTED"), ("bob", "APPROVED"))
    )
    repo.merge_pull("Fix login", approvals=("bob",))
    sha = repo.commit(
        "Release",
        {
            "CHANGELOG.md": f"# Changelog\n\n## {version[1:]}\n- search\n",
            "pyproject.toml": f'version = "{version[1:]}"\n',
        },
    )
    repo.tag(version)
    for name in ("test (3.11)", "test (3.12)", "lint", "typecheck"):
        repo.check(sha, name, "success")
    repo.status(sha, "ci/coverage", "success")
    repo.release(version)
    return repo, sha


def checklist_file(tmp_path: Path, health_url: str | None = None) -> Path:
    text = EVIDENCE_CHECKLIST.read_text(encoding="utf-8")
    if health_url is not None:
        text = text.replace('"http://127.0.0.1:1/health"', f'"{health_url}"', 1)
    path = tmp_path / "evidence-checklist.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def start_evidence_bot(
    db_url: str,
    fake_slack: FakeSlack,
    github: FakeGitHub,
    tmp_path: Path,
    *,
    health_url: str | None = None,
    **overrides: Any,
) -> RunningBot:
    from bot.slack.gateway import ChannelPacer

    settings = make_settings(db_url, fake_slack)
    settings = replace(
        settings,
        checklist_path=str(checklist_file(tmp_path, health_url)),
        github_repository=REPO,
        github_api_url=github.base_url,
        github_token=github.token,
        github_webhook_secret=WEBHOOK_SECRET,
        release_channel=CHANNEL,
        **overrides,
    )
    return start_bot(settings, fake_slack, sync_interval_s=0.2, pacer=ChannelPacer(0.0))


def item_block(fake: FakeSlack, item_key: str, channel: str = CHANNEL) -> dict[str, Any]:
    """The newest block of an item, with or without its checkbox."""
    for message in reversed(fake.messages.get(channel, [])):
        for block in message.get("blocks", []):
            acc = block.get("accessory") or {}
            if acc.get("value", "").endswith(f":{item_key}") or any(
                o.get("value") == item_key for o in acc.get("options", [])
            ):
                return {**block, "_message": message}
    raise AssertionError(f"no block for {item_key}")


def item_text(fake: FakeSlack, item_key: str) -> str:
    """The item's text as shown, or "" while it is not posted yet."""
    try:
        return render_text([item_block(fake, item_key)])
    except AssertionError:
        return ""


def is_ticked(fake: FakeSlack, item_key: str) -> bool:
    try:
        block = item_block(fake, item_key)
        _, element = find_item(block["_message"], item_key)
    except AssertionError:
        return False
    return any(o["value"] == item_key for o in element.get("initial_options") or [])


def click_override(user: Any, fake: FakeSlack, item_key: str) -> Any:
    """Press the button a failing item shows in place of its checkbox (a section's accessory)."""
    import time

    block = item_block(fake, item_key)
    button = block["accessory"]
    assert button["type"] == "button", f"{item_key} shows no override button: {button}"
    payload = user._base(CHANNEL, block["_message"])
    payload["actions"] = [
        {
            "type": "button",
            "action_id": button["action_id"],
            "block_id": block["block_id"],
            "value": button["value"],
            "text": button["text"],
            "action_ts": f"{time.time():.6f}",
        }
    ]
    return user.interact(payload)
