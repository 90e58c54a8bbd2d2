"""The HTTP front under attack: no way in without the signing secret, and no way to take it down without it.

Requests are written to a raw socket where httpx would refuse to send them (a negative Content-Length, a 2 MB
header, a request that never ends). The figures (200 slow clients, twelve 40 MB headers, memory) are measured by
bench/hostile.py; these tests check the answers and that service goes on.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import socket
import struct
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import pytest

from bot.runtime.http_server import HttpServer
from bot.runtime.server import make_http_server
from tests.conftest import RunningBot
from tests.slack_user import SECRET, TEAM, signed_headers
from tests.test_release_start import CHANNEL, wait_for_release


def _port(running: RunningBot) -> int:
    return int(running.url.rsplit(":", 1)[1])


def _raw(port: int, data: bytes, *, timeout: float = 10.0) -> bytes:
    """Send ``data`` on a fresh connection and read until the server closes it (or ``timeout``)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        # The server may answer and close before taking everything: its answer is still there to read.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(data)
        return _read_answer(sock)


def _read_answer(sock: socket.socket) -> bytes:
    got = b""
    try:
        while chunk := sock.recv(65536):
            got += chunk
            if b"\r\n\r\n" in got and _complete(got):
                break
    except (ConnectionResetError, TimeoutError):
        pass
    return got


def _complete(answer: bytes) -> bool:
    head, _, body = answer.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value)
    return False


def _status(answer: bytes) -> int:
    assert answer.startswith(b"HTTP/1."), answer[:200]
    return int(answer.split(b" ", 2)[1])


def _command_body(text: str, response_url: str) -> str:
    return urlencode(
        {
            "team_id": TEAM["id"],
            "team_domain": TEAM["domain"],
            "channel_id": CHANNEL,
            "user_id": "U061F7AUR",
            "user_name": "alice",
            "command": "/release",
            "text": text,
            "response_url": response_url,
            "trigger_id": "1.2.3",
        }
    )


def _post(running: RunningBot, body: str, headers: dict[str, str]) -> httpx.Response:
    return running.http.post(f"{running.url}/slack/events", content=body, headers=headers)


def _nothing_happened(running: RunningBot) -> None:
    time.sleep(0.3)  # long enough for a reply to a response_url to have gone out
    assert running.fake.responses() == []
    assert running.fake.calls("chat.postMessage") == []
    assert running.fake.calls("chat.postEphemeral") == []
    assert running.services.recent(None) == []


# --- §3: every malformed request is a 4xx, before any work -------------------------------------------------


@pytest.mark.parametrize("stamp", ["abc", "9" * 5000, "-1", "1e9", "0x6553f100", "17000000000000000"])
def test_a_timestamp_that_is_not_unix_seconds_is_refused_and_its_response_url_never_used(
    running: RunningBot, stamp: str
) -> None:
    body = _command_body("start v1.4.0", running.fake.response_url("attacker"))
    headers = {**signed_headers(body), "x-slack-request-timestamp": stamp}
    response = _post(running, body, headers)
    assert response.status_code == 401
    _nothing_happened(running)


def test_a_signed_request_with_a_forged_timestamp_header_is_refused(running: RunningBot) -> None:
    body = _command_body("start v1.4.0", running.fake.response_url("attacker"))
    headers = signed_headers(body)
    headers["x-slack-request-timestamp"] = str(int(headers["x-slack-request-timestamp"]) + 1)
    assert _post(running, body, headers).status_code == 401
    _nothing_happened(running)


@pytest.mark.parametrize("signed", [True, False])
def test_a_deeply_nested_payload_is_a_4xx(running: RunningBot, signed: bool) -> None:
    deep = "[" * 50_000 + "]" * 50_000
    body = "payload=" + quote(deep)
    headers = signed_headers(body) if signed else {"content-type": "application/x-www-form-urlencoded"}
    response = _post(running, body, headers)
    assert response.status_code == (400 if signed else 401)
    assert "Traceback" not in response.text
    deep_object = (
        json.dumps({"response_url": running.fake.response_url("deep")})[:-1] + ', "a": ' + "[" * 50_000
    )
    body = "payload=" + quote(deep_object)
    headers = signed_headers(body) if signed else {"content-type": "application/x-www-form-urlencoded"}
    assert _post(running, body, headers).status_code == (400 if signed else 401)
    _nothing_happened(running)


@pytest.mark.parametrize(
    ("length", "expected"), [(b"-5", 400), (b"abc", 400), (b"5, 5", 400), (b"+5", 400), (b"1" * 40, 413)]
)
def test_a_content_length_that_is_not_a_length_is_a_4xx(
    running: RunningBot, length: bytes, expected: int
) -> None:
    answer = _raw(
        _port(running),
        b"POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-Length: " + length + b"\r\n\r\nhello",
    )
    assert _status(answer) == expected
    assert b"Traceback" not in answer
    assert httpx.get(f"{running.url}/livez", timeout=5).status_code == 200


