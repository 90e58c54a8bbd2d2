#!/usr/bin/env bash
# Regenerate the hashed lock files from pyproject.toml: run it after changing a dependency or its range, and commit
# both files. The image (Dockerfile) and CI (.ci/run) install only from them, with pip's --require-hashes and
# --no-deps (the lock is the whole closure; pip's resolver would otherwise take a dependency's extras, such as
# githubkit's hishel[async,httpx], for an unpinned requirement), then `pip check`:
#   requirements.lock      what `release-bot serve` runs on, plus the build backend that installs the project
#   requirements-dev.lock  the same pins, plus the test and lint tools
# Universal (any OS and architecture, Python 3.11 and later), with the hashes of every file of each pinned version.
# Needs uv (`python3 -m pip install uv`); it asks PyPI for the newest versions the ranges in pyproject.toml allow.
set -euo pipefail
cd "$(dirname "$0")/.."
UV="${UV:-uv}"
build=$(mktemp)
trap 'rm -f "$build"' EXIT
# The build backend from [build-system]: the project is installed with --no-build-isolation, so from the lock too.
python3 -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["build-system"]["requires"]))' >"$build"
for target in requirements.lock requirements-dev.lock; do
    extra=()
    [ "$target" = requirements-dev.lock ] && extra=(--extra dev)
    "$UV" pip compile pyproject.toml "$build" "${extra[@]}" \
        --universal --python-version 3.11 --generate-hashes --quiet \
        --custom-compile-command "scripts/lock.sh" --output-file "$target"
done
