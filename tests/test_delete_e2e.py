"""vupsert delete against the local index: ids read exactly as listed, in every list format,
and a count that stays true when the index's answers get lost."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import vupsert
from vupsert_server import LocalServer

from .conftest import ROOT, run_cli, write_jsonl

LOST_THEN_ANSWERED = {"drop_rate": 0.5, "seed": 28}
"""The first write is applied and its answer lost (the connection closed), the second
answered: with this seed, the local server's dice fall so."""


def load(server: LocalServer, ids: list[str], tmp: Path, namespace: str = "ns") -> None:
    rows = [
        {"id": id_, "data": f"record {id_!r}", "metadata": {"n": i}} for i, id_ in enumerate(ids)
    ]
    path = write_jsonl(tmp / "load.jsonl", rows)
    assert run_cli("upsert", path, "-n", namespace, "-q", server=server).code == 0
    assert set(server.records(namespace)) == set(ids)


def delete(server: LocalServer, *args: str | Path, input: bytes | None = None) -> dict[str, Any]:
    result = run_cli(
        "delete", "-n", "ns", "--json", "--max-backoff", "0.05", *args, server=server, input=input
    )
    assert result.code == 0, result.stderr
    return result.summary


def kw(server: LocalServer) -> dict[str, Any]:
    return {"url": server.url, "token": server.token, "namespace": "ns"}


# --- ids read exactly -------------------------------------------------------------------


def test_plain_ids_are_read_as_written(server: LocalServer, tmp_path: Path) -> None:
    load(server, [" lead", "trail ", "lead", "trail", "a,b", "tab\tin", "x"], tmp_path)
    ids = tmp_path / "ids.txt"
    # A byte order mark, CRLF and LF line ends, blank lines, an id that looks like CSV.
    ids.write_bytes(b"\xef\xbb\xbf lead\r\ntrail \n\n\r\na,b\ntab\tin\nnot-stored")
    summary = delete(server, "--ids", ids)
    assert set(server.records("ns")) == {"lead", "trail", "x"}
    assert (summary["records_deleted"], summary["ids_read"]) == (4, 5)
    assert summary["ids_format"] == "text"


def test_piped_ids_are_read_as_written(server: LocalServer, tmp_path: Path) -> None:
    load(server, [" lead", "trail ", "lead", "trail"], tmp_path)
    summary = delete(server, "--ids", "-", input=b" lead\r\ntrail \n")
    assert set(server.records("ns")) == {"lead", "trail"}
    assert summary["records_deleted"] == 2


@pytest.mark.parametrize(
    "text",
    [
        b'[{"id": "a", "data": "x"}, {"id": "b"}, "c", 4]',
        b'[\n  {\n    "id": "a"\n  },\n  {\n    "id": "b"\n  },\n  "c",\n  4\n]\n',
        b'\xef\xbb\xbf\n  ["a", "b", "c", 4]',
    ],
    ids=["compact", "pretty", "strings"],
)
@pytest.mark.parametrize("name", ["ids.json", "ids.txt"])
def test_a_json_array_is_read_as_an_array(
    server: LocalServer, tmp_path: Path, text: bytes, name: str
) -> None:
    load(server, ["a", "b", "c", "4", "[", "},", "keep"], tmp_path)
    ids = tmp_path / name
    ids.write_bytes(text)
    summary = delete(server, "--ids", ids)
    assert set(server.records("ns")) == {"[", "},", "keep"}
    assert (summary["records_deleted"], summary["ids_read"], summary["ids_format"]) == (
        4,
        4,
        "json",
    )


def test_an_id_that_looks_like_a_json_array_is_text(server: LocalServer, tmp_path: Path) -> None:
    load(server, ["[draft] notes", "[", "keep"], tmp_path)
    ids = tmp_path / "ids.txt"
    ids.write_text("[draft] notes\n")
    assert delete(server, "--ids", ids)["records_deleted"] == 1
    assert set(server.records("ns")) == {"[", "keep"}


