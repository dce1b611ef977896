"""Ranking: dense similarity, sparse inner products (IDF-weighted on request), fusion.

Brute force over every vector of a namespace, streamed from storage, so a query holds
its candidates' scores, never the vectors. Scores are float32, as Upstash answers them,
and hits of equal score come exact matches first, then in id order: answers are stable,
and a vector equal to the query is never ranked below its ties (a float64 cosine of
float32 values can be 0.9999999999999998 for an exact match and 1.0 for a parallel one).

Dense scores follow Upstash's documented normalisations: COSINE ``(1 + cos) / 2``,
EUCLIDEAN ``1 / (1 + squared distance)``, DOT_PRODUCT ``(1 + dot) / 2``. A sparse score
is the inner product over the dimensions the query and the vector share; a vector that
shares none is no hit. IDF weighs each query dimension by
``ln((N - n + 0.5) / (n + 0.5) + 1)``, N the sparse vectors of the namespace and n those
holding the dimension. Hybrid queries fuse the two rankings: RRF adds
``1 / (60 + rank)`` from each (ranks from 1), DBSF adds each score normalised by its
ranking's ``mean ± 3 standard deviations``.
"""

from __future__ import annotations

import heapq
import math
import operator
import struct
from collections.abc import Callable, Iterable, Iterator
from typing import Any, NamedTuple

from ._vectors import to_float32, unpack_sparse, unpack_vector

RRF_K = 60


class Hit(NamedTuple):
    score: float
    exact: bool
    """The vector is the query's, bit for bit: first among equal scores."""
    id: str


Ranked = tuple[float, bool, str]
"""``(-score, not exact, id)``: a candidate as a plain tuple, which sorts best first in C
(a query makes one per vector of the namespace)."""


def best(ranked: Iterable[Ranked], limit: int | None) -> list[Hit]:
    """The ``limit`` best candidates as hits (all of them, ranked, when ``None``)."""
    chosen = sorted(ranked) if limit is None else heapq.nsmallest(limit, ranked)
    return [Hit(-negative, not inexact, id) for negative, inexact, id in chosen]


def dense_scorer(query: bytes, similarity: str) -> Callable[[bytes], float]:
    """The score of a stored dense vector against ``query``, both float32 blobs."""
    target = unpack_vector(query).tolist()
    # A tuple of floats from struct is the cheapest way to walk a stored vector in Python.
    unpack = struct.Struct(f"<{len(target)}f").unpack
    mul = operator.mul
    if similarity == "EUCLIDEAN":

        def euclidean(blob: bytes) -> float:
            distance = sum((a - b) ** 2 for a, b in zip(target, unpack(blob), strict=True))
            return to_float32(1.0 / (1.0 + distance))

        return euclidean
    if similarity == "DOT_PRODUCT":

        def dot(blob: bytes) -> float:
            return to_float32((1.0 + sum(map(mul, target, unpack(blob)))) / 2.0)

        return dot
    target_norm = math.hypot(*target)

    def cosine(blob: bytes) -> float:
        values = unpack(blob)
        norm = math.hypot(*values) * target_norm
        cos = sum(map(mul, target, values)) / norm if norm else 0.0
        return to_float32(min(1.0, max(0.0, (1.0 + cos) / 2.0)))

    return cosine


def dense_hits(
    rows: Iterable[tuple[str, bytes, Any]], query: bytes, similarity: str
) -> Iterator[Ranked]:
    score = dense_scorer(query, similarity)
    for id, blob, _ in rows:
        yield (-score(blob), blob != query, id)


def idf_weights(blobs: Iterable[bytes], dimensions: Iterable[int]) -> dict[int, float]:
    """IDF of each of ``dimensions`` over the sparse vectors ``blobs`` (a namespace's)."""
    counts = dict.fromkeys(dimensions, 0)
    total = 0
    for blob in blobs:
        total += 1
        indices, _ = unpack_sparse(blob)
        for index in indices:
            if index in counts:
                counts[index] += 1
    return {index: math.log((total - n + 0.5) / (n + 0.5) + 1.0) for index, n in counts.items()}


def sparse_hits(
    rows: Iterable[tuple[str, bytes, Any]],
    query: dict[int, float],
    weights: dict[int, float] | None,
    query_blob: bytes | None,
) -> Iterator[Ranked]:
    """The vectors sharing a dimension with ``query``; ``weights``: IDF, or none."""
    if weights is not None:
        query = {index: value * weights[index] for index, value in query.items()}
    get = query.get
    for id, blob, _ in rows:
        indices, values = unpack_sparse(blob)
        score = 0.0
        shared = False
        for index, value in zip(indices, values, strict=True):
            weight = get(index)
            if weight is not None:
                score += weight * value
                shared = True
        if shared:
            yield (-to_float32(score), blob != query_blob, id)


def fuse(dense: list[Hit], sparse: list[Hit], algorithm: str) -> list[Hit]:
    """One ranking from two ranked lists of hits, by ``RRF`` or ``DBSF``."""
    fused: dict[str, float] = {}
    exact: dict[str, bool] = {}
    for ranking in (dense, sparse):
        if algorithm == "DBSF":
            contributions = _dbsf(ranking)
        else:
            contributions = [1.0 / (RRF_K + rank) for rank in range(1, len(ranking) + 1)]
        for hit, value in zip(ranking, contributions, strict=True):
            fused[hit.id] = fused.get(hit.id, 0.0) + value
            exact[hit.id] = exact.get(hit.id, False) or hit.exact
    return best(((-to_float32(s), not exact[id], id) for id, s in fused.items()), None)


def _dbsf(ranking: list[Hit]) -> list[float]:
    scores = [hit.score for hit in ranking]
    if not scores:
        return []
    mean = math.fsum(scores) / len(scores)
    spread = 6.0 * math.sqrt(math.fsum((s - mean) ** 2 for s in scores) / len(scores))
    if spread == 0:
        return [0.5] * len(scores)  # all equal: each sits in the middle of its range
    low = mean - spread / 2.0
    return [(score - low) / spread for score in scores]
