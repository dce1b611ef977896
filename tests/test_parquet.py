"""Parquet inputs: rows as JSON has them, resume by row, progress, the optional pyarrow, and
the real CLI against a real local index."""

from __future__ import annotations

import datetime
import decimal
import io
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from vupsert.cli.app import Environment, main
from vupsert.config.settings import ReadOptions
from vupsert.inputs import iter_rows
from vupsert.records import Position, Row
from vupsert_server import LocalServer, ServerConfig

from .conftest import cli_env, kill_when, read_jsonl, run_cli


def people_table() -> pa.Table:
    """Three rows: nested structs with null fields, a null struct, timestamps, lists."""
    return pa.table(
        {
            "id": ["p1", "p2", "p3"],
            "doc": pa.array(
                [
                    {"title": "Ada", "body": "Ada wrote the first program."},
                    {"title": "Grace", "body": None},
                    None,
                ]
            ),
            "year": pa.array([1843, None, 1952], pa.int32()),
            "score": [1.5, 2.0, None],
            "active": [True, False, None],
            "tags": [["math", "code"], [], None],
            "seen": pa.array(
                [datetime.datetime(2024, 5, 1, 12, 30, 5, 250000), None, None],
                pa.timestamp("us", tz="UTC"),
            ),
        }
    )


def write(tmp_path: Path, table: pa.Table, name: str = "t.parquet", **kw: Any) -> Path:
    path = tmp_path / name
    pq.write_table(table, path, **kw)
    return path


def test_rows_are_what_json_would_hold(tmp_path: Path) -> None:
    table = pa.table(
        {
            "ts": pa.array([datetime.datetime(2024, 1, 2, 3, 4, 5)], pa.timestamp("ms")),
            "tz": pa.array([datetime.datetime(2024, 1, 2, 3, 4, 5)], pa.timestamp("s", "UTC")),
            "day": pa.array([datetime.date(2024, 1, 2)]),
            "at": pa.array([datetime.time(3, 4, 5)]),
            "price": pa.array([decimal.Decimal("12.50")], pa.decimal128(10, 2)),
            "took": pa.array([datetime.timedelta(seconds=90)], pa.duration("s")),
            "text": pa.array([b"caf\xc3\xa9"], pa.binary()),
            "blob": pa.array([b"\xff\x00"], pa.binary()),
            "attrs": pa.array([[("a", 1), ("b", None)]], pa.map_(pa.string(), pa.int64())),
            "kind": pa.array(["x"]).dictionary_encode(),
            "nested": pa.array([{"when": datetime.date(2020, 2, 2), "none": None}]),
            "days": pa.array([[datetime.date(2021, 1, 1), None]]),
            "nothing": pa.array([None], pa.null()),
        }
    )
    [row] = list(iter_rows(str(write(tmp_path, table)), ReadOptions()))
    assert isinstance(row, Row)
    assert row.value == {
        "ts": "2024-01-02T03:04:05",
        "tz": "2024-01-02T03:04:05+00:00",
        "day": "2024-01-02",
        "at": "03:04:05",
        "price": 12.5,
        "took": 90.0,
        "text": "café",
        "blob": "/wA=",
        "attrs": {"a": 1},
        "kind": "x",
        "nested": {"when": "2020-02-02"},
        "days": ["2021-01-01", None],
        "nothing": None,
    }
    orjson.dumps(row.value)  # all of it is JSON


def test_rows_are_numbered_and_resume_by_row_across_row_groups(tmp_path: Path) -> None:
    n = 5000
    table = pa.table({"id": [f"r{i}" for i in range(n)], "data": [f"text {i}" for i in range(n)]})
    path = write(tmp_path, table, row_group_size=700)
    size = path.stat().st_size
    seen: list[int] = []
    rows = [r for r in iter_rows(str(path), ReadOptions(), on_bytes=seen.append)]
    assert all(isinstance(r, Row) for r in rows)
    assert [r.line for r in rows] == list(range(1, n + 1))
    assert rows[-1].end == Position(size, n) and sum(seen) == size
    assert all(r.end.offset <= size for r in rows)
    for skip in (1, 699, 700, 701, 3456, n):
        seen.clear()
        rest = list(
            iter_rows(str(path), ReadOptions(), start=rows[skip - 1].end, on_bytes=seen.append)
        )
        assert [r.value["id"] for r in rest if isinstance(r, Row)] == [
            f"r{i}" for i in range(skip, n)
        ]
        assert [r.line for r in rest][:1] in ([skip + 1], [])
        assert sum(seen) == size


def test_a_checkpoint_past_the_end_is_refused(tmp_path: Path) -> None:
    from vupsert.errors import InputError

    path = write(tmp_path, pa.table({"id": ["a"], "data": ["x"]}))
    with pytest.raises(InputError, match="has 1 rows, fewer than the 5"):
        list(iter_rows(str(path), ReadOptions(), start=Position(10, 5)))


# --- end to end -------------------------------------------------------------------------


