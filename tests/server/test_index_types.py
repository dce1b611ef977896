"""Sparse and hybrid indexes, similarity functions, resumable queries, and the details in
which the service's SDK suites expect it to answer: ids and cursors as numbers, range
order, ties, reset of every namespace, error texts."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import pytest

from vupsert_server import EMBEDDING_MODEL, SPARSE_EMBEDDING_MODEL, LocalServer, ServerConfigError
from vupsert_server._search import Hit, best, fuse

from .conftest import Serve
from .server_helpers import Api, docs


def sparse(indices: list[int], values: list[float]) -> dict[str, Any]:
    return {"indices": indices, "values": values}


def ids(hits: list[dict[str, Any]]) -> list[str]:
    return [hit["id"] for hit in hits]


# -- sparse indexes ---------------------------------------------------------------------------


def test_a_sparse_index_stores_and_answers_sparse_vectors(serve: Serve) -> None:
    api = Api(serve(index_type="sparse", embedding=False))
    api.result(
        "/upsert",
        [
            {"id": "a", "sparseVector": sparse([0, 1], [0.1, 0.2])},
            {"id": "b", "sparseVector": sparse([2, 1], [0.3, 0.2]), "metadata": {"k": 1}},
            {"id": "c", "sparseVector": sparse([2, 3], [0.3, 0.4]), "data": "text"},
        ],
    )
    fetched = api.result("/fetch", {"ids": ["b"], "includeVectors": True})
    # Indices come back in ascending order; values as they were sent (float32).
    assert fetched == [{"id": "b", "sparseVector": sparse([1, 2], [0.2, 0.3])}]
    hits = api.result("/query", {"sparseVector": sparse([0, 1, 3], [0.1, 0.5, 0.1])})
    # Inner products: a 0.11, b 0.1, c 0.04; a vector sharing no index is no hit.
    assert ids(hits) == ["a", "b", "c"]
    assert hits[0]["score"] == pytest.approx(0.11, rel=1e-6)
    assert ids(api.result("/query", {"sparseVector": sparse([3, 4], [1, 1])})) == ["c"]


def test_sparse_vectors_are_checked(serve: Serve) -> None:
    api = Api(serve(index_type="sparse", embedding=False))
    where = 'Invalid record at index 0 (id "a")'
    cases = [
        ({"id": "a", "vector": [1.0]}, "dense vectors need a dense or hybrid index"),
        ({"id": "a"}, "sparseVector field is required"),
        ({"id": "a", "sparseVector": [1, 2]}, "sparseVector must be an object"),
        ({"id": "a", "sparseVector": sparse([1], [1, 2])}, "has 1 indices but 2 values"),
        ({"id": "a", "sparseVector": sparse([2**31], [1])}, "32-bit integers"),
        ({"id": "a", "sparseVector": sparse([], [])}, "at least one index"),
    ]
    for record, problem in cases:
        message = api.error("/upsert", [record], status=400)
        assert message.startswith(where) and problem in message, message
    # A repeated index adds up (the service takes repeats).
    api.result("/upsert", [{"id": "a", "sparseVector": sparse([5, 1, 5], [1, 2, 3])}])
    fetched = api.result("/fetch", {"ids": ["a"], "includeVectors": True})
    assert fetched[0]["sparseVector"] == sparse([1, 5], [2, 4])


def test_idf_weighs_rare_dimensions_up(serve: Serve) -> None:
    api = Api(serve(index_type="sparse", embedding=False))
    api.result(
        "/upsert",
        [
            {"id": "id0", "sparseVector": sparse([0, 1], [0.1, 0.1])},
            {"id": "id1", "sparseVector": sparse([1, 2], [0.1, 0.1])},
            {"id": "id2", "sparseVector": sparse([2, 3], [0.1, 0.1])},
        ],
    )
    query: dict[str, Any] = {"sparseVector": sparse([0, 1, 3], [0.2, 0.1, 0.1])}
    # Plain inner products tie id1 and id2 (0.01 each): ids break the tie.
    assert ids(api.result("/query", query)) == ["id0", "id1", "id2"]
    # Index 1 is in two vectors, index 3 in one: IDF puts id2 above id1.
    hits = api.result("/query", {**query, "weightingStrategy": "IDF"})
    assert ids(hits) == ["id0", "id2", "id1"]
    idf = {n: math.log((3 - n + 0.5) / (n + 0.5) + 1) for n in (1, 2)}
    assert hits[1]["score"] == pytest.approx(0.1 * 0.1 * idf[1], rel=1e-5)
    assert "weightingStrategy must be IDF" in api.error(
        "/query", {**query, "weightingStrategy": "BM25"}, status=400
    )


# -- hybrid indexes ---------------------------------------------------------------------------

HYBRID_ROWS = [
    {"id": "id0", "vector": [0.8, 0.9], "sparseVector": sparse([0, 1], [0.1, 0.1])},
    {"id": "id1", "vector": [0.9, 0.9], "sparseVector": sparse([1, 2], [0.1, 0.1])},
    {"id": "id2", "vector": [0.3, 0.9], "sparseVector": sparse([2, 3], [0.1, 0.1])},
]


def test_a_hybrid_index_fuses_dense_and_sparse_rankings(serve: Serve) -> None:
    api = Api(serve(index_type="hybrid", dimension=2, embedding=False))
    api.result("/upsert", HYBRID_ROWS)
    query = {"vector": [0.9, 0.9], "sparseVector": sparse([0, 1, 3], [0.1, 0.1, 100])}
    # Dense ranks id1, id0, id2; sparse ranks id2 (10.0), id0 (0.02), id1 (0.01).
    # RRF (ranks from 0): id1 and id2 get 1/60 + 1/62 each (a tie, in id order), id0 2/61,
    # a bit less.
    hits = api.result("/query", query)
    assert ids(hits) == ["id1", "id2", "id0"]
    assert hits[0]["score"] == hits[1]["score"] == pytest.approx(1 / 60 + 1 / 62, rel=1e-6)
    assert hits[2]["score"] == pytest.approx(2 / 61, rel=1e-6)
    # The SDK suite's own example of DBSF.
    assert ids(api.result("/query", {**query, "fusionAlgorithm": "DBSF"})) == [
        "id1",
        "id2",
        "id0",
    ]
    # One side alone ranks by that side.
    assert ids(api.result("/query", {"vector": [0.3, 0.9]})) == ["id2", "id0", "id1"]
    assert ids(api.result("/query", {"sparseVector": sparse([3], [1])})) == ["id2"]
    fetched = api.result("/fetch", {"ids": ["id2"], "includeVectors": True})
    assert fetched == [
        {"id": "id2", "vector": [0.3, 0.9], "sparseVector": sparse([2, 3], [0.1, 0.1])}
    ]


def test_rrf_counts_ranks_where_dbsf_counts_distances() -> None:
    def ranking(**scores: float) -> list[Hit]:
        return best([(-score, True, id) for id, score in scores.items()], None)

    dense = ranking(C=1.0, D=0.47, A=0.26, B=0.23)
    sparse_ = ranking(A=0.84, C=0.64, B=0.48, D=0.15)
    # D is second in dense by far and last in sparse; B third-ish in both: ranks favour
    # D, distances from each ranking's mean favour B.
    assert [hit.id for hit in fuse(dense, sparse_, "RRF")] == ["C", "A", "D", "B"]
    assert [hit.id for hit in fuse(dense, sparse_, "DBSF")] == ["C", "A", "B", "D"]


def test_a_hybrid_index_needs_both_vectors(serve: Serve) -> None:
    api = Api(serve(index_type="hybrid", dimension=2, embedding=False))
    message = api.error("/upsert", [{"id": "a", "vector": [1, 0]}], status=400)
    assert message == (
        'Invalid record at index 0 (id "a"): a hybrid index needs both vector and sparseVector'
    )
    assert "vector or sparseVector field is required" in api.error(
        "/query", {"topK": 1}, status=400
    )
    assert "fusionAlgorithm must be RRF or DBSF" in api.error(
        "/query", {"vector": [1, 0], "fusionAlgorithm": "MAX"}, status=400
    )


def test_a_dense_index_refuses_sparse_vectors(serve: Serve) -> None:
    api = Api(serve(dimension=2, embedding=False))
    message = api.error(
        "/upsert", [{"id": "a", "vector": [1, 0], "sparseVector": sparse([1], [1])}], status=400
    )
    assert message.endswith("sparse vectors need a sparse or hybrid index")
    assert "sparse vectors need" in api.error(
        "/query", {"sparseVector": sparse([1], [1])}, status=400
    )


def test_hybrid_embedding_embeds_text_both_ways_and_honours_query_mode(serve: Serve) -> None:
    server = serve(index_type="hybrid", dimension=64)
    api = Api(server)
    api.result(
        "/upsert-data",
        [
            {"id": "id0", "data": "hello"},
            {"id": "id1", "data": "hello world"},
            {"id": "id2", "data": "hello world Upstash"},
        ],
    )
    fetched = api.result("/fetch", {"ids": ["id1"], "includeVectors": True})
    assert len(fetched[0]["vector"]) == 64
    assert len(fetched[0]["sparseVector"]["indices"]) == 2  # "hello", "world"
    for mode in ("SPARSE", "DENSE", "HYBRID"):
        hits = api.result("/query-data", {"data": "hello world Upstash", "queryMode": mode})
        assert ids(hits)[0] == "id2", mode
    sparse_hits = api.result("/query-data", {"data": "hello world Upstash", "queryMode": "SPARSE"})
    assert ids(sparse_hits) == ["id2", "id1", "id0"]  # BM25: more shared words first
    assert "queryMode must be" in api.error(
        "/query-data", {"data": "x", "queryMode": "BOTH"}, status=400
    )


def test_a_sparse_index_with_embedding_embeds_text_with_bm25(serve: Serve) -> None:
    api = Api(serve(index_type="sparse"))
    api.result(
        "/upsert-data",
        [
            {"id": "cats", "data": "The cat sat on the mat."},
            {"id": "stocks", "data": "Stock markets fell on Monday."},
        ],
    )
    hits = api.result("/query-data", {"data": "where is the cat", "weightingStrategy": "IDF"})
    assert ids(hits) == ["cats"]  # only vectors sharing a word are hits
    assert api.result("/info")["pendingVectorCount"] == 0


@pytest.mark.parametrize(
    ("kind", "dense", "sparse_part", "dimension"),
    [
        (
            {"dimension": 2, "embedding": False},
            {"dimension": 2, "similarityFunction": "COSINE", "embeddingModel": ""},
            None,
            2,
        ),
        ({"index_type": "sparse", "embedding": False}, None, {"embeddingModel": ""}, 0),
        ({"index_type": "sparse"}, None, {"embeddingModel": SPARSE_EMBEDDING_MODEL}, 0),
        (
            {"index_type": "hybrid", "dimension": 8, "similarity": "DOT_PRODUCT"},
            {
                "dimension": 8,
                "similarityFunction": "DOT_PRODUCT",
                "embeddingModel": EMBEDDING_MODEL,
            },
            {"embeddingModel": SPARSE_EMBEDDING_MODEL},
            8,
        ),
    ],
)
def test_info_describes_each_part_as_upstash_does(
    serve: Serve,
    kind: dict[str, Any],
    dense: dict[str, Any] | None,
    sparse_part: dict[str, Any] | None,
    dimension: int,
) -> None:
    info = Api(serve(**kind)).result("/info")
    assert info["indexType"] == kind.get("index_type", "dense").upper()
    assert info["denseIndex"] == dense
    assert info["sparseIndex"] == sparse_part
    assert info["dimension"] == dimension


def test_a_db_file_keeps_its_index_type(tmp_path: Path, serve: Serve) -> None:
    db = str(tmp_path / "index.db")
    first = serve(db=db, index_type="sparse", token="t")
    Api(first).result("/upsert", [{"id": "a", "sparseVector": sparse([1], [1.5])}])
    first.stop()
    with pytest.raises(ServerConfigError, match="holds a sparse index, not a dense one") as caught:
        serve(db=db)
    assert caught.value.hint is not None and "--index-type sparse" in caught.value.hint
    again = serve(db=db, index_type="sparse", token="t")
    fetched = Api(again).result("/fetch", {"ids": ["a"], "includeVectors": True})
    assert fetched[0]["sparseVector"] == sparse([1], [1.5])


# -- similarity functions -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("similarity", "expected"),
    [
        # Upstash's normalisations of each function to a score.
        ("COSINE", (1 + 0.6) / 2),
        ("EUCLIDEAN", 1 / (1 + (1 - 0.6) ** 2 + 0.8**2)),
        ("DOT_PRODUCT", (1 + 0.6) / 2),
    ],
)
def test_similarity_functions_score_as_upstash_documents(
    serve: Serve, similarity: str, expected: float
) -> None:
    api = Api(serve(dimension=2, embedding=False, similarity=similarity))
    api.result("/upsert", [{"id": "a", "vector": [0.6, 0.8]}, {"id": "b", "vector": [1, 0]}])
    hits = api.result("/query", {"vector": [1, 0], "topK": 2})
    assert ids(hits) == ["b", "a"]
    assert hits[0]["score"] == 1.0
    assert hits[1]["score"] == pytest.approx(expected, rel=1e-6)
    assert api.result("/info")["similarityFunction"] == similarity


def test_an_exact_match_ranks_first_among_tied_scores(serve: Serve) -> None:
    api = Api(serve(dimension=2, embedding=False))
    # All three point the same way: every score is 1.0 once rounded to float32, but the
    # float64 cosine of [0.1, 0.1] with itself is 0.9999999999999998.
    api.result(
        "/upsert",
        [
            {"id": "a-big", "vector": [2, 2]},
            {"id": "b-one", "vector": [1, 1]},
            {"id": "z-exact", "vector": [0.1, 0.1]},
        ],
    )
    hits = api.result("/query", {"vector": [0.1, 0.1], "topK": 3})
    assert ids(hits) == ["z-exact", "a-big", "b-one"]
    assert {hit["score"] for hit in hits} == {1.0}


# -- ids, cursors, range order, reset, error texts -----------------------------------------


def test_numeric_ids_are_taken_and_kept_as_strings(serve: Serve) -> None:
    server = serve(dimension=2, embedding=False)
    api = Api(server)
    # What the TypeScript SDK sends for numeric ids.
    api.result("/upsert", [{"id": 1, "vector": [1, 0]}, {"id": "2", "vector": [0, 1]}])
    assert api.result("/fetch", {"ids": [1, 2]}) == [{"id": "1"}, {"id": "2"}]
    assert api.result("/update", {"id": 1, "metadata": {"n": 1}}) == {"updated": 1}
    assert server.records()["1"] == (None, {"n": 1})
    assert api.result("/delete", {"ids": [1]}) == {"deleted": 1}
    assert api.result("/delete", 2) == {"deleted": 1}


def test_range_walks_vectors_in_upsert_order_with_numeric_cursors(api: Api) -> None:
    api.result("/upsert-data", [{"id": f"id-{i}", "data": f"text {i}"} for i in range(12)])
    first = api.result("/range", {"cursor": 0, "limit": 4})  # a number, as the TS SDK sends
    # The service's order: id-0, id-1, id-2, id-3, not the text order id-0, id-1, id-10.
    assert ids(first["vectors"]) == ["id-0", "id-1", "id-2", "id-3"]
    cursor = first["nextCursor"]
    assert cursor.isdigit()
    second = api.result("/range", {"cursor": int(cursor), "limit": 8})
    assert ids(second["vectors"]) == [f"id-{i}" for i in range(4, 12)]
    assert second["nextCursor"] == ""
    # An upsert of an existing id keeps its place.
    api.result("/upsert-data", {"id": "id-0", "data": "new text"})
    assert ids(api.result("/range", {"cursor": "", "limit": 1})["vectors"]) == ["id-0"]
    assert "Invalid cursor" in api.error("/range", {"cursor": -1, "limit": 1}, status=400)


def test_fetch_with_both_ids_and_prefix_gets_the_service_text(api: Api) -> None:
    message = api.error("/fetch", {"ids": ["a"], "prefix": "a"}, status=400)
    assert message == "Only one of ids or prefix must be provided."


def test_reset_all_keeps_every_namespace(api: Api, local: LocalServer) -> None:
    api.result("/upsert-data/one", docs(2))
    api.result("/upsert-data/two", docs(2))
    api.result("/reset?all", method="DELETE")
    assert local.namespaces() == ["", "one", "two"]
    info = api.result("/info")
    assert info["vectorCount"] == 0
    assert set(info["namespaces"]) == {"", "one", "two"}


# -- resumable queries ----------------------------------------------------------------------


def test_resumable_query_pages_through_the_ranking_then_ends(serve: Serve) -> None:
    api = Api(serve(dimension=2, embedding=False))
    api.result(
        "/upsert/ns",
        [{"id": f"id{i}", "vector": [0.1 + 0.2 * i, 0.2 + 0.2 * i]} for i in range(5)],
    )
    opened = api.result(
        "/resumable-query/ns", {"vector": [0.1, 0.2], "topK": 2, "includeVectors": True}
    )
    assert ids(opened["scores"]) == ["id0", "id1"]
    assert opened["scores"][0]["vector"] == [0.1, 0.2]
    uuid = opened["uuid"]
    assert ids(api.result("/resumable-query-next", {"uuid": uuid, "additionalK": 2})) == [
        "id2",
        "id3",
    ]
    assert ids(api.result("/resumable-query-next", {"uuid": uuid, "additionalK": 5})) == ["id4"]
    assert api.result("/resumable-query-next", {"uuid": uuid, "additionalK": 1}) == []
    assert api.result("/resumable-query-end", {"uuid": uuid}) == "Success"
    assert "does not exist" in api.error(
        "/resumable-query-next", {"uuid": uuid, "additionalK": 1}, status=404
    )
    assert "does not exist" in api.error("/resumable-query-end", {"uuid": uuid}, status=404)


def test_resumable_query_data_and_max_idle(api: Api) -> None:
    api.result("/upsert-data", docs(3))
    opened = api.result(
        "/resumable-query-data", {"data": "record number 1 about things", "topK": 1}
    )
    assert ids(opened["scores"]) == ["doc-1"]
    short = api.result("/resumable-query-data", {"data": "x", "topK": 1, "maxIdle": 0.001})
    time.sleep(0.05)
    api.error("/resumable-query-next", {"uuid": short["uuid"], "additionalK": 1}, status=404)
    assert "maxIdle" in api.error("/resumable-query-data", {"data": "x", "maxIdle": 0}, status=400)


def test_a_query_of_a_missing_namespace_is_empty(api: Api) -> None:
    assert api.result("/query-data/nowhere", {"data": "anything"}) == []
    opened = api.result("/resumable-query-data/nowhere", {"data": "anything"})
    assert opened["scores"] == []
