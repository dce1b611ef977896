from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from vupsert.config import spelled_as_flags
from vupsert.config.settings import MappingOptions, ReadOptions
from vupsert.errors import ColumnError, ConfigError
from vupsert.inputs import iter_rows
from vupsert.mapping import Mapper
from vupsert.mapping._cells import infer_value
from vupsert.mapping._mapper import hash_id, shard_of
from vupsert.mapping._templates import Template
from vupsert.records import (
    MAX_DATA_BYTES,
    MAX_METADATA_BYTES,
    REJECT_KEY,
    Cells,
    Position,
    Record,
    Rejection,
    Row,
    Skip,
)
from vupsert.run._rejects import reject_line


def map_rows(rows: Iterable[Row | Rejection], mapper: Mapper) -> Iterator[Record | Rejection]:
    """What the mapper makes of a reader's output, another shard's rows left out."""
    items = mapper.records("in.jsonl", rows)
    return (item for item in items if isinstance(item, (Record, Rejection)))


def row(value: dict[str, Any], line: int = 3, source: str = "in.jsonl") -> Row:
    return Row(source, line, Position(100, line), value)


def mapped(
    value: dict[str, Any], options: MappingOptions | None = None, *, tabular: bool = False
) -> Record | Rejection | None:
    cells = Cells.TEXT if tabular else Cells.JSON
    return Mapper(options or MappingOptions(), cells=cells).map(row(value))


def record(
    value: dict[str, Any], options: MappingOptions | None = None, *, tabular: bool = False
) -> dict[str, Any]:
    """The body of the record a row maps to, parsed back."""
    out = mapped(value, options, tabular=tabular)
    assert isinstance(out, Record), out
    body: dict[str, Any] = orjson.loads(out.body)
    assert out.id == body["id"]
    return body


def rejection(
    value: dict[str, Any], options: MappingOptions | None = None, *, tabular: bool = False
) -> Rejection:
    out = mapped(value, options, tabular=tabular)
    assert isinstance(out, Rejection), out
    return out


def body_of(rej: Rejection) -> Any:
    assert rej.body is not None
    return orjson.loads(rej.body)


# --- JSON Lines -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"id": "a", "data": "x"}, {"id": "a", "data": "x"}),
        ({"id": "a", "data": "x", "metadata": None}, {"id": "a", "data": "x"}),
        (
            {"id": "a", "data": "x", "metadata": {"k": [1, {"n": None}]}, "other": 1},
            {"id": "a", "data": "x", "metadata": {"k": [1, {"n": None}], "other": 1}},
        ),
        (
            {"id": "a", "title": "Dune", "data": "x", "year": 1965, "none": None},
            {"id": "a", "data": "x", "metadata": {"title": "Dune", "year": 1965, "none": None}},
        ),
        ({"id": "a", "data": "x", "metadata": {}}, {"id": "a", "data": "x", "metadata": {}}),
        ({"id": 42, "data": "x"}, {"id": "42", "data": "x"}),
        ({"id": -7, "data": "x"}, {"id": "-7", "data": "x"}),
        ({"id": 2**64 - 1, "data": "x"}, {"id": str(2**64 - 1), "data": "x"}),
        ({"id": 1.5, "data": "x"}, {"id": "1.5", "data": "x"}),
        ({"id": " a ", "data": " x "}, {"id": " a ", "data": " x "}),
    ],
)
def test_jsonl_records(value: dict[str, Any], expected: dict[str, Any]) -> None:
    assert record(value) == expected


def test_body_is_compact_json_in_id_data_metadata_order() -> None:
    out = mapped({"metadata": {"b": 1, "a": "é"}, "data": "x\ny", "id": "a"})
    assert isinstance(out, Record)
    assert out.body == b'{"id":"a","data":"x\\ny","metadata":{"b":1,"a":"\xc3\xa9"}}'
    assert (out.source, out.line, out.end, out.where) == (
        "in.jsonl",
        3,
        Position(100, 3),
        "in.jsonl:3",
    )


