"""Parquet files, read with pyarrow (the ``parquet`` extra), a few thousand rows at a time.

pyarrow is imported only when a Parquet input is read, so importing vupsert or loading
JSON Lines never pays for it. The file is streamed by row group
(``ParquetFile.iter_batches``): only one batch of rows is turned into Python at a time,
never the whole table.

Each row is a dict of its columns, as JSON would have them: structs as objects (so dotted
paths reach their fields), lists as arrays, numbers and booleans as they are, timestamps,
dates and times as ISO 8601 text, decimals as numbers, durations as seconds, binary cells
as text when they are UTF-8 (else base64). A null column stays in the row as ``None`` (the
column exists; the mapping leaves it out of metadata), a null struct field is left out.

A row is numbered from 1 (``docs.parquet:7`` is the seventh row), and a checkpoint resumes
by row: :attr:`Position.line` is the row. :attr:`Position.offset` is the file's size times
the share of rows read, which is what progress counts: the display's bytes are rows, in
proportion.
"""

from __future__ import annotations

import base64
import datetime
import os
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from ..config.settings import option
from ..errors import InputError, UsageError
from ..records import Position, Rejection, Row
from ._opening import Reading, display_name, is_stream

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.parquet as pq

BATCH_ROWS = 1024
"""Rows turned into Python at a time."""
_BUFFER_SIZE = 64 * 1024
"""Read column chunks through a buffer of this size rather than whole: a row group of a
million rows would otherwise sit in memory, compressed, as a whole."""

Convert = Callable[[Any], Any]


def _pyarrow(source: str) -> tuple[Any, Any]:
    """``(pyarrow, pyarrow.parquet)``, or a usage error that says how to get them."""
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        raise UsageError(
            f"{source}: reading Parquet needs pyarrow, which is not installed.",
            hint="Install vupsert with its Parquet extra: pip install 'vupsert[parquet]'",
        ) from None
    return pyarrow, pyarrow.parquet


def _open(name: str) -> pq.ParquetFile:
    if is_stream(name):
        raise UsageError(
            f"{display_name(name)}: Parquet cannot be read from a pipe: its footer, which "
            "says where everything is, comes last.",
            hint=f"Save it to a file and give its path, or give the real format with "
            f"{option('format')}.",
        )
    _, parquet = _pyarrow(name)
    import pyarrow

    try:
        return parquet.ParquetFile(name, buffer_size=_BUFFER_SIZE, pre_buffer=False)
    except FileNotFoundError:
        raise InputError(f"{name}: no such file", hint="Check the path.") from None
    except (OSError, pyarrow.ArrowException) as exc:
        raise InputError(
            f"{name}: cannot be read as Parquet ({exc})",
            hint="Check that it is a whole Parquet file (not cut short by a copy), or give "
            f"its real format with {option('format')}.",
        ) from None


def columns_of(name: str) -> list[str]:
    """The top-level column names of a Parquet file, from its footer alone."""
    return list(_open(name).schema_arrow.names)


def read_parquet(reading: Reading) -> Iterator[Row | Rejection]:
    """Each row of a Parquet file, as a :class:`Row` numbered from 1.

    ``start`` resumes after row ``start.line``: whole row groups before it are not read.
    ``on_bytes(n)`` hears the file's size, in increments, in proportion to the rows read,
    so that over the whole file they add up to the file's size.
    """
    name, start, on_bytes = reading.name, reading.start, reading.on_bytes
    file = _open(name)
    pyarrow, _ = _pyarrow(name)
    try:
        size = os.path.getsize(name)
    except OSError:
        size = 0
    total = file.metadata.num_rows
    skip = start.line if start is not None else 0
    if skip > total:
        raise InputError(
            f"{name}: has {total:,} rows, fewer than the {skip:,} the checkpoint settled; "
            "it changed since that run",
            hint=f"Start this input over with {option('restart', True)} (or remove the "
            "checkpoint).",
        )

    def offset(row: int) -> int:
        return size * row // total if total else size

    reported = 0

    def report(done: int) -> None:
        nonlocal reported
        if on_bytes is not None and done > reported:
            on_bytes(done - reported)
            reported = done

    report(offset(skip))
    groups: list[int] = []
    row = 0
    for g in range(file.num_row_groups):
        rows = file.metadata.row_group(g).num_rows
        if row + rows > skip or groups:
            groups.append(g)
        else:
            row += rows
    cells = ArrowCells(pyarrow)
    try:
        batches = (
            file.iter_batches(batch_size=BATCH_ROWS, row_groups=groups, use_threads=False)
            if groups
            else ()
        )
        for batch in batches:
            if row < skip:
                if row + batch.num_rows <= skip:
                    row += batch.num_rows
                    continue
                batch = batch.slice(skip - row)
                row = skip
            for value in cells.rows(batch):
                row += 1
                yield Row(name, row, Position(offset(row), row), value)
            report(offset(row))
    except (OSError, pyarrow.ArrowException) as exc:
        raise InputError(
            f"{name}: reading failed after row {row:,} ({exc})",
            hint="The rows before it were loaded. Check that the file is whole.",
        ) from None
    report(size)


