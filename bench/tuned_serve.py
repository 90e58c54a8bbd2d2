"""``release-bot serve`` with the cheroot listen backlog and keep-alive limit raised: the bench's what-if for the
fix proposed in bench/README.md, measured without editing bot/. Run by ``bench/run.py --tuned-server``."""

from __future__ import annotations

import sys

from cheroot import server

LISTEN_BACKLOG = 128  # cheroot's default of 5 drops SYNs when Slack opens a burst of connections
KEEP_ALIVE_LIMIT = 256  # cheroot's default of 10 closes the 11th idle keep-alive connection


def tune() -> None:
    server.HTTPServer.request_queue_size = LISTEN_BACKLOG
    server.HTTPServer.keep_alive_conn_limit = KEEP_ALIVE_LIMIT


if __name__ == "__main__":
    tune()
    from bot.cli import main

    sys.exit(main(["serve"]))
