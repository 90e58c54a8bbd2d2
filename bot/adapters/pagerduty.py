"""PagerDutyPager: the ``Pager`` port on the ``pagerduty`` 6.x ``EventsApiV2Client`` (Events API v2).

The client validates nothing and, by default, retries 429 forever and 503 for minutes; this adapter validates
events before sending (PagerDuty would answer 400), bounds every retry, and turns the client's exceptions into
``PagerError`` with ``retryable`` set. The routing key is a secret that travels in every request body: it is
scrubbed from anything that could reach a log line or an error message.
"""

from __future__ import annotations

import json
import logging
import ssl
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pagerduty

from bot.errors import ConfigError, PagerError
from bot.ports import ChangeEvent, Clock, PageEvent, SystemClock

log = logging.getLogger(__name__)

DEFAULT_EVENTS_URL = "https://events.pagerduty.com"
SEVERITIES = frozenset({"critical", "error", "warning", "info"})
MAX_SUMMARY = 1024
MAX_DEDUP_KEY = 255
MAX_BODY_BYTES = 512 * 1024
_REDACTED = "[routing key redacted]"


class PagerDutyPager:
    """Sends alert and change events to one PagerDuty integration."""

    def __init__(
        self,
        *,
        routing_key: str,
        events_url: str = DEFAULT_EVENTS_URL,
        timeout_s: float = 10.0,
        max_retries: int = 3,
        sleep_timer: float = 1.0,
        verify: str | None = None,
        transport: httpx.BaseTransport | None = None,
        clock: Clock | None = None,
    ) -> None:
        if not routing_key:
            raise ConfigError("The PagerDuty integration key is empty.")
        if not events_url.startswith("https://"):
            raise ConfigError(f"The PagerDuty events URL must start with https:// (got {events_url!r}).")
        if max_retries < 1:
            # The client reads retry[status] == 0 as "default behaviour", which for 429 means forever.
            raise ConfigError("PagerDuty max_retries must be 1 or more.")
        self._routing_key = routing_key
        self._timeout_s = timeout_s
        self._clock = clock or SystemClock()
        # httpx 0.28 deprecates verify=<path> (a DeprecationWarning, an error under our pytest config), so the
        # CA bundle becomes an SSLContext. Building it reads a file; nothing connects until the first event.
        tls: ssl.SSLContext | bool = True
        if verify:
            try:
                tls = ssl.create_default_context(cafile=verify)
            except (OSError, ssl.SSLError) as e:
                raise ConfigError(f"Cannot load the PagerDuty CA bundle {verify!r}: {e}") from e
        client_kwargs: dict[str, Any] = {"verify": tls}
        if transport is not None:
            client_kwargs["transport"] = transport
        self._client = pagerduty.EventsApiV2Client(
            routing_key, base_url=events_url.rstrip("/"), **client_kwargs
        )
        # Bounded retries: the client's defaults retry 429 without limit and 503 six times with doubling
        # sleeps (about 189 s). With sleep_timer=1 and 3 retries the sleeps are 2, 4, 8 s.
        self._client.retry.update({429: max_retries, 500: max_retries, 502: max_retries})
        self._client.retry.update({503: max_retries, 504: max_retries})
        self._client.max_http_attempts = max_retries
        self._client.max_network_attempts = max_retries
        self._client.sleep_timer = sleep_timer
        # Annotated int upstream, but it is handed to httpx per request as timeout=, which takes a Timeout.
        self._client.timeout = httpx.Timeout(timeout_s, connect=min(timeout_s, 5.0))  # type: ignore[assignment]

    def close(self) -> None:
        """Close the pooled connections."""
        self._client.close()

    def send(self, event: PageEvent) -> None:
        """Send a trigger, acknowledge or resolve event; raises ``PagerError``."""
        dedup_key = _check_dedup_key(event.dedup_key)
        if event.action == "trigger":
            payload, details, links = self._trigger_parts(event)
            self._check_size({"payload": payload, "custom_details": details, "links": links})
            self._call(
                "trigger",
                dedup_key,
                lambda: self._client.trigger(
                    payload["summary"],
                    payload["source"],
                    dedup_key=dedup_key,
                    severity=payload["severity"],
                    payload={"timestamp": payload["timestamp"]},
                    custom_details=details,
                    links=links or None,
                ),
            )
        elif event.action == "acknowledge":
            self._call("acknowledge", dedup_key, lambda: self._client.acknowledge(dedup_key))
        elif event.action == "resolve":
            self._call("resolve", dedup_key, lambda: self._client.resolve(dedup_key))
        else:
            raise _invalid(f"unknown event action {event.action!r}")

    def change(self, event: ChangeEvent) -> None:
        """Send a change event (shown on the service timeline, never notifies); raises ``PagerError``."""
        if not event.summary.strip():
            raise _invalid("a change event needs a summary")
        summary = _truncate(event.summary)
        timestamp = _iso(event.timestamp)
        details = _check_details(event.custom_details)
        links = _links(event.links)
        self._check_size({"summary": summary, "custom_details": details, "links": links})
        self._call(
            "change",
            None,
            lambda: self._client.submit(
                summary,
                source=event.source or None,
                custom_details=details,
                links=links or None,
                timestamp=timestamp,
            ),
        )

    # --- validation ---------------------------------------------------------------------------------------

    def _trigger_parts(
        self, event: PageEvent
    ) -> tuple[dict[str, str], dict[str, Any] | None, list[dict[str, str]]]:
        if event.severity not in SEVERITIES:
            raise _invalid(f"severity {event.severity!r} is not one of {', '.join(sorted(SEVERITIES))}")
        if not event.summary.strip() or not event.source.strip():
            raise _invalid("a trigger needs a summary and a source")
        payload = {
            "summary": _truncate(event.summary),
            "source": event.source,
            "severity": event.severity,
            # Always our own timestamp: submit()/trigger without one fall back to datetime.utcnow().
            "timestamp": _iso(event.timestamp or self._clock.now()),
        }
        return payload, _check_details(event.custom_details), _links(event.links)

    def _check_size(self, parts: dict[str, Any]) -> None:
        size = len(json.dumps(parts).encode()) + len(self._routing_key) + 200  # envelope overhead
        if size > MAX_BODY_BYTES:
            raise _invalid(f"the event is about {size // 1024} KB; PagerDuty accepts at most 512 KB")

    # --- the call and its errors --------------------------------------------------------------------------

    def _call(self, action: str, dedup_key: str | None, call: Callable[[], object]) -> None:
        try:
            call()
        except pagerduty.Error as e:
            raise self._translate(e, action) from self._scrubbed(e)
        except httpx.HTTPError as e:  # outside the client's retry loop (e.g. a body that fails to decode)
            raise PagerError(
                "Could not reach PagerDuty; the event will be retried.",
                retryable=True,
                detail=self._scrub(f"PagerDuty {action}: {type(e).__name__}: {e}"),
            ) from self._scrubbed(e)
        log.info("PagerDuty accepted %s event dedup_key=%s", action, dedup_key)

    def _translate(self, e: pagerduty.Error, action: str) -> PagerError:
        response = e.response
        if response is None:
            return self._network_error(e, action)
        status = response.status_code
        if 200 <= status < 300:
            # A 2xx whose body lacks dedup_key: not PagerDuty itself (a proxy?), so the event may be lost.
            return PagerError(
                "PagerDuty gave an unexpected answer; the event will be retried.",
                retryable=True,
                detail=self._scrub(f"PagerDuty {action}: status {status} with a malformed body"),
            )
        if status == 400:
            message, errors = _error_body(response)
            return PagerError(
                f"PagerDuty refused the event as invalid: {self._scrub('; '.join(errors) or message)}",
                retryable=False,
                detail=self._scrub(f"PagerDuty {action}: status 400 {message}; errors: {errors}"),
            )
        if status in (401, 403):
            return PagerError(
                "PagerDuty rejected the integration key.",
                retryable=False,
                detail=f"PagerDuty {action}: status {status}",
            )
        # 5xx classification: pagerduty < 6.2.1 raised plain HttpError for 502-504, so decide on the status.
        if status == 429 or status >= 500:
            what = "is rate limiting us" if status == 429 else f"answered with an error (status {status})"
            return PagerError(
                f"PagerDuty {what}; the event will be retried.",
                retryable=True,
                detail=self._scrub(f"PagerDuty {action}: status {status} after bounded retries"),
            )
        message, errors = _error_body(response)
        return PagerError(
            f"PagerDuty refused the event (status {status}); check the PagerDuty events URL.",
            retryable=False,
            detail=self._scrub(f"PagerDuty {action}: status {status} {message} {errors}"),
        )

    def _network_error(self, e: pagerduty.Error, action: str) -> PagerError:
        cause = e.__cause__
        if isinstance(cause, httpx.TimeoutException):
            words = f"PagerDuty did not answer within {self._timeout_s:g} s"
        elif isinstance(cause, httpx.ConnectError) and "CERTIFICATE_VERIFY_FAILED" in str(cause):
            words = "Could not reach PagerDuty (TLS certificate not trusted)"
        else:
            words = "Could not reach PagerDuty"
        reason = f"{type(cause).__name__}: {cause}" if cause is not None else "network error"
        return PagerError(
            f"{words}; the event will be retried.",
            retryable=True,
            detail=self._scrub(f"PagerDuty {action}: {reason}"),
        )

    def _scrub(self, text: str) -> str:
        return text.replace(self._routing_key, _REDACTED)

    def _scrubbed(self, e: BaseException) -> BaseException:
        """Scrub the vendor exception we chain: tracebacks print its message, which may quote the body.

        The client's 401 message quotes the key's last four characters, so that message is replaced whole.
        """
        if isinstance(e, pagerduty.Error) and e.response is not None and e.response.status_code == 401:
            text = "status 401 from the events API"
        else:
            text = self._scrub(str(e))
        e.args = (text,)
        if isinstance(e, pagerduty.Error):
            e.msg = text
        return e


