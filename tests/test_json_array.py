"""JSON arrays: the element scanner, resume by position, and the real CLI against a real
local index."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vupsert.config.settings import ReadOptions
from vupsert.errors import InputError
from vupsert.inputs import _json_array, iter_rows
from vupsert.records import Position, Rejection, Row
from vupsert_server import LocalServer, ServerConfig

from .conftest import kill_when, read_jsonl, run_cli


def read(path: Path | str, *, start: Position | None = None, fmt: str = "auto") -> list[Any]:
    return list(iter_rows(str(path), ReadOptions(format=fmt), start=start))  # type: ignore[arg-type]


def values(items: list[Any]) -> list[Any]:
    return [i.value if isinstance(i, Row) else i.reason for i in items]


def write(tmp_path: Path, content: bytes, name: str = "a.json") -> Path:
    path = tmp_path / name
    path.write_bytes(gzip.compress(content) if name.endswith(".gz") else content)
    return path


def test_elements_are_read_with_their_number_and_end(tmp_path: Path) -> None:
    content = (
        b'\xef\xbb\xbf [ {"id": "a", "s": "]} \\" ["},\n  {"id": "b", "n": [1, {"x": []}]} ]\n'
    )
    items = read(write(tmp_path, content))
    assert values(items) == [{"id": "a", "s": ']} " ['}, {"id": "b", "n": [1, {"x": []}]}]
    first, second = items
    assert (first.source, first.line, second.line) == (str(tmp_path / "a.json"), 1, 2)
    assert content[first.end.offset - 1 : first.end.offset] == b"}"
    assert content[second.end.offset - 1 : second.end.offset + 2] == b"} ]"
    assert first.end.line == 1 and second.end.line == 2


def test_a_bad_element_in_the_middle_is_rejected_and_the_rest_read(tmp_path: Path) -> None:
    content = (
        b'[{"id": 1}, {"id": 2, "data": }, "text", 7, null, [1], '
        b'{"id": "\xff"}, {"id": 3, "a": [1, 2]}]'
    )
    items = read(write(tmp_path, content))
    assert [i.line for i in items] == [1, 2, 3, 4, 5, 6, 7, 8]
    assert values(items) == [
        {"id": 1},
        "not valid JSON: unexpected character, expected a JSON value at character 19 of the "
        "element",
        "expected a JSON object, got string",
        "expected a JSON object, got number",
        "expected a JSON object, got null",
        "expected a JSON object, got array",
        "invalid UTF-8 at byte 9 of the element",
        {"id": 3, "a": [1, 2]},
    ]
    bad = items[1]
    assert isinstance(bad, Rejection) and bad.raw == '{"id": 2, "data": }' and bad.body is None


def test_a_pretty_printed_element_is_kept_on_one_line(tmp_path: Path) -> None:
    content = b'[\n  {\n    "id": "a",\r\n    "data": "two\\nlines"\n  }\n]\n'
    [row] = read(write(tmp_path, content))
    assert row.value == {"id": "a", "data": "two\nlines"}
    assert row.text is not None and b"\n" not in row.text and orjson.loads(row.text) == row.value


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'[{"id": 1}, {"id": 2}', "the array ends early, after element 2"),
        (b'[{"id": 1}, {"id": 2', "the array ends early, inside element 2"),
        (b"[", "the array ends early, before its first element"),
        (b'[{"id": 1} {"id": 2}]', "element 1 is followed by '{\"id\": 2}]' at byte 12"),
        (b'[{"id": [1}]', "element 1 has '}' at byte 11 where ']' should close"),
        (b'[{"id": 1}] [{"id": 2}]', "'[{\"id\": 2}]' follows the array's closing ]"),
        (b'"just text"', "is not a JSON array of objects"),
    ],
)
def test_what_the_scanner_cannot_get_past_stops_after_what_came_before(
    tmp_path: Path, content: bytes, message: str
) -> None:
    rows = iter_rows(str(write(tmp_path, content)), ReadOptions())
    with pytest.raises(InputError) as error:
        for _ in rows:
            pass
    assert message in error.value.message


def test_a_broken_element_of_an_indented_array_is_rejected_alone(tmp_path: Path) -> None:
    content = (
        b'[\n  {"id": 1},\n  {"id": 2, "data": "unclosed},\n  {"id": 3},\n'
        b'  {\n    "id": 4,\n    "tags": [1, 2}\n  },\n  "text",\n  {\n    "id": 5\n  }\n]\n'
    )
    items = read(write(tmp_path, content))
    assert [i.line for i in items] == [1, 2, 3, 4, 5, 6]
    assert values(items)[0::2] == [{"id": 1}, {"id": 3}, "expected a JSON object, got string"]
    assert values(items)[5] == {"id": 5}
    assert [items[1].raw, items[3].raw] == [
        '{"id": 2, "data": "unclosed}',
        '{\n    "id": 4,\n    "tags": [1, 2}\n  }',
    ]
    # Resuming after a broken element finds the comma that follows it.
    assert values(read(write(tmp_path, content), start=items[1].end))[0] == {"id": 3}


def test_a_broken_element_of_a_compact_array_stops_the_reading(tmp_path: Path) -> None:
    path = write(tmp_path, b'[{"id": 1}, {"id": "unclosed}, {"id": 3}]\n')
    with pytest.raises(InputError, match="line break inside a string at byte 42"):
        read(path)


def test_the_elements_before_a_break_are_given_first(tmp_path: Path) -> None:
    path = write(tmp_path, b'[{"id": 1}, {"id": 2}, {"id": 3')
    got = []
    with pytest.raises(InputError, match="truncated"):
        for item in iter_rows(str(path), ReadOptions()):
            assert isinstance(item, Row)
            got.append(item.value)
    assert got == [{"id": 1}, {"id": 2}]


def test_an_element_that_never_ends_is_not_held_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_json_array, "MAX_ELEMENT_BYTES", 1000)
    monkeypatch.setattr(_json_array, "_READ_SIZE", 100)
    path = write(tmp_path, b'[{"id": 1}, {"a": [' + b"1, " * 2000 + b"]}]")
    with pytest.raises(InputError, match=r"element 2 .* is over 0 MiB and has not ended"):
        read(path)


def test_empty_arrays_empty_files_and_stray_commas(tmp_path: Path) -> None:
    assert read(write(tmp_path, b" [ ]\n")) == []
    assert read(write(tmp_path, b"")) == []
    assert values(read(write(tmp_path, b'[{"a": 1},, {"a": 2},]'))) == [{"a": 1}, {"a": 2}]


def test_a_json_file_of_json_lines_is_read_as_json_lines(tmp_path: Path) -> None:
    items = read(write(tmp_path, b'{"id": 1}\n{"id": 2}\n'))
    assert values(items) == [{"id": 1}, {"id": 2}]
    assert [i.end.offset for i in items] == [10, 20]
    with pytest.raises(InputError, match="looks like one JSON document"):
        read(write(tmp_path, b'{\n  "id": 1\n}\n'))


def test_a_jsonl_file_holding_an_array_is_still_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="looks like one JSON document") as error:
        read(write(tmp_path, b'[\n{"id": 1}\n]\n', "a.jsonl"))
    assert "jq -c" in str(error.value)
    assert values(read(write(tmp_path, b'[{"id": 1}]\n', "a.jsonl"), fmt="json")) == [{"id": 1}]


@pytest.mark.parametrize("name", ["a.json", "a.json.gz"])
def test_resume_after_any_element(tmp_path: Path, name: str) -> None:
    elements = [{"id": i, "text": f"t{i} ]}}[{{"} for i in range(20)]
    path = write(tmp_path, json.dumps(elements, indent=2).encode(), name)
    whole = read(path)
    for cut in (1, 7, 19, 20):
        rest = read(path, start=whole[cut - 1].end)
        assert values(rest) == elements[cut:]
        assert [r.line for r in rest] == list(range(cut + 1, 21))


def test_resume_from_stdin_by_position() -> None:
    content = b'[{"id": 1}, {"id": 2}, {"id": 3}]'
    first = list(iter_rows("-", ReadOptions(format="json"), stdin=io.BytesIO(content)))
    rest = list(
        iter_rows("-", ReadOptions(format="json"), start=first[0].end, stdin=io.BytesIO(content))
    )
    assert values(rest) == [{"id": 2}, {"id": 3}]


def test_a_resume_point_that_is_not_after_an_element_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, b'[{"id": 1}, {"id": 2}]')
    with pytest.raises(InputError, match="not after an element"):
        read(path, start=Position(11, 1))  # the space after the comma
    with pytest.raises(InputError, match="not after an element"):
        read(path, start=Position(5, 1))  # inside the first element
    with pytest.raises(InputError, match="shorter than the checkpoint"):
        read(path, start=Position(500, 3))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(
    elements=st.lists(st.dictionaries(st.text(max_size=8), json_values, max_size=4), max_size=12),
    indent=st.sampled_from([None, 1, 4]),
    read_size=st.integers(1, 64),
)
def test_any_array_reads_as_json_reads_it(
    elements: list[dict[str, Any]], indent: int | None, read_size: int
) -> None:
    content = json.dumps(elements, indent=indent, ensure_ascii=False).encode()
    stream = io.BufferedReader(io.BytesIO(content), buffer_size=max(read_size, 8))
    original = _json_array._READ_SIZE
    _json_array._READ_SIZE = read_size
    try:
        items = list(_json_array.elements(stream, "a.json", None))  # type: ignore[arg-type]
    finally:
        _json_array._READ_SIZE = original
    lines = [item for item in items if isinstance(item, tuple)]
    assert len(lines) == len(items)
    assert [value for _, _, value, _ in lines] == elements
    assert [number for number, _, _, _ in lines] == list(range(1, len(elements) + 1))
    for _, end, _, _ in lines:
        assert content[end - 1 : end] == b"}"


# --- end to end -------------------------------------------------------------------------


def test_a_json_array_with_a_bad_element_in_the_middle_loads_the_rest(
    server: LocalServer, tmp_path: Path
) -> None:
    good = [{"id": f"d{i}", "data": f"text {i}", "metadata": {"i": i}} for i in range(5)]
    text = json.dumps(good[:2], indent=2)[:-2]
    text += ',\n  {"id": "bad", "data": "unclosed},\n  "a string",\n  '
    text += json.dumps(good[2:], indent=2)[1:]
    path = tmp_path / "docs.json"
    path.write_text(text, encoding="utf-8")
    rejects = tmp_path / "rejects.jsonl"
    result = run_cli("upsert", path, "--rejects", rejects, "--json", server=server)
    assert result.code == 1, result.stderr
    assert server.records("") == {r["id"]: (r["data"], r["metadata"]) for r in good}
    assert f"rejected {path}:3: not valid JSON" in result.stderr
    lines = read_jsonl(rejects)
    assert [line["_vupsert"]["source"] for line in lines] == [f"{path}:3", f"{path}:4"]
    assert lines[1]["_vupsert"]["reason"] == "expected a JSON object, got string"
    summary = result.summary
    assert (summary["records_read"], summary["records_upserted"]) == (7, 5)


def test_a_json_array_on_stdin_with_format_json(server: LocalServer) -> None:
    docs = [{"id": "a", "data": "one"}, {"id": "b", "data": "two"}]
    result = run_cli("upsert", "-f", "json", "-", server=server, input=orjson.dumps(docs))
    assert result.code == 0, result.stderr
    assert server.records("") == {"a": ("one", None), "b": ("two", None)}


def test_kill_9_then_resume_a_json_array_is_exact(tmp_path: Path) -> None:
    docs: list[dict[str, Any]] = [
        {"id": f"id-{i}", "data": f"record {i} about {i % 13}", "metadata": {"i": i}}
        for i in range(3000)
    ]
    docs[1234] = {"id": "x", "data": 5}  # rejected where it is, once
    path = tmp_path / "docs.json"
    path.write_text(json.dumps(docs, indent=1), encoding="utf-8")
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
        expected = {d["id"]: (d["data"], d["metadata"]) for d in docs if d["id"] != "x"}
        assert server.records("") == expected
        assert [line["_vupsert"]["source"] for line in read_jsonl(rejects)] == [f"{path}:1235"]
        summary = result.summary
        assert summary["records_skipped"] > 0
        assert summary["records_read"] == 3000
        assert summary["records_upserted"] + summary["records_skipped"] + 1 == 3000
