"""``release-bot playground``: the real bot, a pretend Slack, and you at the terminal.

The bot is built exactly as in production (``bootstrap.build`` and its Bolt app, the SQLite default in a temp
directory, its clock and timers running). Slack is played by ``SlackStandIn``: the bot's own ``WebClient`` posts
to it over loopback HTTP. What you type becomes signed Slack requests (a slash command, a button click, a modal
submission, ``app_home_opened``) handed to Bolt's ``app.dispatch`` with a valid signature, so request
verification, the listeners, the services and the database all run for real. No credentials, no network.
"""

from __future__ import annotations

import difflib
import importlib
import json
import logging
import os
import secrets
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import quote

from slack_bolt.request import BoltRequest
from slack_sdk.signature import SignatureVerifier

from bot.checklist.loading import default_checklist_path
from bot.errors import ConfigError
from bot.playground import payloads
from bot.playground.cluster import ClusterStandIn
from bot.playground.fake_slack import Event, Message, SlackStandIn
from bot.playground.pager import Page, PagerStandIn
from bot.playground.payloads import CHANNEL, CHANNEL_NAME, USER, USER_NAME
from bot.playground.prometheus import PrometheusStandIn
from bot.playground.render import Control, render_blocks
from bot.playground.repository import SimulatedRepository
from bot.playground.rollout import SimulatedRollout
from bot.playground.speed import DEFAULT_SPEED, load_compressed
from bot.ports import HealthResult

QUIET_S = 0.6  # the bot is done answering once Slack has heard nothing from it for this long
START_S = 1.5  # an action that reaches Slack at all does so within this
SETTLE_MAX_S = 20.0
WAIT_FOR_S = 120.0  # `wait page` and `wait rollback` give up after this
SHOW_EVERY_SAMPLES = 10  # the metric watch samples every (compressed) interval: show one in ten

HELP = """\
Type what you would type in Slack, or a playground command:
  /release start v1.2.3     any /release command (status, list, help, abort v1.2.3, report v1.2.3, ...)
  click N                   click control [N] (a button or a checklist box) as shown above
  tick all                  tick every open checklist box of the release
  advance                   click the release's main button (next step / start canary / finish)
  status                    /release status
  submit TEXT               submit the open dialog (a reason) with TEXT
  home                      open the bot's App Home tab
  breach errors 7%          make the simulated service fail: 7% of requests answer 5xx from now on
  breach latency 400ms      make it slow: p95 400 ms from now on
  recover                   make it healthy again
  metrics                   what the simulated Prometheus answers now
  cluster                   the simulated deployment's revisions (kubectl rollout history)
  repo                      the simulated GitHub repository the evidence is read from
  repo fail lint            make a check run on the tag fail (tests, lint, typecheck); `repo pass lint` again
  recheck                   click the release's re-check: the bot reads the evidence again
  repo unapprove 42         withdraw the approval of pull request #42 (#41, #42); `repo approve 42` again
  rollback                  /release rollback for the release you started last
  wait [SECONDS]            let time pass (without SECONDS: until the next reminder is posted)
  wait page                 until PagerDuty is paged
  wait rollback             until the rollback is done, its follow-up and report posted
  help                      this text
  quit                      stop the bot and leave
"""


class HealthStandIn:
    """The environments' health URLs, answered by the simulated cluster: healthy (they never leave the machine)."""

    def check(self, url: str) -> HealthResult:
        return HealthResult(url=url, ok=True, status_code=200, latency_ms=12.0, summary='{"status":"ok"}')


def _pull_number(text: str) -> int:
    try:
        return int(text.removeprefix("#"))
    except ValueError:
        raise ValueError(f"{text!r} is not a pull request number: write it like 42") from None


def _percent(text: str) -> float:
    value = text.strip().removesuffix("%")
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"{text!r} is not a percentage: write it like 7%") from None
    if not 0 <= number <= 100:
        raise ValueError(f"{text!r} is not between 0% and 100%")
    return number / 100


