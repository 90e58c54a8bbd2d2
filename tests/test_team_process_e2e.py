"""Issue 19's seed rows that are about words and records, end to end through Slack (signed requests in, the fake
Slack out), on SQLite and Postgres: the Korean the bot writes, contacts who are really mentioned, the 5.1 lead-in,
5.2/5.3 after every rollback (the bot's, failed, and one done by hand) and the checklist's own version.
"""

from __future__ import annotations

import html
import re
import subprocess
import sys
from typing import Any

import pytest

from bot.i18n import CATALOG
from tests import test_rollback_e2e as rollback_e2e
from tests.conftest import SEED_CHECKLIST, RunningBot
from tests.fakes.k8s_api import FakeKubeApi, install_backend
from tests.fakes.slack_api import render_text
from tests.slack_user import buttons, submit_view
from tests.test_catalog import english_words
from tests.test_lifecycle import fresh_header, start, step_of, tick_phase
from tests.test_release_start import CHANNEL, export
from tests.test_rollback_e2e import (
    audit,
    confirm,
    export_md,
    manager,
    open_modal,
    progress,
    shown,
    start_release,
    thread,
)

# The rollback tests' fixtures: a fake Kubernetes API, a healthy health URL, and a bot wired to both.
kube = rollback_e2e.kube
health_url = rollback_e2e.health_url
settings_for = rollback_e2e.settings_for
rolling = rollback_e2e.rolling

BY_HAND = "release-rolled-back-by-hand"


def header_of(rb: RunningBot, version: str = "v1.4.0") -> dict[str, Any]:
    return rb.fake.wait_for(
        lambda: next(
            (
                m
                for m in rb.fake.messages.get(CHANNEL, [])
                if m.get("thread_ts") in (None, m["ts"]) and version in render_text(m.get("blocks", []))
            ),
            None,
        )
    )


def views_of(rb: RunningBot, callback: str) -> list[dict[str, Any]]:
    return [v for v in rb.fake.views.values() if v.get("callback_id") == callback]


# --- 5.2 / 5.3 after a rollback done by hand ---------------------------------------------------------------


def test_a_rollback_done_by_hand_is_recorded_with_who_when_why_and_gets_the_follow_up_and_report(
    rolling: RunningBot, kube: FakeKubeApi, db_url: str
) -> None:
    install_backend(kube, namespace="test-prod")
    header = start_release(rolling)
    assert BY_HAND in buttons(header)  # offered beside the rollback button
    mina = manager(rolling)

    # Someone outside RELEASE_MANAGERS is refused, and the refusal is recorded.
    outsider = rolling.user("U0OUTSIDER", "bob")
    assert outsider.click_button(CHANNEL, header, BY_HAND).status_code == 200
    rolling.fake.wait_for(
        lambda: [e for e in audit(rolling) if e.action == "permission_denied"
                 and e.details.get("action") == "record_rollback"]
    )
    assert not views_of(rolling, "rolled-back-by-hand-modal")

    assert mina.click_button(CHANNEL, header, BY_HAND).status_code == 200
    modal = rolling.fake.wait_for(lambda: views_of(rolling, "rolled-back-by-hand-modal"))[-1]
    assert modal["close"]["text"] == "Cancel" and modal["submit"]["text"] == "Confirm"
    assert submit_view(mina, modal, "  ").json()["response_action"] == "errors"
    submit_view(mina, modal, "kubectl rollout undo by hand: the bot could not reach the cluster")

    note = progress(rolling, header, "rolled production back by hand")
    assert "<@U0MANAGER1>" in note["text"] and "the bot could not reach the cluster" in shown(note)
    assert "kubectl rollout undo deployment/backend" in shown(note)  # the 5.2 procedure
    followup = rolling.fake.wait_for(
        lambda: next((m for m in thread(rolling.fake, header) if "item-toggle" in str(m.get("blocks"))), None)
    )
    assert "Consider rolling back if any of these holds:" in shown(followup)  # 5.1's lead-in with its criteria
    report = progress(rolling, header, "Incident report")
    assert "rolled back by hand" in shown(report)

    view = rolling.services.find(CHANNEL, "v1.4.0")
    assert view.status.value == "rolled_back"
    recorded = [e for e in audit(rolling) if e.action == "rollback_by_hand"]
    assert len(recorded) == 1 and recorded[0].actor.id == "U0MANAGER1"
    assert recorded[0].details["reason"].startswith("kubectl rollout undo by hand")
    assert recorded[0].at is not None
    assert "service_locked" in [e.action for e in audit(rolling)]
    # Kubernetes was not touched: the bot only records what people did.
    assert kube.requests_for("patch", "deployments") == []
    md = export_md(db_url, "v1.4.0")
    assert "(rolled back by hand)" in md and "mina: started the release, recorded a rollback done by hand" in md, md


