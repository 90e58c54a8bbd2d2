"""The floor: a minimal Bolt app that only acks ``/release`` and checkbox clicks.

Same Bolt version, same server (cheroot's threaded WSGI server with the bot's thread count), same signing
verification and the same ``process_before_response=False`` mode as the bot; only our own logic is missing.
Run by bench/run.py as ``python bench/floor_app.py`` with SLACK_SIGNING_SECRET, SLACK_BOT_TOKEN, SLACK_API_URL,
HOST, PORT and HTTP_THREADS set.
"""

from __future__ import annotations

import json
import os
import re
import signal
import threading
from collections.abc import Callable, Iterable
from typing import Any

from slack_bolt import Ack, App
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_sdk import WebClient


def make_app(signing_secret: str, token: str, api_url: str) -> App:
    # Bolt's single-workspace authorization calls auth.test once, on the first request; the bot does the same
    # through its own client, so the floor gets a client pointed at the same fake Slack.
    app = App(
        signing_secret=signing_secret,
        client=WebClient(token=token, base_url=api_url, timeout=10),
        token_verification_enabled=False,
        process_before_response=False,
    )

    @app.command("/release")
    def on_release(ack: Ack) -> None:
        ack(text="ok", response_type="ephemeral")

    @app.action(re.compile(".*"))
    def on_action(ack: Ack) -> None:
        ack()

    return app


def make_wsgi(app: App) -> Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]:
    slack = SlackRequestHandler(app)

    def route(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") in ("/healthz", "/livez"):
            body = json.dumps({"status": "ok"}).encode()
            start_response(
                "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
            )
            return [body]
        return slack(environ, start_response)

    return route


def main() -> None:
    if os.environ.get("BENCH_TUNED_SERVER") == "1":
        from bench.tuned_serve import tune

        tune()
    app = make_app(
        os.environ["SLACK_SIGNING_SECRET"], os.environ["SLACK_BOT_TOKEN"], os.environ["SLACK_API_URL"]
    )
    # The same HTTP server, built the same way, as release-bot serve: only the app differs.
    from bot.runtime.server import make_http_server

    server = make_http_server(
        os.environ.get("HOST", "127.0.0.1"),
        int(os.environ["PORT"]),
        make_wsgi(app),
        int(os.environ.get("HTTP_THREADS", "16")),
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    server.prepare()
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    stop.wait()
    server.stop()
    thread.join(15)


if __name__ == "__main__":
    main()
