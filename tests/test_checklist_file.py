"""Checklist files: every shipped one validates, HallyuLatino matches the seed, broken ones explain."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.checklist.loading import default_checklist_path, load_checklist, load_checklist_text
from bot.checklist.summary import summarize
from bot.domain.checklist import Checklist, CriterionKind, PhaseKind, TickRole
from bot.errors import ChecklistError

REPO = Path(__file__).resolve().parents[1]
# The team's own document, kept in the repository word for word, so a fresh clone checks the transcription.
SEED = REPO / "checklists" / "source" / "DEPLOYMENT_CHECKLIST.md"
DEPLOYMENT = REPO / "bot" / "checklist" / "deployment.yaml"
FAST = REPO / "tests" / "data" / "fast-checklist.yaml"
CHECKLIST_FILES = sorted(
    [
        *(REPO / "bot" / "checklist").glob("*.y*ml"),
        *(REPO / "checklists").glob("*.y*ml"),
        *(REPO / "tests" / "data").glob("*checklist*.y*ml"),
    ]
)


# --- every file ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", CHECKLIST_FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_checklist_file_loads_and_keeps_slack_limits(path: Path) -> None:
    checklist = load_checklist(path)

    assert checklist.source == str(path)
    assert checklist.flow_phases, "a release needs a forward flow"
    keys = [item.key for phase in checklist.phases for item in phase.items]
    assert len(keys) == len(set(keys))
    for phase in checklist.phases:
        for section in phase.sections:
            assert section.key.startswith(f"{phase.key}.")
            for item in section.items:
                assert item.key.startswith(f"{section.key}.")
                assert len(item.key) <= 150  # Slack option value
                assert 0 < len(item.text) <= 75  # Slack option text
    total = len(keys)
    assert summarize(checklist).endswith(
        f"{total} item{'' if total == 1 else 's'} in {len(checklist.phases)} phases"
        f" ({sum(len(p.sections) for p in checklist.phases)} sections)"
    )
    assert load_checklist(path) == checklist


def test_the_shipped_checklist_is_the_default() -> None:
    assert default_checklist_path() == DEPLOYMENT
    assert load_checklist(default_checklist_path()).name == "deployment"


# --- the HallyuLatino file against the seed --------------------------------------------------------------


def _seed() -> dict[str, Any]:
    """Parse parts 1 to 5 and the contacts table of the seed checklist."""
    text = SEED.read_text(encoding="utf-8")
    body, part6 = text.split("\n## 6.", 1)
    sections: list[dict[str, Any]] = []
    code: list[str] | None = None
    for line in body.splitlines():
        if line.startswith("```"):
            if code is None:
                code = []
            else:
                sections[-1]["procedure"], code = "\n".join(code), None
        elif code is not None:
            code.append(line)
        elif m := re.fullmatch(r"### (\d\.\d .+)", line):
            sections.append({"title": m[1], "items": [], "bullets": [], "rows": [], "procedure": None})
        elif line.startswith("- [ ] "):
            sections[-1]["items"].append(line.removeprefix("- [ ] "))
        elif line.startswith("- "):
            sections[-1]["bullets"].append(line.removeprefix("- "))
        elif line.startswith("| ") and sections:
            sections[-1]["rows"].append([cell.strip() for cell in line.strip("|").split("|")])
    contacts = [[cell.strip() for cell in row.strip("|").split("|")] for row in part6.splitlines()[4:8]]
    return {
        "phases": re.findall(r"^## ([1-5]\. .+)$", body, re.MULTILINE),
        "sections": {s["title"].split()[0]: s for s in sections},
        "contacts": contacts,
    }


@pytest.fixture(scope="module")
def seed() -> dict[str, Any]:
    return _seed()


@pytest.fixture(scope="module")
def hallyu() -> Checklist:
    return load_checklist(DEPLOYMENT)


def test_every_seed_item_is_transcribed_in_order(seed: dict[str, Any], hallyu: Checklist) -> None:
    seed_items = [item for s in seed["sections"].values() for item in s["items"]]
    assert len(seed_items) == 44
    assert [item.text for phase in hallyu.phases for item in phase.items] == seed_items


def test_phases_and_sections_carry_the_seed_headings(seed: dict[str, Any], hallyu: Checklist) -> None:
    assert [p.title for p in hallyu.phases] == seed["phases"]
    # 3.2 (canary table) and 5.1 (rollback criteria) are data elsewhere in the file, not checklist sections.
    headings = [s["title"] for n, s in seed["sections"].items() if n not in ("3.2", "5.1")]
    assert seed["sections"]["3.2"]["title"] == "3.2 Canary 배포 단계"
    assert seed["sections"]["5.1"]["title"] == "5.1 롤백 기준"
    assert [s.title for p in hallyu.phases for s in p.sections] == headings
    for section in (s for p in hallyu.phases for s in p.sections):
        expected = seed["sections"][section.title.split()[0]]
        assert [i.text for i in section.items] == expected["items"], section.title
        assert section.procedure == expected["procedure"], section.title


def test_phase_kinds_environments_and_roles(hallyu: Checklist) -> None:
    shape = [(p.key, p.kind, p.environment, p.tick_role) for p in hallyu.phases]
    assert shape == [
        ("pre_deploy", PhaseKind.CHECKLIST, None, TickRole.ANYONE),
        ("staging", PhaseKind.DEPLOY, "staging", TickRole.ANYONE),
        ("production", PhaseKind.CANARY, "production", TickRole.ANYONE),
        ("post_deploy", PhaseKind.WATCH, "production", TickRole.ANYONE),
        ("rollback_followup", PhaseKind.ROLLBACK_FOLLOWUP, None, TickRole.ANYONE),
    ]
    assert hallyu.followup_phase is hallyu.phases[-1]
    assert "# tick_role: release_managers" in DEPLOYMENT.read_text(encoding="utf-8")
    assert (hallyu.name, hallyu.title, hallyu.service) == (
        "deployment",
        "HallyuLatino 배포 체크리스트",
        "backend",
    )


def test_canary_stages_match_the_seed_table(seed: dict[str, Any], hallyu: Checklist) -> None:
    rows = [r for r in seed["sections"]["3.2"]["rows"] if r[0].isdigit()]
    expected = [
        (int(traffic.rstrip("%")), None if wait == "-" else timedelta(minutes=int(wait.removesuffix("분"))))
        for _, traffic, wait, _ in rows
    ]
    assert [(s.traffic_percent, s.wait) for s in hallyu.canary_stages] == expected
    assert [s.key for s in hallyu.canary_stages] == ["canary-10", "canary-50", "canary-100"]


def test_gate_watch_and_health_urls_match_the_seed(seed: dict[str, Any], hallyu: Checklist) -> None:
    monitoring = " ".join(seed["sections"]["3.3"]["items"])
    rate = re.search(r"에러율이 (\d+)% 미만", monitoring)
    p95 = re.search(r"P95 < (\d+)ms", monitoring)
    assert rate
    assert p95
    assert hallyu.gate is not None
    assert (hallyu.gate.max_error_rate, hallyu.gate.max_p95_ms) == (int(rate[1]) / 100, float(p95[1]))

    minutes = re.search(r"\((\d+)분\)", seed["sections"]["4.2"]["title"])
    assert minutes
    assert hallyu.post_deploy_watch == timedelta(minutes=int(minutes[1]))

    staging_url = re.search(r"curl (\S+)", seed["sections"]["2.1"]["procedure"])
    production_url = re.search(r"curl (\S+)", seed["sections"]["5.2"]["procedure"])
    assert staging_url
    assert production_url
    assert hallyu.environment("staging").health_url == staging_url[1]
    assert hallyu.environment("production").health_url == production_url[1]


def test_rollback_criteria_and_target_match_the_seed(seed: dict[str, Any], hallyu: Checklist) -> None:
    bullets = seed["sections"]["5.1"]["bullets"]
    assert [c.title for c in hallyu.criteria] == bullets
    rate = re.search(r"에러율이 (\d+)% 이상", bullets[0])
    ratio = re.search(r"(\d+)배 이상", bullets[1])
    assert rate
    assert ratio
    assert [(c.kind, c.threshold, c.dry_run) for c in hallyu.criteria] == [
        (CriterionKind.ERROR_RATE, int(rate[1]) / 100, False),
        (CriterionKind.LATENCY_RATIO, float(ratio[1]), False),
        (CriterionKind.MANUAL, None, False),
        (CriterionKind.MANUAL, None, False),
    ]
    undo = re.search(r"kubectl rollout undo deployment/(\S+) -n (\S+)", seed["sections"]["5.2"]["procedure"])
    assert undo
    assert hallyu.rollback is not None
    assert (hallyu.rollback.deployment, hallyu.rollback.namespace) == (undo[1], undo[2])
    assert hallyu.rollback.procedure == seed["sections"]["5.2"]["procedure"]


def test_contacts_match_the_seed_table(seed: dict[str, Any], hallyu: Checklist) -> None:
    expected = [(role, None if who == "-" else who, via.lower()) for role, who, via in seed["contacts"]]
    assert [(c.role, c.handle, c.via) for c in hallyu.contacts] == expected
    assert all(c.slack_id is None for c in hallyu.contacts)  # the team fills these in
    assert [c.mention for c in hallyu.contacts] == [None, "@tech-lead", "@devops-team", "@pm"]


def test_metrics_select_the_backend_with_a_short_window(hallyu: Checklist) -> None:
    m = hallyu.metrics
    assert m is not None
    # The file ships exactly the queries tests/test_prometheus_real.py proves against a real Prometheus.
    from bot.adapters.prometheus import DEFAULT_ERROR_RATE_QUERY, DEFAULT_P95_QUERY, render_query

    assert m.error_rate_query == render_query(
        DEFAULT_ERROR_RATE_QUERY, selector='service="backend"', window="1m"
    )
    assert m.p95_query == render_query(DEFAULT_P95_QUERY, selector='service="backend"', window="1m")
    assert (m.sample_interval, m.consecutive_breaches, m.no_data_warning_after, m.baseline_window) == (
        timedelta(seconds=15),
        2,
        3,
        timedelta(minutes=30),
    )
    assert m.baseline_p95_ms is None


# Ticks are stored by these keys: renaming one orphans the ticks of every release that used it.
STABLE_KEYS = {
    "pre_deploy.code_quality": "tests_pass coverage_target lint type_check code_review pr_merged",
    "pre_deploy.security": "vulnerability_scan no_hardcoded_secrets env_vars secrets_managed https",
    "pre_deploy.database": "migration_ready migration_tested_staging rollback_plan backup_done",
    "pre_deploy.docs": "changelog api_docs version_bumped release_notes",
    "staging.verify": "app_started health_responds core_features no_log_errors performance_normal",
    "production.monitoring": "error_rate_below_1pct p95_normal cpu_memory no_user_complaints",
    "post_deploy.immediate": "all_services_ok health_passes no_severe_errors alerting_ok",
    "post_deploy.monitoring": "traffic_normal error_rate_stable db_queries_ok integrations_ok",
    "post_deploy.wrap_up": "release_notes_announced team_notified branches_cleaned next_release_plan",
    "rollback_followup.after": "team_notified cause_analyzed incident_report redeploy_plan",
}


def test_item_keys_stay_stable(hallyu: Checklist) -> None:
    expected = [f"{section}.{key}" for section, keys in STABLE_KEYS.items() for key in keys.split()]
    assert [item.key for phase in hallyu.phases for item in phase.items] == expected
    assert hallyu.item("pre_deploy.code_quality.tests_pass").text == "모든 테스트가 통과하는가?"
    assert hallyu.item_phase("production.monitoring.p95_normal").key == "production"


# --- notations and optional fields -----------------------------------------------------------------------


def _fast_data() -> dict[str, Any]:
    data = yaml.safe_load(FAST.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _dump(data: dict[str, Any]) -> str:
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)


def test_fast_checklist_has_short_waits_and_placeholders() -> None:
    fast = load_checklist(FAST)
    assert [s.wait for s in fast.canary_stages] == [timedelta(seconds=2), timedelta(seconds=3), None]
    assert fast.post_deploy_watch == timedelta(seconds=3)
    assert fast.metrics is not None
    assert fast.metrics.sample_interval == timedelta(seconds=1)
    assert {e.health_url for e in fast.environments} == {"http://127.0.0.1:1/health"}
    assert all(1 <= len(p.items) <= 2 for p in fast.phases)
    assert [c.mention for c in fast.contacts] == [None, "<@U0TECHLEAD>", "<!subteam^S0DEVOPS01>", "@pm"]


def test_notations_convert_to_domain_units() -> None:
    data = _fast_data()
    data["gate"] = {"max_error_rate": "0.5%", "max_p95": "1.5s"}
    data["metrics"]["baseline_p95"] = "120ms"
    data["rollback"]["criteria"][1].update(threshold="1.5x", dry_run=True)
    data["phases"][2]["tick_role"] = "release_managers"
    data["post_deploy_watch"] = "1h30m"

    checklist = load_checklist_text(_dump(data), "inline.yaml")

    assert checklist.gate is not None
    assert (checklist.gate.max_error_rate, checklist.gate.max_p95_ms) == (0.005, 1500.0)
    assert checklist.metrics is not None
    assert checklist.metrics.baseline_p95_ms == 120.0
    assert (checklist.criteria[1].threshold, checklist.criteria[1].dry_run) == (1.5, True)
    assert checklist.phase("production").tick_role is TickRole.RELEASE_MANAGERS
    assert checklist.post_deploy_watch == timedelta(hours=1, minutes=30)
    summary = summarize(checklist)
    assert "ticked by release_managers" in summary
    assert "p95 >= 1.5x baseline, dry run" in summary
    assert "Post-deploy watch: 1h30m" in summary


def test_yaml_anchors_share_a_procedure(hallyu: Checklist) -> None:
    assert hallyu.rollback is not None
    assert hallyu.rollback.procedure == hallyu.phase("rollback_followup").sections[0].procedure
    assert hallyu.rollback.procedure is not None
    assert hallyu.rollback.procedure.startswith("# 1. 이전 버전으로 롤백\nkubectl rollout undo")


# --- broken files ----------------------------------------------------------------------------------------


def _mutated(change: Callable[[dict[str, Any]], object]) -> str:
    data = _fast_data()
    change(data)
    return _dump(data)


def _set(path: str, value: object) -> Callable[[dict[str, Any]], None]:
    """Return a change that sets the value at a dotted path like ``phases.0.kind``."""

    def change(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = data
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        node[int(last) if last.isdigit() else last] = value

    return change


def _items(data: dict[str, Any]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = data["phases"][3]["sections"][0]["items"]
    return items


BROKEN: list[tuple[str, str, str]] = [
    # (file text, field path, message) -- the error line must read "<file>: <path>: <message...>"
    (
        _mutated(_set("canary.0.wait", "15 minutes")),
        "canary[0].wait",
        "invalid duration '15 minutes': write it like 15m, 30m or 90s",
    ),
    (_mutated(_set("canary.1.wait", 30)), "canary[1].wait", "invalid duration 30: write it like 15m"),
    (
        _mutated(lambda d: _items(d)[1].update(key=_items(d)[0]["key"])),
        "phases[3].sections[0].items[1].key",
        "duplicate key 'post_deploy.immediate.services_ok' (also at phases[3].sections[0].items[0].key)",
    ),
    (
        # dots in keys let phase 'pre.checks' + section 'checks' meet phase 'pre' + section 'checks.checks'
        _mutated(
            lambda d: (
                _set("phases.0.key", "pre.checks")(d),
                _set("phases.1.key", "pre")(d),
                _set("phases.1.sections.1.key", "checks.checks")(d),
                _set("phases.1.sections.1.items.0.key", "tests_pass")(d),
            )
        ),
        "phases[1].sections[1].items[0].key",
        "duplicate key 'pre.checks.checks.tests_pass' (also at phases[0].sections[0].items[0].key)",
    ),
    (_mutated(_set("phases.1.key", "pre_deploy")), "phases[1].key", "duplicate key 'pre_deploy'"),
    (
        _mutated(_set("phases.0.sectons", [])),
        "phases[0].sectons",
        "unknown field 'sectons' (allowed here: key, title, kind, environment, tick_role, sections)",
    ),
    (_mutated(lambda d: d.pop("title")), "title", "required field is missing"),
    (
        _mutated(_set("phases.1.kind", "deployment")),
        "phases[1].kind",
        "Input should be 'checklist', 'deploy'",
    ),
    (_mutated(lambda d: d.pop("canary")), "canary", "the canary phase needs canary stages"),
    (
        _mutated(
            lambda d: (
                _set("phases.0.key", "p" * 60)(d),
                _set("phases.0.sections.0.key", "s" * 60)(d),
                _set("phases.0.sections.0.items.0.key", "i" * 60)(d),
            )
        ),
        "phases[0].sections[0].items[0].key",
        "is 182 characters, at most 150 (it travels as a Slack option value)",
    ),
    (
        _mutated(_set("phases.0.sections.0.items.0.key", "Tests")),
        "phases[0].sections[0].items[0].key",
        "invalid key",
    ),
    (
        _mutated(_set("phases.0.sections.0.items.0.text", "x" * 76)),
        "phases[0].sections[0].items[0].text",
        "at most 75",
    ),
    (
        _mutated(_set("gate.max_error_rate", 0.01)),
        "gate.max_error_rate",
        'invalid percentage 0.01: write it like "1%"',
    ),
    (_mutated(_set("gate.max_p95", 200)), "gate.max_p95", "invalid latency 200: write it like 200ms or 1.5s"),
    (
        _mutated(lambda d: d.pop("post_deploy_watch")),
        "post_deploy_watch",
        "the watch phase needs post_deploy_watch",
    ),
    (_mutated(_set("phases.2.environment", "prod")), "phases[2].environment", "unknown environment 'prod'"),
    (
        _mutated(lambda d: d["phases"][2].pop("environment")),
        "phases[2]",
        "a canary phase needs an environment",
    ),
    (
        _mutated(lambda d: d["phases"].insert(0, d["phases"].pop(2))),
        "phases[2].kind",
        "a deploy phase cannot come after the canary phase at phases[0]",
    ),
    (
        _mutated(lambda d: d["phases"].append(dict(d["phases"][2], key="again"))),
        "phases[5].kind",
        "at most one canary phase (the first is phases[2])",
    ),
    (
        _mutated(lambda d: d["phases"].insert(0, d["phases"].pop())),
        "phases[0].kind",
        "the rollback_followup phase must be the last phase",
    ),
    (_mutated(_set("canary.1.traffic", 5)), "canary[1].traffic", "more traffic than the one before"),
    (_mutated(_set("canary.2.traffic", 90)), "canary[2].traffic", "the last canary stage must be 100"),
    (
        _mutated(_set("canary.0.traffic", "10%")),
        "canary[0].traffic",
        "Input should be a valid integer, got '10%'",
    ),
    (
        _mutated(_set("rollback.criteria.2.threshold", "5%")),
        "rollback.criteria[2].threshold",
        "takes no threshold",
    ),
    (
        _mutated(_set("rollback.criteria.1.threshold", "200%")),
        "rollback.criteria[1].threshold",
        "invalid ratio",
    ),
    (
        _mutated(_set("rollback.criteria.0.threshold", None)),
        "rollback.criteria[0].threshold",
        "needs a threshold",
    ),
    (
        _mutated(lambda d: d.pop("metrics")),
        "rollback.criteria[1].kind",
        "this latency_ratio criterion reads Prometheus: add a metrics section",
    ),
    (
        _mutated(_set("rollback.target.namespace", "Prod_NS")),
        "rollback.target.namespace",
        "invalid Kubernetes",
    ),
    (
        _mutated(_set("contacts.1.slack_id", "tech-lead")),
        "contacts[1].slack_id",
        "invalid Slack id 'tech-lead'",
    ),
    (
        _mutated(_set("environments.0.health_url", "staging/health")),
        "environments[0].health_url",
        "invalid URL",
    ),
    (
        _mutated(_set("phases.0.sections.0.items.0", "just text")),
        "phases[0].sections[0].items[0]",
        "expected a mapping",
    ),
    (
        _mutated(_set("phases.0.sections.0.items", [])),
        "phases[0]",
        "a checklist phase needs at least one item",
    ),
    # The shapes every field shares (bot.checklist.schema reads them): lists, numbers, flags, choices, nesting.
    (_mutated(_set("phases.0.sections", "checks")), "phases[0].sections", "expected a list"),
    (_mutated(_set("phases", [])), "phases", "expected at least one entry, got an empty list"),
    (_mutated(_set("canary.0.traffic", 0)), "canary[0].traffic", "greater than or equal to 1, got 0"),
    (_mutated(_set("canary.0.traffic", True)), "canary[0].traffic", "a valid integer, got True"),
    (
        _mutated(_set("traffic", {"provider": "gateway-api", "rule": 64})),
        "traffic.rule",
        "less than or equal to 63",
    ),
    (_mutated(_set("rollback.criteria.0.dry_run", "no")), "rollback.criteria[0].dry_run", "a valid boolean"),
    (
        _mutated(_set("rollback.criteria.0.on_breach", "ignore")),
        "rollback.criteria[0].on_breach",
        "'page' or 'abort'",
    ),
    (_mutated(_set("phases.0.tick_role", None)), "phases[0].tick_role", "Input should be 'anyone' or"),
    (_mutated(_set("rollback.target", None)), "rollback.target", "expected a mapping of fields"),
    (
        _mutated(lambda d: d["rollback"]["target"].pop("namespace")),
        "rollback.target.namespace",
        "required field",
    ),
    (
        _mutated(_set("gate.max_latency", "200ms")),
        "gate.max_latency",
        "unknown field 'max_latency' (allowed here: max_error_rate, max_p95, min_observation)",
    ),
]


@pytest.mark.parametrize(("text", "path", "message"), BROKEN, ids=[f"{p}: {m[:30]}" for _, p, m in BROKEN])
def test_broken_files_name_the_file_and_field(tmp_path: Path, text: str, path: str, message: str) -> None:
    file = tmp_path / "team.yaml"
    file.write_text(text, encoding="utf-8")

    with pytest.raises(ChecklistError) as caught:
        load_checklist(file)

    lines = caught.value.user_message.splitlines()
    assert any(line.startswith(f"{file}: {path}: ") and message in line for line in lines), lines
    assert all(line.startswith(f"{file}: ") for line in lines)
    assert "Traceback" not in caught.value.user_message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: x\nphases: [\n  - key: a\n", "line 3, column 3: invalid YAML"),
        ("name: x\n\ttitle: y\n", "line 2, column 1: invalid YAML"),
        ("name: a\nname: b\n", "line 2, column 1: invalid YAML: the key 'name' is written twice"),
        ("", "the file is empty"),
        ("- a\n- b\n", "the top level must be a mapping"),
    ],
)
def test_unreadable_yaml_gives_line_and_column(tmp_path: Path, text: str, message: str) -> None:
    file = tmp_path / "bad.yaml"
    file.write_text(text, encoding="utf-8")

    with pytest.raises(ChecklistError) as caught:
        load_checklist(file)

    assert caught.value.user_message == f"{file}: {message}" or caught.value.user_message.startswith(
        f"{file}: {message}"
    )


def test_missing_file_and_bad_encoding(tmp_path: Path) -> None:
    with pytest.raises(ChecklistError, match="no such file") as caught:
        load_checklist("checklists/nope.yaml")
    assert caught.value.user_message == "checklists/nope.yaml: no such file"

    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes("title: café\n".encode("latin-1"))
    with pytest.raises(ChecklistError) as caught:
        load_checklist(latin1)
    assert caught.value.user_message.startswith(f"{latin1}: not UTF-8 text")

    with pytest.raises(ChecklistError) as caught:
        load_checklist(tmp_path)
    assert caught.value.user_message == f"{tmp_path}: is a directory, not a checklist file"


def test_every_problem_is_reported_not_just_the_first() -> None:
    data = _fast_data()
    data["canary"][0]["wait"] = "soon"
    data["phases"][0]["title"] = ""
    with pytest.raises(ChecklistError) as caught:
        load_checklist_text(_dump(data), "two.yaml")
    lines = caught.value.user_message.splitlines()
    assert [line.split(": ")[1] for line in lines] == ["phases[0].title", "canary[0].wait"]


def test_the_minimal_example_in_the_readme_loads() -> None:
    readme = (REPO / "checklists" / "README.md").read_text(encoding="utf-8")
    example = readme.split("## A minimal file", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]

    checklist = load_checklist_text(example, "README.md")

    assert [p.kind for p in checklist.phases] == [PhaseKind.CHECKLIST, PhaseKind.CANARY]
    assert [(s.traffic_percent, s.wait) for s in checklist.canary_stages] == [
        (50, timedelta(minutes=10)),
        (100, None),
    ]
    assert checklist.rollback is not None
    assert checklist.rollback.namespace == "web-prod"