def test_rolledback_command_records_it_for_the_channels_release_and_refuses_a_second_time(
    rolling: RunningBot, kube: FakeKubeApi
) -> None:
    install_backend(kube, namespace="test-prod")
    header = start_release(rolling)
    mina = manager(rolling)
    assert mina.command("rolledback").json()["text"].startswith("Please give a reason")
    assert mina.command("rolledback v1.4.0 undone from the console").status_code == 200
    progress(rolling, header, "rolled production back by hand")
    assert rolling.services.find(CHANNEL, "v1.4.0").status.value == "rolled_back"
    assert mina.command("rolledback v1.4.0 again").status_code == 200
    said = rolling.fake.wait_for(
        lambda: [e for e in rolling.fake.ephemerals if "already been rolled back" in e.get("text", "")]
    )
    assert said
    assert len([e for e in audit(rolling) if e.action == "rollback_by_hand"]) == 1


def test_a_rollback_by_hand_ends_the_release_and_locks_production_in_one_transaction(
    rolling: RunningBot, kube: FakeKubeApi
) -> None:
    """Were the lock written after the release ended, a start in between would ship the rolled-back version again.
    Written in the same transaction, a lock that cannot be written leaves the release as it was."""
    from sqlalchemy import event

    from bot.db.models import ServiceLockRow

    install_backend(kube, namespace="test-prod")
    header = start_release(rolling)
    mina = manager(rolling)

    def refuse(*_args: object) -> None:
        raise RuntimeError("the database refused the lock row")

    event.listen(ServiceLockRow, "before_insert", refuse)
    try:
        assert mina.command("rolledback v1.4.0 undone from the console").status_code == 200
        rolling.fake.wait_for(
            lambda: [e for e in rolling.fake.ephemerals if "That didn't work" in e.get("text", "")]
        )
    finally:
        event.remove(ServiceLockRow, "before_insert", refuse)
    assert rolling.services.find(CHANNEL, "v1.4.0").status.value == "active"
    assert not [e for e in audit(rolling) if e.action in ("rollback_by_hand", "release_rolled_back")]

    assert mina.command("rolledback v1.4.0 undone from the console").status_code == 200
    progress(rolling, header, "rolled production back by hand")
    actions = [e.action for e in audit(rolling)]
    assert actions.count("release_rolled_back") == 1 and actions.count("service_locked") == 1
    ended, locked = (
        next(e for e in audit(rolling) if e.action == a) for a in ("release_rolled_back", "service_locked")
    )
    assert ended.at == locked.at  # one transaction, one clock reading


