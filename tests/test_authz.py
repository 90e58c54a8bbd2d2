"""Who may do what, end to end: the roles table, starting, the incident declare–dismiss loop, modals that cannot be
redirected, the App Home by channel membership, and people's words never turning into mentions or links.

Each reproduces an attack that worked before: signed HTTP into the real bot, the fake Slack on the other side.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.db.engine import make_session_factory
from bot.db.uow import SqlUnitOfWork
from bot.domain.records import Actor
from bot.domain.roles import ROLES, Action, Role
from bot.errors import InvalidTransition
from bot.slack.gateway import ChannelPacer
from bot.slack.view_meta import ViewSeal
from tests.conftest import ROOT, RunningBot, make_settings, start_bot
from tests.fakes.k8s_api import FakeKubeApi, install_backend
from tests.fakes.slack_api import FakeSlack, render_text
from tests.slack_user import SECRET, TEAM, SlackUser, buttons, signed_headers, submit_view
from tests.test_lifecycle import CHANNEL, fresh_header, start, step_of
from tests.test_release_start import release_messages, wait_for_release
from tests.test_rollback_e2e import (  # noqa: F401 (fixtures, found by name)
    NS,
    audit,
    confirm,
    health_url,
    kube,
    launch,
    manager,
    open_modal,
    progress,
    rolling,
    settings_for,
    start_release,
    stored,
)

MANAGER, DEPUTY, OUTSIDER = "U0MANAGER1", "U0DEPUTY01", "U0OUTSIDER"
OTHER_CHANNEL = "C0OTHERCHN"


class MovableClock:
    """The wall clock, plus however far a test has moved it on (for cool-downs of minutes)."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock()


@pytest.fixture
def guarded(db_url: str, fake_slack: FakeSlack, clock: MovableClock) -> Iterator[RunningBot]:
    """A bot whose release managers are two named people; everyone else is only in the channel."""
    settings = make_settings(db_url, fake_slack, release_managers=(MANAGER, DEPUTY))
    rb = start_bot(
        settings, fake_slack, sync_interval_s=0.2, pacer=ChannelPacer(0.0), clock=clock, home_interval_s=0.2
    )
    try:
        yield rb
    finally:
        rb.stop()


def uow_of(rb: RunningBot) -> SqlUnitOfWork:
    return SqlUnitOfWork(make_session_factory(rb.bot.engine))


def answers(fake: FakeSlack) -> list[str]:
    return [str(r.get("text", "")) for r in fake.responses()] + [str(e["text"]) for e in fake.ephemerals]


# --- the table ----------------------------------------------------------------------------------------------


def test_the_readme_states_every_action_and_its_role_as_the_code_does() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Who may do what", 1)[1].split("\n## ", 1)[0]
    words = {
        "release managers": Role.MANAGERS,
        "anyone in the channel": Role.CHANNEL,
        "the phase's `tick_role`": Role.PHASE,
    }
    stated: dict[Action, Role] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        found = re.search(r"`(\w+)`", cells[0]) if len(cells) >= 2 else None
        if found is None or found.group(1) not in {a.value for a in Action}:
            continue
        stated[Action(found.group(1))] = next(r for w, r in words.items() if cells[1].startswith(w))
    assert stated == ROLES


# --- starting ----------------------------------------------------------------------------------------------


def test_someone_outside_release_managers_cannot_start_a_release(guarded: RunningBot) -> None:
    outsider = guarded.user(OUTSIDER, "otto")
    assert outsider.command("start v1.4.0").status_code == 200
    guarded.fake.wait_for(lambda: any("Only release managers may start" in a for a in answers(guarded.fake)))
    time.sleep(0.5)  # a release wrongly started would have been posted by now
    assert guarded.services.recent(CHANNEL) == []
    assert not release_messages(guarded.fake)

    start(guarded, guarded.user(MANAGER, "mia"))
    assert guarded.services.find(CHANNEL, "v1.4.0").release.started_by.id == MANAGER


