"""Chunked records end to end: counted by record, sent whole or not at all, and the chunks
a longer version left behind deleted, whatever happened to them before."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from rich.console import Console

import vupsert
from vupsert.cli.display import ConsoleEvents, Terminal, summary_line
from vupsert.config.options import build_settings
from vupsert.mapping._chunking import split_text
from vupsert.outcomes import Summary
from vupsert.run._pipeline import Run
from vupsert_server import LocalServer, ServerConfig

from .conftest import read_jsonl, run_cli, write_jsonl

SENTENCE = "Vectors hold meaning. Queries find them fast! Does it scale? "
SIZE = 300


def document(paragraphs: int, word: str = "Paragraph") -> str:
    return "\n\n".join(f"{word} {p}. " + SENTENCE * 5 for p in range(paragraphs))


def chunks_of(server: LocalServer, parent: str, ns: str = "") -> dict[str, str | None]:
    """The data of every stored chunk of ``parent``, by id."""
    return {
        id_: data
        for id_, (data, meta) in server.records(ns).items()
        if meta and meta.get("chunk", {}).get("parent") == parent
    }


def expected_chunks(parent: str, text: str) -> dict[str, str]:
    return {f"{parent}#{n}": piece for n, piece in enumerate(split_text(text, SIZE), 1)}


def upsert(server: LocalServer, path: Path, *more: str | Path) -> Any:
    return run_cli("upsert", path, "--chunk-size", str(SIZE), "--json", *more, server=server)


def test_whitespace_only_data_is_rejected_chunked_or_not(
    server: LocalServer, tmp_path: Path
) -> None:
    rows = [
        {"id": "blank", "data": " " * 3000},
        {"id": "short-blank", "data": " \t\n "},
        {"id": "ok", "data": "some text"},
    ]
    path = write_jsonl(tmp_path / "docs.jsonl", rows)
    for ns, chunked in (("a", ["--chunk-size", "1500"]), ("b", [])):
        rejects = tmp_path / f"rejects-{ns}.jsonl"
        result = run_cli(
            "upsert", path, "-n", ns, "--rejects", rejects, "--json", *chunked, server=server
        )
        assert result.code == 1, result.stderr
        summary = result.summary
        assert (summary["records_read"], summary["records_upserted"]) == (3, 1)
        assert summary["records_rejected"] == 2
        assert [r["id"] for r in read_jsonl(rejects)] == ["blank", "short-blank"]
        assert "only whitespace" in read_jsonl(rejects)[0]["_vupsert"]["reason"]
        assert set(server.records(ns)) == {"ok#1" if chunked else "ok"}


def test_a_record_with_a_refused_chunk_is_rejected_whole_and_keeps_its_stored_version(
    tmp_path: Path,
) -> None:
    with LocalServer(ServerConfig(port=0, refuse_matching="BADWORD")) as server:
        old = document(8)
        others = [{"id": f"o{i}", "data": document(2)} for i in range(4)]
        path = write_jsonl(tmp_path / "docs.jsonl", [*others[:2], {"id": "doc", "data": old}])
        assert upsert(server, path).code == 0
        before = chunks_of(server, "doc")
        assert before == expected_chunks("doc", old) and len(before) > 3
        stored = server.records("")

        # Shorter, one of its chunks refused, in one batch with records that land.
        new = document(2) + "\n\n" + "BADWORD. " + SENTENCE * 3
        assert len(split_text(new, SIZE)) == 3
        rows = [others[0], {"id": "doc", "data": new}, *others[2:]]
        write_jsonl(path, rows)
        rejects = tmp_path / "rejects.jsonl"
        result = upsert(server, path, "--rejects", rejects)
        assert result.code == 1, result.stderr
        summary = result.summary
        assert (summary["records_read"], summary["records_upserted"]) == (4, 3)
        assert summary["records_rejected"] == 1
        assert summary["chunks_rejected"] == 3  # refused together
        # Not a chunk of the new version landed, none of the old was deleted.
        now = server.records("")
        assert {i: now[i] for i in before} == {i: stored[i] for i in before}
        assert chunks_of(server, "doc") == before
        for other in others:
            assert chunks_of(server, other["id"]) == expected_chunks(other["id"], other["data"])

        # One rejects line, the record as read: fixed and fed back, it is chunked again.
        [line] = read_jsonl(rejects)
        assert (line["id"], line["data"], line["_vupsert"]["stage"]) == ("doc", new, "send")
        assert line["_vupsert"]["reason"].startswith("chunk ")
        line["data"] = new.replace("BADWORD", "Fixed")
        write_jsonl(rejects, [line])
        again = upsert(server, rejects)
        assert again.code == 0, again.stderr
        assert chunks_of(server, "doc") == expected_chunks("doc", line["data"])


class FailingDeletes(httpx.BaseTransport):
    """The local server, except that a ``delete`` naming the record ``doc`` is answered
    503."""

    def __init__(self) -> None:
        self._inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.startswith("/delete") and b'"doc#' in request.read():
            return httpx.Response(503, json={"error": "unavailable"})
        return self._inner.handle_request(request)


def run(
    server: LocalServer, path: Path, transport: httpx.BaseTransport | None, **options: Any
) -> Any:
    settings = build_settings(
        [path], url=server.url, token=server.token, chunk_size=SIZE, **options
    )
    return Run(settings, transport=transport).execute()


def test_stale_chunks_that_could_not_be_deleted_hold_the_checkpoint_back(
    server: LocalServer, tmp_path: Path
) -> None:
    long = document(8)
    rows = [{"id": f"d{i}", "data": document(2)} for i in range(6)]
    rows.insert(2, {"id": "doc", "data": long})
    path = write_jsonl(tmp_path / "docs.jsonl", rows)
    assert run(server, path, None).exit_status == 0
    assert len(chunks_of(server, "doc")) > 3

    rows[2] = {"id": "doc", "data": document(2)}
    write_jsonl(path, rows)
    checkpoint = tmp_path / "cp.json"
    options: dict[str, Any] = {"checkpoint": checkpoint, "batch_size": 3, "concurrency": 1}
    failed = run(server, path, FailingDeletes(), retries=1, max_backoff=0.01, **options)
    # Its new chunks landed, its old ones are still there: not a success.
    assert failed.exit_status == 1
    assert failed.records_upserted == 7 and failed.records_stale_chunks > 0
    assert len(chunks_of(server, "doc")) > 3
    saved = orjson.loads(checkpoint.read_bytes())
    [state] = saved["inputs"].values()
    assert state["records"] == 2  # d0 and d1, not the record left with stale chunks

    rerun = run(server, path, None, **options)
    assert rerun.exit_status == 0 and rerun.records_skipped == state["records"]
    assert chunks_of(server, "doc") == expected_chunks("doc", rows[2]["data"])
    for row in rows:
        assert chunks_of(server, row["id"]) == expected_chunks(row["id"], row["data"])


def test_stale_chunks_are_found_past_a_missing_one(server: LocalServer, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "docs.jsonl", [{"id": "doc", "data": document(8)}])
    assert upsert(server, path).code == 0
    count = len(chunks_of(server, "doc"))
    assert count >= 8
    # Chunk 4 deleted by hand: the one after the new count is missing.
    ids = tmp_path / "ids.txt"
    ids.write_text("doc#4\n")
    assert run_cli("delete", "--ids", ids, server=server).code == 0
    shorter = document(2)
    assert len(split_text(shorter, SIZE)) == 3
    write_jsonl(path, [{"id": "doc", "data": shorter}])
    result = upsert(server, path)
    assert result.code == 0, result.stderr
    assert chunks_of(server, "doc") == expected_chunks("doc", shorter)
    assert result.summary["chunks_deleted"] == count - 4


def test_records_are_counted_once_whatever_their_chunks(
    server: LocalServer, tmp_path: Path
) -> None:
    rows = [{"id": "a", "data": document(6)}, {"id": "b", "data": "short"}, {"id": "a"}]
    rows.append({"id": "c", "data": document(3)})
    path = write_jsonl(tmp_path / "docs.jsonl", rows)
    result = upsert(server, path, "-b", "4")
    assert result.code == 1, result.stderr
    summary = result.summary
    chunks = len(split_text(document(6), SIZE)) + 1 + len(split_text(document(3), SIZE))
    assert summary["records_read"] == 4
    assert (summary["records_upserted"], summary["records_rejected"]) == (3, 1)
    assert summary["chunks_upserted"] == chunks == len(server.records(""))
    assert f"records read 4 · upserted 3 · rejected 1 · chunks upserted {chunks} ·" in (
        result.stderr
    )
    assert summary["records_read"] == (
        summary["records_upserted"]
        + summary["records_rejected"]
        + summary["records_skipped"]
        + summary["records_superseded"]
    )
    # Within one batch, the later record of an id supersedes the earlier.
    rows = [{"id": "a", "data": document(6)}, {"id": "a", "data": "short now"}]
    write_jsonl(path, rows)
    result = upsert(server, path)
    assert result.code == 0, result.stderr
    summary = result.summary
    assert (summary["records_read"], summary["records_upserted"]) == (2, 1)
    assert summary["records_superseded"] == 1
    assert chunks_of(server, "a") == {"a#1": "short now"}


def test_upsert_warns_of_records_also_stored_whole(server: LocalServer, tmp_path: Path) -> None:
    rows = [{"id": f"d{i}", "data": document(2 + i % 2)} for i in range(7)]
    path = write_jsonl(tmp_path / "docs.jsonl", rows)
    assert run_cli("upsert", path, "-n", "ns", server=server).code == 0
    result = run_cli(
        "upsert", path, "-n", "ns", "--chunk-size", str(SIZE), "-b", "10", "--json", server=server
    )
    assert result.code == 0, result.stderr
    [warning] = [line for line in result.stderr.splitlines() if "stored whole" in line]
    assert "7 records are also stored whole, beside their chunks" in warning
    named = warning.partition("(first: ")[2].partition(")")[0].split(", ")
    assert len(named) == 5 and {n.strip("'") for n in named} <= {row["id"] for row in rows}
    assert "sync with the same options deletes them" in warning
    # One look for the records' own ids a batch.
    assert server.stats["requests"]["fetch"] == result.summary["batches_sent"] == 3
    assert set(server.records("ns")) >= {row["id"] for row in rows}


def test_a_normal_chunked_run_costs_two_requests_a_batch(
    server: LocalServer, tmp_path: Path
) -> None:
    rows = [{"id": f"d{i}", "data": document(2 + i % 3)} for i in range(300)]
    path = write_jsonl(tmp_path / "docs.jsonl", rows)
    for run in ("first", "again"):
        server.reset_stats()
        result = upsert(server, path, "-b", "200")
        assert result.code == 0, result.stderr
        summary = result.summary
        requests = server.stats["requests"]
        sent = summary["batches_sent"]
        # The first record goes alone first; then an upsert and a fetch a batch.
        assert (requests["upsert-data"], requests["fetch"]) == (sent + 1, sent), run
        assert "delete" not in requests and summary["requests"] == 2 * sent + 1


@pytest.mark.parametrize("batch_size", ["1000", "3"])
def test_an_id_twice_long_then_short_leaves_the_short_one(
    server: LocalServer, tmp_path: Path, batch_size: str
) -> None:
    rows = [{"id": "doc", "data": document(6)}, {"id": "x", "data": "x"}]
    rows.append({"id": "doc", "data": "short"})
    path = write_jsonl(tmp_path / "docs.jsonl", rows)
    result = upsert(server, path, "-b", batch_size)
    assert result.code == 0, result.stderr
    assert chunks_of(server, "doc") == {"doc#1": "short"}


def test_chunking_from_python_counts_records(server: LocalServer) -> None:
    records = [{"id": "a", "data": document(3)}, {"id": "b", "data": "x"}]
    summary = vupsert.upsert(records, url=server.url, token=server.token, chunk_size=SIZE)
    assert (summary.records_read, summary.records_upserted) == (2, 2)
    assert (
        summary.chunks_upserted == len(server.records("")) == len(split_text(document(3), SIZE)) + 1
    )


def test_the_summary_shows_chunks_and_records_left_with_old_chunks() -> None:
    c_out = io.StringIO()
    terminal = Terminal(console=Console(file=c_out, force_terminal=False, width=200))
    summary = Summary(records_read=3, records_upserted=3, chunks_upserted=9, chunks_deleted=2)
    summary.records_stale_chunks = 1
    assert summary.exit_status == 1
    line = summary_line(summary)
    assert "chunks upserted 9 · chunks deleted 2" in line and "left with old chunks 1" in line
    assert "chunks rejected" not in line
    quiet = ConsoleEvents(terminal, quiet=True)
    quiet.finished(summary)
    assert c_out.getvalue().strip() == "vupsert: 1 record left with old chunks, of 3 read"
