"""The hashed lock files agree with pyproject.toml: every dependency pinned within its range, every pin hashed,
and the runtime pins the same in both files (the image installs one, CI the other)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.conftest import ROOT

_ENTRY = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


def pins(path: Path) -> dict[str, set[Version]]:
    """name → pinned versions (one per marker fork), refusing any entry without a hash."""
    found: dict[str, set[Version]] = {}
    entries = re.split(r"\n(?=[A-Za-z0-9])", path.read_text(encoding="utf-8"))
    for entry in entries:
        match = _ENTRY.match(entry)
        if match is None:
            continue
        assert "--hash=sha256:" in entry, f"{path.name}: {match.group(1)} has no hash"
        found.setdefault(canonicalize_name(match.group(1)), set()).add(Version(match.group(2)))
    return found


def test_the_locks_pin_every_dependency_within_pyprojects_ranges() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    runtime = [Requirement(r) for r in project["project"]["dependencies"]]
    build = [Requirement(r) for r in project["build-system"]["requires"]]
    dev = [Requirement(r) for r in project["project"]["optional-dependencies"]["dev"]]
    locked, locked_dev = pins(ROOT / "requirements.lock"), pins(ROOT / "requirements-dev.lock")

    for requirements, lock in ((runtime + build, locked), (runtime + build + dev, locked_dev)):
        for req in requirements:
            versions = lock.get(canonicalize_name(req.name))
            assert versions, f"{req.name} is not in the lock: run scripts/lock.sh"
            assert all(req.specifier.contains(v, prereleases=True) for v in versions), (req, versions)
    assert {k: v for k, v in locked_dev.items() if k in locked} == locked  # one set of runtime versions
    # Every dev tool has an upper bound, like the runtime dependencies: a new major or minor is a decision.
    assert all(any(s.operator in ("<", "<=", "==", "~=") for s in req.specifier) for req in dev), dev
