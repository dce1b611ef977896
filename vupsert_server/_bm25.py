"""A deterministic BM25-style sparse embedder: the sparse model of an index that embeds text.

Words (``\\w+`` runs, lower-cased) are hashed with :func:`zlib.crc32` into non-negative
int32 dimensions, the same in every process. A document weighs each word with BM25's
term-frequency part, ``tf * (k1 + 1) / (tf + k1 * (1 - b + b * length / AVERAGE_LENGTH))``
(k1 = 1.2, b = 0.75); a query weighs each distinct word 1. The average length is fixed,
not the namespace's: with the real one every stored vector would change as documents
arrive. BM25's other half, IDF, is what a query asks for with ``weightingStrategy: IDF``,
and the index computes it at query time from the vectors it holds, as Upstash does.
"""

from __future__ import annotations

import re
import zlib
from collections import Counter

from ._vectors import pack_sparse

_WORD = re.compile(r"\w+")
_SEED = 0xB325
K1 = 1.2
B = 0.75
AVERAGE_LENGTH = 32.0
"""Words in a typical document (a sentence or two), where BM25's length part is neutral."""


class Bm25Embedder:
    def embed_document(self, text: str) -> bytes:
        """The sparse vector of a stored text, as a blob (the storage format)."""
        counts = Counter(_dimensions(text))
        if not counts:
            return pack_sparse([], [])
        length = sum(counts.values())
        norm = K1 * (1 - B + B * length / AVERAGE_LENGTH)
        indices = sorted(counts)
        return pack_sparse(indices, [counts[i] * (K1 + 1) / (counts[i] + norm) for i in indices])

    def embed_query(self, text: str) -> dict[int, float]:
        """The sparse vector of a question: each distinct word weighs 1."""
        return dict.fromkeys(_dimensions(text), 1.0)


def _dimensions(text: str) -> list[int]:
    return [
        zlib.crc32(word.encode("utf-8", "surrogatepass"), _SEED) & 0x7FFFFFFF
        for word in _WORD.findall(text.lower())
    ]
