"""Several checklists on one deployment: each team's channel runs its own, a shared channel asks for the service,
two services release the same version side by side, a running release keeps its checklist across a restart with
a changed set, each checklist's managers manage their service, and the set is validated at start and by the CLI.

Signed HTTP into the real Bolt app, the real slack_sdk out to the fake Slack; SQLite and Postgres."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
import sqlalchemy as sa

from bot.checklist.loading import load_checklist_set
from bot.db.migrate import downgrade, upgrade
from bot.errors import ChecklistError, ConfigError, UsageError
from bot.slack.gateway import ChannelPacer
from tests.conftest import FAST_CHECKLIST, RunningBot, make_settings, start_bot
from tests.fakes.slack_api import FakeSlack, render_text
from tests.test_dashboard import open_home
from tests.test_release_start import release_messages

ALPHA_ONLY = "C0ALPHA001"  # alpha's own channel
SHARED = "C0SHARED01"  # alpha and beta both release here
ELSEWHERE = "C0OTHER001"  # nobody lists it: the fallback (gamma) runs here
ALPHA_MANAGER = "U0ALPHAMGR"
GLOBAL_MANAGER = "U0GLOBAL01"
OUTSIDER = "U0OUTSIDE1"


def checklist_text(
    service: str, title: str, *, channels: list[str] | None = None, managers: list[str] = ()
) -> str:  # type: ignore[assignment]
    """The fast test checklist as another team's: its own name, title, service, channels and managers."""
    text = FAST_CHECKLIST.read_text(encoding="utf-8")
    head = f'name: {service}\ntitle: "{title}"\nservice: {service}\n'
    if channels is not None:
        head += f"channels: [{', '.join(channels)}]\n"
    if managers:
        head += f"managers: [{', '.join(managers)}]\n"
    text = re.sub(r'^name: fast\ntitle: "Fast test checklist"\nservice: backend\n', head, text, flags=re.M)
    assert head in text
    return text


def write_set(folder: Path, *, fallback: bool = True, beta: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "alpha.yaml").write_text(
        checklist_text("alpha", "Alpha checklist", channels=[ALPHA_ONLY, SHARED], managers=[ALPHA_MANAGER])
    )
    if beta:
        (folder / "beta.yml").write_text(checklist_text("beta", "Beta checklist", channels=[SHARED]))
    if fallback:
        (folder / "gamma.yaml").write_text(checklist_text("gamma", "Gamma checklist"))
    (folder / "README.md").write_text("not a checklist: only *.yaml and *.yml are read\n")
    # An editor's hidden copy, and a mounted ConfigMap's ..data entry: never read as checklists.
    (folder / ".alpha.yaml.swp.yaml").write_text("name: [broken\n")
    (folder / "..data").mkdir(exist_ok=True)
    return folder


def bot_on(db_url: str, fake: FakeSlack, folder: Path, **overrides: object) -> RunningBot:
    settings = replace(make_settings(db_url, fake), checklist_path=str(folder), **overrides)
    return start_bot(settings, fake, sync_interval_s=0.2, pacer=ChannelPacer(0.0))


@pytest.fixture
def many(db_url: str, fake_slack: FakeSlack, tmp_path: Path) -> Iterator[RunningBot]:
    rb = bot_on(db_url, fake_slack, write_set(tmp_path / "checklists"))
    try:
        yield rb
    finally:
        rb.stop()


def header_text(fake: FakeSlack, channel: str, version: str, service: str) -> str:
    """The header the bot posted for a release of ``service`` in ``channel`` (it names the service)."""

    def found() -> str | None:
        for message in release_messages(fake, channel):
            text = render_text(message.get("blocks", []))
            if f"Release {version}" in text and f"`{service}`" in text:
                return text
        return None

    return fake.wait_for(found)


def nothing_started(rb: RunningBot) -> bool:
    # A start the bot wrongly accepted would have created its release within this time (it is acked first).
    time.sleep(0.3)
    return rb.services.recent(None) == []


# --- which checklist a channel runs ----------------------------------------------------------------------------


