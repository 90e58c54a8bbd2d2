"""Socket Mode's link to Slack, watched, so that a bot that cannot hear Slack says so and exits.

Bolt's handler connects once and, when that fails, raises from ``connect()``; later its client reconnects by itself
but never gives up. A bot with a refused app token or no route to Slack then ran on, deaf, with a healthy
``/livez``. Here connecting happens on a thread of its own, retried every few seconds; ``problem()`` says what is
wrong for ``/livez``; and when the link has been down for ``give_up_s`` (or Slack refuses the token), ``on_down``
is called with the exit code, so the orchestrator restarts the bot instead of leaving it deaf.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from slack_sdk.errors import SlackApiError

log = logging.getLogger(__name__)

# Slack's answers that no retry can change: the app-level token itself is wrong.
REFUSED = {
    "invalid_auth",
    "not_authed",
    "account_inactive",
    "token_revoked",
    "token_expired",
    "not_allowed_token_type",
    "missing_scope",
}
LIVEZ_GRACE_S = (
    10.0  # a reconnect normally takes a second or two: /livez fails only past this (or half give_up_s)
)
CLOSE_WAIT_S = 3.0  # the handler's close can wait on a reconnect in flight; shutdown does not wait longer


class SocketLink:
    """Connects Bolt's Socket Mode handler, keeps watching it, and calls ``on_down(code)`` when it gives up."""

    def __init__(
        self,
        handler: Any,
        *,
        give_up_s: float,
        on_down: Callable[[int], None],
        retry_s: float = 2.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._handler = handler
        self._give_up_s = give_up_s
        self._on_down = on_down
        self._retry_s = retry_s
        self._monotonic = monotonic
        self._down_since: float | None = monotonic()
        self._reason = "connecting"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="socket-link", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def connected(self) -> bool:
        return bool(self._handler.client.is_connected())

    def problem(self) -> str | None:
        """Why Socket Mode is not serving, once it has been down longer than a reconnect takes; else None."""
        since = self._down_since
        if since is None or self._monotonic() - since < min(LIVEZ_GRACE_S, self._give_up_s / 2):
            return None
        return f"Socket Mode not connected to Slack for {self._monotonic() - since:.0f} s ({self._reason})"

    def close(self) -> None:
        """Stop watching and close the connection, waiting at most CLOSE_WAIT_S for Bolt's handler."""
        self._stop.set()
        closer = threading.Thread(target=self._handler.close, name="socket-close", daemon=True)
        closer.start()
        closer.join(CLOSE_WAIT_S)

    def _run(self) -> None:
        announced = False
        while not self._stop.is_set():
            if self.connected():
                if self._down_since is not None:
                    log.info("connected to Slack in Socket Mode")
                    self._down_since, announced = None, False
                self._stop.wait(1.0)
                continue
            down_since = self._down_since
            if down_since is None:
                down_since = self._down_since = self._monotonic()
                log.warning("Socket Mode lost its connection to Slack; reconnecting")
            code = self._attempt()
            if code is None and not self.connected():
                down_for = self._monotonic() - down_since
                if down_for >= self._give_up_s:
                    log.error(
                        "Socket Mode has not been connected to Slack for %.0f s (%s): exiting, so that the bot is "
                        "restarted",
                        down_for,
                        self._reason,
                    )
                    code = 1
                elif not announced:
                    log.warning(
                        "Socket Mode cannot reach Slack (%s); retrying every %g s",
                        self._reason,
                        self._retry_s,
                    )
                    announced = True
            if code is not None:
                self._on_down(code)
                return
            if not self.connected():
                self._stop.wait(self._retry_s)

    def _attempt(self) -> int | None:
        """One connection attempt: an exit code when Slack refuses the token, else None (connected or not)."""
        try:
            self._handler.client.connect_to_new_endpoint()
        except SlackApiError as e:
            code = (
                str(e.response.get("error", "unknown_error")) if e.response is not None else "unknown_error"
            )
            if code in REFUSED:
                log.error(
                    "SLACK_APP_TOKEN was refused by Slack (apps.connections.open: %s): create an app-level token "
                    "with connections:write (Basic Information → App-Level Tokens); exiting",
                    code,
                )
                return 2
            self._reason = f"apps.connections.open: {code}"
        except Exception as e:
            self._reason = f"{type(e).__name__}: {e}"[:200]
        return None


def quiet_client(token: str | None, base_url: str) -> Any:
    """A Web API client for start-up checks and Socket Mode's own calls: no retries and no log lines of its own,
    since the caller retries and says in one line what failed (the SDK logs two lines per refused connection)."""
    from slack_sdk import WebClient

    quiet = logging.getLogger("bot.slack_sdk_quiet")
    quiet.setLevel(logging.CRITICAL)
    return WebClient(token=token, base_url=base_url, timeout=10, logger=quiet, retry_handlers=[])
