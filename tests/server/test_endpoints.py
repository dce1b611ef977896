"""Every endpoint over raw HTTP: shapes of the answers, methods, namespaces, pagination."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from vupsert_server import EMBEDDING_MODEL, UNKNOWN_ENDPOINT, LocalServer

from .conftest import Serve
from .server_helpers import Api, docs


def test_upsert_data_then_fetch_with_and_without_includes(api: Api) -> None:
    assert api.result("/upsert-data", docs(3)) == "Success"
    assert api.result("/upsert-data", {"id": "single", "data": "one object, not an array"})

    bare = api.result("/fetch", {"ids": ["doc-1", "missing", "single"]})
    assert bare == [{"id": "doc-1"}, None, {"id": "single"}]

    full = api.result(
        "/fetch",
        {"ids": ["doc-1"], "includeData": True, "includeMetadata": True, "includeVectors": True},
    )
    assert full[0]["data"] == "record number 1 about things"
    assert full[0]["metadata"] == {"n": 1}
    assert len(full[0]["vector"]) == 384
    assert sum(x * x for x in full[0]["vector"]) == pytest.approx(1.0, abs=1e-4)


def test_a_record_without_metadata_has_no_metadata_field(api: Api) -> None:
    api.result(
        "/upsert-data", [{"id": "a", "data": "x"}, {"id": "b", "data": "y", "metadata": None}]
    )
    fetched = api.result("/fetch", {"ids": ["a", "b"], "includeMetadata": True})
    assert fetched == [{"id": "a"}, {"id": "b"}]


def test_upsert_replaces_a_record_with_the_same_id(api: Api, local: LocalServer) -> None:
    api.result("/upsert-data", {"id": "a", "data": "first", "metadata": {"v": 1}})
    api.result("/upsert-data", {"id": "a", "data": "second"})
    assert local.records() == {"a": ("second", None)}


def test_namespaces_in_the_path_are_percent_decoded_and_kept_apart(
    api: Api, local: LocalServer
) -> None:
    api.result("/upsert-data/news%2F2024%20fr", docs(2))
    api.result("/upsert-data/plain", docs(1, prefix="p"))
    assert local.namespaces() == ["", "news/2024 fr", "plain"]
    assert set(local.records("news/2024 fr")) == {"doc-0", "doc-1"}
    assert local.records("") == {}
    assert api.result("/list-namespaces") == ["", "news/2024 fr", "plain"]
    assert api.result("/fetch/plain", {"ids": ["p-0", "doc-0"]}) == [{"id": "p-0"}, None]


def test_fetch_by_prefix_in_id_order(api: Api) -> None:
    api.result("/upsert-data", docs(3, prefix="id-1") + docs(2, prefix="id-2"))
    fetched = api.result("/fetch", {"prefix": "id-1"})
    assert [item["id"] for item in fetched] == ["id-1-0", "id-1-1", "id-1-2"]
    # The older body form: a bare array of ids.
    assert api.result("/fetch", ["id-2-1"]) == [{"id": "id-2-1"}]


def test_range_pages_through_everything_once(api: Api) -> None:
    api.result("/upsert-data", docs(23))
    seen: list[str] = []
    cursor = "0"
    pages = 0
    while True:
        page = api.result("/range", {"cursor": cursor, "limit": 5, "includeData": True})
        assert len(page["vectors"]) <= 5
        seen += [item["id"] for item in page["vectors"]]
        assert all("data" in item for item in page["vectors"])
        pages += 1
        cursor = page["nextCursor"]
        if cursor == "":
            break
        assert cursor != "0"
    assert pages == 5
    assert sorted(seen) == sorted(f"doc-{i}" for i in range(23))
    assert len(seen) == len(set(seen))


def test_range_with_prefix_and_an_empty_start_cursor(api: Api) -> None:
    api.result("/upsert-data", docs(3, prefix="a") + docs(3, prefix="b"))
    page = api.result("/range", {"cursor": "", "limit": 10, "prefix": "b-"})
    assert [v["id"] for v in page["vectors"]] == ["b-0", "b-1", "b-2"]
    assert page["nextCursor"] == ""
    assert "Invalid cursor" in api.error("/range", {"cursor": "%%%", "limit": 1}, status=400)


def test_query_data_ranks_shared_words_first(api: Api) -> None:
    api.result(
        "/upsert-data",
        [
            {
                "id": "cats",
                "data": "The cat sat on the warm mat by the window.",
                "metadata": {"k": 1},
            },
            {"id": "markets", "data": "Stock markets fell sharply on Monday morning."},
            {"id": "dogs", "data": "Dogs are loyal animals and great friends."},
        ],
    )
    hits = api.result(
        "/query-data",
        {"data": "where did the cat sit?", "topK": 2, "includeMetadata": True, "includeData": True},
    )
    assert [hit["id"] for hit in hits] == ["cats", hits[1]["id"]]
    assert hits[0]["metadata"] == {"k": 1}
    assert hits[0]["data"].startswith("The cat")
    assert 0 <= hits[1]["score"] < hits[0]["score"] <= 1
    assert "vector" not in hits[0]


def test_query_data_of_a_stored_text_scores_one(api: Api) -> None:
    api.result("/upsert-data", docs(5))
    hits = api.result("/query-data", {"data": "record number 3 about things", "topK": 1})
    assert hits == [{"id": "doc-3", "score": 1.0}]


def test_a_batch_of_queries_answers_an_array_per_query(api: Api) -> None:
    api.result("/upsert-data", docs(4))
    batch = api.result(
        "/query-data",
        [{"data": "record number 1 about things", "topK": 1}, {"data": "number 2", "topK": 3}],
    )
    assert len(batch) == 2
    assert batch[0][0]["id"] == "doc-1"
    assert len(batch[1]) == 3
    # Like Upstash (the Python SDK relies on it), a batch of one answers flat.
    single = api.result("/query-data", [{"data": "number 1", "topK": 2}])
    assert isinstance(single[0], dict)


def test_query_with_a_vector_and_include_vectors(serve: Serve) -> None:
    server = serve(dimension=2, embedding=False)
    api = Api(server)
    api.result(
        "/upsert",
        [
            {"id": "v1", "vector": [0.1, 0.2], "metadata": {"m": 1}},
            {"id": "v2", "vector": [0.3, 0.4]},
            {"id": "v3", "vector": [-0.2, -0.1], "data": "stored, not embedded"},
        ],
    )
    hits = api.result("/query", {"vector": [0.1, 0.2], "topK": 3, "includeVectors": True})
    assert [h["id"] for h in hits] == ["v1", "v2", "v3"]
    assert hits[0]["score"] == 1.0
    # float32 storage, answered as the shortest decimal: what was sent comes back.
    assert hits[0]["vector"] == [0.1, 0.2]
    assert hits[2]["score"] < 0.5
    fetched = api.result("/fetch", {"ids": ["v3"], "includeData": True})
    assert fetched == [{"id": "v3", "data": "stored, not embedded"}]


def test_query_filter_on_metadata(api: Api) -> None:
    api.result(
        "/upsert-data",
        [
            {"id": "a", "data": "red apple", "metadata": {"color": "red", "price": 3}},
            {"id": "b", "data": "red cherry", "metadata": {"color": "red", "price": 9}},
            {"id": "c", "data": "green apple", "metadata": {"color": "green", "price": 2}},
        ],
    )
    hits = api.result(
        "/query-data", {"data": "apple", "topK": 10, "filter": "color = 'red' AND price < 5"}
    )
    assert [h["id"] for h in hits] == ["a"]
    assert "Invalid filter" in api.error(
        "/query-data", {"data": "apple", "filter": "color = "}, status=400
    )


def test_update_metadata_overwrite_and_patch(api: Api, local: LocalServer) -> None:
    api.result("/upsert-data", {"id": "a", "data": "text", "metadata": {"x": 1, "y": 2}})
    patch = {"id": "a", "metadata": {"y": None, "z": {"deep": True}}, "metadataUpdateMode": "PATCH"}
    assert api.result("/update", patch) == {"updated": 1}
    assert local.records()["a"] == ("text", {"x": 1, "z": {"deep": True}})
    assert api.result("/update", {"id": "a", "metadata": {"only": 1}}) == {"updated": 1}
    assert local.records()["a"] == ("text", {"only": 1})
    assert api.result("/update", {"id": "nobody", "metadata": {"a": 1}}) == {"updated": 0}


def test_update_data_re_embeds(api: Api, local: LocalServer) -> None:
    api.result("/upsert-data", docs(3))
    api.result("/update", {"id": "doc-0", "data": "completely different words here"})
    assert local.records()["doc-0"] == ("completely different words here", {"n": 0})
    hits = api.result("/query-data", {"data": "completely different words here", "topK": 1})
    assert hits == [{"id": "doc-0", "score": 1.0}]


def test_update_refuses_an_empty_change_and_unknown_modes(api: Api) -> None:
    api.result("/upsert-data", docs(1))
    assert "Nothing to update" in api.error("/update", {"id": "doc-0"}, status=400)
    message = api.error(
        "/update", {"id": "doc-0", "metadata": {}, "metadataUpdateMode": "MERGE"}, status=400
    )
    assert "OVERWRITE or PATCH" in message


def test_delete_by_ids_prefix_and_filter(api: Api, local: LocalServer) -> None:
    api.result("/upsert-data", docs(6) + docs(3, prefix="tmp"))
    assert api.result("/delete", {"ids": ["doc-0", "doc-1", "nope"]}) == {"deleted": 2}
    assert api.result("/delete", {"prefix": "tmp-"}, method="DELETE") == {"deleted": 3}
    assert api.result("/delete", {"filter": "n >= 4"}) == {"deleted": 2}
    assert api.result("/delete", ["doc-2"]) == {"deleted": 1}
    assert set(local.records()) == {"doc-3"}
    # The service's own text, which its SDKs' tests check.
    only_one = "Only and only one of the ids, prefix, or filter must be provided."
    assert api.error("/delete", {"ids": ["a"], "prefix": "b"}, status=400) == only_one
    assert api.error("/delete", {}, status=400) == only_one


def test_reset_one_namespace_or_all(api: Api, local: LocalServer) -> None:
    api.result("/upsert-data", docs(2))
    api.result("/upsert-data/ns", docs(2))
    assert api.result("/reset/ns", method="DELETE") == "Success"
    assert local.records("ns") == {}
    assert local.namespaces() == ["", "ns"]
    assert len(local.records()) == 2
    api.result("/upsert-data/ns", docs(2))
    assert api.result("/reset?all") == "Success"
    assert local.records() == {}
    assert local.records("ns") == {}
    # As on Upstash, reset?all empties the namespaces and keeps them.
    assert local.namespaces() == ["", "ns"]


def test_info_counts_per_namespace(api: Api) -> None:
    api.result("/upsert-data", docs(3))
    api.result("/upsert-data/other", docs(2))
    api.result("/query-data", {"data": "x"})
    api.result("/query-data/other", {"data": "x"})  # a query embeds what is pending
    info = api.result("/info", method="GET")
    assert info["vectorCount"] == 5
    assert info["pendingVectorCount"] == 0
    assert info["indexSize"] > 0
    assert info["dimension"] == 384
    assert info["similarityFunction"] == "COSINE"
    assert info["indexType"] == "DENSE"
    assert info["denseIndex"] == {
        "dimension": 384,
        "similarityFunction": "COSINE",
        "embeddingModel": EMBEDDING_MODEL,
    }
    assert info["sparseIndex"] is None
    assert info["namespaces"] == {
        "": {"vectorCount": 3, "pendingVectorCount": 0},
        "other": {"vectorCount": 2, "pendingVectorCount": 0},
    }


def test_text_is_embedded_after_the_write_and_counted_pending_until_then(
    api: Api, local: LocalServer
) -> None:
    api.result("/upsert-data", docs(40))
    info = api.result("/info")
    assert info["vectorCount"] == 40
    assert 0 <= info["pendingVectorCount"] <= 40
    # Vectors of rows still pending are computed on the fly.
    fetched = api.result("/fetch", {"ids": ["doc-7"], "includeVectors": True})
    assert len(fetched[0]["vector"]) == 384
    deadline = time.monotonic() + 5
    while api.result("/info")["pendingVectorCount"] and time.monotonic() < deadline:
        time.sleep(0.05)
    info = api.result("/info")
    assert info["pendingVectorCount"] == 0
    assert info["namespaces"][""] == {"vectorCount": 40, "pendingVectorCount": 0}
    assert api.result("/fetch", {"ids": ["doc-7"], "includeVectors": True}) == fetched


def test_delete_namespace(api: Api, local: LocalServer) -> None:
    api.result("/upsert-data/gone", docs(2))
    assert api.result("/delete-namespace/gone", method="DELETE") == "Success"
    assert local.namespaces() == [""]
    assert "does not exist" in api.error("/delete-namespace/gone", status=404)
    assert "default namespace" in api.error("/delete-namespace", status=400)


def test_documented_methods_and_post_are_accepted(api: Api) -> None:
    assert api.send("/info", method="GET").status_code == 200
    assert api.send("/list-namespaces", method="GET").status_code == 200
    assert api.send("/fetch", {"ids": ["x"]}, method="GET").status_code == 200
    assert api.send("/range", {"cursor": "0", "limit": 1}, method="GET").status_code == 200
    assert api.send("/reset", method="DELETE").status_code == 200
    assert api.send("/delete", {"ids": ["x"]}, method="DELETE").status_code == 200


def test_wrong_method_is_405_with_allow(api: Api) -> None:
    response = api.send("/upsert-data", method="GET")
    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"
    assert response.json() == {
        "error": "Method GET is not allowed on /upsert-data (allowed: POST)",
        "status": 405,
    }
    assert api.send("/info", method="DELETE").status_code == 405


def test_unknown_endpoint_is_a_json_404(api: Api, local: LocalServer) -> None:
    assert "Unknown endpoint" in api.error("/upsert-everything", status=404)
    assert "Unknown endpoint" in api.error("/info/extra", status=404)
    assert local.stats["requests"][UNKNOWN_ENDPOINT] == 1


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "Unauthorized: missing Authorization header"),
        ({"Authorization": "Bearer wrong"}, "Unauthorized: invalid token"),
        ({"Authorization": "Basic abc"}, "Unauthorized: invalid token"),
    ],
)
def test_every_endpoint_needs_the_token(
    local: LocalServer, headers: dict[str, str], message: str
) -> None:
    for path in ("/upsert-data", "/info", "/fetch", "/list-namespaces", "/nope"):
        response = httpx.post(local.url + path, headers=headers, content=b"[]")
        assert response.status_code == 401
        assert response.json() == {"error": message, "status": 401}
    assert local.stats["statuses"] == {401: 5}


def test_keep_alive_serves_many_requests_on_one_connection(api: Api) -> None:
    for _ in range(50):
        api.result("/info")
    response = api.send("/info")
    assert response.http_version == "HTTP/1.1"
    assert "close" not in response.headers.get("Connection", "")


def test_connection_close_is_honoured(local: LocalServer) -> None:
    response = httpx.post(
        local.url + "/info",
        headers={"Authorization": f"Bearer {local.token}", "Connection": "close"},
    )
    assert response.status_code == 200
    assert response.headers["Connection"] == "close"


def test_chunked_request_bodies_are_read(api: Api, local: LocalServer) -> None:
    body = [b'[{"id": "a", ', b'"data": "chunked"}]']
    response = api.http.post("/upsert-data", content=iter(body))
    assert response.status_code == 200, response.text
    assert local.records() == {"a": ("chunked", None)}


def test_concurrent_keep_alive_writers(local: LocalServer) -> None:
    def writer(worker: int) -> None:
        client = Api(local)
        for batch in range(10):
            response = client.send("/upsert-data", docs(50, prefix=f"w{worker}-b{batch}"))
            assert response.status_code == 200, response.text
        client.close()

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(local.records()) == 8 * 10 * 50
    assert local.stats["records_written"] == 4000
    assert local.stats["statuses"] == {200: 80}


def test_no_embedding_while_a_write_is_in_flight(serve: Serve) -> None:
    # A load against a slow server leaves gaps between applied writes longer than the
    # indexer's pause; embedding then would take the CPU from the writes still coming.
    local = serve()
    api = Api(local)
    api.result("/upsert-data", docs(40))
    local.set_faults(latency_ms=1500)
    writer = threading.Thread(target=api.result, args=("/upsert-data", docs(1, prefix="late")))
    writer.start()
    try:
        time.sleep(1.0)  # five times the indexer's pause, the write still waiting
        reader = Api(local)
        assert reader.result("/info")["pendingVectorCount"] == 40
        reader.close()
    finally:
        writer.join()
    local.set_faults(latency_ms=0)
    deadline = time.monotonic() + 5
    while api.result("/info")["pendingVectorCount"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert api.result("/info")["pendingVectorCount"] == 0
    api.close()