def test_format_text_reads_a_first_line_that_looks_like_json(
    server: LocalServer, tmp_path: Path
) -> None:
    load(server, ['{"id": "x"}', "x", "keep"], tmp_path)
    ids = tmp_path / "ids.txt"
    ids.write_text('{"id": "x"}\n')
    sniffed = delete(server, "--ids", ids, "--dry-run")
    assert sniffed["ids_format"] == "jsonl" and sniffed["records_deleted"] == 1
    summary = delete(server, "--ids", ids, "--format", "text")
    assert summary["records_deleted"] == 1 and set(server.records("ns")) == {"x", "keep"}


def test_lines_without_an_id_are_named(server: LocalServer, tmp_path: Path) -> None:
    load(server, ["a", "b"], tmp_path)
    ids = tmp_path / "ids.jsonl"
    ids.write_bytes(b'{"id": "a"}\n{"name": "b"}\n{"id": ""}\nnot json\n')
    result = run_cli("delete", "-n", "ns", "--ids", ids, "--json", server=server)
    assert result.code == 1 and result.summary["lines_without_id"] == 3
    assert f'{ids}:2: no "id" field' in result.stderr
    assert "--format text reads each line as an id" in result.stderr
    assert set(server.records("ns")) == {"b"}


def test_tables_give_their_id_column(server: LocalServer, tmp_path: Path) -> None:
    load(server, ["a", " b", "7", "c", "keep"], tmp_path)
    (tmp_path / "ids.tsv").write_text("key\tother\na\tx\n b\ty\n")
    assert (
        vupsert.delete(ids=tmp_path / "ids.tsv", id_field="key", **kw(server)).records_deleted == 2
    )
    pq.write_table(pa.table({"id": [7], "n": [1]}), tmp_path / "ids.parquet")
    summary = vupsert.delete(ids=tmp_path / "ids.parquet", **kw(server))
    assert (summary.records_deleted, summary.ids_format) == (1, "parquet")
    assert set(server.records("ns")) == {"c", "keep"}


def test_ids_from_python_are_taken_as_given(server: LocalServer, tmp_path: Path) -> None:
    load(server, [" lead", "trail ", "lead", "trail", "a", "b", "c", "d", "e", "7"], tmp_path)
    assert (
        vupsert.delete(ids=[" lead", "trail ", "nope", " lead"], **kw(server)).records_deleted == 2
    )
    assert vupsert.delete(ids=io.BytesIO(b"a\r\n[b]\n"), **kw(server)).records_deleted == 1
    assert vupsert.delete(ids=io.StringIO("b\nc\n"), **kw(server)).records_deleted == 2
    summary = vupsert.delete(ids=[{"id": "d"}, {"key": "e"}, 7, None], **kw(server))
    assert (summary.records_deleted, summary.lines_without_id) == (2, 2)
    assert summary.first_without_id == '<ids>:2: no "id" field'
    array = tmp_path / "more.json"
    array.write_bytes(orjson.dumps([{"id": "e"}]))
    assert vupsert.delete(ids=array, **kw(server)).records_deleted == 1
    assert set(server.records("ns")) == {"lead", "trail"}
    with pytest.raises(vupsert.UsageError):
        vupsert.delete(ids=b"a\n", **kw(server))
    with pytest.raises(vupsert.UsageError, match="format"):
        vupsert.delete(ids=["a"], format="xml", **kw(server))  # type: ignore[arg-type]


def test_ids_before_a_break_in_the_list_are_deleted(server: LocalServer, tmp_path: Path) -> None:
    load(server, ["a", "b", "c"], tmp_path)
    with pytest.raises(vupsert.InputError, match="element 2 is followed by") as stopped:
        vupsert.delete(ids=io.BytesIO(b'["a", "b" "c"]'), **kw(server))
    assert stopped.value.summary.records_deleted == 2
    assert set(server.records("ns")) == {"c"}


