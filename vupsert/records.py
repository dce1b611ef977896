"""The values that flow through a run: where a record came from, the record, its
rejection, the batch it travels in.

A record is serialised at most once, by :class:`vupsert.mapping.Mapper`, into ``body``:
the JSON object sent in the batch array (a JSON Lines line that is exactly the record is
its own body, not serialised at all). Nothing downstream re-serialises it; the batch
joins the bodies into its request once, and a split re-sends slices of that.

The common JSON Lines case travels as plain tuples (:data:`JsonLine`, :data:`Fresh`)
rather than objects: at a million records, creating the objects cost more than parsing.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any, Literal, NamedTuple

MAX_DATA_BYTES = 1_048_576
"""Upstash refuses a vector whose data is over 1 MB."""
MAX_METADATA_BYTES = 48 * 1024
"""Upstash refuses a vector whose metadata is over 48 KB."""
MAX_BATCH_RECORDS = 1000
"""Upstash refuses more than 1,000 vectors in one upsert request."""

REJECT_KEY = "_vupsert"
"""Key under which a rejects-file line carries its source and reason.

A line that holds it is already mapped (``id``/``data``/``metadata``), so feeding a
rejects file back needs none of the original mapping options.
"""


class Position(NamedTuple):
    """Where a reader stands in one input, after some item.

    ``offset`` counts bytes of the *decompressed* stream, so a resume can seek (plain
    files) or read and discard (compressed files, stdin) up to it. A named tuple because
    one is made per row, and a frozen dataclass costs several times more to create.
    """

    offset: int
    line: int


class _Located:
    """``where``, as every message names a record: ``file:line``."""

    __slots__ = ()
    source: str
    line: int

    @property
    def where(self) -> str:
        return f"{self.source}:{self.line}"


@dataclass(slots=True)
class Row:
    """One raw item read from an input, before mapping.

    ``value`` is a parsed JSON object (JSONL) or a ``{column: cell}`` dict (CSV/TSV).
    """

    source: str
    """Display name of the input: the path as given, or ``<stdin>``."""
    line: int
    """1-based line where the item starts."""
    end: Position
    """Reader position just after this item."""
    value: dict[str, Any]
    text: bytes | None = None
    """The JSON Lines line ``value`` was parsed from: what a rejection keeps."""


class Cells(enum.Enum):
    """What an input's values are (its format says, :mod:`vupsert.inputs`), which decides
    how the mapping takes them."""

    JSON = "json"
    """JSON values: objects, arrays, numbers and booleans as they are."""
    TEXT = "text"
    """A table's cells, all text (CSV/TSV): numbers and booleans are told by their look
    (or by ``types``), an empty cell is left out, the metadata column holds JSON text."""
    TYPED = "typed"
    """A table's cells with types of their own (Parquet): kept, a null left out."""

    @property
    def tabular(self) -> bool:
        """Whether the values are a table's: every row has the same columns."""
        return self is not Cells.JSON


JsonLine = tuple[int, int, dict[str, Any], bytes]
"""A JSON Lines row on the hot path, as a plain tuple: ``(line, offset, value, text)``,
``text`` being the line as read, from which ``value`` was parsed.

The same as a :class:`Row` whose ``end`` is ``Position(offset, line)``, without the two
objects: creating them cost more than parsing the line.
"""

Fresh = tuple[str, bytes, str, int, int, int]
"""A valid record on the hot path, as a plain tuple:
``(id, body, source, line, end_offset, end_line)``, a :class:`Record` without the objects.
"""


@dataclass(slots=True)
class Record(_Located):
    """A valid record, ready to be put in a batch."""

    id: str
    body: bytes
    """``orjson.dumps({"id": ..., "data": ..., "metadata": ...})``, built once."""
    source: str
    line: int
    end: Position


Stage = Literal["read", "map", "send"]


