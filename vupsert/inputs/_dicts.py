"""Records a Python caller hands over as dicts (any iterable of mappings), streamed.

Each is read as a JSON Lines line is, numbered from 1 (``<records>:7`` is the seventh),
with its number as its position and no text: its values come from Python, not from JSON
text, so the mapping checks what JSON text could not have held (a NaN, a tuple).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from ..errors import CallerError
from ..records import JsonLine, Position, Rejection
from ._opening import RECORDS, Reading


def read_dicts(reading: Reading) -> Iterator[JsonLine | Rejection]:
    """Each of ``reading.records`` as a :data:`~vupsert.records.JsonLine`, or a
    :class:`~vupsert.records.Rejection` for one that is not a mapping; ``start`` skips
    those before it. What the caller's iterator raises is a
    :class:`~vupsert.errors.CallerError`."""
    if reading.records is None:
        raise ValueError(f"{RECORDS} is read from the records handed over, and none were")
    skip = reading.start.line if reading.start is not None else 0
    for n, value in enumerate(_theirs(reading.records), 1):
        if n <= skip:
            continue
        if type(value) is not dict:
            if not isinstance(value, Mapping):
                reason = f"expected a dict, got {type(value).__name__}"
                yield Rejection(RECORDS, n, Position(n, n), reason, raw=repr(value)[:1000])
                continue
            value = dict(value)
        yield n, n, value, b""


def _theirs(records: Iterable[Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
    """The caller's records; what their iterator raises is a :class:`CallerError`."""
    try:
        iterator = iter(records)
    except Exception as exc:
        raise CallerError(exc, "the records iterable") from exc
    while True:
        try:
            value = next(iterator)
        except StopIteration:
            return
        except Exception as exc:
            raise CallerError(exc, "the records iterable") from exc
        yield value
