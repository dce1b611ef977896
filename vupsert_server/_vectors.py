"""Vectors as the index keeps them, read from requests and written into answers.

A dense vector is a little-endian float32 blob: 4 bytes a value, the form Upstash keeps,
and the most compact one that answers a value as it was sent (``0.1`` comes back as
``0.1``). A sparse vector is one blob too: its ``n`` int32 indices in ascending order,
then their ``n`` float32 values. Blobs are what storage holds and what a query scans;
Python floats exist only for the vector being scored.
"""

from __future__ import annotations

import struct
import sys
from array import array
from collections.abc import Sequence
from typing import Any

from ._errors import ApiError, bad_request, kind

_FLOAT32 = struct.Struct("<f")
_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1
_LITTLE = sys.byteorder == "little"


def pack_vector(values: Sequence[float]) -> bytes:
    """Float32 bytes of ``values``; raises :class:`OverflowError` beyond float32's range."""
    return struct.pack(f"<{len(values)}f", *values)


def unpack_vector(blob: bytes) -> array[float]:
    values = array("f")
    values.frombytes(blob)
    if not _LITTLE:
        values.byteswap()
    return values


def pack_sparse(indices: Sequence[int], values: Sequence[float]) -> bytes:
    """The blob of a sparse vector whose ``indices`` are ascending and distinct."""
    count = len(indices)
    return struct.pack(f"<{count}i{count}f", *indices, *values)


def unpack_sparse(blob: bytes) -> tuple[array[int], array[float]]:
    half = len(blob) // 2
    indices = array("i")
    indices.frombytes(blob[:half])
    values = array("f")
    values.frombytes(blob[half:])
    if not _LITTLE:
        indices.byteswap()
        values.byteswap()
    return indices, values


def to_float32(value: float) -> float:
    """``value`` rounded to the nearest float32 (what a score is compared as)."""
    try:
        result: float = _FLOAT32.unpack(_FLOAT32.pack(value))[0]
    except OverflowError:
        return value
    return result


def short_float32(value: float) -> float:
    """``value`` rounded to float32, as the shortest decimal that reads back the same.

    Upstash keeps float32 and answers ``0.1``, not ``0.10000000149011612``.
    """
    value = to_float32(value)
    for digits in (6, 7, 8):
        short = float(f"{value:.{digits}g}")
        try:
            if _FLOAT32.unpack(_FLOAT32.pack(short))[0] == value:
                return short
        except OverflowError:
            break
    return value


def dense_json(blob: bytes) -> list[float]:
    return [short_float32(x) for x in unpack_vector(blob)]


def sparse_json(blob: bytes) -> dict[str, list[Any]]:
    indices, values = unpack_sparse(blob)
    return {"indices": indices.tolist(), "values": [short_float32(x) for x in values]}


def parse_dense(value: Any, dimension: int, what: str) -> bytes:
    """The blob of a dense vector given in a request; ``what`` names it in a refusal."""
    if not isinstance(value, list) or not all(_is_number(x) for x in value):
        raise bad_request(f"{what} must be an array of numbers")
    if len(value) != dimension:
        raise ApiError(
            422, f"{what} has dimension {len(value)}, but the index has dimension {dimension}"
        )
    try:
        return pack_vector(value)
    except (OverflowError, struct.error):
        raise bad_request(f"{what} holds a number beyond float32's range") from None


def parse_sparse(value: Any, what: str) -> bytes:
    """The blob of ``{"indices": [...], "values": [...]}``, sorted by index."""
    if not isinstance(value, dict) or set(value) != {"indices", "values"}:
        raise bad_request(f"{what} must be an object with indices and values")
    indices, values = value["indices"], value["values"]
    if not isinstance(indices, list) or not all(
        isinstance(i, int) and not isinstance(i, bool) and _INT32_MIN <= i <= _INT32_MAX
        for i in indices
    ):
        raise bad_request(f"{what}: indices must be an array of 32-bit integers")
    if not isinstance(values, list) or not all(_is_number(x) for x in values):
        raise bad_request(f"{what}: values must be an array of numbers, not {kind(values)}")
    if len(indices) != len(values):
        raise bad_request(
            f"{what} has {len(indices)} indices but {len(values)} values; they must pair up"
        )
    if not indices:
        raise bad_request(f"{what} must have at least one index")
    # A repeated index adds up, as in any coordinate-list sparse format (the service
    # takes repeats: its SDK's tests send random indices).
    summed: dict[int, float] = {}
    for index, number in zip(indices, values, strict=True):
        summed[index] = summed.get(index, 0.0) + number
    ordered = sorted(summed)
    try:
        return pack_sparse(ordered, [summed[i] for i in ordered])
    except (OverflowError, struct.error):
        raise bad_request(f"{what} holds a number beyond float32's range") from None


def sparse_query(blob: bytes) -> dict[int, float]:
    indices, values = unpack_sparse(blob)
    return dict(zip(indices, values, strict=True))


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