def test_nested_and_null_fields_end_to_end(server: LocalServer, tmp_path: Path) -> None:
    path = write(tmp_path, people_table(), "people.parquet")
    rejects = tmp_path / "rejects.jsonl"
    args: list[str | Path] = ["upsert", path, "--data-field", "doc.body", "--rejects", rejects]
    args.append("--json")
    result = run_cli(*args, server=server)
    assert result.code == 1, result.stderr
    assert server.records("") == {
        "p1": (
            "Ada wrote the first program.",
            {
                "doc": {"title": "Ada"},  # not doc.body: that is the data
                "year": 1843,
                "score": 1.5,
                "active": True,
                "tags": ["math", "code"],
                "seen": "2024-05-01T12:30:05.250000+00:00",
            },
        )
    }
    reasons = {
        line["_vupsert"]["source"]: line["_vupsert"]["reason"] for line in read_jsonl(rejects)
    }
    assert reasons == {
        f"{path}:2": 'missing data (field "doc.body")',
        f"{path}:3": 'missing data (field "doc.body")',
    }
    summary = result.summary
    assert (summary["records_read"], summary["records_upserted"]) == (3, 1)


def test_templates_and_metadata_columns_reach_into_structs(
    server: LocalServer, tmp_path: Path
) -> None:
    path = write(tmp_path, people_table(), "people.parquet")
    result = run_cli(
        "upsert",
        path,
        "--data-template",
        "{doc.title} ({year})",
        "--metadata-columns",
        "doc.title,tags,seen",
        "--json",
        server=server,
    )
    assert result.code == 1, result.stderr  # p2 has no year: a null the template needs
    assert server.records("") == {
        "p1": (
            "Ada (1843)",
            {
                "doc.title": "Ada",
                "tags": ["math", "code"],
                "seen": "2024-05-01T12:30:05.250000+00:00",
            },
        ),
    }
    assert 'field "year" for the data template is null' in result.stderr
    assert 'field "doc.title" for the data template' in result.stderr


def test_a_column_the_schema_lacks_stops_before_anything_is_sent(
    server: LocalServer, tmp_path: Path
) -> None:
    path = write(tmp_path, people_table(), "people.parquet")
    result = run_cli("upsert", path, "--data-field", "text", server=server)
    assert result.code == 2
    assert f"{path}: has no column 'text' for the data" in result.stderr
    assert server.stats["requests"].get("upsert-data", 0) == 0


def test_a_parquet_reject_is_fed_back_as_a_parquet_row(server: LocalServer, tmp_path: Path) -> None:
    table = pa.table({"id": ["a", "b"], "data": ["ok", None], "n": [1, 2]})
    path = write(tmp_path, table)
    rejects = tmp_path / "rejects.jsonl"
    assert run_cli("upsert", path, "--rejects", rejects, server=server).code == 1
    [line] = read_jsonl(rejects)
    assert line["_vupsert"]["format"] == "parquet" and line["n"] == 2
    line["data"] = "fixed"
    rejects.write_bytes(orjson.dumps(line) + b"\n")
    result = run_cli("upsert", rejects, server=server)
    assert result.code == 0, result.stderr
    assert server.records("") == {"a": ("ok", {"n": 1}), "b": ("fixed", {"n": 2})}


def test_parquet_on_stdin_or_named_otherwise(server: LocalServer, tmp_path: Path) -> None:
    path = write(tmp_path, pa.table({"id": ["a"], "data": ["x"]}))
    result = run_cli("upsert", "-f", "parquet", "-", server=server, input=path.read_bytes())
    assert result.code == 2 and "Parquet cannot be read from a pipe" in result.stderr
    disguised = tmp_path / "t.jsonl"
    disguised.write_bytes(path.read_bytes())
    result = run_cli("upsert", disguised, server=server)
    assert result.code == 3 and "is a Parquet file" in result.stderr
    assert "--format parquet" in result.stderr
    result = run_cli("upsert", "-f", "parquet", disguised, "--json", server=server)
    assert result.code == 0 and server.records("") == {"a": ("x", None)}


def test_verify_refuses_parquet_on_stdin_as_upsert_does(
    server: LocalServer, tmp_path: Path
) -> None:
    path = write(tmp_path, pa.table({"id": ["a"], "data": ["x"]}))
    result = run_cli("verify", "-f", "parquet", "-", server=server, input=path.read_bytes())
    assert result.code == 2 and "<stdin>: Parquet cannot be read from a pipe" in result.stderr


def test_a_broken_parquet_file_is_named(server: LocalServer, tmp_path: Path) -> None:
    path = write(tmp_path, pa.table({"id": ["a"], "data": ["x"]}))
    path.write_bytes(path.read_bytes()[:-20])
    result = run_cli("upsert", path, server=server)
    assert result.code == 3 and "cannot be read as Parquet" in result.stderr


def test_without_pyarrow_a_parquet_input_is_a_usage_error(
    server: LocalServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, pa.table({"id": ["a"], "data": ["x"]}))
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    err = io.StringIO()
    environ = {"UPSTASH_VECTOR_REST_URL": server.url, "UPSTASH_VECTOR_REST_TOKEN": server.token}
    environment = Environment(stdin=io.BytesIO(), stdout=io.StringIO(), stderr=err, environ=environ)
    with pytest.raises(SystemExit) as exit:
        main(["upsert", str(path)], environment)
    assert exit.value.code == 2
    assert "reading Parquet needs pyarrow" in err.getvalue()
    assert "pip install 'vupsert[parquet]'" in err.getvalue()
    assert server.stats["requests"].get("upsert-data", 0) == 0