@pytest.mark.parametrize(
    ("value", "reason", "body"),
    [
        ({"data": "x"}, 'missing id (field "id")', {"data": "x"}),
        ({"id": "", "data": "x"}, 'empty id (field "id")', {"id": "", "data": "x"}),
        (
            {"id": None, "data": "x", "metadata": {"m": 1}},
            'id is not a string or number (got null, field "id")',
            {"id": None, "data": "x", "metadata": {"m": 1}},
        ),
        (
            {"id": True, "data": "x"},
            'id is not a string or number (got boolean, field "id")',
            {"id": True, "data": "x"},
        ),
        (
            {"id": [1], "data": "x"},
            'id is not a string or number (got array, field "id")',
            {"id": [1], "data": "x"},
        ),
        (
            {"id": {"a": 1}, "data": "x"},
            'id is not a string or number (got object, field "id")',
            {"id": {"a": 1}, "data": "x"},
        ),
        (
            {"id": 2.0**64, "data": "x"},
            'id 1.8446744073709552e+19 is too large a number to keep exactly (field "id"); '
            "write it as a string",
            {"id": 2.0**64, "data": "x"},
        ),
        ({"id": "a"}, 'missing data (field "data")', {"id": "a"}),
        ({"id": "a", "data": ""}, 'empty data (field "data")', {"id": "a", "data": ""}),
        (
            {"id": "a", "data": 3},
            'data is not a string (got number, field "data")',
            {"id": "a", "data": 3},
        ),
        (
            {"id": "a", "data": None},
            'data is not a string (got null, field "data")',
            {"id": "a", "data": None},
        ),
        (
            {"id": "a", "data": ["x"]},
            'data is not a string (got array, field "data")',
            {"id": "a", "data": ["x"]},
        ),
        (
            {"id": "a", "data": "x", "metadata": [1]},
            'metadata is not an object (got array, field "metadata")',
            {"id": "a", "data": "x", "metadata": [1]},
        ),
        (
            {"id": "a", "data": "x", "metadata": "k=v"},
            'metadata is not an object (got string, field "metadata")',
            {"id": "a", "data": "x", "metadata": "k=v"},
        ),
        (
            {"data": 5, "metadata": 6},
            'missing id (field "id")',
            {"data": 5, "metadata": 6},
        ),
    ],
)
def test_jsonl_rejections(value: dict[str, Any], reason: str, body: dict[str, Any]) -> None:
    rej = rejection(value)
    assert rej.reason == reason
    # The rejects file keeps what there was, in the shape the record would have had.
    assert body_of(rej) == body
    assert (rej.source, rej.line, rej.end, rej.raw) == ("in.jsonl", 3, Position(100, 3), None)
    assert rej.id == (body["id"] if isinstance(body.get("id"), str) and body["id"] else None)


def test_custom_and_dotted_fields() -> None:
    options = MappingOptions(id_field="doc.id", data_field="doc.body", metadata_field="meta")
    value = {"doc": {"id": 7, "body": "text"}, "meta": {"k": "v"}}
    assert record(value, options) == {"id": "7", "data": "text", "metadata": {"k": "v"}}
    rej = rejection({"doc": {"id": 7}}, options)
    assert rej.reason == 'missing data (field "doc.body")'
    assert rejection({"doc": "flat"}, options).reason == 'missing id (field "doc.id")'


def test_a_key_with_dots_is_found_before_the_path() -> None:
    options = MappingOptions(id_field="a.b")
    assert record({"a.b": "literal", "a": {"b": "nested"}, "data": "x"}, options)["id"] == (
        "literal"
    )
    assert record({"a": {"b": "nested"}, "data": "x"}, options)["id"] == "nested"


def test_metadata_columns_pick_fields_in_jsonl() -> None:
    options = MappingOptions(metadata_columns=("title", "info.year", "absent"))
    value = {"id": "a", "data": "x", "title": "T", "info": {"year": 1999}, "metadata": {"x": 1}}
    assert record(value, options) == {
        "id": "a",
        "data": "x",
        "metadata": {"title": "T", "info.year": 1999},
    }
    assert "metadata" not in record({"id": "a", "data": "x"}, options)


def test_size_limits() -> None:
    at_limit = "é" * (MAX_DATA_BYTES // 2)
    assert record({"id": "a", "data": at_limit})["data"] == at_limit
    rej = rejection({"id": "a", "data": at_limit + "x"})
    assert rej.reason == "data is 1,048,577 bytes; the limit is 1,048,576"
    assert body_of(rej)["data"] == at_limit + "x"

    big = {"k": "v" * (MAX_METADATA_BYTES - 8)}  # {"k":"..."} is 8 bytes of syntax
    assert record({"id": "a", "data": "x", "metadata": big})["metadata"] == big
    big["k"] += "v" * 3000
    rej = rejection({"id": "a", "data": "x", "metadata": big})
    assert rej.reason == 'metadata is 52,152 bytes; the limit is 49,152; "k" is 52,146 bytes of it'


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ({"id": "a", "data": "x\ud800"}, "data has invalid text (a lone surrogate at character 2)"),
        ({"id": "a\udcff", "data": "x"}, "id has invalid text (a lone surrogate at character 2)"),
        (
            {"id": "a", "data": "x", "metadata": {"k": ["ok", "\udc80"]}},
            "metadata has invalid text (a lone surrogate at key 'k', item 1, character 1)",
        ),
    ],
)
def test_lone_surrogates_are_rejected(value: dict[str, Any], reason: str) -> None:
    rej = rejection(value)
    assert rej.reason == reason
    assert rej.body is not None  # written with the bad character escaped, not dropped


# --- templates ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "value", "data"),
    [
        ("{title}\\n\\n{body}", {"title": "T", "body": "B"}, "T\n\nB"),
        ("{a}\\t{b}", {"a": 1, "b": 2.5}, "1\t2.5"),
        ("{{{a}}} \\\\n", {"a": True}, "{true} \\n"),
        ("{doc.title}: {tags}", {"doc": {"title": "T"}, "tags": ["x", 1]}, 'T: ["x",1]'),
        ("{dc:title}", {"dc:title": "colon"}, "colon"),
        ("{a}{b}", {"a": "", "b": "x"}, "x"),
    ],
)
def test_data_template(template: str, value: dict[str, Any], data: str) -> None:
    options = MappingOptions(data_template=template)
    assert record({"id": "a", **value}, options)["data"] == data


