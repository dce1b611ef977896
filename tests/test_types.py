"""Per-column types for CSV/TSV cells (``--type zip=str``, ``types={"zip": "str"}``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import vupsert
from vupsert.config import spelled_as_flags
from vupsert.config.options import build_settings
from vupsert.config.settings import MappingOptions
from vupsert.errors import ColumnError, UsageError
from vupsert.mapping import Mapper
from vupsert.records import Cells, Position, Record, Rejection, Row
from vupsert.run._columns import check_types
from vupsert_server import LocalServer

from .conftest import read_jsonl, run_cli


def mapped(types: dict[str, str], cells: dict[str, str], **options: Any) -> Any:
    settings = build_settings(["a.csv"], dry_run=True, types=types, **options)
    mapper = Mapper(settings.mapping, cells=Cells.TEXT)
    item = mapper.map(Row("a.csv", 2, Position(0, 2), {"id": "1", "data": "t", **cells}))
    if isinstance(item, Record):
        import orjson

        return orjson.loads(item.body).get("metadata")
    assert isinstance(item, Rejection)
    return item.reason


@pytest.mark.parametrize(
    ("kind", "cell", "value"),
    [
        ("str", "007", "007"),
        ("str", "true", "true"),
        ("int", "007", 7),
        ("int", " -12 ", -12),
        ("float", "2", 2.0),
        ("float", "1e3", 1000.0),
        ("bool", "Yes", True),
        ("bool", "0", False),
        ("json", '["a", "b"]', ["a", "b"]),
        ("json", '{"k": null}', {"k": None}),
        ("json", "12", 12),
    ],
)
def test_a_typed_cell_becomes_its_type(kind: str, cell: str, value: Any) -> None:
    assert mapped({"c": kind}, {"c": cell, "other": "007"}) == {"c": value, "other": "007"}


@pytest.mark.parametrize(
    ("kind", "cell", "reason"),
    [
        ("int", "7.5", "'7.5' is not an integer"),
        ("int", "1_000", "'1_000' is not an integer"),
        ("int", "99999999999999999999", "is too large for a 64-bit integer; make the column str"),
        ("float", "nan", "'nan' is not a number"),
        ("float", "1e999", "'1e999' is not a finite number"),
        ("bool", "maybe", "'maybe' is not true/false (nor yes/no, 1/0)"),
        ("json", "[1,", "'[1,' is not valid JSON"),
    ],
)
def test_a_cell_that_does_not_fit_is_rejected_naming_column_and_value(
    kind: str, cell: str, reason: str
) -> None:
    got = mapped({"c": kind}, {"c": cell})
    assert got.startswith('column "c": ') and reason in got
    assert got.endswith(f"(types={{'c': '{kind}'}})")
    with spelled_as_flags():
        assert mapped({"c": kind}, {"c": cell}).endswith(f"(--type c={kind})")


def test_types_override_inference_and_empty_cells_stay_out() -> None:
    assert mapped({"zip": "str"}, {"zip": "01234", "n": "5", "e": ""}, infer_types=False) == {
        "zip": "01234",
        "n": "5",
    }
    assert mapped({"n": "int"}, {"n": "5", "m": "6"}, infer_types=False) == {"n": 5, "m": "6"}
    assert mapped({"zip": "int"}, {"zip": ""}) is None


def test_types_are_spelled_many_ways_and_checked() -> None:
    def parsed(value: Any) -> Any:
        return build_settings(["a.csv"], dry_run=True, types=value).mapping.types

    assert parsed({"zip": str, "n": "Integer", "j": "json"}) == (
        ("zip", "str"),
        ("n", "int"),
        ("j", "json"),
    )
    assert parsed(["zip=text", "ok=boolean"]) == (("zip", "str"), ("ok", "bool"))
    assert parsed("zip=str") == (("zip", "str"),)
    assert parsed({}) == () and parsed(None) == ()
    with pytest.raises(UsageError, match="'date' is not a type"):
        parsed({"d": "date"})
    with pytest.raises(UsageError, match="write COLUMN=TYPE"):
        parsed(["zip"])
    with spelled_as_flags(), pytest.raises(UsageError, match=r"^--type zip=date: 'date'"):
        parsed(["zip=date"])


def test_types_for_inputs_that_are_not_csv_are_refused() -> None:
    with pytest.raises(UsageError, match="applies to CSV and TSV cells") as error:
        check_types(build_settings(["a.jsonl", "b.json"], dry_run=True, types={"zip": "str"}))
    assert error.value.hint is not None and "keep the types they have" in error.value.hint
    check_types(build_settings(["a.jsonl", "b.tsv"], dry_run=True, types={"zip": "str"}))
    check_types(build_settings(["-"], dry_run=True, format="csv", types={"zip": "str"}))


@pytest.mark.parametrize("prepare", [vupsert.prepare, vupsert.prepare_sync, vupsert.verify])
def test_types_that_apply_to_no_input_are_refused_before_the_index_is_asked(
    prepare: Any,
) -> None:
    # Port 9 answers nothing: the refusal comes before any request.
    environ = {"UPSTASH_VECTOR_REST_URL": "http://127.0.0.1:9", "UPSTASH_VECTOR_REST_TOKEN": "t"}
    for records in (["a.jsonl"], [{"id": "a", "data": "x", "zip": "01234"}]):
        with pytest.raises(UsageError, match="applies to CSV and TSV cells"):
            prepare(records, environ=environ, types={"zip": "str"})


@pytest.mark.parametrize(
    ("types", "options", "message"),
    [
        (["id=int"], {}, "--type id=int does nothing: 'id' is the id column: ids are text."),
        (
            ["data=int"],
            {},
            "--type data=int does nothing: 'data' is the data column: the text to embed.",
        ),
        (
            ["metadata=json"],
            {},
            "--type metadata=json does nothing: 'metadata' is the metadata column: its cells "
            "are JSON objects, merged into the metadata.",
        ),
        (
            ["key=str"],
            {"id_field": "key"},
            "--type key=str does nothing: 'key' is the id column: ids are text.",
        ),
        (
            ["zip=str"],
            {"metadata_columns": "city,state"},
            "--type zip=str does nothing: 'zip' is not among --metadata-columns city,state.",
        ),
        (
            ["zip=str", "zip=int"],
            {},
            "--type zip=str and --type zip=int give one column two types.",
        ),
    ],
)
def test_a_type_that_would_do_nothing_or_contradict_another_is_refused(
    types: list[str], options: dict[str, Any], message: str
) -> None:
    with spelled_as_flags(), pytest.raises(UsageError) as error:
        build_settings(["a.csv"], dry_run=True, types=types, **options)
    assert error.value.message == message


def test_a_type_for_a_column_that_is_metadata_is_fine() -> None:
    def parsed(types: list[str], **options: Any) -> Any:
        return build_settings(["a.csv"], dry_run=True, types=types, **options).mapping.types

    # An id column not used for the id, a data column a template replaces, the same
    # type twice: each is metadata, typed once.
    assert parsed(["id=int"], id_from="hash") == (("id", "int"),)
    assert parsed(["id=int"], id_template="r{id}") == (("id", "int"),)
    assert parsed(["data=str", "data=text"], data_template="{data}!") == (("data", "str"),)
    assert parsed(["zip=str"], metadata_columns="zip") == (("zip", "str"),)


def test_a_typed_column_missing_from_the_header_is_a_column_error() -> None:
    mapper = Mapper(MappingOptions(types=(("zpi", "str"),)), cells=Cells.TEXT)
    with pytest.raises(ColumnError, match="has no column 'zpi' for types="):
        mapper.map(Row("a.csv", 2, Position(0, 2), {"id": "1", "data": "t", "zip": "01"}))


# --- end to end -------------------------------------------------------------------------


def test_a_leading_zero_column_typed_str_keeps_its_zeros(
    server: LocalServer, tmp_path: Path
) -> None:
    path = tmp_path / "places.csv"
    path.write_text(
        "id,data,zip,year,tags,phone\n"
        'p1,Boston office,02108,1630,"[""hq"", ""east""]",0044\n'
        "p2,Schenectady,12345,1798,[],0100\n"
        "p3,Austin,00501,1839,[],\n"
        "p4,Nowhere,99999,18x4,[],\n",
        encoding="utf-8",
    )
    rejects = tmp_path / "rejects.jsonl"
    result = run_cli(
        "upsert",
        path,
        "--type",
        "zip=str",
        "--type",
        "year=int",
        "--type",
        "tags=json",
        "--rejects",
        rejects,
        "--json",
        server=server,
    )
    assert result.code == 1, result.stderr
    assert server.records("") == {
        "p1": (
            "Boston office",
            {"zip": "02108", "year": 1630, "tags": ["hq", "east"], "phone": "0044"},
        ),
        "p2": ("Schenectady", {"zip": "12345", "year": 1798, "tags": [], "phone": "0100"}),
        "p3": ("Austin", {"zip": "00501", "year": 1839, "tags": []}),
    }
    [line] = read_jsonl(rejects)
    assert (
        line["_vupsert"]["reason"] == "column \"year\": '18x4' is not an integer (--type year=int)"
    )
    assert line["_vupsert"]["format"] == "csv" and line["zip"] == "99999"
    # Without the type, inference makes one zip code a number and leaves another text.
    result = run_cli("upsert", path, "-n", "untyped", server=server)
    untyped = {id_: meta["zip"] for id_, (_, meta) in server.records("untyped").items() if meta}
    assert untyped == {"p1": "02108", "p2": 12345, "p3": "00501", "p4": 99999}


def test_types_given_for_json_lines_stop_before_anything_is_sent(
    server: LocalServer, tmp_path: Path
) -> None:
    path = tmp_path / "a.jsonl"
    path.write_bytes(b'{"id": "a", "data": "x"}\n')
    result = run_cli("upsert", path, "--type", "zip=str", server=server)
    assert result.code == 2 and "--type zip=str applies to CSV and TSV cells" in result.stderr
    assert server.stats["requests"].get("upsert-data", 0) == 0


@pytest.mark.parametrize(
    ("type_", "message"),
    [
        ("zpi=str", "has no column 'zpi' for --type zpi=str"),
        ("id=int", "error: --type id=int does nothing: 'id' is the id column: ids are text."),
    ],
)
def test_a_type_for_a_column_that_is_no_metadata_stops_before_anything_is_sent(
    server: LocalServer, tmp_path: Path, type_: str, message: str
) -> None:
    path = tmp_path / "a.csv"
    path.write_text("id,data,zip\n1,x,01234\n", encoding="utf-8")
    result = run_cli("upsert", path, "--type", type_, server=server)
    assert result.code == 2 and message in result.stderr
    assert server.stats["requests"].get("upsert-data", 0) == 0


def test_types_from_python(server: LocalServer, tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text("id,data,zip\n1,x,01234\n", encoding="utf-8")
    vupsert.upsert(path, url=server.url, token=server.token, types={"zip": str})
    assert server.records("") == {"1": ("x", {"zip": "01234"})}