# --- incidents ---------------------------------------------------------------------------------------------


def _pings(fake: FakeSlack) -> list[dict[str, Any]]:
    return [m for m in release_messages(fake) if "<!here>" in m.get("text", "")]


def _pinged(rb: RunningBot, rid: int) -> int:
    with uow_of(rb) as uow:
        return len([e for e in uow.audit.for_release(rid) if e.action == "incident_pinged"])


def _outbox(rb: RunningBot, rid: int) -> list[str]:
    with uow_of(rb) as uow:
        return [r.action for r in uow.watch.outbox.all(rid)]


def test_a_declare_dismiss_loop_pages_once_and_only_managers_silence_it(
    guarded: RunningBot, clock: MovableClock
) -> None:
    fake = guarded.fake
    mia, otto = guarded.user(MANAGER, "mia"), guarded.user(OUTSIDER, "otto")
    start(guarded, mia)
    rid = guarded.services.find(CHANNEL, "v1.4.0").release.id

    # Anyone in the channel may raise the alarm: one trigger, one @here.
    otto.command("incident v1.4.0 checkout is down")
    ping = fake.wait_for(lambda: _pings(fake) and _pings(fake)[0])
    fake.wait_for(lambda: _outbox(guarded, rid) == ["trigger"])
    fake.wait_for(lambda: _pinged(guarded, rid) == 1)  # the bot knows which message it pinged with

    # Before: three dismiss clicks and three declarations paged 4 times and pinged @here 4 times.
    for n in range(3):
        otto.click_button(CHANNEL, ping, "incident-dismiss")
        otto.command("incident v1.4.0 still down", response_name=f"again-{n}")
    otto.click_button(CHANNEL, ping, "incident-ack")
    fake.wait_for(lambda: sum("Only release managers may dismiss" in a for a in answers(fake)) == 3)
    fake.wait_for(lambda: sum("Only release managers may acknowledge" in a for a in answers(fake)) == 1)
    fake.wait_for(lambda: all(fake.responses(f"again-{n}") for n in range(3)))
    assert all("already declared" in fake.responses(f"again-{n}")[0]["text"] for n in range(3))
    time.sleep(0.5)
    assert _outbox(guarded, rid) == ["trigger"]
    assert len(_pings(fake)) == 1
    with uow_of(guarded) as uow:
        refused = [e.details["action"] for e in uow.audit.for_release(rid) if e.action == "permission_denied"]
    assert sorted(refused) == ["acknowledge", "dismiss", "dismiss", "dismiss"]

    # A manager dismisses it: one resolve. Right after, the channel cannot page again for the same criterion...
    mia.click_button(CHANNEL, ping, "incident-dismiss")
    fake.wait_for(lambda: _outbox(guarded, rid) == ["trigger", "resolve"])
    otto.command("incident v1.4.0 down again", response_name="cooling")
    answer = fake.wait_for(lambda: fake.responses("cooling"))[0]["text"]
    assert "dismissed this incident" in answer and "only release managers may declare it again" in answer
    assert _outbox(guarded, rid) == ["trigger", "resolve"] and len(_pings(fake)) == 1

    # ...until the cool-down is over (or a manager declares it).
    clock.advance(11 * 60)
    otto.command("incident v1.4.0 down again, for real")
    fake.wait_for(lambda: _outbox(guarded, rid) == ["trigger", "resolve", "trigger"])
    fake.wait_for(lambda: len(_pings(fake)) == 2)


# --- modals ------------------------------------------------------------------------------------------------


def _abort_modal(rb: RunningBot, user: SlackUser, channel: str) -> dict[str, Any]:
    before = len(rb.fake.calls("views.open"))
    header = rb.fake.wait_for(lambda: release_messages(rb.fake, channel) and release_messages(rb.fake, channel)[0])
    user.click_button(channel, header, "release-abort")
    call = rb.fake.wait_for(lambda: rb.fake.calls("views.open")[before:] and rb.fake.calls("views.open")[-1])
    return dict(call.params["view"])


