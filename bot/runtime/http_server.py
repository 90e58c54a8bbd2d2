"""The HTTP server: waitress, bounded so that clients who never finish a request cannot take it down.

Why waitress (measured and argued in README and bench/RESULTS.md): one thread reads every connection without
blocking and hands a request to the worker threads only once it has arrived whole, headers and body. A client
that sends one header line every few seconds therefore holds a socket, never a thread, and requests from Slack
and the kubelet's probes keep their threads. cheroot and the standard library's server read the request line and
headers on the worker thread itself: sixteen slow clients were enough to stop cheroot answering.

What this module adds to waitress's defaults, each a limit a request from Slack never comes near:

- headers: 64 KiB in all (Slack sends about 1 KiB), answered 431 beyond, after reading no more than that;
- body: ``MAX_BODY``, the largest any route takes (GitHub's webhook; each route refuses more than its own, Slack's
  1 MB), answered 413 from its Content-Length, unread; kept in memory, since the container's root filesystem is
  read-only;
- bodies in all: ``BODY_BUDGET`` bytes of bodies being received or waiting to be answered, across connections.
  A request whose Content-Length does not fit is answered 503 before its body is read: without this, a few
  hundred clients each sending a large body slowly would hold hundreds of MB;
- time: a request must arrive whole within ``read_timeout_s`` of its first byte (or of the connection's opening),
  else it is answered 408 and the connection closed. waitress's own timeout only closes connections that have
  been *silent* for a while, which a slow client never is;
- connections: up to ``MAX_CONNECTIONS`` open at once (file descriptors are raised to allow it); idle keep-alive
  connections close after ``KEEP_ALIVE_S``.

waitress logs through the standard ``logging`` module, so its tracebacks go through the bot's JSON handler and
its redaction like every other record.
"""

from __future__ import annotations

import contextlib
import logging
import resource
import select
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from waitress import wasyncore
from waitress.channel import HTTPChannel
from waitress.server import TcpWSGIServer
from waitress.utilities import Error

from bot.runtime.github_webhook import MAX_BODY as GITHUB_MAX_BODY

log = logging.getLogger(__name__)

MAX_BODY = GITHUB_MAX_BODY
MAX_HEADERS = 64 * 1024
# Slack gives up on an answer after 3 s: a request still arriving after 10 s is not Slack's.
READ_TIMEOUT_S = 10.0
KEEP_ALIVE_S = 30
MAX_CONNECTIONS = 4096
BODY_BUDGET = 32 * 1024 * 1024
_CHECK_EVERY_S = 1  # how often the reading thread looks for requests past their deadline

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

_TIMEOUT_BODY = b"request not received in time"
_TIMEOUT_ANSWER = (
    b"HTTP/1.1 408 Request Timeout\r\nContent-Type: text/plain\r\nConnection: close\r\n"
    b"Content-Length: %d\r\n\r\n%s" % (len(_TIMEOUT_BODY), _TIMEOUT_BODY)
)


class _Busy(Error):  # type: ignore[misc]
    code = 503
    reason = "Service Unavailable"


