"""The Upstash Vector endpoints: check a request whole, then do its work on :class:`Storage`.

Write endpoints are split in two (:class:`Write`): checking happens before anything is
written, so a refused request leaves the index as it was, and the fault injection in
``_app`` can put itself between the check, the write and the answer. Field names and
answer shapes follow what the official SDKs send and parse (``includeData``,
``nextCursor``, ``{"deleted": n}``, ...); error messages name the record at fault by its
index in the request and its id.

Text is embedded after the write, as on Upstash (whose ``info`` counts such vectors in
``pendingVectorCount``): an upsert stores the data with no vector, a background thread
embeds pending rows whenever writes pause (:meth:`Index.embed_pending`), and a query
embeds whatever is still pending in its namespace first, so it never misses a record.
Embedding is most of the server's work per record; keeping it out of the write path
keeps the server from being the bottleneck of a client benchmark.
"""

from __future__ import annotations

import base64
import binascii
import heapq
import math
import operator
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from ..records import MAX_BATCH_RECORDS, MAX_DATA_BYTES, MAX_METADATA_BYTES
from ._embed import HashEmbedder
from ._faults import Faults
from ._filter import FilterError, Predicate, compile_filter
from ._storage import Row, Storage, pack_vector, unpack_vector

NO_EMBEDDING = (
    "Embedding data for this index is not allowed. "
    "The index must be created with an embedding model to use it."
)
"""Upstash's exact answer (422) to upsert-data or query-data on an index without a model."""
MAX_TOP_K = 1000

_DATA_FIELDS = frozenset(("id", "data", "metadata"))
_VECTOR_FIELDS = frozenset(("id", "vector", "sparseVector", "metadata", "data"))
_QUERY_FIELDS = frozenset(
    (
        "data",
        "vector",
        "topK",
        "includeMetadata",
        "includeVectors",
        "includeData",
        "filter",
        "weightingStrategy",
        "fusionAlgorithm",
        "queryMode",
        "sparseVector",
    )
)
_UPDATE_FIELDS = frozenset(
    ("id", "vector", "sparseVector", "data", "metadata", "metadataUpdateMode")
)
_FETCH_FIELDS = frozenset(("ids", "prefix", "includeMetadata", "includeVectors", "includeData"))
_RANGE_FIELDS = frozenset(
    ("cursor", "limit", "prefix", "includeMetadata", "includeVectors", "includeData")
)
_DELETE_FIELDS = frozenset(("ids", "prefix", "filter"))
_FLOAT32 = struct.Struct("<f")


