"""The playground's clock: a checklist's waits, compressed by a stated factor so a release fits in a minute.

Only the durations that make a person wait are divided: the canary stages' waits, the post-deploy watch, the
gate's observation of the 100 % stage and the metric watch's sampling interval (so a breach is caught within the
compressed seconds). Nothing else changes: the checklist's text, keys, criteria and thresholds are the file's own.
The result is written next to the playground's database and validated like any checklist, and the bot runs on it
unchanged.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

from bot.checklist.loading import load_checklist
from bot.domain.checklist import Checklist, format_duration, parse_duration

DEFAULT_SPEED = 180.0  # 15 minutes pass in 5 seconds


def squeeze(value: Any, speed: float) -> Any:
    """A checklist duration divided by ``speed``, in whole seconds (at least one); anything else as it is."""
    if not isinstance(value, str):
        return value
    seconds = parse_duration(value).total_seconds()
    return format_duration(timedelta(seconds=max(1, round(seconds / speed))))


def compress(source: Path, speed: float, destination: Path) -> tuple[Path, list[tuple[str, str, str]]]:
    """Write ``source`` with its waits divided by ``speed`` to ``destination``; return it and what changed
    as (what, before, after)."""
    data = yaml.safe_load(source.read_text(encoding="utf-8"))
    changed: list[tuple[str, str, str]] = []

    def swap(owner: dict[str, Any], key: str, label: str) -> None:
        before = owner.get(key)
        if isinstance(before, str):
            owner[key] = squeeze(before, speed)
            changed.append((label, before, owner[key]))

    for stage in data.get("canary") or []:
        if isinstance(stage, dict):
            swap(stage, "wait", f"canary {stage.get('key')}")
    swap(data, "post_deploy_watch", "post-deploy watch")
    gate = data.get("gate")
    if isinstance(gate, dict):
        gate.setdefault("min_observation", "5m")
        swap(gate, "min_observation", "gate observation at 100 %")
    metrics = data.get("metrics")
    if isinstance(metrics, dict):
        metrics.setdefault("sample_interval", "15s")
        swap(metrics, "sample_interval", "metric sampling")
    destination.write_text(
        yaml.safe_dump(data, allow_unicode=True, sort_keys=False, width=120), encoding="utf-8"
    )
    return destination, changed


def load_compressed(
    source: Path, speed: float, folder: Path
) -> tuple[Checklist, Path, list[tuple[str, str, str]]]:
    """Validate ``source`` first (its own errors name its own lines), then compress it into ``folder``."""
    load_checklist(source)
    path, changed = compress(source, speed, folder / f"{source.stem}.x{speed:g}.yaml")
    return load_checklist(path), path, changed
