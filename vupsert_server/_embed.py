"""A dependency-free, deterministic text embedder (the "hashing trick").

Each whitespace-separated token contributes its words (``\\w+`` runs, lower-cased) and
their character trigrams (with a space on each side, so word starts and ends count);
each pair of neighbouring tokens contributes one bigram feature. Features are hashed
with :func:`zlib.crc32` (stable across processes, unlike :func:`hash`) into ``dimension``
buckets with a ±1 sign, so unrelated texts land near cosine 0, and the sum is
L2-normalised. Texts that share words score higher against each other than texts that
do not, which is all a local stand-in for a real embedding model has to do.

It runs once per upserted record (after the write, see ``_api``), so it is written for
CPython's speed rather than for looks: a token's features are computed once and
cached, and plain loops beat ``map`` tricks on 3.11. A 300-character text costs
50-60 µs on the slow 2-vCPU VM it was measured on (``NOTES.md``).
"""

from __future__ import annotations

import hashlib
import math
import re
import struct
import threading
import zlib
from functools import lru_cache

_WORD = re.compile(r"\w+")
_WORD_SEED = 0x5EED
_TRIGRAM_SEED = 0x7E1
_PAIR_SIDE = 256
"""Each token gets two small hashes; a bigram's bucket is ``table[left][right]``."""
_SHORT_WORD = 3
"""Words this short ("the", "of") are features by themselves: their trigrams add no
match that the word does not, and skipping them saves a third of the work."""
_CACHE_LIMIT = 100_000
"""Tokens remembered before the cache starts over (bounded memory on endless input)."""

_TokenFeatures = tuple[tuple[int, ...], tuple[int, ...], int, int] | None
"""Buckets to add 1 to, buckets to subtract 1 from, left and right pair hashes."""


@lru_cache(maxsize=8)
def _pair_table(dimension: int) -> tuple[list[int], ...]:
    # Derived from a fixed hash, not random.Random, so every process builds the same one.
    raw = hashlib.shake_128(b"vupsert-bigrams").digest(4 * _PAIR_SIDE * _PAIR_SIDE)
    words = memoryview(raw).cast("I")
    return tuple(
        [w % dimension for w in words[row * _PAIR_SIDE : (row + 1) * _PAIR_SIDE]]
        for row in range(_PAIR_SIDE)
    )


class _TokenCache(dict[str, _TokenFeatures]):
    def __init__(self, dimension: int) -> None:
        super().__init__()
        self.dimension = dimension
        self.lock = threading.Lock()

    def __missing__(self, token: str) -> _TokenFeatures:
        dimension = self.dimension
        plus: list[int] = []
        minus: list[int] = []
        pair_hash = 0
        for word in _WORD.findall(token.lower()):
            raw = word.encode("utf-8", "surrogatepass")
            hashes = [zlib.crc32(raw, _WORD_SEED)]
            if len(raw) > _SHORT_WORD:
                padded = b" " + raw + b" "
                hashes += [zlib.crc32(padded[i : i + 3], _TRIGRAM_SEED) for i in range(len(raw))]
            for h in hashes:
                (minus if h & 0x80000000 else plus).append(h % dimension)
            pair_hash = zlib.crc32(raw, pair_hash)
        features: _TokenFeatures = None
        if plus or minus:
            features = (
                tuple(plus),
                tuple(minus),
                pair_hash % _PAIR_SIDE,
                (pair_hash >> 16) % _PAIR_SIDE,
            )
        with self.lock:
            if len(self) >= _CACHE_LIMIT:
                self.clear()
            self[token] = features
        return features


class HashEmbedder:
    """``embed(text)`` -> ``dimension`` float32 values, L2-normalised, as packed bytes."""

    def __init__(self, dimension: int) -> None:
        self.dimension = dimension
        self._cache = _TokenCache(dimension)
        self._pairs = _pair_table(dimension)
        self._zeros = [0.0] * dimension
        self._pack = struct.Struct(f"<{dimension}f").pack

    def embed(self, text: str) -> bytes:
        """The vector of ``text`` as little-endian float32 bytes (the storage format)."""
        return self._pack(*self.embed_list(text))

    def embed_list(self, text: str) -> list[float]:
        cache = self._cache
        pairs = self._pairs
        acc = self._zeros.copy()
        previous: list[int] | None = None
        for token in text.split():
            features = cache[token]
            if features is None:
                continue
            plus, minus, left, right = features
            for bucket in plus:
                acc[bucket] += 1.0
            for bucket in minus:
                acc[bucket] -= 1.0
            if previous is not None:
                acc[previous[right]] += 1.0
            previous = pairs[left]
        norm = math.hypot(*acc)
        if norm:
            scale = 1.0 / norm
            return [x * scale for x in acc]
        return acc
