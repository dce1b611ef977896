"""Safe to leave running: what a stranger, a stalled client or a crowd cannot do to the
server, and what the read-only token may and may not do."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager

import pytest
from upstash_vector import Index
from upstash_vector.errors import UpstashError

from vupsert_server import LocalServer

from .conftest import Serve
from .server_helpers import Api, docs

PATIENCE = 10.0
"""Seconds a test waits for something that must happen (far above any timeout set here)."""


@contextmanager
def raw(server: LocalServer) -> Iterator[socket.socket]:
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=PATIENCE)
    with closing(sock):
        yield sock


def head(path: str, *lines: str) -> bytes:
    return ("\r\n".join([f"POST {path} HTTP/1.1", "Host: local", *lines]) + "\r\n\r\n").encode()


def answer(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def closed_by_server(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def test_an_unauthenticated_huge_body_is_answered_before_it_is_sent(local: LocalServer) -> None:
    with raw(local) as sock:
        sock.sendall(head("/upsert-data", "Content-Length: 2000000000"))
        # Not one byte of the body is sent: the 401 must come from the headers alone.
        reply = answer(sock)
    assert reply.startswith(b"HTTP/1.1 401 ")
    assert b"Connection: close" in reply
    assert b"missing Authorization header" in reply
    assert local.stats["statuses"] == {401: 1}


def test_an_authenticated_body_over_the_cap_is_413_before_it_is_sent(serve: Serve) -> None:
    server = serve(max_body_bytes=4096)
    token = f"Authorization: Bearer {server.token}"
    with raw(server) as sock:
        sock.sendall(head("/upsert-data", token, "Content-Length: 5000"))
        first = sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 413 ")
        assert b"5000 bytes, over this server's limit of 4096 bytes" in first
        # The body that follows is read and dropped: the connection stays usable.
        sock.sendall(b"x" * 5000 + head("/info", token))
        assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")
    assert server.stats["statuses"] == {413: 1, 200: 1}
    # Under the cap, a body is read and upserted.
    assert Api(server).result("/upsert-data", docs(3)) == "Success"


def test_a_chunked_body_is_cut_at_the_cap(serve: Serve) -> None:
    server = serve(max_body_bytes=2048)
    api = Api(server)
    body = b"[" + b",".join(b'{"id": "x%d", "data": "%s"}' % (i, b"y" * 100) for i in range(40))
    response = api.http.post("/upsert-data", content=iter([body[:1500], body[1500:] + b"]"]))
    assert response.status_code == 413
    assert server.records() == {}
    assert server.stats["statuses"] == {413: 1}


def test_expect_100_continue_is_answered_only_once_the_token_is_checked(
    local: LocalServer,
) -> None:
    body = b'[{"id": "a", "data": "text"}]'
    with raw(local) as stranger:
        stranger.sendall(head("/upsert-data", "Expect: 100-continue", "Content-Length: 9999"))
        reply = answer(stranger)
    assert reply.startswith(b"HTTP/1.1 401 ") and b"100 Continue" not in reply
    with raw(local) as client:
        client.sendall(
            head(
                "/upsert-data",
                f"Authorization: Bearer {local.token}",
                "Expect: 100-continue",
                f"Content-Length: {len(body)}",
            )
        )
        assert client.recv(65536) == b"HTTP/1.1 100 Continue\r\n\r\n"
        client.sendall(body)
        assert client.recv(65536).startswith(b"HTTP/1.1 200 ")
    assert set(local.records()) == {"a"}


def test_a_refused_small_body_is_read_so_the_connection_stays_usable(local: LocalServer) -> None:
    with raw(local) as sock:
        for _ in range(2):
            sock.sendall(head("/info", "Authorization: Bearer wrong", "Content-Length: 2") + b"{}")
            reply = sock.recv(65536)
            assert reply.startswith(b"HTTP/1.1 401 ")
            assert b"Connection: close" not in reply
    assert local.stats["statuses"] == {401: 2}


def test_a_stalled_body_is_cut_after_the_read_timeout(serve: Serve) -> None:
    server = serve(read_timeout=1)
    with raw(server) as sock:
        sock.sendall(
            head("/upsert-data", f"Authorization: Bearer {server.token}", "Content-Length: 100")
            + b'[{"id": '
        )
        assert closed_by_server(sock)
    assert server.records() == {}
    assert server.stats["statuses"] == {}


def test_a_body_trickled_byte_by_byte_is_cut_all_the_same(serve: Serve) -> None:
    server = serve(read_timeout=1)
    deadline = time.monotonic() + PATIENCE
    with raw(server) as sock:
        sock.sendall(
            head("/upsert-data", f"Authorization: Bearer {server.token}", "Content-Length: 500")
        )
        sock.settimeout(0.3)
        while time.monotonic() < deadline:
            try:
                sock.sendall(b" ")  # a byte more often than the timeout: still cut
                if sock.recv(1) == b"":
                    break
            except TimeoutError:
                continue
            except OSError:
                break
        else:
            pytest.fail("a trickling client was never cut")


def test_idle_connections_are_closed_after_the_read_timeout(serve: Serve) -> None:
    server = serve(read_timeout=1)
    with raw(server) as sock:
        assert closed_by_server(sock)
    # A keep-alive client reconnects, as httpx does with a closed pooled connection.
    api = Api(server)
    assert api.send("/info").status_code == 200


def test_headers_cut_short_are_not_acted_on(serve: Serve) -> None:
    server = serve(read_timeout=1)
    api = Api(server)
    api.result("/upsert-data", docs(2))
    with raw(server) as sock:
        # A complete request line and token, then the headers never end.
        sock.sendall(b"POST /reset HTTP/1.1\r\nAuthorization: Bearer " + server.token.encode())
        sock.sendall(b"\r\nX-Slow: 1\r\n")
        assert closed_by_server(sock)
    assert len(server.records()) == 2


def test_connections_beyond_the_cap_wait_for_one_to_close(serve: Serve) -> None:
    server = serve(max_connections=2)
    with raw(server) as first, raw(server) as second:
        first.sendall(head("/info", f"Authorization: Bearer {server.token}"))
        assert first.recv(65536).startswith(b"HTTP/1.1 200 ")
        second.sendall(head("/info", f"Authorization: Bearer {server.token}"))
        assert second.recv(65536).startswith(b"HTTP/1.1 200 ")
        with raw(server) as third:
            third.sendall(head("/info", f"Authorization: Bearer {server.token}"))
            third.settimeout(0.5)
            with pytest.raises(TimeoutError):
                third.recv(65536)  # two connections are open: the third waits
            first.close()
            third.settimeout(PATIENCE)
            assert third.recv(65536).startswith(b"HTTP/1.1 200 ")


def test_a_crowd_of_idle_connections_holds_a_bounded_number_of_threads(serve: Serve) -> None:
    server = serve(max_connections=4)

    def serving() -> int:
        return sum(t.name == "vupsert-server-connection" for t in threading.enumerate())

    before = serving()
    socks = []
    try:
        for _ in range(30):
            host, port = server.url.removeprefix("http://").rsplit(":", 1)
            socks.append(socket.create_connection((host, int(port)), timeout=PATIENCE))
        time.sleep(0.2)
        assert serving() - before <= 4
    finally:
        for sock in socks:
            sock.close()


# -- the read-only token --------------------------------------------------------------------

WRITES = [
    ("/upsert-data", docs(1)),
    ("/upsert", [{"id": "v", "vector": [0.0] * 384}]),
    ("/update", {"id": "doc-0", "metadata": {"x": 1}}),
    ("/delete", {"ids": ["doc-0"]}),
    ("/reset", None),
    ("/reset?all", None),
    ("/delete-namespace/ns", None),
]
READS = [
    ("/info", None),
    ("/list-namespaces", None),
    ("/fetch", {"ids": ["doc-0"]}),
    ("/range", {"cursor": "0", "limit": 5}),
    ("/query-data", {"data": "record"}),
    ("/query", {"vector": [0.1] * 384}),
    ("/resumable-query-data", {"data": "record"}),
]


def test_the_read_only_token_reads_and_gets_403_on_every_write(serve: Serve) -> None:
    server = serve(readonly_token="reader")
    Api(server).result("/upsert-data/ns", docs(2))
    Api(server).result("/upsert-data", docs(2))
    before = {ns: server.records(ns) for ns in ("", "ns")}
    reader = Api(server, token="reader")
    for path, body in WRITES:
        message = reader.error(path, body, status=403)
        assert message.startswith("Forbidden:") and "read-only" in message, path
    assert {ns: server.records(ns) for ns in ("", "ns")} == before
    for path, body in READS:
        assert reader.send(path, body).status_code == 200, path
    stranger = Api(server, token="nobody")
    assert stranger.error("/info", status=401) == "Unauthorized: invalid token"


def test_the_sdk_sees_the_read_only_403_as_an_upstash_error(serve: Serve) -> None:
    server = serve(readonly_token="reader")
    index = Index(url=server.url, token="reader", retries=0, allow_telemetry=False)
    assert index.info().vector_count == 0
    with pytest.raises(UpstashError, match="read-only"):
        index.upsert([("a", "some text")])
    assert server.records() == {}