def test_each_channel_runs_its_own_teams_checklist(many: RunningBot) -> None:
    alice = many.user()
    assert "Starting v1.0.0" in alice.command("start v1.0.0", channel=ALPHA_ONLY).json()["text"]
    assert "Starting v2.0.0" in alice.command("start v2.0.0", channel=ELSEWHERE).json()["text"]

    assert "*Alpha checklist*" in header_text(many.fake, ALPHA_ONLY, "v1.0.0", "alpha")
    assert "*Gamma checklist*" in header_text(many.fake, ELSEWHERE, "v2.0.0", "gamma")
    alpha = many.services.find(ALPHA_ONLY, "v1.0.0")
    assert (alpha.release.service, alpha.checklist.title) == ("alpha", "Alpha checklist")
    assert many.services.find(ELSEWHERE, "v2.0.0").release.service == "gamma"


def test_a_channel_of_several_services_asks_which_one_and_starts_nothing(many: RunningBot) -> None:
    reply = many.user().command("start v1.0.0", channel=SHARED).json()
    assert reply["response_type"] == "ephemeral"
    assert "several services" in reply["text"]
    assert "`alpha` (Alpha checklist)" in reply["text"] and "`beta` (Beta checklist)" in reply["text"]
    assert "`/release start alpha v1.0.0`" in reply["text"]
    assert nothing_started(many)


def test_an_unknown_service_is_answered_with_the_list(many: RunningBot) -> None:
    reply = many.user().command("start delta v1.0.0", channel=SHARED).json()
    assert reply["response_type"] == "ephemeral"
    assert "no service `delta`" in reply["text"]
    for service in ("alpha", "beta", "gamma"):
        assert f"`{service}`" in reply["text"]
    assert nothing_started(many)


def test_a_service_named_outside_its_channels_says_where_it_runs(many: RunningBot) -> None:
    alice = many.user()
    beta = alice.command("start beta v1.0.0", channel=ALPHA_ONLY).json()
    assert beta["response_type"] == "ephemeral"
    assert f"`beta` releases run in <#{SHARED}>" in beta["text"]
    assert "Nothing was started" in beta["text"]
    gamma = alice.command("start gamma v1.0.0", channel=SHARED).json()
    assert "channels no other checklist lists" in gamma["text"]
    assert nothing_started(many)


def test_a_channel_nobody_claims_without_a_fallback_names_the_release_channels(
    db_url: str, fake_slack: FakeSlack, tmp_path: Path
) -> None:
    rb = bot_on(db_url, fake_slack, write_set(tmp_path / "set", fallback=False))
    try:
        reply = rb.user().command("start v1.0.0", channel=ELSEWHERE).json()
        assert reply["response_type"] == "ephemeral"
        assert "No checklist runs releases in this channel" in reply["text"]
        assert f"<#{ALPHA_ONLY}>" in reply["text"] and f"<#{SHARED}>" in reply["text"]
        assert nothing_started(rb)
    finally:
        rb.stop()


# --- two services, one channel, one version -------------------------------------------------------------------


