"""vupsert export, verify and delete, against the local index, with and without faults."""

from __future__ import annotations

import gzip
import io
import re
from pathlib import Path
from typing import Any

import orjson
import pytest

import vupsert
from vupsert_server import LocalServer, ServerConfig

from .conftest import read_jsonl, run_cli, write_jsonl

FAULTY: dict[str, Any] = {
    "seed": 3,
    "fail_rate": 0.2,
    "drop_rate": 0.05,
    "rate_limit": 50,
    "faulty_reads": True,
}


def docs(n: int, prefix: str = "d") -> list[dict[str, Any]]:
    return [
        {
            "id": f"{prefix}{i}",
            "data": f"document {i}",
            "metadata": {"i": i, "genre": "drama" if i % 3 == 0 else "comedy", "f": 1.5},
        }
        for i in range(n)
    ]


def load(server: LocalServer, rows: list[dict[str, Any]], namespace: str, tmp: Path) -> None:
    path = write_jsonl(tmp / f"load-{namespace}.jsonl", rows)
    assert run_cli("upsert", path, "-n", namespace, server=server).code == 0


# --- export -----------------------------------------------------------------------------


@pytest.mark.parametrize("faults", [False, True])
def test_an_export_loads_back_into_another_namespace_exactly(tmp_path: Path, faults: bool) -> None:
    config = ServerConfig(port=0, **FAULTY) if faults else ServerConfig(port=0)
    with LocalServer(config) as server:
        load(server, docs(2500), "src", tmp_path)
        out = tmp_path / "backup.jsonl.gz"
        result = run_cli(
            "export", "-n", "src", "-o", out, "--json", "--max-backoff", "0.2", server=server
        )
        assert result.code == 0, result.stderr
        assert result.summary["records_exported"] == 2500
        lines = [orjson.loads(line) for line in gzip.decompress(out.read_bytes()).splitlines()]
        assert len(lines) == 2500 and set(lines[0]) == {"id", "data", "metadata"}
        copy = run_cli("upsert", out, "-n", "copy", "--max-backoff", "0.2", server=server)
        assert copy.code == 0, copy.stderr
        assert server.records("copy") == server.records("src")


def test_export_to_stdout_and_under_a_prefix(server: LocalServer, tmp_path: Path) -> None:
    load(server, docs(30) + docs(5, prefix="x-"), "ns", tmp_path)
    result = run_cli("export", "-n", "ns", "--prefix", "x-", server=server)
    assert result.code == 0, result.stderr
    ids = [orjson.loads(line)["id"] for line in result.stdout.splitlines()]
    assert sorted(ids) == [f"x-{i}" for i in range(5)]
    assert run_cli("export", "-n", "ns", "--json", server=server).code == 2  # needs -o


def test_a_failed_export_leaves_no_half_file(tmp_path: Path) -> None:
    with LocalServer(ServerConfig(port=0, fail_rate=1.0, faulty_reads=True)) as server:
        out = tmp_path / "out.jsonl"
        result = run_cli("export", "-o", out, "--retries", "1", "--max-backoff", "0", server=server)
        assert result.code == 3 and "range gave up after 2 attempts" in result.stderr
        assert not out.exists() and list(tmp_path.iterdir()) == []


def test_export_from_python(server: LocalServer, tmp_path: Path) -> None:
    load(server, docs(1200), "ns", tmp_path)
    seen: list[tuple[int, int | None]] = []
    buffer = io.BytesIO()
    summary = vupsert.export(
        buffer,
        url=server.url,
        token=server.token,
        namespace="ns",
        progress=lambda n, total: seen.append((n, total)),
    )
    assert summary.records_exported == 1200 and len(buffer.getvalue().splitlines()) == 1200
    assert seen == [(1000, 1200), (1200, 1200)]


# --- verify -----------------------------------------------------------------------------


