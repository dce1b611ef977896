"""Tables in hand: a pandas or polars DataFrame, a pyarrow Table, RecordBatch or
RecordBatchReader (or anything else that exports an Arrow stream) handed over as records,
read 1,024 rows at a time, never converted whole, with Parquet's type rules.

Which library a table comes from is told by its type's module: none of them is imported
unless the table came from it (pyarrow aside, which converts a slice of any of them when
it is installed). Without pyarrow, a slice's Python values are converted by the same
rules (:func:`plain`): dates and times as ISO 8601 text, decimals as numbers, durations as
seconds, binary as text (base64 when not UTF-8), a missing value (pandas' NaN, None, NaT
and NA; polars' and Arrow's null) left out.

A row is named ``<records>:N``, N its number from 1, and a checkpoint resumes by row. A
named pandas index is a column, as ``reset_index()`` makes it.
"""

from __future__ import annotations

import datetime
import decimal
import io
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Protocol

from ..errors import UsageError
from ..records import Position, Rejection, Row
from ._arrow import BATCH_ROWS, ArrowCells, iso, seconds, text
from ._opening import RECORDS, Reading

Slices = Callable[[Any, int], Iterator["Slice"]]
"""A table's rows from row ``skip`` on, a slice at a time."""
Slice = tuple[list[str], list[list[Any]]] | Any
"""A slice: column names and Python values by column, or an Arrow record batch."""


class ArrowStreamExportable(Protocol):
    """What exports its rows as an Arrow stream (the Arrow PyCapsule interface): pandas
    and polars DataFrames, pyarrow Tables and RecordBatches, DuckDB results, ..."""

    def __arrow_c_stream__(self, requested_schema: object | None = None) -> object: ...


class Table:
    """A table handed over as records: ``rows()`` reads it a slice at a time (iterating
    it gives the same rows, for a caller that does)."""

    def __init__(self, table: Any, slices: Slices) -> None:
        self.table = table
        self._slices = slices

    def rows(self, skip: int = 0) -> Iterator[dict[str, Any]]:
        """Each row after the first ``skip``, as ``{column: value}``."""
        arrow: ArrowCells | None = None
        for piece in self._slices(self.table, skip):
            if isinstance(piece, tuple):
                names, columns = piece
                for values in zip(*columns, strict=True):
                    yield dict(zip(names, values, strict=True))
            else:
                if arrow is None:
                    arrow = ArrowCells(_pyarrow())
                yield from arrow.rows(piece)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return self.rows()


def read_table(reading: Reading) -> Iterator[Row | Rejection]:
    """Each row of the table in ``reading.records`` as a :class:`Row` numbered from 1;
    ``start`` resumes after row ``start.line``."""
    table = reading.records
    assert isinstance(table, Table)
    row = reading.start.line if reading.start is not None else 0
    for value in table.rows(row):
        row += 1
        yield Row(RECORDS, row, Position(row, row), value)


def as_records(records: object) -> object:
    """``records`` as a run takes them: a table in hand as a :class:`Table`, anything else
    as it is; a :class:`~vupsert.errors.UsageError` for what is no records at all (a
    dict alone, a number, a string of JSON, a text-mode file, a Series)."""
    if isinstance(records, (str, os.PathLike, bytes, bytearray)):
        _check_path(records)
        return records
    slices = _slices_of(records)
    if slices is not None:
        return Table(records, slices)
    _refuse(records)
    return records


def _slices_of(value: object) -> Slices | None:
    """How to read ``value`` a slice at a time, if it is a table: by the library its type
    (or a base of it) comes from, else by the Arrow stream it exports."""
    for klass in type(value).__mro__:
        slices = _TABLES.get((klass.__module__.partition(".")[0], klass.__name__))
        if slices is not None:
            return slices
    if _not_a_table(value) is None and hasattr(value, "__arrow_c_stream__"):
        return _arrow_stream_slices
    return None


def _named(klass: type) -> str:
    """A type's library and name, as a message names it: ``pandas Series``, ``int``."""
    library = klass.__module__.partition(".")[0]
    return klass.__name__ if library == "builtins" else f"{library} {klass.__name__}"


def _not_a_table(value: object) -> str | None:
    """The name of what ``value`` is (or derives from) that looks like a table and is not
    one (a Series, an array), if it is one."""
    return next((n for k in type(value).__mro__ if (n := _named(k)) in _NOT_TABLES), None)


def _a(name: str) -> str:
    return f"an {name}" if name[:1] in "aeiou" else f"a {name}"


def _check_path(value: str | os.PathLike[str] | bytes | bytearray) -> None:
    if isinstance(value, str) and (value.lstrip()[:1] in ("{", "[") or "\n" in value):
        raise UsageError(
            "records is a string of JSON, not a path",
            hint="Pass the records themselves (json.loads(text) for an array, or a list of "
            "dicts), the path of a file, or the text as a binary file "
            "(io.BytesIO(text.encode())).",
        )


def _refuse(value: object) -> None:
    """Raise :class:`UsageError` for what cannot be records."""
    name = _not_a_table(value)
    if isinstance(value, Mapping):
        raise UsageError(
            "records is one dict, not an iterable of them",
            hint="Put it in a list: upsert([record], ...).",
        )
    if isinstance(value, io.TextIOBase):
        raise UsageError(
            "records is a file opened as text",
            hint="Open it in binary mode, open(path, 'rb'), or pass its path.",
        )
    if name is not None:
        raise UsageError(f"records is {_a(name)}, not a table of records", hint=_NOT_TABLES[name])
    name = _named(type(value))
    if name.endswith(" DataFrame") or not isinstance(value, Iterable):
        raise UsageError(f"records is {_a(name)}: vupsert cannot read it as records", hint=_READS)


