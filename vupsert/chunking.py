"""Long data: split into chunks, chunks a shorter record left behind removed, and a warning
when data is longer than the index's model reads.

Upstash's models embed a bounded number of tokens and ignore the rest, silently. With
``chunk_size``, every record's data is split (:func:`split_text`) and each chunk sent as a
record of its own: id ``{id}#{n}`` (n from 1), the record's metadata plus
``chunk: {parent, number, count}``. Even data that fits one chunk becomes ``{id}#1``, so a
record's ids do not change as it grows or shrinks. When a record has fewer chunks than an
earlier run gave it, :func:`remove_stale_chunks` deletes the extra ones once its new
chunks have landed.

Without chunking, :class:`LongData` counts records whose data is likely longer than the
model reads (by characters: see :data:`CHARS_PER_TOKEN`) so the run can say so once.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import orjson

from .deleting import deleted
from .errors import ServerError
from .outcomes import Events, NoEvents, Settlement, Summary
from .records import MAX_METADATA_BYTES, Fresh, Position, Record, Rejection, Skip
from .retrying import Caller
from .settings import MappingOptions, option

__all__ = [
    "CHARS_PER_TOKEN",
    "CHUNK_KEY",
    "MODEL_TOKENS",
    "Chunker",
    "LongData",
    "StaleChunks",
    "chunk_id",
    "remove_stale_chunks",
    "split_text",
    "stale_filter",
    "token_limit",
]

CHUNK_KEY = "chunk"
"""The metadata key of a chunk's origin: ``{"parent": id, "number": n, "count": N}``."""

MODEL_TOKENS = {
    # Upstash's embedding models page (upstash.com/docs/vector/features/embeddingmodels)
    # lists each model's sequence length; the BGE figures are also in the models' cards.
    "bge-small-en-v1-5": 512,
    "bge-base-en-v1-5": 512,
    "bge-large-en-v1-5": 512,
    "bge-m3": 8192,
    # sentence-transformers' model cards: "input text longer than 256 (384) word pieces is
    # truncated".
    "all-minilm-l6-v2": 256,
    "all-mpnet-base-v2": 384,
}
"""Tokens each known embedding model reads, by :func:`_model_key` of its name."""

CHARS_PER_TOKEN = 4
"""The usual rule of thumb for English text and BERT-style tokenizers: an estimate, not a
count (vupsert has no tokenizer), so the warning says "likely"."""

SHOWN = 5
"""``file:line`` of the first few long records the warning names."""

_PARAGRAPH = re.compile(r"\n[ \t\r\f\v]*\n")
_SENTENCE = re.compile(r"[.!?\u2026][\"'\u201d\u2019)\]]*(?=\s)|[\u3002\uff01\uff1f]")
_SPACE = re.compile(r"\s+")
_LEADING_SPACE = re.compile(r"\s*")


def split_text(text: str, size: int, overlap: int = 0) -> list[str]:
    """``text`` in chunks of at most ``size`` characters, each repeating about the last
    ``overlap`` characters of the one before (from a word's start).

    A chunk ends at the last paragraph break that leaves it at least half of ``size``
    long; failing one, at the last sentence end; then the last space; else at ``size``.
    Chunks have no space at either end. Text that fits is one chunk, itself, unchanged.
    The same text, size and overlap always give the same chunks.
    """
    if size < 1 or not 0 <= overlap <= size // 2:
        raise ValueError(f"bad chunk size {size} or overlap {overlap}")
    if len(text) <= size:
        return [text]
    chunks = []
    start = _LEADING_SPACE.match(text).end()  # type: ignore[union-attr]
    while len(text) - start > size:
        low, high = start + size // 2 + 1, start + size
        end = _cut(text, low, high)
        chunks.append(text[start:end].strip())
        next_start = max(end - overlap, start + 1)
        if overlap and not text[next_start - 1].isspace():
            # Start the overlap at a word's start, not in the middle of one.
            space = _SPACE.search(text, next_start, end)
            if space is not None:
                next_start = space.end()
        start = _LEADING_SPACE.match(text, next_start).end()  # type: ignore[union-attr]
    last = text[start:].strip()
    if last:
        chunks.append(last)
    return chunks


def _cut(text: str, low: int, high: int) -> int:
    """Where a chunk that may end anywhere from ``low`` to ``high`` ends."""
    for pattern, at_end in ((_PARAGRAPH, False), (_SENTENCE, True), (_SPACE, False)):
        cut = None
        for m in pattern.finditer(text, low, high + 1):
            where = m.end() if at_end else m.start()
            if low <= where <= high:
                cut = where
        if cut is not None:
            return cut
    return high


