"""Bad input is a 400 with a message, never a 500: a client retries a 500 for minutes."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from vupsert.filters import MAX_DEPTH
from vupsert_server import LocalServer
from vupsert_server._limits import (
    MAX_FILTER_LENGTH,
    MAX_METADATA_DEPTH,
    MAX_NAMESPACE_BYTES,
    MAX_RANGE_LIMIT,
)

from .conftest import Serve
from .server_helpers import Api


@pytest.fixture
def server(serve: Serve) -> LocalServer:
    """A dense index of dimension 2 holding three vectors with metadata."""
    server = serve(dimension=2, embedding=False)
    Api(server).result(
        "/upsert", [{"id": f"v{i}", "vector": [1, i], "metadata": {"n": i}} for i in range(3)]
    )
    return server


@pytest.fixture
def client(server: LocalServer) -> Api:
    return Api(server)


def nested(depth: int) -> bytes:
    """JSON of ``depth`` objects, one in the other (too deep for orjson to write)."""
    return b'{"a":' * (depth - 1) + b"{}" + b"}" * (depth - 1)


def record(metadata: bytes, id: str = "deep") -> bytes:
    return b'{"id":"' + id.encode() + b'","vector":[1,2],"metadata":' + metadata + b"}"


def refused(api: Api, path: str, raw: bytes) -> str:
    response = api.send(path, raw=raw)
    assert response.status_code == 400, response.text
    return str(response.json()["error"])


def test_metadata_nested_1000_deep_is_a_400(client: Api, server: LocalServer) -> None:
    limit = f"more than {MAX_METADATA_DEPTH} levels deep"
    assert limit in refused(client, "/upsert", record(nested(1000)))
    assert limit in refused(client, "/upsert", record(nested(MAX_METADATA_DEPTH + 1)))
    for mode in ("OVERWRITE", "PATCH"):
        body = b'{"id":"v1","metadataUpdateMode":"' + mode.encode() + b'","metadata":'
        assert limit in refused(client, "/update", body + nested(1000) + b"}")
    assert "deep" not in server.records()
    assert server.records()["v1"] == (None, {"n": 1})
    assert client.send("/upsert", raw=record(nested(MAX_METADATA_DEPTH))).status_code == 200
    stored = client.result("/fetch", {"ids": ["deep"], "includeMetadata": True})
    assert orjson.dumps(stored[0]["metadata"]) == nested(MAX_METADATA_DEPTH)
    assert 500 not in server.stats["statuses"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("(" * 100_000 + "n = 1" + ")" * 100_000, "characters long, over the limit of"),
        (" OR ".join(f"n = {i}" for i in range(200_000)), "characters long, over the limit of"),
        ("(" * (MAX_DEPTH + 1) + "n = 1" + ")" * (MAX_DEPTH + 1), "nest deeper than"),
        ("n GLOB '[z-a]'", "bad character range"),
    ],
)
def test_filters_too_big_or_deep_are_a_400(
    client: Api, server: LocalServer, text: str, message: str
) -> None:
    bodies: list[tuple[str, Any]] = [
        ("/query", {"vector": [1, 1], "filter": text}),
        ("/resumable-query", {"vector": [1, 1], "filter": text}),
        ("/delete", {"filter": text}),
    ]
    for path, body in bodies:
        assert message in client.error(path, body, status=400)
    assert len(server.records()) == 3
    assert 500 not in server.stats["statuses"]


def test_a_filter_up_to_the_limit_is_read(client: Api) -> None:
    values = ", ".join(str(i) for i in range(10_000))
    text = f"n IN ({values})"[:MAX_FILTER_LENGTH].rsplit(",", 1)[0] + ")"
    hits = client.result("/query", {"vector": [1, 1], "filter": text})
    assert sorted(hit["id"] for hit in hits) == ["v0", "v1", "v2"]


def test_range_takes_at_most_the_services_page(client: Api) -> None:
    for limit in (10**9, MAX_RANGE_LIMIT + 1, 0, -1):
        message = client.error("/range", {"cursor": "0", "limit": limit}, status=400)
        assert message == f"limit must be an integer from 1 to {MAX_RANGE_LIMIT}"
    page = client.result("/range", {"cursor": "0", "limit": MAX_RANGE_LIMIT})
    assert len(page["vectors"]) == 3
    for cursor in ("9" * 100, 2**63, "-1", "1.5"):
        assert "Invalid cursor" in client.error(
            "/range", {"cursor": cursor, "limit": 1}, status=400
        )


@pytest.mark.parametrize(
    "path",
    [
        "a%00b",
        "..%2F..%2Fetc",
        "a%2F.%2Fb",
        "%2E%2E",  # clients drop a plain .. or . from a path
        "%2E",
        "tab%09name",
        "del%7F",
        "%FF%FE",
        "n" * (MAX_NAMESPACE_BYTES + 1),
        "%C3%A9" * (MAX_NAMESPACE_BYTES // 2 + 1),
    ],
)
def test_namespace_names_that_cannot_be_are_a_400(
    client: Api, server: LocalServer, path: str
) -> None:
    for endpoint, body in (("upsert", {"id": "x", "vector": [1, 2]}), ("range", {"limit": 1})):
        response = client.http.post(f"/{endpoint}/{path}", content=orjson.dumps(body))
        assert response.status_code == 400, response.text
        assert "Namespace" in response.json()["error"]
    assert server.namespaces() == [""]


def test_namespace_names_are_any_other_text(client: Api, server: LocalServer) -> None:
    names = ["café docs", "news/2024", "a.b-c_d", "..x", "n" * MAX_NAMESPACE_BYTES]
    for name in names:
        quoted = name.replace(" ", "%20").replace("é", "%C3%A9").replace("/", "%2F")
        client.result(f"/upsert/{quoted}", {"id": "x", "vector": [1, 2]})
    assert server.namespaces() == sorted(["", *names])