class _Channel(HTTPChannel):  # type: ignore[misc]
    """A connection that knows since when its current request has been arriving, and holds its body's share of
    the server's ``BODY_BUDGET`` from its headers' end until it is answered."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # A connection that never sends a byte is a request that never arrives: its clock starts now.
        self.request_began: float | None = time.monotonic()
        self.holds = 0  # bytes of the budget this connection's request holds
        super().__init__(*args, **kwargs)

    def received(self, data: bytes) -> bool:
        if self.request is None and self.request_began is None:
            self.request_began = time.monotonic()
        done: bool = super().received(data)
        request = self.request
        if request is None:  # nothing partial left: the next request's clock starts with its first byte
            self.request_began = None
        elif request.headers_finished and not self.holds and request.error is None and not request.completed:
            # Chunked bodies declare no length: they may grow to the largest body allowed.
            wanted = request.content_length if not request.chunked else self.adj.max_request_body_size
            if wanted and not self.server.budget.take(wanted):
                self._refuse(request)
            else:
                self.holds = wanted
        return done

    def _refuse(self, request: Any) -> None:
        """Answer the partial ``request`` 503 at once (and close), without reading its body."""
        log.warning(
            "refused a request body of %d bytes: %d bytes of bodies already in hand",
            request.content_length,
            self.server.budget.used,
        )
        with self.requests_lock:
            request.error = _Busy("too many request bodies in hand; retry shortly")
            request.completed = True
            self.requests.append(request)
            self.request = None
            self.request_began = None
            if len(self.requests) == 1:
                self.server.add_task(self)

    def _release(self) -> None:
        held, self.holds = self.holds, 0
        if held:
            self.server.budget.give_back(held)

    def overdue(self, now: float, limit: float) -> bool:
        return (
            self.request_began is not None
            and not self.requests  # a request being answered is the worker's, not the reader's
            and not self.will_close
            and not self.close_when_flushed
            and now - self.request_began > limit
        )

    def add_channel(self, map: Any = None) -> None:
        super().add_channel(map)
        self.server.dirty.add(self)

    def del_channel(self, map: Any = None) -> None:
        if self._fileno is not None:
            self.server.gone.append(self._fileno)
        self._release()
        super().del_channel(map)

    def service(self) -> None:
        # Runs on a worker thread, which changes what this connection waits for (it may read again, or write):
        # tell the reading thread which connection to look at, then wake it.
        try:
            super().service()
        finally:
            self._release()  # answered: its body is garbage now
            self.server.dirty.add(self)
            self.server.pull_trigger()

    def write_soon(self, data: Any) -> int:
        written: int = super().write_soon(data)
        if self.total_outbufs_len:  # not all sent at once: the reading thread sends the rest
            self.server.dirty.add(self)
            self.server.pull_trigger()
        return written

    def _flush_outbufs_below_high_watermark(self) -> None:
        # waitress waits here, on a worker thread, for the reading thread to send what is queued.
        if self.total_outbufs_len:
            self.server.dirty.add(self)
        super()._flush_outbufs_below_high_watermark()

    def answer_timeout(self) -> None:
        """Queue a 408 and close once it is sent; runs on the reading thread, which owns the socket."""
        with self.outbuf_lock:
            self.outbufs[-1].append(_TIMEOUT_ANSWER)
            self.total_outbufs_len += len(_TIMEOUT_ANSWER)
        self.request = None
        self.request_began = None
        self.close_when_flushed = True


class _Budget:
    """Bytes of request bodies in hand, server-wide; taken on the reading thread, given back by any."""

    def __init__(self, limit: int) -> None:
        self.limit, self.used = limit, 0
        self._lock = threading.Lock()

    def take(self, size: int) -> bool:
        with self._lock:
            if self.used + size > self.limit:
                return False
            self.used += size
            return True

    def give_back(self, size: int) -> None:
        with self._lock:
            self.used -= size


class _Server(TcpWSGIServer):  # type: ignore[misc]
    channel_class = _Channel
    read_timeout_s = READ_TIMEOUT_S

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.budget = _Budget(BODY_BUDGET)
        self.dirty: set[Any] = set()  # connections whose interest may have changed (any thread adds)
        self.gone: list[int] = []  # descriptors of connections removed from the map (reading thread only)
        super().__init__(*args, **kwargs)

    def run(self) -> None:
        _EventLoop(self).run(self.adj.asyncore_loop_timeout)

    # waitress closes any dispatcher whose handler raises, the listener included, and its close() takes the
    # wake-up pipe with it: one connection reset while it was being accepted left the port refusing connections
    # (seen once in a bench run, and as a stop() that found the pipe closed). The listener is closed by stop() only.
    def handle_accept(self) -> None:
        try:
            accepted = self.accept()
        except OSError:
            return  # the client gave up before we got to it
        if accepted is None:
            return
        conn, addr = accepted
        try:
            self.set_socket_options(conn)
            self.channel_class(self, conn, self.fix_addr(addr), self.adj, map=self._map)
        except OSError as e:
            log.info("a connection closed as it was accepted (%s)", type(e).__name__)
            conn.close()

    def handle_error(self) -> None:
        log.error("the HTTP listener hit an error; it goes on listening", exc_info=True)

    def handle_close(self) -> None:
        log.warning("the HTTP listener was told its socket closed; it goes on listening")

    def maintenance(self, now: float) -> None:
        cutoff = now - self.adj.channel_timeout  # idle keep-alive connections, as waitress does
        mono = time.monotonic()
        late = []
        for channel in list(self.active_channels.values()):
            if not channel.requests and channel.last_activity < cutoff:
                channel.will_close = True
                self.dirty.add(channel)
            elif channel.overdue(mono, self.read_timeout_s):
                late.append(channel)
        for channel in late:
            channel.answer_timeout()
            self.dirty.add(channel)
        if late:
            log.info(
                "closed %d connection(s) whose request did not arrive within %.0f s",
                len(late),
                self.read_timeout_s,
            )


class _EventLoop:
    """waitress's loop, without its cost per connection on every turn.

    wasyncore's ``poll2`` asks every connection what it waits for and registers each with a new poll set on every
    turn: 0.23 ms a turn with 200 idle connections open (a turn or more per request), 4 ms with 4,000, all holding
    the GIL that acks need. Here the connections stay registered with epoll, and a turn asks again only those that
    had an event, that a worker thread has just served (``dirty``), and the listener and wake-up pipe."""

    _IN = select.EPOLLIN | select.EPOLLPRI

    def __init__(self, server: _Server) -> None:
        self._server = server
        self._map: dict[int, Any] = server._map
        self._epoll = select.epoll()
        self._registered: dict[int, tuple[Any, int]] = {}
        self._touched: list[Any] = []

    def run(self, timeout_s: float) -> None:
        try:
            while self._map:
                self._turn(timeout_s)
        finally:
            self._epoll.close()

    def _interest(self, obj: Any) -> int:
        flags = self._IN if obj.readable() else 0
        if obj.writable() and not obj.accepting:
            flags |= select.EPOLLOUT
        return flags

    def _forget(self, fd: int) -> None:
        self._registered.pop(fd, None)
        with contextlib.suppress(OSError, ValueError):
            self._epoll.unregister(fd)

    def _turn(self, timeout_s: float) -> None:
        server, registered = self._server, self._registered
        while server.gone:
            self._forget(server.gone.pop())
        hot = [server, server.trigger, *self._touched]
        while server.dirty:
            hot.append(server.dirty.pop())
        for obj in hot:
            fd = obj._fileno
            if fd is None or self._map.get(fd) is not obj:
                continue  # closed meanwhile
            flags = self._interest(obj)
            old = registered.get(fd)
            if old is not None and old[0] is obj and old[1] == flags:
                continue
            if old is not None and old[0] is not obj:
                self._forget(fd)  # a descriptor number reused by a new connection
                old = None
            if not flags:
                if old is not None:
                    self._forget(fd)
                continue
            if old is None:
                try:
                    self._epoll.register(fd, flags)
                except FileExistsError:
                    self._epoll.modify(fd, flags)
            else:
                self._epoll.modify(fd, flags)
            registered[fd] = (obj, flags)
        try:
            events = self._epoll.poll(timeout_s)
        except InterruptedError:
            events = []
        touched = []
        for fd, flags in events:
            obj = self._map.get(fd)
            if obj is None:
                self._forget(fd)
                continue
            wasyncore.readwrite(obj, flags)  # epoll's bits are poll's: waitress's own dispatch
            touched.append(obj)
        self._touched = touched


class HttpServer:
    """``prepare()`` binds, ``serve()`` runs until ``stop()``; ``bind_addr`` is the address bound."""

    def __init__(
        self,
        host: str,
        port: int,
        app: WsgiApp,
        threads: int,
        *,
        read_timeout_s: float = READ_TIMEOUT_S,
        max_connections: int = MAX_CONNECTIONS,
        body_budget: int = BODY_BUDGET,
    ) -> None:
        self._host, self._port, self._app, self._threads = host, port, app, threads
        self._read_timeout_s = read_timeout_s
        self._max_connections = max_connections
        self._body_budget = body_budget
        self._server: _Server | None = None
        self._stopped = threading.Event()
        self.shutdown_timeout = 10.0  # how long stop() lets requests in flight finish

    def prepare(self) -> None:
        _allow_descriptors(self._max_connections + 256)
        # The queue-depth warning fires on every request that finds all threads busy: in a burst of clicks that
        # is a log line per click, for a queue the ack-latency histogram already shows.
        logging.getLogger("waitress.queue").setLevel(logging.ERROR)
        server = _Server(
            self._app,
            host=self._host,
            port=self._port,
            threads=self._threads,
            connection_limit=self._max_connections,
            asyncore_use_poll=True,  # select() stops at descriptor 1024
            backlog=1024,
            channel_timeout=KEEP_ALIVE_S,
            cleanup_interval=_CHECK_EVERY_S,
            max_request_header_size=MAX_HEADERS,
            max_request_body_size=MAX_BODY + 1,  # waitress refuses at >=; MAX_BODY itself is allowed
            inbuf_overflow=MAX_BODY + 1,
            # Nothing here reads X-Forwarded-*, so waitress need not wrap every request to strip them.
            clear_untrusted_proxy_headers=False,
            ident="release-bot",
            expose_tracebacks=False,
        )
        server.read_timeout_s = self._read_timeout_s
        server.budget = _Budget(self._body_budget)
        self._server = server

    @property
    def bodies_in_hand(self) -> int:
        """Bytes of request bodies held now against the budget (0 before ``prepare``)."""
        return self._server.budget.used if self._server is not None else 0

    @property
    def bind_addr(self) -> tuple[str, int]:
        if self._server is None:
            raise RuntimeError("prepare() first")
        return str(self._server.effective_host), int(self._server.effective_port)

    def serve(self) -> None:
        if self._server is None:
            self.prepare()
        assert self._server is not None
        try:
            self._server.run()
        finally:
            self._stopped.set()

    def stop(self) -> None:
        """Stop accepting connections, let the requests in flight finish (up to ``shutdown_timeout``), close."""
        server = self._server
        if server is None:
            return
        _on_reading_thread(server, _stop_accepting)
        tasks = server.task_dispatcher
        deadline = time.monotonic() + self.shutdown_timeout
        # waitress's own shutdown() drops requests still queued; wait until every worker is idle first.
        while (tasks.queue or tasks.active_count > 0) and time.monotonic() < deadline:
            time.sleep(0.02)
        tasks.shutdown(cancel_pending=True, timeout=max(0.1, deadline - time.monotonic()))
        # Their answers are written by now or queued for the reading thread; closing every socket ends its loop.
        _on_reading_thread(server, _close_all)
        self._stopped.wait(5)


def _on_reading_thread(server: _Server, step: Callable[[_Server], None]) -> None:
    """Run ``step`` on the reading thread, which owns the sockets; here if its wake-up pipe is gone (its loop
    has ended then, so nothing else touches them)."""
    try:
        server.trigger.pull_trigger(lambda: step(server))
    except OSError:
        log.warning("the HTTP server's reading thread had stopped; closing its sockets from here")
        step(server)


def _stop_accepting(server: _Server) -> None:
    server.accepting = False
    wasyncore.dispatcher.close(server)  # the listening socket only; BaseWSGIServer.close() would end the loop


def _close_all(server: _Server) -> None:
    for channel in list(server.active_channels.values()):
        with contextlib.suppress(OSError):
            channel._flush_some()
    wasyncore.close_all(server._map)


def _allow_descriptors(wanted: int) -> None:
    """Raise this process's open-file limit towards ``wanted`` (up to the hard limit): each connection is one."""
    with contextlib.suppress(ValueError, OSError):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        if soft != resource.RLIM_INFINITY and soft < target:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
