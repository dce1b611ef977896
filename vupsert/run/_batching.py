"""Records -> batches bounded by count and bytes; a batch
(:class:`~vupsert.records.Batch`) is the unit that is sent, re-sent, split and
checkpointed.

A batch also owns the span of input it came from, including the records rejected locally
inside that span, so that when it settles everything up to its end is settled. Records
are kept as the tuples they came in as, and split into the batch's columns once, when it
closes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import cast

from ..config.settings import MAX_BATCH_BYTES
from ..mapping import Chunks
from ..records import MAX_BATCH_RECORDS, Batch, Fresh, Position, Record, Rejection, Skip


def as_fresh(record: Record) -> Fresh:
    """A record object as the tuple the hot path carries."""
    return (record.id, record.body, record.source, record.line, *record.end)


def batch_of(seq: int, fresh: list[Fresh], first_where: str = "", last_where: str = "") -> Batch:
    """A batch of records already in hand, numbered ``seq``: a fallback's records."""
    return _columns(seq, fresh, first_where, last_where)


def _columns(seq: int, fresh: list[Fresh], first_where: str, last_where: str) -> Batch:
    if not fresh:
        return Batch(seq, first_where=first_where, last_where=last_where)
    ids, bodies, sources, lines, offsets, end_lines = zip(*fresh, strict=True)
    return Batch(
        seq,
        # orjson returns even a small body in a 4 KiB allocation: joining the bodies as
        # the batch closes frees those (and the lines sent as written) at once, instead
        # of holding them while in flight.
        body=_join(bodies),
        ids=ids,
        lengths=list(map(len, bodies)),
        sources=sources,
        lines=lines,
        offsets=offsets,
        end_lines=end_lines,
        first_where=first_where,
        last_where=last_where,
    )


def _join(bodies: Sequence[bytes]) -> bytes:
    if len(bodies) < 2:
        return b"[" + b"".join(bodies) + b"]"
    # One copy of the whole body, not three: the brackets go on the end records first.
    return b",".join([b"[" + bodies[0], *bodies[1:-1], bodies[-1] + b"]"])


EMPTY = len(b"[]")
"""The size of an empty batch's body."""

Piece = Fresh | Record | Chunks | Rejection | Skip
"""What the stream carries: a record (or a record's chunks), a rejection, a skip."""
Item = tuple[int, Piece]
"""An item of the stream with the index of the input it came from."""


class _Open:
    """The batch being filled. Records are kept as the :data:`Fresh` tuples they came in
    as, and split into columns once, when the batch closes.

    Adding a record is the per-record hot path (in :func:`batches`), so it only appends
    to ``fresh`` and ``by_id``; everything else about the span (its first and last item,
    how many items each input holds) is worked out from those when needed.
    """

    __slots__ = (
        "by_id",
        "extra",
        "first_fresh",
        "first_other",
        "fresh",
        "input",
        "last_other",
        "mark",
        "others",
        "per_input",
        "rejections",
        "superseded",
    )

    def __init__(self, input_index: int) -> None:
        self.fresh: list[Fresh | None] = []
        """None marks a superseded record; filtered once when the batch closes."""
        self.by_id: dict[str, int] = {}
        """Each id's slot in ``fresh``."""
        self.rejections: list[Rejection] = []
        self.superseded: list[Fresh] = []
        self.first_fresh: Fresh | None = None
        """The first record, kept here only when a later one replaces it."""
        self.others = 0
        """Rejections and skips in the span."""
        self.first_other: tuple[int, Rejection | Skip] | None = None
        self.last_other: tuple[int, Rejection | Skip] | None = None
        """The rejection or skip, with how many records came before it."""
        self.input = input_index
        self.mark = 0
        """Items in the span when the current input began."""
        self.per_input: dict[int, tuple[int, Position]] = {}
        self.extra = 0
        """Records in ``fresh`` that are not items of their own: the chunks of a record
        but the one that ends it."""

    @property
    def empty(self) -> bool:
        return not self.fresh and not self.others

    def first(self) -> Fresh | Rejection | Skip:
        if self.first_other is not None and self.first_other[0] == 0:
            return self.first_other[1]
        return self.first_fresh or cast("Fresh", self.fresh[0])

    def last(self) -> Fresh | Rejection | Skip:
        # The newest record is never a superseded one: it is what replaces.
        if self.last_other is not None and self.last_other[0] == len(self.fresh):
            return self.last_other[1]
        return cast("Fresh", self.fresh[-1])

    def switch(self, input_index: int) -> None:
        """The next items come from another input."""
        items = len(self.fresh) + self.others - self.extra
        if items > self.mark:
            self.per_input[self.input] = (items - self.mark, _end(self.last()))
        self.input = input_index
        self.mark = items

    def supersede(self, id_: str) -> None:
        earlier = self.by_id[id_]
        record = cast("Fresh", self.fresh[earlier])
        if earlier == 0 and self.first_fresh is None:
            self.first_fresh = record
        self.superseded.append(record)
        self.fresh[earlier] = None

    def add(self, record: Fresh, *, chunk_of_more: bool) -> None:
        """Add a record off the hot path (a chunk); ``chunk_of_more``: the chunks of its
        record go on after it, so it is not an item of its own."""
        id_ = record[0]
        if id_ in self.by_id:
            self.supersede(id_)
        self.by_id[id_] = len(self.fresh)
        self.fresh.append(record)
        self.extra += chunk_of_more

    def add_other(self, item: Rejection | Skip) -> None:
        if type(item) is Rejection:
            self.rejections.append(item)
        self.others += 1
        self.last_other = (len(self.fresh), item)
        if self.first_other is None:
            self.first_other = self.last_other

    def close(self, seq: int) -> Batch:
        first, last = _where(self.first()), _where(self.last())
        self.switch(-1)
        fresh = self.fresh
        if self.superseded:
            fresh = [f for f in fresh if f is not None]
        batch = _columns(seq, cast("list[Fresh]", fresh), first, last)
        batch.rejections = self.rejections
        batch.superseded = self.superseded
        batch.per_input = self.per_input
        return batch


