"""Long data: chunks, chunks a shrunk record left behind, and the warning of data longer
than the index's model reads."""

from __future__ import annotations

import io
import itertools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import vupsert
from vupsert.cli.app import Environment, main
from vupsert.config.options import build_settings
from vupsert.config.settings import MappingOptions
from vupsert.errors import UsageError
from vupsert.mapping import Chunker, Chunks, LongData
from vupsert.mapping._chunking import split_text, token_limit
from vupsert.outcomes import NoEvents, Settlement
from vupsert.records import Position, Record, Rejection, Skip
from vupsert.run._batching import batches
from vupsert.run._documents import Documents
from vupsert.run._stale_chunks import StaleChunks
from vupsert.transport import Answer, Kind, RetryPolicy
from vupsert.transport._answers import RETRY_STATUSES
from vupsert_server import LocalServer, ServerConfig

from .conftest import kill_when, run_cli, write_jsonl

SENTENCE = "Vectors hold meaning. Queries find them fast! Does it scale? "


def test_data_that_fits_is_one_chunk_unchanged() -> None:
    assert split_text("  short text ", 20) == ["  short text "]
    assert split_text("x" * 20, 20) == ["x" * 20]


def test_chunks_end_at_paragraphs_then_sentences_then_words() -> None:
    text = "A" * 30 + ".\n\nSecond paragraph here. It goes on and on."
    assert split_text(text, 50) == ["A" * 30 + ".", "Second paragraph here. It goes on and on."]
    text = "One sentence here. Another one follows it. And a third"
    assert split_text(text, 30) == ["One sentence here.", "Another one follows it.", "And a third"]
    assert split_text("word " * 10, 12) == [
        "word word",
        "word word",
        "word word",
        "word word",
        "word word",
    ]
    assert split_text("x" * 25, 10) == ["x" * 10, "x" * 10, "x" * 5]


def test_a_boundary_too_early_is_not_taken() -> None:
    # A paragraph break in the first half would make a tiny chunk: the sentence end wins.
    text = "Hi.\n\n" + "This is a long sentence. " * 4
    assert split_text(text, 60)[0] == "Hi.\n\nThis is a long sentence. This is a long sentence."


def test_overlap_repeats_the_end_of_the_chunk_before_from_a_word() -> None:
    chunks = split_text(SENTENCE * 6, 100, 30)
    for before, after in itertools.pairwise(chunks):
        head = after.split()[0]
        assert head in before[-40:]
    assert all(len(c) <= 100 for c in chunks)


