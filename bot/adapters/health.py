"""HttpHealthChecker: the ``HealthChecker`` port over httpx.

One GET per check with explicit connect/read timeouts. Network trouble is an answer, not an exception: the
result says what went wrong in plain words ("connection refused", "no answer within 5 s") so a release card
can show it as is.
"""

from __future__ import annotations

import json
import socket
import ssl
import time
from typing import Any

import httpx

from bot.ports import HealthResult

MAX_BODY_BYTES = 64 * 1024  # enough for any health document; a huge body is cut, not loaded
SUMMARY_CHARS = 200


class HttpHealthChecker:
    """GETs a health URL and reports status, latency and a one-line summary of the body."""

    def __init__(self, timeout_s: float = 5.0, client: httpx.Client | None = None) -> None:
        self._timeout_s = timeout_s
        self._timeout = httpx.Timeout(timeout_s, connect=min(timeout_s, 5.0))
        self._owns_client = client is None
        # Redirects are not followed: a health URL that redirects (often to a login page) is not healthy.
        self._client = client or httpx.Client(timeout=self._timeout, follow_redirects=False)

    def close(self) -> None:
        """Close the client if this checker created it."""
        if self._owns_client:
            self._client.close()

    def check(self, url: str) -> HealthResult:
        """GET ``url`` once; never raises for network problems."""
        started = time.perf_counter()
        try:
            with self._client.stream("GET", url, timeout=self._timeout) as response:
                body = _read_capped(response)
                status = response.status_code
                location = response.headers.get("location")
                content_type = response.headers.get("content-type", "")
        except httpx.HTTPError as e:
            return HealthResult(
                url=url,
                ok=False,
                status_code=None,
                latency_ms=_elapsed_ms(started),
                summary=self._describe(e),
            )
        latency = _elapsed_ms(started)
        summary = (
            f"redirects to {location}"
            if 300 <= status < 400 and location
            else summarise_body(body, content_type)
        )
        return HealthResult(
            url=url, ok=200 <= status < 300, status_code=status, latency_ms=latency, summary=summary
        )

    def _describe(self, error: httpx.HTTPError) -> str:
        if isinstance(error, httpx.TimeoutException):
            return f"no answer within {self._timeout_s:g} s"
        if isinstance(error, httpx.UnsupportedProtocol | httpx.InvalidURL):
            return f"invalid URL: {_one_line(str(error))}"
        causes = _causes(error)
        text = " ".join(str(c) for c in causes)
        if any(isinstance(c, ssl.SSLError) for c in causes) or "SSL" in text or "CERTIFICATE" in text:
            reason = (
                "certificate not trusted" if "CERTIFICATE_VERIFY_FAILED" in text else _one_line(str(error))
            )
            return f"TLS error: {reason}"
        if any(isinstance(c, socket.gaierror) for c in causes) or _looks_like_dns(text):
            return "DNS lookup failed"
        if any(isinstance(c, ConnectionRefusedError) for c in causes) or "Connection refused" in text:
            return "connection refused"
        if isinstance(error, httpx.RemoteProtocolError | httpx.ReadError):
            return "the server closed the connection before answering"
        return f"could not connect: {_one_line(str(error)) or type(error).__name__}"


def summarise_body(body: bytes, content_type: str = "") -> str:
    """One line: top-level JSON scalars as ``key=value``, else the first 200 characters of text."""
    if not body.strip():
        return "(empty body)"
    text = body.decode("utf-8", errors="replace")
    try:
        document: Any = json.loads(text)
    except ValueError:
        if "html" in content_type.lower():
            return _truncate("HTML page: " + _one_line(text))
        return _truncate(_one_line(text))
    if isinstance(document, dict):
        pairs = [f"{k}={_scalar(v)}" for k, v in document.items() if _is_scalar(v)]
        if pairs:
            return _truncate(" ".join(pairs))
        return _truncate("JSON object with keys " + ", ".join(str(k) for k in document))
    if isinstance(document, list):
        return f"JSON list of {len(document)} items"
    return _truncate(_scalar(document))


def _read_capped(response: httpx.Response) -> bytes:
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size >= MAX_BODY_BYTES:
            break
    return b"".join(chunks)[:MAX_BODY_BYTES]


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _scalar(value: Any) -> str:
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    return _one_line(str(value))


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _truncate(text: str) -> str:
    return text if len(text) <= SUMMARY_CHARS else text[: SUMMARY_CHARS - 1] + "…"


def _causes(error: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def _looks_like_dns(text: str) -> bool:
    markers = (
        "Name or service not known",
        "nodename nor servname",
        "getaddrinfo",
        "Temporary failure in name",
    )
    return any(m in text for m in markers)


def _elapsed_ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000
