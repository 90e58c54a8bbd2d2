"""Floors: a minimal Bolt app that only acks ``/release`` and any action, behind each candidate HTTP server.

    python -m bench.floors --server stdlib     # the standard library's ThreadingHTTPServer, App.dispatch
    python -m bench.floors --server cheroot    # cheroot's threaded WSGI server, Bolt's SlackRequestHandler
    python -m bench.floors --server waitress   # waitress, Bolt's SlackRequestHandler
    python -m bench.floors --server bounded    # the bot's own server (bot.runtime.http_server), the same handler

Same Bolt version, signing secret and verification, and ``process_before_response=False`` as the bot: only our
own logic and hardening are missing. bench/candidates.py measures them all; bench/run.py compares the bot with the
fastest (``FASTEST``). Reads SLACK_SIGNING_SECRET, SLACK_BOT_TOKEN, SLACK_API_URL, HOST, PORT and HTTP_THREADS.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import threading
from collections.abc import Callable, Iterable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from slack_bolt import Ack, App, BoltRequest
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_sdk import WebClient

SERVERS = ("stdlib", "cheroot", "waitress", "bounded")
FASTEST = "stdlib"  # measured by bench/candidates.py; see bench/RESULTS.md
_HEALTH = json.dumps({"status": "ok"}).encode()


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
            start_response(
                "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(_HEALTH)))]
            )
            return [_HEALTH]
        return slack(environ, start_response)

    return route


def stdlib_server(host: str, port: int, app: App) -> ThreadingHTTPServer:
    """A thread per connection, HTTP/1.1 keep-alive, ``App.dispatch`` on the raw body: nothing in between."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self._answer(200, {"Content-Type": ["application/json"]}, _HEALTH)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode("utf-8")
            headers: dict[str, str | Sequence[str]] = {k.lower(): v for k, v in self.headers.items()}
            response = app.dispatch(BoltRequest(body=body, query="", headers=headers))
            out = response.body.encode("utf-8") if isinstance(response.body, str) else response.body
            self._answer(response.status, response.headers, out)

        def _answer(self, status: int, headers: dict[str, Any], body: bytes) -> None:
            self.send_response(status)
            for key, values in headers.items():
                if key.lower() != "content-length":
                    for value in values:
                        self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            # Headers and body in one write: as two, Nagle's algorithm holds the body until the client's
            # delayed ACK of the headers (40 ms on Linux).
            self._headers_buffer.append(b"\r\n" + body)  # type: ignore[attr-defined]
            self.flush_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 128  # the default listen backlog of 5 drops SYNs in a burst of new connections

    return Server((host, port), Handler)


def serve(kind: str, host: str, port: int, threads: int, app: App, stop: threading.Event) -> None:
    if kind == "stdlib":
        httpd = stdlib_server(host, port, app)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        stop.wait()
        httpd.shutdown()
    elif kind == "cheroot":
        from cheroot import wsgi

        server = wsgi.Server((host, port), make_wsgi(app), numthreads=threads, request_queue_size=128)
        server.keep_alive_conn_limit = 256
        server.prepare()
        threading.Thread(target=server.serve, daemon=True).start()
        stop.wait()
        server.stop()
    elif kind == "waitress":
        from waitress.server import create_server

        wserver = create_server(
            make_wsgi(app),
            host=host,
            port=port,
            threads=threads,
            connection_limit=1000,
            asyncore_use_poll=True,
            channel_timeout=30,
        )
        threading.Thread(target=wserver.run, daemon=True).start()
        stop.wait()
        wserver.close()
    elif kind == "bounded":
        from bot.runtime.http_server import HttpServer

        bounded = HttpServer(host, port, make_wsgi(app), threads)
        bounded.prepare()
        threading.Thread(target=bounded.serve, daemon=True).start()
        stop.wait()
        bounded.stop()
    else:
        raise SystemExit(f"unknown server {kind!r}; one of {', '.join(SERVERS)}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--server", choices=SERVERS, default=FASTEST)
    args = parser.parse_args(argv)
    app = make_app(
        os.environ["SLACK_SIGNING_SECRET"], os.environ["SLACK_BOT_TOKEN"], os.environ["SLACK_API_URL"]
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    serve(
        args.server,
        os.environ.get("HOST", "127.0.0.1"),
        int(os.environ["PORT"]),
        int(os.environ.get("HTTP_THREADS", "16")),
        app,
        stop,
    )


if __name__ == "__main__":
    main()
