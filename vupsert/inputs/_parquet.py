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

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ..config import option
from ..errors import InputError, UsageError
from ..records import Position, Rejection, Row
from ._arrow import BATCH_ROWS, ArrowCells
from ._opening import Reading, display_name, is_stream

if TYPE_CHECKING:
    import pyarrow.parquet as pq

_BUFFER_SIZE = 64 * 1024
"""Read column chunks through a buffer of this size rather than whole: a row group of a
million rows would otherwise sit in memory, compressed, as a whole."""


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