def test_two_services_release_the_same_version_in_one_channel(many: RunningBot) -> None:
    alice = many.user()
    alice.command("start alpha v1.2.3", channel=SHARED)
    assert "*Alpha checklist*" in header_text(many.fake, SHARED, "v1.2.3", "alpha")
    alice.command("start beta v1.2.3", channel=SHARED)
    assert "*Beta checklist*" in header_text(many.fake, SHARED, "v1.2.3", "beta")

    # Again, while both run: refused for that service only.
    again = alice.command("start beta v1.2.3", channel=SHARED)
    assert again.status_code == 200
    many.fake.wait_for(lambda: any("already in progress" in r.get("text", "") for r in many.fake.responses()))
    assert len(many.services.recent(SHARED)) == 2

    listed = alice.command("list", channel=SHARED).json()["text"]
    assert "|alpha v1.2.3>" in listed and "|beta v1.2.3>" in listed

    # Without the service, a command naming the version cannot tell which is meant.
    ambiguous = alice.command("status v1.2.3", channel=SHARED).json()
    assert ambiguous["response_type"] == "ephemeral"
    assert "several services here: `beta`, `alpha`" in ambiguous["text"]
    assert "before the version, e.g. `beta v1.2.3`" in ambiguous["text"]
    status = alice.command("status beta v1.2.3", channel=SHARED).json()
    assert "Beta checklist" in status["text"] and "Alpha" not in status["text"]
    assert "Beta checklist" in alice.command("status beta", channel=SHARED).json()["text"]

    # Naming nothing while both run: asked which, never the newest taken for it.
    bare = alice.command("status", channel=SHARED).json()
    assert bare["response_type"] == "ephemeral"
    assert "Several services have a release running here: `beta`, `alpha`" in bare["text"]
    assert "e.g. `beta v1.2.3`" in bare["text"]

    alice.command("abort beta v1.2.3 wrong artifact", channel=SHARED)
    many.fake.wait_for(lambda: many.services.find(SHARED, "v1.2.3", "beta").release.status == "aborted")
    assert many.services.find(SHARED, "v1.2.3", "alpha").release.status == "active"
    # One of them still running: that is the one a bare version means (today's "the active one first").
    assert "Alpha checklist" in alice.command("status v1.2.3", channel=SHARED).json()["text"]

    # The audit trail of each, on the command line.
    env = {"DATABASE_URL": many.bot.settings.database_url, "RELEASE_BOT_LANGUAGE": "en"}
    exported = cli("export", "v1.2.3", "--service", "beta", env=env)
    assert exported.returncode == 0, exported.stderr
    events = json.loads(exported.stdout)
    assert events[0]["details"]["service"] == "beta" and events[-1]["action"] == "release_aborted"


def test_todays_single_file_keeps_its_syntax_and_serves_every_channel(running: RunningBot) -> None:
    alice = running.user()
    alice.command("start v1.4.0", channel="C0ANYWHERE")
    running.fake.wait_for(lambda: release_messages(running.fake, "C0ANYWHERE"))
    header = render_text(release_messages(running.fake, "C0ANYWHERE")[0]["blocks"])
    assert "Release v1.4.0" in header
    assert "`backend`" not in header  # one checklist: the header stays as it was
    assert "v1.4.0" in alice.command("status v1.4.0", channel="C0ANYWHERE").json()["text"]
    # The service may be named anyway, before the version.
    assert "v1.4.0" in alice.command("status backend v1.4.0", channel="C0ANYWHERE").json()["text"]


# --- managers ---------------------------------------------------------------------------------------------


def test_a_checklists_managers_manage_its_service_and_nothing_else(
    db_url: str, fake_slack: FakeSlack, tmp_path: Path
) -> None:
    rb = bot_on(db_url, fake_slack, write_set(tmp_path / "set"), release_managers=(GLOBAL_MANAGER,))
    try:
        alpha_manager = rb.user(ALPHA_MANAGER, "amy")
        alpha_manager.command("start v1.0.0", channel=ALPHA_ONLY)
        header_text(rb.fake, ALPHA_ONLY, "v1.0.0", "alpha")
        alpha_manager.command("abort v1.0.0 wrong artifact", channel=ALPHA_ONLY)
        rb.fake.wait_for(lambda: rb.services.find(ALPHA_ONLY, "v1.0.0").release.status == "aborted")

        # Gamma's releases are not hers, and an outsider manages nothing.
        alpha_manager.command("start v1.0.0", channel=ELSEWHERE)
        rb.user(OUTSIDER, "otto").command("start v1.0.1", channel=ALPHA_ONLY)
        denials = rb.fake.wait_for(
            lambda: (
                (d := [r for r in rb.fake.responses() if "Only release managers" in r.get("text", "")])
                and len(d) >= 2
                and d
            )
        )
        assert len(denials) == 2
        assert [r.service for r in rb.services.recent(None)] == ["alpha"]

        # RELEASE_MANAGERS still manage every service.
        rb.user(GLOBAL_MANAGER, "gil").command("start v1.0.0", channel=ELSEWHERE)
        header_text(rb.fake, ELSEWHERE, "v1.0.0", "gamma")
    finally:
        rb.stop()