@dataclass(slots=True)
class Rejection(_Located):
    """A record that will not be upserted, and why, with what is needed to fix it.

    What ``body`` holds depends on the ``stage`` the record was rejected at:

    - ``"read"``: the input could not be parsed; ``body`` is ``None`` and ``raw`` keeps the
      text as read.
    - ``"map"``: it could not become a record; ``body`` is the row as read (a JSON Lines
      object as written, or a CSV/TSV row's ``{column: cell}``, ``table`` set).
    - ``"send"``: the server refused it or it was given up on; ``body`` is the record as
      sent (``{id, data, metadata}``).
    """

    source: str
    line: int
    end: Position
    reason: str
    body: bytes | None = None
    raw: str | None = None
    status: int | None = None
    """HTTP status when the server refused the record."""
    id: str | None = None
    stage: Stage = "read"
    table: bool = False
    """``body`` is a CSV/TSV row: its cells are text, mapped as a table's."""
    typed: bool = False
    """With ``table``: ``body`` is a Parquet row, whose values keep their types."""


@dataclass(slots=True)
class Skip(_Located):
    """A row read but not ours to load (another ``--shard``'s): it still moves the
    settled position, so a resume neither re-reads nor miscounts it."""

    source: str
    line: int
    end: Position


@dataclass(slots=True)
class Batch:
    """Records sent in one request, and the span of input they come from.

    Stored by column: the request body, joined once, and per record its id, the length
    of its JSON, where it came from. Per-record objects exist only when something asks
    for them (a split, a rejection, a test): a million records should cost a million
    dict lookups and list appends, not a million objects.
    """

    seq: int
    """1-based batch number, as the user sees it."""
    body: bytes = b"[]"
    """The request body: the JSON array of every record sent, built once."""
    ids: Sequence[str] = ()
    """The id of each record sent, in body order; each id once."""
    lengths: Sequence[int] = ()
    """The length of each record's JSON in :attr:`body`."""
    sources: Sequence[str] = ()
    lines: Sequence[int] = ()
    offsets: Sequence[int] = ()
    end_lines: Sequence[int] = ()
    """For each record, the reader's position just after it: ``Position(offset, end_line)``."""
    rejections: list[Rejection] = field(default_factory=list)
    """Records of this span rejected before sending; settled together with the batch."""
    superseded: list[Fresh] = field(default_factory=list)
    """Records a later record of this batch replaces (same id), in input order: not sent,
    unless the record that replaces them is refused (see :mod:`vupsert.run._sending`)."""

    first_where: str = ""
    last_where: str = ""
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
    def sent(self) -> int:
        """Records this batch sends."""
        return len(self.ids)

    @property
    def size(self) -> int:
        """Records this batch accounts for: sent, superseded and rejected locally."""
        return len(self.ids) + len(self.superseded) + len(self.rejections)

    def _starts(self) -> list[int]:
        """Where each record's JSON starts in :attr:`body`, and one past the last."""
        return list(accumulate((n + 1 for n in self.lengths), initial=1))

    def part(self, lo: int, hi: int) -> bytes:
        """The request body for records ``lo`` to ``hi - 1``: a slice, never a rebuild."""
        if lo == 0 and hi == len(self.ids):
            return self.body
        starts = self._starts()
        return b"[" + self.body[starts[lo] : starts[hi] - 1] + b"]"

    def records_in(self, lo: int, hi: int) -> list[Record]:
        """Records ``lo`` to ``hi - 1`` as objects: for splits, rejections and tests, not
        the hot path."""
        starts = self._starts()
        return [
            Record(
                self.ids[i],
                self.body[starts[i] : starts[i + 1] - 1],
                self.sources[i],
                self.lines[i],
                Position(self.offsets[i], self.end_lines[i]),
            )
            for i in range(lo, hi)
        ]

    @property
    def records(self) -> list[Record]:
        """Every record sent, as objects."""
        return self.records_in(0, len(self.ids))


def json_type(value: object) -> str:
    """What a parsed JSON value is, as its messages name it."""
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return "null" if value is None else type(value).__name__