def _latency(text: str) -> float:
    raw = text.strip().lower()
    try:
        if raw.endswith("ms"):
            seconds = float(raw.removesuffix("ms")) / 1000
        elif raw.endswith("s"):
            seconds = float(raw.removesuffix("s"))
        else:
            seconds = float(raw) / 1000
    except ValueError:
        raise ValueError(f"{text!r} is not a latency: write it like 400ms") from None
    if seconds <= 0:
        raise ValueError(f"{text!r}: a latency must be more than 0")
    return seconds


class Playground:
    """One bot, one pretend workspace with its cluster, Prometheus and PagerDuty, one person."""

    def __init__(
        self,
        out: TextIO,
        *,
        lang: str = "ko",
        checklist: Path | None = None,
        speed: float = DEFAULT_SPEED,
        out_dir: Path | None = None,
        rollout: bool = False,
    ) -> None:
        self.out = out
        self._rollout = rollout
        self.rollout: SimulatedRollout | None = None
        self._lang = lang
        self._source = checklist or default_checklist_path()
        self._speed = speed
        self._secret = secrets.token_hex(16)
        self.slack = SlackStandIn()
        self._seen = 0
        self._shown: dict[tuple[str, str], str] = {}
        self.controls: dict[int, Control] = {}
        self._names = {USER: USER_NAME, CHANNEL: CHANNEL_NAME}
        self._tmp = tempfile.TemporaryDirectory(prefix="release-bot-playground-")
        self.out_dir = out_dir
        self.bot: Any = None
        self.prometheus: PrometheusStandIn | None = None
        self.cluster: ClusterStandIn | None = None
        self.repository: SimulatedRepository | None = None
        self.pager = PagerStandIn(self._show_page)
        self.version: str | None = None
        self._samples = 0
        self._sample_level = 0

    # --- lifecycle ------------------------------------------------------------------------------------

    def start(self) -> None:
        from bot.config import load_settings
        from bot.db.migrate import upgrade
        from bot.runtime.bootstrap import build
        from bot.slack.gateway import ChannelPacer, UpdatePacer

        folder = Path(self._tmp.name)
        checklist, path, changed = load_compressed(self._source, self._speed, folder)
        if self._rollout and checklist.traffic.is_manual and checklist.rollback and checklist.canary_stages:
            checklist, path = with_rollout(path, checklist)
        if self.out_dir is None:
            self.out_dir = Path(tempfile.mkdtemp(prefix="release-bot-playground-files-"))
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.slack.start()
        env = {
            "SLACK_BOT_TOKEN": "xoxb-playground-0000",
            "SLACK_SIGNING_SECRET": self._secret,
            "SLACK_API_URL": self.slack.base_url,
            "DATABASE_URL": f"sqlite:///{folder / 'playground.db'}",
            "RELEASE_BOT_CHECKLIST": str(path),
            "RELEASE_BOT_LANGUAGE": self._lang,
            "RELEASE_CHANNEL": CHANNEL,
            # You are the release manager here. `serve` refuses to start until RELEASE_MANAGERS names who may
            # start, advance, abort and roll back (user ids, user groups), or is * for everyone in the channel.
            "RELEASE_MANAGERS": USER,
        }
        simulated = ["Slack (you are @you in #releases)"]
        if checklist.metrics is not None:
            self.prometheus = PrometheusStandIn(
                error_rate_query=checklist.metrics.error_rate_query,
                p95_query=checklist.metrics.p95_query,
                on_sample=self._show_sample,
            ).start()
            env["PROMETHEUS_URL"] = self.prometheus.url
            simulated.append("Prometheus (error rate 0.3%, p95 120 ms until you type `breach errors 7%`)")
        if checklist.rollback is not None:
            target = checklist.rollback
            self.cluster = ClusterStandIn(
                namespace=target.namespace,
                deployment=target.deployment,
                on_change=lambda line: self.slack.aside(f"☸ cluster: {line}"),
            ).start()
            env["KUBECONFIG"] = str(self.cluster.write_kubeconfig(folder / "kubeconfig"))
            revisions = self.cluster.revisions()
            simulated.append(
                f"Kubernetes (deployment/{target.deployment} in {target.namespace}, "
                f"revisions {revisions[0][0]}–{revisions[-1][0]}, live {revisions[-1][1].rsplit(':', 1)[-1]})"
            )
        if any(e.source.is_github for item in checklist.evidence_items for e in item.evidence):
            # Evidence is read from a repository: an in-memory one here, so the bot ticks what it can prove.
            self.repository = SimulatedRepository(checklist.version_of_tag)
            env["EVIDENCE"] = "on"
            simulated.append(f"GitHub ({self.repository.repository}: checks, pull requests, tags; type `repo`)")
        if not checklist.traffic.is_manual:
            spec = checklist.traffic
            self.rollout = SimulatedRollout(
                spec.name,
                spec.namespace,
                tuple(s.traffic_percent for s in checklist.canary_stages),
                on_change=lambda line: self.slack.aside(f"☸ cluster: {line}"),
            )
            simulated.append(
                f"Argo Rollouts (rollout/{spec.name} in {spec.namespace}: the split moves as you advance)"
            )
        simulated.append("PagerDuty (pages are shown here)")
        if self.cluster is not None:
            # The Kubernetes client takes a second or two to import; the first rollback should not wait for it.
            threading.Thread(target=importlib.import_module, args=("kubernetes",), daemon=True).start()
        settings = load_settings(env)
        upgrade(settings.database_url)
        self.bot = build(
            settings,
            sweep_s=0.5,
            sync_interval_s=0.2,
            pacer=ChannelPacer(0.0),
            update_pacer=UpdatePacer.unlimited(),
            home_interval_s=1.0,
            pager=self.pager,
            health=HealthStandIn(),
            github=self.repository,
            rollout_poll_s=0.5,
            outbox_interval_s=0.5,
            outbox_backoff_s=(0.5, 5.0),
            traffic=self.rollout,
            traffic_watch_s=2.0,
        )
        self.bot.start_background()
        self.print(
            f"release-bot playground · checklist {self._source.name} ({checklist.title}) · language {self._lang}"
        )
        if changed:
            waits = ", ".join(f"{what} {before} → {after}" for what, before, after in changed)
            self.print(f"Time runs {self._speed:g}× faster here: {waits}.")
        self.print("Simulated: " + "; ".join(simulated) + ".")
        self.print(f"Charts and reports are written to {self.out_dir}.")
        self.print("You are @you in #releases, and its release manager (RELEASE_MANAGERS; see the README's roles).")
        self.print("Type `help` for commands.\n")

    def stop(self) -> None:
        if self.bot is not None:
            self.bot.extras["dashboard"].home.stop()
            self.bot.stop()
        for part in (self.prometheus, self.cluster):
            if part is not None:
                part.stop()
        self.slack.stop()
        self._tmp.cleanup()

    def print(self, text: str = "") -> None:
        self.out.write(text + "\n")
        self.out.flush()

    # --- the loop -------------------------------------------------------------------------------------

    def run(self, lines: Iterable[str], *, echo: bool) -> int:
        for line in lines:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if echo:
                self.print(f"> {line}")
            since = time.monotonic()
            try:
                if not self.do(line):
                    break
            except (ValueError, LookupError) as e:
                self.print(f"  ! {e}")
            self.settle(since)
        self.print("bye")
        return 0

    def do(self, line: str) -> bool:
        """Carry out one line; False to stop."""
        word, _, rest = line.partition(" ")
        rest = rest.strip()
        if word in ("quit", "exit"):
            return False
        if word == "help":
            self.print(HELP)
        elif word == "/release":
            self.command(rest)
        elif word == "status":
            self.command("status")
        elif word == "click":
            self.click(rest)
        elif line == "tick all":
            self.tick_all()
        elif word == "advance":
            self.advance()
        elif word == "submit":
            self.submit(rest)
        elif word == "home":
            self.home()
        elif word == "breach":
            self.breach(rest)
        elif word == "recover":
            self.recover()
        elif word == "metrics":
            self.show_metrics()
        elif word == "cluster":
            self.show_cluster()
        elif word == "recheck":
            self.recheck()
        elif word == "repo":
            self.repo(rest)
        elif word == "rollback":
            self.rollback()
        elif word == "wait":
            self.wait(rest)
        else:
            raise ValueError(f"unknown command {line!r}; type `help`")
        return True

    # --- showing what Slack shows ---------------------------------------------------------------------

    def settle(self, since: float, max_s: float = SETTLE_MAX_S) -> None:
        """Wait until the bot has answered (Slack heard from it, then nothing for a moment); show the result.

        A rollout in progress keeps it waiting: the bot follows it and says how it ended."""
        deadline = since + max_s
        while time.monotonic() < deadline:
            now, last = time.monotonic(), self.slack.last_activity
            rolling = self.cluster is not None and self.cluster.rolling()
            if last < since and now - since > START_S and not rolling:
                break  # nothing reached Slack: the answer (if any) was the ack itself
            if last >= since and now - last > QUIET_S and not rolling:
                break
            time.sleep(0.05)
        self.show_new()

    def show_new(self) -> int:
        with self.slack.lock:
            events = self.slack.ws.events[self._seen :]
            self._seen += len(events)
        for event in events:
            self.show(event)
        return len(events)

    def show(self, event: Event) -> None:
        if event.kind == "aside":
            self.print(f"  {event.text}")
            return
        if event.kind == "file" and event.file is not None:
            self._show_file(event.file)
            return
        if event.kind in ("modal", "home") and event.view is not None:
            title = "App Home" if event.kind == "home" else _title(event.view)
            self._print_blocks(f"┌ {title}", event.view.get("blocks", []), None, None, "")
            return
        message = event.message
        if message is None:
            return
        where = f"#{CHANNEL_NAME}" + (" › thread" if message.thread_ts else "")
        if event.kind == "ephemeral":
            head = f"┌ {where} (only you can see this)"
        elif event.kind == "updated":
            head = f"┌ {where} (updated message {message.ts})"
        else:
            head = f"┌ {where} · release-bot"
        self._print_blocks(head, message.blocks, message.channel, message.ts, message.text, key=message)

    def _show_file(self, file: dict[str, Any]) -> None:
        """A chart is written where you can open it; a report is written and printed."""
        assert self.out_dir is not None
        name = Path(str(file.get("name") or file.get("id") or "file")).name
        data = file.get("data") or b""
        path, n = self.out_dir / name, 1
        while path.exists():  # two charts of one stage in the same second (the ping's and the reminder's)
            n += 1
            path = self.out_dir / f"{Path(name).stem}-{n}{Path(name).suffix}"
        path.write_bytes(data)
        title = file.get("title") or name
        if name.endswith((".md", ".txt", ".csv", ".json")):
            self.print(f"┌ 📎 {title} (shared in the thread; written to {path})")
            for line in data.decode("utf-8", errors="replace").splitlines():
                self.print(f"│ {line}")
            self.print("└")
        else:
            self.print(f"  📊 {title} (shared in the thread) → {path}")

    def _show_page(self, page: Page) -> None:
        if page.action == "change":
            self.slack.aside(f"📟 PagerDuty change event: {page.summary}")
            return
        details = f"{page.severity}, " if page.severity else ""
        self.slack.aside(
            f"📟 PagerDuty {page.action}: “{page.summary}” ({details}dedup key {page.dedup_key})"
        )

    def _show_sample(self, error_rate: float | None, p95_s: float | None) -> None:
        """The metric watch reads Prometheus every interval: show the first reading of each trace level, then
        one in SHOW_EVERY_SAMPLES, so the watch is seen without drowning the conversation."""
        assert self.prometheus is not None
        level = len(self.prometheus.levels)
        self._samples += 1
        if level == self._sample_level and self._samples % SHOW_EVERY_SAMPLES:
            return
        if level != self._sample_level:
            self._samples, self._sample_level = 1, level
        figures = []
        if error_rate is not None:
            figures.append(f"error rate {error_rate * 100:.2f}%")
        if p95_s is not None:
            figures.append(f"p95 {p95_s * 1000:.0f} ms")
        self.slack.aside(f"📈 metric watch: Prometheus answered {' · '.join(figures)}")

    def _print_blocks(
        self,
        head: str,
        blocks: list[dict[str, Any]],
        channel: str | None,
        ts: str | None,
        fallback: str,
        key: Message | None = None,
    ) -> str | None:
        lines, found = render_blocks(blocks, self._names, channel=channel, message_ts=ts, fallback=fallback)
        text = "\n".join(lines)
        before: str | None = None
        if key is not None and key.ephemeral_to is None:
            before = self._shown.get((key.channel, key.ts))
            if before == text:
                return None  # a redraw that changed nothing a person could see
            self._shown[(key.channel, key.ts)] = text
        first = max(self.controls, default=0) + 1
        for n, control in enumerate(found):
            self.controls[first + n] = control
            text = text.replace(f"[#{n + 1}]", f"[{first + n}]", 1)
        self.print(head)
        for line in _changed(before, lines, text.splitlines()):
            self.print(f"│ {line}")
        self.print("└")
        return text

    # --- acting as Slack ------------------------------------------------------------------------------

    def dispatch(self, body: str, content_type: str) -> dict[str, Any]:
        """Hand Bolt a signed request, as Slack would send it; return the HTTP answer's JSON (if any)."""
        stamp = str(int(time.time()))
        signature = SignatureVerifier(self._secret).generate_signature(timestamp=stamp, body=body) or ""
        headers: dict[str, str | Sequence[str]] = {
            "content-type": content_type,
            "x-slack-request-timestamp": stamp,
            "x-slack-signature": signature,
        }
        response = self.bot.app.dispatch(BoltRequest(body=body, headers=headers))
        if response.status != 200:
            raise LookupError(f"the bot answered HTTP {response.status}")
        if response.body and response.body.startswith("{"):
            answer: dict[str, Any] = json.loads(response.body)
            if answer.get("text") or answer.get("blocks"):
                # An ack with a message: Slack shows it to the person only.
                reply = Message(
                    CHANNEL, "ack", str(answer.get("text") or ""), list(answer.get("blocks") or [])
                )
                reply.ephemeral_to = USER
                self.show(Event("ephemeral", reply))
            return answer
        return {}

    def command(self, text: str) -> None:
        words = text.split()
        if len(words) >= 2 and words[0] == "start":
            self.version = words[1]
        body = payloads.slash_command(text, self.slack.response_url(CHANNEL, USER))
        self.dispatch(body, "application/x-www-form-urlencoded")

    def _interact(self, payload: dict[str, Any]) -> None:
        self.dispatch("payload=" + quote(json.dumps(payload)), "application/x-www-form-urlencoded")

    def _base(self, control: Control) -> dict[str, Any]:
        with self.slack.lock:
            current = self.slack.ws.messages.get((control.channel or "", control.message_ts or ""))
            blocks = list(current.blocks) if current else []
        url = self.slack.response_url(control.channel or CHANNEL, USER, control.message_ts)
        return payloads.block_actions(control.channel, control.message_ts, blocks, url)

    def click(self, which: str) -> None:
        raw = which.strip().lstrip("[#").rstrip("]")
        if not raw.isdigit():
            raise ValueError("click needs the number of a control shown in [brackets], such as `click 4`")
        control = self.controls.get(int(raw))
        if control is None:
            raise LookupError(f"there is no control [{raw}]")
        self.press(control)

    def press(self, control: Control, *, tick: bool | None = None) -> None:
        element, block = control.element, control.block
        if element.get("url"):
            self.print(f"  (opens {element['url']})")
        if control.channel is None:
            raise LookupError("that control is in a view; open it again")
        payload = self._base(control)
        action: dict[str, Any] = {
            "action_id": element.get("action_id"),
            "block_id": block.get("block_id") or "pg0",
            "action_ts": f"{time.time():.6f}",
        }
        if element.get("type") == "checkboxes":
            ticked = bool(element.get("initial_options"))
            want = (not ticked) if tick is None else tick
            selected = list(element.get("options", [])[:1]) if want else []
            action |= {"type": "checkboxes", "selected_options": selected}
            payload["state"]["values"] = {
                action["block_id"]: {
                    action["action_id"]: {"type": "checkboxes", "selected_options": selected}
                }
            }
        else:
            action |= {"type": "button", "value": element.get("value", ""), "text": element.get("text")}
        payload["actions"] = [action]
        self._interact(payload)

    def _live_controls(self, *, root_only: bool) -> list[Control]:
        with self.slack.lock:
            messages = sorted(
                (m for m in self.slack.ws.messages.values() if not (root_only and m.thread_ts)),
                key=lambda m: m.ts,
                reverse=True,
            )
            snapshot = [(m.channel, m.ts, list(m.blocks)) for m in messages]
        controls: list[Control] = []
        for channel, ts, blocks in snapshot:
            controls += render_blocks(blocks, self._names, channel=channel, message_ts=ts)[1]
        return controls

    def advance(self) -> None:
        from bot.slack.ids import ActionId

        for control in self._live_controls(root_only=True):
            if control.element.get("action_id") == ActionId.ADVANCE.value:
                self.print(f"  (clicking “{control.label}”)")
                self.press(control)
                return
        raise LookupError("no release is waiting for its next step; start one with /release start v1.2.3")

    def recheck(self) -> None:
        from bot.slack.ids import ActionId

        for control in self._live_controls(root_only=True):
            if control.element.get("action_id") == ActionId.EVIDENCE_RECHECK.value:
                self.print(f"  (clicking “{control.label}”)")
                self.press(control)
                return
        raise LookupError("no release shows evidence to re-check; start one with /release start v1.2.3")

    def tick_all(self) -> None:
        boxes = [
            c
            for c in self._live_controls(root_only=True)
            if c.element.get("type") == "checkboxes" and not c.element.get("initial_options")
        ]
        if not boxes:
            raise LookupError("no open checklist box")
        for control in boxes:
            self.press(control, tick=True)
        self.print(f"  (ticked {len(boxes)} box(es))")

    def _open_dialog(self) -> dict[str, Any] | None:
        """The dialog on top, once it asks for something: the rollback's is filled in a moment after it opens."""
        deadline = time.monotonic() + SETTLE_MAX_S
        while True:
            with self.slack.lock:
                views = list(self.slack.ws.views.values())
            if not views:
                return None
            if any(b.get("type") == "input" for b in views[-1].get("blocks", [])):
                return views[-1]
            if time.monotonic() > deadline:
                raise LookupError("the open dialog asks for nothing to submit")
            self.show_new()
            time.sleep(0.1)

    def submit(self, text: str) -> None:
        if not text:
            raise ValueError("submit needs the text to type into the dialog, such as `submit error rate 7%`")
        view = self._open_dialog()
        if view is None:
            raise LookupError("no dialog is open")
        self.show_new()
        values: dict[str, Any] = {}
        for block in view.get("blocks", []):
            element = block.get("element") or {}
            if block.get("type") == "input" and element.get("type") == "plain_text_input":
                values[block.get("block_id", "pg-input")] = {
                    element["action_id"]: {"type": "plain_text_input", "value": text}
                }
            elif block.get("type") == "input" and element.get("initial_option"):
                # A choice with a default (the rollback's revision): submitted as shown.
                values[block.get("block_id", "pg-select")] = {
                    element["action_id"]: {
                        "type": element["type"],
                        "selected_option": element["initial_option"],
                    }
                }
        payload = payloads.view_submission(view, values)
        with self.slack.lock:
            self.slack.ws.views.pop(view["id"], None)
        self._interact(payload)

    def home(self) -> None:
        self.dispatch(payloads.app_home_opened(), "application/json")

    # --- the simulated world --------------------------------------------------------------------------

    def breach(self, rest: str) -> None:
        if self.prometheus is None:
            raise LookupError("this checklist has no metrics section: there is no Prometheus to push")
        what, _, amount = rest.partition(" ")
        if what in ("errors", "error", "error-rate") and amount:
            level = self.prometheus.breach(error_rate=_percent(amount))
        elif what in ("latency", "p95") and amount:
            level = self.prometheus.breach(p95_s=_latency(amount))
        else:
            raise ValueError("write it like `breach errors 7%` or `breach latency 400ms`")
        self.print(
            f"  (from now on the service answers {level.error_rate * 100:g}% of requests with 5xx, "
            f"p95 {level.p95_s * 1000:g} ms; the metric watch will see it)"
        )

    def recover(self) -> None:
        if self.prometheus is None:
            raise LookupError("this checklist has no metrics section: there is no Prometheus to push")
        self.prometheus.recover()
        self.print("  (the service is healthy again)")

    def show_metrics(self) -> None:
        if self.prometheus is None:
            raise LookupError("this checklist has no metrics section: there is no Prometheus")
        error_rate, p95 = self.prometheus.at(time.time())
        self.print(
            f"  Prometheus now: error rate {error_rate * 100:.2f}%, p95 {p95 * 1000:.0f} ms "
            f"({self.prometheus.queries} queries answered so far)"
        )

    def show_cluster(self) -> None:
        if self.cluster is None:
            raise LookupError("this checklist names no rollback target: there is no cluster")
        self.print(f"  deployment.apps/{self.cluster.name} (namespace {self.cluster.namespace})")
        self.print("  REVISION  IMAGE")
        for number, image in self.cluster.revisions():
            self.print(f"  {number:<8}  {image}")

    def repo(self, rest: str) -> None:
        if self.repository is None:
            raise LookupError("this checklist reads no evidence from GitHub: there is no repository")
        verb, _, what = rest.partition(" ")
        what = what.strip()
        if not verb:
            for line in self.repository.describe():
                self.print(f"  {line}")
            return
        repository = self.repository
        if verb == "fail" and what:
            repository.fail(what)
        elif verb == "pass" and what:
            repository.pass_(what)
        elif verb == "unapprove" and what:
            repository.unapprove(_pull_number(what))
        elif verb == "approve" and what:
            repository.approve(_pull_number(what))
        else:
            raise ValueError("repo takes `fail CHECK`, `pass CHECK`, `unapprove N` or `approve N`: `repo fail lint`")
        self.print(f"  🐙 {repository.repository}: {verb} {what}. Type `recheck` to see the bot find it.")

    def rollback(self) -> None:
        if self.version is None:
            raise LookupError("start a release first: /release start v1.2.3")
        self.command(f"rollback {self.version}")

    def wait(self, what: str) -> None:
        if what in ("page", "rollback"):
            self._wait_for(what)
            return
        if what and what != "reminder":
            try:
                seconds: float | None = float(what)
            except ValueError:
                raise ValueError(
                    "wait takes seconds, or `page`, or `rollback`: `wait 5`, `wait page`"
                ) from None
        else:
            seconds = None
        if seconds is None:
            due = self.bot.lifecycle.next_due()
            if due is None:
                raise LookupError("no reminder is pending")
            seconds = max((due - datetime.now(UTC)).total_seconds(), 0.0) + 1.0
            self.print(f"  (waiting {seconds:.0f} s for the next reminder)")
        deadline = time.monotonic() + min(seconds, 600.0)
        shown = 0
        while time.monotonic() < deadline:
            shown += self.show_new()
            time.sleep(0.1)
        shown += self.show_new()
        if not shown:
            self.print(f"  ({seconds:g} s passed; nothing new)")

    def _wait_for(self, what: str) -> None:
        def paged() -> bool:
            return any(p.action == "trigger" for p in self.pager.pages[before:])

        def rolled_back() -> bool:
            if self.version is None:
                return False
            view = self.bot.services.find(CHANNEL, self.version)
            return bool(view.release.status == "rolled_back")

        before = len(self.pager.pages)
        done = paged if what == "page" else rolled_back
        deadline = time.monotonic() + WAIT_FOR_S
        while time.monotonic() < deadline and not done():
            self.show_new()
            time.sleep(0.1)
        if not done():
            self.print(f"  (no {what} within {WAIT_FOR_S:.0f} s)")
            return
        self.settle(time.monotonic() - START_S)


