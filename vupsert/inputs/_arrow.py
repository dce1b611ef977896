"""Arrow record batches as rows in JSON's terms: the conversions that Parquet files and
tables handed over from Python (pyarrow, pandas, polars) share."""

from __future__ import annotations

import base64
import datetime
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

BATCH_ROWS = 1024
"""Rows turned into Python at a time."""

Convert = Callable[[Any], Any]


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
        return iso
    if types.is_decimal(t) or types.is_float16(t):
        return float
    if types.is_duration(t):
        return seconds
    if types.is_binary(t) or types.is_large_binary(t) or types.is_fixed_size_binary(t):
        return text
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


def iso(value: Any) -> Any:
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    isoformat = getattr(value, "isoformat", None)  # a pandas Timestamp, with nanoseconds
    return isoformat() if isoformat is not None else str(value)


def seconds(value: Any) -> Any:
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    total_seconds = getattr(value, "total_seconds", None)
    return total_seconds() if total_seconds is not None else value


def text(value: bytes) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return base64.b64encode(value).decode("ascii")
