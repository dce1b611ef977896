"""vupsert sync, against the local index, with and without its faults."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import vupsert
from vupsert_server import LocalServer, ServerConfig

from .conftest import kill_when, read_jsonl, run_cli, write_jsonl

SYNC_KEYS = {"records_new", "records_changed", "records_unchanged", "records_deleted"}


def docs(n: int, *, start: int = 0, version: int = 0) -> list[dict[str, Any]]:
    return [
        {"id": f"d{i}", "data": f"document {i} version {version}", "metadata": {"i": i}}
        for i in range(start, start + n)
    ]


def received(server: LocalServer) -> int:
    """Records the server has been sent in upsert requests so far."""
    return int(server.stats["records_received"])


def stored(server: LocalServer, namespace: str) -> dict[str, tuple[Any, Any]]:
    return server.records(namespace)


def expected(rows: list[dict[str, Any]]) -> dict[str, tuple[Any, Any]]:
    return {row["id"]: (row["data"], row.get("metadata")) for row in rows}


@pytest.mark.parametrize("problem", ["no such file", "no column"])
def test_a_sync_checks_its_inputs_before_it_asks_anything_of_the_index(
    tmp_path: Path, problem: str
) -> None:
    # Nothing answers on port 9: a sync that talked to the index first would wait out its
    # retries, then blame the network (or, with an index, scan all of it) for a typo.
    path = tmp_path / "docs.csv"
    if problem == "no column":
        path.write_text("key,text\n1,hello\n")
    environ = {"UPSTASH_VECTOR_REST_URL": "http://127.0.0.1:9", "UPSTASH_VECTOR_REST_TOKEN": "t"}
    with pytest.raises(vupsert.UsageError, match=problem):
        vupsert.sync(path, environ=environ, retries=0)


def test_a_sync_sends_only_what_changed_and_deletes_what_is_gone(
    server: LocalServer, tmp_path: Path
) -> None:
    path = write_jsonl(tmp_path / "docs.jsonl", docs(500))
    first = run_cli("sync", path, "-n", "docs", "--json", server=server)
    assert first.code == 0, first.stderr
    assert first.summary["records_new"] == 500 and first.summary["records_upserted"] == 500
    assert first.summary.keys() >= SYNC_KEYS

    before = received(server)
    again = run_cli("sync", path, "-n", "docs", "--json", server=server)
    assert again.code == 0, again.stderr
    assert received(server) == before  # nothing re-embedded
    assert again.summary["records_unchanged"] == 500 and again.summary["records_upserted"] == 0

    rows = docs(450)  # 50 removed
    rows[3]["data"] = "document 3, edited"
    rows.append({"id": "new-1", "data": "a new document"})
    rows[7]["metadata"] = {"i": 7, "tag": "x"}
    write_jsonl(path, rows)
    third = run_cli("sync", path, "-n", "docs", "--json", server=server)
    assert third.code == 0, third.stderr
    summary = third.summary
    assert (summary["records_new"], summary["records_changed"]) == (1, 2)
    assert (summary["records_unchanged"], summary["records_deleted"]) == (448, 50)
    assert received(server) == before + 3
    assert stored(server, "docs") == expected(rows)


def test_the_last_occurrence_of_an_id_wins(server: LocalServer, tmp_path: Path) -> None:
    rows = docs(5)
    path = write_jsonl(tmp_path / "docs.jsonl", rows)
    assert run_cli("sync", path, "-n", "ns", server=server).code == 0
    # d1 is edited then set back to what is stored; d2 is edited twice.
    twice = [*rows, {**rows[1], "data": "edited"}, rows[1], {**rows[2], "data": "a"}]
    twice.append({**rows[2], "data": "b"})
    write_jsonl(path, twice)
    result = run_cli("sync", path, "-n", "ns", "--json", server=server)
    assert result.code == 0, result.stderr
    assert stored(server, "ns") == expected(twice)


def test_a_rejected_record_keeps_its_stored_version(tmp_path: Path) -> None:
    with LocalServer(ServerConfig(port=0, refuse_matching="BADWORD")) as server:
        rows = docs(20)
        path = write_jsonl(tmp_path / "docs.jsonl", rows)
        assert run_cli("sync", path, "-n", "ns", server=server).code == 0
        changed = [*rows]
        changed[4] = {**rows[4], "data": "BADWORD now"}  # refused by the server
        changed[5] = {"id": "d5"}  # no data: rejected before sending
        write_jsonl(path, changed)
        rejects = tmp_path / "rejects.jsonl"
        result = run_cli("sync", path, "-n", "ns", "--rejects", rejects, "--json", server=server)
        assert result.code == 1, result.stderr
        assert result.summary["records_rejected"] == 2
        assert stored(server, "ns") == expected(rows)  # both ids kept, as stored
        assert "no record was deleted" in result.stderr  # a batch failed
        assert len(read_jsonl(rejects)) == 2


def test_the_guard_refuses_to_wipe_a_namespace(server: LocalServer, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "docs.jsonl", docs(100))
    assert run_cli("sync", path, "-n", "ns", server=server).code == 0
    write_jsonl(path, docs(10))  # truncated: 90 would go
    refused = run_cli("sync", path, "-n", "ns", "--json", server=server)
    assert refused.code == int(vupsert.ExitStatus.DELETION_REFUSED) == 4
    assert "90 stored records are not in the source" in refused.stderr
    assert "--max-delete 90" in refused.stderr
    assert len(stored(server, "ns")) == 100
    assert refused.summary["records_deleted"] == 0
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    assert run_cli("sync", empty, "-n", "ns", server=server).code == 4
    assert len(stored(server, "ns")) == 100
    assert run_cli("sync", path, "-n", "ns", "--max-delete", "89", server=server).code == 4
    allowed = run_cli("sync", path, "-n", "ns", "--max-delete", "90%", "--json", server=server)
    assert allowed.code == 0 and allowed.summary["records_deleted"] == 90
    assert stored(server, "ns") == expected(docs(10))


def test_a_dry_run_writes_nothing_and_says_what_it_would(
    server: LocalServer, tmp_path: Path
) -> None:
    path = write_jsonl(tmp_path / "docs.jsonl", docs(30))
    assert run_cli("sync", path, "-n", "ns", server=server).code == 0
    rows = docs(25)
    rows[0]["data"] = "changed"
    rows.append({"id": "x", "data": "new"})
    write_jsonl(path, rows)
    before = received(server)
    dry = run_cli("sync", path, "-n", "ns", "--dry-run", "--json", server=server)
    assert dry.code == 0, dry.stderr
    summary = dry.summary
    assert summary["dry_run"] is True
    assert (summary["records_new"], summary["records_changed"]) == (1, 1)
    assert (summary["records_unchanged"], summary["records_deleted"]) == (24, 5)
    assert received(server) == before and stored(server, "ns") == expected(docs(30))
    said = run_cli("sync", path, "-n", "ns", "--dry-run", server=server).stderr.splitlines()
    assert " · to send 2 · " in said[0]  # the new and the changed one, not the 26 valid
    gone = sorted(f"d{i}" for i in range(25, 30))
    assert said[1] == f"would delete {', '.join(map(repr, gone))} (5 records of 30 stored)"
    assert received(server) == before and stored(server, "ns") == expected(docs(30))


def test_a_dry_run_names_the_first_ids_it_would_delete(server: LocalServer, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "docs.jsonl", docs(30))
    assert run_cli("sync", path, "-n", "ns", server=server).code == 0
    write_jsonl(path, docs(3))
    result = run_cli("sync", path, "-n", "ns", "--dry-run", "--max-delete", "27", server=server)
    assert result.code == 0, result.stderr
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("would delete")]
    named = line.removeprefix("would delete ").split(" and ")[0].split(", ")
    assert len(named) == 10 and {name.strip("'") for name in named} <= {
        f"d{i}" for i in range(3, 30)
    }
    assert line.endswith(" and 17 more ids (27 records of 30 stored)")


def test_a_prefix_keeps_the_rest_of_the_namespace(server: LocalServer, tmp_path: Path) -> None:
    other = write_jsonl(tmp_path / "other.jsonl", [{"id": "keep-1", "data": "not synced"}])
    assert run_cli("upsert", other, "-n", "ns", server=server).code == 0
    rows = [{"id": f"blog/{i}", "data": f"post {i}"} for i in range(6)]
    path = write_jsonl(tmp_path / "blog.jsonl", rows)
    assert run_cli("sync", path, "-n", "ns", "--prefix", "blog/", server=server).code == 0
    write_jsonl(path, [*rows[:4], {"id": "oops", "data": "outside the prefix"}])
    result = run_cli("sync", path, "-n", "ns", "--prefix", "blog/", "--json", server=server)
    assert result.code == 1  # the record outside the prefix is rejected
    assert "does not start with 'blog/'" in result.stderr
    assert result.summary["records_deleted"] == 2
    assert set(stored(server, "ns")) == {"keep-1", "blog/0", "blog/1", "blog/2", "blog/3"}


def test_sync_refuses_a_checkpoint_and_shards(server: LocalServer, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "docs.jsonl", docs(3))
    assert run_cli("sync", path, "--checkpoint", tmp_path / "c", server=server).code == 2
    assert run_cli("sync", path, "--shard", "0/2", server=server).code == 2
    assert stored(server, "") == {}


def test_faults_on_every_request_still_converge(tmp_path: Path) -> None:
    config = ServerConfig(
        port=0, seed=11, fail_rate=0.2, drop_rate=0.05, rate_limit=40, faulty_reads=True
    )
    with LocalServer(config) as server:
        rows = docs(1500)
        path = write_jsonl(tmp_path / "docs.jsonl", rows)
        args: list[str | Path] = ["sync", path, "-n", "ns", "-b", "200", "--max-backoff", "0.2"]
        args.append("--json")
        first = run_cli(*args, server=server)
        assert first.code == 0, first.stderr
        rows = docs(1200, version=1) + docs(100, start=1200)
        write_jsonl(path, rows)
        second = run_cli(*args, server=server)
        assert second.code == 0, second.stderr
        assert second.summary["records_deleted"] == 200
        assert second.summary["retries"] > 0
        assert stored(server, "ns") == expected(rows)


def test_killed_at_any_point_a_rerun_converges(tmp_path: Path) -> None:
    rows = docs(3000)
    path = write_jsonl(tmp_path / "docs.jsonl", rows)
    with LocalServer(ServerConfig(port=0, latency_ms=30)) as server:
        assert run_cli("sync", path, "-n", "ns", "-c", "4", server=server).code == 0
        rows = docs(2000, version=2) + docs(500, start=3000)
        write_jsonl(path, rows)
        kill_when(
            "sync",
            path,
            "-n",
            "ns",
            "-b",
            "100",
            server=server,
            ready=lambda: received(server) >= 3000 + 300,
        )
        again = run_cli("sync", path, "-n", "ns", "--json", server=server)
        assert again.code == 0, again.stderr
        assert stored(server, "ns") == expected(rows)
        assert again.summary["records_unchanged"] > 0  # what the killed run sent


def test_sync_from_python(server: LocalServer) -> None:
    rows = docs(50)
    summary = vupsert.sync(rows, url=server.url, token=server.token, namespace="py")
    assert isinstance(summary, vupsert.SyncSummary) and summary.records_new == 50
    with pytest.raises(vupsert.DeletionRefused) as refused:
        vupsert.sync(rows[:5], url=server.url, token=server.token, namespace="py")
    assert refused.value.summary.records_deleted == 0
    assert "max_delete=45" in str(refused.value)
    done = vupsert.sync(
        rows[:5], url=server.url, token=server.token, namespace="py", max_delete="100%"
    )
    assert done.records_deleted == 45 and len(stored(server, "py")) == 5


def test_the_readme_names_every_key_sync_adds() -> None:
    from .conftest import ROOT

    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### Keep an index in step") :]
    added = set(vupsert.SyncSummary().as_dict()) - set(vupsert.Summary().as_dict())
    assert added == {f"records_{k}" for k in ("new", "changed", "unchanged", "deleted", "stored")}
    for key in added:
        assert f"`{key}`" in section, key


def test_a_chunked_record_that_shrinks_leaves_only_its_new_chunks(
    server: LocalServer, tmp_path: Path
) -> None:
    def document(paragraphs: int) -> str:
        return "\n\n".join(
            f"Paragraph {p}. " + "Words that make a sentence of some length. " * 6
            for p in range(paragraphs)
        )

    path = write_jsonl(
        tmp_path / "docs.jsonl",
        [{"id": "long", "data": document(12)}, {"id": "short", "data": "a short one"}],
    )
    args: list[str | Path] = ["sync", path, "-n", "ns", "--chunk-size", "400", "--json"]
    first = run_cli(*args, server=server)
    assert first.code == 0, first.stderr
    before = sorted(stored(server, "ns"))
    assert len([i for i in before if i.startswith("long#")]) >= 8
    write_jsonl(path, [{"id": "long", "data": document(2)}, {"id": "short", "data": "a short one"}])
    second = run_cli(*args, "--max-delete", "100%", server=server)
    assert second.code == 0, second.stderr
    kept = stored(server, "ns")
    assert sorted(kept) == ["long#1", "long#2", "short#1"]
    assert kept["long#2"][1]["chunk"] == {"parent": "long", "number": 2, "count": 2}
    # Every record is in the source: chunks are deleted, no record is.
    assert second.summary["records_deleted"] == 0
    assert second.summary["chunks_deleted"] == len(before) - 3