LONG_UPDATE = 8  # lines: a redraw of a longer message shows what changed, not the whole message again


def with_rollout(path: Path, checklist: Any) -> tuple[Any, Path]:
    """The checklist with an Argo Rollouts provider on its rollback target, for ``playground --rollout``."""
    import yaml

    from bot.checklist.loading import load_checklist

    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    target = checklist.rollback
    data["traffic"] = {"provider": "argo-rollouts", "namespace": target.namespace, "name": target.deployment}
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False, width=120), encoding="utf-8")
    return load_checklist(path), path


def _changed(before: str | None, raw: list[str], shown: list[str]) -> list[str]:
    """The lines of a redraw to print: all of a short or new message; of a long one, what changed since it was
    last shown (``raw`` is the redraw before controls were numbered, so numbering alone is no change)."""
    if before is None or len(raw) <= LONG_UPDATE:
        return shown
    out: list[str] = []
    matcher = difflib.SequenceMatcher(a=before.splitlines(), b=raw, autojunk=False)
    for tag, _i1, _i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            if not out or out[-1] != "⋯":
                out.append("⋯")
        else:
            out.extend(shown[j1:j2])
    return out


def _title(view: dict[str, Any]) -> str:
    title = view.get("title")
    return str(title.get("text")) if isinstance(title, dict) else "dialog"