def chunk_id(parent: str, number: int) -> str:
    """The id of chunk ``number`` (from 1) of the record ``parent``."""
    return f"{parent}#{number}"


# --- the chunking stage ---------------------------------------------------------------


class Chunker:
    """Turns each record of a stream into its chunks, as records.

    Every chunk but a record's last carries the position before the record, so that a
    checkpoint covers the record only once its last chunk has settled. ``pending`` (if
    given) hears each record's chunk count by id, for :class:`StaleChunks`.
    """

    def __init__(self, options: MappingOptions, pending: dict[str, int] | None = None) -> None:
        assert options.chunk_size is not None
        self._size = options.chunk_size
        self._overlap = options.chunk_overlap
        self._pending = pending

    def chunks(
        self, items: Iterable[Fresh | Record | Rejection | Skip], start: Position | None
    ) -> Iterator[Fresh | Record | Rejection | Skip]:
        before = start or Position(0, 0)
        for item in items:
            if type(item) is tuple:
                id_, body, source, line, offset, end_line = item
                end = Position(offset, end_line)
            elif type(item) is Record:
                id_, body, source, line, end = item.id, item.body, item.source, item.line, item.end
            else:
                assert isinstance(item, (Rejection, Skip))
                before = item.end
                yield item
                continue
            yield from self._split(id_, orjson.loads(body), source, line, before, end)
            before = end

    def _split(
        self,
        id_: str,
        record: dict[str, Any],
        source: str,
        line: int,
        before: Position,
        end: Position,
    ) -> Iterator[Record | Rejection]:
        metadata = record.get("metadata") or {}
        if CHUNK_KEY in metadata:
            yield _not_chunked(
                record,
                source,
                line,
                end,
                f'metadata already has a "{CHUNK_KEY}" key, which chunking writes '
                f"({option('chunk_size')}): rename it",
            )
            return
        pieces = split_text(record["data"], self._size, self._overlap)
        count = len(pieces)
        last = {**metadata, CHUNK_KEY: {"parent": id_, "number": count, "count": count}}
        size = len(orjson.dumps(last))
        if size > MAX_METADATA_BYTES:
            yield _not_chunked(
                record,
                source,
                line,
                end,
                f"metadata with the chunk's origin is {size:,} bytes; the limit is "
                f"{MAX_METADATA_BYTES:,}",
            )
            return
        if self._pending is not None:
            self._pending[id_] = count
        for number, piece in enumerate(pieces, 1):
            chunk = chunk_id(id_, number)
            meta = {**metadata, CHUNK_KEY: {"parent": id_, "number": number, "count": count}}
            body = orjson.dumps({"id": chunk, "data": piece, "metadata": meta})
            yield Record(chunk, body, source, line, end if number == count else before)


def _not_chunked(
    record: dict[str, Any], source: str, line: int, end: Position, reason: str
) -> Rejection:
    return Rejection(
        source,
        line,
        end,
        reason,
        body=orjson.dumps(record),
        id=record.get("id"),
        stage="map",
    )


# --- chunks a shorter record left behind ------------------------------------------------


def stale_filter(counts: Mapping[str, int]) -> str:
    """A metadata filter matching every chunk of each record numbered above its count."""
    by_count: dict[int, list[str]] = {}
    for parent, count in counts.items():
        by_count.setdefault(count, []).append(parent)
    return " OR ".join(
        f"({CHUNK_KEY}.number > {count} AND {CHUNK_KEY}.parent IN "
        f"({', '.join(map(_quoted, parents))}))"
        for count, parents in sorted(by_count.items())
    )


