"""HTTP/1.1 on the standard library: a thread per connection, keep-alive, a request log
when asked for (``_log``), never the standard library's.

:class:`ThreadingHTTPServer` parses request lines and headers; this module reads bodies
(Content-Length or chunked), writes each answer in one ``sendall`` with Nagle off (two
small writes on a keep-alive connection would otherwise meet the peer's delayed ACK:
40 ms per request), and keeps the server safe to leave running:

- a request is admitted on its headers (``App.admit``) before its body is read, so a
  missing or wrong token, or a declared body over the cap, is answered at once; such a
  body is read and dropped only when it is small (the connection then stays usable),
  otherwise the connection is closed unread. A chunked body is cut at the cap, and
  ``Expect: 100-continue`` is answered only once the request is admitted.
- every connection has a deadline while the server waits on its client: to send the
  next request (idle keep-alive included), a body, or to take an answer. The accept
  loop checks the deadlines as it waits and shuts a connection that is past its own,
  which ends a stalled client however slowly it trickles bytes. The server's own work
  (a query, injected latency) has no deadline.
- at most ``max_connections`` connections are served at once; further ones wait in the
  listen queue until one closes.

Stopping the server closes every open connection instead of leaving handler threads
blocked on idle keep-alive sockets.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import socketserver
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast

from ._app import App, Response, error_response
from ._log import RequestLog

DRAIN_LIMIT = 64 * 1024
"""A refused request's body up to this size is read and dropped, keeping the connection."""
_CHUNK = 64 * 1024


class _TooLarge(Exception):
    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size


class _Watch:
    """What the accept loop knows of one connection."""

    __slots__ = ("cut", "deadline")

    def __init__(self) -> None:
        self.deadline: float | None = None
        self.cut = False


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "vupsert-local"
    disable_nagle_algorithm = True
    _continue_expected = False

    def handle(self) -> None:
        server = cast(IndexHTTPServer, self.server)
        self._watch = server.watch_of(self.connection)
        self.close_connection = True
        while True:
            # The next request line and headers are due within the read timeout.
            self._expect(server.read_timeout)
            self.handle_one_request()
            if self.close_connection or self._watch.cut:
                return

    def _expect(self, seconds: float | None) -> None:
        self._watch.deadline = None if seconds is None else time.monotonic() + seconds

    def handle_expect_100(self) -> bool:
        # "100 Continue" would invite the body before the token is checked: it is sent
        # by _serve once the request is admitted.
        self._continue_expected = True
        return True

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _serve(self) -> None:
        server = cast(IndexHTTPServer, self.server)
        if self._watch.cut:  # headers cut short by the deadline: not a request to act on
            self.close_connection = True
            return
        self._started = time.monotonic()
        self._answered: Response | None = None
        self._logged = False
        try:
            self._respond(server)
        finally:
            self._log()

    def _log(self) -> None:
        """The request's line, once: before its answer is written, so that a client's
        next request can never be logged ahead of it."""
        server = cast(IndexHTTPServer, self.server)
        if server.log is None or self._logged:
            return
        self._logged = True
        answer = self._answered
        server.log.request(
            self.command,
            self.path,
            None if answer is None or answer.drop else answer.status,
            0 if answer is None else answer.records,
            time.monotonic() - self._started,
        )

    def _respond(self, server: IndexHTTPServer) -> None:
        app = server.app
        expects_continue, self._continue_expected = self._continue_expected, False
        chunked = self.headers.get("Transfer-Encoding", "").lower() == "chunked"
        try:
            length = None if chunked else self._declared_length()
        except ValueError as exc:
            self.close_connection = True
            self._send(error_response(400, str(exc)))
            return
        admitted = app.admit(self.command, self.path, self.headers.get("Authorization"), length)
        if isinstance(admitted, Response):
            if expects_continue:  # the client waits for a go-ahead it will not get
                self.close_connection = True
                self._send(admitted)
            else:
                self._refuse(admitted, length, chunked)
            return
        self._expect(server.read_timeout)
        if expects_continue:
            self._write(b"HTTP/1.1 100 Continue\r\n\r\n")
        try:
            body = self._read_chunked(app.max_body_bytes) if chunked else self._read(length or 0)
        except _TooLarge as exc:
            self.close_connection = True
            self._send(app.too_large(exc.size))
            return
        except ValueError as exc:
            self.close_connection = True
            self._send(error_response(400, str(exc)))
            return
        if body is None:
            self.close_connection = True
            return
        self._expect(None)
        response = app.handle(admitted, body)
        if response.drop:
            self._answered = response
            self.close_connection = True
            return
        self._expect(server.read_timeout)
        self._send(response)

    def _declared_length(self) -> int | None:
        header = self.headers.get("Content-Length")
        if header is None:
            return None
        try:
            length = int(header)
        except ValueError:
            raise ValueError(f"Invalid Content-Length: {header!r}") from None
        if length < 0:
            raise ValueError(f"Invalid Content-Length: {header!r}")
        return length

    def _refuse(self, response: Response, length: int | None, chunked: bool) -> None:
        """Answer a request refused on its headers, reading its body only if it is small
        (or, for 413, if the token was right: the client is no stranger)."""
        server = cast(IndexHTTPServer, self.server)
        self._expect(server.read_timeout)
        if chunked:
            self.close_connection = True
        elif length and response.status == 413:
            self._send(response)  # sent first: the client may read it while it sends
            if not self._drain(length):
                self.close_connection = True
            return
        elif length and length <= DRAIN_LIMIT:
            if not self._drain(length):
                self.close_connection = True
                return
        elif length:
            self.close_connection = True
        self._send(response)

    def _drain(self, length: int) -> bool:
        """Read and drop ``length`` bytes; ``False`` if the client went away first."""
        while length > 0:
            chunk = self.rfile.read1(min(_CHUNK, length))
            if not chunk:
                return False
            length -= len(chunk)
        return True

    def _read(self, length: int) -> bytes | None:
        """The body of a Content-Length request; ``None`` when the client went away."""
        body = self.rfile.read(length) if length else b""
        return body if len(body) == length else None

    def _read_chunked(self, cap: int | None) -> bytes | None:
        chunks: list[bytes] = []
        total = 0
        while True:
            line = self.rfile.readline(65537)
            if not line:
                return None
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise ValueError("Invalid chunked encoding") from None
            if size == 0:
                while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(chunks)
            total += size
            if cap is not None and total > cap:
                raise _TooLarge(total)
            chunk = self.rfile.read(size)
            if len(chunk) < size:
                return None
            chunks.append(chunk)
            self.rfile.readline(65537)

    def _send(self, response: Response) -> None:
        self._answered = response
        self._log()
        try:
            phrase = HTTPStatus(response.status).phrase
        except ValueError:
            phrase = ""
        head = [
            f"HTTP/1.1 {response.status} {phrase}",
            f"Content-Type: {response.content_type}",
            f"Content-Length: {len(response.body)}",
            f"Server: {self.server_version}",
        ]
        head += [f"{name}: {value}" for name, value in response.headers]
        if self.close_connection:
            head.append("Connection: close")
        self._write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + response.body)

    def _write(self, data: bytes) -> None:
        try:
            self.wfile.write(data)
        except OSError:
            self.close_connection = True


