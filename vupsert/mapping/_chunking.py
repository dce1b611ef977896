"""Long data: split into chunks, and a warning when data is longer than the index's model
reads. Pure: nothing here talks to the index.

Upstash's models embed a bounded number of tokens and ignore the rest, silently. With
``chunk_size``, every record's data is split (:func:`split_text`) and each chunk sent as a
record of its own: id ``{id}#{n}`` (n from 1), the record's metadata plus
``chunk: {parent, number, count}``. Even data that fits one chunk becomes ``{id}#1``, so a
record's ids do not change as it grows or shrinks. A record's chunks flow as one item,
:class:`Chunks`; :mod:`~vupsert.run._documents` counts what became of it, and
:mod:`~vupsert.run._stale_chunks` removes the chunks an earlier, longer version left behind.

Without chunking, :class:`LongData` counts records whose data is likely longer than the
model reads (by characters: see :data:`CHARS_PER_TOKEN`) so the run can say so once.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from ..config import option
from ..config.settings import MappingOptions
from ..records import MAX_METADATA_BYTES, Fresh, Position, Record, Rejection, Skip

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


@dataclass(slots=True)
class Chunks:
    """A record split into chunks: one item of the stream, one record read.

    Its chunks travel together: a batch takes all of them or none (unless they are more
    than one request holds), and a refused request is never split between them, so the
    index gets every chunk of the record or none.
    """

    parent: str
    """The record's id."""
    count: int
    """Chunks the record has."""
    records: list[Fresh]
    """The chunks to send, in order: every chunk, or those a sync found changed. Each
    but the record's last carries the position before the record, so that a checkpoint
    covers the record only once its last chunk has settled."""
    body: bytes
    """The record before chunking (``{id, data, metadata}``): what its rejection keeps."""
    source: str
    line: int
    end: Position

    @property
    def where(self) -> str:
        return f"{self.source}:{self.line}"


class Chunker:
    """Turns each record of a stream into its :class:`Chunks`."""

    def __init__(self, options: MappingOptions) -> None:
        assert options.chunk_size is not None
        self._size = options.chunk_size
        self._overlap = options.chunk_overlap

    def chunks(
        self, items: Iterable[Fresh | Record | Rejection | Skip], start: Position | None
    ) -> Iterator[Chunks | Rejection | Skip]:
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
            yield self._split(id_, body, source, line, before, end)
            before = end

    def _split(
        self, id_: str, body: bytes, source: str, line: int, before: Position, end: Position
    ) -> Chunks | Rejection:
        record = orjson.loads(body)
        metadata = record.get("metadata") or {}
        if CHUNK_KEY in metadata:
            return _not_chunked(
                record,
                source,
                line,
                end,
                f'metadata already has a "{CHUNK_KEY}" key, which chunking writes '
                f"({option('chunk_size')}): rename it",
            )
        pieces = split_text(record["data"], self._size, self._overlap)
        count = len(pieces)
        last = {**metadata, CHUNK_KEY: {"parent": id_, "number": count, "count": count}}
        size = len(orjson.dumps(last))
        if size > MAX_METADATA_BYTES:
            return _not_chunked(
                record,
                source,
                line,
                end,
                f"metadata with the chunk's origin is {size:,} bytes; the limit is "
                f"{MAX_METADATA_BYTES:,}",
            )
        records: list[Fresh] = []
        for number, piece in enumerate(pieces, 1):
            chunk = chunk_id(id_, number)
            meta = {**metadata, CHUNK_KEY: {"parent": id_, "number": number, "count": count}}
            at = end if number == count else before
            chunk_body = orjson.dumps({"id": chunk, "data": piece, "metadata": meta})
            records.append((chunk, chunk_body, source, line, at.offset, at.line))
        return Chunks(id_, count, records, body, source, line, end)


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


def chunk_of(id_: str, metadata: Any) -> str | None:
    """The parent of a stored vector that is a chunk (its metadata says so, and its id
    is the chunk's), else ``None``."""
    chunk = metadata.get(CHUNK_KEY) if isinstance(metadata, dict) else None
    if not isinstance(chunk, dict):
        return None
    parent, number = chunk.get("parent"), chunk.get("number")
    if not isinstance(parent, str) or type(number) is not int:
        return None
    return parent if id_ == chunk_id(parent, number) else None


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
        self, items: Iterable[Fresh | Record | Chunks | Rejection | Skip]
    ) -> Iterator[Fresh | Record | Chunks | Rejection | Skip]:
        """``items``, unchanged, looked at on their way: records, or each chunk."""
        chars = self.chars
        for item in items:
            if type(item) is tuple:
                # JSON is never shorter than the text it holds: most records end here.
                if len(item[1]) > chars:
                    self._look(item[1], item[2], item[3])
            elif type(item) is Record:
                self._look(item.body, item.source, item.line)
            elif type(item) is Chunks:
                for chunk in item.records:
                    self._look(chunk[1], item.source, item.line)
            yield item

    def _look(self, body: bytes, source: str, line: int) -> None:
        chars = self.chars
        if len(body) > chars and len(orjson.loads(body)["data"]) > chars:
            self.count += 1
            where = f"{source}:{line}"
            if len(self.first) < SHOWN and where not in self.first:
                self.first.append(where)

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
