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
holding the dimension; sparse scores are float32 arithmetic throughout.

Hybrid queries fuse the two rankings as the service does (its figures, recorded by the
official SDKs' tests, fit nothing else): RRF adds ``1 / (60 + rank)`` from each side,
ranks counted from 0 over every candidate of that side; DBSF takes each side's top K,
maps each score to ``(score - low) / (high - low)`` with ``low`` and ``high`` the mean
minus and plus 3 sample standard deviations of those K, and adds them. A side whose K
scores are one, or all equal, gives each 0.5.
"""

from __future__ import annotations

import heapq
import math
import operator
import struct
from array import array
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


def dense_scorer(
    query: bytes, similarity: str, *, as_service: bool = False
) -> Callable[[bytes], float]:
    """The score of a stored dense vector against ``query``, both float32 blobs.

    ``as_service``: each product (or squared difference) rounded to float32 before they
    are summed, as the service computes them (its DBSF figures move by a last bit
    otherwise); twice the time of the float64 sum a ranking pass uses.
    """
    target = unpack_vector(query).tolist()
    # A tuple of floats from struct is the cheapest way to walk a stored vector in Python.
    unpack = struct.Struct(f"<{len(target)}f").unpack
    mul = operator.mul
    total: Callable[[Iterable[float]], float] = _float32_total if as_service else sum
    if similarity == "EUCLIDEAN":

        def euclidean(blob: bytes) -> float:
            distance = total((a - b) ** 2 for a, b in zip(target, unpack(blob), strict=True))
            return to_float32(1.0 / (1.0 + distance))

        return euclidean
    if similarity == "DOT_PRODUCT":

        def dot(blob: bytes) -> float:
            return to_float32((1.0 + total(map(mul, target, unpack(blob)))) / 2.0)

        return dot
    target_norm = math.hypot(*target)

    def cosine(blob: bytes) -> float:
        values = unpack(blob)
        norm = math.hypot(*values) * target_norm
        if as_service and norm and blob == query:
            return 1.0  # float32 sums may miss 1 by a bit for the query's own vector
        cos = total(map(mul, target, values)) / norm if norm else 0.0
        return to_float32(min(1.0, max(0.0, (1.0 + cos) / 2.0)))

    return cosine


def _float32_total(terms: Iterable[float]) -> float:
    """The sum of ``terms`` each rounded to float32, itself rounded to float32."""
    return to_float32(math.fsum(array("f", terms)))


def rescored(
    hits: list[Hit], blobs: dict[str, bytes], score: Callable[[bytes], float]
) -> list[Hit]:
    """``hits`` scored again by ``score`` (those whose blob is gone keep theirs), ranked."""
    again = [
        Hit(score(blobs[hit.id]), hit.exact, hit.id) if hit.id in blobs else hit for hit in hits
    ]
    return sorted(again, key=lambda hit: (-hit.score, not hit.exact, hit.id))


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
    """The vectors sharing a dimension with ``query``; ``weights``: IDF, or none.

    A score is a float32 inner product, as the service computes it (its IDF-weighted
    figures differ from a float64 one in the last bit): the weighted query is a float32
    vector, each product and each partial sum is rounded to float32.
    """
    if weights is not None:
        query = {i: to_float32(value * to_float32(weights[i])) for i, value in query.items()}
    get = query.get
    for id, blob, _ in rows:
        indices, values = unpack_sparse(blob)
        score: float | None = None
        for index, value in zip(indices, values, strict=True):
            weight = get(index)
            if weight is not None:
                product = to_float32(weight * value)
                score = product if score is None else to_float32(score + product)
        if score is not None:
            yield (-score, blob != query_blob, id)


def fuse(dense: list[Hit], sparse: list[Hit], algorithm: str) -> list[Hit]:
    """One ranking from two ranked lists of hits, by ``RRF`` or ``DBSF``: give RRF each
    side whole (a hit ranked beyond top K on one side still counts), DBSF each side's top
    K, scored as the service scores them."""
    fused: dict[str, float] = {}
    exact: dict[str, bool] = {}
    for ranking in (dense, sparse):
        if algorithm == "DBSF":
            contributions = _dbsf(ranking)
        else:
            contributions = [1.0 / (RRF_K + rank) for rank in range(len(ranking))]
        for hit, value in zip(ranking, contributions, strict=True):
            fused[hit.id] = fused.get(hit.id, 0.0) + value
            exact[hit.id] = exact.get(hit.id, False) or hit.exact
    return best(((-to_float32(s), not exact[id], id) for id, s in fused.items()), None)


def _dbsf(ranking: list[Hit]) -> list[float]:
    """Each score mapped by its ranking's mean +- 3 sample standard deviations to 0..1, in
    float32 arithmetic as the service's figures show (0.617851, not 0.61785114)."""
    f32 = to_float32
    scores = [hit.score for hit in ranking]
    if len(scores) < 2:
        return [0.5] * len(scores)
    mean = f32(_float32_sum(scores) / len(scores))
    squares = _float32_sum(f32(f32(s - mean) ** 2) for s in scores)
    deviation = f32(math.sqrt(f32(squares / (len(scores) - 1))))
    low, high = f32(mean - f32(3 * deviation)), f32(mean + f32(3 * deviation))
    if high == low:
        return [0.5] * len(scores)  # all equal: each sits in the middle of its range
    return [f32(f32(score - low) / f32(high - low)) for score in scores]


def _float32_sum(values: Iterable[float]) -> float:
    """``values`` added one by one in float32."""
    total = 0.0
    for value in values:
        total = to_float32(total + value)
    return total
