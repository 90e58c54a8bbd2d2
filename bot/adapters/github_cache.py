"""Conditional GETs for the GitHub client: a bounded ETag cache in an httpx transport.

GitHub answers ``304 Not Modified`` to a GET carrying the ``If-None-Match`` of a response it gave before, and a 304
does not count against the rate limit. A re-check of a release that nothing changed in therefore costs no quota.

githubkit's own cache (hishel) keeps every response ever fetched in an unbounded in-memory database; a bot that runs
for months would grow without end. This one keeps the most recently used ``max_entries`` responses, each at most
``max_body`` bytes, and counts what went over the wire for the benchmarks.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

import httpx


@dataclass(frozen=True)
class _Entry:
    etag: str
    body: bytes
    headers: tuple[tuple[str, str], ...]


@dataclass
class WireCounts:
    """What reached GitHub: requests sent, how many of them GitHub answered 304, and how many were refused
    for the rate limit."""

    sent: int = 0
    not_modified: int = 0
    rate_limited: int = 0


class EtagTransport(httpx.BaseTransport):
    """Adds ``If-None-Match`` to GETs it has an ETag for, and turns a 304 back into the stored 200."""

    def __init__(
        self, inner: httpx.BaseTransport, *, max_entries: int = 512, max_body: int = 1_000_000
    ) -> None:
        self._inner = inner
        self._max_entries = max_entries
        self._max_body = max_body
        self._entries: OrderedDict[tuple[str, str], _Entry] = OrderedDict()
        self._lock = threading.Lock()
        self.counts = WireCounts()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        # The credentials are part of the key: a response one token may see is never served to another.
        key = (str(request.url), request.headers.get("authorization", ""))
        entry = None
        if request.method == "GET":
            with self._lock:
                entry = self._entries.get(key)
                if entry is not None:
                    self._entries.move_to_end(key)
            if entry is not None:
                request.headers["If-None-Match"] = entry.etag
        response = self._inner.handle_request(request)
        with self._lock:
            self.counts.sent += 1
            if response.status_code in (403, 429) and (
                "retry-after" in response.headers or response.headers.get("x-ratelimit-remaining") == "0"
            ):
                self.counts.rate_limited += 1
        if response.status_code == 304 and entry is not None:
            response.close()
            with self._lock:
                self.counts.not_modified += 1
            # The stored answer, with the 304's fresh headers (rate-limit figures) over the stored ones.
            headers = httpx.Headers(list(entry.headers))
            for name, value in response.headers.items():
                if name.lower() not in ("content-length", "content-encoding", "transfer-encoding"):
                    headers[name] = value
            return httpx.Response(200, headers=headers, content=entry.body, request=request)
        etag = response.headers.get("etag")
        if request.method != "GET" or response.status_code != 200 or not etag:
            return response
        body = response.read()
        kept = tuple(
            (k, v)
            for k, v in response.headers.multi_items()
            if k.lower() not in ("content-length", "content-encoding", "transfer-encoding")
        )
        if len(body) <= self._max_body:
            with self._lock:
                self._entries[key] = _Entry(etag, body, kept)
                self._entries.move_to_end(key)
                while len(self._entries) > self._max_entries:
                    self._entries.popitem(last=False)
        # read() decoded the body: the copy must not claim an encoding any more.
        return httpx.Response(200, headers=list(kept), content=body, request=request)

    def close(self) -> None:
        self._inner.close()
