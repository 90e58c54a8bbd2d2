"""A TCP relay between a bot and Postgres that can cut connections silently, as a failing network does.

``cut`` black-holes connections: the relay keeps reading what the client sends, so the client's kernel sees its data
acknowledged and its keepalive probes answered, but nothing is forwarded either way. That is the cut TCP keepalives
cannot detect (a NAT box or proxy that lost its state, a stuck middlebox); only an application-level deadline can.
The server side is either kept open and silent too (its session, locks and open transaction stay), or closed, as
when the server's own keepalives noticed (it ends the session and releases its locks; the client hears nothing).

Which connections: all of them, or only those whose start-up packet names an ``application_name`` containing a
marker (the bot's leadership connection is ``release-bot leader ...``), including connections opened after the cut.
Clients must connect with ``sslmode=disable&gssencmode=disable`` for the start-up packet to be readable.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from dataclasses import dataclass, field


@dataclass
class _Link:
    client: socket.socket
    upstream: socket.socket | None
    startup: bytes = b""
    holed: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


class TcpRelay:
    def __init__(self, upstream: tuple[str, int]) -> None:
        self._upstream = upstream
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._links: list[_Link] = []
        self._lock = threading.Lock()
        self._cut_marker: bytes | None = None
        self._cutting = False
        self._close_server_side = False
        self._closed = False
        threading.Thread(target=self._accept, name="relay-accept", daemon=True).start()

    def __enter__(self) -> TcpRelay:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # --- control ------------------------------------------------------------------------------------------------

    def cut(
        self, *, marker: bytes | None = None, ports: set[int] | None = None, close_server_side: bool = False
    ) -> int:
        """Black-hole every connection (or those whose start-up names ``marker``), now and from now on; or only
        the open connections whose relay-to-server socket has a local port in ``ports`` (as the server's
        ``pg_stat_activity.client_port`` shows it).

        Returns how many open connections were cut."""
        with self._lock:
            if ports is not None:
                links = [
                    link
                    for link in self._links
                    if link.upstream is not None and _local_port(link.upstream) in ports
                ]
            else:
                self._cutting, self._cut_marker = True, marker
                links = [link for link in self._links if self._selected(link)]
            self._close_server_side = close_server_side
        for link in links:
            self._hole(link)
        return len(links)

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            links = list(self._links)
        for link in links:
            for sock in (link.client, link.upstream):
                if sock is not None:
                    # close() alone leaves the connection up while a relaying thread sits in recv() on it (the
                    # kernel keeps the file until that call returns): Postgres then keeps the session, idle in
                    # its transaction, and the next test's DROP SCHEMA waits on its locks. shutdown() ends it.
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)
                    with contextlib.suppress(OSError):
                        sock.close()

    # --- relaying -----------------------------------------------------------------------------------------------

    def _selected(self, link: _Link) -> bool:
        """Called holding ``_lock``."""
        if not self._cutting:
            return False
        return self._cut_marker is None or self._cut_marker in link.startup

    def _hole(self, link: _Link) -> None:
        with link.lock:
            if link.holed:
                return
            link.holed = True
            if self._close_server_side and link.upstream is not None:
                with contextlib.suppress(OSError):
                    link.upstream.shutdown(socket.SHUT_RDWR)

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self._upstream)
            except OSError:
                client.close()
                continue
            link = _Link(client, upstream)
            with self._lock:
                self._links.append(link)
                holed_at_once = self._cutting and self._cut_marker is None
            if holed_at_once:
                self._hole(link)
            threading.Thread(target=self._client_to_server, args=(link,), daemon=True).start()
            threading.Thread(target=self._server_to_client, args=(link,), daemon=True).start()

    def _client_to_server(self, link: _Link) -> None:
        while True:
            try:
                data = link.client.recv(65536)
            except OSError:
                data = b""
            if not data:
                if not link.holed and link.upstream is not None:
                    with contextlib.suppress(OSError):
                        link.upstream.shutdown(socket.SHUT_WR)
                return
            if len(link.startup) < 4096:
                link.startup += data[: 4096 - len(link.startup)]
                with self._lock:
                    selected = self._selected(link)
                if selected:
                    self._hole(link)
            if link.holed:
                continue  # read and dropped: the client's kernel acknowledges it, nothing reaches the server
            try:
                assert link.upstream is not None
                link.upstream.sendall(data)
            except OSError:
                return

    def _server_to_client(self, link: _Link) -> None:
        assert link.upstream is not None
        while True:
            try:
                data = link.upstream.recv(65536)
            except OSError:
                data = b""
            if not data:
                if not link.holed:
                    with contextlib.suppress(OSError):
                        link.client.shutdown(socket.SHUT_WR)
                return  # when holed, the client hears nothing, not even the close
            if link.holed:
                continue
            try:
                link.client.sendall(data)
            except OSError:
                return


def _local_port(sock: socket.socket) -> int | None:
    try:
        return int(sock.getsockname()[1])
    except OSError:
        return None
