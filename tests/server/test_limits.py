"""Upstash's limits, enforced with messages that name the record; a refused request writes
nothing. Also the 422 answers of an index without an embedding model."""

from __future__ import annotations

from typing import Any

import pytest

from vupsert.records import MAX_BATCH_RECORDS, MAX_DATA_BYTES, MAX_METADATA_BYTES
from vupsert_server import NO_EMBEDDING, LocalServer

from .conftest import Serve
from .server_helpers import Api, docs

GOOD = {"id": "good", "data": "a valid record before the bad one"}


@pytest.mark.parametrize(
    ("record", "message"),
    [
        (
            {"data": "no id"},
            "Invalid record at index 1: ID field is required and cannot be an empty string",
        ),
        (
            {"id": "", "data": "empty id"},
            "Invalid record at index 1: ID field is required and cannot be an empty string",
        ),
        (
            {"id": 7.5, "data": "x"},
            "Invalid record at index 1: id must be a string or an integer, got a fractional number",
        ),
        (
            {"id": True, "data": "x"},
            "Invalid record at index 1: id must be a string or an integer, got a boolean",
        ),
        ({"id": "r1"}, 'Invalid record at index 1 (id "r1"): data field is required'),
        (
            {"id": "r1", "data": ["x"]},
            'Invalid record at index 1 (id "r1"): data must be a string, got an array',
        ),
        (
            {"id": "r1", "data": "x", "metadata": "tag"},
            'Invalid record at index 1 (id "r1"): metadata must be a JSON object, got a string',
        ),
        (
            {"id": "r1", "data": "x", "vector": [1.0]},
            'Invalid record at index 1 (id "r1"): unknown field "vector" '
            "(upsert-data takes data, id, metadata)",
        ),
        ("just a string", "Invalid record at index 1: expected an object, got a string"),
    ],
)
def test_a_bad_record_refuses_the_whole_request(
    api: Api, local: LocalServer, record: Any, message: str
) -> None:
    assert api.error("/upsert-data", [GOOD, record], status=400) == message
    assert local.records() == {}
    assert local.stats["records_written"] == 0


def test_data_over_one_megabyte(api: Api, local: LocalServer) -> None:
    at_limit = {"id": "ok", "data": "é" * (MAX_DATA_BYTES // 2)}
    over = {"id": "big", "data": "é" * (MAX_DATA_BYTES // 2) + "x"}
    message = api.error("/upsert-data", [at_limit, over], status=400)
    assert message == (
        f'Invalid record at index 1 (id "big"): data is {MAX_DATA_BYTES + 1} bytes, '
        f"over the limit of {MAX_DATA_BYTES} bytes (1 MB)"
    )
    assert api.result("/upsert-data", [at_limit]) == "Success"
    assert set(local.records()) == {"ok"}


def test_metadata_over_48_kilobytes(api: Api) -> None:
    padding = MAX_METADATA_BYTES - len('{"k":""}')
    fits = {"id": "fits", "data": "x", "metadata": {"k": "a" * padding}}
    over = {"id": "over", "data": "x", "metadata": {"k": "a" * (padding + 1)}}
    assert api.result("/upsert-data", [fits]) == "Success"
    message = api.error("/upsert-data", [over], status=400)
    assert message == (
        f'Invalid record at index 0 (id "over"): metadata is {MAX_METADATA_BYTES + 1} bytes, '
        f"over the limit of {MAX_METADATA_BYTES} bytes (48 KB)"
    )


def test_more_than_a_thousand_records(api: Api, local: LocalServer) -> None:
    message = api.error("/upsert-data", docs(MAX_BATCH_RECORDS + 1), status=400)
    assert message == "Too many vectors in one request: 1001, the limit is 1000"
    assert api.result("/upsert-data", docs(MAX_BATCH_RECORDS)) == "Success"
    assert len(local.records()) == MAX_BATCH_RECORDS


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b'[{"id": "a", "data": "x"}', "Invalid JSON in the request body"),
        (b"\xff\xfe", "Invalid JSON in the request body"),
        (b"", "The request body must be a JSON object or an array of them, not null"),
        (b"42", "The request body must be a JSON object or an array of them, not a number"),
        (b"[]", "The request holds no vectors"),
    ],
)
def test_bodies_that_are_not_records(api: Api, raw: bytes, fragment: str) -> None:
    response = api.send("/upsert-data", raw=raw)
    assert response.status_code == 400
    assert fragment in response.json()["error"]


def test_ids_with_quotes_are_quoted_as_json(api: Api) -> None:
    message = api.error("/upsert-data", [{"id": 'say "hi"', "data": 1}], status=400)
    assert message.startswith('Invalid record at index 0 (id "say \\"hi\\""):')


def test_upsert_vectors_checks_fields_and_dimension(serve: Serve) -> None:
    api = Api(serve(dimension=3, embedding=False))
    good = {"id": "v", "vector": [1, 0, 0]}
    message = api.error("/upsert", [good, {"id": "w", "vector": [1, 0]}], status=422)
    assert message == (
        'Invalid record at index 1 (id "w"): vector has dimension 2, but the index has dimension 3'
    )
    message = api.error("/upsert", [{"id": "w", "vector": [1, "a", 0]}], status=400)
    assert message == 'Invalid record at index 0 (id "w"): vector must be an array of numbers'
    message = api.error("/upsert", [{"id": "w", "vector": [1e39, 0, 0]}], status=400)
    assert "beyond float32's range" in message
    message = api.error("/upsert", [{"id": "w", "data": "text"}], status=400)
    assert message == 'Invalid record at index 0 (id "w"): vector field is required'
    assert api.error("/upsert", [{"id": "w", "vector": [1, 0, 0], "extra": 1}], status=400)
    # What the SDK sends for a dense vector: sparseVector, data and metadata as null.
    sdk_shape = {
        "id": "v",
        "vector": [1, 0, 0],
        "sparseVector": None,
        "metadata": None,
        "data": None,
    }
    assert api.result("/upsert", [sdk_shape]) == "Success"


def test_query_with_a_vector_of_the_wrong_dimension_is_422(serve: Serve) -> None:
    api = Api(serve(dimension=4, embedding=False))
    message = api.error("/query", {"vector": [1, 2], "topK": 1}, status=422)
    assert message == "vector has dimension 2, but the index has dimension 4"


def test_without_embedding_text_endpoints_answer_upstash_422(serve: Serve) -> None:
    server = serve(embedding=False, dimension=8)
    api = Api(server)
    assert NO_EMBEDDING == (
        "Embedding data for this index is not allowed. "
        "The index must be created with an embedding model to use it."
    )
    assert api.error("/upsert-data", docs(2), status=422) == NO_EMBEDDING
    assert api.error("/query-data", {"data": "anything"}, status=422) == NO_EMBEDDING
    assert api.result("/info")["denseIndex"]["embeddingModel"] == ""
    assert server.records() == {}


def test_query_parameters_are_checked(api: Api) -> None:
    assert "topK" in api.error("/query-data", {"data": "x", "topK": 0}, status=400)
    assert "topK" in api.error("/query-data", {"data": "x", "topK": "3"}, status=400)
    assert "includeData" in api.error("/query-data", {"data": "x", "includeData": 1}, status=400)
    assert "unknown field" in api.error("/query-data", {"data": "x", "top_k": 3}, status=400)
    assert "data must be a string" in api.error("/query-data", {"topK": 3}, status=400)
    assert "vector field is required" in api.error("/query", {"data": "x"}, status=400)
