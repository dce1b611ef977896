"""Records -> batches bounded by count and bytes; a batch is the unit that is sent,
re-sent, split and checkpointed.

A batch also owns the span of input it came from, including the records rejected locally
inside that span, so that when it settles everything up to its end is settled.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, KeysView
from dataclasses import dataclass, field
from typing import cast

from .records import MAX_BATCH_RECORDS, Position, Record, Rejection, Skip


@dataclass(slots=True)
class Batch:
    seq: int
    """1-based batch number, as the user sees it."""
    records: list[Record]
    rejections: list[Rejection] = field(default_factory=list)
    """Records of this span rejected before sending; settled together with the batch."""
    superseded: int = 0
    """Records dropped because a later record of the same batch has the same id."""

    first_where: str = ""
    last_where: str = ""
    ids: KeysView[str] = field(default_factory=lambda: {}.keys())
    """The ids this batch sends, each once."""
    per_input: dict[int, tuple[int, Position]] = field(default_factory=dict)
    """For each input the span touches: items it holds there, and the position after."""

    @property
    def span(self) -> str:
        """``file:first-last``, the input lines this batch covers."""
        first_src, _, first_line = self.first_where.rpartition(":")
        last_src, _, last_line = self.last_where.rpartition(":")
        if first_src == last_src:
            return f"{first_src}:{first_line}-{last_line}"
        return f"{self.first_where}-{self.last_where}"

    @property
    def size(self) -> int:
        """Records this batch accounts for: sent, superseded and rejected locally."""
        return len(self.records) + self.superseded + len(self.rejections)

    def body(self) -> bytes:
        return build_body(self.records)


def build_body(records: list[Record]) -> bytes:
    """The JSON array for ``records``, joined from their prebuilt bodies."""
    return b"[" + b",".join([r.body for r in records]) + b"]"


Item = tuple[int, Record | Rejection | Skip]
"""An item of the stream with the index of the input it came from."""


class _Open:
    """The batch being filled."""

    __slots__ = (
        "by_id",
        "count",
        "end",
        "first",
        "input",
        "last",
        "per_input",
        "records",
        "rejections",
        "size",
        "superseded",
    )

    def __init__(self) -> None:
        self.records: list[Record | None] = []
        self.rejections: list[Rejection] = []
        self.by_id: dict[str, int] = {}
        self.superseded = 0
        self.size = 2
        self.first: Record | Rejection | Skip | None = None
        self.last: Record | Rejection | Skip | None = None
        self.input = -1
        self.end: Position | None = None
        self.count = 0
        """Items of the current input in this span."""
        self.per_input: dict[int, tuple[int, Position]] = {}

    def add(self, input_index: int, item: Record | Rejection | Skip) -> None:
        # The hot path of batching: one call per record, so plain type checks and no
        # strings built until the batch closes.
        if input_index != self.input:
            self._close_input()
            self.input = input_index
        self.count += 1
        if type(item) is Record:
            by_id = self.by_id
            earlier = by_id.get(item.id)
            if earlier is not None:
                # None marks the superseded slot; filtered once when the batch closes.
                self.records[earlier] = None
                self.superseded += 1
            by_id[item.id] = len(self.records)
            self.records.append(item)
            self.size += len(item.body) + 1
        elif type(item) is Rejection:
            self.rejections.append(item)
        if self.first is None:
            self.first = item
        self.last = item
        self.end = item.end

    def _close_input(self) -> None:
        if self.count and self.end is not None:
            self.per_input[self.input] = (self.count, self.end)
        self.count = 0

    def close(self, seq: int) -> Batch:
        self._close_input()
        return Batch(
            seq=seq,
            records=[r for r in self.records if r is not None]
            if self.superseded
            else cast("list[Record]", self.records),
            rejections=self.rejections,
            superseded=self.superseded,
            ids=self.by_id.keys(),
            first_where=self.first.where if self.first else "",
            last_where=self.last.where if self.last else "",
            per_input=self.per_input,
        )


def batches(
    items: Iterable[Item],
    *,
    max_records: int = MAX_BATCH_RECORDS,
    max_bytes: int = 8 * 1024 * 1024,
    max_rejections: int = 1000,
) -> Iterator[Batch]:
    """Group ``items`` into batches of at most ``max_records`` records and ``max_bytes``
    of request body, whichever comes first.

    A record bigger than ``max_bytes`` on its own still travels, alone. A span holding
    only rejections closes after ``max_rejections`` of them so that a file of bad lines
    does not pile up in memory. Within a batch the last occurrence of an id wins and the
    earlier one counts as superseded: the index would end up the same, and the server is
    never asked to resolve an order it does not document.
    """
    seq = 0
    current = _Open()
    for input_index, item in items:
        if (
            isinstance(item, Record)
            and current.by_id
            and current.size + len(item.body) + 1 > max_bytes
        ):
            seq += 1
            yield current.close(seq)
            current = _Open()
        current.add(input_index, item)
        if len(current.by_id) >= max_records or len(current.rejections) >= max_rejections:
            seq += 1
            yield current.close(seq)
            current = _Open()
    if current.first is not None:
        seq += 1
        yield current.close(seq)