def test_data_template_rejections() -> None:
    options = MappingOptions(data_template="{title}\\n{body}")
    rej = rejection({"id": "a", "title": "T", "metadata": {"m": 1}}, options)
    assert rej.reason == 'missing field "body" for the data template'
    assert body_of(rej) == {"id": "a", "title": "T", "metadata": {"m": 1}}  # the row as read
    rej = rejection({"id": "a", "title": "T", "body": None}, options)
    assert rej.reason == 'field "body" for the data template is null'
    rej = rejection({"id": "a", "title": "", "body": ""}, options)
    assert rej.reason == "empty data (every field of '{title}\\\\n{body}' is empty)"


def test_id_template() -> None:
    options = MappingOptions(id_template="doc-{n}-{part}")
    assert record({"n": 7, "part": "b", "data": "x"}, options)["id"] == "doc-7-b"
    rej = rejection({"n": 7, "data": "x"}, options)
    assert rej.reason == 'missing field "part" for the id template'
    assert rej.id is None
    rej = rejection({"n": "", "part": "", "data": "x"}, options)
    assert rej.reason == "empty id (every field of 'doc-{n}-{part}' is empty)"


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ("{title", "the brace at position 1 is never closed"),
        ("{a{b}}", "the brace at position 1 is never closed"),
        ("a}", "the brace at position 2 closes nothing"),
        ("{a}}", "the brace at position 4 closes nothing"),
        ("x {} y", "empty {} at position 3"),
        ("no fields {{here}}", "it names no field"),
    ],
)
def test_bad_templates(template: str, problem: str) -> None:
    with pytest.raises(ConfigError) as e:
        Mapper(MappingOptions(data_template=template))
    assert str(e.value).startswith(f"data_template={template!r}: {problem}")
    assert Template("{ok}").fields == ("ok",)


@pytest.mark.parametrize(
    "options",
    [
        MappingOptions(id_template="{a}", id_from="hash"),
        MappingOptions(id_field=""),
        MappingOptions(shard=(3, 3)),
        MappingOptions(shard=(0, 0)),
        MappingOptions(shard=(-1, 2)),
    ],
)
def test_bad_options(options: MappingOptions) -> None:
    with pytest.raises(ConfigError):
        Mapper(options)


# --- id_from --------------------------------------------------------------------------


def test_id_from_hash() -> None:
    options = MappingOptions(id_from="hash")
    a = record({"data": "hello", "metadata": {"b": 1, "a": [1, 2]}}, options)
    b = record({"data": "hello", "metadata": {"a": [1, 2], "b": 1}}, options)
    assert a["id"] == b["id"] == hash_id("hello", {"a": [1, 2], "b": 1})
    # Pinned: a rerun with a later vupsert must produce the same ids.
    assert a["id"] == "d68fb708382fe84728b327efc9e1d623"
    # An id field not used as the id is metadata, like any other field.
    c = record({"id": "ignored", "data": "hello", "metadata": {"a": [1, 2], "b": 1}}, options)
    assert c["metadata"] == {"a": [1, 2], "b": 1, "id": "ignored"} and c["id"] != a["id"]
    assert hash_id("hello", None) == "7cf47b37384ee05ae351fe2f70c1c416"
    assert record({"data": "hello"}, options)["id"] != record({"data": "hellO"}, options)["id"]


def test_id_from_hash_without_data_is_rejected_without_id() -> None:
    rej = rejection({"data": ""}, MappingOptions(id_from="hash"))
    assert (rej.reason, rej.id) == ('empty data (field "data")', None)


def test_id_from_line() -> None:
    options = MappingOptions(id_from="line")
    mapper = Mapper(options)
    out = mapper.map(Row("data/a.jsonl", 12, Position(0, 12), {"data": "x"}))
    assert isinstance(out, Record) and out.id == "data/a.jsonl:12"
    out = mapper.map(Row("<stdin>", 3, Position(0, 3), {"data": "x"}))
    assert isinstance(out, Record) and out.id == "<stdin>:3"


# --- CSV/TSV --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cell", "value"),
    [
        ("0", 0),
        ("42", 42),
        ("-42", -42),
        ("9223372036854775807", 2**63 - 1),
        ("-9223372036854775808", -(2**63)),
        ("9223372036854775808", "9223372036854775808"),
        ("007", "007"),
        ("-0", 0),
        ("+5", "+5"),
        ("1_000", "1_000"),
        (" 5", " 5"),
        ("1.5", 1.5),
        ("-0.25", -0.25),
        ("1e3", 1000.0),
        ("2.5E-2", 0.025),
        ("1e999", "1e999"),
        (".5", ".5"),
        ("1.", "1."),
        ("00.5", "00.5"),
        ("nan", "nan"),
        ("inf", "inf"),
        ("Infinity", "Infinity"),
        ("true", True),
        ("FALSE", False),
        ("True", True),
        ("t", "t"),
        ("yes", "yes"),
        ("null", "null"),
        ("text", "text"),
        ("-", "-"),
    ],
)
def test_infer_value(cell: str, value: Any) -> None:
    inferred = infer_value(cell)
    assert inferred == value
    assert type(inferred) is type(value)


CSV_ROW = {"id": "1", "data": "text", "n": "7", "f": "0.5", "b": "true", "z": "007", "e": ""}