def _check_dedup_key(dedup_key: object) -> str:
    # The client silently drops a non-str dedup_key on triggers; PagerDuty then opens a new alert each time.
    if not isinstance(dedup_key, str) or not dedup_key.strip():
        raise _invalid("the dedup key must be a non-empty string")
    if len(dedup_key) > MAX_DEDUP_KEY:
        raise _invalid(f"the dedup key is {len(dedup_key)} characters; PagerDuty allows {MAX_DEDUP_KEY}")
    return dedup_key


def _check_details(details: dict[str, Any]) -> dict[str, Any] | None:
    if not details:
        return None
    try:
        json.dumps(details, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise _invalid(f"custom_details is not JSON-serialisable ({e})") from e
    return details


def _truncate(summary: str) -> str:
    return summary if len(summary) <= MAX_SUMMARY else summary[: MAX_SUMMARY - 1] + "…"


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise _invalid("the event timestamp must be timezone-aware")
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


def _links(links: tuple[tuple[str, str], ...]) -> list[dict[str, str]]:
    result = []
    for href, text in links:
        if not href:
            raise _invalid("a link needs an href")
        result.append({"href": href, "text": text} if text else {"href": href})
    return result


def _error_body(response: httpx.Response) -> tuple[str, list[str]]:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200], []
    if not isinstance(body, dict):
        return str(body)[:200], []
    errors = body.get("errors")
    return str(body.get("message", "")), [str(x) for x in errors] if isinstance(errors, list) else []


def _invalid(reason: str) -> PagerError:
    return PagerError(f"The PagerDuty event is invalid: {reason}.", retryable=False, detail=reason)
