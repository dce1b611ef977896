"""No field silently dropped: one rule for every format, the fields options name looked
for in the input, and what JSON cannot hold rejected, against a real local index."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import vupsert
from vupsert_server import LocalServer

from .conftest import read_jsonl, run_cli, write_jsonl

BOOKS = [
    {"id": "dune", "title": "Dune", "body": "A desert planet.", "year": 1965},
    {"id": "emma", "title": "Emma", "body": "A matchmaker.", "year": 1815, "metadata": {"n": 1}},
]


def write_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list({k: 0 for r in rows for k in r}))
    writer.writeheader()
    for r in rows:
        writer.writerow(
            {k: v if isinstance(v, str) else orjson.dumps(v).decode() for k, v in r.items()}
        )
    path.write_text(out.getvalue(), encoding="utf-8")
    return path


def sent(server: LocalServer) -> int:
    return int(server.stats["requests"].get("upsert-data", 0))


def test_one_record_is_stored_alike_from_every_format(server: LocalServer, tmp_path: Path) -> None:
    rows = [dict(r) for r in BOOKS]
    paths = {
        "jsonl": write_jsonl(tmp_path / "books.jsonl", rows),
        "json": tmp_path / "books.json",
        "csv": write_csv(tmp_path / "books.csv", rows),
        "parquet": tmp_path / "books.parquet",
    }
    paths["json"].write_bytes(orjson.dumps(rows, option=orjson.OPT_INDENT_2))
    table = pa.table(
        {
            "id": [r["id"] for r in rows],
            "title": [r["title"] for r in rows],
            "body": [r["body"] for r in rows],
            "year": [r["year"] for r in rows],
            "metadata": pa.array([None, {"n": 1}]),
        }
    )
    pq.write_table(table, paths["parquet"])
    expected = {
        "dune": ("A desert planet.", {"title": "Dune", "year": 1965}),
        "emma": ("A matchmaker.", {"n": 1, "title": "Emma", "year": 1815}),
    }
    for fmt, path in paths.items():
        result = run_cli("upsert", path, "-n", fmt, "--data-field", "body", server=server)
        assert result.code == 0, result.stderr
        assert server.records(fmt) == expected, fmt
    vupsert.upsert(rows, url=server.url, token=server.token, namespace="dicts", data_field="body")
    assert server.records("dicts") == expected
    # One option chooses fields in every format, from the record or its metadata object.
    for fmt, path in paths.items():
        result = run_cli(
            "upsert", path, "-n", f"{fmt}-picked", "--data-field", "body",
            "--metadata-columns", "year,n", server=server,
        )  # fmt: skip
        assert result.code == 0, result.stderr
        assert server.records(f"{fmt}-picked") == {
            "dune": ("A desert planet.", {"year": 1965}),
            "emma": ("A matchmaker.", {"year": 1815, "n": 1}),
        }, fmt


def test_a_key_both_in_the_metadata_object_and_beside_it_is_rejected(
    server: LocalServer, tmp_path: Path
) -> None:
    path = write_jsonl(
        tmp_path / "a.jsonl",
        [
            {"id": "ok", "data": "x", "metadata": {"lang": "en"}, "year": 1},
            {"id": "both", "data": "y", "metadata": {"year": 1}, "year": 2},
        ],
    )
    rejects = tmp_path / "rejects.jsonl"
    result = run_cli("upsert", path, "--rejects", rejects, server=server)
    assert result.code == 1, result.stderr
    assert server.records("") == {"ok": ("x", {"lang": "en", "year": 1})}
    [line] = read_jsonl(rejects)
    assert line["_vupsert"]["reason"] == (
        '"year" is both a field of the record and a key of its metadata object ("metadata"): '
        "rename one, or choose the metadata with --metadata-columns"
    )


AIRPORTS = (
    "code,name,city,state,notes\n"
    "AUS,Austin-Bergstrom,Austin,TX,\n"
    "SFO,San Francisco International,San Francisco,CA,\n"
    "DAL,Dallas Love Field,Dallas,TX,\n"
)


def test_columns_a_data_template_uses_stay_metadata(server: LocalServer, tmp_path: Path) -> None:
    path = tmp_path / "airports.csv"
    path.write_text(AIRPORTS, encoding="utf-8")
    template = "{name} airport in {city}, {state}"
    args: list[str | Path] = ["upsert", path, "--id-field", "code", "--data-template", template]
    result = run_cli(*args, server=server)
    assert result.code == 0, result.stderr
    stored = server.records("")
    assert stored["AUS"] == (
        "Austin-Bergstrom airport in Austin, TX",
        {"name": "Austin-Bergstrom", "city": "Austin", "state": "TX"},
    )
    # So they can be filtered by: the records of one state.
    result = run_cli("delete", "--filter", "state = 'TX'", "--yes", server=server)
    assert result.code == 0, result.stderr
    assert set(server.records("")) == {"SFO"}


def test_a_long_column_kept_as_metadata_is_rejected_naming_the_option_that_leaves_it_out(
    server: LocalServer, tmp_path: Path
) -> None:
    path = tmp_path / "airports.csv"
    long_notes = "runway " * 8000
    path.write_text(AIRPORTS.replace("TX,\nSFO", f"TX,{long_notes}\nSFO", 1), encoding="utf-8")
    rejects = tmp_path / "rejects.jsonl"
    template = "{name}: {notes}"
    result = run_cli(
        "upsert", path, "--id-field", "code", "--data-template", template, "--rejects", rejects,
        server=server,
    )  # fmt: skip
    assert result.code == 1, result.stderr
    [line] = read_jsonl(rejects)
    assert line["_vupsert"]["reason"] == (
        'metadata is 56,067 bytes; the limit is 49,152; "notes" is 56,002 bytes of it (and in '
        "the data already, through --data-template): leave it out with "
        "--metadata-columns name,city,state"
    )
    assert set(server.records("")) == {"SFO", "DAL"}
    result = run_cli(
        "upsert", path, "--id-field", "code", "--data-template", template,
        "--metadata-columns", "name,city,state", server=server,
    )  # fmt: skip
    assert result.code == 0, result.stderr
    assert server.records("")["AUS"][1] == {
        "name": "Austin-Bergstrom",
        "city": "Austin",
        "state": "TX",
    }


# --- a field that options name and no record has ------------------------------------------

RECORDS_300 = [{"id": f"r{i}", "data": f"text {i}", "metadata": {"i": i}} for i in range(300)]


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--metadata-field", "metdata"], "'metdata' (--metadata-field metdata)"),
        (["--id-field", "ident"], "'ident' (--id-field ident)"),
        (["--data-field", "text"], "'text' (--data-field text)"),
        (["--data-template", "{titel}: {data}"], "'titel' (--data-template '{titel}: {data}')"),
        (["--id-template", "doc-{nr}"], "'nr' (--id-template 'doc-{nr}')"),
    ],
)
def test_a_field_no_record_has_stops_the_run_before_anything_is_sent(
    server: LocalServer, tmp_path: Path, args: list[str], named: str
) -> None:
    path = write_jsonl(tmp_path / "docs.jsonl", RECORDS_300)
    result = run_cli("upsert", path, *args, server=server)
    assert result.code == 2, result.stderr
    assert (
        f"{path}: none of the first 100 records has the field {named}; their fields: "
        "id, data, metadata" in result.stderr
    )
    assert sent(server) == 0 and server.records("") == {}


def test_the_field_check_holds_for_pipes_and_dicts_and_spares_defaults(
    server: LocalServer, tmp_path: Path
) -> None:
    lines = b"".join(orjson.dumps(r) + b"\n" for r in RECORDS_300[:3])
    result = run_cli("upsert", "-", "--metadata-field", "meta", input=lines, server=server)
    assert result.code == 2 and "<stdin>: none of the 3 records has the field 'meta'" in (
        result.stderr
    )
    with pytest.raises(vupsert.UsageError, match="none of the 3 records has the field 'meta'"):
        vupsert.upsert(RECORDS_300[:3], url=server.url, token=server.token, metadata_field="meta")
    assert sent(server) == 0
    # A field some records have is fine, and so is a default that none has.
    mixed = [{"id": "a", "data": "x"}] * 99 + [{"id": "b", "data": "y", "meta": {"k": 1}}]
    result = run_cli(
        "upsert",
        write_jsonl(tmp_path / "m.jsonl", mixed),
        "--metadata-field",
        "meta",
        server=server,
    )
    assert result.code == 0, result.stderr
    result = run_cli(
        "upsert", write_jsonl(tmp_path / "plain.jsonl", [{"id": "c", "data": "z"}]), server=server
    )
    assert result.code == 0, result.stderr
    assert server.records("") == {"a": ("x", None), "b": ("y", {"k": 1}), "c": ("z", None)}


def test_a_metadata_column_no_first_record_has_is_warned_of(
    server: LocalServer, tmp_path: Path
) -> None:
    # A field of later records only, or a misspelt one: the records load, and it is said.
    rows = [{**r, "lang": "en"} if r["id"] == "r150" else r for r in RECORDS_300]
    path = write_jsonl(tmp_path / "docs.jsonl", rows)
    result = run_cli("upsert", path, "--metadata-columns", "i,lang", server=server)
    assert result.code == 0, result.stderr
    assert (
        f"{path}: none of the first 100 records has the field 'lang' (--metadata-columns "
        "i,lang) (their fields: id, data, metadata): check its spelling" in result.stderr
    )
    stored = server.records("")
    assert len(stored) == 300 and stored["r150"][1] == {"i": 150, "lang": "en"}


# --- what JSON cannot hold ----------------------------------------------------------------


def test_nan_and_infinity_from_parquet_are_rejected_with_their_path(
    server: LocalServer, tmp_path: Path
) -> None:
    path = tmp_path / "scores.parquet"
    table = pa.table(
        {
            "id": ["a", "b", "c", "d"],
            "data": ["w", "x", "y", "z"],
            "score": [1.5, math.nan, None, 2.0],
            "trend": pa.array([[1.0], [2.0], [-math.inf], [3.0]]),
        }
    )
    pq.write_table(table, path)
    rejects = tmp_path / "rejects.jsonl"
    result = run_cli("upsert", path, "--rejects", rejects, server=server)
    assert result.code == 1, result.stderr
    assert server.records("") == {
        "a": ("w", {"score": 1.5, "trend": [1.0]}),
        "d": ("z", {"score": 2.0, "trend": [3.0]}),
    }
    reasons = [line["_vupsert"]["reason"] for line in read_jsonl(rejects)]
    assert reasons == [
        'field "score" is nan, a number JSON cannot hold (it would be stored as null)',
        'field "trend[0]" is -inf, a number JSON cannot hold (it would be stored as null)',
    ]


def test_nan_and_a_key_that_is_not_a_string_from_python_are_rejected(
    server: LocalServer, tmp_path: Path
) -> None:
    rejects = tmp_path / "rejects.jsonl"
    records: Any = [
        {"id": "a", "data": "x", 5: "y"},
        {"id": "b", "data": "x", "metadata": {"f": math.nan}},
        {"id": "c", "data": "fine", "metadata": {"f": 0.5}},
        {"id": "d", 5: "no data either"},
    ]
    summary = vupsert.upsert(records, url=server.url, token=server.token, rejects=rejects)
    assert (summary.records_upserted, summary.records_rejected) == (1, 3)
    assert server.records("") == {"c": ("fine", {"f": 0.5})}
    lines = read_jsonl(rejects)
    assert [line["_vupsert"]["reason"] for line in lines] == [
        "the record has a key that is not a string, 5 (int): JSON keys are text",
        'field "metadata.f" is nan, a number JSON cannot hold (it would be stored as null)',
        'missing data (field "data")',
    ]
    assert lines[2] == {"id": "d", "5": "no data either", "_vupsert": lines[2]["_vupsert"]}
