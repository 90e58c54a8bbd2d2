"""``release-bot playground``: the real bot, a pretend Slack, and you at the terminal.

The bot is built exactly as in production (``bootstrap.build`` and its Bolt app, the SQLite default in a temp
directory, its clock and timers running). Slack is played by ``SlackStandIn``: the bot's own ``WebClient`` posts
to it over loopback HTTP. What you type becomes signed Slack requests (a slash command, a button click, a modal
submission, ``app_home_opened``) handed to Bolt's ``app.dispatch`` with a valid signature, so request
verification, the listeners, the services and the database all run for real. No credentials, no network.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import quote

from slack_bolt.request import BoltRequest
from slack_sdk.signature import SignatureVerifier

from bot.playground import payloads
from bot.playground.fake_slack import Event, Message, SlackStandIn
from bot.playground.payloads import CHANNEL, CHANNEL_NAME, USER, USER_NAME
from bot.playground.render import Control, render_blocks

PLAYGROUND_CHECKLIST = Path(__file__).resolve().parents[2] / "checklists" / "playground.yaml"
QUIET_S = 0.6  # the bot is done answering once Slack has heard nothing from it for this long
START_S = 1.5  # an action that reaches Slack at all does so within this
SETTLE_MAX_S = 10.0

HELP = """\
Type what you would type in Slack, or a playground command:
  /release start v1.2.3     any /release command (status, list, help, abort v1.2.3, report v1.2.3, ...)
  click N                   click control [N] (a button or a checklist box) as shown above
  tick all                  tick every open checklist box of the release
  advance                   click the release's main button (next step / start canary / finish)
  status                    /release status
  submit TEXT               submit the open dialog (a reason) with TEXT
  home                      open the bot's App Home tab
  wait [SECONDS]            let time pass (without SECONDS: until the next reminder is posted)
  help                      this text
  quit                      stop the bot and leave
