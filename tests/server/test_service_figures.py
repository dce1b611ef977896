"""Figures the service answers, as the official SDKs' own tests recorded them against it:
hybrid fusion (RRF, DBSF), IDF-weighted sparse scores, and ``range`` cursors. Each test
upserts the records those tests upsert and expects the exact numbers they expect."""

from __future__ import annotations

from typing import Any, NamedTuple

import pytest

from .conftest import Serve
from .server_helpers import Api


def sparse(indices: list[int], values: list[float]) -> dict[str, Any]:
    return {"indices": indices, "values": values}


RECORDS = [
    {"id": "id0", "vector": [0.1, 0.2], "sparseVector": sparse([0, 1], [0.1, 0.2])},
    {
        "id": "id1",
        "vector": [0.2, 0.3],
        "sparseVector": sparse([1, 2], [0.2, 0.3]),
        "metadata": {"key": "value"},
    },
    {
        "id": "id2",
        "vector": [0.3, 0.4],
        "sparseVector": sparse([2, 3], [0.3, 0.4]),
        "metadata": {"key": "value"},
        "data": "data",
    },
]


class Hybrid(NamedTuple):
    api: Api
    ns: str
    """``""`` or ``/name``: what follows an endpoint's name in its path."""

    def result(self, endpoint: str, body: Any) -> Any:
        return self.api.result(f"/{endpoint}{self.ns}", body)


@pytest.fixture(params=["", "/ns"])
def hybrid(request: pytest.FixtureRequest, serve: Serve) -> Hybrid:
    """A hybrid index of dimension 2 without models, holding RECORDS in a namespace."""
    index = Hybrid(Api(serve(index_type="hybrid", dimension=2, embedding=False)), request.param)
    index.result("upsert", RECORDS)
    return index


def test_rrf_counts_ranks_from_0(hybrid: Hybrid) -> None:
    query = {
        "topK": 1,
        "vector": [0.1, 0.1],
        "sparseVector": sparse([3, 4], [0.1, 0.2]),
        "fusionAlgorithm": "RRF",
    }
    # id2 is first on both sides: 1/60 + 1/60.
    assert hybrid.result("query", query) == [{"id": "id2", "score": 0.033333335}]


def test_rrf_ranks_each_side_beyond_top_k(hybrid: Hybrid) -> None:
    query = {
        "topK": 1,
        "vector": [0.5, 0.1],
        "sparseVector": sparse([0, 1], [0.5, 0.1]),
        "includeVectors": True,
    }
    # id0 is first of the sparse side and third of the dense one: 1/60 + 1/62.
    assert hybrid.result("query", query) == [
        {
            "id": "id0",
            "score": 0.032795697,
            "vector": [0.1, 0.2],
            "sparseVector": sparse([0, 1], [0.1, 0.2]),
        }
    ]


def test_dbsf_fuses_each_sides_top_k_and_a_resumable_query_fuses_anew(hybrid: Hybrid) -> None:
    query = {
        "topK": 2,
        "vector": [0.1, 0.1],
        "sparseVector": sparse([0], [0.1]),
        "weightingStrategy": "IDF",
        "fusionAlgorithm": "DBSF",
    }
    # Dense top 2 (id2, id1) map to 0.5 +- sqrt(2)/12; the sparse side has one hit, 0.5.
    assert hybrid.result("query", query) == [
        {"id": "id2", "score": 0.617851},
        {"id": "id0", "score": 0.5},
    ]
    opened = hybrid.result("resumable-query", {**query, "includeMetadata": True})
    assert opened["scores"] == [
        {"id": "id2", "score": 0.617851, "metadata": {"key": "value"}},
        {"id": "id0", "score": 0.5},
    ]
    # The next hit is the query over what was not sent: id1 alone on the dense side.
    after = hybrid.api.result("/resumable-query-next", {"uuid": opened["uuid"], "additionalK": 1})
    assert after == [{"id": "id1", "score": 0.5, "metadata": {"key": "value"}}]


def test_a_one_sided_query_of_a_hybrid_index_answers_that_sides_scores(hybrid: Hybrid) -> None:
    query = {
        "topK": 1,
        "sparseVector": sparse([2, 3], [0.5, 0.5]),
        "weightingStrategy": "IDF",
        "fusionAlgorithm": "DBSF",
        "includeMetadata": True,
    }
    assert hybrid.result("query", query) == [
        {"id": "id2", "score": 0.26666638, "metadata": {"key": "value"}}
    ]


def test_idf_scores_of_a_sparse_index(serve: Serve) -> None:
    api = Api(serve(index_type="sparse", embedding=False))
    api.result("/upsert", [{key: v for key, v in r.items() if key != "vector"} for r in RECORDS])
    opened = api.result(
        "/resumable-query",
        {"topK": 1, "sparseVector": sparse([0, 1], [0.1, 0.2]), "weightingStrategy": "IDF"},
    )
    assert opened["scores"] == [{"id": "id0", "score": 0.028608438}]
    after = api.result("/resumable-query-next", {"uuid": opened["uuid"], "additionalK": 1})
    assert after == [{"id": "id1", "score": 0.018800145}]


# -- range cursors ----------------------------------------------------------------------------


def vectors(count: int, prefix: str = "v") -> list[dict[str, Any]]:
    return [{"id": f"{prefix}{i:02}", "vector": [1.0, i + 1.0]} for i in range(count)]


def page(api: Api, ns: str, cursor: str, limit: int = 5) -> tuple[list[str], str]:
    answer = api.result(f"/range{ns}", {"cursor": cursor, "limit": limit})
    return [item["id"] for item in answer["vectors"]], answer["nextCursor"]


@pytest.mark.parametrize("ns", ["", "/ns"])
def test_cursors_count_per_namespace_from_0(serve: Serve, ns: str) -> None:
    api = Api(serve(dimension=2, embedding=False))
    api.result("/upsert/other", vectors(20, "o"))  # another namespace's rows count not
    api.result(f"/upsert{ns}", vectors(20))
    api.result(f"/reset{ns}")
    for start in range(0, 20, 4):  # 20 upserts into a reset index, in five requests
        api.result(f"/upsert{ns}", vectors(20)[start : start + 4])
    cursors = []
    cursor = "0"
    while True:
        _, cursor = page(api, ns, cursor)
        if not cursor:
            break
        cursors.append(cursor)
    assert cursors == ["5", "10", "15"]


def test_paging_stays_exact_while_records_are_deleted_between_pages(serve: Serve) -> None:
    api = Api(serve(dimension=2, embedding=False))
    api.result("/upsert", vectors(20))
    seen, cursor = page(api, "", "0")
    assert (seen, cursor) == (["v00", "v01", "v02", "v03", "v04"], "5")
    # Two records already seen and one not yet seen go between the pages.
    api.result("/delete", {"ids": ["v01", "v03", "v07"]})
    while cursor:
        ids, cursor = page(api, "", cursor)
        seen += ids
    assert seen == [f"v{i:02}" for i in range(20) if i != 7]


def test_the_test_only_offset_cursors_shift_when_records_are_deleted(serve: Serve) -> None:
    api = Api(serve(dimension=2, embedding=False, cursor_mode="offset"))
    api.result("/upsert", vectors(20))
    seen, cursor = page(api, "", "0")
    api.result("/delete", {"ids": ["v01", "v03", "v07"]})
    while cursor:
        ids, cursor = page(api, "", cursor)
        seen += ids
    # The deletions moved v05 and v06 before the second page's offset: a client that
    # deletes while it scans passes over them.
    assert set(f"v{i:02}" for i in range(20)) - set(seen) == {"v05", "v06", "v07"}
