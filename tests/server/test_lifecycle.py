"""Starting, stopping, restarting; the SQLite file that outlives the process; serve_forever."""

from __future__ import annotations

import os
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import httpx
import pytest

from vupsert_server import LocalServer, ServerConfig, ServerConfigError

from .conftest import Serve
from .server_helpers import Api, docs


def test_context_manager_picks_a_free_port_and_a_token() -> None:
    with LocalServer() as first, LocalServer() as second:
        assert first.url.startswith("http://127.0.0.1:")
        assert first.url != second.url
        assert len(first.token) >= 20
        assert first.token != second.token
        assert first.running
    assert not first.running
    with pytest.raises(httpx.ConnectError):
        httpx.get(first.url + "/info")


def test_a_given_token_is_used(serve: Serve) -> None:
    server = serve(token="s3cret")
    assert server.token == "s3cret"
    assert Api(server).send("/info").status_code == 200


def test_url_before_start_is_an_error() -> None:
    server = LocalServer()
    with pytest.raises(RuntimeError, match="not been started"):
        server.url  # noqa: B018


def test_stop_closes_idle_keep_alive_connections(serve: Serve) -> None:
    server = serve()
    api = Api(server)
    assert api.send("/info").status_code == 200
    finished = threading.Event()

    def stop() -> None:
        server.stop()
        finished.set()

    threading.Thread(target=stop).start()
    assert finished.wait(3), "stop() hung on an idle keep-alive connection"
    with pytest.raises(httpx.TransportError):
        api.send("/info")


def test_records_needs_a_running_server(serve: Serve) -> None:
    server = serve()
    server.stop()
    with pytest.raises(RuntimeError, match="not running"):
        server.records()


def test_config_is_checked_when_built() -> None:
    with pytest.raises(ServerConfigError, match="between 0 and 1"):
        ServerConfig(drop_rate=1.5)
    with pytest.raises(ServerConfigError, match="cannot exceed 1"):
        ServerConfig(fail_rate=0.6, drop_rate=0.6)
    with pytest.raises(ServerConfigError, match="Dimension 0"):
        ServerConfig(dimension=0)
    with pytest.raises(ServerConfigError, match="latency_ms"):
        ServerConfig(latency_ms=-1)
    with pytest.raises(ServerConfigError, match="token"):
        ServerConfig(token=" ")


def test_a_port_in_use_raises_oserror(serve: Serve) -> None:
    busy = serve()
    port = int(busy.url.rsplit(":", 1)[1])
    with pytest.raises(OSError):
        LocalServer(ServerConfig(port=port)).start()


def test_the_db_file_keeps_the_index_across_restarts(tmp_path: Path, serve: Serve) -> None:
    db = str(tmp_path / "index.db")
    first = serve(db=db, token="t")
    api = Api(first)
    api.result("/upsert-data", docs(3))
    api.result("/upsert-data/other", [{"id": "x", "data": "in another namespace"}])
    api.result("/update", {"id": "doc-1", "metadata": {"edited": True}})
    first.stop()

    second = serve(db=db, token="t")
    assert second.namespaces() == ["", "other"]
    assert second.records("other") == {"x": ("in another namespace", None)}
    assert second.records()["doc-1"] == ("record number 1 about things", {"edited": True})
    hits = Api(second).result("/query-data", {"data": "record number 2 about things", "topK": 1})
    assert hits[0]["id"] == "doc-2"
    second.stop()
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_db_file_is_readable_by_its_owner_only(tmp_path: Path, serve: Serve) -> None:
    db = tmp_path / "index.db"
    server = serve(db=str(db))
    Api(server).result("/upsert-data", docs(3))
    files = sorted(tmp_path.iterdir())
    assert [path.name for path in files] == ["index.db", "index.db-wal"]
    assert [stat.S_IMODE(path.stat().st_mode) for path in files] == [0o600, 0o600]


def test_a_second_server_on_one_db_file_is_refused(tmp_path: Path, serve: Serve) -> None:
    db = str(tmp_path / "index.db")
    first = serve(db=db)
    Api(first).result("/upsert-data", docs(3))
    with pytest.raises(ServerConfigError, match="in use by another vupsert serve") as caught:
        serve(db=db)
    assert "another --db file" in caught.value.hint
    # The first one goes on as it was; once it stops, the file opens again.
    Api(first).result("/upsert-data", docs(2, start=3))
    first.stop()
    assert len(serve(db=db).records()) == 5