def _refused(response: httpx.Response) -> bool:
    body = response.json() if response.content else {}
    return body.get("response_action") == "errors"


def test_a_modal_submission_cannot_be_redirected_to_another_release(guarded: RunningBot) -> None:
    mia, dan = guarded.user(MANAGER, "mia"), guarded.user(DEPUTY, "dan")
    start(guarded, mia)
    mia.command("start v2.0.0", channel=OTHER_CHANNEL)
    wait_for_release(guarded.fake, 1 + len(guarded.services.checklist.flow_phases), OTHER_CHANNEL)
    mine = guarded.services.find(CHANNEL, "v1.4.0").release
    theirs = guarded.services.find(OTHER_CHANNEL, "v2.0.0").release

    view = _abort_modal(guarded, mia, CHANNEL)
    # The metadata as it used to be (plain JSON), pointed at the other channel's release.
    plain = dict(view, private_metadata=json.dumps({"release": theirs.id, "channel": OTHER_CHANNEL}))
    assert _refused(submit_view(mia, plain, "wrong release"))
    # The bot's seal with its body edited: the signature no longer matches.
    signature, _, body = view["private_metadata"].partition(".")
    edited = body.replace(f'"release":{mine.id}', f'"release":{theirs.id}').replace(CHANNEL, OTHER_CHANNEL)
    assert edited != body
    assert _refused(submit_view(mia, dict(view, private_metadata=f"{signature}.{edited}"), "wrong release"))
    # A seal made with another key (someone who guessed the format, not the secret).
    forged = ViewSeal("not-the-secret").seal({"release": theirs.id, "channel": OTHER_CHANNEL}, MANAGER)
    assert _refused(submit_view(mia, dict(view, private_metadata=forged), "wrong release"))
    # The genuine dialog, submitted by someone it was not opened for (another manager).
    assert _refused(submit_view(dan, view, "not my dialog"))
    time.sleep(0.5)
    assert guarded.services.find(OTHER_CHANNEL, "v2.0.0").release.status == "active"
    assert guarded.services.find(CHANNEL, "v1.4.0").release.status == "active"

    # The dialog as opened, by the person it was opened for, does what it said.
    assert not _refused(submit_view(mia, view, "postponed"))
    guarded.fake.wait_for(lambda: guarded.services.find(CHANNEL, "v1.4.0").release.status == "aborted")
    assert guarded.services.find(OTHER_CHANNEL, "v2.0.0").release.status == "active"
    assert ViewSeal(SECRET).open(view["private_metadata"], MANAGER) == {"release": mine.id, "channel": CHANNEL}


# --- the App Home --------------------------------------------------------------------------------------------


def _open_home(rb: RunningBot, user_id: str) -> None:
    body = {
        "token": "legacy",
        "team_id": "T0ABCDEF1",
        "api_app_id": "A0RELEASE1",
        "event": {"type": "app_home_opened", "user": user_id, "channel": "D0HOME", "tab": "home"},
        "type": "event_callback",
        "event_id": f"Ev{time.monotonic_ns()}",
        "event_time": int(time.time()),
    }
    raw = json.dumps(body)
    response = rb.http.post(
        f"{rb.url}/slack/events", content=raw, headers=signed_headers(raw, content_type="application/json")
    )
    assert response.status_code == 200


def home_of(rb: RunningBot, user_id: str) -> str:
    """Open the App Home as ``user_id`` and return the tab as it was published for them."""

    def publishes() -> list[Any]:
        return [c for c in rb.fake.calls("views.publish") if c.params.get("user_id") == user_id]

    before = len(publishes())
    _open_home(rb, user_id)
    call = rb.fake.wait_for(lambda: publishes()[before:] and publishes()[-1])
    return render_text(call.params["view"]["blocks"])


