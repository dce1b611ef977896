"""Before a run: the columns the mapping names, looked up in each CSV/TSV file's header
and each Parquet file's schema.

A column missing from a header would reject every row of that file alike, so it is a
usage error found before anything is sent. Only regular files are looked at: reading
ahead in a pipe (``<(zcat ...)``) would eat the rows the run must read. stdin is checked
by the mapper at its first row instead. A Parquet input also needs pyarrow, and a file.
"""

from __future__ import annotations

import os
from itertools import islice

from ._parquet import columns_of
from .errors import UsageError
from .mapping import Mapper
from .records import Position, Row
from .settings import Settings, option
from .sources import detect_format, display_name, is_stream, iter_rows

ROWS_LOOKED_AT = 100
"""Rows read to find one that parses, when the first ones do not."""


def check_columns(settings: Settings) -> None:
    """Raise :class:`~vupsert.errors.ColumnError` if a CSV/TSV file input lacks a column
    that the mapping options name (id, data, template fields, metadata columns)."""
    mapper: Mapper | None = None
    for name in settings.inputs:
        if detect_format(name, settings.read.format) == "parquet":
            _check_parquet(settings, name)
            continue
        if not os.path.isfile(name):
            continue
        if detect_format(name, settings.read.format) == "jsonl":
            continue
        if mapper is None:
            mapper = Mapper(settings.mapping, tabular=True)
        rows = iter_rows(name, settings.read)
        try:
            for item in islice(rows, ROWS_LOOKED_AT):
                if isinstance(item, Row):
                    # Every cell filled: only a column the header lacks can fail.
                    cells = dict.fromkeys(item.value, "x")
                    mapper.map(Row(item.source, item.line, item.end, cells))
                    break
        finally:
            close = getattr(rows, "close", None)
            if close is not None:
                close()  # the file, now rather than whenever the generator is collected


def _check_parquet(settings: Settings, name: str) -> None:
    if is_stream(name):
        raise UsageError(
            f"{display_name(name)}: Parquet cannot be read from a pipe: its footer, which "
            "says where everything is, comes last.",
            hint=f"Save it to a file and give its path, or give the real format with "
            f"{option('format')}.",
        )
    mapper = Mapper(settings.mapping)
    mapper.typed = True
    # Every column there and filled: only a column the schema lacks can fail.
    cells = dict.fromkeys(columns_of(name), "x")
    mapper.map(Row(name, 0, Position(0, 0), cells))
