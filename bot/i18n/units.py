"""Durations and no-data reasons in the reader's language: "30분", not "30m", and no English inside Korean.

Standard library only, like the rest of ``bot.i18n``.
"""

from __future__ import annotations

import math
from datetime import timedelta

# Why a metric has no figure, as the domain and the Prometheus adapter say it (plain English, for logs and the
# English bot), matched by how it begins; each maps to its catalog key (``bot.i18n.watch``).
_NO_DATA_KEYS: tuple[tuple[str, str], ...] = (
    ("no series matched", "nodata_no_series"),
    ("NaN", "nodata_no_traffic"),
    ("zero", "nodata_zero"),
    ("negative figure", "nodata_negative"),
    ("Prometheus did not answer", "nodata_timeout"),
    ("cannot reach Prometheus", "nodata_unreachable"),
    ("Prometheus answered HTTP", "nodata_http_error"),
    ("ambiguous", "nodata_ambiguous"),
    ("no metrics source", "nodata_no_source"),
    ("the metrics provider failed", "nodata_provider_failed"),
    ("no data", "nodata_none"),
)


def no_data_key(reason: str | None) -> str:
    """The catalog key that says ``reason`` in words; an infinite value, a bad answer, anything else: generic."""
    text = (reason or "no data").strip()
    for prefix, key in _NO_DATA_KEYS:
        if text.startswith(prefix):
            return key
    if "is not a usable figure" in text:
        return "nodata_infinite"
    return "nodata_unreadable"


def human_duration(value: timedelta | None, lang: str) -> str:
    """15 min, 90 s, 1 h 30 min in English; 15분, 90초, 1시간 30분 in Korean: how people say a wait."""
    if value is None:
        return "?"
    seconds = int(value.total_seconds())
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    units = ("h", "min", "s") if lang == "en" else ("시간", "분", "초")
    parts = [
        f"{n} {u}" if lang == "en" else f"{n}{u}"
        for n, u in zip((hours, minutes, secs), units, strict=True)
        if n
    ]
    return " ".join(parts) or ("0 s" if lang == "en" else "0초")


def whole_minutes(seconds: float) -> int:
    """Minutes left, rounded up: "1 minute left" until the wait is really over, never "0.4 minutes"."""
    return max(math.ceil(seconds / 60), 0)
