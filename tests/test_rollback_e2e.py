"""Rolling back from Slack, end to end: signed HTTP into the bot, the real slack_sdk out to the fake Slack, and
the real ``kubernetes`` client (built from a kubeconfig) against the fake Kubernetes API server.

Where ``kubectl`` is installed, the main test runs the real ``kubectl rollout undo`` on a twin cluster and
compares what both left behind.
"""

from __future__ import annotations

import html
import itertools
import json
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from bot.db.engine import make_engine, make_session_factory
from bot.db.uow import SqlUnitOfWork
from bot.domain.records import Actor
from bot.slack.gateway import ChannelPacer
from bot.slack.rollback_blocks import code_blocks
from tests.conftest import FAST_CHECKLIST, RunningBot, make_settings, start_bot
from tests.fakes.k8s_api import FakeKubeApi, install_backend
from tests.fakes.k8s_objects import strip_nulls
from tests.fakes.slack_api import FakeSlack, render_text
from tests.slack_user import TEAM, SlackUser, buttons

NS = "test-prod"
CHANNEL = "C0RELEASES"
MANAGER = "U0MANAGER1"
KUBECTL = shutil.which("kubectl")


# --- fixtures ---------------------------------------------------------------------------------------------


class _Healthy(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b'{"status":"ok"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def health_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Healthy)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/health"
    server.shutdown()
    server.server_close()


@pytest.fixture
def kube() -> Iterator[FakeKubeApi]:
    with FakeKubeApi() as api:
        yield api


@pytest.fixture
def settings_for(
    db_url: str, fake_slack: FakeSlack, kube: FakeKubeApi, tmp_path: Path, health_url: str
) -> Any:
    checklist = tmp_path / "checklist.yaml"
    checklist.write_text(FAST_CHECKLIST.read_text().replace("http://127.0.0.1:1/health", health_url))
    kubeconfig = kube.write_kubeconfig(str(tmp_path / "kubeconfig"), namespace=NS)

    def make(**overrides: Any) -> Any:
        values = {
            "checklist_path": str(checklist),
            "kubeconfig": kubeconfig,
            "release_managers": (MANAGER,),
            "rollout_timeout_s": 20.0,
        }
        return make_settings(db_url, fake_slack, **(values | overrides))

    return make


def launch(settings: Any, fake: FakeSlack, **build: Any) -> RunningBot:
    return start_bot(
        settings, fake, sync_interval_s=0.2, pacer=ChannelPacer(0.0), rollout_poll_s=0.01, **build
    )


@pytest.fixture
def rolling(settings_for: Any, fake_slack: FakeSlack, request: pytest.FixtureRequest) -> Iterator[RunningBot]:
    marker = request.node.get_closest_marker("settings")
    rb = launch(settings_for(**(dict(marker.kwargs) if marker else {})), fake_slack)
    try:
        yield rb
    finally:
        rb.stop()


# --- helpers ----------------------------------------------------------------------------------------------


def manager(rb: RunningBot) -> SlackUser:
    return rb.user(MANAGER, "mina")


def start_release(rb: RunningBot, version: str = "v1.4.0", *, in_production: bool = True) -> dict[str, Any]:
    """Start a release and (by default) put it in its first canary stage, as a release that changed production.

    The release is moved in the database, not clicked through its checklist: what these tests are about starts
    once production runs it. The header is redrawn and returned once it offers the rollback.
    """
    assert manager(rb).command(f"start {version}").status_code == 200
    header = rb.fake.wait_for(lambda: _header(rb.fake, version))
    if not in_production:
        return header
    rid = rb.services.find(CHANNEL, version).release.id
    # Two transactions, each touching one table: the bot may be recording its posts (a message, then its release)
    # meanwhile, and one transaction locking both in the other order could deadlock with it on Postgres.
    factory = make_session_factory(rb.bot.engine)
    with SqlUnitOfWork(factory) as uow:
        uow.releases.update(rid, step="canary-10")
        uow.commit()
    with SqlUnitOfWork(factory) as uow:
        dirty = uow.messages.bump_release(rid, ["header"])
        uow.commit()
    rb.bot.publisher.sync.mark_dirty(dirty)
    return rb.fake.wait_for(
        lambda: (h := _header(rb.fake, version)) is not None and "release-rollback" in buttons(h) and h
    )


def _header(fake: FakeSlack, version: str) -> dict[str, Any] | None:
    for m in fake.messages.get(CHANNEL, []):
        if m.get("thread_ts") in (None, m["ts"]) and f"Release {version}" in render_text(m.get("blocks", [])):
            return m
    return None


def thread(fake: FakeSlack, header: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        m for m in fake.messages.get(CHANNEL, []) if m.get("thread_ts") == header["ts"] and m is not header
    ]


def shown(message: dict[str, Any]) -> str:
    return html.unescape(message.get("text", "") + "\n" + render_text(message.get("blocks", [])))


def rollback_views(fake: FakeSlack) -> list[dict[str, Any]]:
    return [v for v in fake.views.values() if str(v.get("external_id", "")).startswith("rollback-")]


def open_modal(rb: RunningBot, user: SlackUser, version: str = "v1.4.0") -> dict[str, Any]:
    """Run ``/release rollback`` and return the modal once the plan (or a refusal) replaced "loading"."""
    before = {v["id"] for v in rollback_views(rb.fake)}
    response = user.command(f"rollback {version}")
    assert response.status_code == 200
    return rb.fake.wait_for(
        lambda: next(
            (
                v
                for v in rollback_views(rb.fake)
                if v["id"] not in before and "Reading the deployment" not in render_text(v["blocks"])
            ),
            None,
        )
    )


def confirm(user: SlackUser, view: dict[str, Any], reason: str, revision: int | None = None) -> Any:
    """Submit the confirmation modal as Slack does, with the reason and (optionally) a picked revision."""
    values: dict[str, Any] = {"reason": {"reason": {"type": "plain_text_input", "value": reason}}}
    if revision is not None:
        option = {"text": {"type": "plain_text", "text": str(revision)}, "value": str(revision)}
        values["revision"] = {"revision": {"type": "static_select", "selected_option": option}}
    payload = {
        "type": "view_submission",
        "team": TEAM,
        "user": {"id": user.user_id, "username": user.name, "name": user.name, "team_id": TEAM["id"]},
        "api_app_id": "A0RELEASE1",
        "token": "legacy",
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


def progress(rb: RunningBot, header: dict[str, Any], words: str, timeout: float = 10.0) -> dict[str, Any]:
    return rb.fake.wait_for(
        lambda: next((m for m in thread(rb.fake, header) if words in shown(m)), None), timeout
    )


def export_md(db_url: str, version: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "bot", "export", version, "--format", "md"],
        env={"DATABASE_URL": db_url, "PATH": "/usr/bin:/bin", "RELEASE_BOT_LANGUAGE": "en"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def audit(rb: RunningBot, version: str = "v1.4.0") -> list[Any]:
    return rb.services.audit_trail(version)[1]


def stored(api: FakeKubeApi) -> str:
    dep = api.get_object("deployments", NS, "backend")
    return json.dumps(
        {"template": dep["spec"]["template"], "annotations": dep["metadata"]["annotations"]}, sort_keys=True
    )


# --- the whole flow ---------------------------------------------------------------------------------------


def test_one_confirmed_rollback_end_to_end(
    rolling: RunningBot, kube: FakeKubeApi, db_url: str, tmp_path: Path, capsys: Any
) -> None:
    install_backend(kube, namespace=NS)
    header = start_release(rolling)
    mina = manager(rolling)

    modal = open_modal(rolling, mina)
    text = render_text(modal["blocks"])
    assert "deployment/backend -n test-prod" in text
    assert "revision 3" in text and "registry.example/backend:v1.4.0" in text
    assert "revision 2" in text and "registry.example/backend:v1.3.1" in text
    assert modal.get("submit") is not None
    revision_select = next(b for b in modal["blocks"] if b.get("block_id") == "revision")
    assert [o["value"] for o in revision_select["element"]["options"]] == ["2", "1"]

    started = time.perf_counter()
    assert confirm(mina, modal, "error rate 7% on canary").status_code == 200
    done = progress(rolling, header, "Rolled back.")
    elapsed = time.perf_counter() - started

    # Exactly one patch, and the same deployment kubectl leaves behind from the same start.
    patches = kube.requests_for("patch", "deployments")
    assert len(patches) == 1
    assert patches[0].content_type == "application/json-patch+json"
    if KUBECTL is not None:
        with FakeKubeApi() as twin:
            install_backend(twin, namespace=NS)
            config = twin.write_kubeconfig(str(tmp_path / "twin"), namespace=NS)
            out = subprocess.run(
                [KUBECTL, "rollout", "undo", "deployment/backend", "-n", NS],
                env={"PATH": str(Path(KUBECTL).parent), "HOME": str(tmp_path), "KUBECONFIG": config},
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            assert out.returncode == 0, out.stderr
            # The seed procedure's second step; it also lets the twin's controller finish, as ours did.
            status = subprocess.run(
                [KUBECTL, "rollout", "status", "deployment/backend", "-n", NS, "--timeout=60s"],
                env={"PATH": str(Path(KUBECTL).parent), "HOME": str(tmp_path), "KUBECONFIG": config},
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            assert status.returncode == 0, status.stderr
            assert strip_nulls(twin.requests_for("patch", "deployments")[0].body) == strip_nulls(
                patches[0].body
            )
            kubectl_state = stored(twin)
        assert stored(kube) == kubectl_state
    assert "registry.example/backend:v1.3.1" in stored(kube)

    # One progress message, updated in place to the result.
    rolling_msgs = [m for m in thread(rolling.fake, header) if "Rolling back `test-prod/backend`" in shown(m)]
    assert rolling_msgs == [done]
    updates = [c for c in rolling.fake.calls("chat.update") if c.params.get("ts") == done["ts"]]
    assert len(updates) >= 2  # at least one rollout status, then the result
    assert "successfully rolled out" in shown(done)
    assert "Production health check: HTTP 200" in shown(done)
    assert "locked" in shown(done)

    # The release is rolled back, and everything the audit needs is there in order.
    view = rolling.services.find(CHANNEL, "v1.4.0")
    assert view.status.value == "rolled_back"
    actions = [e.action for e in audit(rolling)]
    for expected in ("rollback_confirmed", "rollback_patched", "rollback_succeeded", "health_check"):
        assert expected in actions
    assert (
        actions.index("rollback_confirmed")
        < actions.index("rollback_patched")
        < actions.index("rollback_succeeded")
        < actions.index("release_rolled_back")
        < actions.index("service_locked")
    )

    # The follow-up checklist is in the thread and can be ticked after the release ended.
    followup = rolling.fake.wait_for(
        lambda: next(
            (m for m in thread(rolling.fake, header) if "item-toggle" in json.dumps(m["blocks"])), None
        )
    )
    assert followup["thread_ts"] == header["ts"]
    assert mina.click_item(CHANNEL, followup, "rollback_followup.after.cause_analyzed").status_code == 200
    rolling.fake.wait_for(lambda: any(e.action == "item_checked" for e in audit(rolling)))

    # The report draft says what was decided and done, and is what the export prints.
    report = progress(rolling, header, "Incident report (draft)")
    draft = html.unescape(code_blocks(report["text"]))
    assert "error rate 7% on canary" in draft
    assert "revision 3" in draft and "revision 2" in draft
    md = export_md(db_url, "v1.4.0")
    assert draft.split("### Follow-up")[0] in md

    # The lock refuses the next start with an explanation, until a manager clears it with a reason.
    assert mina.command("start v1.4.1", response_name="locked-start").status_code == 200
    refusal = rolling.fake.wait_for(lambda: rolling.fake.responses("locked-start"))
    assert "Production of *backend* is locked" in refusal[0]["text"]
    assert "v1.4.0" in refusal[0]["text"] and "error rate 7% on canary" in refusal[0]["text"]
    assert _header(rolling.fake, "v1.4.1") is None
    assert mina.command("unlock cause found, fix in v1.4.1", response_name="unlock").status_code == 200
    rolling.fake.wait_for(lambda: rolling.fake.responses("unlock"))
    assert any(e.action == "service_unlocked" for e in audit(rolling))
    start_release(rolling, "v1.4.1")

    with capsys.disabled():
        print(
            f"\n[rollback] confirm -> 'Rolled back' shown in Slack (fake k8s + fake Slack): {elapsed * 1000:.0f} ms"
        )


# --- refusals -----------------------------------------------------------------------------------------------


def test_non_manager_is_refused_and_recorded(rolling: RunningBot, kube: FakeKubeApi) -> None:
    install_backend(kube, namespace=NS)
    start_release(rolling)
    bob = rolling.user("U0BOB00002", "bob")

    modal = open_modal(rolling, bob)
    assert modal.get("submit") is None
    assert "Only release managers may roll back" in render_text(modal["blocks"])
    rolling.fake.wait_for(lambda: any("Only release managers" in e["text"] for e in rolling.fake.ephemerals))
    # Submitting anyway (a forged payload) is refused again and sends nothing to Kubernetes.
    assert confirm(bob, modal, "let me").status_code == 200
    rolling.fake.wait_for(lambda: len([e for e in audit(rolling) if e.action == "permission_denied"]) >= 2)
    refusals = [e for e in audit(rolling) if e.action == "permission_denied"]
    assert {e.actor.id for e in refusals} == {"U0BOB00002"}
    assert {e.details["action"] for e in refusals} == {"roll_back"}
    assert kube.requests_for("patch", "deployments") == []


def test_double_confirmation_rolls_back_once(rolling: RunningBot, kube: FakeKubeApi) -> None:
    install_backend(kube, namespace=NS)
    header = start_release(rolling)
    mina = manager(rolling)
    modal = open_modal(rolling, mina)

    results: list[int] = []
    clicks = [
        threading.Thread(target=lambda: results.append(confirm(mina, modal, "double click").status_code))
        for _ in range(2)
    ]
    for click in clicks:
        click.start()
    for click in clicks:
        click.join()
    assert results == [200, 200]
    progress(rolling, header, "Rolled back.")
    rolling.fake.wait_for(lambda: rolling.fake.ephemerals)  # the second one is told why nothing happened

    assert len(kube.requests_for("patch", "deployments")) == 1
    assert len([e for e in audit(rolling) if e.action == "rollback_succeeded"]) == 1
    assert "registry.example/backend:v1.3.1" in stored(kube)


def test_second_confirmation_while_one_runs_says_so(
    settings_for: Any, fake_slack: FakeSlack, kube: FakeKubeApi
) -> None:
    install_backend(kube, namespace=NS)
    kube.rollout_mode = "stall"  # never finishes: the bot's own timeout ends it
    rb = launch(settings_for(rollout_timeout_s=2.0), fake_slack)
    try:
        header = start_release(rb)
        mina = manager(rb)
        modal = open_modal(rb, mina)
        confirm(mina, modal, "first")
        fake_slack.wait_for(lambda: kube.requests_for("patch", "deployments"))
        confirm(mina, modal, "second")
        said = fake_slack.wait_for(
            lambda: [e for e in fake_slack.ephemerals if "already in progress" in e["text"]]
        )
        assert "test-prod/backend" in said[0]["text"]
        failed = progress(rb, header, "Rollback failed", timeout=15)
        assert "timed out after 2 s" in shown(failed)
        assert rb.services.find(CHANNEL, "v1.4.0").status.value == "active"
        assert len(kube.requests_for("patch", "deployments")) == 1
    finally:
        rb.stop()


def test_paused_deployment_is_refused_clearly(rolling: RunningBot, kube: FakeKubeApi) -> None:
    install_backend(kube, namespace=NS, paused=True)
    header = start_release(rolling)
    mina = manager(rolling)

    modal = open_modal(rolling, mina)
    assert modal.get("submit") is None
    assert "paused" in render_text(modal["blocks"]) and "kubectl rollout resume" in render_text(
        modal["blocks"]
    )
    confirm(mina, modal, "forced")  # a stale or forged confirmation is refused at execution too
    failed = progress(rolling, header, "Rollback failed")
    assert "cannot roll back a paused deployment" in shown(failed)
    assert kube.requests_for("patch", "deployments") == []
    assert rolling.services.find(CHANNEL, "v1.4.0").status.value == "active"


def test_already_current_has_nothing_to_roll_back(rolling: RunningBot, kube: FakeKubeApi) -> None:
    install_backend(kube, namespace=NS)
    header = start_release(rolling)
    mina = manager(rolling)
    modal = open_modal(rolling, mina)

    confirm(mina, modal, "to the live one", revision=3)  # --to-revision=3: what already runs
    note = progress(rolling, header, "Nothing to roll back")
    assert "revision 3" in shown(note)
    assert kube.requests_for("patch", "deployments") == []
    assert rolling.services.find(CHANNEL, "v1.4.0").status.value == "active"


def test_older_revision_can_be_picked(rolling: RunningBot, kube: FakeKubeApi) -> None:
    install_backend(kube, namespace=NS)
    header = start_release(rolling)
    mina = manager(rolling)
    modal = open_modal(rolling, mina)

    confirm(mina, modal, "v1.3.1 has the same bug", revision=1)
    progress(rolling, header, "Rolled back.")
    dep = kube.get_object("deployments", NS, "backend")
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.example/backend:v1.3.0"


def test_stuck_rollout_is_a_failure_and_the_release_is_not_rolled_back(
    rolling: RunningBot, kube: FakeKubeApi
) -> None:
    install_backend(kube, namespace=NS)
    kube.rollout_mode = "stuck"
    header = start_release(rolling)
    mina = manager(rolling)
    confirm(mina, open_modal(rolling, mina), "latency")

    failed = progress(rolling, header, "Rollback failed")
    assert 'deployment "backend" exceeded its progress deadline' in shown(failed)
    assert "incident stays open" in shown(failed)
    assert rolling.services.find(CHANNEL, "v1.4.0").status.value == "active"
    actions = [e.action for e in audit(rolling)]
    assert "rollback_failed" in actions
    assert "release_rolled_back" not in actions and "service_locked" not in actions
    start_release(rolling, "v1.4.1")  # no lock after a failed rollback


def test_forbidden_patch_names_the_rbac_verb(rolling: RunningBot, kube: FakeKubeApi) -> None:
    install_backend(kube, namespace=NS)
    kube.fail("patch", "deployments", 403)
    header = start_release(rolling)
    mina = manager(rolling)
    confirm(mina, open_modal(rolling, mina), "errors")

    failed = progress(rolling, header, "Rollback failed")
    assert "may not patch deployments in namespace test-prod" in shown(failed)
    assert "deploy/rbac.yaml" in shown(failed)
    assert rolling.services.find(CHANNEL, "v1.4.0").status.value == "active"


# --- a crash between intent and outcome -------------------------------------------------------------------


def test_crash_between_intent_and_outcome_is_reported_and_not_retried(
    settings_for: Any, fake_slack: FakeSlack, kube: FakeKubeApi
) -> None:
    install_backend(kube, namespace=NS)
    settings = settings_for()
    rb = launch(settings, fake_slack)
    try:
        header = start_release(rb)
        release_id = rb.services.find(CHANNEL, "v1.4.0").release.id
    finally:
        rb.stop()

    # What a process that died right after storing its intent leaves behind.
    engine = make_engine(settings.database_url)
    factory = make_session_factory(engine)
    with SqlUnitOfWork(factory) as uow:
        uow.rollbacks.start(
            release_id=release_id,
            deployment="backend",
            namespace=NS,
            requested_revision=0,
            expected_revision=3,
            reason="p95 doubled",
            actor=Actor(MANAGER, "mina"),
            worker="dead-host:4242",
            at=datetime.now(UTC) - timedelta(minutes=5),
        )
        uow.commit()
    engine.dispose()

    rb = launch(settings, fake_slack)
    try:
        note = progress(rb, header, "was interrupted")
        assert "*not* retried" in shown(note) or "not retried" in shown(note)
        assert "successfully rolled out" in shown(note)  # what Kubernetes says now
        time.sleep(0.5)  # give a wrongful retry the chance to show up
        assert kube.requests_for("patch", "deployments") == []
        with SqlUnitOfWork(make_session_factory(rb.bot.engine)) as uow:
            (record,) = uow.rollbacks.for_release(release_id)
        assert record.status.value == "interrupted"
        assert any(e.action == "rollback_interrupted" for e in audit(rb))
        # The lock on the deployment is released: a new, deliberate rollback is possible.
        mina = manager(rb)
        confirm(mina, open_modal(rb, mina), "again, deliberately")
        progress(rb, header, "Rolled back.")
        assert len(kube.requests_for("patch", "deployments")) == 1
    finally:
        rb.stop()


def test_header_shows_roll_back_in_production(rolling: RunningBot, kube: FakeKubeApi) -> None:
    install_backend(kube, namespace=NS)
    header = start_release(rolling, in_production=False)
    release_id = rolling.services.find(CHANNEL, "v1.4.0").release.id
    assert "release-rollback" not in json.dumps(header["blocks"])  # not before production
    steps = [s.key for s in rolling.services.view(release_id).steps]
    mina = Actor(MANAGER, "mina")
    for here, there in itertools.pairwise(steps):
        rolling.bot.lifecycle.advance(
            release_id, from_step=here, to_step=there, actor=mina, override_reason="test"
        )
        if "canary" in there:
            break
    rolling.bot.publisher.sync.mark_dirty(m.id for m in rolling.services.view(release_id).messages)
    fresh = rolling.fake.wait_for(
        lambda: (h := _header(rolling.fake, "v1.4.0")) and "release-rollback" in json.dumps(h["blocks"]) and h
    )
    assert manager(rolling).click_button(CHANNEL, fresh, "release-rollback").status_code == 200
    modal = rolling.fake.wait_for(
        lambda: next((v for v in rollback_views(rolling.fake) if v.get("submit")), None)
    )
    assert "revision 2" in render_text(modal["blocks"])


def test_the_rollback_button_without_a_cluster_says_so_and_points_to_a_rollback_by_hand(
    settings_for: Any, fake_slack: FakeSlack, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: Any
) -> None:
    # No kubeconfig anywhere and not in a pod: the bot has no cluster to roll back.
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    rb = launch(settings_for(kubeconfig=None), fake_slack)
    try:
        start_release(rb)
        modal = open_modal(rb, manager(rb))
    finally:
        rb.stop()
    text = html.unescape(render_text(modal["blocks"]))
    assert "No Kubernetes cluster is configured for this bot" in text
    assert "record the rollback you did by hand" in text
    assert "error id" not in text.lower() and modal.get("submit") is None
    assert not [r for r in caplog.records if r.exc_info or r.levelname == "ERROR"]
