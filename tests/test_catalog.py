"""Every message of the catalog, rendered in both languages with sample parameters: Korean output carries no
English words (beyond product names and notation), every placeholder is filled, and no key exists in one
language only.

This makes good Korean a property of the code rather than a one-time pass: a new message with "gate 무시" or an
English no-data reason in it fails here.
"""

from __future__ import annotations

import re
import string
from datetime import timedelta

import pytest

from bot.i18n import CATALOG, t
from bot.i18n.units import human_duration, no_data_key, whole_minutes

# Names that stay as they are in a Korean sentence: products, protocols, units and notations engineers write in
# Latin letters, and the commands and settings people type.
ALLOWED = {
    # products and services
    "PagerDuty", "Kubernetes", "Prometheus", "Slack", "GitHub", "GitOps", "Argo", "CD", "Flux", "kubectl",
    "DevOps", "PM",
    # figures and protocols
    "P95", "CPU", "HTTP", "HTTPS", "URL", "API", "ID", "PR", "NaN", "ms", "JSON", "CSV", "Markdown",
    # Slack markup the bot writes itself (mentions, dates, emoji names are stripped before the check)
    "here",
    # settings and notation people type as written
    "RELEASE_MANAGERS", "RELEASE_CONTACTS", "GITHUB_REPOSITORY", "KUBECONFIG", "vMAJOR", "MINOR", "PATCH",
}

# Sample values by placeholder name: Korean where a person's words or a title would go, so that only the
# catalog's own words are judged.
SAMPLES: dict[str, object] = {
    "count": 3, "total": 5, "done": 2, "passed": 4, "failed": 1, "pending": 1, "limit": 3000, "length": 3100,
    "minutes": 10, "left": 4, "seconds": 42, "pct": 10, "ms": 142, "code": 503, "status_code": 503,
    "revision": 3, "from_rev": 3, "to_rev": 2, "seen": 3, "now": 4, "lines": "• 항목", "required": 2,
    "error": "0.31", "p95": "200", "threshold": "2", "times": "2.4", "commits": 2, "number": 12,
}


def sample(name: str) -> object:
    return SAMPLES.get(name, "값")


def placeholders(text: str) -> set[str]:
    return {field for _, field, _, _ in string.Formatter().parse(text) if field}


def render(key: str, lang: str) -> str:
    entry = CATALOG[key]
    names = placeholders(entry[lang]) | placeholders(entry["en"])
    return t(lang, key, **{name: sample(name) for name in names})


# What is not prose: code spans and fences, Slack markup (<@U…>, <!here>, <url|label>), emoji names, and the
# Latin letters of versions, paths and commands inside them.
_NOT_PROSE = [
    re.compile(r"```.*?```", re.S),
    re.compile(r"`[^`]*`"),
    re.compile(r"<[^>]*>"),
    re.compile(r":[a-z0-9_+-]+:"),
    re.compile(r"\bv\d+\.\d+\.\d+(?:-rc\.\d+)?"),
    re.compile(r"--[a-z-]+"),
]
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


def english_words(text: str) -> list[str]:
    for pattern in _NOT_PROSE:
        text = pattern.sub(" ", text)
    return [w for w in _WORD.findall(text) if w not in ALLOWED]


def test_every_key_has_both_languages() -> None:
    one_sided = {key: sorted(entry) for key, entry in CATALOG.items() if set(entry) != {"en", "ko"}}
    assert one_sided == {}
    empty = [key for key, entry in CATALOG.items() if not all(v.strip() for v in entry.values())]
    assert empty == []


def test_both_languages_take_the_same_placeholders() -> None:
    differ = {
        key: (sorted(placeholders(e["en"])), sorted(placeholders(e["ko"])))
        for key, e in CATALOG.items()
        if placeholders(e["en"]) != placeholders(e["ko"])
    }
    assert differ == {}


@pytest.mark.parametrize("lang", ["ko", "en"])
def test_every_message_renders_with_every_placeholder_filled(lang: str) -> None:
    missing: dict[str, list[str]] = {}

    class Recording(dict[str, object]):
        def __init__(self, key: str) -> None:
            super().__init__()
            self.key = key

        def __missing__(self, name: str) -> object:
            missing.setdefault(self.key, []).append(name)
            return "?"

    for key, entry in CATALOG.items():
        params = Recording(key)
        params.update({name: sample(name) for name in placeholders(entry["en"])})
        text = entry[lang].format_map(params)
        # Braces left in the output are a template Python did not fill (or a typo such as "{version").
        if re.search(r"[{}]", text):
            missing.setdefault(key, []).append(text)
    assert missing == {}


def test_korean_messages_have_no_english_words() -> None:
    found = {key: words for key in CATALOG if (words := english_words(render(key, "ko")))}
    assert found == {}, "\n".join(f"{k}: {w} in {render(k, 'ko')!r}" for k, w in found.items())


def test_the_check_itself_catches_english_and_spares_markup() -> None:
    assert english_words("릴리스 매니저만 advance 수 있습니다.") == ["advance"]
    assert english_words("직전 30m 동안의 P95") == ["m"]
    assert english_words("<@U123> 님이 `kubectl rollout undo` 실행 :white_check_mark: v1.4.0") == []
    assert english_words("2x baseline") == ["x", "baseline"]


def test_the_listed_rewordings() -> None:
    ko = {key: e["ko"] for key, e in CATALOG.items()}
    corpus = "\n".join(ko.values())
    wrongs = ("게이트 무시", "기준 기준선", "윈도", "그곳에", "컨트롤", "님에 의해", "롤백할 것이", "보고서", "드라이런")
    for wrong in wrongs:
        assert wrong not in corpus, wrong
    assert ko["modal_cancel"] == "취소"
    assert ko["time_in_step"] == "이 단계 시작: {when}"
    assert ko["started_by"] == "{who} 님이 {when}에 시작"
    assert ko["rollback_not_found"] == "해당 롤백을 찾을 수 없습니다."
    assert "{who} 님이 릴리스 *{version}*을(를) 중단했습니다" in ko["release_aborted"]
    assert "permission_denied" not in CATALOG  # each action has its own sentence (denied_*)
    en = {key: e["en"] for key, e in CATALOG.items()}
    assert "has been updated" in en["incident_acknowledged"] and "is told" not in "\n".join(en.values())
    assert "marked this as not a problem" in en["incident_dismissed"]
    assert en["denied_tick"].startswith("Only release managers may tick items in this phase.")
    assert en["time_in_step"] == "entered this step {when}"


def test_units_in_korean() -> None:
    assert human_duration(timedelta(minutes=30), "ko") == "30분"
    assert human_duration(timedelta(minutes=1), "ko") == "1분"
    assert human_duration(timedelta(minutes=90), "en") == "1 h 30 min"
    assert whole_minutes(12.3 * 60) == 13 and whole_minutes(0) == 0 and whole_minutes(-5) == 0


@pytest.mark.parametrize(
    "reason",
    [
        "no series matched (empty result)",
        "NaN: no traffic in the window",
        "Prometheus did not answer within 5 s",
        "cannot reach Prometheus at http://prom:9090",
        "Prometheus answered HTTP 500: boom",
        "ambiguous: 3 series, aggregate the query to one",
        "negative figure -1: a counter reset or a broken query",
        "+inf is not a usable figure (check the histogram buckets)",
        "something nobody foresaw",
        None,
    ],
)
def test_no_data_reasons_are_said_in_korean(reason: str | None) -> None:
    words = t("ko", no_data_key(reason))
    assert english_words(words) == []