def test_csv_other_columns_become_typed_metadata() -> None:
    assert record(CSV_ROW, tabular=True) == {
        "id": "1",
        "data": "text",
        "metadata": {"n": 7, "f": 0.5, "b": True, "z": "007"},
    }


def test_csv_without_type_inference() -> None:
    options = MappingOptions(infer_types=False)
    assert record(CSV_ROW, options, tabular=True)["metadata"] == {
        "n": "7",
        "f": "0.5",
        "b": "true",
        "z": "007",
    }


def test_csv_ids_and_data_are_never_inferred() -> None:
    body = record({"id": "007", "data": "1.5"}, tabular=True)
    assert body == {"id": "007", "data": "1.5"}


def test_csv_metadata_columns() -> None:
    options = MappingOptions(metadata_columns=("n", "e", "id"))
    assert record(CSV_ROW, options, tabular=True)["metadata"] == {"n": 7, "id": 1}
    options = MappingOptions(metadata_columns=("e",))
    assert "metadata" not in record(CSV_ROW, options, tabular=True)


def test_csv_columns_used_by_templates_are_metadata_too() -> None:
    options = MappingOptions(data_template="{n}: {data}", id_template="r{id}")
    assert record(CSV_ROW, options, tabular=True) == {
        "id": "r1",
        "data": "7: text",
        "metadata": {"id": 1, "data": "text", "n": 7, "f": 0.5, "b": True, "z": "007"},
    }


def test_csv_id_from_hash_keeps_the_id_column_as_metadata() -> None:
    body = record({"id": "1", "data": "x"}, MappingOptions(id_from="hash"), tabular=True)
    assert body["metadata"] == {"id": 1}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (MappingOptions(id_field="key"), "has no column 'key' for the id"),
        (MappingOptions(data_field="text"), "has no column 'text' for the data"),
        (MappingOptions(metadata_columns=("nope",)), "has no column 'nope' for the metadata"),
        (MappingOptions(data_template="{x}"), "has no column 'x' for the data template"),
        (MappingOptions(id_template="{x}"), "has no column 'x' for the id template"),
    ],
)
def test_csv_column_not_in_header_is_a_usage_error(options: MappingOptions, message: str) -> None:
    with pytest.raises(ColumnError, match=message) as e:
        mapped(CSV_ROW, options, tabular=True)
    assert "in.jsonl" in str(e.value)
    assert "id, data, n, f, b, z, e" in str(e.value)


def test_csv_empty_cells() -> None:
    assert rejection({"id": "", "data": "x"}, tabular=True).reason == 'empty id (column "id")'
    assert rejection({"id": "1", "data": ""}, tabular=True).reason == 'empty data (column "data")'


def test_the_same_options_map_each_format_its_way() -> None:
    out = Mapper(MappingOptions(), cells=Cells.TEXT).map(row({"id": "1", "data": "x", "n": "2"}))
    assert isinstance(out, Record)
    assert orjson.loads(out.body)["metadata"] == {"n": 2}
    out = Mapper(MappingOptions(), cells=Cells.JSON).map(row({"id": "1", "data": "x", "n": "2"}))
    assert isinstance(out, Record)
    assert out.body == b'{"id":"1","data":"x","metadata":{"n":"2"}}'