def test_the_home_tab_shows_only_releases_of_channels_the_viewer_is_in(guarded: RunningBot) -> None:
    fake = guarded.fake
    mia = guarded.user(MANAGER, "mia")
    fake.set_members(CHANNEL, [MANAGER, OUTSIDER])
    fake.set_members(OTHER_CHANNEL, [MANAGER])  # say, a private channel for a security fix
    start(guarded, mia)
    mia.command("start v9.9.9-security", channel=OTHER_CHANNEL)
    wait_for_release(fake, 1 + len(guarded.services.checklist.flow_phases), OTHER_CHANNEL)

    outsider_view = home_of(guarded, OUTSIDER)
    assert "v1.4.0" in outsider_view and "v9.9.9-security" not in outsider_view
    manager_view = home_of(guarded, MANAGER)
    assert "v1.4.0" in manager_view and "v9.9.9-security" in manager_view
    stranger_view = home_of(guarded, "U0STRANGER")
    assert "v1.4.0" not in stranger_view and "v9.9.9" not in stranger_view

    # Memberships are cached: three viewers and more opens cost one conversations.members per channel.
    for user in (OUTSIDER, MANAGER, OUTSIDER):
        home_of(guarded, user)
    lookups = [c.params["channel"] for c in fake.calls("conversations.members")]
    assert sorted(lookups) == sorted([CHANNEL, OTHER_CHANNEL])


# --- rolling back a release that never reached production ----------------------------------------------------


def confirm_ticked(user: SlackUser, view: dict[str, Any], reason: str, ticked: list[str]) -> httpx.Response:
    """Submit the rollback modal with a reason and the confirmation boxes ticked."""
    values: dict[str, Any] = {"reason": {"reason": {"type": "plain_text_input", "value": reason}}}
    options = [{"text": {"type": "plain_text", "text": v}, "value": v} for v in ticked]
    values["confirm_undo"] = {"confirm_undo": {"type": "checkboxes", "selected_options": options}}
    payload = {
        "type": "view_submission",
        "team": TEAM,
        "user": {"id": user.user_id, "username": user.name, "name": user.name, "team_id": TEAM["id"]},
        "api_app_id": "A0RELEASE1",
        "trigger_id": f"7234567890777.1234567890.{time.monotonic_ns():x}",
        "view": {
            "id": view["id"],
            "type": "modal",
            "callback_id": view["callback_id"],
            "private_metadata": view.get("private_metadata", ""),
            "blocks": view["blocks"],
            "state": {"values": values},
            "hash": view.get("hash", ""),
        },
        "response_urls": [],
    }
    return user.interact(payload)


def test_rolling_back_a_release_before_production_needs_the_undo_named_and_ticked(
    rolling: RunningBot,  # noqa: F811 (the fixture of tests/test_rollback_e2e.py)
    kube: FakeKubeApi,  # noqa: F811
) -> None:
    install_backend(kube, namespace=NS)
    header = start_release(rolling, in_production=False)
    assert "release-rollback" not in buttons(header)  # not offered in pre-deploy
    mina = manager(rolling)
    before = stored(kube)

    modal = open_modal(rolling, mina)
    text = render_text(modal["blocks"])
    assert "never reached production" in text
    assert "revision 3 (`registry.example/backend:v1.4.0`)" in text
    assert "revision 2 (`registry.example/backend:v1.3.1`)" in text
    assert not any(b.get("block_id") == "revision" for b in modal["blocks"])  # no other revision to pick

    # As the dialog used to be submitted (a reason only): refused, nothing sent to Kubernetes.
    refused = confirm(mina, modal, "just in case")
    assert refused.json()["response_action"] == "errors" and "confirm_undo" in refused.json()["errors"]
    # A box ticked for some other pair of revisions does not count either.
    assert confirm_ticked(mina, modal, "just in case", ["undo:3:1"]).json()["response_action"] == "errors"
    time.sleep(0.5)
    assert kube.requests_for("patch", "deployments") == [] and stored(kube) == before

    # The service itself refuses a rollback of this release that names nothing, and records it.
    rid = rolling.services.find(CHANNEL, "v1.4.0").release.id
    with pytest.raises(InvalidTransition):
        rolling.bot.extras["rollbacks"].request(rid, actor=Actor(MANAGER, "mina"), reason="no confirmation")
    assert [e.details["why"] for e in audit(rolling) if e.action == "rollback_refused"] == ["not_in_production"]

    # Ticked as shown: exactly revision 3 → 2 is undone, and the audit trail says what was confirmed.
    assert confirm_ticked(mina, modal, "bad config shipped by v1.3.2", ["undo:3:2"]).status_code == 200
    progress(rolling, header, "Rolled back.")
    assert "registry.example/backend:v1.3.1" in stored(kube)
    confirmed = next(e for e in audit(rolling) if e.action == "rollback_confirmed")
    assert confirmed.details["outside_production"] is True
    assert confirmed.details["confirmed_undo"] == {
        "from_revision": 3,
        "from_images": ["registry.example/backend:v1.4.0"],
        "to_revision": 2,
        "to_images": ["registry.example/backend:v1.3.1"],
    }


