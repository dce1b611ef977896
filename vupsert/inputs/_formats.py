"""The input formats, in one registry: what each is called, which file names are it, what
its values are to the mapping, and its reader; :func:`read_input`, the one entry that
reads an input.

A format is one line of :data:`FORMATS` and one module with its reader. The rest of
vupsert speaks of formats through :class:`InputFormat` (``.cells``, ``.tabular``,
``.columns``), never by comparing their names.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO, NamedTuple

from ..config import option
from ..config.settings import ReadOptions
from ..errors import ConfigError
from ..records import Cells, JsonLine, Position, Rejection, Row
from ._csv import table
from ._dicts import read_dicts
from ._frames import Table, read_table
from ._json_array import array_or
from ._jsonl import json_lines, read_json_lines
from ._opening import COMPRESSION_SUFFIXES, RECORDS, Reading
from ._parquet import columns_of, read_parquet

Item = JsonLine | Row | Rejection
"""What a reader yields: a JSON object as a plain tuple (the hot path's shape), a table's
row, or what could not be read."""


@dataclass(frozen=True)
class InputFormat:
    """One input format."""

    name: str
    """As ``format=`` names it."""
    cells: Cells
    """What its values are to the mapping."""
    read: Callable[[Reading], Iterator[Item]]
    """Its reader. Option errors raise at once, everything about the input itself as the
    items are read."""
    suffixes: tuple[str, ...] = ()
    """File names that are this format when ``format`` is ``auto``."""
    compressible: bool = True
    """Whether its suffix also counts under a compression suffix (``a.csv.gz``)."""
    columns: Callable[[str], list[str]] | None = None
    """A file's column names from its schema, before any row is read; it refuses an input
    that cannot be read ahead."""

    @property
    def tabular(self) -> bool:
        """Whether it is a table: every row has the same columns."""
        return self.cells.tabular

    def rows(self, reading: Reading) -> Iterator[Row | Rejection]:
        """The input's items as :class:`~vupsert.records.Row` objects, JSON's tuples
        made rows: for readers off the hot path."""
        return _as_rows(reading.source, self.read(reading))


FORMATS = {
    f.name: f
    for f in (
        InputFormat("jsonl", Cells.JSON, read_json_lines),
        InputFormat("json", Cells.JSON, array_or(json_lines), suffixes=(".json",)),
        InputFormat("csv", Cells.TEXT, table(","), suffixes=(".csv",)),
        InputFormat("tsv", Cells.TEXT, table("\t"), suffixes=(".tsv", ".tab")),
        InputFormat(
            "parquet",
            Cells.TYPED,
            read_parquet,
            suffixes=(".parquet", ".pq"),
            compressible=False,
            columns=columns_of,
        ),
    )
}
"""Every format ``format=`` can name, by name."""
DEFAULT = FORMATS["jsonl"]
"""The format of an input whose name says none, stdin included."""
DICTS = InputFormat("dicts", Cells.JSON, read_dicts)
"""Records in hand (the input named ``<records>``), whatever ``format`` says."""
TABLE = InputFormat("table", Cells.TYPED, read_table)
"""A table in hand (a DataFrame, an Arrow table) as ``<records>``: Parquet's values."""


def format_of(name: str, given: str = "auto", records: object = None) -> InputFormat:
    """The format of an input: ``given`` unless it is ``"auto"``, else by the file's name
    (:func:`format_named_by`), else JSON Lines; ``records`` in hand are dicts or a
    table."""
    if name == RECORDS:
        return TABLE if isinstance(records, Table) else DICTS
    if given == "auto":
        return format_named_by(name) or DEFAULT
    fmt = FORMATS.get(given)
    if fmt is None:
        raise ConfigError(
            f"{option('format', given)}: there is no such format",
            hint=f"The formats are auto, {', '.join(FORMATS)}.",
        )
    return fmt


def format_named_by(name: str) -> InputFormat | None:
    """The format a file's name says, if it says one: ``.csv`` is CSV, ``.tsv``/``.tab``
    TSV, ``.json`` JSON, also under a compression suffix (``a.csv.gz``);
    ``.parquet``/``.pq`` Parquet."""
    lower = name.lower()
    bare = lower
    for suffix in COMPRESSION_SUFFIXES:
        if lower.endswith(suffix):
            bare = lower[: -len(suffix)]
            break
    for fmt in FORMATS.values():
        if (bare if fmt.compressible else lower).endswith(fmt.suffixes):
            return fmt
    return None


class Input(NamedTuple):
    """An input being read: its format, its name in messages, and its items in order."""

    format: InputFormat
    source: str
    items: Iterator[Item]


def read_input(
    name: str,
    options: ReadOptions,
    *,
    start: Position | None = None,
    stdin: BinaryIO | None = None,
    records: Iterable[Mapping[str, Any]] | None = None,
    on_bytes: Callable[[int], None] | None = None,
    on_warning: Callable[[str], None] | None = None,
) -> Input:
    """Read one input in its format (:func:`format_of`); see :class:`Reading` for what
    the arguments mean. Option errors raise :class:`~vupsert.errors.ConfigError` at once;
    everything about the input itself raises :class:`~vupsert.errors.InputError` as the
    items are read, naming it."""
    reading = Reading(name, options, start, stdin, records, on_bytes, on_warning)
    fmt = format_of(name, options.format, records)
    return Input(fmt, reading.source, fmt.read(reading))


def iter_rows(
    name: str,
    options: ReadOptions,
    *,
    start: Position | None = None,
    stdin: BinaryIO | None = None,
    on_bytes: Callable[[int], None] | None = None,
    on_warning: Callable[[str], None] | None = None,
) -> Iterator[Row | Rejection]:
    """:func:`read_input`'s items, each a :class:`~vupsert.records.Row` or a
    :class:`~vupsert.records.Rejection`: for readers off the hot path."""
    reading = Reading(name, options, start, stdin, None, on_bytes, on_warning)
    return format_of(name, options.format).rows(reading)


def _as_rows(source: str, items: Iterator[Item]) -> Iterator[Row | Rejection]:
    for item in items:
        if type(item) is tuple:
            line, offset, value, text = item
            yield Row(source, line, Position(offset, line), value, text)
        else:
            assert isinstance(item, (Row, Rejection))
            yield item