@pytest.mark.lived_in  # what a run imports
def test_importing_vupsert_and_loading_other_inputs_never_import_pyarrow(
    server: LocalServer, tmp_path: Path
) -> None:
    path = tmp_path / "a.jsonl"
    path.write_bytes(b'{"id": "a", "data": "x"}\n')
    others = [tmp_path / "b.json", tmp_path / "c.csv"]
    others[0].write_bytes(b'[{"id": "b", "data": "y"}]')
    others[1].write_bytes(b"id,data\nc,z\n")
    script = (
        "import sys, vupsert\n"
        "assert 'pyarrow' not in sys.modules\n"
        f"vupsert.upsert({str(path)!r})\n"
        "from vupsert.cli.app import main\n"
        "try:\n"
        f"    main(['upsert', {str(path)!r}, {str(others[0])!r}, {str(others[1])!r}, '-q'])\n"
        "except SystemExit as e:\n"
        "    assert e.code == 0, e.code\n"
        "assert 'pyarrow' not in sys.modules, 'pyarrow was imported'\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], env=cli_env(server), capture_output=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr.decode()
    assert server.records("") == {"a": ("x", None), "b": ("y", None), "c": ("z", None)}


def test_kill_9_then_resume_a_parquet_file_by_row(tmp_path: Path) -> None:
    n = 3000
    table = pa.table(
        {
            "id": [f"id-{i}" for i in range(n)],
            "data": [f"record {i} about {i % 13}" if i != 1234 else None for i in range(n)],
            "i": list(range(n)),
        }
    )
    path = write(tmp_path, table, row_group_size=512)
    checkpoint, rejects = tmp_path / "cp.json", tmp_path / "rejects.jsonl"
    args = ["upsert", str(path), "-b", "100", "-c", "4", "--json"]
    args += ["--checkpoint", str(checkpoint), "--rejects", str(rejects)]
    with LocalServer(ServerConfig(port=0, latency_ms=100)) as server:
        # Killed once a checkpoint is saved (when that is depends on the machine's pace)
        # and eight upserts have come in.
        kill_when(
            *args,
            server=server,
            ready=lambda: (
                checkpoint.exists() and server.stats["requests"].get("upsert-data", 0) >= 8
            ),
        )
        assert checkpoint.exists()
        result = run_cli(*args, server=server)
        assert result.code == 1, result.stderr
        expected = {f"id-{i}": (f"record {i} about {i % 13}", {"i": i}) for i in range(n)}
        del expected["id-1234"]
        assert server.records("") == expected
        assert [line["_vupsert"]["source"] for line in read_jsonl(rejects)] == [f"{path}:1235"]
        summary = result.summary
        assert summary["records_skipped"] > 0
        assert summary["records_read"] == n
        assert summary["records_upserted"] + summary["records_skipped"] + 1 == n


def test_rows_stream_a_batch_at_a_time(tmp_path: Path) -> None:
    n = 20000
    path = write(tmp_path, pa.table({"id": [str(i) for i in range(n)], "data": ["x"] * n}))
    rows = iter_rows(str(path), ReadOptions())
    first = next(rows)
    assert isinstance(first, Row) and first.line == 1
    rows.close()  # type: ignore[attr-defined]


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc")
def test_a_single_row_group_of_200k_rows_streams_in_flat_memory(tmp_path: Path) -> None:
    """One row group of 200k rows, read a batch at a time: the peak RSS of a process of its
    own grows by under 80 MB past what its imports take (about 50 MB is measured; the
    whole table as Python dicts would take several times that). The imports are left
    out as they differ by Python build: 70 MB with one, 93 MB with Debian's own.
    ``benchmarks/parquet_memory.py`` measures a million rows."""
    n = 200_000
    table = pa.table(
        {
            "id": pa.array([f"doc-{i}" for i in range(n)]),
            "data": pa.array([f"row {i} " + "some words of text " * 8 for i in range(n)]),
            "info": pa.array([{"n": i, "half": i // 2 or None} for i in range(n)]),
            "tags": pa.array([["a", "b"]] * n),
        }
    )
    path = write(tmp_path, table, row_group_size=n)
    del table
    # VmHWM, not ru_maxrss: a child's ru_maxrss counts this process's size at the fork.
    client = (
        "import re, sys, vupsert, pyarrow.parquet\n"
        "def hwm():\n"
        "    return int(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read())[1])\n"
        "imported = hwm()\n"
        "s = vupsert.upsert(sys.argv[1], dry_run=True)\n"
        "print(s.records_read, s.records_valid, hwm() - imported)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", client, str(path)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    read, valid, grown_kib = map(int, done.stdout.split())
    assert read == valid == n
    assert grown_kib / 1024 < 80, f"peak RSS grew by {grown_kib / 1024:.0f} MB"