def main(
    *,
    checklist: str | None = None,
    speed: float = DEFAULT_SPEED,
    out_dir: str | None = None,
    rollout: bool = False,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
) -> int:
    """Run the playground until ``quit`` or the end of the input."""
    from bot.config import LANGUAGES

    stdin, stdout = stdin or sys.stdin, stdout or sys.stdout
    # The bot's own logs would drown the conversation; its warnings and errors still go to stderr.
    logging.basicConfig(level=os.environ.get("PLAYGROUND_LOG_LEVEL", "WARNING"), stream=sys.stderr)
    # Compressed time keeps the scheduler's jobs back to back; a skipped run is expected here, not news.
    logging.getLogger("apscheduler").setLevel(logging.ERROR)
    lang = os.environ.get("RELEASE_BOT_LANGUAGE", "ko").strip().lower() or "ko"
    if lang not in LANGUAGES:
        raise ConfigError(f"RELEASE_BOT_LANGUAGE is invalid: {lang!r}; use one of {', '.join(LANGUAGES)}")
    if speed <= 0:
        raise ConfigError(f"--speed is invalid: {speed:g}; it must be more than 0 (1 runs in real time)")
    playground = Playground(
        stdout,
        lang=lang,
        checklist=Path(checklist) if checklist else None,
        speed=speed,
        out_dir=Path(out_dir) if out_dir else None,
        rollout=rollout,
    )
    try:
        playground.start()
        interactive = stdin.isatty()
        lines = _prompted(stdin, stdout) if interactive else stdin
        return playground.run(lines, echo=not interactive)
    except KeyboardInterrupt:
        return 130
    finally:
        playground.stop()


def _prompted(stdin: TextIO, stdout: TextIO) -> Iterable[str]:
    while True:
        stdout.write("> ")
        stdout.flush()
        line = stdin.readline()
        if not line:
            return
        yield line