def test_a_body_larger_than_slack_sends_is_refused_unread(running: RunningBot) -> None:
    answer = _raw(
        _port(running),
        b"POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-Length: 50000000\r\n\r\n" + b"a" * 1000,
    )
    assert _status(answer) == 413


def test_unsigned_bodies_are_never_logged(running: RunningBot, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    marker = "secret-looking-marker-7f3a"
    response_url = running.fake.response_url("skewed")
    body = _command_body(f"start v1.4.0 {marker}", response_url)
    # Unsigned, forged, and genuine but five minutes late (a clock skew): none of their content is logged.
    _post(running, body, {"content-type": "application/x-www-form-urlencoded"})
    _post(running, body, signed_headers(body, secret="not-the-secret"))
    _post(running, body, signed_headers(body, ts=int(time.time()) - 400))
    logged = "\n".join(r.getMessage() + str(r.args) for r in caplog.records)
    assert marker not in logged
    assert "skewed" not in logged
    refusals = [r for r in caplog.records if "refused" in r.getMessage()]
    assert refusals, "an operator with a wrong signing secret must see why Slack's requests fail"
    _nothing_happened(running)


def test_a_command_pasted_twice_is_refused_whole(running: RunningBot) -> None:
    reply = running.user().command("start v6.6.8\nstart v6.6.9").json()
    assert reply["response_type"] == "ephemeral"
    assert "more than one line" in reply["text"]
    assert "/release start v1.2.3" in reply["text"]  # the usage
    time.sleep(0.3)
    assert running.services.recent(None) == []
    assert running.fake.calls("chat.postMessage") == []


@pytest.mark.parametrize(
    ("text", "extra"),
    [
        ("start v6.6.8 start v6.6.9", "start v6.6.9"),
        ("start v6.6.8 now", "now"),
        ("report v6.6.8 please", "please"),
        ("list everything", "everything"),
        ("status v6.6.8 v6.6.9", "v6.6.9"),
    ],
)
def test_unknown_words_after_a_command_are_refused(running: RunningBot, text: str, extra: str) -> None:
    reply = running.user().command(text).json()
    assert reply["response_type"] == "ephemeral"
    assert f"`{extra}`" in reply["text"]
    assert "/release start v1.2.3" in reply["text"]
    time.sleep(0.2)
    assert running.services.recent(None) == []


def test_a_reason_may_still_have_many_words(running: RunningBot) -> None:
    running.user().command("start v1.4.0")
    wait_for_release(running.fake, 1)
    reply = running.user().command("abort v1.4.0 wrong artifact, rebuilding")
    assert reply.status_code == 200
    assert "did nothing" not in reply.text
    running.fake.wait_for(lambda: running.services.find(CHANNEL, "v1.4.0").release.status == "aborted")


def test_a_traceback_in_the_server_goes_through_the_json_log_with_redaction(
    json_log: io.StringIO, capfd: pytest.CaptureFixture[str]
) -> None:
    def broken(environ: dict[str, object], start_response: object) -> list[bytes]:
        raise RuntimeError(f"cannot reach the database with {SECRET}")

    stream = json_log
    server = make_http_server("127.0.0.1", 0, broken, 2)
    server.prepare()
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    try:
        response = httpx.get(f"http://127.0.0.1:{server.bind_addr[1]}/livez", timeout=5)
        assert response.status_code == 500
        assert SECRET not in response.text and "Traceback" not in response.text
        deadline = time.monotonic() + 5
        while "Traceback" not in stream.getvalue() and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        server.stop()
        thread.join(5)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    traced = [line for line in lines if "Traceback" in json.dumps(line)]
    assert traced, lines
    assert SECRET not in stream.getvalue()
    assert "[redacted]" in json.dumps(traced)
    assert "Traceback" not in capfd.readouterr().err


def test_a_thread_that_dies_is_logged_as_json_with_redaction(
    json_log: io.StringIO, capfd: pytest.CaptureFixture[str]
) -> None:
    def dies() -> None:
        raise RuntimeError(f"token {SECRET} rejected")

    thread = threading.Thread(target=dies, name="doomed")
    thread.start()
    thread.join(5)
    stream = json_log
    [line] = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert "doomed" in line["message"]
    assert "Traceback" in json.dumps(line)
    assert SECRET not in stream.getvalue()
    assert "Traceback" not in capfd.readouterr().err


# --- §2: no way to take the server down without signing ----------------------------------------------------


def test_headers_over_the_limit_are_a_431_and_service_goes_on(running: RunningBot) -> None:
    big = b"X-Filler: " + b"a" * 2_000_000 + b"\r\n"
    answer = _raw(_port(running), b"GET /livez HTTP/1.1\r\nHost: x\r\n" + big + b"\r\n")
    assert _status(answer) == 431
    # Many header lines, each short, add up the same way.
    lines = b"".join(b"X-H%d: %s\r\n" % (n, b"b" * 100) for n in range(2000))
    answer = _raw(_port(running), b"GET /livez HTTP/1.1\r\nHost: x\r\n" + lines + b"\r\n")
    assert _status(answer) == 431
    assert httpx.get(f"{running.url}/livez", timeout=5).status_code == 200


@pytest.fixture
def slow_clients(running: RunningBot) -> Iterator[list[socket.socket]]:
    """Forty connections that each sent the start of a request and then nothing more."""
    socks = []
    try:
        for n in range(40):
            sock = socket.create_connection(("127.0.0.1", _port(running)), timeout=5)
            sock.sendall(b"POST /slack/events HTTP/1.1\r\nHost: x\r\nX-Slow-%d: 1\r\n" % n)
            socks.append(sock)
        yield socks
    finally:
        for sock in socks:
            sock.close()


def test_slow_clients_do_not_keep_slack_or_the_probes_waiting(
    running: RunningBot, slow_clients: list[socket.socket]
) -> None:
    with httpx.Client(timeout=5) as fresh:  # new connections, as the kubelet's probes make them
        assert fresh.get(f"{running.url}/livez").status_code == 200
        assert fresh.get(f"{running.url}/healthz").status_code == 200
        body = _command_body("start v1.4.0", running.fake.response_url("real"))
        response = fresh.post(f"{running.url}/slack/events", content=body, headers=signed_headers(body))
    assert response.status_code == 200
    assert "Starting v1.4.0" in response.json()["text"]
    wait_for_release(running.fake, 1)


def test_a_request_that_does_not_arrive_in_time_is_answered_408(running: RunningBot) -> None:
    server = make_http_server("127.0.0.1", 0, running.bot.web, 2, read_timeout_s=0.5)
    server.prepare()
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    port = server.bind_addr[1]
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as slow:
            slow.sendall(b"POST /slack/events HTTP/1.1\r\nHost: x\r\n")
            # One header line every 0.2 s: never silent, never finished.
            for n in range(5):
                time.sleep(0.2)
                try:
                    slow.sendall(b"X-Drip-%d: 1\r\n" % n)
                except (BrokenPipeError, ConnectionResetError):
                    break
            answer = _read_answer(slow)
        assert _status(answer) == 408
        # A body that never comes is the same: the clock runs from the request's first byte.
        answer = _raw(
            port, b"POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly this", timeout=5
        )
        assert _status(answer) == 408
        # A connection that never says anything is closed too.
        with socket.create_connection(("127.0.0.1", port), timeout=5) as silent:
            assert _status(_read_answer(silent)) == 408
        assert httpx.get(f"http://127.0.0.1:{port}/livez", timeout=5).status_code == 200
    finally:
        server.stop()
        thread.join(5)


def test_bodies_in_hand_are_bounded_across_connections() -> None:
    def echo_length(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        start_response("200 OK", [("Content-Length", str(len(str(len(body)))))])
        return [str(len(body)).encode()]

    server = HttpServer("127.0.0.1", 0, echo_length, 2, body_budget=100_000)
    server.prepare()
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    port = server.bind_addr[1]
    head = b"POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-Length: 60000\r\n\r\n"
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as first:
            first.sendall(head + b"a" * 1000)  # holds 60,000 of the 100,000 while its body trickles in
            time.sleep(0.3)
            # A second body of the same size does not fit: refused at once, its body never read.
            answer = _raw(port, head + b"b" * 1000, timeout=5)
            assert _status(answer) == 503
            first.sendall(b"a" * 59_000)
            assert _read_answer(first).endswith(b"60000")
        # Answered, the first gives its share back (its worker does, just after the answer's last byte is sent, so
        # the client may read the answer first): then the same body fits again.
        deadline = time.monotonic() + 5
        while server.bodies_in_hand and time.monotonic() < deadline:
            time.sleep(0.01)
        assert server.bodies_in_hand == 0
        assert _raw(port, head + b"c" * 60_000).endswith(b"60000")
        assert httpx.get(f"http://127.0.0.1:{port}/livez", timeout=5).status_code == 200
    finally:
        server.stop()
        thread.join(5)


def test_connections_reset_as_they_are_accepted_do_not_close_the_listener(running: RunningBot) -> None:
    linger_zero = struct.pack("ii", 1, 0)  # close() sends a reset instead of a FIN
    for _ in range(300):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger_zero)
        sock.connect(("127.0.0.1", _port(running)))
        sock.close()
    for _ in range(3):
        assert httpx.get(f"{running.url}/livez", timeout=5).status_code == 200
