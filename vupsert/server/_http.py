"""HTTP/1.1 on the standard library: a thread per connection, keep-alive, no logging.

:class:`ThreadingHTTPServer` does the parsing; this module reads bodies (Content-Length
or chunked), writes each answer in one ``sendall`` with Nagle off (two small writes on a
keep-alive connection would otherwise meet the peer's delayed ACK: 40 ms per request),
and keeps track of open connections so that stopping the server closes them instead of
leaving handler threads blocked on idle keep-alive sockets.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import socketserver
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast

from ._app import App, Response, error_response


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "vupsert-local"
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _serve(self) -> None:
        app = cast(IndexHTTPServer, self.server).app
        try:
            body = self._read_body()
        except ValueError as exc:
            self.close_connection = True
            self._send(error_response(400, str(exc)))
            return
        if body is None:
            self.close_connection = True
            return
        response = app.handle(self.command, self.path, self.headers.get("Authorization"), body)
        if response.drop:
            self.close_connection = True
            return
        self._send(response)

    def _read_body(self) -> bytes | None:
        """The request body; ``None`` when the client went away mid-body."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return self._read_chunked()
        length_header = self.headers.get("Content-Length")
        if length_header is None:
            return b""
        try:
            length = int(length_header)
        except ValueError:
            raise ValueError(f"Invalid Content-Length: {length_header!r}") from None
        if length < 0:
            raise ValueError(f"Invalid Content-Length: {length_header!r}")
        body = self.rfile.read(length)
        return body if len(body) == length else None

    def _read_chunked(self) -> bytes | None:
        chunks: list[bytes] = []
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
            chunk = self.rfile.read(size)
            if len(chunk) < size:
                return None
            chunks.append(chunk)
            self.rfile.readline(65537)

    def _send(self, response: Response) -> None:
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
        data = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + response.body
        try:
            self.wfile.write(data)
        except OSError:
            self.close_connection = True


class IndexHTTPServer(ThreadingHTTPServer):
    request_queue_size = 256

    def __init__(self, address: tuple[str, int], app: App) -> None:
        self.app = app
        self._open: dict[Any, threading.Thread] = {}
        self._open_lock = threading.Lock()
        self._stopping = False
        self._wake_reader, self._wake_writer = socket.socketpair()
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    def serve_until_stopped(self) -> None:
        """Accept connections until :meth:`stop_serving`.

        ``serve_forever`` notices a shutdown only at its next poll, so every stop
        would cost a poll interval (tests start hundreds of servers); here a byte on a
        socket pair wakes the loop at once.
        """
        with selectors.DefaultSelector() as selector:
            selector.register(self.socket, selectors.EVENT_READ)
            selector.register(self._wake_reader, selectors.EVENT_READ)
            while not self._stopping:
                for key, _ in selector.select():
                    if key.fileobj is self.socket and not self._stopping:
                        self._accept()

    def _accept(self) -> None:
        try:
            request, client_address = self.get_request()
        except OSError:
            return
        try:
            self.process_request(request, client_address)
        except Exception:
            self.shutdown_request(request)

    def stop_serving(self) -> None:
        self._stopping = True
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
            self._open[request] = thread
        thread.start()

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.pop(request, None)
        super().shutdown_request(request)

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
        for _, thread in open_now:
            thread.join(timeout)


def make_server(host: str, port: int, app: App) -> IndexHTTPServer:
    return IndexHTTPServer((host, port), app)