class ApiError(Exception):
    """A request the index refuses: becomes ``{"error": message, "status": status}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def bad_request(message: str) -> ApiError:
    return ApiError(400, message)


@dataclass(frozen=True)
class Write:
    """A checked write request, not applied yet."""

    records: int
    """Records the request holds (drives the per-record latency)."""
    written: int
    """Records it upserts once applied (counted in ``stats``)."""
    apply: Callable[[], Any]
    """Does the write; returns the value of ``result``."""


class Index:
    """One index: its storage, its embedder (``None`` for a plain dense index), its rules."""

    def __init__(
        self,
        storage: Storage,
        *,
        dimension: int,
        embedder: HashEmbedder | None,
        embedding_model: str,
        faults: Faults,
    ) -> None:
        self.storage = storage
        self.dimension = dimension
        self.embedder = embedder
        self.embedding_model = embedding_model
        self.faults = faults
        # Rows left pending by a db file written with embedding stay embeddable.
        self._pending_embedder = embedder or HashEmbedder(dimension)
        self.last_write = 0.0
        """:func:`time.monotonic` of the last write: the background indexer waits for a pause."""

    # -- writes -------------------------------------------------------------------------

    def upsert_data(self, ns: str, body: Any) -> Write:
        if self.embedder is None:
            raise ApiError(422, NO_EMBEDDING)
        records = _records(body)
        rows: list[tuple[str, str, bytes | None]] = []
        for index, record in enumerate(records):
            id = _record_id(record, index)
            _no_unknown_fields(record, index, id, _DATA_FIELDS, "upsert-data")
            data = record.get("data")
            if data is None:
                raise _record_error(index, id, "data field is required")
            _check_data(data, index, id, self.faults)
            rows.append((id, data, _metadata(record.get("metadata"), index, id)))

        def apply() -> str:
            self.last_write = time.monotonic()
            self.storage.upsert(ns, [(id, None, data, meta) for id, data, meta in rows])
            return "Success"

        return Write(len(rows), len(rows), apply)

    def upsert(self, ns: str, body: Any) -> Write:
        records = _records(body)
        rows: list[tuple[str, bytes, str | None, bytes | None]] = []
        for index, record in enumerate(records):
            id = _record_id(record, index)
            _no_unknown_fields(record, index, id, _VECTOR_FIELDS, "upsert")
            if record.get("sparseVector") is not None:
                raise _record_error(index, id, "sparse vectors need a sparse or hybrid index")
            if record.get("vector") is None:
                raise _record_error(index, id, "vector field is required")
            vector = self._vector(record["vector"], f"{_where(index, id)}: vector")
            data = record.get("data")
            if data is not None:
                _check_data(data, index, id, self.faults)
            rows.append((id, vector, data, _metadata(record.get("metadata"), index, id)))

        def apply() -> str:
            self.last_write = time.monotonic()
            self.storage.upsert(ns, rows)
            return "Success"

        return Write(len(rows), len(rows), apply)

    def update(self, ns: str, body: Any) -> Write:
        if not isinstance(body, dict):
            raise bad_request(f"update takes a JSON object, not {_kind(body)}")
        id = body.get("id")
        if not isinstance(id, str) or not id:
            raise bad_request("ID field is required and cannot be an empty string")
        _refuse_unknown(body, _UPDATE_FIELDS, "update: ")
        mode = body.get("metadataUpdateMode", "OVERWRITE")
        if mode not in ("OVERWRITE", "PATCH"):
            raise bad_request(f"metadataUpdateMode must be OVERWRITE or PATCH, not {_quote(mode)}")
        if body.get("sparseVector") is not None:
            raise bad_request("sparse vectors need a sparse or hybrid index")
        vector = body.get("vector")
        blob = self._vector(vector, "vector") if vector is not None else None
        data = body.get("data")
        if data is not None:
            _check_data(data, 0, id, self.faults, where=f"update of id {_quote(id)}")
        # New text in an embedding index waits to be embedded, as after an upsert.
        pend = data is not None and blob is None and self.embedder is not None
        has_metadata = "metadata" in body
        patch = body.get("metadata")
        if patch is not None and not isinstance(patch, dict):
            raise bad_request(f"metadata must be a JSON object, not {_kind(patch)}")
        if blob is None and data is None and not has_metadata:
            raise bad_request("Nothing to update: give vector, data or metadata")

        def change(row: Row) -> Row:
            metadata = row.metadata
            if has_metadata:
                if mode == "PATCH":
                    current = orjson.loads(row.metadata) if row.metadata else {}
                    merged = merge_patch(current, patch)
                    metadata = _metadata(merged, 0, id, where=f"update of id {_quote(id)}")
                else:
                    metadata = _metadata(patch, 0, id, where=f"update of id {_quote(id)}")
            return Row(
                row.id,
                None if pend else blob if blob is not None else row.vector,
                data if data is not None else row.data,
                metadata,
            )

        def apply() -> dict[str, int]:
            self.last_write = time.monotonic()
            return {"updated": int(self.storage.update(ns, id, change))}

        return Write(1, 0, apply)

    def delete(self, ns: str, body: Any) -> Write:
        if isinstance(body, str | list):
            body = {"ids": body}
        if not isinstance(body, dict):
            raise bad_request("delete takes ids, a prefix or a filter")
        _refuse_unknown(body, _DELETE_FIELDS, "delete: ")
        given = [key for key in ("ids", "prefix", "filter") if body.get(key) is not None]
        if len(given) != 1:
            raise bad_request("delete takes exactly one of ids, prefix or filter")
        if given == ["ids"]:
            ids = _ids(body["ids"])

            def apply_ids() -> dict[str, int]:
                return {"deleted": self.storage.delete_ids(ns, ids)}

            return Write(max(1, len(ids)), 0, apply_ids)
        if given == ["prefix"]:
            prefix = body["prefix"]
            if not isinstance(prefix, str) or not prefix:
                raise bad_request("prefix must be a non-empty string")
            return Write(1, 0, lambda: {"deleted": self.storage.delete_prefix(ns, prefix)})
        predicate = _predicate(body["filter"])
        if predicate is None:
            raise bad_request("filter cannot be empty")

        def matches(metadata: bytes | None) -> bool:
            return predicate(orjson.loads(metadata) if metadata else None)

        return Write(1, 0, lambda: {"deleted": self.storage.delete_matching(ns, matches)})

    # -- reads --------------------------------------------------------------------------

    def query_data(self, ns: str, body: Any) -> Any:
        if self.embedder is None:
            raise ApiError(422, NO_EMBEDDING)
        embedder = self.embedder

        def vector_of(query: dict[str, Any], where: str) -> list[float]:
            if query.get("vector") is not None:
                raise bad_request(f"{where}query-data takes text in data; query takes vectors")
            data = query.get("data")
            if not isinstance(data, str):
                raise bad_request(f"{where}data must be a string")
            return embedder.embed_list(data)

        return self._queries(ns, body, vector_of)

    def query(self, ns: str, body: Any) -> Any:
        def vector_of(query: dict[str, Any], where: str) -> list[float]:
            vector = query.get("vector")
            if vector is None:
                raise bad_request(f"{where}vector field is required (query-data takes text)")
            if query.get("data") is not None:
                raise bad_request(f"{where}query takes a vector, not data (use query-data)")
            return list(unpack_vector(self._vector(vector, f"{where}vector")))

        return self._queries(ns, body, vector_of)

    def _queries(
        self,
        ns: str,
        body: Any,
        vector_of: Callable[[dict[str, Any], str], list[float]],
    ) -> Any:
        if isinstance(body, dict):
            return self._query(ns, body, vector_of, "")
        if not isinstance(body, list) or not body:
            raise bad_request("A query is a JSON object, or a non-empty array of them")
        results = [
            self._query(ns, query, vector_of, f"query {i}: ") for i, query in enumerate(body)
        ]
        # As Upstash does (the Python SDK relies on it): a one-query batch answers flat.
        return results[0] if len(results) == 1 else results

    def _query(
        self,
        ns: str,
        query: Any,
        vector_of: Callable[[dict[str, Any], str], list[float]],
        where: str,
    ) -> list[dict[str, Any]]:
        if not isinstance(query, dict):
            raise bad_request(f"{where}a query must be a JSON object, not {_kind(query)}")
        _refuse_unknown(query, _QUERY_FIELDS, where)
        top_k = query.get("topK", 10)
        if not isinstance(top_k, int) or isinstance(top_k, bool) or not 1 <= top_k <= MAX_TOP_K:
            raise bad_request(f"{where}topK must be an integer from 1 to {MAX_TOP_K}")
        include = _includes(query, where)
        if query.get("sparseVector") is not None:
            raise bad_request(f"{where}sparse vectors need a sparse or hybrid index")
        predicate = _predicate(query.get("filter", ""), where)
        target = vector_of(query, where)
        return self._search(ns, target, top_k, predicate, *include)

    def _search(
        self,
        ns: str,
        target: Sequence[float],
        top_k: int,
        predicate: Predicate | None,
        with_metadata: bool,
        with_vectors: bool,
        with_data: bool,
    ) -> list[dict[str, Any]]:
        self.embed_pending(ns)
        target_norm = math.hypot(*target)
        mul = operator.mul
        scored: list[tuple[float, str, bytes]] = []
        for id, blob, metadata in self.storage.vectors(ns, with_metadata=predicate is not None):
            if predicate is not None and not predicate(
                orjson.loads(metadata) if metadata else None
            ):
                continue
            values = unpack_vector(blob)
            norm = math.hypot(*values) * target_norm
            scored.append((sum(map(mul, target, values)) / norm if norm else 0.0, id, blob))
        best = heapq.nsmallest(top_k, scored, key=lambda hit: (-hit[0], hit[1]))
        rows: dict[str, Row] = {}
        if with_metadata or with_data:
            rows = self.storage.get(ns, [id for _, id, _ in best])
        results = []
        for cosine, id, blob in best:
            row = rows.get(id, Row(id, blob, None, None))
            item = self._item(row._replace(vector=blob), with_metadata, with_vectors, with_data)
            item["score"] = _float32(min(1.0, max(0.0, (1.0 + cosine) / 2.0)))
            results.append(item)
        return results

    def fetch(self, ns: str, body: Any) -> list[dict[str, Any] | None]:
        if isinstance(body, list):
            body = {"ids": body}
        if not isinstance(body, dict):
            raise bad_request("fetch takes a JSON object with ids or a prefix")
        _refuse_unknown(body, _FETCH_FIELDS, "fetch: ")
        include = _includes(body)
        if body.get("ids") is not None and body.get("prefix") is not None:
            raise bad_request("fetch takes ids or a prefix, not both")
        if body.get("prefix") is not None:
            prefix = body["prefix"]
            if not isinstance(prefix, str):
                raise bad_request("prefix must be a string")
            return [self._item(row, *include) for row in self.storage.scan(ns, prefix=prefix)]
        if body.get("ids") is None:
            raise bad_request("fetch needs ids or a prefix")
        ids = _ids(body["ids"])
        found = self.storage.get(ns, ids)
        return [self._item(found[id], *include) if id in found else None for id in ids]

    def range(self, ns: str, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise bad_request("range takes a JSON object with cursor and limit")
        _refuse_unknown(body, _RANGE_FIELDS, "range: ")
        limit = body.get("limit")
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise bad_request("limit must be a positive integer")
        prefix = body.get("prefix")
        if prefix is not None and not isinstance(prefix, str):
            raise bad_request("prefix must be a string")
        start = decode_cursor(body.get("cursor", ""))
        include = _includes(body)
        rows = self.storage.scan(ns, start=start, prefix=prefix, limit=limit + 1)
        next_cursor = encode_cursor(rows[limit].id) if len(rows) > limit else ""
        return {
            "nextCursor": next_cursor,
            "vectors": [self._item(row, *include) for row in rows[:limit]],
        }

    def reset(self, ns: str, everything: bool) -> str:
        if everything:
            self.storage.reset_all()
        else:
            self.storage.reset(ns)
        return "Success"

    def info(self) -> dict[str, Any]:
        counts = self.storage.counts()
        return {
            "vectorCount": sum(count for count, _ in counts.values()),
            "pendingVectorCount": sum(pending for _, pending in counts.values()),
            "indexSize": self.storage.size(),
            "dimension": self.dimension,
            "similarityFunction": "COSINE",
            "indexType": "DENSE",
            "denseIndex": {
                "dimension": self.dimension,
                "similarityFunction": "COSINE",
                "embeddingModel": self.embedding_model,
            },
            "sparseIndex": None,
            "namespaces": {
                ns: {"vectorCount": count, "pendingVectorCount": pending}
                for ns, (count, pending) in counts.items()
            },
        }

    def list_namespaces(self) -> list[str]:
        return self.storage.namespaces()

    def delete_namespace(self, ns: str) -> str:
        if not ns:
            raise bad_request("The default namespace cannot be deleted")
        if not self.storage.delete_namespace(ns):
            raise ApiError(404, f"Namespace {_quote(ns)} does not exist")
        return "Success"

    # -- embedding ----------------------------------------------------------------------

    def embed_pending(self, ns: str | None = None, limit: int = -1) -> int:
        """Embed rows waiting for a vector (of ``ns``, or any); returns how many.

        The work happens outside the storage lock, so writes go on meanwhile.
        """
        rows = self.storage.pending(ns, limit)
        embed = self._pending_embedder.embed
        done = 0
        for start in range(0, len(rows), 500):
            chunk = rows[start : start + 500]
            done += self.storage.set_vectors(
                [(row_ns, id, data, embed(data)) for row_ns, id, data in chunk]
            )
        return done

    # -- helpers ------------------------------------------------------------------------

    def _item(
        self, row: Row, with_metadata: bool, with_vectors: bool, with_data: bool
    ) -> dict[str, Any]:
        item: dict[str, Any] = {"id": row.id}
        if with_vectors:
            blob = row.vector
            if blob is None:
                blob = self._pending_embedder.embed(row.data or "")
            item["vector"] = [_float32(x) for x in unpack_vector(blob)]
        if with_metadata and row.metadata is not None:
            item["metadata"] = orjson.Fragment(row.metadata)
        if with_data and row.data is not None:
            item["data"] = row.data
        return item

    def _vector(self, value: Any, what: str) -> bytes:
        if not isinstance(value, list) or not all(
            isinstance(x, int | float) and not isinstance(x, bool) for x in value
        ):
            raise bad_request(f"{what} must be an array of numbers")
        if len(value) != self.dimension:
            raise ApiError(
                422,
                f"{what} has dimension {len(value)}, but the index has dimension {self.dimension}",
            )
        try:
            return pack_vector(value)
        except (OverflowError, struct.error):
            raise bad_request(f"{what} holds a number beyond float32's range") from None


# -- request checks -------------------------------------------------------------------------


def _records(body: Any) -> list[Any]:
    records = [body] if isinstance(body, dict) else body
    if not isinstance(records, list):
        raise bad_request(
            f"The request body must be a JSON object or an array of them, not {_kind(body)}"
        )
    if not records:
        raise bad_request("The request holds no vectors")
    if len(records) > MAX_BATCH_RECORDS:
        raise bad_request(
            f"Too many vectors in one request: {len(records)}, the limit is {MAX_BATCH_RECORDS}"
        )
    return records


def _record_id(record: Any, index: int) -> str:
    if not isinstance(record, dict):
        raise bad_request(
            f"Invalid record at index {index}: expected an object, got {_kind(record)}"
        )
    id = record.get("id")
    if id is None or id == "":
        raise bad_request(
            f"Invalid record at index {index}: ID field is required and cannot be an empty string"
        )
    if not isinstance(id, str):
        raise bad_request(f"Invalid record at index {index}: id must be a string, got {_kind(id)}")
    return id


def _where(index: int, id: str) -> str:
    return f"Invalid record at index {index} (id {_quote(id)})"


def _record_error(index: int, id: str, problem: str) -> ApiError:
    return bad_request(f"{_where(index, id)}: {problem}")


def _no_unknown_fields(
    record: dict[str, Any], index: int, id: str, allowed: frozenset[str], endpoint: str
) -> None:
    if record.keys() <= allowed:
        return
    unknown = sorted(set(record) - allowed)
    raise _record_error(
        index,
        id,
        f"unknown field {_quote(unknown[0])} ({endpoint} takes {', '.join(sorted(allowed))})",
    )


def _check_data(data: Any, index: int, id: str, faults: Faults, *, where: str = "") -> None:
    if not isinstance(data, str):
        raise _refusal(where, index, id, f"data must be a string, got {_kind(data)}")
    # Cheap bounds first: a str takes between len and 4*len bytes in UTF-8.
    if len(data) * 4 > MAX_DATA_BYTES:
        size = len(data.encode())
        if size > MAX_DATA_BYTES:
            raise _refusal(
                where,
                index,
                id,
                f"data is {size} bytes, over the limit of {MAX_DATA_BYTES} bytes (1 MB)",
            )
    if faults.refuses(data):
        raise _refusal(where, index, id, "the server could not embed this data")


def _metadata(value: Any, index: int, id: str, *, where: str = "") -> bytes | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _refusal(where, index, id, f"metadata must be a JSON object, got {_kind(value)}")
    encoded = orjson.dumps(value)
    if len(encoded) > MAX_METADATA_BYTES:
        raise _refusal(
            where,
            index,
            id,
            f"metadata is {len(encoded)} bytes, over the limit of "
            f"{MAX_METADATA_BYTES} bytes (48 KB)",
        )
    return encoded


def _refusal(where: str, index: int, id: str, problem: str) -> ApiError:
    """400 naming the record: ``where`` when given (update), else its index and id."""
    return bad_request(f"{where or _where(index, id)}: {problem}")


def _ids(value: Any) -> list[str]:
    ids = [value] if isinstance(value, str) else value
    if not isinstance(ids, list) or not all(isinstance(id, str) for id in ids):
        raise bad_request("ids must be an array of strings")
    return ids


def _includes(body: dict[str, Any], where: str = "") -> tuple[bool, bool, bool]:
    flags = []
    for name in ("includeMetadata", "includeVectors", "includeData"):
        value = body.get(name, False)
        if not isinstance(value, bool):
            raise bad_request(f"{where}{name} must be true or false")
        flags.append(value)
    return flags[0], flags[1], flags[2]


def _predicate(text: Any, where: str = "") -> Predicate | None:
    if not isinstance(text, str):
        raise bad_request(f"{where}filter must be a string")
    try:
        return compile_filter(text)
    except FilterError as exc:
        raise bad_request(f"{where}{exc}") from None


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _refuse_unknown(body: dict[str, Any], allowed: frozenset[str], where: str) -> None:
    """Upstash answers 400 to a field it does not know; so does this server."""
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise bad_request(f"{where}unknown field {_quote(unknown[0])}")


def _quote(text: str) -> str:
    return orjson.dumps(text).decode()


# -- answers ------------------------------------------------------------------------------


def _float32(value: float) -> float:
    """``value`` rounded to float32, as the shortest decimal that reads back the same.

    Upstash keeps float32 and answers ``0.1``, not ``0.10000000149011612``.
    """
    try:
        value = _FLOAT32.unpack(_FLOAT32.pack(value))[0]
    except OverflowError:
        return value
    for digits in (6, 7, 8):
        short = float(f"{value:.{digits}g}")
        try:
            if _FLOAT32.unpack(_FLOAT32.pack(short))[0] == value:
                return short
        except OverflowError:
            break
    return value


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 JSON Merge Patch: ``null`` removes a key, objects merge, the rest replaces."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def encode_cursor(id: str) -> str:
    # Opaque, never "" (the end) nor "0" (the start): base64 has no 1-character output.
    return base64.urlsafe_b64encode(id.encode()).decode().rstrip("=")


def decode_cursor(cursor: Any) -> str | None:
    if not isinstance(cursor, str):
        raise bad_request("cursor must be a string")
    if cursor in ("", "0"):
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        return base64.b64decode(padded, altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise bad_request(f"Invalid cursor {_quote(cursor)}") from None