"""


class Playground:
    """One bot, one pretend workspace, one person."""

    def __init__(self, out: TextIO, *, lang: str = "en", checklist: Path = PLAYGROUND_CHECKLIST) -> None:
        self.out = out
        self._lang = lang
        self._checklist = checklist
        self._secret = secrets.token_hex(16)
        self.slack = SlackStandIn()
        self._seen = 0
        self._shown: dict[tuple[str, str], str] = {}
        self.controls: dict[int, Control] = {}
        self._names = {USER: USER_NAME, CHANNEL: CHANNEL_NAME}
        self._tmp = tempfile.TemporaryDirectory(prefix="release-bot-playground-")
        self.bot: Any = None

    # --- lifecycle ------------------------------------------------------------------------------------

    def start(self) -> None:
        from bot.config import load_settings
        from bot.db.migrate import upgrade
        from bot.runtime.bootstrap import build
        from bot.slack.gateway import ChannelPacer

        self.slack.start()
        env = {
            "SLACK_BOT_TOKEN": "xoxb-playground-0000",
            "SLACK_SIGNING_SECRET": self._secret,
            "SLACK_API_URL": self.slack.base_url,
            "DATABASE_URL": f"sqlite:///{Path(self._tmp.name) / 'playground.db'}",
            "RELEASE_BOT_CHECKLIST": str(self._checklist),
            "RELEASE_BOT_LANGUAGE": self._lang,
            "RELEASE_CHANNEL": CHANNEL,
            # You are the release manager here. `serve` refuses to start until RELEASE_MANAGERS names who may
            # start, advance, abort and roll back (user ids, user groups), or is * for everyone in the channel.
            "RELEASE_MANAGERS": USER,
        }
        settings = load_settings(env)
        upgrade(settings.database_url)
        self.bot = build(
            settings, sweep_s=0.5, sync_interval_s=0.2, pacer=ChannelPacer(0.0), home_interval_s=1.0
        )
        self.bot.start_background()
        self.print(
            f"release-bot playground · checklist {self._checklist.name} · database {env['DATABASE_URL']}"
        )
        self.print(
            "You are @you in #releases, and its release manager (RELEASE_MANAGERS; see the README's roles)."
            " Type `help` for commands.\n"
        )

    def stop(self) -> None:
        if self.bot is not None:
            self.bot.extras["dashboard"].home.stop()
            self.bot.stop()
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
            self.click(int(rest.lstrip("[#").rstrip("]")))
        elif line == "tick all":
            self.tick_all()
        elif word == "advance":
            self.advance()
        elif word == "submit":
            self.submit(rest)
        elif word == "home":
            self.home()
        elif word == "wait":
            self.wait(float(rest) if rest else None)
        else:
            raise ValueError(f"unknown command {line!r}; type `help`")
        return True

    # --- showing what Slack shows ---------------------------------------------------------------------

    def settle(self, since: float, max_s: float = SETTLE_MAX_S) -> None:
        """Wait until the bot has answered (Slack heard from it, then nothing for a moment); show the result."""
        deadline = since + max_s
        while time.monotonic() < deadline:
            now, last = time.monotonic(), self.slack.last_activity
            if last < since and now - since > START_S:
                break  # nothing reached Slack: the answer (if any) was the ack itself
            if last >= since and now - last > QUIET_S:
                break
            time.sleep(0.05)
        self.show_new()

    def show_new(self) -> None:
        with self.slack.lock:
            events = self.slack.ws.events[self._seen :]
            self._seen += len(events)
        for event in events:
            self.show(event)

    def show(self, event: Event) -> None:
        if event.kind == "file" and event.file is not None:
            size = len(event.file.get("data") or b"")
            self.print(
                f"  📎 {event.file.get('title')} ({event.file.get('name')}, {size} bytes) shared in the thread"
            )
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
        if key is not None and key.ephemeral_to is None:
            if self._shown.get((key.channel, key.ts)) == text:
                return None  # a redraw that changed nothing a person could see
            self._shown[(key.channel, key.ts)] = text
        first = max(self.controls, default=0) + 1
        for n, control in enumerate(found):
            self.controls[first + n] = control
            text = text.replace(f"[#{n + 1}]", f"[{first + n}]", 1)
        self.print(head)
        for line in text.splitlines():
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

    def click(self, number: int) -> None:
        control = self.controls.get(number)
        if control is None:
            raise LookupError(f"there is no control [{number}]")
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

    def submit(self, text: str) -> None:
        with self.slack.lock:
            views = list(self.slack.ws.views.values())
        if not views:
            raise LookupError("no dialog is open")
        view = views[-1]
        values: dict[str, Any] = {}
        for block in view.get("blocks", []):
            element = block.get("element") or {}
            if block.get("type") == "input" and element.get("action_id"):
                values[block.get("block_id", "pg-input")] = {
                    element["action_id"]: {"type": "plain_text_input", "value": text}
                }
        payload = payloads.view_submission(view, values)
        with self.slack.lock:
            self.slack.ws.views.pop(view["id"], None)
        self._interact(payload)

    def home(self) -> None:
        self.dispatch(payloads.app_home_opened(), "application/json")

    def wait(self, seconds: float | None) -> None:
        if seconds is None:
            due = self.bot.lifecycle.next_due()
            if due is None:
                raise LookupError("no reminder is pending")
            from datetime import UTC, datetime

            seconds = max((due - datetime.now(UTC)).total_seconds(), 0.0) + 1.0
            self.print(f"  (waiting {seconds:.0f} s for the next reminder)")
        deadline = time.monotonic() + min(seconds, 600.0)
        while time.monotonic() < deadline:
            self.show_new()
            time.sleep(0.1)


def _title(view: dict[str, Any]) -> str:
    title = view.get("title")
    return str(title.get("text")) if isinstance(title, dict) else "dialog"


def main(argv: list[str] | None = None, *, stdin: TextIO | None = None, stdout: TextIO | None = None) -> int:
    """Run the playground until ``quit`` or the end of the input."""
    stdin, stdout = stdin or sys.stdin, stdout or sys.stdout
    # The bot's own logs would drown the conversation; warnings still go to stderr.
    logging.basicConfig(level=os.environ.get("PLAYGROUND_LOG_LEVEL", "WARNING"), stream=sys.stderr)
    playground = Playground(stdout, lang=os.environ.get("RELEASE_BOT_LANGUAGE", "en"))
    playground.start()
    interactive = stdin.isatty()
    try:
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