@pytest.mark.parametrize("faults", [False, True])
def test_verify_finds_missing_and_different_records(tmp_path: Path, faults: bool) -> None:
    config = ServerConfig(port=0, **FAULTY) if faults else ServerConfig(port=0)
    with LocalServer(config) as server:
        rows = docs(1500)
        load(server, rows[:1400], "ns", tmp_path)
        path = write_jsonl(tmp_path / "src.jsonl", rows)
        ok = run_cli("verify", path, "-n", "ns", "--json", "--max-backoff", "0.2", server=server)
        assert ok.code == 1
        assert ok.summary["records_missing"] == 100 and ok.summary["records_matching"] == 1400
        assert f"{path}:1401: 'd1400' is missing in the index" in ok.stderr
        assert "... and 90 more" in ok.stderr
        rows[7]["metadata"] = {"i": 7, "genre": "changed", "f": 1.5}
        write_jsonl(path, rows[:1400])
        different = run_cli("verify", path, "-n", "ns", "--json", server=server)
        assert different.code == 1 and different.summary["records_different"] == 1
        assert f"{path}:8: 'd7' is different in the index" in different.stderr
        write_jsonl(path, docs(1400))
        assert run_cli("verify", path, "-n", "ns", "-q", server=server).code == 0


def test_verify_checks_the_last_occurrence_of_an_id(server: LocalServer, tmp_path: Path) -> None:
    rows = docs(10)
    load(server, rows, "ns", tmp_path)
    early = {**rows[3], "data": "an earlier version"}
    path = write_jsonl(tmp_path / "src.jsonl", [early, *rows, {**rows[4], "data": "later"}])
    result = run_cli("verify", path, "-n", "ns", "--json", server=server)
    summary = result.summary
    assert (summary["records_checked"], summary["records_matching"]) == (10, 9)
    assert summary["records_different"] == 1 and summary["problems"][0]["id"] == "d4"


def test_verify_from_python(server: LocalServer, tmp_path: Path) -> None:
    rows = docs(20)
    load(server, rows, "ns", tmp_path)
    summary = vupsert.verify(rows, url=server.url, token=server.token, namespace="ns")
    assert summary.records_matching == 20 and summary.exit_status is vupsert.ExitStatus.SUCCESS


# --- delete -----------------------------------------------------------------------------


def test_delete_by_ids_from_every_kind_of_list(server: LocalServer, tmp_path: Path) -> None:
    load(server, docs(3000), "ns", tmp_path)
    plain = tmp_path / "ids.txt"
    plain.write_text("".join(f"d{i}\n" for i in range(1500)) + "\n")
    result = run_cli("delete", "-n", "ns", "--ids", plain, "--json", server=server)
    assert result.code == 0, result.stderr
    assert result.summary["records_deleted"] == 1500
    assert result.summary["requests"] == 4  # a fetch and a delete per 1,000 ids
    rejects = write_jsonl(
        tmp_path / "rejects.jsonl",
        [{"id": "d1500", "data": "x", "_vupsert": {"reason": "r"}}, {"_vupsert": {"raw": "{"}}],
    )
    result = run_cli("delete", "-n", "ns", "--ids", rejects, "--json", server=server)
    assert result.code == 1 and result.summary["records_deleted"] == 1
    assert "1 lines of --ids hold no id" in result.stderr
    csv = tmp_path / "ids.csv"
    csv.write_text("key,other\nd1501,a\nd1502,b\n")
    result = run_cli("delete", "-n", "ns", "--ids", csv, "--id-field", "key", server=server)
    assert result.code == 0 and "deleted 2 records" in result.stderr
    piped = run_cli("delete", "-n", "ns", "--ids", "-", input=b"d1503\nd1504\n", server=server)
    assert piped.code == 0
    assert len(server.records("ns")) == 3000 - 1505


def test_delete_by_prefix_and_filter_asks_first(server: LocalServer, tmp_path: Path) -> None:
    load(server, docs(30) + docs(10, prefix="tmp-"), "ns", tmp_path)
    refused = run_cli("delete", "-n", "ns", "--prefix", "tmp-", server=server)
    assert refused.code == 2 and "--yes" in refused.stderr
    dry = run_cli("delete", "-n", "ns", "--prefix", "tmp-", "--dry-run", "--json", server=server)
    assert dry.code == 0 and dry.summary["records_deleted"] == 10
    assert len(server.records("ns")) == 40
    gone = run_cli("delete", "-n", "ns", "--prefix", "tmp-", "--yes", "--json", server=server)
    assert gone.summary["records_deleted"] == 10 and len(server.records("ns")) == 30
    counted = run_cli(
        "delete", "-n", "ns", "--filter", "genre = 'drama'", "--dry-run", "--json", server=server
    )
    assert counted.summary["records_deleted"] == 10
    bad = run_cli("delete", "-n", "ns", "--filter", "genre = ", "--yes", server=server)
    assert bad.code == 2 and "Traceback" not in bad.stderr
    done = run_cli("delete", "-n", "ns", "--filter", "genre = 'drama'", "-y", server=server)
    assert done.code == 0
    assert all((meta or {})["genre"] == "comedy" for _, meta in server.records("ns").values())
    assert run_cli("delete", "-n", "ns", server=server).code == 2  # nothing to delete by
    both = run_cli("delete", "-n", "ns", "--prefix", "d", "--ids", "-", "-y", server=server)
    assert both.code == 2