def _take(
    span: _Open, size: int, chunks: Chunks, input_index: int, max_records: int, max_bytes: int
) -> tuple[list[_Open], _Open, int]:
    """Add a record's chunks to ``span`` (of ``size`` bytes) if they all fit, else to a new
    span; a record of more chunks than a batch holds fills spans in turn. Returns the
    spans filled, to close in order, and the open span with its size."""
    filled = []
    more = sum(len(chunk[1]) + 1 for chunk in chunks.records)
    if span.by_id and (
        len(span.by_id) + len(chunks.records) > max_records or size + more > max_bytes
    ):
        filled.append(span)
        span, size = _Open(input_index), EMPTY
    elif input_index != span.input:
        span.switch(input_index)
    last = len(chunks.records) - 1
    for at, chunk in enumerate(chunks.records):
        n = len(chunk[1]) + 1
        if span.by_id and (len(span.by_id) >= max_records or size + n > max_bytes):
            filled.append(span)
            span, size = _Open(input_index), EMPTY
        span.add(chunk, chunk_of_more=at != last)
        size += n
    return filled, span, size


def _end(item: Fresh | Rejection | Skip) -> Position:
    if isinstance(item, tuple):
        return Position(item[4], item[5])
    return item.end


def _where(item: Fresh | Rejection | Skip) -> str:
    if isinstance(item, tuple):
        return f"{item[2]}:{item[3]}"
    return item.where


def batches(
    items: Iterable[Item],
    *,
    max_records: int = MAX_BATCH_RECORDS,
    max_bytes: int = MAX_BATCH_BYTES,
    max_rejections: int = 1000,
) -> Iterator[Batch]:
    """Group ``items`` into batches of at most ``max_records`` records and ``max_bytes``
    of request body, whichever comes first.

    A record bigger than ``max_bytes`` on its own still travels, alone. A span holding
    only rejections closes after ``max_rejections`` of them so that a file of bad lines
    does not pile up in memory. Within a batch only the last occurrence of an id is sent;
    the earlier ones are kept aside (:attr:`Batch.superseded`) in case the server refuses it,
    and the server is never asked to resolve an order it does not document. A record's
    :class:`~vupsert.mapping.Chunks` go into one batch, a new one if they do not fit in
    the open one; only chunks more than a batch holds go on into the next.
    """
    seq = 0
    # The hot loop: one pass per record. The open span's list, index and size live in
    # locals here, and the common case is written out with plain type checks, no call.
    span = _Open(-1)
    records, by_id, size = span.fresh, span.by_id, EMPTY
    for input_index, item in items:
        if type(item) is Record:
            item = as_fresh(item)
        if type(item) is tuple:
            n = len(item[1]) + 1
            if size + n > max_bytes and by_id:
                seq += 1
                yield span.close(seq)
                span = _Open(input_index)
                records, by_id, size = span.fresh, span.by_id, EMPTY
            elif input_index != span.input:
                span.switch(input_index)
            id_ = item[0]
            if id_ in by_id:
                span.supersede(id_)
            by_id[id_] = len(records)
            records.append(item)
            size += n
            if len(by_id) < max_records:
                continue
        elif type(item) is Chunks:
            filled, span, size = _take(span, size, item, input_index, max_records, max_bytes)
            for full in filled:
                seq += 1
                yield full.close(seq)
            records, by_id = span.fresh, span.by_id
            if len(by_id) < max_records:
                continue
        else:
            assert not isinstance(item, (tuple, Record, Chunks))
            if input_index != span.input:
                span.switch(input_index)
            span.add_other(item)
            if len(span.rejections) < max_rejections:
                continue
        seq += 1
        yield span.close(seq)
        span = _Open(input_index)
        records, by_id, size = span.fresh, span.by_id, EMPTY
    if not span.empty:
        seq += 1
        yield span.close(seq)
