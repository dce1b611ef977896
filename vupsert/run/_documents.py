"""A chunked run's counts by input record: what became of each record whose chunks were
sent, once all of them have settled.

A record read counts once, whatever its chunks. It is upserted once every chunk sent has
landed; rejected if one was refused, with one rejection that holds the record as read
(fed back with the same options, it is chunked again); superseded when a later record
with its id replaced it within a batch. Its chunks are counted apart (``chunks_*``).
Only a record upserted whole has the chunks of a longer, earlier version deleted (by
the ``tidy`` step, see :mod:`~vupsert.run._stale_chunks`), once no other record of its id is
in flight: a record refused keeps what the index held of it.

Records are known by where they were read (source and line), which all their chunks
share; one is forgotten once it is counted, so memory holds only what is in flight.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace

from ..mapping import Chunks
from ..outcomes import Settlement, Tally
from ..records import Fresh, Rejection
from ._batching import Item

Tidy = Callable[[Mapping[str, int], str], int | None]
"""Deletes the chunks numbered above each record's count (the batch named by the second
argument settled them); how many, or ``None`` when it could not."""

_LANDED, _SUPERSEDED, _REFUSED = range(3)


@dataclass(slots=True)
class _Open:
    """A record some of whose chunks have not settled yet."""

    chunks: Chunks
    """The record, without the list of its chunks."""
    waiting: int
    order: int
    """Its place in the input."""
    superseded: bool = False
    refused: Rejection | None = None
    """The first of its chunks' rejections."""


@dataclass(slots=True)
class _Id:
    """The records of one id that are in flight. A record of more chunks than a batch
    holds spans batches, and a later, shorter record of its id may land before its last
    chunks do: stale chunks are deleted once the last record of the id has settled, down
    to the count of the latest one upserted."""

    open: int = 0
    count: int = 0
    """Chunks of the latest record of the id upserted; 0 while none is."""
    order: int = -1


class Documents:
    def __init__(self, *, dry_run: bool = False, tidy: Tidy | None = None) -> None:
        self._dry_run = dry_run
        self._tidy = tidy
        self._open: dict[tuple[str, int], _Open] = {}
        self._ids: dict[str, _Id] = {}
        self._read = 0
        # Registered by the reading thread, settled by the sender threads.
        self._lock = threading.Lock()

    def watch(self, items: Iterable[Item]) -> Iterator[Item]:
        """``items``, unchanged; each record's chunks about to be batched are noted."""
        for item in items:
            chunks = item[1]
            if type(chunks) is Chunks:
                with self._lock:
                    key = (chunks.source, chunks.line)
                    # Without its chunks, which the batch holds: memory keeps them once.
                    kept = replace(chunks, records=[])
                    self._open[key] = _Open(kept, len(chunks.records), self._read)
                    self._ids.setdefault(chunks.parent, _Id()).open += 1
                    self._read += 1
            yield item

    def settle(self, settlement: Settlement) -> Tally:
        """What ``settlement`` adds to the counts: the records whose last chunks it
        settles; then the stale chunks of those upserted are deleted."""
        tally = Tally(rejected=list(settlement.batch.rejections))
        landed: dict[str, int] = {}
        with self._lock:
            for key, outcome, rejection in _chunk_outcomes(settlement):
                record = self._open.get(key)
                if record is None:
                    continue
                self._count(tally, outcome)
                if outcome == _SUPERSEDED:
                    record.superseded = True
                elif outcome == _REFUSED and record.refused is None:
                    record.refused = rejection
                record.waiting -= 1
                if record.waiting == 0:
                    del self._open[key]
                    self._done(record, tally, landed)
        if landed and self._tidy is not None:
            batch = settlement.batch
            deleted = self._tidy(landed, f"batch {batch.seq} ({batch.span})")
            if deleted is None:
                tally.stale_chunks, tally.hold = len(landed), True
            else:
                tally.chunks_deleted = deleted
        return tally

    def _count(self, tally: Tally, outcome: int) -> None:
        if self._dry_run:
            return
        if outcome == _LANDED:
            tally.chunks_upserted += 1
        elif outcome == _REFUSED:
            tally.chunks_rejected += 1

    def _done(self, record: _Open, tally: Tally, landed: dict[str, int]) -> None:
        chunks = record.chunks
        same = self._ids[chunks.parent]
        same.open -= 1
        if record.refused is not None:
            tally.rejected.append(_rejection(chunks, record.refused))
        elif record.superseded:
            tally.superseded += 1
        elif not self._dry_run:
            tally.upserted += 1
            if record.order > same.order:
                same.count, same.order = chunks.count, record.order
        if same.open == 0:
            del self._ids[chunks.parent]
            if same.count:
                landed[chunks.parent] = same.count


def _chunk_outcomes(
    settlement: Settlement,
) -> Iterator[tuple[tuple[str, int], int, Rejection | None]]:
    """``((source, line), outcome, rejection)`` of every chunk the batch settled."""
    batch = settlement.batch
    refused = {(r.source, r.line, r.id): r for r in settlement.rejected}
    sent = dict(zip(batch.ids, range(len(batch.ids)), strict=True)) if batch.superseded else {}
    for i, id_ in enumerate(batch.ids):
        key = (batch.sources[i], batch.lines[i])
        rejection = refused.get((*key, id_))
        yield key, _LANDED if rejection is None else _REFUSED, rejection
    for id_, earlier in _by_id(batch.superseded).items():
        # As the sender falls back: the latest earlier record, until one lands.
        at = sent[id_]
        landed = (batch.sources[at], batch.lines[at], id_) not in refused
        for record in reversed(earlier):
            key = (record[2], record[3])
            rejection = None if landed else refused.get((*key, id_))
            if landed:
                yield key, _SUPERSEDED, None
            elif rejection is not None:
                yield key, _REFUSED, rejection
            else:
                landed = True
                yield key, _LANDED, None


def _by_id(records: list[Fresh]) -> dict[str, list[Fresh]]:
    grouped: dict[str, list[Fresh]] = {}
    for record in records:
        grouped.setdefault(record[0], []).append(record)
    return grouped


def _rejection(chunks: Chunks, refused: Rejection) -> Rejection:
    number = (refused.id or "").rpartition("#")[2]
    return Rejection(
        chunks.source,
        chunks.line,
        chunks.end,
        f"chunk {number} of {chunks.count}: {refused.reason}",
        body=chunks.body,
        status=refused.status,
        id=chunks.parent,
        stage="send",
    )