# --- a running release keeps its checklist --------------------------------------------------------------------


def test_a_running_release_keeps_its_checklist_after_a_restart_with_a_changed_set(
    db_url: str, fake_slack: FakeSlack, tmp_path: Path
) -> None:
    folder = write_set(tmp_path / "set")
    rb = bot_on(db_url, fake_slack, folder)
    try:
        rb.user().command("start alpha v3.0.0", channel=SHARED)
        header_text(rb.fake, SHARED, "v3.0.0", "alpha")
    finally:
        rb.stop()

    # The team renames its checklist and drops an item; beta leaves the shared channel for good.
    alpha = (folder / "alpha.yaml").read_text()
    alpha = alpha.replace('title: "Alpha checklist"', 'title: "Alpha checklist, second edition"')
    alpha = alpha.replace('          - key: reviewed\n            text: "Code review done?"\n', "")
    (folder / "alpha.yaml").write_text(alpha)
    (folder / "beta.yml").unlink()
    fake_slack.messages.clear()

    rb = bot_on(db_url, fake_slack, folder)
    try:
        kept = rb.services.find(SHARED, "v3.0.0")
        assert kept.checklist.title == "Alpha checklist"
        assert "pre_deploy.checks.reviewed" in {i.key for i in kept.checklist.flow_phases[0].items}
        status = rb.user().command("status v3.0.0", channel=SHARED).json()["text"]
        assert "*Alpha checklist*" in status and "second edition" not in status
        # A new release of alpha runs the edited checklist.
        rb.user().command("start v3.0.1", channel=SHARED)  # alpha is the only service here now
        header = header_text(rb.fake, SHARED, "v3.0.1", "alpha")
        assert "Alpha checklist, second edition" in header
    finally:
        rb.stop()


def test_a_running_release_of_a_removed_service_is_still_reached_by_its_name(
    db_url: str, fake_slack: FakeSlack, tmp_path: Path
) -> None:
    folder = write_set(tmp_path / "set")
    rb = bot_on(db_url, fake_slack, folder)
    try:
        alice = rb.user()
        alice.command("start alpha v4.0.0", channel=SHARED)
        header_text(rb.fake, SHARED, "v4.0.0", "alpha")
        alice.command("start beta v4.0.0", channel=SHARED)
        header_text(rb.fake, SHARED, "v4.0.0", "beta")
    finally:
        rb.stop()
    (folder / "beta.yml").unlink()  # beta's team moves to a deployment of its own

    rb = bot_on(db_url, fake_slack, folder)
    try:
        alice = rb.user()
        # The bot's own suggestion must work: it names beta's release as `beta v4.0.0`.
        bare = alice.command("status v4.0.0", channel=SHARED).json()["text"]
        assert "several services" in bare and "`beta`" in bare
        named = alice.command("status beta v4.0.0", channel=SHARED).json()
        assert named["response_type"] == "ephemeral"
        assert "no service" not in named["text"] and "*Beta checklist*" in named["text"]
        typo = alice.command("status betta v4.0.0", channel=SHARED).json()["text"]
        assert "no release betta v4.0.0 in this channel" in typo
        alice.command("abort beta v4.0.0 moved to its own deployment", channel=SHARED)
        rb.fake.wait_for(lambda: rb.services.find(SHARED, "v4.0.0", "beta").release.status == "aborted")
        assert rb.services.find(SHARED, "v4.0.0", "alpha").release.status == "active"
        # A new start of beta is refused: it has no checklist here any more.
        again = alice.command("start beta v4.0.1", channel=SHARED).json()["text"]
        assert "no service `beta`" in again
    finally:
        rb.stop()


# --- the set's rules ------------------------------------------------------------------------------------------


