"""sync with chunked records: a record counts, and is guarded, once; what it no longer
makes is deleted, what it keeps when rejected stays."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vupsert.mapping._chunking import split_text
from vupsert_server import LocalServer

from .conftest import run_cli, write_jsonl
from .test_chunks_e2e import SIZE, chunks_of, document, expected_chunks


def sync(server: LocalServer, path: Path, *more: str | Path) -> Any:
    args = ("sync", path, "-n", "ns", "--chunk-size", str(SIZE), "--json", *more)
    return run_cli(*args, server=server)


def stored_as(rows: list[dict[str, Any]]) -> dict[str, str]:
    """Every chunk of the last occurrence of each row's id."""
    last = {row["id"]: row["data"] for row in rows}
    return {i: d for parent, text in last.items() for i, d in expected_chunks(parent, text).items()}


def stored(server: LocalServer) -> dict[str, str | None]:
    return {id_: data for id_, (data, _) in server.records("ns").items()}


def test_a_record_the_mapper_rejects_keeps_every_stored_chunk(
    server: LocalServer, tmp_path: Path
) -> None:
    rows = [{"id": f"d{i}", "data": document(2)} for i in range(3)]
    rows.append({"id": "doc", "data": document(6)})
    path = write_jsonl(tmp_path / "docs.jsonl", rows)
    assert sync(server, path).code == 0
    before = chunks_of(server, "doc", "ns")
    assert len(before) > 3
    for bad in ({"id": "doc", "data": "x", "metadata": "no"}, {"id": "doc", "data": "  "}):
        write_jsonl(path, [*rows[:3], bad])
        result = sync(server, path, "--max-delete", "100%")
        assert result.code == 1, result.stderr
        assert result.summary["records_rejected"] == 1
        assert chunks_of(server, "doc", "ns") == before


def test_a_record_whose_chunk_the_server_refuses_keeps_its_stored_version(
    tmp_path: Path,
) -> None:
    from vupsert_server import ServerConfig

    with LocalServer(ServerConfig(port=0, refuse_matching="BADWORD")) as server:
        rows = [{"id": "doc", "data": document(6)}, {"id": "x", "data": "x"}]
        path = write_jsonl(tmp_path / "docs.jsonl", rows)
        assert sync(server, path).code == 0
        before = server.records("ns")
        write_jsonl(path, [{"id": "doc", "data": document(2) + "\n\nBADWORD."}, rows[1]])
        result = sync(server, path)
        assert result.code == 1, result.stderr
        assert result.summary["records_rejected"] == 1
        # Not a mix: no chunk of the new version (their count differs) landed.
        assert server.records("ns") == before


def test_one_id_twice_long_then_short_ends_as_the_short_one(
    server: LocalServer, tmp_path: Path
) -> None:
    rows = [{"id": "doc", "data": document(6)}, {"id": "x", "data": "x"}]
    rows.append({"id": "doc", "data": "short"})
    path = write_jsonl(tmp_path / "docs.jsonl", rows)
    for batch_size in ("1000", "3"):
        result = sync(server, path, "-b", batch_size)
        assert result.code == 0, result.stderr
        assert stored(server) == stored_as(rows) == {"doc#1": "short", "x#1": "x"}
        assert result.summary["records_read"] == 3
        # Stored as one long record whose first chunk changed: ends short again.
        write_jsonl(tmp_path / "long.jsonl", rows[:2])
        assert sync(server, tmp_path / "long.jsonl").code == 0
        assert len(stored(server)) > 2
    # The upsert of the same file ends the same.
    upsert = run_cli("upsert", path, "-n", "ns", "--chunk-size", str(SIZE), server=server)
    assert upsert.code == 0 and stored(server) == stored_as(rows)


def test_the_guard_counts_records_not_chunks(server: LocalServer, tmp_path: Path) -> None:
    rows = [{"id": "doc", "data": document(8)}, {"id": "a", "data": "a"}, {"id": "b", "data": "b"}]
    path = write_jsonl(tmp_path / "docs.jsonl", rows)
    first = sync(server, path)
    assert first.code == 0, first.stderr
    chunks = len(split_text(document(8), SIZE))
    # One long record shrinks to one chunk: every record is still in the source.
    rows[0]["data"] = "now short"
    write_jsonl(path, rows)
    second = sync(server, path)
    assert second.code == 0, second.stderr
    summary = second.summary
    assert (summary["records_deleted"], summary["chunks_deleted"]) == (0, chunks - 1)
    assert (summary["records_stored"], summary["records_read"]) == (3, 3)
    assert (summary["records_changed"], summary["records_unchanged"]) == (1, 2)
    assert stored(server) == stored_as(rows)
    summary = first.summary
    assert (summary["records_read"], summary["records_new"], summary["records_upserted"]) == (
        3,
        3,
        3,
    )
    assert summary["chunks_upserted"] == chunks + 2
    # Two of three records gone: the guard counts them, not their chunks.
    rows[0]["data"] = document(8)
    write_jsonl(path, rows)
    assert sync(server, path).code == 0  # doc grows back
    write_jsonl(path, [{"id": "a", "data": "a"}])
    refused = sync(server, path)
    assert refused.code == 4
    assert "2 stored records are not in the source" in refused.stderr
    assert len(stored(server)) == chunks + 2
    allowed = sync(server, path, "--max-delete", "2")
    assert allowed.code == 0, allowed.stderr
    summary = allowed.summary
    assert (summary["records_deleted"], summary["chunks_deleted"]) == (2, chunks + 1)
    assert stored(server) == {"a#1": "a"}


def test_chunking_a_namespace_loaded_whole_deletes_the_whole_copies(
    server: LocalServer, tmp_path: Path
) -> None:
    rows = [{"id": f"d{i}", "data": document(2 + i % 2)} for i in range(5)]
    path = write_jsonl(tmp_path / "docs.jsonl", rows)
    assert run_cli("sync", path, "-n", "ns", server=server).code == 0
    assert set(stored(server)) == {row["id"] for row in rows}
    # Half or more of the scope goes, yet no record is missing from the source.
    dry = sync(server, path, "--dry-run")
    assert dry.code == 0, dry.stderr
    assert (dry.summary["records_deleted"], dry.summary["chunks_deleted"]) == (0, 5)
    assert "to delete 0 of 5 stored" in dry.stderr and "chunks to delete 5" in dry.stderr
    assert "(0 records of 5 stored, and 5 chunks)" in dry.stderr
    result = sync(server, path, "--max-delete", "0")
    assert result.code == 0, result.stderr
    summary = result.summary
    assert (summary["records_read"], summary["records_changed"]) == (5, 5)
    assert (summary["records_deleted"], summary["chunks_deleted"]) == (0, 5)
    assert stored(server) == stored_as(rows)