def test_a_failed_bot_rollback_still_gets_the_procedure_the_follow_up_and_the_report(
    rolling: RunningBot, kube: FakeKubeApi
) -> None:
    install_backend(kube, namespace="test-prod")
    kube.rollout_mode = "stuck"
    header = start_release(rolling)
    mina = manager(rolling)
    confirm(mina, open_modal(rolling, mina), "latency")
    progress(rolling, header, "Rollback failed", timeout=30)
    steps = progress(rolling, header, "did not finish", timeout=30)
    assert "kubectl rollout undo deployment/backend" in shown(steps) and "/release rolledback" in shown(steps)
    rolling.fake.wait_for(lambda: next((m for m in thread(rolling.fake, header)
                                        if "item-toggle" in str(m.get("blocks"))
                                        and "Consider rolling back" in shown(m)), None), 30)
    progress(rolling, header, "Incident report", timeout=30)
    assert rolling.services.find(CHANNEL, "v1.4.0").status.value == "active"


# --- contacts ----------------------------------------------------------------------------------------------


@pytest.mark.settings(release_contacts=(("tech-lead", "U0OVERRIDE"),), release_managers=("U061F7AUR",))
def test_contacts_are_mentioned_by_role_in_the_incident_ping_and_listed_on_request(running: RunningBot) -> None:
    alice = running.user()
    listed = alice.command("contacts").json()
    assert listed["response_type"] == "ephemeral"
    table = html.unescape(listed["text"])
    assert "Tech lead: <@U0OVERRIDE>" in table  # RELEASE_CONTACTS wins over the file's id
    assert "DevOps: <!subteam^S0DEVOPS01>" in table
    assert "On-call: PagerDuty" in table
    assert "PM: @pm — :warning: no Slack id" in table

    start(running, alice)
    assert alice.command("incident v1.4.0 checkout returns 500 for every card payment").status_code == 200
    ping = running.fake.wait_for(
        lambda: next((m for m in running.fake.messages.get(CHANNEL, []) if "Contacts:" in shown(m)), None)
    )
    text = shown(ping)
    assert "Tech lead <@U0OVERRIDE>" in text and "DevOps <!subteam^S0DEVOPS01>" in text
    assert "U0TECHLEAD" not in text  # the file's id was overridden
    assert "@pm" not in text  # without an id nobody would be notified: not listed as if they were


# --- the header: closing line, version, 5.1 lead-in -----------------------------------------------------------


def test_the_header_shows_the_closing_line_the_version_and_the_criteria_lead_in(
    running: RunningBot, db_url: str
) -> None:
    alice = running.user()
    start(running, alice)
    text = shown(header_of(running))
    assert "Check this list on every deployment." in text
    assert "checklist version 1.0.0" in text
    assert "*Rollback criteria:* Consider rolling back if any of these holds: Error rate 5% or more" in text
    assert running.services.find(CHANNEL, "v1.4.0").release.checklist_version == "1.0.0"
    assert "version 1.0.0" in export(db_url, "v1.4.0", "md").stdout


# --- Korean ----------------------------------------------------------------------------------------------------


@pytest.mark.settings(language="ko")
def test_korean_dialogs_notes_and_refusals_are_korean(running: RunningBot) -> None:
    alice = running.user()
    start(running, alice)
    header = header_of(running)
    text = shown(header)
    assert "이 단계 시작:" in text and "님이" in text and "에 시작" in text
    assert "*롤백 기준:* Consider rolling back if any of these holds:" in text  # the file's own words

    # An override of the open-items gate: the note names the phase by its title, and says 강제 진행.
    assert alice.click_button(CHANNEL, header, "release-advance").status_code == 200
    refusal = running.fake.wait_for(
        lambda: [r for r in running.fake.responses() if "아직 진행할 수 없습니다" in r.get("text", "")]
    )[-1]
    alice.click_button(CHANNEL, {"ts": header["ts"], "blocks": refusal["blocks"]}, "gate-override")
    modal = running.fake.wait_for(lambda: views_of(running, "override-modal"))[-1]
    assert modal["close"]["text"] == "취소" and modal["title"]["text"] == "강제 진행"
    submit_view(alice, modal, "고객 장애 핫픽스")
    running.fake.wait_for(lambda: step_of(running) == "staging")
    note = running.fake.wait_for(
        lambda: (t := shown(header_of(running))) and "고객 장애 핫픽스" in t and t
    )
    assert "1. Before deploying 단계에서 체크리스트 게이트를 강제 진행" in note and "pre_deploy" not in note

    # The abort dialog and the abort note.
    fresh = fresh_header(running)
    alice.click_button(CHANNEL, fresh, "release-abort")
    abort = running.fake.wait_for(lambda: views_of(running, "abort-modal"))[-1]
    assert abort["close"]["text"] == "취소"
    submit_view(alice, abort, "스테이징 DB 마이그레이션 실패")
    aborted = running.fake.wait_for(
        lambda: next((m for m in running.fake.messages.get(CHANNEL, []) if "중단했습니다" in m.get("text", "")), None)
    )
    assert re.search(r"<@U061F7AUR> 님이 릴리스 \*v1\.4\.0\*을\(를\) 중단했습니다", aborted["text"])


