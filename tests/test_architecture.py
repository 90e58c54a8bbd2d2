"""The dependency rules of ARCHITECTURE.md, checked by walking imports: the domain stays plain Python."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

BOT = Path(__file__).resolve().parent.parent / "bot"
VENDORS = (
    "slack_bolt",
    "slack_sdk",
    "sqlalchemy",
    "httpx",
    "kubernetes",
    "pagerduty",
    "apscheduler",
    "alembic",
)


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


@pytest.mark.parametrize("path", sorted((BOT / "domain").glob("*.py")), ids=lambda p: p.name)
def test_domain_imports_only_the_standard_library_and_itself(path: Path) -> None:
    for name in imports_of(path):
        top = name.split(".")[0]
        allowed = top in sys.stdlib_module_names or name.startswith(("bot.domain", "bot.errors"))
        assert allowed, f"{path.name} imports {name}"


@pytest.mark.parametrize("module", ["releases.py", "lifecycle.py", "rollback.py", "watch.py", "incidents.py"])
def test_use_cases_know_nothing_of_slack_kubernetes_or_http(module: str) -> None:
    for name in imports_of(BOT / "usecases" / module):
        assert not name.startswith(
            ("slack_bolt", "slack_sdk", "kubernetes", "httpx", "bot.slack", "bot.adapters")
        ), f"{module} imports {name}"


def test_slack_layer_never_touches_the_database_directly() -> None:
    for path in (BOT / "slack").glob("*.py"):
        for name in imports_of(path):
            assert not name.startswith(("sqlalchemy", "bot.db")), f"{path.name} imports {name}"


def test_nothing_connects_at_import_time() -> None:
    # Importing the whole package must not need Slack, a database or a cluster: a fresh interpreter imports every
    # module with no environment at all.
    import subprocess

    modules = sorted(
        "bot." + ".".join(p.relative_to(BOT).with_suffix("").parts)
        for p in BOT.rglob("*.py")
        if p.name != "__main__.py"
    )
    code = (
        f"import importlib\nfor m in {modules!r}:\n    importlib.import_module(m.removesuffix('.__init__'))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=BOT.parent,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