@settings(max_examples=300, deadline=None)
@given(
    text=st.text(st.sampled_from("ab .!?\n\t"), max_size=400),
    size=st.integers(1, 60),
    share=st.floats(0, 0.5),
)
def test_chunks_are_bounded_cover_the_text_and_never_change(
    text: str, size: int, share: float
) -> None:
    overlap = int(size * share) if size > 1 else 0
    overlap = min(overlap, size // 2)
    chunks = split_text(text, size, overlap)
    assert chunks == split_text(text, size, overlap)
    if len(text) <= size:
        assert chunks == [text]
        return
    assert all(0 < len(c) <= size and c == c.strip() for c in chunks)
    position = 0
    for chunk in chunks:
        found = text.find(chunk, max(0, position - overlap))
        assert found >= 0
        position = found + len(chunk)
    if not overlap:
        assert "".join("".join(c.split()) for c in chunks) == "".join(text.split())


def test_sizes_and_overlaps_are_checked() -> None:
    with pytest.raises(ValueError):
        split_text("abc", 10, 6)
    with pytest.raises(UsageError, match="chunk_overlap=60: it must be at most half"):
        build_settings(dry_run=True, chunk_size=100, chunk_overlap=60)
    with pytest.raises(UsageError, match=r"chunk_overlap=10 needs chunk_size="):
        build_settings(dry_run=True, chunk_overlap=10)
    with pytest.raises(UsageError, match="chunk_size=0: it must be a whole number from 1"):
        build_settings(dry_run=True, chunk_size=0)
    with pytest.raises(UsageError, match=r"chunk_size=1\.5"):
        build_settings(dry_run=True, chunk_size=1.5)  # type: ignore[arg-type]
    assert (
        build_settings(dry_run=True, chunk_size=10, chunk_overlap=None).mapping.chunk_overlap == 0
    )


def test_chunk_records_carry_the_origin_and_hold_the_checkpoint_back() -> None:
    chunker = Chunker(MappingOptions(chunk_size=20))
    body = orjson.dumps({"id": "doc", "data": "one two three four five six", "metadata": {"k": 1}})
    items: list[Any] = [
        Skip("a", 1, Position(10, 1)),
        ("doc", body, "a", 2, 50, 2),
        Rejection("a", 3, Position(60, 3), "bad"),
        Record("s", orjson.dumps({"id": "s", "data": "x"}), "a", 4, Position(70, 4)),
    ]
    out = list(chunker.chunks(items, Position(5, 0)))
    doc, short = (o for o in out if isinstance(o, Chunks))
    assert (doc.parent, doc.count, doc.body, doc.where, doc.end) == (
        "doc",
        2,
        body,
        "a:2",
        Position(50, 2),
    )
    assert [c[0] for c in doc.records] == ["doc#1", "doc#2"]
    assert [c[0] for c in short.records] == ["s#1"] and short.count == 1
    # Every chunk but the last holds the position before the record.
    assert [c[4:] for c in doc.records + short.records] == [(10, 1), (50, 2), (70, 4)]
    assert [orjson.loads(c[1]) for c in doc.records] == [
        {
            "id": "doc#1",
            "data": "one two three four",
            "metadata": {"k": 1, "chunk": {"parent": "doc", "number": 1, "count": 2}},
        },
        {
            "id": "doc#2",
            "data": "five six",
            "metadata": {"k": 1, "chunk": {"parent": "doc", "number": 2, "count": 2}},
        },
    ]


def test_a_record_whose_metadata_has_a_chunk_key_is_rejected() -> None:
    body = orjson.dumps({"id": "d", "data": "x", "metadata": {"chunk": 3}})
    [out] = Chunker(MappingOptions(chunk_size=10)).chunks([("d", body, "a", 1, 9, 1)], None)
    assert isinstance(out, Rejection) and 'metadata already has a "chunk" key' in out.reason


class FakeIndex:
    """Answers ``fetch`` and ``delete`` by id from a dict of stored metadata."""

    def __init__(self, stored: dict[str, dict[str, Any] | None]) -> None:
        self.stored = stored
        self.asked: list[tuple[str, int]] = []

    def call(self, endpoint: str, payload: Any) -> Answer:
        ids = payload["ids"]
        self.asked.append((endpoint, len(ids)))
        if endpoint == "fetch":
            found = [
                {"id": i, "metadata": self.stored[i]} if i in self.stored else None for i in ids
            ]
            return Answer(Kind.OK, 200, "", result=found)
        gone = [i for i in ids if self.stored.pop(i, 0) != 0]
        return Answer(Kind.OK, 200, "", result={"deleted": len(gone)})


def chunk_meta(parent: str, count: int) -> dict[str, Any]:
    return {"chunk": {"parent": parent, "number": 1, "count": count}}


def test_stale_chunks_are_found_past_a_missing_one_and_by_their_versions_count() -> None:
    stored: dict[str, dict[str, Any] | None] = {
        f"doc#{n}": chunk_meta("doc", 9) for n in range(1, 10)
    }
    del stored["doc#3"]  # the one above the new count, gone
    stored["doc#10"] = chunk_meta("doc", 10)  # an older, longer version's last chunk
    stored["doc#2"] = chunk_meta("doc", 2)
    stored["doc#1"] = chunk_meta("doc", 2)
    stored["other#1"] = chunk_meta("other", 1)
    stored["other"] = None  # stored whole, beside its chunk
    index, events = FakeIndex(stored), Warnings()
    stale = StaleChunks(index, RetryPolicy(), events)  # type: ignore[arg-type]
    assert stale({"doc": 2, "other": 1}, "batch 1 (a:1-2)") == 7
    assert sorted(index.stored) == ["doc#1", "doc#2", "other", "other#1"]
    # A fetch of the two ids above each count and the records' own; again above each
    # higher count found, until none is; one delete of every id up to the highest.
    assert index.asked == [("fetch", 6), ("fetch", 2), ("fetch", 2), ("delete", 8)]
    assert (stale.beside, stale.first) == (1, ["other"]) and events.messages == []
    # Nothing above the count: one fetch, no delete.
    index.asked = []
    assert stale({"doc": 2}, "batch 2 (a:3-3)") == 0 and index.asked == [("fetch", 3)]


class FailingClient:
    """Answers every request with ``status``: 503 is worth retrying, 400 is not."""

    def __init__(self, status: int) -> None:
        self.status = status
        self.calls = 0

    def call(self, endpoint: str, payload: Any) -> Answer:
        self.calls += 1
        kind = Kind.TRANSIENT if self.status in RETRY_STATUSES else Kind.REFUSED
        return Answer(kind, self.status, "no")


class Warnings(NoEvents):
    def __init__(self) -> None:
        self.messages: list[str] = []

    def warning(self, message: str) -> None:
        self.messages.append(message)


@pytest.mark.parametrize(("status", "calls"), [(503, 4), (400, 1)])
def test_stale_chunks_that_cannot_be_removed_are_warned_of(status: int, calls: int) -> None:
    client, events = FailingClient(status), Warnings()
    policy = RetryPolicy(retries=3, max_backoff=0.001)
    stale = StaleChunks(client, policy, events, whole=False)  # type: ignore[arg-type]
    assert stale({"doc": 2, "other": 1}, "batch 3 (a:1-1)") is None
    assert client.calls == calls and stale.requests == calls
    [message] = events.messages
    assert message.startswith("batch 3 (a:1-1): the chunks its 2 records had beyond")
    assert "Run the same command again" in message


# --- end to end -------------------------------------------------------------------------


def long_document(paragraphs: int) -> str:
    return "\n\n".join(f"Paragraph {p}. " + SENTENCE * 5 for p in range(paragraphs))


def chunk_ids(server: LocalServer, ns: str = "") -> list[str]:
    return sorted(server.records(ns))


def test_a_long_document_chunked_then_shrunk_leaves_exactly_its_new_chunks(
    server: LocalServer, tmp_path: Path
) -> None:
    path = tmp_path / "docs.jsonl"
    other = {"id": "other", "data": long_document(3), "metadata": {"kind": "keep"}}
    write_jsonl(path, [{"id": "doc", "data": long_document(12), "metadata": {"v": 1}}, other])
    args: list[str | Path] = ["upsert", path, "--chunk-size", "400", "--chunk-overlap", "50"]
    args.append("--json")
    result = run_cli(*args, server=server)
    assert result.code == 0, result.stderr
    first = chunk_ids(server)
    doc_chunks = [i for i in first if i.startswith("doc#")]
    assert len(doc_chunks) >= 8
    # Two records read and upserted, whatever their chunks.
    assert (result.summary["records_read"], result.summary["records_upserted"]) == (2, 2)
    assert result.summary["chunks_upserted"] == len(first)
    stored = server.records("")
    data, meta = stored["doc#2"]
    assert meta is not None and meta["v"] == 1
    assert meta["chunk"] == {"parent": "doc", "number": 2, "count": len(doc_chunks)}
    assert data is not None and len(data) <= 400

    # The same input again: the same chunks and ids, nothing deleted.
    server.reset_stats()
    again = run_cli(*args, server=server)
    assert again.code == 0 and again.summary["chunks_deleted"] == 0
    assert chunk_ids(server) == first and server.records("") == stored
    # One batch: its upsert (the first record alone first), one look for stale chunks
    # and copies stored whole, and no delete: there is nothing to delete.
    requests = server.stats["requests"]
    assert (requests["upsert-data"], requests["fetch"], requests.get("delete")) == (2, 1, None)
    assert again.summary["requests"] == 3

    # Shrunk: the document now has 2 chunks; its old chunks 3 and up are gone.
    write_jsonl(path, [{"id": "doc", "data": long_document(2), "metadata": {"v": 2}}, other])
    server.reset_stats()
    result = run_cli(*args, server=server)
    assert result.code == 0, result.stderr
    expected = sorted(["doc#1", "doc#2"] + [i for i in first if i.startswith("other#")])
    assert chunk_ids(server) == expected
    now = server.records("")
    assert all(now[i][1]["v"] == 2 for i in ("doc#1", "doc#2"))  # type: ignore[index]
    assert now["doc#2"][1]["chunk"]["count"] == 2  # type: ignore[index]
    assert {i: now[i] for i in now if i.startswith("other")} == {
        i: stored[i] for i in stored if i.startswith("other")
    }
    assert server.stats["requests"]["delete"] == 1

    # Short enough for one chunk: still doc#1, so its ids never change.
    write_jsonl(path, [{"id": "doc", "data": "Now it is short.", "metadata": {"v": 3}}])
    assert run_cli(*args, server=server).code == 0
    assert [i for i in chunk_ids(server) if i.startswith("doc")] == ["doc#1"]
    assert server.records("")["doc#1"] == (
        "Now it is short.",
        {"v": 3, "chunk": {"parent": "doc", "number": 1, "count": 1}},
    )


def test_chunks_spread_over_batches_and_namespaces(server: LocalServer, tmp_path: Path) -> None:
    docs = [{"id": f"d{i}", "data": long_document(4 + i % 3)} for i in range(20)]
    path = write_jsonl(tmp_path / "docs.jsonl", docs)
    args: list[str | Path] = ["upsert", path, "-n", "ns", "--chunk-size", "300", "-b", "7"]
    args += ["-c", "4", "--json"]
    assert run_cli(*args, server=server).code == 0
    before = server.records("ns")
    shrunk = [{"id": d["id"], "data": long_document(2)} for d in docs]
    write_jsonl(path, shrunk)
    result = run_cli(*args, server=server)
    assert result.code == 0, result.stderr
    expected = {
        f"{d['id']}#{n}" for d in shrunk for n in range(1, 1 + len(split_text(d["data"], 300)))
    }
    assert set(server.records("ns")) == expected and len(before) > len(expected)


def test_data_over_a_megabyte_is_chunked_not_rejected(server: LocalServer, tmp_path: Path) -> None:
    big = ("Words and more words. " * 60_000)[:1_300_000]
    path = write_jsonl(tmp_path / "big.jsonl", [{"id": "big", "data": big}])
    result = run_cli("upsert", path, "--chunk-size", "200000", "--json", server=server)
    assert result.code == 0, result.stderr
    assert chunk_ids(server) == [f"big#{n}" for n in range(1, 8)]


def test_chunking_records_in_hand_from_python(server: LocalServer) -> None:
    records = [{"id": "a", "data": long_document(3)}]
    summary = vupsert.upsert(records, url=server.url, token=server.token, chunk_size=500)
    assert summary.records_upserted == 1
    assert summary.chunks_upserted == len(server.records("")) > 1


# --- the warning ------------------------------------------------------------------------


def test_the_models_limits_are_found_by_any_spelling() -> None:
    def info(dense: str | None, sparse: str | None = None) -> dict[str, Any]:
        return {
            "denseIndex": {"embeddingModel": dense} if dense is not None else None,
            "sparseIndex": {"embeddingModel": sparse} if sparse is not None else None,
        }

    assert token_limit(info("BAAI/bge-small-en-v1.5")) == ("BAAI/bge-small-en-v1.5", 512)
    assert token_limit(info("BGE_M3")) == ("BGE_M3", 8192)
    assert token_limit(info("BGE_LARGE_EN_V1_5", "BM25")) == ("BGE_LARGE_EN_V1_5", 512)
    assert token_limit(info("unknown-model")) is None
    assert token_limit(info(None, "BM25")) is None and token_limit(None) is None


def test_long_data_is_counted_by_characters() -> None:
    long = LongData("BAAI/bge-small-en-v1.5", 512)
    items: list[Any] = [
        ("a", orjson.dumps({"id": "a", "data": "x" * 2048}), "f", 1, 1, 1),
        ("b", orjson.dumps({"id": "b", "data": "é" * 2049}), "f", 2, 2, 2),
        Rejection("f", 3, Position(3, 3), "bad", body=orjson.dumps({"data": "x" * 9000})),
        Record("c", orjson.dumps({"id": "c", "data": "x" * 3000}), "f", 4, Position(4, 4)),
    ]
    assert list(long.watch(items)) == items
    assert (long.count, long.first) == (2, ["f:2", "f:4"])


@pytest.fixture
def bge_server(monkeypatch: pytest.MonkeyPatch) -> Any:
    """A local index that names a BGE model in ``info``, as Upstash's do."""
    monkeypatch.setattr("vupsert_server._api.EMBEDDING_MODEL", "BAAI/bge-small-en-v1.5")
    with LocalServer(ServerConfig(port=0)) as running:
        yield running


def run_in_process(server: LocalServer, *argv: str | Path) -> tuple[int, str]:
    err = io.StringIO()
    environ = {"UPSTASH_VECTOR_REST_URL": server.url, "UPSTASH_VECTOR_REST_TOKEN": server.token}
    environment = Environment(stdin=io.BytesIO(), stdout=io.StringIO(), stderr=err, environ=environ)
    with pytest.raises(SystemExit) as exit:
        main([str(a) for a in argv], environment)
    return int(exit.value.code or 0), err.getvalue()


def test_records_longer_than_the_model_reads_are_warned_of_once(
    bge_server: LocalServer, tmp_path: Path
) -> None:
    rows = [{"id": f"r{i}", "data": ("long " * 500 if i % 3 == 0 else "short")} for i in range(30)]
    path = write_jsonl(tmp_path / "docs.jsonl", rows)
    code, err = run_in_process(bge_server, "upsert", path, "-b", "5")
    assert code == 0
    [warning] = [line for line in err.splitlines() if line.startswith("warning: 10 records")]
    assert err.count("likely longer") == 1
    assert "BAAI/bge-small-en-v1.5 embeds the first 512 tokens (about 2,048 characters" in warning
    assert "estimated 4 characters a token" in warning
    assert f"first: {path}:1, {path}:4, {path}:7, {path}:10, {path}:13." in warning
    assert "split them with --chunk-size 1536" in warning
    assert len(bge_server.records("")) == 30  # a warning, not a rejection

    code, err = run_in_process(bge_server, "upsert", path, "--chunk-size", "1536")
    assert code == 0 and "likely longer" not in err
    code, err = run_in_process(bge_server, "upsert", path, "--chunk-size", "5000")
    assert "10 chunks have data likely longer" in err and "lower --chunk-size to at most" in err
    # Without /info there is no model to know of.
    for skip in ("--dry-run", "--no-preflight"):
        code, err = run_in_process(bge_server, "upsert", path, skip)
        assert code == 0 and "likely longer" not in err


def test_no_warning_without_a_known_model(server: LocalServer, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "docs.jsonl", [{"id": "a", "data": "long " * 5000}])
    result = run_cli("upsert", path, server=server)
    assert result.code == 0 and "likely longer" not in result.stderr


def test_kill_9_mid_record_then_resume_sends_every_chunk(tmp_path: Path) -> None:
    """A record of more chunks than a batch holds spans batches: a checkpoint taken
    after the first must not count that record as settled, or its other chunks would
    be lost."""
    docs = [{"id": f"d{i}", "data": long_document(4 + i % 3)} for i in range(6)]
    path = write_jsonl(tmp_path / "docs.jsonl", docs)
    checkpoint = tmp_path / "cp.json"
    args = ["upsert", str(path), "--chunk-size", "300", "-b", "3", "-c", "1", "--json"]
    args += ["--checkpoint", str(checkpoint)]
    expected = {
        f"{d['id']}#{n}": piece
        for d in docs
        for n, piece in enumerate(split_text(d["data"], 300), 1)
    }
    assert len(split_text(docs[0]["data"], 300)) > 3
    # One write in 4 s: the first batch lands, the second waits for its turn.
    with LocalServer(ServerConfig(port=0, rate_limit=0.25)) as server:
        kill_when(*args, server=server, ready=lambda: checkpoint.exists() and server.records(""))
        assert sorted(server.records("")) == ["d0#1", "d0#2", "d0#3"]
        server.set_faults(rate_limit=0.0)
        result = run_cli(*args, server=server)
        assert result.code == 0, result.stderr
        assert {i: data for i, (data, _) in server.records("").items()} == expected
        # The record cut short is sent again whole, not skipped.
        assert result.summary["records_skipped"] == 0
        assert result.summary["records_upserted"] == 6


# --- counts by record, and when stale chunks go ------------------------------------------


def chunked(rows: list[dict[str, Any]], size: int = 300) -> list[Any]:
    """``rows`` as the items the chunking stage yields, with their input's index."""
    fresh = [
        (row["id"], orjson.dumps(row), "in", line, line * 10, line)
        for line, row in enumerate(rows, 1)
    ]
    return [(0, item) for item in Chunker(MappingOptions(chunk_size=size)).chunks(fresh, None)]


def test_a_records_chunks_go_in_one_batch_unless_they_are_more_than_one_holds() -> None:
    rows = [{"id": f"d{i}", "data": long_document(2)} for i in range(3)]  # 3 chunks each
    rows.append({"id": "big", "data": long_document(6)})  # 8 chunks
    made = list(batches(chunked(rows), max_records=5))
    assert [list(b.ids) for b in made] == [
        ["d0#1", "d0#2", "d0#3"],
        ["d1#1", "d1#2", "d1#3"],
        ["d2#1", "d2#2", "d2#3"],
        [f"big#{n}" for n in range(1, 6)],
        ["big#6", "big#7", "big#8"],
    ]
    # A record counts once, in the batch that ends it: what a checkpoint records.
    assert [b.per_input.get(0, (0,))[0] for b in made] == [1, 1, 1, 0, 1]
    assert made[4].per_input[0][1] == Position(40, 4)


def test_stale_chunks_wait_for_every_record_of_their_id_in_flight() -> None:
    """A long record spans three batches; a short one of the same id lands before the
    long one's last chunks: its stale chunks go once those have landed too."""
    rows = [{"id": "doc", "data": long_document(7)}, {"id": "doc", "data": "short"}]  # 9, 1
    tidied: list[tuple[dict[str, int], str]] = []

    def tidy(counts: Mapping[str, int], where: str) -> int:
        tidied.append((dict(counts), where))
        return 0

    documents = Documents(tidy=tidy)
    first, second, third, short = batches(documents.watch(chunked(rows)), max_records=3)
    assert list(short.ids) == ["doc#1"]
    tallies = [documents.settle(Settlement(b, upserted=len(b.ids))) for b in (first, short)]
    assert tidied == [] and [t.upserted for t in tallies] == [0, 1]
    documents.settle(Settlement(second, upserted=len(second.ids)))
    last = documents.settle(Settlement(third, upserted=len(third.ids)))
    assert tidied == [({"doc": 1}, "batch 3 (in:1-1)")]
    assert (last.upserted, last.chunks_upserted) == (1, 3)