# --- people's words -----------------------------------------------------------------------------------------

EVIL = "<!channel> <https://evil.example|x> &"
EVIL_SHOWN = "&lt;!channel&gt; &lt;https://evil.example|x&gt; &amp;"


def _texts(node: Any) -> Iterator[tuple[str, str, Any]]:
    """(kind, text, owner) of every string Slack would show or parse: mrkdwn and plain_text objects, and the
    top-level ``text`` (notifications, ephemerals, response_url bodies)."""
    if isinstance(node, dict):
        if node.get("type") in ("mrkdwn", "plain_text") and isinstance(node.get("text"), str):
            yield node["type"], node["text"], node
        for key, value in node.items():
            if key == "text" and isinstance(value, str) and node.get("type") not in ("mrkdwn", "plain_text"):
                yield "top", value, node
            elif key != "private_metadata":
                yield from _texts(value)
    elif isinstance(node, list):
        for item in node:
            yield from _texts(item)


def test_peoples_words_never_become_mentions_or_links_anywhere(
    settings_for: Any,  # noqa: F811 (the fixture of tests/test_rollback_e2e.py)
    fake_slack: FakeSlack,
    kube: FakeKubeApi,  # noqa: F811
    tmp_path: Path,
) -> None:
    install_backend(kube, namespace=NS)
    base = settings_for()
    checklist = tmp_path / "evil-checklist.yaml"
    checklist.write_text(
        Path(base.checklist_path).read_text().replace('title: "Core feature down"', f'title: "{EVIL}"')
    )
    rb = launch(settings_for(checklist_path=str(checklist)), fake_slack)
    acks: list[str] = []

    def say(user: SlackUser, text: str, name: str | None = None) -> None:
        response = user.command(text, response_name=name)
        assert response.status_code == 200
        if response.content:
            acks.append(str(response.json().get("text", "")))

    try:
        fake_slack.set_members(CHANNEL, [MANAGER])
        mina = manager(rb)
        header = start_release(rb)  # in its first canary stage, with a wait still running

        # An override's reason: refused for the wait, overridden through the dialog.
        mina.click_button(CHANNEL, header, "release-advance")
        gate = fake_slack.wait_for(lambda: [r for r in fake_slack.responses() if r.get("blocks")])[-1]
        before = len(fake_slack.calls("views.open"))
        mina.click_button(CHANNEL, {"ts": header["ts"], "blocks": gate["blocks"]}, "gate-override")
        opened = fake_slack.wait_for(lambda: fake_slack.calls("views.open")[before:])
        submit_view(mina, opened[0].params["view"], EVIL)
        fake_slack.wait_for(lambda: step_of(rb) == "canary-50")

        # An incident declared by command, and one from the header's button whose criterion title is the text.
        say(mina, f"incident v1.4.0 {EVIL}")
        top = fresh_header(rb)
        before = len(fake_slack.calls("views.open"))
        mina.click_button(CHANNEL, top, "incident-declare:core_feature_down")
        opened = fake_slack.wait_for(lambda: fake_slack.calls("views.open")[before:])
        submit_view(mina, opened[0].params["view"], EVIL)
        fake_slack.wait_for(lambda: len([m for m in release_messages(fake_slack) if "<!here>" in m["text"]]) == 2)
        home_of(rb, MANAGER)

        # A rollback's reason, which becomes the production lock's reason.
        modal = open_modal(rb, mina)
        confirm(mina, modal, EVIL)
        progress(rb, header, "Rolled back.")
        say(mina, "start v1.4.1", "locked")
        fake_slack.wait_for(lambda: fake_slack.responses("locked"))
        say(mina, f"unlock {EVIL}", "unlocked")
        fake_slack.wait_for(lambda: fake_slack.responses("unlocked"))

        # An abort's reason, and words typed where a subcommand or a version belongs.
        start_release(rb, "v1.5.0", in_production=False)
        say(mina, f"abort v1.5.0 {EVIL}")
        fake_slack.wait_for(lambda: rb.services.find(CHANNEL, "v1.5.0").release.status == "aborted")
        say(mina, EVIL)
        say(mina, f"start {EVIL}")
        say(mina, f"status {EVIL}")
        # Thread notes are posted after the answer: wait for each before reading what Slack received. Generously:
        # the abort's note queues behind the rollback's report and charts, which a loaded CI machine drew in over 5 s.
        for note in ("Gate overridden", "unlocked production of *backend*", "was aborted by"):
            fake_slack.wait_for(
                lambda note=note: any(note in str(c.params.get("text")) for c in fake_slack.calls("chat.postMessage")),
                timeout=20,
            )
        time.sleep(0.5)  # and for the last redraws of the header

        shown: list[tuple[str, str, str, Any]] = [("ack", "top", a, None) for a in acks]
        for call in fake_slack.calls():
            shown += [(call.method, kind, text, owner) for kind, text, owner in _texts(call.params)]
        for method, kind, text, owner in shown:
            if kind == "plain_text":
                assert "&lt;" not in text, (method, text)  # plain text shows entities literally: never escaped
                continue
            assert "<!channel>" not in text and "<https://evil.example" not in text, (method, text)
            for token in re.findall(r"<([^<>]*)>", text):
                assert "evil.example" not in token and token != "!channel", (method, text)
            if kind == "mrkdwn" and EVIL_SHOWN in text:
                assert owner.get("verbatim") is True, (method, text)  # no auto-linking of the bare URL either
        where = {method for method, _kind, text, _owner in shown if EVIL_SHOWN in text}
        # Each surface got the words, escaped: thread notes and pings, the header, refusals, the Home tab; and the
        # acks of a command with them where a subcommand or a version belongs (only its first word is echoed).
        assert {"chat.postMessage", "chat.update", "response_url", "views.publish"} <= where, where
        assert len([a for a in acks if "&lt;!channel&gt;" in a]) == 3, acks
        texts = " ".join(text for _m, _k, text, _o in shown)
        for seen in ("Gate overridden", "Rolled back.", "unlocked production of *backend*", "was aborted by"):
            assert seen in texts, seen
    finally:
        rb.stop()


def test_the_home_tab_fails_closed_when_slack_cannot_say_who_is_in_a_channel(guarded: RunningBot) -> None:
    fake = guarded.fake
    fake.set_members(CHANNEL, [MANAGER])
    start(guarded, guarded.user(MANAGER, "mia"))
    fake.fail("conversations.members", status=503, times=4)  # the client retries once; both attempts fail
    assert "v1.4.0" not in home_of(guarded, MANAGER)
    # Once Slack answers again (and nothing stale was cached), the release shows.
    fake.wait_for(lambda: "v1.4.0" in home_of(guarded, MANAGER), timeout=5, interval=0.3)