def _quoted(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def remove_stale_chunks(caller: Caller, counts: Mapping[str, int]) -> int:
    """Delete the chunks numbered above ``counts[parent]`` of each record ``parent``;
    return how many were deleted.

    First one fetch of chunk ``count + 1`` of every record: only a record that has it
    (it had more chunks before) costs a delete, by metadata filter, in one request.
    :class:`~vupsert.errors.ServerError` when the index does not answer through the
    retries.
    """
    parents = list(counts)
    if not parents:
        return 0
    ids = [chunk_id(p, counts[p] + 1) for p in parents]
    found = caller.call("fetch", {"ids": ids, "includeData": False, "includeMetadata": False})
    if not isinstance(found, list) or len(found) != len(ids):
        raise ServerError("fetch did not answer one item per id asked")
    shrunk = {p: counts[p] for p, item in zip(parents, found, strict=True) if item is not None}
    if not shrunk:
        return 0
    return deleted(caller.call("delete", {"filter": stale_filter(shrunk)}))


class StaleChunks(NoEvents):
    """After each batch settles, removes the chunks its records had beyond their count in
    an earlier run (:func:`remove_stale_chunks`).

    Heard as one of the run's events, so that it runs before a later batch holding the
    same ids is sent. A record's count is taken from :attr:`pending` by the first batch
    that holds one of its chunks; the last occurrence of an id read by then wins.
    """

    def __init__(self, caller: Caller, events: Events) -> None:
        self._caller = caller
        self._events = events
        self.pending: dict[str, int] = {}
        """Chunk count of each record read and not yet settled, by id."""
        self.deleted = 0
        self.failed = 0
        """Records whose extra chunks could not be removed."""

    def batch_done(self, settlement: Settlement, summary: Summary) -> None:
        counts: dict[str, int] = {}
        pending = self.pending
        for id_ in settlement.batch.ids:
            parent, sep, _ = id_.rpartition("#")
            if sep and parent in pending:
                count = pending.pop(parent, None)
                if count is not None:
                    counts[parent] = count
        if not counts or not settlement.upserted:
            return
        try:
            self.deleted += remove_stale_chunks(self._caller, counts)
        except ServerError as exc:
            self.failed += len(counts)
            self._events.warning(
                f"batch {settlement.batch.seq} ({settlement.batch.span}): the chunks its "
                "records had beyond their new count in an earlier run could not be "
                f"removed ({exc.message}). Run the same command again to remove them."
            )


# --- data longer than the model reads ---------------------------------------------------


def _model_key(name: str) -> str:
    """``BAAI/bge-small-en-v1.5`` and ``BGE_SMALL_EN_V1_5`` alike: ``bge-small-en-v1-5``."""
    return re.sub(r"[._\s]+", "-", name.rpartition("/")[2].strip().lower())


def token_limit(info: Mapping[str, Any] | None) -> tuple[str, int] | None:
    """The model of the index that reads the fewest tokens, and how many, among those
    :data:`MODEL_TOKENS` knows; ``None`` if it knows none of the index's models."""
    if not info:
        return None
    known = []
    for key in ("denseIndex", "sparseIndex"):
        part = info.get(key)
        model = part.get("embeddingModel") if isinstance(part, dict) else None
        if isinstance(model, str) and _model_key(model) in MODEL_TOKENS:
            known.append((MODEL_TOKENS[_model_key(model)], model))
    if not known:
        return None
    tokens, model = min(known)
    return model, tokens


class LongData:
    """Counts the records whose data is likely longer than the index's model reads."""

    def __init__(self, model: str, tokens: int, *, chunked: bool = False) -> None:
        self.model = model
        self.tokens = tokens
        self.chars = tokens * CHARS_PER_TOKEN
        self._chunked = chunked
        self.count = 0
        self.first: list[str] = []

    @classmethod
    def of_index(cls, info: Mapping[str, Any] | None, *, chunked: bool) -> LongData | None:
        limit = token_limit(info)
        return None if limit is None else cls(*limit, chunked=chunked)

    def watch(
        self, items: Iterable[Fresh | Record | Rejection | Skip]
    ) -> Iterator[Fresh | Record | Rejection | Skip]:
        """``items``, unchanged, looked at on their way."""
        chars, first = self.chars, self.first
        for item in items:
            if type(item) is tuple:
                body, where = item[1], None
            elif type(item) is Record:
                body, where = item.body, item.where
            else:
                yield item
                continue
            # JSON is never shorter than the text it holds: most records end here.
            if len(body) > chars and len(orjson.loads(body)["data"]) > chars:
                self.count += 1
                if len(first) < SHOWN:
                    if where is None:
                        where = f"{item[2]}:{item[3]}"  # type: ignore[index]
                    if where not in first:
                        first.append(where)
            yield item

    def warning(self) -> str | None:
        if not self.count:
            return None
        what = "chunk" if self._chunked else "record"
        what = f"{what} has" if self.count == 1 else f"{what}s have"
        advice = (
            f"lower {option('chunk_size')} to at most {self.chars * 3 // 4:,}"
            if self._chunked
            else f"split them with {option('chunk_size', self.chars * 3 // 4)}"
        )
        return (
            f"{self.count:,} {what} data likely longer than the index's model reads: "
            f"{self.model} embeds the first {self.tokens:,} tokens (about {self.chars:,} "
            f"characters, at an estimated {CHARS_PER_TOKEN} characters a token) and ignores "
            f"the rest; first: {', '.join(self.first)}. To make all of it searchable, "
            f"{advice}."
        )