def test_a_db_file_from_before_positions_gets_them_in_upsert_order(
    tmp_path: Path, serve: Serve
) -> None:
    db = str(tmp_path / "old.db")
    with sqlite3.connect(db) as conn:  # the schema as it was, two namespaces interleaved
        conn.executescript(
            "CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
            "CREATE TABLE namespaces (name TEXT PRIMARY KEY);"
            "CREATE TABLE vectors (ns TEXT NOT NULL, id TEXT NOT NULL, vector BLOB, "
            "data TEXT, metadata BLOB, sparse BLOB, UNIQUE (ns, id));"
            "INSERT INTO namespaces VALUES (''), ('b');"
        )
        conn.executemany(
            "INSERT INTO vectors (ns, id, data) VALUES (?, ?, 'text')",
            [(ns, f"{ns or 'a'}{i}") for i in range(6) for ns in ("", "b")],
        )
    api = Api(serve(db=db, dimension=2))
    first = api.result("/range/b", {"cursor": "0", "limit": 4})
    assert [v["id"] for v in first["vectors"]] == ["b0", "b1", "b2", "b3"]
    assert first["nextCursor"] == "4"
    api.result("/upsert-data/b", {"id": "b6", "data": "a new one"})
    rest = api.result("/range/b", {"cursor": "4", "limit": 4})
    assert [v["id"] for v in rest["vectors"]] == ["b4", "b5", "b6"]


def test_an_in_memory_index_starts_empty_each_time(serve: Serve) -> None:
    server = serve()
    Api(server).result("/upsert-data", docs(2))
    server.stop()
    server.start()
    assert server.records() == {}


def test_a_db_of_another_dimension_is_refused(tmp_path: Path, serve: Serve) -> None:
    db = str(tmp_path / "index.db")
    serve(db=db, dimension=8).stop()
    with pytest.raises(ServerConfigError, match="dimension 8, not 16") as caught:
        serve(db=db, dimension=16)
    assert caught.value.hint is not None
    assert "--dimension 8" in caught.value.hint


def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path, serve: Serve) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(ServerConfigError, match="not a usable index database"):
        serve(db=str(junk))


def test_serve_forever_announces_exports_and_stops_on_sigterm(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import sys
        from vupsert_server import ServerConfig, serve_forever

        def announce(line):
            print(line, flush=True)

        serve_forever(ServerConfig(port=0, dimension=16, fail_rate=0.1, seed=4), announce)
        print("stopped", flush=True)
        """
    )
    process = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    assert process.stdout is not None
    try:
        url_line = process.stdout.readline().strip()
        token_line = process.stdout.readline().strip()
        description = process.stdout.readline().strip()
        assert url_line.startswith("export UPSTASH_VECTOR_REST_URL=http://127.0.0.1:")
        assert token_line.startswith("export UPSTASH_VECTOR_REST_TOKEN=")
        assert description.startswith("# vupsert local index at http://127.0.0.1:")
        assert "dimension 16" in description
        assert "fail_rate=0.1" in description
        assert "seed=4" in description
        url = url_line.split("=", 1)[1]
        token = token_line.split("=", 1)[1]
        answer = httpx.post(url + "/info", headers={"Authorization": f"Bearer {token}"})
        assert answer.json()["result"]["dimension"] == 16
        process.send_signal(signal.SIGTERM)
        assert process.stdout.readline().strip() == "stopped"
        assert process.wait(10) == 0
    finally:
        process.kill()
        process.wait()


def test_an_in_memory_index_uses_16_kib_pages(serve: Serve, tmp_path: Path) -> None:
    # Rows of ~2 KB fill 4 KiB pages badly: the memory figure in --help and the README
    # (benchmarks/server_ceiling.py --memory) was measured with 16 KiB pages.
    server = serve()
    storage = server._live_storage()
    assert storage._read("PRAGMA page_size") == [(16384,)]
    on_disk = serve(db=str(tmp_path / "index.db"))
    assert on_disk._live_storage()._read("PRAGMA page_size") == [(4096,)]
