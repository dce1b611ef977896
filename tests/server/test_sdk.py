"""The official ``upstash-vector`` Python SDK against the local server, as against Upstash.

The SDK POSTs every command, parses ``result`` into its dataclasses and raises
``UpstashError`` with the ``error`` message: if these pass, code written for Upstash
runs unchanged against ``vupsert serve``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from upstash_vector import Index
from upstash_vector.errors import UpstashError
from upstash_vector.types import Data, MetadataUpdateMode, Vector

from vupsert_server import EMBEDDING_MODEL, NO_EMBEDDING, LocalServer

from .conftest import Serve

ARTICLES = [
    Data(id="a1", data="Upstash Vector is a serverless vector database.", metadata={"n": 1}),
    Data(id="a2", data="Bread is baked in an oven from flour and water.", metadata={"n": 2}),
    Data(id="a3", data="Serverless databases scale to zero when idle.", metadata={"n": 3}),
]


@pytest.fixture
def index(local: LocalServer) -> Iterator[Index]:
    yield Index(url=local.url, token=local.token, retries=0, allow_telemetry=False)


def test_upsert_data_into_two_namespaces_and_fetch(index: Index, local: LocalServer) -> None:
    assert index.upsert(ARTICLES) == "Success"
    assert index.upsert([("b1", "Bakers rise early.", {"shop": "corner"})], namespace="bakery")
    fetched = index.fetch(["a2", "missing", "a1"], include_data=True, include_metadata=True)
    assert fetched[1] is None
    assert fetched[0] is not None
    assert fetched[0].id == "a2"
    assert fetched[0].data == "Bread is baked in an oven from flour and water."
    assert fetched[0].metadata == {"n": 2}
    assert fetched[0].vector is None
    other = index.fetch("b1", include_metadata=True, include_vectors=True, namespace="bakery")
    assert other[0] is not None
    assert other[0].metadata == {"shop": "corner"}
    assert other[0].vector is not None
    assert len(other[0].vector) == 384
    assert index.fetch(prefix="a", namespace="bakery") == []
    assert set(local.records("bakery")) == {"b1"}


def test_info_counts_per_namespace(index: Index) -> None:
    index.upsert(ARTICLES)
    index.upsert([("b1", "Bakers rise early.")], namespace="bakery")
    info = index.info()
    assert info.vector_count == 4
    # As on Upstash, text is embedded after the answer: poll as the SDK's own tests do.
    deadline = time.monotonic() + 5
    while info.pending_vector_count and time.monotonic() < deadline:
        time.sleep(0.05)
        info = index.info()
    assert info.pending_vector_count == 0
    assert info.dimension == 384
    assert info.similarity_function == "COSINE"
    assert info.dense_index is not None
    assert info.dense_index.embedding_model == EMBEDDING_MODEL
    assert info.sparse_index is None
    assert {ns: n.vector_count for ns, n in info.namespaces.items()} == {"": 3, "bakery": 1}
    assert all(n.pending_vector_count == 0 for n in info.namespaces.values())
    assert sorted(index.list_namespaces()) == ["", "bakery"]


def test_range_through_all_pages(index: Index) -> None:
    index.upsert([Data(id=f"id-{i:02}", data=f"text {i}") for i in range(25)])
    page = index.range(cursor="", limit=4, include_data=True)
    seen = [v.id for v in page.vectors]
    assert len(seen) == 4
    while page.next_cursor != "":
        page = index.range(cursor=page.next_cursor, limit=8, include_data=True)
        assert all(v.data is not None for v in page.vectors)
        seen += [v.id for v in page.vectors]
    assert seen == [f"id-{i:02}" for i in range(25)]


def test_query_data_finds_the_best_match(index: Index) -> None:
    index.upsert(ARTICLES)
    hits = index.query(data="Which serverless vector database?", top_k=2, include_metadata=True)
    assert hits[0].id == "a1"
    assert hits[0].metadata == {"n": 1}
    assert 0 <= hits[1].score < hits[0].score <= 1
    many = index.query_many(
        queries=[{"data": "baked bread flour", "top_k": 1}, {"data": "scale to zero", "top_k": 1}]
    )
    assert [[hit.id for hit in hits] for hits in many] == [["a2"], ["a3"]]
    single = index.query_many(queries=[{"data": "oven", "top_k": 1}])
    assert single[0][0].id == "a2"


def test_update_data_and_metadata(index: Index, local: LocalServer) -> None:
    index.upsert(ARTICLES)
    assert index.update(
        "a1", metadata={"n": None, "tag": "new"}, metadata_update_mode=(MetadataUpdateMode.PATCH)
    )
    assert index.update("a2", data="Sourdough needs a starter.")
    assert not index.update("nobody", metadata={"x": 1})
    records = local.records()
    assert records["a1"] == ("Upstash Vector is a serverless vector database.", {"tag": "new"})
    assert records["a2"] == ("Sourdough needs a starter.", {"n": 2})
    assert index.query(data="sourdough starter", top_k=1)[0].id == "a2"


def test_delete_reset_and_delete_namespace(index: Index, local: LocalServer) -> None:
    index.upsert(ARTICLES)
    index.upsert([("b1", "Bakers rise early.")], namespace="bakery")
    assert index.delete(["a1", "nope"]).deleted == 1
    assert index.delete(prefix="a").deleted == 2
    assert local.records() == {}
    assert index.reset(namespace="bakery") == "Success"
    assert local.records("bakery") == {}
    index.delete_namespace("bakery")
    assert index.list_namespaces() == [""]
    with pytest.raises(UpstashError, match="does not exist"):
        index.delete_namespace("bakery")
    index.upsert(ARTICLES)
    assert index.reset(all=True) == "Success"
    assert index.info().vector_count == 0


def test_plain_vectors_round_trip(serve: Serve) -> None:
    server = serve(dimension=2, embedding=False)
    index = Index(url=server.url, token=server.token, retries=0, allow_telemetry=False)
    index.upsert(
        [
            ("v1", [0.1, 0.2], {"field": "value"}, "data-1"),
            Vector(id="v2", vector=[0.3, 0.4]),
            {"id": "v3", "vector": [0.5, 0.6], "metadata": {"k": 3}},
        ]
    )
    fetched = index.fetch(
        ["v1", "v2"], include_vectors=True, include_metadata=True, include_data=True
    )
    assert fetched[0] is not None
    assert fetched[0].vector == [0.1, 0.2]
    assert fetched[0].data == "data-1"
    assert fetched[1] is not None
    assert fetched[1].metadata is None
    hits = index.query(vector=[0.1, 0.2], top_k=1, include_vectors=True)
    assert hits[0].id == "v1"
    assert hits[0].score == 1
    assert index.update("v2", vector=[0.2, 0.3])
    updated = index.fetch("v2", include_vectors=True)[0]
    assert updated is not None
    assert updated.vector == [0.2, 0.3]
    filtered = index.query(vector=[0.5, 0.6], top_k=3, filter="k = 3")
    assert [hit.id for hit in filtered] == ["v3"]


def test_the_sdk_sees_422_and_401_as_upstash_errors(serve: Serve) -> None:
    plain = serve(dimension=8, embedding=False)
    index = Index(url=plain.url, token=plain.token, retries=0, allow_telemetry=False)
    with pytest.raises(UpstashError) as refused:
        index.upsert([Data(id="a", data="text")])
    assert str(refused.value) == NO_EMBEDDING
    with pytest.raises(UpstashError, match=NO_EMBEDDING):
        index.query(data="text")
    with pytest.raises(UpstashError, match="dimension 2, but the index has dimension 8"):
        index.upsert([("v", [0.1, 0.2])])

    stranger = Index(url=plain.url, token="not-the-token", retries=0, allow_telemetry=False)
    with pytest.raises(UpstashError, match="Unauthorized"):
        stranger.info()
    assert plain.stats["statuses"][401] == 1


def test_the_sdk_sees_a_refused_record(serve: Serve) -> None:
    server = serve(refuse_matching="cannot embed me")
    index = Index(url=server.url, token=server.token, retries=0, allow_telemetry=False)
    with pytest.raises(UpstashError, match=r'index 1 \(id "b"\)'):
        index.upsert([Data(id="a", data="fine"), Data(id="b", data="cannot embed me")])
    assert server.records() == {}
