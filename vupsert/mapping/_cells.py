"""A table's text cells as JSON values: cast to a column's type (``types``), or the number
or boolean a cell looks like (``infer_types``), else the text.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from ._safety import INT64

Cast = Callable[[str], Any]
"""Turns a CSV/TSV cell into a value of a column's type, or raises ValueError."""

# JSON's number grammar: what a CSV metadata cell must look like to become a number.
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?").fullmatch
_NUMBER_START = frozenset("-0123456789")
_BOOLS = {"true": True, "false": False}

_INTEGER = re.compile(r"[-+]?[0-9]+").fullmatch
_DECIMAL = re.compile(r"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?").fullmatch
_TRUTH = {"true": True, "t": True, "yes": True, "y": True, "1": True}
_TRUTH.update({"false": False, "f": False, "no": False, "n": False, "0": False})


def _to_int(cell: str) -> int:
    text = cell.strip()
    if not _INTEGER(text):
        raise ValueError("is not an integer")
    number = int(text)
    if not -INT64 <= number < INT64:
        raise ValueError("is too large for a 64-bit integer; make the column str")
    return number


def _to_float(cell: str) -> float:
    text = cell.strip()
    if not _DECIMAL(text):
        raise ValueError("is not a number")
    value = float(text)
    if value - value != 0.0:
        raise ValueError("is not a finite number")
    return value


def _to_bool(cell: str) -> bool:
    try:
        return _TRUTH[cell.strip().lower()]
    except KeyError:
        raise ValueError("is not true/false (nor yes/no, 1/0)") from None


def _to_json(cell: str) -> Any:
    try:
        return orjson.loads(cell)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"is not valid JSON ({exc.msg})") from None


COLUMN_TYPES: Mapping[str, Cast] = {
    "str": str,
    "int": _to_int,
    "float": _to_float,
    "bool": _to_bool,
    "json": _to_json,
}
"""What each of ``types``' names does to a CSV/TSV cell."""


def infer_value(cell: str) -> Any:
    """A CSV cell as metadata: a JSON-style number or true/false becomes one, else the text.

    Integers keep only their canonical spelling within int64 (``"007"``, ``"+5"`` and
    ``"1_000"`` stay text: zip codes and phone numbers must not lose digits); floats must
    be finite.
    """
    first = cell[0]
    if first in _NUMBER_START:
        m = _NUMBER(cell)
        if m is not None:
            if m.group(1) is None and m.group(2) is None:
                number = int(cell)
                if -INT64 <= number < INT64:
                    return number
            else:
                value = float(cell)
                if value - value == 0.0:  # finite: inf - inf and nan - nan are nan
                    return value
        return cell
    if first in "tTfF" and len(cell) <= 5:
        return _BOOLS.get(cell.lower(), cell)
    return cell
