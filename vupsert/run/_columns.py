"""The columns and fields the mapping names, looked up in the input before anything is
sent: in each CSV/TSV file's header and each Parquet file's schema before a run, and in
the first records of JSON inputs as they are read.

A column missing from a header would reject every row of that file alike, so it is a
usage error found before anything is sent. Only regular files are looked at: reading
ahead in a pipe (``<(zcat ...)``) would eat the rows the run must read. stdin is checked
by the mapper at its first row instead. A Parquet input also needs pyarrow, and a file.

JSON records have no header: a field that options name is looked for in the first
records read, which are held back until it is found (:func:`check_fields`). Types given to
columns (:func:`check_types`) are refused when no input is CSV or TSV.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import replace
from itertools import islice
from typing import Any

from ..config import option
from ..config.settings import Settings
from ..errors import UsageError
from ..inputs import RECORDS, InputFormat, Item, format_of, iter_rows
from ..mapping import Mapper, Named
from ..records import REJECT_KEY, Cells, Position, Row

ROWS_LOOKED_AT = 100
"""Rows read to find one that parses, when the first ones do not; JSON records looked at
for the fields options name."""
FIELDS_SHOWN = 20
"""Field names a message lists, at most."""


def read_settings(settings: Settings, records: Iterable[Mapping[str, Any]] | None) -> Settings:
    """The settings a run reads its inputs with, once their types are checked
    (:func:`check_types`): with a caller's ``records``, those are the one input."""
    check_types(settings)
    return settings if records is None else replace(settings, inputs=(RECORDS,))


def check_types(settings: Settings) -> None:
    """``types`` cast CSV/TSV cells: given for inputs none of which is one, they would do
    nothing, so they are refused rather than ignored."""
    types = settings.mapping.types
    if not types:
        return
    if not any(
        format_of(name, settings.read.format).cells is Cells.TEXT for name in settings.inputs
    ):
        raise UsageError(
            f"{option('types', dict(types))} applies to CSV and TSV cells, and no input is "
            "CSV or TSV.",
            hint="JSON and Parquet values keep the types they have: leave it out.",
        )


def check_columns(settings: Settings) -> None:
    """Raise :class:`~vupsert.errors.ColumnError` if a CSV/TSV file input lacks a column
    that the mapping options name (id, data, template fields, metadata columns)."""
    mapper: Mapper | None = None
    for name in settings.inputs:
        fmt = format_of(name, settings.read.format)
        if fmt.columns is not None:
            _check_schema(settings, name, fmt)
            continue
        if not os.path.isfile(name) or not fmt.tabular:
            continue
        if mapper is None:
            mapper = Mapper(settings.mapping, cells=fmt.cells)
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


def _check_schema(settings: Settings, name: str, fmt: InputFormat) -> None:
    assert fmt.columns is not None
    mapper = Mapper(settings.mapping, cells=fmt.cells)
    # Every column there and filled: only a column the schema lacks can fail.
    cells = dict.fromkeys(fmt.columns(name), "x")
    mapper.map(Row(name, 0, Position(0, 0), cells))


def check_fields(
    mapper: Mapper,
    source: str,
    lines: Iterator[Item],
    on_warning: Callable[[str], None],
) -> Iterator[Item]:
    """``lines`` of one input, held back until some of the first records are seen to
    have each field that a given option names (a table's mapper names none: its header
    is checked by the mapper at the first row). :class:`~vupsert.errors.UsageError` if none
    has a field the records need; a warning if none has a ``metadata_columns`` name, which
    may be a field of later records only."""
    named = mapper.named_fields()
    if not named:
        return lines
    return _checked(named, source, lines, on_warning)


def _checked(
    named: list[Named],
    source: str,
    lines: Iterator[Item],
    on_warning: Callable[[str], None],
) -> Iterator[Item]:
    held: list[Item] = []
    seen: dict[str, None] = {}
    records = 0
    for item in lines:
        held.append(item)
        if type(item) is not tuple or REJECT_KEY in item[2]:
            continue  # unparsed, or a rejects-file line: mapped whatever the options say
        value = item[2]
        records += 1
        seen.update(dict.fromkeys(map(str, value)))
        named = [field for field in named if not field.has(value)]
        if not named or records >= ROWS_LOOKED_AT:
            break
    if named and records:
        first = "the first" if records >= ROWS_LOOKED_AT else "the"
        fields = ", ".join(list(seen)[:FIELDS_SHOWN]) + (
            ", ..." if len(seen) > FIELDS_SHOWN else ""
        )
        required = [field for field in named if field.required]
        missing = " nor the field ".join(
            f"{field.name!r} ({field.option})" for field in required or named
        )
        message = f"{source}: none of {first} {records:,} records has the field {missing}"
        if required:
            raise UsageError(
                f"{message}; their fields: {fields}",
                hint="Check the name against them: nothing of this input was sent.",
            )
        on_warning(f"{message} (their fields: {fields}): check its spelling")
    yield from held
    yield from lines
