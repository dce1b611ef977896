"""sync's deletions: found whole before any is made, counted as they happened, and a
summary on every exit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import vupsert
from vupsert_server import LocalServer, ServerConfig

from .conftest import cli_env, run_cli, write_jsonl


def docs(n: int, start: int = 0) -> list[dict[str, Any]]:
    return [{"id": f"d{i:05}", "data": f"document {i}"} for i in range(start, start + n)]


def load(server: LocalServer, rows: list[dict[str, Any]]) -> None:
    summary = vupsert.upsert(rows, url=server.url, token=server.token, namespace="ns")
    assert summary.records_upserted == len(rows)


def test_deletions_do_not_depend_on_how_cursors_count(tmp_path: Path) -> None:
    """Cursors that are positions, which a deletion shifts: deleting between the pages of
    the scan would pass over every other page of stale ids."""
    with LocalServer(ServerConfig(port=0, cursor_mode="offset")) as server:
        load(server, docs(3000))
        path = write_jsonl(tmp_path / "docs.jsonl", docs(1000))
        args = ("sync", path, "-n", "ns", "--max-delete", "100%", "--json")
        result = run_cli(*args, server=server)
        assert result.code == 0, result.stderr
        assert result.summary["records_deleted"] == 2000
        assert set(server.records("ns")) == {row["id"] for row in docs(1000)}


def test_records_deleted_counts_deletions_whose_answer_was_lost(tmp_path: Path) -> None:
    with LocalServer(ServerConfig(port=0, seed=3)) as server:
        load(server, docs(4000))
        path = write_jsonl(tmp_path / "docs.jsonl", docs(500))
        # Half the writes lose their answer, half of those after the delete is done; the
        # scan's pages meet faults too.
        server.set_faults(drop_rate=0.5, faulty_reads=True)
        args = ("sync", path, "-n", "ns", "--max-delete", "100%", "--json")
        result = run_cli(*args, "--max-backoff", "0.05", server=server)
        assert result.code == 0, result.stderr
        assert result.summary["retries"] > 0
        assert len(server.records("ns")) == 500
        assert result.summary["records_deleted"] == 3500


def test_a_sync_whose_scan_gives_up_still_prints_its_summary(tmp_path: Path) -> None:
    config = ServerConfig(port=0, faulty_reads=True, fail_rate=1.0, seed=1)
    with LocalServer(config) as server:
        path = write_jsonl(tmp_path / "docs.jsonl", docs(5))
        args = ("sync", path, "-n", "ns", "--json", "--retries", "1", "--max-backoff", "0.01")
        result = run_cli(*args, server=server)
        assert result.code == 3
        summary = result.summary
        assert "range gave up after 2 attempts" in summary["error"]
        assert summary["records_deleted"] == 0 and summary["requests"] >= 2
        assert "range gave up" in result.stderr


def test_a_sync_whose_delete_is_refused_still_prints_its_summary(tmp_path: Path) -> None:
    with LocalServer(ServerConfig(port=0, readonly_token="read-only-token")) as server:
        load(server, docs(20))
        path = write_jsonl(tmp_path / "docs.jsonl", docs(5))
        env = {"UPSTASH_VECTOR_REST_TOKEN": "read-only-token"}
        args = ("sync", path, "-n", "ns", "--max-delete", "100%", "--json")
        result = run_cli(*args, env=cli_env(server, **env))
        assert result.code == 3
        summary = result.summary
        assert summary["error"].startswith("delete answered 403")
        assert (summary["records_unchanged"], summary["records_deleted"]) == (5, 0)
        assert len(server.records("ns")) == 20
