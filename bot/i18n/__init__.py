"""The bot's own words, in Korean (the team's language, the default) and English.

Checklist text is shown as the file writes it; only what the bot adds comes from here. Each area keeps its words in
a module of this package (``common``, ``watch``, ``rollback``, ``dashboard``, ``evidence``, ``authz``, ``setup``,
``traffic``) as a ``WORDS`` table; this module is the one loader that merges them into ``CATALOG``, refusing a key that two
areas define. ``t(lang, key, **params)`` returns the text for a key, or the key itself when it is not a catalog key
(plain text passes through).

May import: the standard library only. Every layer above the domain may import it.
"""

from __future__ import annotations

from typing import Any

from bot.i18n import authz, common, dashboard, evidence, rollback, setup, traffic, watch


def _merge(*areas: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    merged: dict[str, dict[str, str]] = {}
    for words in areas:
        twice = merged.keys() & words.keys()
        if twice:  # a silent overwrite would show one area's wording in another's message
            raise RuntimeError(f"message keys defined twice: {sorted(twice)}")
        merged.update(words)
    return merged


CATALOG: dict[str, dict[str, str]] = _merge(
    common.WORDS,
    watch.WORDS,
    rollback.WORDS,
    dashboard.WORDS,
    evidence.WORDS,
    authz.WORDS,
    setup.WORDS,
    traffic.WORDS,
)


class _Params(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "?"  # a missing placeholder must never turn an error message into a crash


def t(lang: str, key: str, **params: Any) -> str:
    """Translate a catalog key; a string that is not a key is returned as it is."""
    entry = CATALOG.get(key)
    if entry is None:
        return key
    text = entry.get(lang) or entry["en"]
    return text.format_map(_Params(params))
