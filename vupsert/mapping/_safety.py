"""What JSON cannot hold, or not as it was given: an integer beyond 64 bits, a NaN or an
infinity, text that is not valid Unicode, a key that is not a string. Each is found and
named by its path in the row, so a rejection says which field to fix.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, NamedTuple

INT64 = 2**63
"""Integers from ``-INT64`` to ``INT64 - 1`` are kept exactly by JSON readers."""
EXACT_FLOAT_INT = 2**53
"""A float at least this large may have lost digits of the integer it was read from."""

DIGITS_AS_NINES = bytes(0x39 if 0x30 <= b <= 0x39 else 0x20 for b in range(256))
NINETEEN = b"9" * 19
"""A line may hold an integer beyond 64 bits when its digits, translated to nines, hold 19
in a row; only such lines are parsed a second time, exactly. A table translation and a
substring search cost a tenth of a regular expression's search per line."""


class Bad(Exception):
    """A row cannot become a record; raised inside the mapping, never outside it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class KeyPaths(NamedTuple):
    """Where a metadata key is in the row: a key of the row's metadata object is under
    the metadata field, any other is a field of the row."""

    name: str
    """The metadata field's name."""
    held: dict[str, Any] | None
    """The row's metadata object, if it has one."""

    def holds(self, key: object) -> bool:
        return self.held is not None and key in self.held

    def of(self, key: str) -> str:
        return f"{self.name}.{key}" if self.holds(key) else key


class _Huge(str):
    """An integer literal beyond 64 bits, as written."""


def _exact_int(literal: str) -> int | _Huge:
    number = int(literal)
    return number if -INT64 <= number < INT64 else _Huge(literal)


def exactly(text: bytes) -> dict[str, Any] | None:
    """A JSON object with every integer beyond 64 bits kept as its digits (see
    :func:`is_huge`); ``None`` if ``text`` is not one."""
    try:
        exact = json.loads(text, parse_int=_exact_int)
    except ValueError:
        return None
    return exact if type(exact) is dict else None


def first(value: Any, path: str, test: Callable[[Any], bool]) -> tuple[str, Any] | None:
    """The dotted path of the first value in ``value`` that passes ``test``, and it."""
    if test(value):
        return path, value
    if isinstance(value, dict):
        for key, item in value.items():
            found = first(item, f"{path}.{key}", test)
            if found is not None:
                return found
    elif isinstance(value, (list, tuple)):
        for n, item in enumerate(value):
            found = first(item, f"{path}[{n}]", test)
            if found is not None:
                return found
    return None


def find(
    meta: dict[str, Any] | None, test: Callable[[Any], bool], paths: KeyPaths
) -> tuple[str, Any] | None:
    """The first value in ``meta`` that passes ``test``, with its path in the row."""
    for key, item in (meta or {}).items():
        found = first(item, paths.of(key), test)
        if found is not None:
            return found
    return None


def is_huge(value: Any) -> bool:
    return type(value) is _Huge


def huge_reason(path: str, digits: str) -> str:
    return (
        f'field "{path}" holds {digits}, too large for a 64-bit integer: it would be stored '
        "as an approximate number; write it as a string"
    )


def nonfinite(value: Any) -> bool:
    return isinstance(value, float) and value - value != 0.0  # inf - inf and nan - nan: nan


def nonfinite_reason(path: str, number: float) -> str:
    return f'field "{path}" is {number!r}, a number JSON cannot hold (it would be stored as null)'


def check_finite(meta: dict[str, Any] | None, paths: KeyPaths) -> None:
    """Raise :class:`Bad` if metadata holds a NaN or an infinity, which JSON writes as
    null: only values from Python or Parquet can."""
    found = find(meta, nonfinite, paths)
    if found is not None:
        raise Bad(nonfinite_reason(*found))


def text_problem(id_: str | None, data: Any, meta: dict[str, Any] | None, paths: KeyPaths) -> str:
    """Why a record cannot be written as JSON."""
    for key, item in (meta or {}).items():
        if not isinstance(key, str):
            return _key_reason(paths.name if paths.holds(key) else "", key)
        found = first(item, paths.of(key), _bad_keys)
        if found is not None:
            path, holder = found
            return _key_reason(path, next(k for k in holder if not isinstance(k, str)))
    for name, item in (("id", id_), ("data", data), ("metadata", meta)):
        where = _bad_text_at(item)
        if where is not None:
            return f"{name} has invalid text (a lone surrogate at {where})"
    huge = find(_marked_huge(meta), is_huge, paths)
    if huge is not None:
        return huge_reason(*huge)
    return "the record cannot be written as JSON"


def scrub(value: Any) -> Any:
    """A copy of a value that orjson can always write: bad text made visible as escapes,
    an integer beyond 64 bits as its digits, anything else JSON lacks as its repr."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode()
    if type(value) is int and not -INT64 <= value < INT64:
        return str(value)
    if value is not None and not isinstance(value, (bool, int, float, dict, list)):
        return repr(value)
    if isinstance(value, dict):
        return {scrub(k) if isinstance(k, str) else str(k): scrub(v) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v) for v in value]
    return value


def _bad_keys(value: Any) -> bool:
    return isinstance(value, dict) and not all(isinstance(k, str) for k in value)


def _key_reason(owner: str, key: object) -> str:
    where = f'field "{owner}"' if owner else "the record"
    return (
        f"{where} has a key that is not a string, {key!r} ({type(key).__name__}): JSON keys "
        "are text"
    )


def _bad_text_at(value: Any) -> str | None:
    """Where a value holds a lone surrogate (text that is not valid Unicode), if it does."""
    if isinstance(value, str):
        try:
            value.encode()
        except UnicodeEncodeError as exc:
            return f"character {exc.start + 1}"
        return None
    if isinstance(value, dict):
        for k, v in value.items():
            if _bad_text_at(k) is not None:
                return f"key {k.encode('utf-8', 'backslashreplace').decode()!r}"
            where = _bad_text_at(v)
            if where is not None:
                return f"key {k!r}, {where}"
    if isinstance(value, list):
        for i, v in enumerate(value):
            where = _bad_text_at(v)
            if where is not None:
                return f"item {i}, {where}"
    return None


def _marked_huge(value: Any) -> Any:
    """``value`` with every integer beyond 64 bits marked as a :class:`_Huge`."""
    if type(value) is int and not -INT64 <= value < INT64:
        return _Huge(value)
    if isinstance(value, dict):
        return {k: _marked_huge(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_marked_huge(v) for v in value]
    return value