def test_set_rules_are_checked_at_start_with_one_line_naming_the_file(tmp_path: Path) -> None:
    folder = write_set(tmp_path / "set")
    loaded = load_checklist_set(folder)
    assert loaded.services == ("alpha", "beta", "gamma")  # by file name; README.md is not read
    assert [c.service for c in loaded.serving(SHARED)] == ["alpha", "beta"]
    assert [c.service for c in loaded.serving(ELSEWHERE)] == ["gamma"]

    (folder / "delta.yaml").write_text(checklist_text("delta", "Delta checklist"))
    with pytest.raises(ConfigError) as two_fallbacks:
        load_checklist_set(folder)
    line = two_fallbacks.value.user_message
    assert "\n" not in line
    assert str(folder / "gamma.yaml") in line and "lists no channels, nor does" in line
    assert str(folder / "alpha.yaml") in line or "delta.yaml" in line

    (folder / "delta.yaml").write_text(checklist_text("alpha", "Alpha again", channels=[SHARED]))
    with pytest.raises(
        ConfigError, match=r"service 'alpha' is also the service of .*alpha\.yaml; both list C0SHARED01"
    ):
        load_checklist_set(folder)


def test_a_channel_listed_twice_or_a_malformed_id_names_the_file_and_field(tmp_path: Path) -> None:
    twice = tmp_path / "twice.yaml"
    twice.write_text(checklist_text("alpha", "Alpha", channels=[SHARED, ALPHA_ONLY, SHARED]))
    with pytest.raises(
        ChecklistError,
        match=rf"twice\.yaml: channels\[2\]: {SHARED} is listed twice \(also at channels\[0\]\)",
    ):
        load_checklist_set(twice)
    malformed = tmp_path / "malformed.yaml"
    malformed.write_text(checklist_text("alpha", "Alpha", channels=['"#releases"'], managers=["alice"]))
    with pytest.raises(ChecklistError) as bad:
        load_checklist_set(malformed)
    assert "malformed.yaml: channels[0]: invalid channel id '#releases'" in bad.value.user_message
    assert "malformed.yaml: managers[0]: invalid Slack id 'alice'" in bad.value.user_message


