"""What a namespace (or the part of it whose ids start with a prefix) holds, learned with
one paged scan and kept compactly: for each id, a 64-bit hash of the id and a 64-bit
digest of its data and metadata, in two arrays sorted by the id's hash. 17 bytes an id,
not the records: a million stored ids take about 17 MB once sorted.

The hashes are Python's own (SipHash, in C), keyed anew by each process: a scope lives
for one run and is compared only with records hashed in that run. Two ids that hash
alike (about one chance in 10^7 for a million ids) would share one entry: the second of
them would then be sent again on every sync, never lost.
"""

from __future__ import annotations

import re
from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterator
from typing import Any

import orjson

from .retrying import Caller

PAGE = 1000
"""Vectors per ``range`` request: Upstash's largest page."""


_MASK = 0xFFFF_FFFF_FFFF_FFFF
_FLOATY = re.compile(rb"\.0|\de")
"""Where orjson's JSON may hold an integral float (``2.0``, ``1e16``); some strings match
too, which costs only the walk."""


def id_hash(id_: str) -> int:
    return hash(id_)


def digest(data: Any, metadata: Any) -> int:
    """The same for a record as read and as the index gives it back: keys in any order,
    equal numbers (``1.0`` and ``1``, ``-0.0`` and ``0``, ``1e16`` and
    ``10000000000000000``), absent and empty metadata are each one value."""
    meta = orjson.dumps(metadata or None, option=orjson.OPT_SORT_KEYS)
    if _FLOATY.search(meta):
        # Maybe an integral float, which a store may give back as an integer: spelled
        # as one. Most metadata has none, and skips the walk.
        meta = orjson.dumps(_canonical(metadata), option=orjson.OPT_SORT_KEYS)
    return hash((data, meta)) & _MASK


def _canonical(value: Any) -> Any:
    if type(value) is float and value.is_integer() and -(2**63) <= value < 2**64:
        return int(value)
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    return value


def pages(
    caller: Caller, *, prefix: str | None, data: bool, metadata: bool | None = None
) -> Iterator[list[dict[str, Any]]]:
    """The scope's vectors, a ``range`` page at a time: with their data when ``data``,
    their metadata when ``metadata`` (by default: as ``data``), ids alone otherwise."""
    cursor = "0"
    while True:
        payload: dict[str, Any] = {
            "cursor": cursor,
            "limit": PAGE,
            "includeData": data,
            "includeMetadata": data if metadata is None else metadata,
        }
        if prefix:
            payload["prefix"] = prefix
        result = caller.call("range", payload)
        vectors = result.get("vectors") if isinstance(result, dict) else None
        if not isinstance(vectors, list):
            raise ValueError(f"range answered {str(result)[:200]!r}, not a page of vectors")
        yield vectors
        cursor = str(result.get("nextCursor") or "")
        if not cursor:
            return


class Scope:
    def __init__(self, pairs: list[int]) -> None:
        """``pairs``: ``id_hash << 64 | digest`` for every stored id."""
        pairs.sort()
        self.ids = array("q", (pair >> 64 for pair in pairs))
        self.digests = array("Q", (pair & _MASK for pair in pairs))
        self.present = bytearray(len(self.ids))
        """Set for each stored id the source holds."""

    @classmethod
    def scan(
        cls,
        caller: Caller,
        *,
        prefix: str | None = None,
        on_page: Callable[[int], None] | None = None,
    ) -> Scope:
        pairs: list[int] = []
        for page in pages(caller, prefix=prefix, data=True):
            for vector in page:
                pairs.append(
                    hash(str(vector["id"])) << 64
                    | digest(vector.get("data"), vector.get("metadata"))
                )
            if on_page is not None:
                on_page(len(pairs))
        return cls(pairs)

    def __len__(self) -> int:
        return len(self.ids)

    def find(self, hashed: int) -> int:
        """The entry of an id's hash, or -1."""
        at = bisect_left(self.ids, hashed)
        return at if at < len(self.ids) and self.ids[at] == hashed else -1

    @property
    def stale(self) -> int:
        """Stored ids the source does not hold."""
        return len(self.present) - sum(self.present)

    def stale_ids(self, caller: Caller, *, prefix: str | None) -> Iterator[list[str]]:
        """The stale ids, a page at a time, from a second scan of ids alone (the scope
        keeps hashes, not ids). Ids stored since the first scan are not stale."""
        for page in pages(caller, prefix=prefix, data=False):
            stale = []
            for vector in page:
                at = self.find(id_hash(str(vector["id"])))
                if at >= 0 and not self.present[at]:
                    stale.append(str(vector["id"]))
            if stale:
                yield stale
