"""The registry of input formats: a format is its reader and one line of the registry."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path
from typing import cast, get_args

import pytest

import vupsert
from vupsert.config.settings import Format, ReadOptions
from vupsert.errors import ColumnError, ConfigError
from vupsert.inputs import FORMATS, InputFormat, Reading, Stream, format_of, iter_rows, read_stream
from vupsert.mapping._replay import ROW_CELLS
from vupsert.records import Cells, Position, Rejection, Row
from vupsert_server import LocalServer


def test_the_registry_names_what_format_may_be() -> None:
    assert set(FORMATS) == set(get_args(Format)) - {"auto"}
    assert all(name == fmt.name for name, fmt in FORMATS.items())
    with pytest.raises(ConfigError, match="no such format"):
        iter_rows("a.xml", ReadOptions(format=cast(Format, "xml")))


def test_a_rejects_file_names_its_rows_by_formats_of_the_registry() -> None:
    # What the rows of a table held, by the format a rejects-file line names.
    assert all(FORMATS[name].cells is cells for name, cells in ROW_CELLS.items())


def read_pairs(reading: Reading) -> Iterator[Row | Rejection]:
    """A made-up table format: ``column=cell`` pairs, one row a line."""

    def rows(stream: Stream, source: str, start: Position | None) -> Iterator[Row | Rejection]:
        offset = 0
        for line, data in enumerate(stream, 1):
            offset += len(data)
            cells = dict(pair.split("=", 1) for pair in data.decode().split())
            yield Row(source, line, Position(offset, line), cells)

    return read_stream(reading, rows)


@pytest.fixture
def pairs(monkeypatch: pytest.MonkeyPatch) -> InputFormat:
    fmt = InputFormat("pairs", Cells.TEXT, read_pairs, suffixes=(".pairs",))
    monkeypatch.setitem(FORMATS, "pairs", fmt)
    return fmt


def test_a_new_format_is_its_reader_and_one_registry_line(
    pairs: InputFormat, server: LocalServer, tmp_path: Path
) -> None:
    path = tmp_path / "a.pairs.gz"
    path.write_bytes(gzip.compress(b"id=1 data=hello n=2 zip=007\nid=2 data=bye n=x\n"))
    assert format_of(str(path)) is pairs
    summary = vupsert.upsert(str(path), url=server.url, token=server.token)
    assert (summary.records_read, summary.records_upserted) == (2, 2)
    # Its cells are a table's text: typed by their look, or by the types given.
    assert server.records("") == {
        "1": ("hello", {"n": 2, "zip": "007"}),
        "2": ("bye", {"n": "x"}),
    }
    vupsert.upsert(str(path), url=server.url, token=server.token, namespace="t", types={"n": "str"})
    assert server.records("t")["1"] == ("hello", {"n": "2", "zip": "007"})
    # A column the options name and the table lacks stops the run before anything is sent.
    with pytest.raises(ColumnError, match="has no column 'key' for the id"):
        vupsert.upsert(str(path), url=server.url, token=server.token, namespace="k", id_field="key")
    assert server.records("k") == {}