def test_a_comma_separated_list_is_a_set_and_one_file_alone_is_todays_deployment(tmp_path: Path) -> None:
    folder = write_set(tmp_path / "set")
    listed = load_checklist_set(f"{folder / 'alpha.yaml'}, {folder / 'gamma.yaml'}")
    assert listed.services == ("alpha", "gamma")
    alone = load_checklist_set(FAST_CHECKLIST)
    assert [c.service for c in alone.serving("C0WHATEVER")] == ["backend"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(ChecklistError, match="no checklist in this directory"):
        load_checklist_set(tmp_path / "empty")


def test_start_up_refuses_a_broken_set_with_one_line(tmp_path: Path) -> None:
    folder = write_set(tmp_path / "set")
    (folder / "delta.yaml").write_text(checklist_text("delta", "Delta checklist"))
    result = cli(
        "serve",
        env={
            "RELEASE_BOT_CHECKLIST": str(folder),
            "SLACK_BOT_TOKEN": "xoxb-test",
            "SLACK_SIGNING_SECRET": "secret",
            "RELEASE_MANAGERS": "*",
        },
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert (
        len(lines) == 1 and "RELEASE_BOT_CHECKLIST is invalid" in lines[0] and "lists no channels" in lines[0]
    )
    assert "Traceback" not in result.stderr


# --- the CLI --------------------------------------------------------------------------------------------------


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        env={"PATH": "/usr/bin:/bin", **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_checklist_check_validates_a_directory_and_prints_each_service_and_its_channels(
    tmp_path: Path,
) -> None:
    folder = write_set(tmp_path / "set")
    result = cli("checklist", "check", str(folder))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    alpha = "alpha.yaml: Alpha checklist (service alpha, name alpha, version 1.0.0)"
    assert f"{alpha}: channels {ALPHA_ONLY}, {SHARED}; managers {ALPHA_MANAGER}" in out
    assert f"beta.yml: Beta checklist (service beta, name beta, version 1.0.0): channels {SHARED}" in out
    assert (
        "gamma.yaml: Gamma checklist (service gamma, name gamma, version 1.0.0): every other channel" in out
    )
    assert "3 of 3 checklists valid; the set is valid" in out

    # The configured set, when no file is named.
    configured = cli("checklist", "check", env={"RELEASE_BOT_CHECKLIST": str(folder)})
    assert configured.returncode == 0 and configured.stdout == out


def test_checklist_check_lists_every_problem_of_the_set_and_fails(tmp_path: Path) -> None:
    folder = write_set(tmp_path / "set")
    (folder / "delta.yaml").write_text(checklist_text("delta", "Delta checklist"))
    (folder / "broken.yaml").write_text("name: broken\n")
    result = cli(
        "checklist",
        "check",
        str(folder / "alpha.yaml"),
        str(folder / "delta.yaml"),
        str(folder / "gamma.yaml"),
        str(folder / "broken.yaml"),
    )
    assert result.returncode == 1
    assert "Alpha checklist (service alpha" in result.stdout
    errors = [line for line in result.stdout.splitlines() if line.startswith("error: ")]
    assert any("broken.yaml: title: required field is missing" in e for e in errors)
    assert any("gamma.yaml: lists no channels, nor does" in e and "delta.yaml" in e for e in errors)
    assert "3 of 4 checklists valid" in result.stdout
    assert "Traceback" not in result.stderr


def test_a_service_named_like_a_version_is_refused_naming_the_file(tmp_path: Path) -> None:
    # `/release start v2 v1.0.0` would read `v2` as the version: such a service could never be started by name.
    folder = write_set(tmp_path / "set", fallback=False)
    (folder / "v2.yaml").write_text(checklist_text("v2", "V2 checklist", channels=[SHARED]))
    result = cli("checklist", "check", str(folder))
    assert result.returncode == 1
    assert any(
        line.startswith("error: ") and "v2.yaml" in line and "reads as a version" in line
        for line in result.stdout.splitlines()
    ), result.stdout
    assert "Traceback" not in result.stderr
    with pytest.raises(ChecklistError, match="reads as a version"):
        load_checklist_set(folder)


def test_checklist_check_of_one_file_prints_what_it_always_did() -> None:
    result = cli("checklist", "check", str(FAST_CHECKLIST))
    assert result.returncode == 0
    assert result.stdout.startswith(
        f"{FAST_CHECKLIST}:\nFast test checklist (name fast, service backend, version 1.0.0)\n"
    )
    assert "checklists valid" not in result.stdout


# --- the migration -----------------------------------------------------------------------------------------


def test_the_migration_rewrites_active_keys_with_the_service_and_back(db_url: str) -> None:
    upgrade(db_url, "0009")
    engine = sa.create_engine(db_url, poolclass=sa.pool.NullPool)
    row = {
        "version": "v1.2.3",
        "channel_id": SHARED,
        "service": "backend",
        "checklist_name": "fast",
        "checklist_source": "name: fast",
        "status": "active",
        "step": "pre_deploy",
        "started_by": "U1",
        "started_by_name": "alice",
        "started_at": "2026-12-06 10:00:00",
        "step_started_at": "2026-12-06 10:00:00",
        "last_activity_at": "2026-12-06 10:00:00",
    }
    columns = ", ".join([*row, "active_key"])
    values = ", ".join([f":{k}" for k in row] + [":active_key"])
    with engine.begin() as conn:
        insert = sa.text(f"INSERT INTO releases ({columns}) VALUES ({values})")
        conn.execute(insert, {**row, "active_key": f"{SHARED}:v1.2.3"})
        conn.execute(insert, {**row, "version": "v1.2.2", "status": "finished", "active_key": None})

    def keys() -> list[tuple[str, str | None]]:
        with engine.connect() as conn:
            return [
                tuple(r)
                for r in conn.execute(sa.text("SELECT version, active_key FROM releases ORDER BY version"))
            ]  # type: ignore[misc]

    upgrade(db_url)
    assert keys() == [("v1.2.2", None), ("v1.2.3", f"{SHARED}:backend:v1.2.3")]
    downgrade(db_url, "0009")
    assert keys() == [("v1.2.2", None), ("v1.2.3", f"{SHARED}:v1.2.3")]
    engine.dispose()


# --- commands that take a service where a reason may follow ----------------------------------------------------


def test_parsing_takes_a_service_only_where_it_cannot_be_part_of_a_reason() -> None:
    from bot.slack.parsing import parse_command

    def parsed(text: str) -> tuple[str | None, str | None, str]:
        body = {"text": text, "channel_id": SHARED, "user_id": "U1", "user_name": "alice"}
        cmd = parse_command(body, ("alpha", "beta"))
        return cmd.service, cmd.version, cmd.reason

    assert parsed("start alpha v1.2.3") == ("alpha", "v1.2.3", "")
    assert parsed("start v1.2.3") == (None, "v1.2.3", "")
    assert parsed("abort beta v1.2.3 wrong artifact") == ("beta", "v1.2.3", "wrong artifact")
    assert parsed("rolledback alpha v1.2.3 reverted by hand") == ("alpha", "v1.2.3", "reverted by hand")
    # Not a service of this deployment: the words are the reason, as they always were.
    assert parsed("rolledback reverted v1.2.3 broke login") == (None, None, "reverted v1.2.3 broke login")
    assert parsed("unlock beta fixed and redeployed") == ("beta", None, "fixed and redeployed")
    assert parsed("unlock fixed and redeployed") == (None, None, "fixed and redeployed")
    assert parsed("status Beta") == ("beta", None, "")  # that service's running release here
    with pytest.raises(UsageError, match="command_extra_words"):
        parsed("start v1.2.3 v1.2.4")  # a version is never taken for a service

    with pytest.raises(UsageError) as unknown:
        parsed("start delta v1.2.3")
    assert (unknown.value.user_message, unknown.value.params["services"]) == (
        "service_unknown",
        "`alpha`, `beta`",
    )
    # Only a start needs a checklist for the service: a running release of one since removed is still named
    # (its lookup answers a typo).
    assert parsed("abort delta v1.2.3 wrong artifact") == ("delta", "v1.2.3", "wrong artifact")
    with pytest.raises(UsageError) as not_version:
        parsed("status not-a-version")
    assert not_version.value.user_message == "version_invalid"
    # After a known service the bad or missing version is what is answered, not the service's name.
    with pytest.raises(UsageError) as bad:
        parsed("start alpha 1.2.3")
    assert (bad.value.user_message, bad.value.params["version"]) == ("version_invalid", "1.2.3")
    with pytest.raises(UsageError) as missing:
        parsed("start alpha")
    assert missing.value.user_message == "version_missing"
    with pytest.raises(UsageError) as bad_abort:
        parsed("abort beta broke login")
    assert (bad_abort.value.user_message, bad_abort.value.params["version"]) == ("version_invalid", "broke")


def test_unlock_and_contacts_in_a_channel_of_several_services(many: RunningBot) -> None:
    alice = many.user()
    ambiguous = alice.command("unlock redeployed the fix", channel=SHARED).json()
    assert ambiguous["response_type"] == "ephemeral"
    assert (
        "`alpha`, `beta`" in ambiguous["text"]
        and "`/release unlock alpha redeployed the fix`" in ambiguous["text"]
    )

    # A rollback of beta locks beta's production only.
    alice.command("start beta v1.0.0", channel=SHARED)
    header_text(many.fake, SHARED, "v1.0.0", "beta")
    alice.command("rolledback beta v1.0.0 reverted by hand", channel=SHARED)
    many.fake.wait_for(
        lambda: any(
            "`/release unlock beta <reason>`" in m.get("text", "") for m in many.fake.messages.get(SHARED, [])
        )
    )
    alice.command("start beta v1.0.1", channel=SHARED)
    many.fake.wait_for(lambda: any("locked" in r.get("text", "") for r in many.fake.responses()))
    alice.command("start alpha v1.0.1", channel=SHARED)
    header_text(many.fake, SHARED, "v1.0.1", "alpha")

    alice.command("unlock beta redeployed the fix", channel=SHARED, response_name="unlocked")
    unlocked = many.fake.wait_for(lambda: many.fake.responses("unlocked"))[0]["text"]
    assert "beta" in unlocked and "redeployed the fix" in unlocked
    alice.command("start beta v1.0.1", channel=SHARED)
    header_text(many.fake, SHARED, "v1.0.1", "beta")

    # Each serving checklist's own contacts, one table each.
    contacts = alice.command("contacts", channel=SHARED).json()["text"]
    assert contacts.count("PM") == 2


# --- the tag push ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("services", "started"),
    [
        (("backend", "web"), "backend"),  # the service named like the repository (hallyulatino/backend)
        (("api", "web"), None),  # several serve RELEASE_CHANNEL and none is named like it: nothing starts
        (("api",), "api"),  # the one serving RELEASE_CHANNEL
    ],
)
def test_a_pushed_tag_starts_with_the_repositorys_checklist(
    db_url: str, fake_slack: FakeSlack, tmp_path: Path, services: tuple[str, ...], started: str | None
) -> None:
    from tests.evidence_support import CHANNEL, REPO, WEBHOOK_SECRET, ready_repo
    from tests.fakes import github_webhooks as hooks
    from tests.fakes.github_api import FakeGitHub

    folder = tmp_path / "set"
    folder.mkdir()
    for service in services:
        (folder / f"{service}.yaml").write_text(
            checklist_text(service, f"{service} checklist", channels=[CHANNEL])
        )
    (folder / "other.yaml").write_text(checklist_text("other", "Elsewhere", channels=[ALPHA_ONLY]))
    with FakeGitHub() as github:
        _repo, sha = ready_repo(github)
        rb = bot_on(
            db_url,
            fake_slack,
            folder,
            github_repository=REPO,
            github_api_url=github.base_url,
            github_token=github.token,
            github_webhook_secret=WEBHOOK_SECRET,
            release_channel=CHANNEL,
        )
        try:
            response = hooks.deliver(
                rb.http, rb.url, "push", hooks.push_tag(REPO, "v1.4.0", sha), secret=WEBHOOK_SECRET
            )
            assert response.status_code == 202
            if started is None:
                rb.bot.work_pool.submit(lambda: None).result(5)  # type: ignore[union-attr]
                assert nothing_started(rb)
            else:
                assert f"*{started} checklist*" in header_text(rb.fake, CHANNEL, "v1.4.0", started)
                assert [r.service for r in rb.services.recent(None)] == [started]
        finally:
            rb.stop()


def test_the_start_up_line_names_each_checklist_its_file_and_channels(tmp_path: Path) -> None:
    from bot.runtime.startup import summary

    folder = write_set(tmp_path / "set")
    fake = SimpleNamespace(base_url="http://127.0.0.1:1/api/")
    settings = replace(make_settings("sqlite:///x.db", fake), checklist_path=str(folder))  # type: ignore[arg-type]
    line = summary(settings, load_checklist_set(folder), None, environ={})
    assert f"alpha from {folder / 'alpha.yaml'} (alpha, sha256 " in line
    assert f"; channels {ALPHA_ONLY} {SHARED})" in line
    assert f"gamma from {folder / 'gamma.yaml'} (gamma, sha256 " in line and "every other channel" in line
    alone = summary(
        replace(settings, checklist_path=str(FAST_CHECKLIST)), load_checklist_set(FAST_CHECKLIST), None
    )
    assert f"checklist {FAST_CHECKLIST} (fast, sha256 " in alone  # one file: the line it always was


def test_app_home_names_each_releases_service(many: RunningBot) -> None:
    """Two services' v1.2.3 side by side in one channel: Home must say which row is which."""
    alice = many.user()
    many.fake.set_members(SHARED, [alice.user_id])
    alice.command("start alpha v1.2.3", channel=SHARED)
    alice.command("start beta v1.2.3", channel=SHARED)
    many.fake.wait_for(lambda: len(many.services.recent(SHARED)) == 2)
    assert open_home(alice) == 200
    home = many.fake.wait_for(lambda: many.fake.home_views.get(alice.user_id))
    text = render_text(home["blocks"])
    assert "`alpha` v1.2.3" in text and "`beta` v1.2.3" in text

