"""The layout's rules, checked by walking imports: each folder of ``bot/`` is one layer and imports only downward.

The checks are functions of a tree of sources, so that each rule is also shown to fail on a small tree that
breaks it (the ``*_is_caught`` tests): a rule that cannot fail would prove nothing.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

BOT = Path(__file__).resolve().parent.parent / "bot"

ROOT_MODULES = {"__init__", "__main__", "cli", "config", "observability", "errors", "ports"}
FOUNDATION = {"bot", "bot.config", "bot.errors", "bot.observability", "bot.ports"}

# What each layer may import from bot (besides itself and the foundation). Read top to bottom, it is the
# dependency direction of ARCHITECTURE.md: runtime -> slack -> usecases -> db, checklist -> domain.
MAY_IMPORT: dict[str, set[str]] = {
    "domain": set(),
    "i18n": set(),
    "checklist": {"domain"},
    "db": {"domain"},
    "adapters": {"domain"},
    "usecases": {"domain", "checklist", "db", "i18n"},
    "slack": {"domain", "checklist", "i18n", "usecases"},
    "runtime": {"domain", "checklist", "i18n", "usecases", "db", "adapters", "slack"},
    "playground": {"domain", "checklist", "i18n", "usecases", "db", "adapters", "slack", "runtime"},
}
# Third-party packages a layer must not import. The domain and the catalogs take the standard library only.
VENDORS = {
    "slack_bolt",
    "slack_sdk",
    "sqlalchemy",
    "alembic",
    "httpx",
    "kubernetes",
    "pagerduty",
    "apscheduler",
    "waitress",
    "urllib3",
    "psycopg",
}
FORBIDDEN_VENDORS: dict[str, set[str]] = {
    "usecases": VENDORS,
    "slack": VENDORS - {"slack_bolt", "slack_sdk"},
    "checklist": VENDORS,
    "db": VENDORS - {"sqlalchemy", "alembic"},
}
STDLIB_ONLY = {"domain", "i18n"}
# The root modules everything else reads: they import nothing of bot but each other.
FOUNDATION_MAY_IMPORT = {"bot.errors"}


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts).removesuffix(".__init__")


def load_tree(root: Path) -> dict[str, str]:
    return {module_name(p, root): p.read_text(encoding="utf-8") for p in sorted(root.rglob("*.py"))}


def imports_of(source: str, known: Iterable[str]) -> set[str]:
    """Every module a source imports, at the top, in a function or under TYPE_CHECKING alike."""
    known = set(known)
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:  # `from bot.slack import blocks` imports bot.slack.blocks
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in known else node.module)
    return found


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in MAY_IMPORT) else None


def layer_violations(tree: Mapping[str, str]) -> list[str]:
    found = []
    for module, source in tree.items():
        layer = layer_of(module)
        for name in sorted(imports_of(source, tree)):
            top = name.split(".")[0]
            if top == "bot":
                if name in FOUNDATION:
                    if layer is None and module in FOUNDATION and name not in FOUNDATION_MAY_IMPORT | {"bot"}:
                        found.append(f"{module} imports {name}: the root modules import only bot.errors")
                    continue
                target = layer_of(name)
                if layer is None:
                    if module in FOUNDATION:
                        found.append(f"{module} imports {name}: the root modules import no layer")
                    continue  # the CLI and __main__ sit on top
                if target is None:
                    found.append(f"{module} imports {name}: only the CLI imports it")
                elif target != layer and target not in MAY_IMPORT[layer]:
                    found.append(f"{module} imports {name}: {layer} may not import {target}")
            elif layer in STDLIB_ONLY and top not in sys.stdlib_module_names:
                found.append(f"{module} imports {name}: {layer} takes the standard library only")
            elif layer in FORBIDDEN_VENDORS and top in FORBIDDEN_VENDORS[layer]:
                found.append(f"{module} imports {name}: {layer} may not import {top}")
    return found


def import_cycles(tree: Mapping[str, str]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), over every import in the tree."""
    graph = {m: {n for n in imports_of(s, tree) if n in tree and n != m} for m, s in tree.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return cycles


def playground_importers(tree: Mapping[str, str]) -> list[str]:
    return [
        m
        for m, s in tree.items()
        if layer_of(m) != "playground"
        and m != "bot.cli"
        and any(n.startswith("bot.playground") for n in imports_of(s, tree))
    ]


# --- the rules on the real tree ------------------------------------------------------------------------------


def test_the_root_of_bot_holds_only_the_modules_every_layer_reads() -> None:
    loose = {p.stem for p in BOT.glob("*.py")} - ROOT_MODULES
    assert not loose, f"modules at the root of bot/: {sorted(loose)}; put each in the folder of its layer"


@pytest.mark.parametrize(
    "folder", sorted(p for p in BOT.iterdir() if p.is_dir() and p.name != "__pycache__"), ids=lambda p: p.name
)
def test_every_folder_says_what_lives_there_and_what_it_may_import(folder: Path) -> None:
    assert folder.name in MAY_IMPORT, f"bot/{folder.name}/ is not a layer of this test's table"
    doc = ast.get_docstring(ast.parse((folder / "__init__.py").read_text(encoding="utf-8")))
    assert doc is not None and len(doc) > 120, f"bot/{folder.name}/__init__.py needs a docstring"
    assert "May import" in doc, f"bot/{folder.name}/__init__.py must say what it may import"


def test_every_import_points_down_the_layers() -> None:
    assert layer_violations(load_tree(BOT)) == []


def test_no_modules_import_each_other() -> None:
    assert import_cycles(load_tree(BOT)) == []


def test_only_the_cli_reaches_the_playground() -> None:
    assert playground_importers(load_tree(BOT)) == []


def test_serve_never_loads_the_playground() -> None:
    # Statically above; here as Python sees it: everything `serve` and the work process import, and nothing more.
    code = (
        "import sys, bot.cli, bot.runtime.server, bot.runtime.bootstrap, bot.runtime.work_process\n"
        "print(sorted(m for m in sys.modules if m.startswith('bot.playground')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True, cwd=BOT.parent
    )
    assert result.stdout.strip() == "[]"


def test_nothing_connects_at_import_time() -> None:
    # Importing the whole package must not need Slack, a database or a cluster: a fresh interpreter imports every
    # module with no environment at all.
    # Alembic's scripts are not imported but run by Alembic, and running them is connecting.
    modules = sorted(
        m for m in load_tree(BOT) if not m.endswith("__main__") and not m.startswith("bot.db.migrations")
    )
    code = f"import importlib\nfor m in {modules!r}:\n    importlib.import_module(m)\n"
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


# --- each rule fails when it is broken --------------------------------------------------------------------------

CLEAN = {
    "bot": "",
    "bot.errors": "",
    "bot.ports": "",
    "bot.domain": "",
    "bot.domain.release": "import datetime\nfrom bot.errors import ReleaseBotError\n",
    "bot.db.uow": "import sqlalchemy\nfrom bot.domain.release import x\n",
    "bot.usecases.releases": "from bot.db.uow import SqlUnitOfWork\nfrom bot.ports import Clock\n",
    "bot.slack.listeners": "import slack_bolt\nfrom bot.usecases.releases import Services\n",
    "bot.runtime.bootstrap": "from bot.slack.listeners import register\nfrom bot.adapters.kube import K\n",
    "bot.adapters.kube": "import kubernetes\nfrom bot.ports import Deployer\n",
    "bot.playground.shell": "from bot.runtime.bootstrap import build\n",
    "bot.cli": "def main():\n    from bot.playground.shell import main\n",
}


def test_the_small_tree_breaks_no_rule() -> None:
    assert layer_violations(CLEAN) == []
    assert import_cycles(CLEAN) == []
    assert playground_importers(CLEAN) == []


@pytest.mark.parametrize(
    ("module", "source", "expected"),
    [
        ("bot.domain.release", "import sqlalchemy\n", "domain takes the standard library only"),
        ("bot.domain.release", "from bot.db.uow import x\n", "domain may not import db"),
        ("bot.usecases.releases", "import slack_sdk\n", "usecases may not import slack_sdk"),
        ("bot.usecases.releases", "from sqlalchemy.exc import IntegrityError\n", "usecases may not import sqlalchemy"),
        ("bot.usecases.releases", "from bot.slack.listeners import x\n", "usecases may not import slack"),
        ("bot.usecases.releases", "from bot.adapters.kube import K\n", "usecases may not import adapters"),
        ("bot.slack.listeners", "from bot.db.uow import SqlUnitOfWork\n", "slack may not import db"),
        ("bot.slack.listeners", "def f():\n    import sqlalchemy\n", "slack may not import sqlalchemy"),
        ("bot.slack.listeners", "from bot.adapters.kube import K\n", "slack may not import adapters"),
        ("bot.slack.listeners", "from bot.runtime.bootstrap import build\n", "slack may not import runtime"),
        ("bot.db.uow", "from bot.usecases.releases import S\n", "db may not import usecases"),
        ("bot.errors", "from bot.domain.release import x\n", "the root modules import no layer"),
        ("bot.runtime.bootstrap", "from bot.cli import main\n", "only the CLI imports it"),
    ],
)
def test_a_broken_layer_rule_is_caught(module: str, source: str, expected: str) -> None:
    tree = {**CLEAN, module: CLEAN.get(module, "") + source}
    assert any(expected in v for v in layer_violations(tree)), layer_violations(tree)


def test_an_import_cycle_is_caught_even_when_one_side_imports_lazily() -> None:
    # The shape bootstrap and the work process had: a function-level import one way, TYPE_CHECKING the other.
    tree = {
        **CLEAN,
        "bot.runtime.bootstrap": "if TYPE_CHECKING:\n    from bot.runtime.work import Channel\n",
        "bot.runtime.work": "def main():\n    from bot.runtime.bootstrap import build\n",
    }
    assert import_cycles(tree) == [["bot.runtime.bootstrap", "bot.runtime.work"]]


def test_serve_path_importing_the_playground_is_caught() -> None:
    tree = {**CLEAN, "bot.runtime.bootstrap": "from bot.playground.shell import SlackStandIn\n"}
    assert playground_importers(tree) == ["bot.runtime.bootstrap"]
