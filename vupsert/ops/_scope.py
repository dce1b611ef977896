"""What a namespace (or the part of it whose ids start with a prefix) holds, learned with
one paged scan and kept compactly: for each stored id, a 64-bit hash of the id and a
64-bit digest of its data and metadata (and, in a namespace that holds chunks, a 64-bit
hash of the record each belongs to: the chunk's parent), in arrays sorted by the id's
hash. 17 bytes an id (25 with chunks), not the records: a million stored ids take about
17 MB once sorted.

The hashes are Python's own (SipHash, in C), keyed anew by each process: a scope lives
for one run and is compared only with records hashed in that run. Two ids that hash
alike (about one chance in 10^7 for a million ids) would share one entry: the second of
them would then be sent again on every sync, never lost.

A record of the source is one record here too: the ids of a chunked record (its
chunks, or a copy stored whole before it was chunked) are its, so what the source no
longer holds is counted, and guarded, by record (:meth:`Scope.stale`).
"""

from __future__ import annotations

import re
from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import orjson

from ..mapping import chunk_of
from ..transport import Caller

PAGE = 1000
"""Vectors per ``range`` request: Upstash's largest page."""


_MASK = 0xFFFF_FFFF_FFFF_FFFF
_FLOATY = re.compile(rb"\.0|\de")
"""Where orjson's JSON may hold an integral float (``2.0``, ``1e16``); some strings match
too, which costs only the walk."""


def id_hash(id_: str) -> int:
    return hash(id_)


def record_hash(id_: str) -> int:
    """A record's hash among the records a scope holds."""
    return hash(id_) & _MASK


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


class Stale(NamedTuple):
    """What a scope holds that the source does not."""

    records: int
    """Records the source does not hold (a chunked one counts once)."""
    chunks: int
    """Chunks among their ids, and ids of records the source holds: chunks beyond a
    record's new count, a copy stored whole beside a record's chunks."""


class StaleId(NamedTuple):
    id: str
    missing: int | None
    """The :func:`record_hash` of the record, when the source does not hold it."""
    chunk: bool
    """Counted as a chunk: see :attr:`Stale.chunks`."""


class Scope:
    def __init__(self, entries: list[int], *, chunked: bool = False) -> None:
        """``entries``: ``id_hash << 128 | digest << 64 | record`` for every stored id,
        ``record`` being the :func:`record_hash` of the record it belongs to (when
        ``chunked``: some ids are chunks)."""
        entries.sort()
        self.ids = array("q", (entry >> 128 for entry in entries))
        self.digests = array("Q", (entry >> 64 & _MASK for entry in entries))
        self.records: array[int] | None = (
            array("Q", (entry & _MASK for entry in entries)) if chunked else None
        )
        """The record of each id, when some are chunks."""
        self.present = bytearray(len(self.ids))
        """Set for each stored id the source holds."""
        self.kept: set[int] = set()
        """Records whose stored ids all stay, whatever the source holds of them: the
        rejected ones."""
        self._held: array[int] | None = None
        """The records of the source, once :meth:`track` is called."""

    @classmethod
    def scan(
        cls,
        caller: Caller,
        *,
        prefix: str | None = None,
        on_page: Callable[[int], None] | None = None,
    ) -> Scope:
        entries: list[int] = []
        chunked = False
        for page in pages(caller, prefix=prefix, data=True):
            for vector in page:
                id_, metadata = str(vector["id"]), vector.get("metadata")
                parent = chunk_of(id_, metadata)
                chunked = chunked or parent is not None
                entries.append(
                    hash(id_) << 128
                    | digest(vector.get("data"), metadata) << 64
                    | record_hash(id_ if parent is None else parent)
                )
            if on_page is not None:
                on_page(len(entries))
        return cls(entries, chunked=chunked)

    def __len__(self) -> int:
        return len(self.ids)

    def find(self, hashed: int) -> int:
        """The entry of an id's hash, or -1."""
        at = bisect_left(self.ids, hashed)
        return at if at < len(self.ids) and self.ids[at] == hashed else -1

    def record_of(self, at: int) -> int:
        """The :func:`record_hash` of the record entry ``at`` belongs to."""
        return self.records[at] if self.records is not None else self.ids[at] & _MASK

    def track(self) -> None:
        """Keep the records the source holds (:meth:`hold`): needed when some of them,
        stored or read, are chunked."""
        self._held = array("Q")

    def hold(self, id_: str) -> None:
        """The source holds the record ``id_`` (a chunked record: its parent)."""
        if self._held is not None:
            self._held.append(record_hash(id_))

    def keep(self, id_: str) -> None:
        """Every stored id of the record ``id_`` stays."""
        self.kept.add(record_hash(id_))

    @property
    def stored(self) -> int:
        """Records stored (a chunked one counts once)."""
        return len(set(self.records)) if self.records is not None else len(self)

    def stale(self) -> Stale:
        """Stored ids the source does not hold (nor a rejection keeps), counted."""
        if self.records is None and self._held is None and not self.kept:
            count = len(self.present) - sum(self.present)
            return Stale(count, 0)
        missing: set[int] = set()
        chunks = 0
        for at in range(len(self)):
            if not self.present[at]:
                gone, chunk = self._why(at)
                if gone is not None:
                    missing.add(gone)
                chunks += chunk
        return Stale(len(missing), chunks)

    def _why(self, at: int) -> tuple[int | None, bool]:
        """``(record, chunk)`` of a stored id not present, as :class:`StaleId` has them;
        ``(None, False)`` when it stays."""
        record = self.record_of(at)
        if record in self.kept:
            return None, False
        chunk = record != self.ids[at] & _MASK
        if self._holds(record):
            return None, True
        return record, chunk

    def _holds(self, record: int) -> bool:
        held = self._held
        if held is None:
            return False
        at = bisect_left(held, record)
        return at < len(held) and held[at] == record

    def settle(self) -> None:
        """The source is read: its records are sorted, to be looked up."""
        if self._held is not None:
            self._held = array("Q", sorted(self._held))

    def stale_ids(self, caller: Caller, *, prefix: str | None) -> Iterator[list[StaleId]]:
        """The stale ids, a page at a time, from a second scan of ids alone (the scope
        keeps hashes, not ids). Ids stored since the first scan are not stale."""
        for page in pages(caller, prefix=prefix, data=False):
            stale = []
            for vector in page:
                id_ = str(vector["id"])
                at = self.find(id_hash(id_))
                if at < 0 or self.present[at]:
                    continue
                gone, chunk = self._why(at)
                if gone is not None or chunk:
                    stale.append(StaleId(id_, gone, chunk))
            if stale:
                yield stale