def test_csv_file_end_to_end(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_bytes(b'id,data,year\n1,"two\nlines",1999\n2,short\n3,x,\n')
    mapper = Mapper(MappingOptions(), cells=Cells.TEXT)
    out = list(map_rows(iter_rows(str(path), ReadOptions()), mapper))
    assert [(o.line, o.reason if isinstance(o, Rejection) else o.body) for o in out] == [
        (2, b'{"id":"1","data":"two\\nlines","metadata":{"year":1999}}'),
        (4, "expected 3 fields, got 2"),
        (5, b'{"id":"3","data":"x"}'),
    ]


# --- one rule for every format -------------------------------------------------------

FORMATS = ("json", "csv", "parquet")


def in_format(fmt: str, value: dict[str, Any], options: MappingOptions) -> Record | Rejection:
    """What a row maps to read as JSON, as a CSV row (its cells text, its metadata
    object as JSON) or as a Parquet row (its values typed)."""
    cells = {"csv": Cells.TEXT, "parquet": Cells.TYPED}.get(fmt, Cells.JSON)
    if fmt == "csv":
        value = {k: v if isinstance(v, str) else orjson.dumps(v).decode() for k, v in value.items()}
    out = Mapper(options, cells=cells).map(row(value))
    assert isinstance(out, (Record, Rejection))
    return out


def metadata_in(fmt: str, value: dict[str, Any], options: MappingOptions | None = None) -> Any:
    out = in_format(fmt, value, options or MappingOptions())
    assert isinstance(out, Record), out
    return orjson.loads(out.body).get("metadata")


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_field_but_the_id_and_the_data_is_metadata(fmt: str) -> None:
    value = {"id": "a", "title": "Dune", "body": "A desert planet.", "year": 1965}
    options = MappingOptions(data_field="body")
    assert metadata_in(fmt, value, options) == {"title": "Dune", "year": 1965}


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_metadata_object_and_other_fields_are_merged(fmt: str) -> None:
    value = {"id": "a", "data": "x", "metadata": {"lang": "en"}, "year": 1965}
    assert metadata_in(fmt, value) == {"lang": "en", "year": 1965}
    clash = {"id": "a", "data": "x", "metadata": {"year": 1}, "year": 2}
    out = in_format(fmt, clash, MappingOptions())
    assert isinstance(out, Rejection)
    assert out.reason.startswith(
        '"year" is both a field of the record and a key of its metadata object ("metadata")'
    )
    # Choosing the metadata settles it.
    assert metadata_in(fmt, clash, MappingOptions(metadata_columns=("metadata",))) == {"year": 1}


@pytest.mark.parametrize("fmt", FORMATS)
def test_metadata_columns_choose_fields_in_every_format(fmt: str) -> None:
    value = {"id": "a", "data": "x", "metadata": {"lang": "en", "n": 3}, "year": 1965, "t": "T"}
    picked = MappingOptions(metadata_columns=("year", "lang", "absent"))
    assert metadata_in(fmt, value, picked) == {"year": 1965, "lang": "en"}
    whole = MappingOptions(metadata_columns=("metadata", "t"))
    assert metadata_in(fmt, value, whole) == {"lang": "en", "n": 3, "t": "T"}


def test_the_fields_of_a_template_are_metadata_too() -> None:
    options = MappingOptions(data_template="{name} airport in {city}, {state}")
    value = {"id": "AUS", "name": "Austin-Bergstrom", "city": "Austin", "state": "TX"}
    for fmt in FORMATS:
        assert metadata_in(fmt, value, options) == {
            "name": "Austin-Bergstrom",
            "city": "Austin",
            "state": "TX",
        }


def test_a_field_the_id_or_the_data_is_taken_from_keeps_the_rest() -> None:
    options = MappingOptions(id_field="doc.id", data_field="doc.body", metadata_field="m.x")
    value = {"doc": {"id": 7, "body": "text", "title": "T"}, "m": {"x": {"k": 1}, "y": 2}}
    assert record(value, options) == {
        "id": "7",
        "data": "text",
        "metadata": {"k": 1, "doc": {"title": "T"}, "m": {"y": 2}},
    }
    # A field left empty by it is left out; a key with the dots was the field itself.
    assert record({"doc": {"id": 1, "body": "b"}}, options) == {"id": "1", "data": "b"}
    literal: dict[str, Any] = {"doc.id": "x", "doc.body": "b", "doc": {"id": 2, "body": "kept"}}
    assert record(literal, options)["metadata"] == {"doc": {"id": 2, "body": "kept"}}


def test_a_csv_metadata_column_holds_a_json_object() -> None:
    value = {"id": "1", "data": "x", "metadata": '{"lang": "en"}', "year": "1965"}
    assert record(value, tabular=True)["metadata"] == {"lang": "en", "year": 1965}
    assert record({**value, "metadata": ""}, tabular=True)["metadata"] == {"year": 1965}
    rej = rejection({**value, "metadata": "lang=en"}, tabular=True)
    assert rej.reason == (
        "column \"metadata\" holds no JSON object ('lang=en'): the metadata column holds "
        "each row's metadata as a JSON object"
    )


def test_hash_ids_of_flat_records_change_and_metadata_columns_keep_the_old_ones() -> None:
    flat = {"data": "hello", "ts": "2025-06-01T10:00:00Z", "metadata": {"a": 1}}
    new = record(flat, MappingOptions(id_from="hash"))
    assert new["metadata"] == {"a": 1, "ts": "2025-06-01T10:00:00Z"}
    old = MappingOptions(id_from="hash", metadata_columns=("metadata",))
    # Pinned: the ids vupsert gave these records before the timestamp was metadata.
    assert record(flat, old)["id"] == "c208a382c35d2ea3cd8f7457051ccae4" != new["id"]
    bare = {"data": "hello", "ts": "2025-06-01T10:00:00Z"}
    assert record(bare, old) == {"id": "7cf47b37384ee05ae351fe2f70c1c416", "data": "hello"}
    assert record({**bare, "metadata": {}}, old)["metadata"] == {}


@pytest.mark.parametrize(
    ("value", "path", "number"),
    [
        ({"id": "a", "data": "x", "score": float("nan")}, "score", "nan"),
        ({"id": "a", "data": "x", "metadata": {"s": [1.0, float("inf")]}}, "metadata.s[1]", "inf"),
        ({"id": "a", "data": "x", "doc": {"r": -float("inf")}}, "doc.r", "-inf"),
    ],
)
def test_nan_and_infinity_from_python_or_parquet_are_rejected(
    value: dict[str, Any], path: str, number: str
) -> None:
    expected = f'field "{path}" is {number}, a number JSON cannot hold (it would be stored as null)'
    for fmt in ("json", "parquet"):
        out = in_format(fmt, value, MappingOptions())
        assert isinstance(out, Rejection) and out.reason == expected, out
    # The hot path of records handed over as dicts rejects them too.
    (hot,) = Mapper(MappingOptions()).records("<records>", [(1, 1, value, b"")])
    assert isinstance(hot, Rejection) and hot.reason == expected
    # A null is a null.
    assert record({"id": "a", "data": "x", "n": None}) == {
        "id": "a",
        "data": "x",
        "metadata": {"n": None},
    }


def test_nan_in_an_id_or_a_template_is_rejected() -> None:
    assert rejection({"id": float("nan"), "data": "x"}).reason == (
        'id nan is not a finite number (field "id")'
    )
    options = MappingOptions(data_template="{title} {score}")
    rej = rejection({"id": "a", "title": "T", "score": float("inf")}, options)
    assert rej.reason.startswith('field "score" is inf, a number JSON cannot hold')


def test_a_key_that_is_not_a_string_is_rejected_naming_it() -> None:
    rej = rejection({"id": "a", "data": "x", 5: "y"})  # type: ignore[dict-item]
    assert rej.reason == "the record has a key that is not a string, 5 (int): JSON keys are text"
    assert body_of(rej) == {"id": "a", "data": "x", "5": "y"}  # written, the key as text
    rej = rejection({"id": "a", "data": "x", "metadata": {"tags": {(1, 2): "t"}}})
    assert rej.reason.startswith('field "metadata.tags" has a key that is not a string, (1, 2)')
    rej = rejection({"id": "a", 5: "y"})  # type: ignore[dict-item]
    assert rej.reason == 'missing data (field "data")'
    out = Mapper(MappingOptions(id_from="hash")).map(row({"data": "x", 5: "y"}))  # type: ignore[dict-item]
    assert isinstance(out, Rejection) and "5 (int)" in out.reason


def test_metadata_over_the_limit_names_the_option_that_leaves_out_its_largest_field() -> None:
    options = MappingOptions(data_template="{title}\\n\\n{body}")
    value = {"id": "a", "title": "T", "body": "w " * 30_000, "year": "1999", "lang": "en"}
    with spelled_as_flags():
        rej = rejection(value, options, tabular=True)
    assert rej.reason == (
        'metadata is 60,047 bytes; the limit is 49,152; "body" is 60,002 bytes of it (and in '
        "the data already, through --data-template): leave it out with "
        "--metadata-columns title,year,lang"
    )
    options = MappingOptions(metadata_columns=("body", "year"))
    with spelled_as_flags():
        rej = rejection({**value, "data": "x"}, options, tabular=True)
    assert rej.reason.endswith('"body" is 60,002 bytes of it: leave it out of --metadata-columns')


# --- sharding -------------------------------------------------------------------------


def test_shard_of_is_pinned() -> None:
    # The same on every machine and Python: jobs on different hosts must agree.
    assert [shard_of(x, 7) for x in ("a", "doc-1", "é")] == [2, 3, 2]
    digest = hashlib.blake2b(b"doc-1", digest_size=8).digest()
    assert shard_of("doc-1", 1000) == int.from_bytes(digest, "big") % 1000


def test_shards_are_disjoint_and_complete() -> None:
    rows: list[Row | Rejection] = [row({"id": f"doc-{i}", "data": "x"}, i) for i in range(300)]
    rows += [row({"data": "no id"}, 300), row({"id": "bad-data", "data": 1}, 301)]
    rows.append(Rejection("in.jsonl", 302, Position(0, 302), "not valid JSON", raw="{"))
    seen: list[tuple[int, int, str]] = []
    for k in range(3):
        mapper = Mapper(MappingOptions(shard=(k, 3)))
        for out in map_rows(rows, mapper):
            seen.append((out.line, k, type(out).__name__))
    lines = sorted(line for line, _, _ in seen)
    assert lines == list(range(303))
    by_line = {line: (k, kind) for line, k, kind in seen}
    assert by_line[300] == (0, "Rejection")  # no id: shard 0 reports it
    assert by_line[302] == (0, "Rejection")
    assert by_line[301] == (shard_of("bad-data", 3), "Rejection")
    assert all(by_line[i][0] == shard_of(f"doc-{i}", 3) for i in range(300))


def test_shard_with_hash_ids() -> None:
    rows: list[Row | Rejection] = [row({"data": f"text {i}"}, i) for i in range(60)]
    counts = [
        sum(1 for _ in map_rows(rows, Mapper(MappingOptions(id_from="hash", shard=(k, 2)))))
        for k in range(2)
    ]
    assert sum(counts) == 60
    assert min(counts) > 0


# --- rejects-file lines -----------------------------------------------------------------


def rejects_line(rej: Rejection) -> dict[str, Any]:
    """The line --rejects writes for ``rej``, parsed."""
    line: dict[str, Any] = orjson.loads(reject_line(rej))
    return line


def test_rejects_line_keeps_the_row_and_is_fed_back_with_the_same_options() -> None:
    options = MappingOptions(
        id_field="key", data_field="text", data_template="{title}", metadata_field="m"
    )
    row_ = {"text": "body", "title": "T", "m": {"a": 1}}
    rej = rejection(row_, options)
    assert rej.reason == 'missing id (field "key")' and rej.stage == "map"
    fixed = rejects_line(rej)
    assert fixed == {**row_, REJECT_KEY: fixed[REJECT_KEY]}
    assert fixed[REJECT_KEY]["stage"] == "map"
    fixed["key"] = "now-fixed"
    assert record(fixed, options) == {
        "id": "now-fixed",
        "data": "T",
        "metadata": {"a": 1, "text": "body", "title": "T"},
    }


def test_a_sent_record_is_fed_back_whatever_the_options() -> None:
    sent = Rejection(
        "in.jsonl",
        4,
        Position(0, 4),
        "cannot embed",
        body=b'{"id":"a","data":"T","metadata":{"a":1}}',
        status=400,
        stage="send",
    )
    line = rejects_line(sent)
    options = MappingOptions(id_field="key", data_template="{title}", metadata_field="m")
    assert record(line, options) == {"id": "a", "data": "T", "metadata": {"a": 1}}
    assert record(line, MappingOptions(id_from="hash"))["id"] == "a"
    line["data"] = ""
    again = rejection(line, options)
    assert again.stage == "send" and again.reason == 'empty data (field "data")'


def test_a_csv_row_is_fed_back_as_a_table_row() -> None:
    options = MappingOptions(data_field="text")
    rej = rejection({"id": "7", "text": "", "zip": "00501", "n": "3"}, options, tabular=True)
    line = rejects_line(rej)
    assert line[REJECT_KEY]["format"] == "csv" and line["zip"] == "00501"
    line["text"] = "now fixed"
    assert record(line, options) == {
        "id": "7",
        "data": "now fixed",
        "metadata": {"zip": "00501", "n": 3},
    }


def test_unfixed_rejects_line_is_rejected_again_with_its_own_reason() -> None:
    rej = rejection({"id": "a", "data": 5})
    again = rejection(rejects_line(rej))
    assert again.reason == 'data is not a string (got number, field "data")'
    assert body_of(again) == {"id": "a", "data": 5}


def test_rejects_line_of_an_unparseable_item() -> None:
    original = Rejection("in.jsonl", 9, Position(0, 9), "not valid JSON: x", raw='{"id": 1,')
    line = rejects_line(original)
    again = rejection(line)
    assert again.reason == (
        "could not be parsed originally: not valid JSON: x; replace this line with the "
        "record, fixed, and feed it again"
    )
    assert again.raw == '{"id": 1,'
    assert again.body is None
    # Fed back a second time, the reason does not grow.
    assert rejection(rejects_line(again)).reason == again.reason
    # Only shard 0 reports it.
    assert mapped(line, MappingOptions(shard=(1, 2))) is None
    assert isinstance(mapped(line, MappingOptions(shard=(0, 2))), Rejection)


def test_rejects_line_round_trip_through_a_file(tmp_path: Path) -> None:
    mapper = Mapper(MappingOptions(id_field="doc_id"))
    rows = [
        row({"doc_id": "a", "data": "ok"}, 1),
        row({"data": "needs id", "metadata": {"k": 1}}, 2),
        row({"doc_id": "b", "data": ""}, 3),
    ]
    rejected = [out for out in map(mapper.map, rows) if isinstance(out, Rejection)]
    path = tmp_path / "rejects.jsonl"
    path.write_bytes(b"".join(orjson.dumps(rejects_line(r)) + b"\n" for r in rejected))
    again = list(map_rows(iter_rows(str(path), ReadOptions()), mapper))
    # Each line holds its row as read and is mapped again with the same options.
    assert [(o.line, getattr(o, "reason", None)) for o in again] == [
        (1, 'missing id (field "doc_id")'),
        (2, 'empty data (field "data")'),
    ]


def test_map_rows_passes_reader_rejections_through() -> None:
    reader_rejection = Rejection("in.jsonl", 1, Position(5, 1), "not valid JSON", raw="{")
    items: list[Row | Rejection] = [reader_rejection, row({"id": "a", "data": "x"}, 2)]
    out = list(map_rows(items, Mapper(MappingOptions())))
    assert out[0] is reader_rejection
    assert isinstance(out[1], Record)


# The hot path for JSON Lines (Mapper.records) must map every row exactly as the
# general path (Mapper.map) does; these rows probe each check it makes at a glance.
HOT_PATH_ROWS: list[dict[str, Any]] = [
    {"id": "a", "data": "text"},
    {"id": "a", "data": "text", "metadata": {"k": 1, "nested": {"x": [1, 2]}}},
    {"id": "a", "data": "text", "metadata": None},
    {"id": "a", "data": "text", "metadata": "not an object"},
    {"id": "a", "data": "text", "metadata": {"big": "x" * MAX_METADATA_BYTES}},
    {"id": 7, "data": "number id"},
    {"id": "", "data": "empty id"},
    {"id": "a", "data": ""},
    {"id": "a", "data": 12},
    {"data": "no id"},
    {"id": "a"},
    {"id": "a", "data": "text", "other": "kept"},
    {"id": "a", "other": "kept", "data": "text", "metadata": {"k": 1}},
    {"id": "a", "data": "text", "metadata": {}, "other": 1},
    {"id": "a", "data": "text", "metadata": None, "other": None},
    {"id": "a", "data": "text", "metadata": {"k": 1}, "k": 2},
    {"id": "a", "data": "text", "metadata": [1], "k": 2},
    {"id": "a", "data": "text", "other": "x" * MAX_METADATA_BYTES},
    {"id": "ü✓", "data": "unicode \u2028 line separator"},
    {"id": "a", "data": "lone surrogate \ud800"},
    {"id": "a", "data": "text", REJECT_KEY: {"source": "x.jsonl", "line": 2, "reason": "r"}},
]


def as_read(value: dict[str, Any]) -> bytes:
    """The line a reader would have parsed ``value`` from (orjson cannot write a lone
    surrogate, and orjson cannot read one either: that row never comes from a file)."""
    try:
        return orjson.dumps(value) + b"\n"
    except orjson.JSONEncodeError:
        return b""


def hot_record(mapper: Mapper, value: dict[str, Any], text: bytes) -> Record | Rejection | Skip:
    (hot,) = mapper.records("in.jsonl", [(3, 100, value, text)])
    if isinstance(hot, tuple):
        return Record(hot[0], hot[1], hot[2], hot[3], Position(hot[4], hot[5]))
    return hot


@pytest.mark.parametrize("value", HOT_PATH_ROWS, ids=range(len(HOT_PATH_ROWS)))
def test_the_hot_path_maps_like_the_general_path(value: dict[str, Any]) -> None:
    mapper = Mapper(MappingOptions())
    text = as_read(value)
    general = mapper.map(Row("in.jsonl", 3, Position(100, 3), value, text))
    assert hot_record(mapper, value, text) == general


@pytest.mark.parametrize(
    "text",
    [
        b'{"id": "a", "data": "text"}\n',
        b'  {"metadata": {"n": 9223372036854775807, "f": 1.50},\t"data":"x\\u00e9","id":"a"}\r\n',
        b'{"id":"a","data":"text","metadata":{"id":"inner","data":"inner"}}',
    ],
)
def test_a_line_that_is_the_record_is_sent_as_written(text: bytes) -> None:
    # Whitespace, key order, escapes and number spelling are the user's: the server
    # reads the same JSON.
    hot = hot_record(Mapper(MappingOptions()), orjson.loads(text), text)
    assert isinstance(hot, Record)
    assert hot.body == text.strip()


@pytest.mark.parametrize(
    ("text", "path"),
    [
        (b'{"id":"a","data":"t","metadata":{"n":18446744073709551616}}', "metadata.n"),
        (
            b'{"id":"a","data":"t","metadata":{"l":[1,{"x":-9223372036854775809}]}}',
            "metadata.l[1].x",
        ),
        (b'{"id":"a","data":"t","metadata":{"n":9223372036854775808}}', "metadata.n"),
        (b'{"id":"a","data":"t","other":123456789012345678901234}', "other"),
        (b'{"id":"a","data":"t","metadata":{"m":1},"o":{"p":[18446744073709551616]}}', "o.p[0]"),
    ],
)
def test_an_integer_beyond_64_bits_in_metadata_is_rejected(text: bytes, path: str) -> None:
    hot = hot_record(Mapper(MappingOptions()), orjson.loads(text), text)
    assert isinstance(hot, Rejection) and hot.stage == "map" and hot.body == text
    assert f'field "{path}"' in hot.reason and "write it as a string" in hot.reason


@pytest.mark.parametrize(
    "text",
    [
        b'{"id":"a","data":"t","metadata":{"n":9223372036854775807,"m":-9223372036854775808}}',
        b'{"id":"a","data":"t","metadata":{"s":"123456789012345678901234"}}',
        b'{"id":"a","data":"t","s":"123456789012345678901234"}',
        b'{"id":"a","data":"t","metadata":{"f":1.2345678901234567890123}}',
    ],
)
def test_long_digits_that_are_not_a_huge_integer_in_metadata_pass(text: bytes) -> None:
    hot = hot_record(Mapper(MappingOptions()), orjson.loads(text), text)
    assert isinstance(hot, Record)


@pytest.mark.parametrize(
    ("text", "sent"),
    [
        (b'{"id":"a","data":"t","extra":1}\n', {"id": "a", "data": "t", "metadata": {"extra": 1}}),
        (b'{"id":"a","data":"t","metadata":null}\n', {"id": "a", "data": "t"}),
        (
            b'{"id":"a","data":"t","metadata":{"k":1},"x":2}\n',
            {"id": "a", "data": "t", "metadata": {"k": 1, "x": 2}},
        ),
    ],
)
def test_a_line_with_more_than_the_record_is_dumped(text: bytes, sent: dict[str, Any]) -> None:
    hot = hot_record(Mapper(MappingOptions()), orjson.loads(text), text)
    assert isinstance(hot, Record)
    assert hot.body == orjson.dumps(sent)


def test_other_field_names_dump_under_the_api_names() -> None:
    mapper = Mapper(MappingOptions(id_field="key", data_field="text", metadata_field="meta"))
    text = b'{"key":"a","text":"t","meta":{"k":1}}\n'
    hot = hot_record(mapper, orjson.loads(text), text)
    assert isinstance(hot, Record)
    assert orjson.loads(hot.body) == {"id": "a", "data": "t", "metadata": {"k": 1}}


def test_the_hot_path_passes_reader_rejections_on() -> None:
    bad = Rejection("in.jsonl", 2, Position(10, 2), "not valid JSON", raw="{")
    line = (3, 20, {"data": "x"}, b'{"data": "x"}\n')
    out = list(Mapper(MappingOptions()).records("in.jsonl", [bad, line]))
    assert out[0] is bad
    assert isinstance(out[1], Rejection) and out[1].line == 3