class _Keyboard(io.BytesIO):
    """A terminal's stdin, with the answers already typed."""

    def isatty(self) -> bool:
        return True


def answering(server: LocalServer, answer: bytes, *args: str) -> tuple[int, str]:
    """``vupsert ARGS`` at a terminal where ``answer`` is typed: the exit status, stderr."""
    from vupsert.cli import Environment, main

    stderr = io.StringIO()
    environ = {"UPSTASH_VECTOR_REST_URL": server.url, "UPSTASH_VECTOR_REST_TOKEN": server.token}
    environment = Environment(
        stdin=_Keyboard(answer), stdout=io.StringIO(), stderr=stderr, environ=environ
    )
    with pytest.raises(SystemExit) as exit:
        main(list(args), environment)
    return int(exit.value.code or 0), stderr.getvalue()


def test_delete_by_prefix_or_filter_asks_with_the_count(
    server: LocalServer, tmp_path: Path
) -> None:
    load(server, docs(30) + docs(12, prefix="tmp-"), "ns", tmp_path)
    code, said = answering(server, b"n\n", "delete", "-n", "ns", "--prefix", "tmp-")
    assert said.startswith("Delete 12 records of namespace 'ns' (ids starting with 'tmp-')? ")
    assert code == 2 and "Nothing deleted" in said and len(server.records("ns")) == 42
    code, said = answering(server, b"y\n", "delete", "-n", "ns", "--prefix", "tmp-")
    assert code == 0 and "deleted 12 records" in said and len(server.records("ns")) == 30
    code, said = answering(server, b"", "delete", "-n", "ns", "--prefix", "tmp-")
    assert (code, said) == (0, "vupsert delete: deleted 0 records\n")  # none: nothing asked
    code, said = answering(server, b"yes\n", "delete", "-n", "ns", "--filter", "genre = 'drama'")
    assert said.startswith(
        "Delete 10 records of namespace 'ns' (matching \"genre = 'drama'\")? [y/N]: "
    )
    assert code == 0 and len(server.records("ns")) == 20


def test_delete_under_faults(tmp_path: Path) -> None:
    with LocalServer(ServerConfig(port=0, **FAULTY)) as server:
        load(server, docs(2500), "ns", tmp_path)
        ids = tmp_path / "ids.txt"
        ids.write_text("".join(f"d{i}\n" for i in range(2500)))
        result = run_cli(
            "delete", "-n", "ns", "--ids", ids, "--json", "--max-backoff", "0.2", server=server
        )
        assert result.code == 0, result.stderr
        assert server.records("ns") == {}
        assert result.summary["records_deleted"] == 2500


def test_delete_from_python(server: LocalServer, tmp_path: Path) -> None:
    load(server, docs(20), "ns", tmp_path)
    kw: dict[str, Any] = {"url": server.url, "token": server.token, "namespace": "ns"}
    assert vupsert.delete(ids=["d1", "d2", "nope"], **kw).records_deleted == 2
    assert vupsert.delete(prefix="d1", dry_run=True, **kw).records_deleted == 10
    assert vupsert.delete(filter="i >= 15", **kw).records_deleted == 5
    with pytest.raises(vupsert.UsageError):
        vupsert.delete(prefix="d", filter="i > 1", **kw)
    assert len(server.records("ns")) == 13
    exported = tmp_path / "e.jsonl"
    vupsert.export(exported, **kw)
    assert len(read_jsonl(exported)) == 13
    assert vupsert.delete(ids=exported, **kw).records_deleted == 13