@pytest.mark.settings(language="ko", release_managers=("U0MANAGER1",))
def test_korean_refusals_name_the_action_in_korean(running: RunningBot) -> None:
    bob = running.user("U0OUTSIDER", "bob")
    answer = bob.command("start v1.4.0")
    said = running.fake.wait_for(
        lambda: [e for e in [answer.json(), *running.fake.responses(), *running.fake.ephemerals]
                 if "릴리스 매니저만" in str(e.get("text", ""))]
    )
    assert "릴리스를 시작할 수 있습니다" in said[-1]["text"]
    for key in ("denied_advance", "denied_abort", "denied_roll_back", "denied_unlock", "denied_tick",
                "denied_record_rollback"):
        assert english_words(CATALOG[key]["ko"]) == [], key
    _ = tick_phase  # the Korean walk above ticks nothing by design: the override is what is shown


# --- checklist check ---------------------------------------------------------------------------------------------


def _check(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", "checklist", "check", str(SEED_CHECKLIST)],
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_checklist_check_warns_for_each_contact_without_an_id_and_shows_the_seed_lines() -> None:
    bare = _check({})
    assert bare.returncode == 0, bare.stderr
    warned = [line for line in bare.stdout.splitlines() if line.startswith("warning: contact")]
    assert [w.split()[2] for w in warned] == ["tech_lead", "devops", "pm"]
    assert "(name deployment, service backend, version 1.0.0)" in bare.stdout
    assert "Rollback criteria: 다음 조건 중 하나라도 해당되면 롤백 고려:" in bare.stdout
    assert "이 체크리스트는 모든 배포 시 반드시 확인해야 합니다." in bare.stdout

    given = _check({"RELEASE_CONTACTS": "tech-lead=U0123ABCD, @devops-team=S0456EFGH"})
    assert given.returncode == 0, given.stderr
    assert [w.split()[2] for w in given.stdout.splitlines() if w.startswith("warning: contact")] == ["pm"]
    assert "Contact 테크 리드: <@U0123ABCD> on Slack" in given.stdout
    assert "Contact DevOps: <!subteam^S0456EFGH> on Slack" in given.stdout

    typo = _check({"RELEASE_CONTACTS": "tech-laed=U0123ABCD"})
    assert "warning: RELEASE_CONTACTS names 'tech-laed', which is no contact of this checklist" in typo.stdout

    bad = _check({"RELEASE_CONTACTS": "tech-lead=alice"})
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "RELEASE_CONTACTS is invalid" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_the_new_commands_refuse_what_they_do_not_take(running: RunningBot) -> None:
    alice = running.user()
    assert "I don't know what `everyone` after `contacts` means" in alice.command("contacts everyone").json()["text"]
    assert "is not a release version" in alice.command("rolledback v1.4 undone by hand").json()["text"]
    assert "no active release" in alice.command("rolledback undone by hand").json()["text"]
    usage = alice.command("help").json()["text"]
    assert "/release rolledback [v1.2.3] <reason>" in usage and "/release contacts" in usage