class IndexHTTPServer(ThreadingHTTPServer):
    request_queue_size = 256

    def __init__(
        self,
        address: tuple[str, int],
        app: App,
        *,
        read_timeout: float = 30.0,
        max_connections: int = 256,
        log: RequestLog | None = None,
    ) -> None:
        self.app = app
        self.log = log
        self.read_timeout = read_timeout
        self.max_connections = max_connections
        self._open: dict[Any, tuple[threading.Thread, _Watch]] = {}
        self._open_lock = threading.Lock()
        self._stopping = False
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._wake_reader.setblocking(False)
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    def serve_until_stopped(self) -> None:
        """Accept connections, and cut the stalled ones, until :meth:`stop_serving`.

        ``serve_forever`` notices a shutdown only at its next poll, so every stop
        would cost a poll interval (tests start hundreds of servers); here a byte on a
        socket pair wakes the loop at once. It also wakes the loop when a connection
        closes, so that a server at ``max_connections`` accepts again.
        """
        tick = min(0.5, self.read_timeout / 5)
        with selectors.DefaultSelector() as selector:
            selector.register(self._wake_reader, selectors.EVENT_READ)
            listening = False
            while not self._stopping:
                with self._open_lock:
                    room = len(self._open) < self.max_connections
                if room != listening:
                    if room:
                        selector.register(self.socket, selectors.EVENT_READ)
                    else:
                        selector.unregister(self.socket)
                    listening = room
                for key, _ in selector.select(tick):
                    if key.fileobj is self._wake_reader:
                        with contextlib.suppress(OSError):
                            self._wake_reader.recv(4096)
                    elif not self._stopping:
                        self._accept()
                self._cut_stalled()

    def _accept(self) -> None:
        try:
            request, client_address = self.get_request()
        except OSError:
            return
        try:
            self.process_request(request, client_address)
        except Exception:
            self.shutdown_request(request)

    def _cut_stalled(self) -> None:
        now = time.monotonic()
        with self._open_lock:
            late = [
                (sock, watch)
                for sock, (_, watch) in self._open.items()
                if watch.deadline is not None and now > watch.deadline
            ]
        for sock, watch in late:
            watch.cut = True
            watch.deadline = None
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def watch_of(self, request: Any) -> _Watch:
        with self._open_lock:
            return self._open[request][1]

    def stop_serving(self) -> None:
        self._stopping = True
        self._wake()

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_writer.send(b"\0")

    def server_close(self) -> None:
        super().server_close()
        self._wake_reader.close()
        self._wake_writer.close()

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host's FQDN, a DNS round trip that can
        # stall a start for seconds on a machine without a resolver.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self.process_request_thread,
            args=(request, client_address),
            name="vupsert-server-connection",
            daemon=True,
        )
        with self._open_lock:
            self._open[request] = (thread, _Watch())
        thread.start()

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.pop(request, None)
        super().shutdown_request(request)
        self._wake()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that resets its connection is routine here (drop tests, Ctrl-C).
        pass

    def close_connections(self, timeout: float) -> None:
        """Shut every open connection and wait up to ``timeout`` s for its thread."""
        with self._open_lock:
            open_now = list(self._open.items())
        for sock, _ in open_now:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for _, (thread, _) in open_now:
            thread.join(timeout)


def make_server(
    host: str,
    port: int,
    app: App,
    *,
    read_timeout: float = 30.0,
    max_connections: int = 256,
    log: RequestLog | None = None,
) -> IndexHTTPServer:
    return IndexHTTPServer(
        (host, port), app, read_timeout=read_timeout, max_connections=max_connections, log=log
    )