# --- counts -----------------------------------------------------------------------------


def test_a_retried_delete_still_counts_what_it_deleted(server: LocalServer, tmp_path: Path) -> None:
    load(server, [f"d{i}" for i in range(1600)], tmp_path)
    ids = tmp_path / "ids.txt"
    ids.write_text("".join(f"d{i}\n" for i in range(1500)) + "missing\n")
    server.set_faults(**LOST_THEN_ANSWERED)
    summary = delete(server, "--ids", ids)
    assert summary["records_deleted"] == 1500 and len(server.records("ns")) == 100
    assert summary["retries"] >= 1 and not summary["count_uncertain"]


def test_a_dry_run_counts_each_id_once(server: LocalServer, tmp_path: Path) -> None:
    load(server, [f"d{i}" for i in range(1100)], tmp_path)
    ids = tmp_path / "ids.txt"
    # Repeated within a batch, and a batch apart.
    ids.write_text("d1\nd1\nd1\nd2\nd2\nnope\n" + "".join(f"d{i}\n" for i in range(1100)) + "d2\n")
    dry = delete(server, "--ids", ids, "--dry-run")
    assert dry["records_deleted"] == 1100 and len(server.records("ns")) == 1100
    assert delete(server, "--ids", ids)["records_deleted"] == 1100
    again = delete(server, "--ids", ids)
    # Ids the index no longer holds: a fetch for each 1,000, and no delete.
    assert (again["records_deleted"], again["requests"]) == (0, 2)


def test_the_readme_names_every_delete_and_export_key() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("A backup, a migration") : readme.index("<!-- test: delete -->")]
    export_part, delete_part = section.split("`vupsert delete` removes")
    for summary, part in (
        (vupsert.ExportSummary(), export_part),
        (vupsert.DeleteSummary(), delete_part),
    ):
        named = set(re.findall(r"`(\w+)`", part.split("`--json`")[1]))
        assert named == set(summary.as_dict()), type(summary).__name__


@pytest.mark.parametrize("how", [("--prefix", "d1"), ("--filter", "n >= 10 AND n < 20")])
def test_a_lost_answer_makes_a_prefix_or_filter_count_uncertain(
    server: LocalServer, tmp_path: Path, how: tuple[str, str]
) -> None:
    load(server, [f"d{i}" for i in range(30)], tmp_path)
    server.set_faults(**LOST_THEN_ANSWERED)
    result = run_cli(
        "delete", "-n", "ns", *how, "-y", "--json", "--max-backoff", "0.05", server=server
    )
    assert result.code == 0, result.stderr
    assert result.summary["count_uncertain"] is True
    assert "deleted an unknown number of records (a delete's answer was lost" in result.stderr
    matching = 11 if how[0] == "--prefix" else 10
    assert len(server.records("ns")) == 30 - matching
    server.set_faults(drop_rate=0)
    load(server, [f"d{i}" for i in range(30)], tmp_path)
    clean = delete(server, *how, "-y")
    assert (clean["records_deleted"], clean["count_uncertain"]) == (matching, False)


def test_a_delete_that_gives_up_prints_its_summary(server: LocalServer, tmp_path: Path) -> None:
    load(server, [f"d{i}" for i in range(1500)], tmp_path)
    ids = tmp_path / "ids.txt"
    ids.write_text("".join(f"d{i}\n" for i in range(1500)))
    server.set_faults(drop_rate=1.0, seed=5)
    result = run_cli(
        "delete",
        "-n",
        "ns",
        "--ids",
        ids,
        "--json",
        "--retries",
        "2",
        "--max-backoff",
        "0",
        server=server,
    )
    assert result.code == 3 and "delete gave up after 3 attempts" in result.stderr
    summary = result.summary
    assert summary["error"].startswith("delete gave up") and summary["count_uncertain"] is True
    assert summary["records_deleted"] == 0
    assert "vupsert delete: deleted an unknown number of records" in result.stderr