# --- namespaces and what verify counts beyond the source ---------------------------------


def test_a_namespace_the_index_lacks_stops_export_verify_and_delete(
    server: LocalServer, tmp_path: Path
) -> None:
    load(server, docs(5), "docs", tmp_path)
    load(server, docs(5), "zebra", tmp_path)
    source = write_jsonl(tmp_path / "src.jsonl", docs(5))
    ids = tmp_path / "ids.txt"
    ids.write_text("d1\n")
    out = tmp_path / "out.jsonl"
    for command in (
        ["export", "-o", out],
        ["export"],
        ["verify", source],
        ["delete", "--ids", ids],
        ["delete", "--prefix", "d", "--yes"],
    ):
        result = run_cli(*command, "-n", "doc", server=server)
        assert result.code == 2, (command, result.stderr)
        said = " ".join(result.stderr.split())
        assert (
            "--namespace doc: the index has no such namespace; it has 'docs' (the nearest), "
            "'zebra' and the default namespace." in said
        ), said
        assert result.stdout == ""
    assert not out.exists()
    assert len(server.records("docs")) == 5
    with pytest.raises(vupsert.ConfigError, match="namespace='doc'"):
        vupsert.export(io.BytesIO(), url=server.url, token=server.token, namespace="doc")


def test_an_empty_namespace_is_a_warning(server: LocalServer, tmp_path: Path) -> None:
    load(server, docs(3), "ns", tmp_path)
    ids = tmp_path / "ids.txt"
    ids.write_text("d0\nd1\nd2\n")
    assert run_cli("delete", "-n", "ns", "--ids", ids, server=server).code == 0
    out = tmp_path / "out.jsonl"
    export = run_cli("export", "-n", "ns", "-o", out, server=server)
    assert export.code == 0 and out.read_bytes() == b""
    assert "warning: namespace 'ns' holds no record." in export.stderr
    delete = run_cli("delete", "-n", "ns", "--ids", ids, server=server)
    assert delete.code == 0 and "warning: namespace 'ns' holds no record." in delete.stderr
    verify = run_cli(
        "verify", write_jsonl(tmp_path / "s.jsonl", docs(3)), "-n", "ns", server=server
    )
    assert verify.code == 1 and "warning: namespace 'ns' holds no record." in verify.stderr


def test_verify_counts_what_the_index_holds_beyond_the_source(
    server: LocalServer, tmp_path: Path
) -> None:
    rows = docs(30)
    load(server, rows, "ns", tmp_path)
    whole = write_jsonl(tmp_path / "whole.jsonl", rows)
    server.reset_stats()
    same = run_cli("verify", whole, "-n", "ns", "--exact", "--json", server=server)
    assert same.code == 0, same.stderr
    assert same.summary["records_extra"] == 0 and same.summary["extra_ids"] == []
    # /info counted as many as were found: the namespace is not read again.
    assert "range" not in server.stats["requests"]

    part = write_jsonl(tmp_path / "part.jsonl", rows[:18])
    result = run_cli("verify", part, "-n", "ns", "--json", server=server)
    assert result.code == 0, result.stderr  # extra records are no difference by default
    summary = result.summary
    assert summary["records_extra"] == 12 and summary["records_matching"] == 18
    assert summary["extra_ids"] == [f"d{i}" for i in range(18, 28)]
    assert "'d18' is in the index, not in the source" in result.stderr
    assert "... and 2 more in the index only" in result.stderr
    assert "12 extra (not a difference without --exact)" in result.stderr

    exact = run_cli("verify", part, "-n", "ns", "--exact", server=server)
    assert exact.code == 1 and "12 extra ·" in exact.stderr
    checked = vupsert.verify(
        rows[:18], url=server.url, token=server.token, namespace="ns", exact=True
    )
    assert checked.records_extra == 12 and checked.exit_status is vupsert.ExitStatus.PARTIAL


def test_the_readme_lists_the_keys_of_verify() -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    start = readme.index("`vupsert verify` takes `upsert`'s inputs")
    paragraph = readme[start : readme.index("\n\n", start)]
    listed = re.findall(r"`(\w+)`", paragraph.split("`--json` prints", 1)[1])
    assert listed == list(vupsert.VerifySummary().as_dict())
