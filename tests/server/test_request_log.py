"""The request log: a line per request, off by default, never the token nor a body."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import orjson

from vupsert_server import LocalServer, ServerConfig

from .server_helpers import Api

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "the-secret-token"
SECRET_TEXT = "words only the body holds"
LINE = re.compile(
    r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (?P<method>\S+) (?P<path>\S+) (?P<status>\d+|-) "
    r"records=(?P<records>\d+) \d+\.\d ms$"
)


def exercise(server: LocalServer) -> None:
    """An upsert of 3 records, a query, a fetch with one miss, a bad token, an unknown
    endpoint, a refused namespace."""
    api = Api(server)
    records = [{"id": f"v{i}", "vector": [1, i], "data": SECRET_TEXT} for i in range(3)]
    api.result("/upsert/docs", records)
    api.result("/query/docs?mode=x", {"vector": [1, 1], "topK": 2})
    api.result("/fetch/docs", {"ids": ["v1", "missing"]})
    Api(server, token="wrong").send("/info")
    api.send("/nothing")
    # A path with a terminal escape in it, as no HTTP library would send it.
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as raw:
        raw.sendall(
            b"POST /upsert/a%00b\x1b[2J HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            b"Authorization: Bearer " + server.token.encode() + b"\r\n"
            b'Content-Length: 31\r\n\r\n{"id": "x", "vector": [1.0, 2]}'
        )
        assert b" 400 " in raw.recv(65536)


EXPECTED = [
    ("POST", "/upsert/docs", "200", "3"),
    ("POST", "/query/docs", "200", "2"),
    ("POST", "/fetch/docs", "200", "1"),
    ("POST", "/info", "401", "0"),
    ("POST", "/nothing", "404", "0"),
    ("POST", "/upsert/a%00b%1B[2J", "400", "1"),
]


def test_a_line_per_request_without_the_token_or_a_body() -> None:
    lines: list[str] = []
    config = ServerConfig(port=0, dimension=2, embedding=False, token=TOKEN, request_log="text")
    with LocalServer(config, log=lines.append) as server:
        exercise(server)
    assert all(line.endswith("\n") and line.count("\n") == 1 for line in lines)
    fields = [LINE.match(line.rstrip("\n")) for line in lines]
    assert all(fields), lines
    assert [m.group("method", "path", "status", "records") for m in fields if m] == EXPECTED
    assert TOKEN not in "".join(lines) and SECRET_TEXT not in "".join(lines)


def test_its_json_form() -> None:
    lines: list[str] = []
    config = ServerConfig(port=0, dimension=2, embedding=False, token=TOKEN, request_log="json")
    with LocalServer(config, log=lines.append) as server:
        exercise(server)
    entries = [orjson.loads(line) for line in lines]
    assert all(
        set(entry) == {"time", "method", "path", "status", "records", "ms"} for entry in entries
    )
    shown = [(e["method"], e["path"], str(e["status"]), str(e["records"])) for e in entries]
    assert shown == EXPECTED
    assert all(isinstance(e["ms"], float) and e["time"].endswith("Z") for e in entries)


def test_a_dropped_connection_has_no_status() -> None:
    lines: list[str] = []
    config = ServerConfig(port=0, dimension=2, embedding=False, drop_rate=1.0, request_log="json")
    with (
        LocalServer(config, log=lines.append) as server,
        contextlib.suppress(httpx.TransportError),
    ):
        Api(server).send("/upsert", [{"id": "a", "vector": [1, 2]}])
    assert [(e["path"], e["status"], e["records"]) for e in map(orjson.loads, lines)] == [
        ("/upsert", None, 1)
    ]


def test_it_is_off_by_default() -> None:
    lines: list[str] = []
    with LocalServer(ServerConfig(port=0, dimension=2, embedding=False), log=lines.append) as s:
        exercise(s)
    assert lines == []


def test_serve_json_logs_each_request_on_stderr() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "vupsert", "serve", "--port", "0", "--token", TOKEN, "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert process.stdout is not None and process.stderr is not None
    try:
        url = process.stdout.readline().strip().split("=", 1)[1]
        process.stdout.readline()
        assert "requests logged (json)" in process.stdout.readline()
        answer = httpx.post(f"{url}/info", headers={"Authorization": f"Bearer {TOKEN}"})
        assert answer.status_code == 200
        entry = orjson.loads(process.stderr.readline())
        assert (entry["method"], entry["path"], entry["status"]) == ("POST", "/info", 200)
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
        assert TOKEN not in process.stderr.read()
    finally:
        process.kill()
        process.wait()
