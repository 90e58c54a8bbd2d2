"""The load driver: signed Slack requests from a pool of threads, each with its own keep-alive httpx client.

Bodies are built by ``tests.slack_user.SlackUser`` (exactly as Slack sends them) and signed just before
sending; only the HTTP round trip is timed.
"""

from __future__ import annotations

import gc
import itertools
import math
import threading
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any, cast
from urllib.parse import parse_qs

import httpx

from tests.slack_user import SlackUser, signed_headers


class BodyBuilder(SlackUser):
    """A SlackUser whose ``post`` returns the body instead of sending it, so the driver can time sends alone."""

    def post(self, body: str, **kwargs: Any) -> Any:
        return body


def builder(fake: Any, user_id: str = "U061F7AUR", name: str = "alice") -> BodyBuilder:
    return BodyBuilder("", user_id, name, fake, None)  # type: ignore[arg-type]


_seq = itertools.count(1)


def start_bodies(fake: Any, count: int, tag: str) -> list[str]:
    """``/release start`` of distinct versions, each in its own channel (Slack paces posts per channel)."""
    user = builder(fake)
    bodies = []
    for _ in range(count):
        n = next(_seq)
        body = user.command(
            f"start v1.{n // 1000}.{n % 1000}", channel=f"C0B{n:07d}", response_name=f"{tag}-{n}"
        )
        bodies.append(cast(str, body))
    return bodies


@dataclass(frozen=True)
class Target:
    """One checkbox in one posted message."""

    channel: str
    message: dict[str, Any]
    item_key: str


def click_targets(messages: dict[str, list[dict[str, Any]]], count: int) -> list[Target]:
    """At least ``count`` checkbox items from as few releases (channels) as possible, interleaved across
    their messages the way several people work through one checklist at once."""
    per_message: list[list[Target]] = []
    for channel, msgs in messages.items():
        if sum(len(group) for group in per_message) >= count:
            break
        for message in msgs:
            keys = [
                o["value"]
                for block in message.get("blocks", [])
                if (block.get("accessory") or {}).get("type") == "checkboxes"
                for o in block["accessory"].get("options", [])
            ]
            if keys:
                per_message.append([Target(channel, message, k) for k in keys])
    return [t for group in itertools.zip_longest(*per_message) for t in group if t is not None][:count]


def channel_of(body: str) -> str:
    """The channel a ``/release start`` body was sent from (its release's channel)."""
    return parse_qs(body)["channel_id"][0]


def click_bodies(fake: Any, targets: Sequence[Target]) -> list[str]:
    """One click per target, flipping the item from what the (fresh) message shows, by two people in turn."""
    users = [builder(fake, "U061F7AUR", "alice"), builder(fake, "U0BOB00002", "bob")]
    bodies = []
    for i, target in enumerate(targets):
        action_ts = f"{int(time.time())}.{next(_seq):06d}"  # unique, or the bot drops it as a redelivery
        body = users[i % 2].click_item(target.channel, target.message, target.item_key, action_ts=action_ts)
        bodies.append(cast(str, body))
    return bodies


@dataclass(frozen=True)
class LevelResult:
    concurrency: int
    requests: int
    errors: int
    failures: dict[str, int]
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    wall_s: float
    per_s: float
    samples_ms: tuple[float, ...] = field(default=(), repr=False)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("samples_ms")
        return out


def summarise(
    concurrency: int, ms: Sequence[float], failures: Counter[str] | dict[str, int], wall: float
) -> LevelResult:
    values = sorted(ms)
    return LevelResult(
        concurrency=concurrency,
        requests=len(values),
        errors=sum(failures.values()),
        failures=dict(failures),
        p50_ms=round(percentile(values, 50), 2),
        p95_ms=round(percentile(values, 95), 2),
        p99_ms=round(percentile(values, 99), 2),
        max_ms=round(values[-1], 2) if values else math.nan,
        wall_s=round(wall, 3),
        per_s=round(len(values) / wall, 1) if wall else math.nan,
        samples_ms=tuple(values),
    )


def pooled(parts: Sequence[LevelResult]) -> LevelResult:
    """One result from several bursts at one concurrency: percentiles over all their round trips."""
    failures: Counter[str] = Counter()
    for part in parts:
        failures.update(part.failures)
    samples = [v for part in parts for v in part.samples_ms]
    return summarise(parts[0].concurrency, samples, failures, sum(p.wall_s for p in parts))


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def drive(
    url: str, bodies: Sequence[str], concurrency: int, *, timeout_s: float = 10.0, reuse: bool = True
) -> LevelResult:
    """Send every body to ``url``/slack/events from ``concurrency`` threads; latencies of the round trips.

    ``reuse``: each thread keeps one connection open (keep-alive); otherwise every request opens a new one and
    the server is asked to close it (``Connection: close``), its connect timed with it. Slack promises neither."""
    endpoint = f"{url}/slack/events"
    latencies: list[float] = []
    failures: Counter[str] = Counter()
    lock = threading.Lock()
    next_index = itertools.count()
    ready = threading.Barrier(concurrency + 1)

    def worker(worker_no: int) -> None:
        mine: list[float] = []
        failed: Counter[str] = Counter()
        limits = httpx.Limits() if reuse else httpx.Limits(max_keepalive_connections=0)
        extra = {} if reuse else {"connection": "close"}
        with httpx.Client(timeout=timeout_s, limits=limits) as http:
            # Open the keep-alive connection before the clock starts: a burst of connects would measure the
            # server's listen backlog (see README), not the ack path. The connects are staggered for that reason.
            # /livez, not /healthz: the bot's /healthz queries the database, which the serving CPU would count.
            time.sleep(0.002 * worker_no)
            http.get(f"{url}/livez")
            ready.wait()
            while (i := next(next_index)) < len(bodies):
                body = bodies[i]
                headers = signed_headers(body) | extra
                t0 = time.perf_counter()
                try:
                    status = str(http.post(endpoint, content=body, headers=headers).status_code)
                except httpx.HTTPError as e:
                    status = type(e).__name__
                mine.append(time.perf_counter() - t0)
                if status != "200":
                    failed[status] += 1
        with lock:
            latencies.extend(mine)
            failures.update(failed)

    # The driver's own garbage collector stays out of the timed round trips. A full collection of this process
    # (which imported SQLAlchemy, Alembic and psycopg to migrate the scratch database) took tens of ms, and its
    # allocation pattern repeats every round, so it landed in the same burst each time: two identical floors,
    # one after the other, measured 1.62x apart at c=10 (1.01-1.17x with the collector held).
    gc.collect()
    gc.disable()
    try:
        with ThreadPoolExecutor(concurrency) as pool:
            futures = [pool.submit(worker, n) for n in range(concurrency)]
            ready.wait()
            started = time.perf_counter()
            for f in futures:
                f.result()
            wall = time.perf_counter() - started
    finally:
        gc.enable()
    return summarise(concurrency, [v * 1000 for v in latencies], failures, wall)