class ArrowCells:
    """Rows of Arrow record batches as dicts of JSON's terms: the converters of a schema
    are made once, and again only when a batch comes with another schema."""

    def __init__(self, pyarrow: Any) -> None:
        self._pyarrow = pyarrow
        self._schema: Any = None
        self._converters: list[Convert | None] = []

    def rows(self, batch: pa.RecordBatch) -> Iterator[dict[str, Any]]:
        """Each row of ``batch``, ``{column: value}``."""
        if self._schema is None or not batch.schema.equals(self._schema):
            self._schema = batch.schema
            self._converters = [_converter(self._pyarrow, f.type) for f in batch.schema]
        names = batch.schema.names
        columns = [
            _column(batch.column(i).to_pylist(), convert)
            for i, convert in enumerate(self._converters)
        ]
        for values in zip(*columns, strict=True):
            yield dict(zip(names, values, strict=True))


def _column(values: list[Any], convert: Convert | None) -> list[Any]:
    if convert is None:
        return values
    return [None if v is None else convert(v) for v in values]


def _converter(pa: Any, t: pa.DataType) -> Convert | None:
    """What turns a cell of type ``t`` (as pyarrow's ``to_pylist`` gives it) into JSON's
    terms; ``None`` when it already is."""
    types = pa.types
    if types.is_timestamp(t) or types.is_date(t) or types.is_time(t):
        return _iso
    if types.is_decimal(t) or types.is_float16(t):
        return float
    if types.is_duration(t):
        return _seconds
    if types.is_binary(t) or types.is_large_binary(t) or types.is_fixed_size_binary(t):
        return _text
    if types.is_dictionary(t):
        return _converter(pa, t.value_type)
    if types.is_struct(t):
        fields = {t.field(i).name: _converter(pa, t.field(i).type) for i in range(t.num_fields)}
        return lambda value: _struct(value, fields)
    if types.is_map(t):
        key, item = _converter(pa, t.key_type), _converter(pa, t.item_type)
        return lambda pairs: _map(pairs, key, item)
    if types.is_list(t) or types.is_large_list(t) or types.is_fixed_size_list(t):
        inner = _converter(pa, t.value_type)
        if inner is None:
            return None
        return lambda values: _column(values, inner)
    return None


def _struct(value: dict[str, Any], fields: dict[str, Convert | None]) -> dict[str, Any]:
    out = {}
    for key, item in value.items():
        if item is None:
            continue
        convert = fields.get(key)
        out[key] = convert(item) if convert is not None else item
    return out


def _map(pairs: list[tuple[Any, Any]], key: Convert | None, item: Convert | None) -> dict[str, Any]:
    out = {}
    for k, v in pairs:
        if v is None:
            continue
        k = key(k) if key is not None else k
        out[k if isinstance(k, str) else str(k)] = item(v) if item is not None else v
    return out


def _iso(value: Any) -> Any:
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    isoformat = getattr(value, "isoformat", None)  # a pandas Timestamp, with nanoseconds
    return isoformat() if isoformat is not None else str(value)


def _seconds(value: Any) -> Any:
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    total_seconds = getattr(value, "total_seconds", None)
    return total_seconds() if total_seconds is not None else value


def _text(value: bytes) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return base64.b64encode(value).decode("ascii")