_READS = (
    "Pass a path, a list of paths, a binary file, an iterable of dicts, a pandas or polars "
    "DataFrame, or a pyarrow Table."
)
_AS_FRAME = (
    "Make it a DataFrame with the columns records need (series.to_frame('data')), or pass dicts."
)
_NOT_TABLES = {
    "pandas Series": _AS_FRAME,
    "polars Series": _AS_FRAME,
    "pyarrow Array": _AS_FRAME.replace("series.to_frame('data')", "pa.table({'data': array})"),
    "pyarrow ChunkedArray": _AS_FRAME.replace(
        "series.to_frame('data')", "pa.table({'data': array})"
    ),
    "numpy ndarray": "Make it a DataFrame with column names (id, data, ...), or pass dicts.",
    "polars LazyFrame": "Collect it first: upsert(lazy.collect(), ...).",
}


# --- slices of each kind -------------------------------------------------------------------


def _pyarrow() -> Any:
    import pyarrow

    return pyarrow


def _has_pyarrow() -> bool:
    try:
        _pyarrow()
    except ImportError:
        return False
    return True


def _arrow_table_slices(table: Any, skip: int) -> Iterator[Slice]:
    _check_names(table.schema.names)
    yield from table.slice(skip).to_batches(max_chunksize=BATCH_ROWS)


def _record_batch_slices(batch: Any, skip: int) -> Iterator[Slice]:
    _check_names(batch.schema.names)
    for start in range(skip, batch.num_rows, BATCH_ROWS):
        yield batch.slice(start, BATCH_ROWS)


def _record_batch_reader_slices(reader: Any, skip: int) -> Iterator[Slice]:
    for batch in reader:
        if skip >= batch.num_rows:
            skip -= batch.num_rows
            continue
        yield from _record_batch_slices(batch, skip)
        skip = 0


def _arrow_stream_slices(exporter: Any, skip: int) -> Iterator[Slice]:
    try:
        pa = _pyarrow()
    except ImportError:
        raise UsageError(
            f"records is {_a(_named(type(exporter)))}: reading it needs pyarrow, which is not "
            "installed",
            hint="Install vupsert with its Parquet extra: pip install 'vupsert[parquet]'",
        ) from None
    yield from _record_batch_reader_slices(pa.RecordBatchReader.from_stream(exporter), skip)


def _polars_slices(frame: Any, skip: int) -> Iterator[Slice]:
    arrow = _has_pyarrow()
    names = [str(name) for name in frame.columns]
    for start in range(skip, frame.height, BATCH_ROWS):
        piece = frame.slice(start, BATCH_ROWS)
        if arrow:
            yield from piece.to_arrow().to_batches()
        else:
            yield names, [[plain(v) for v in column.to_list()] for column in piece.get_columns()]


def _pandas_slices(frame: Any, skip: int) -> Iterator[Slice]:
    named = [name for name in frame.index.names if name is not None]
    names = [str(name) for name in named] + [str(name) for name in frame.columns]
    _check_names(names)
    pa = _pyarrow() if _has_pyarrow() else None
    for start in range(skip, len(frame), BATCH_ROWS):
        piece = frame.iloc[start : start + BATCH_ROWS]
        if named:
            piece = piece.reset_index(level=named)
        piece.columns = names
        if pa is not None:
            try:
                yield pa.RecordBatch.from_pandas(piece, preserve_index=False)
                continue
            except (pa.ArrowException, ValueError, TypeError):
                pass  # a column of mixed types: value by value, as without pyarrow
        yield names, [_pandas_column(piece[name]) for name in names]


def _pandas_column(series: Any) -> list[Any]:
    missing = series.isna().tolist()
    return [None if gone else plain(v) for v, gone in zip(series.tolist(), missing, strict=True)]


def _check_names(names: list[str]) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise UsageError(
                f"{RECORDS}: the table has two columns named {name!r}",
                hint="Name every column once (a named index counts as a column).",
            )
        seen.add(name)


_TABLES: dict[tuple[str, str], Slices] = {
    ("pandas", "DataFrame"): _pandas_slices,
    ("polars", "DataFrame"): _polars_slices,
    ("pyarrow", "Table"): _arrow_table_slices,
    ("pyarrow", "RecordBatch"): _record_batch_slices,
    ("pyarrow", "RecordBatchReader"): _record_batch_reader_slices,
}


# --- Python values, by Parquet's rules ---------------------------------------------------


def plain(value: Any) -> Any:
    """``value`` in JSON's terms, as a Parquet cell of its type becomes (see
    :mod:`._parquet`): a struct's or a map's null fields left out, a list's kept."""
    if value is None or type(value) in (str, int, float, bool):
        return value
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, (datetime.date, datetime.time)):
        return iso(value)
    if isinstance(value, datetime.timedelta):
        return seconds(value)
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return text(bytes(value))
    tolist = getattr(value, "tolist", None)  # a numpy scalar or array
    if tolist is not None:
        return plain(tolist())
    return value
