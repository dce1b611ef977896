"""The Upstash Vector endpoints: check a request whole, then do its work on :class:`Storage`.

Write endpoints are split in two (:class:`Write`): checking happens before anything is
written, so a refused request leaves the index as it was, and the fault injection in
``_app`` can put itself between the check, the write and the answer. Field names and
answer shapes follow what the official SDKs send and parse (``includeData``,
``nextCursor``, ``{"deleted": n}``, ...); error messages name the record at fault by its
index in the request and its id. Ids may be strings or integers (the TypeScript SDK
sends numbers); an integer id is stored as its decimal string.

An index is dense, sparse or hybrid (``_config``). Text is embedded after the write, as
on Upstash (whose ``info`` counts such vectors in ``pendingVectorCount``): an upsert
stores the data with no vector, a background thread embeds pending rows whenever writes
pause, none in flight (:meth:`Index.embed_pending`), and a query embeds whatever is
still pending in its namespace first, so it never misses a record. Embedding is most of
the server's work per record; keeping it out of the write path keeps the server from
being the bottleneck of a client benchmark. Ranking is in ``_search``, resumable
sessions in ``_resumable``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple
from urllib.parse import unquote_to_bytes

import orjson

from vupsert.filters import FilterError, Predicate, compile_filter

from ._bm25 import Bm25Embedder
from ._config import EMBEDDING_MODEL, SPARSE_EMBEDDING_MODEL, ServerConfig
from ._embed import HashEmbedder
from ._errors import ApiError, bad_request, kind, quote
from ._faults import Faults
from ._limits import (
    MAX_BATCH_RECORDS,
    MAX_CURSOR,
    MAX_DATA_BYTES,
    MAX_FILTER_LENGTH,
    MAX_METADATA_BYTES,
    MAX_METADATA_DEPTH,
    MAX_NAMESPACE_BYTES,
    MAX_RANGE_LIMIT,
    MAX_TOP_K,
)
from ._resumable import Session, Sessions
from ._search import (
    Hit,
    best,
    dense_hits,
    dense_scorer,
    fuse,
    idf_weights,
    rescored,
    sparse_hits,
)
from ._storage import Row, Storage, Stored
from ._vectors import (
    dense_json,
    pack_sparse,
    parse_dense,
    parse_sparse,
    short_float32,
    sparse_json,
    sparse_query,
)

__all__ = ["NO_EMBEDDING", "ApiError", "Index", "Write", "bad_request", "namespace_of"]

NO_EMBEDDING = (
    "Embedding data for this index is not allowed. "
    "The index must be created with an embedding model to use it."
)
"""Upstash's exact answer (422) to upsert-data or query-data on an index without a model."""
DEFAULT_MAX_IDLE = 3600

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
_RESUMABLE_FIELDS = _QUERY_FIELDS | {"maxIdle"}
_UPDATE_FIELDS = frozenset(
    ("id", "vector", "sparseVector", "data", "metadata", "metadataUpdateMode")
)
_FETCH_FIELDS = frozenset(("ids", "prefix", "includeMetadata", "includeVectors", "includeData"))
_RANGE_FIELDS = frozenset(
    ("cursor", "limit", "prefix", "includeMetadata", "includeVectors", "includeData")
)
_DELETE_FIELDS = frozenset(("ids", "prefix", "filter"))
_QUERY_MODES = ("HYBRID", "DENSE", "SPARSE")
_FUSIONS = ("RRF", "DBSF")
# The service's own texts, which its SDKs' tests check.
ONE_OF_IDS_OR_PREFIX = "Only one of ids or prefix must be provided."
ONE_OF_IDS_PREFIX_FILTER = "Only and only one of the ids, prefix, or filter must be provided."


@dataclass(frozen=True)
class Write:
    """A checked write request, not applied yet."""

    records: int
    """Records the request holds (drives the per-record latency)."""
    written: int
    """Records it upserts once applied (counted in ``stats``)."""
    apply: Callable[[], Any]
    """Does the write; returns the value of ``result``."""


class Includes(NamedTuple):
    metadata: bool
    vectors: bool
    data: bool


class Query(NamedTuple):
    """One checked query: what to rank, how, and what to answer of each hit."""

    dense: bytes | None
    sparse: dict[int, float] | None
    sparse_blob: bytes | None
    """The sparse query as stored vectors are, to tell an exact match."""
    top_k: int
    predicate: Predicate | None
    idf: bool
    fusion: str
    include: Includes


def models_of(config: ServerConfig) -> tuple[str, str]:
    """``(dense, sparse)`` embedding model names of an index, ``""`` where there is none."""
    dense = EMBEDDING_MODEL if config.embedding and config.index_type != "sparse" else ""
    sparse = SPARSE_EMBEDDING_MODEL if config.embedding and config.index_type != "dense" else ""
    return dense, sparse


class Index:
    """One index: its storage, its models (none without embedding), its rules."""

    def __init__(self, storage: Storage, config: ServerConfig, faults: Faults) -> None:
        self.storage = storage
        self.faults = faults
        self.index_type = config.index_type
        self.dimension = config.dimension
        self.similarity = config.similarity
        self.has_dense = config.index_type in ("dense", "hybrid")
        self.has_sparse = config.index_type in ("sparse", "hybrid")
        self.embedding = config.embedding
        # Rows left pending by a db file written with embedding stay embeddable.
        self._dense_model = HashEmbedder(config.dimension) if self.has_dense else None
        self._sparse_model = Bm25Embedder() if self.has_sparse else None
        self.sessions = Sessions()
        self.models = models_of(config)
        self.offset_cursors = config.cursor_mode == "offset"
        self.last_write = 0.0
        """:func:`time.monotonic` of the last write: the background indexer waits for a pause."""

    # -- writes -------------------------------------------------------------------------

    def upsert_data(self, ns: str, body: Any) -> Write:
        if not self.embedding:
            raise ApiError(422, NO_EMBEDDING)
        records = _records(body)
        rows: list[Stored] = []
        for index, record in enumerate(records):
            id = _record_id(record, index)
            _no_unknown_fields(record, index, id, _DATA_FIELDS, "upsert-data")
            data = record.get("data")
            if data is None:
                raise _record_error(index, id, "data field is required")
            _check_data(data, index, id, self.faults)
            rows.append((ns, id, None, data, _metadata(record.get("metadata"), index, id), None))
        return self._upsert_write(ns, rows)

    def upsert(self, ns: str, body: Any) -> Write:
        records = _records(body)
        rows: list[Stored] = []
        for index, record in enumerate(records):
            id = _record_id(record, index)
            _no_unknown_fields(record, index, id, _VECTOR_FIELDS, "upsert")
            dense, sparse = self._vectors_of(record, f"{_where(index, id)}: ", required=True)
            data = record.get("data")
            if data is not None:
                _check_data(data, index, id, self.faults)
            metadata = _metadata(record.get("metadata"), index, id)
            rows.append((ns, id, dense, data, metadata, sparse))
        return self._upsert_write(ns, rows)

    def _upsert_write(self, ns: str, rows: list[Stored]) -> Write:
        def apply() -> str:
            self.last_write = time.monotonic()
            self.storage.upsert(ns, rows)
            return "Success"

        return Write(len(rows), len(rows), apply)

    def _vectors_of(
        self, body: dict[str, Any], prefix: str, *, required: bool
    ) -> tuple[bytes | None, bytes | None]:
        """The dense and sparse vectors of a record, an update or a query, as this index
        takes them; ``prefix`` starts a refusal (it names the record)."""
        vector, sparse = body.get("vector"), body.get("sparseVector")
        if sparse is not None and not self.has_sparse:
            raise bad_request(f"{prefix}sparse vectors need a sparse or hybrid index")
        if vector is not None and not self.has_dense:
            raise bad_request(f"{prefix}dense vectors need a dense or hybrid index")
        if required:
            if self.index_type == "hybrid" and (vector is None or sparse is None):
                raise bad_request(f"{prefix}a hybrid index needs both vector and sparseVector")
            if vector is None and sparse is None:
                field = "sparseVector" if self.index_type == "sparse" else "vector"
                raise bad_request(f"{prefix}{field} field is required")
        return (
            parse_dense(vector, self.dimension, f"{prefix}vector") if vector is not None else None,
            parse_sparse(sparse, f"{prefix}sparseVector") if sparse is not None else None,
        )

    def update(self, ns: str, body: Any) -> Write:
        if not isinstance(body, dict):
            raise bad_request(f"update takes a JSON object, not {kind(body)}")
        id = _id_value(body.get("id"))
        if not id:
            raise bad_request("ID field is required and cannot be an empty string")
        _refuse_unknown(body, _UPDATE_FIELDS, "update: ")
        where = f"update of id {quote(id)}"
        mode = body.get("metadataUpdateMode", "OVERWRITE")
        if mode not in ("OVERWRITE", "PATCH"):
            raise bad_request(f"metadataUpdateMode must be OVERWRITE or PATCH, not {_show(mode)}")
        dense, sparse = self._vectors_of(body, f"{where}: ", required=False)
        data = body.get("data")
        if data is not None:
            _check_data(data, 0, id, self.faults, where=where)
        # New text in an embedding index waits to be embedded, as after an upsert.
        pend = data is not None and dense is None and sparse is None and self.embedding
        has_metadata = "metadata" in body
        patch = body.get("metadata")
        if patch is not None and not isinstance(patch, dict):
            raise bad_request(f"metadata must be a JSON object, not {kind(patch)}")
        _metadata(patch, 0, id, where=where)  # its size and depth, before a merge recurses
        if dense is None and sparse is None and data is None and not has_metadata:
            raise bad_request("Nothing to update: give vector, sparseVector, data or metadata")

        def change(row: Row) -> Row:
            metadata = row.metadata
            if has_metadata:
                if mode == "PATCH":
                    current = orjson.loads(row.metadata) if row.metadata else {}
                    metadata = _metadata(merge_patch(current, patch), 0, id, where=where)
                else:
                    metadata = _metadata(patch, 0, id, where=where)
            return Row(
                row.id,
                None if pend else dense if dense is not None else row.vector,
                data if data is not None else row.data,
                metadata,
                None if pend else sparse if sparse is not None else row.sparse,
            )

        def apply() -> dict[str, int]:
            self.last_write = time.monotonic()
            return {"updated": int(self.storage.update(ns, id, change))}

        return Write(1, 0, apply)

    def delete(self, ns: str, body: Any) -> Write:
        if isinstance(body, str | int | list) and not isinstance(body, bool):
            body = {"ids": body}
        if not isinstance(body, dict):
            raise bad_request(ONE_OF_IDS_PREFIX_FILTER)
        _refuse_unknown(body, _DELETE_FIELDS, "delete: ")
        given = [key for key in ("ids", "prefix", "filter") if body.get(key) is not None]
        if len(given) != 1:
            raise bad_request(ONE_OF_IDS_PREFIX_FILTER)
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

    # -- queries ------------------------------------------------------------------------

    def query_data(self, ns: str, body: Any) -> Any:
        return self._queries(ns, body, text=True)

    def query(self, ns: str, body: Any) -> Any:
        return self._queries(ns, body, text=False)

    def _queries(self, ns: str, body: Any, *, text: bool) -> Any:
        if text and not self.embedding:
            raise ApiError(422, NO_EMBEDDING)
        if isinstance(body, dict):
            query = self._query_of(body, "", text=text)
            return self._answer(ns, self._rank(ns, query, query.top_k), query.include)
        if not isinstance(body, list) or not body:
            raise bad_request("A query is a JSON object, or a non-empty array of them")
        results = []
        for i, item in enumerate(body):
            query = self._query_of(item, f"query {i}: ", text=text)
            results.append(self._answer(ns, self._rank(ns, query, query.top_k), query.include))
        # As Upstash does (the Python SDK relies on it): a one-query batch answers flat.
        return results[0] if len(results) == 1 else results

    def resumable_query(self, ns: str, body: Any, *, text: bool) -> dict[str, Any]:
        if text and not self.embedding:
            raise ApiError(422, NO_EMBEDDING)
        query = self._query_of(body, "", text=text, resumable=True)
        max_idle = body.get("maxIdle", DEFAULT_MAX_IDLE)
        if not isinstance(max_idle, int | float) or isinstance(max_idle, bool) or max_idle <= 0:
            raise bad_request("maxIdle must be a number of seconds > 0")
        hits = self._rank(ns, query, query.top_k)
        session = Session(ns, query, float(max_idle), sent={hit.id for hit in hits})
        scores = self._answer(ns, hits, query.include)
        return {"uuid": self.sessions.open(session), "scores": scores}

    def resumable_query_next(self, body: Any) -> list[dict[str, Any]]:
        if not isinstance(body, dict):
            raise bad_request("resumable-query-next takes {uuid, additionalK}")
        _refuse_unknown(body, frozenset(("uuid", "additionalK")), "resumable-query-next: ")
        more = body.get("additionalK")
        if not isinstance(more, int) or isinstance(more, bool) or not 1 <= more <= MAX_TOP_K:
            raise bad_request(f"additionalK must be an integer from 1 to {MAX_TOP_K}")
        session = self.sessions.get(body.get("uuid"))
        with session.lock:
            query: Query = session.query
            hits = self._rank(session.ns, query, more, session.sent)
            session.sent.update(hit.id for hit in hits)
        return self._answer(session.ns, hits, query.include)

    def resumable_query_end(self, body: Any) -> str:
        if not isinstance(body, dict):
            raise bad_request("resumable-query-end takes {uuid}")
        _refuse_unknown(body, frozenset(("uuid",)), "resumable-query-end: ")
        self.sessions.end(body.get("uuid"))
        return "Success"

    def _query_of(self, body: Any, where: str, *, text: bool, resumable: bool = False) -> Query:
        if not isinstance(body, dict):
            raise bad_request(f"{where}a query must be a JSON object, not {kind(body)}")
        _refuse_unknown(body, _RESUMABLE_FIELDS if resumable else _QUERY_FIELDS, where)
        top_k = body.get("topK", 10)
        if not isinstance(top_k, int) or isinstance(top_k, bool) or not 1 <= top_k <= MAX_TOP_K:
            raise bad_request(f"{where}topK must be an integer from 1 to {MAX_TOP_K}")
        include = _includes(body, where)
        weighting = body.get("weightingStrategy")
        if weighting not in (None, "IDF"):
            raise bad_request(f"{where}weightingStrategy must be IDF, not {_show(weighting)}")
        fusion = body.get("fusionAlgorithm") or "RRF"
        if fusion not in _FUSIONS:
            raise bad_request(f"{where}fusionAlgorithm must be RRF or DBSF, not {_show(fusion)}")
        mode = body.get("queryMode") or "HYBRID"
        if mode not in _QUERY_MODES:
            raise bad_request(
                f"{where}queryMode must be HYBRID, DENSE or SPARSE, not {_show(mode)}"
            )
        predicate = _predicate(body.get("filter", ""), where)
        dense: bytes | None = None
        sparse: bytes | None = None
        if text:
            if body.get("vector") is not None or body.get("sparseVector") is not None:
                raise bad_request(f"{where}query-data takes text in data; query takes vectors")
            data = body.get("data")
            if not isinstance(data, str):
                raise bad_request(f"{where}data must be a string")
            if self._dense_model is not None and (self.index_type == "dense" or mode != "SPARSE"):
                dense = self._dense_model.embed(data)
            if self._sparse_model is not None and (self.index_type == "sparse" or mode != "DENSE"):
                weights = self._sparse_model.embed_query(data)
                sparse = pack_sparse(sorted(weights), [weights[i] for i in sorted(weights)])
        else:
            if body.get("vector") is None and body.get("sparseVector") is None:
                wanted = {"dense": "vector", "sparse": "sparseVector"}.get(
                    self.index_type, "vector or sparseVector"
                )
                raise bad_request(f"{where}{wanted} field is required (query-data takes text)")
            if body.get("data") is not None:
                raise bad_request(f"{where}query takes a vector, not data (use query-data)")
            dense, sparse = self._vectors_of(body, where, required=False)
        return Query(
            dense,
            sparse_query(sparse) if sparse is not None else None,
            sparse,
            top_k,
            predicate,
            weighting == "IDF",
            fusion,
            include,
        )

    def _rank(
        self, ns: str, query: Query, limit: int, skip: frozenset[str] | set[str] = frozenset()
    ) -> list[Hit]:
        """The best ``limit`` hits of ``query`` in ``ns``, the vectors ``skip`` names left out
        (a resumable query's next hits are a query over what it has not sent)."""
        self.embed_pending(ns)
        predicate = query.predicate

        def rows(column: str) -> Any:
            stream = self.storage.stream(ns, column, with_metadata=predicate is not None)
            if skip:
                stream = (row for row in stream if row[0] not in skip)
            if predicate is None:
                return stream
            return (row for row in stream if predicate(orjson.loads(row[2]) if row[2] else None))

        dense = sparse = None
        if query.dense is not None:
            dense = dense_hits(rows("vector"), query.dense, self.similarity)
        if query.sparse is not None:
            weights = None
            if query.idf:
                everything = self.storage.stream(ns, "sparse", with_metadata=False)
                weights = idf_weights((blob for _, blob, _ in everything), query.sparse)
            sparse = sparse_hits(rows("sparse"), query.sparse, weights, query.sparse_blob)
        if dense is not None and sparse is not None:
            if query.fusion == "RRF":  # ranks alone: every candidate, scores unused
                return fuse(best(dense, None), best(sparse, None), "RRF")[:limit]
            top = self._as_service(ns, best(dense, limit), query.dense)
            return fuse(top, best(sparse, limit), "DBSF")[:limit]
        if dense is not None:
            return self._as_service(ns, best(dense, limit), query.dense)
        return best(sparse, limit) if sparse is not None else []

    def _as_service(self, ns: str, hits: list[Hit], query: bytes | None) -> list[Hit]:
        """Dense ``hits`` ranked by a float64 pass, scored again as the service scores
        them: float32 products, for the few hits whose scores are answered or fused."""
        assert query is not None
        blobs = {
            id: row.vector for id, row in self.storage.get(ns, [hit.id for hit in hits]).items()
        }
        scorer = dense_scorer(query, self.similarity, as_service=True)
        return rescored(hits, {id: blob for id, blob in blobs.items() if blob is not None}, scorer)

    def _answer(self, ns: str, hits: list[Hit], include: Includes) -> list[dict[str, Any]]:
        rows: dict[str, Row] = {}
        if any(include):
            rows = self.storage.get(ns, [hit.id for hit in hits])
        results = []
        for hit in hits:
            item = self._item(rows.get(hit.id, Row(hit.id, None, None, None)), include)
            item["score"] = short_float32(hit.score)
            results.append(item)
        return results

    # -- reads --------------------------------------------------------------------------

    def fetch(self, ns: str, body: Any) -> list[dict[str, Any] | None]:
        if isinstance(body, list):
            body = {"ids": body}
        if not isinstance(body, dict):
            raise bad_request("fetch takes a JSON object with ids or a prefix")
        _refuse_unknown(body, _FETCH_FIELDS, "fetch: ")
        include = _includes(body)
        if body.get("ids") is not None and body.get("prefix") is not None:
            raise bad_request(ONE_OF_IDS_OR_PREFIX)
        if body.get("prefix") is not None:
            prefix = body["prefix"]
            if not isinstance(prefix, str):
                raise bad_request("prefix must be a string")
            return [self._item(row, include) for _, row in self.storage.scan(ns, prefix=prefix)]
        if body.get("ids") is None:
            raise bad_request("fetch needs ids or a prefix")
        ids = _ids(body["ids"])
        found = self.storage.get(ns, ids)
        return [self._item(found[id], include) if id in found else None for id in ids]

    def range(self, ns: str, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise bad_request("range takes a JSON object with cursor and limit")
        _refuse_unknown(body, _RANGE_FIELDS, "range: ")
        limit = body.get("limit")
        if (
            not isinstance(limit, int)
            or isinstance(limit, bool)
            or not 1 <= limit <= MAX_RANGE_LIMIT
        ):
            raise bad_request(f"limit must be an integer from 1 to {MAX_RANGE_LIMIT}")
        prefix = body.get("prefix")
        if prefix is not None and not isinstance(prefix, str):
            raise bad_request("prefix must be a string")
        start = decode_cursor(body.get("cursor", ""))
        include = _includes(body)
        if self.offset_cursors:
            rows = self.storage.scan(ns, prefix=prefix, limit=limit + 1, offset=start)
            after = str(start + limit)
        else:
            rows = self.storage.scan(ns, start=start, prefix=prefix, limit=limit + 1)
            after = str(rows[limit][0]) if len(rows) > limit else ""
        return {
            "nextCursor": after if len(rows) > limit else "",
            "vectors": [self._item(row, include) for _, row in rows[:limit]],
        }

    def reset(self, ns: str, everything: bool) -> str:
        if everything:
            self.storage.reset_all()
        else:
            self.storage.reset(ns)
        return "Success"

    def info(self) -> dict[str, Any]:
        counts = self.storage.counts()
        dense_model, sparse_model = self.models
        similarity = self.similarity if self.has_dense else "DOT_PRODUCT"
        return {
            "vectorCount": sum(count for count, _ in counts.values()),
            "pendingVectorCount": sum(pending for _, pending in counts.values()),
            "indexSize": self.storage.size(),
            "dimension": self.dimension if self.has_dense else 0,
            "similarityFunction": similarity,
            "indexType": self.index_type.upper(),
            "denseIndex": {
                "dimension": self.dimension,
                "similarityFunction": self.similarity,
                "embeddingModel": dense_model,
            }
            if self.has_dense
            else None,
            "sparseIndex": {"embeddingModel": sparse_model} if self.has_sparse else None,
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
            raise ApiError(404, f"Namespace {quote(ns)} does not exist")
        return "Success"

    # -- embedding ----------------------------------------------------------------------

    def embed_pending(self, ns: str | None = None, limit: int = -1) -> int:
        """Embed rows waiting for vectors; returns how many.

        With a ``limit`` (the background indexer): up to that many rows of any
        namespace. Without (a query): every row of ``ns`` pending when it starts, 500 at
        a time, so neither the texts nor the vectors of a large load are held at once.
        The work happens outside the storage lock, so writes go on meanwhile.
        """
        if limit >= 0:
            return self._embed(self.storage.pending(ns, limit))
        upto = self.storage.last_rowid()
        after = done = 0
        while rows := self.storage.pending(ns, 500, after=after, upto=upto):
            done += self._embed(rows)
            after = rows[-1][0]
        return done

    def _embed(self, rows: list[tuple[int, str, str, str]]) -> int:
        dense, sparse = self._dense_model, self._sparse_model
        return self.storage.set_vectors(
            [
                (
                    row_ns,
                    id,
                    data,
                    dense.embed(data or "") if dense is not None else None,
                    sparse.embed_document(data or "") if sparse is not None else None,
                )
                for _, row_ns, id, data in rows
            ]
        )

    # -- helpers ------------------------------------------------------------------------

    def _item(self, row: Row, include: Includes) -> dict[str, Any]:
        item: dict[str, Any] = {"id": row.id}
        if include.vectors:
            pending = row.vector is None and row.sparse is None
            text = row.data or ""
            if self._dense_model is not None:
                blob = row.vector
                if blob is None and pending:
                    blob = self._dense_model.embed(text)
                if blob is not None:
                    item["vector"] = dense_json(blob)
            if self._sparse_model is not None:
                sparse = row.sparse
                if sparse is None and pending:
                    sparse = self._sparse_model.embed_document(text)
                if sparse is not None:
                    item["sparseVector"] = sparse_json(sparse)
        if include.metadata and row.metadata is not None:
            item["metadata"] = orjson.Fragment(row.metadata)
        if include.data and row.data is not None:
            item["data"] = row.data
        return item


# -- request checks -------------------------------------------------------------------------


def namespace_of(raw: str) -> str:
    """The namespace a request path names after its endpoint (percent-encoded or not),
    or a 400 saying why it cannot be one."""
    try:
        name = unquote_to_bytes(raw.encode("latin-1")).decode()
    except UnicodeError:
        raise bad_request(f"Namespace {quote(raw)} is not valid UTF-8") from None
    if len(name.encode()) > MAX_NAMESPACE_BYTES:
        raise bad_request(
            f"Namespace names are at most {MAX_NAMESPACE_BYTES} bytes; this one has "
            f"{len(name.encode())}"
        )
    dots = any(part in (".", "..") for part in name.split("/"))
    if dots or any(c < " " or c == "\x7f" for c in name):
        raise bad_request(
            f"Namespace {quote(name)} cannot be used: a name holds no control character, "
            "and no '.' or '..' between slashes (a path would lose them)"
        )
    return name


def _records(body: Any) -> list[Any]:
    records = [body] if isinstance(body, dict) else body
    if not isinstance(records, list):
        raise bad_request(
            f"The request body must be a JSON object or an array of them, not {kind(body)}"
        )
    if not records:
        raise bad_request("The request holds no vectors")
    if len(records) > MAX_BATCH_RECORDS:
        raise bad_request(
            f"Too many vectors in one request: {len(records)}, the limit is {MAX_BATCH_RECORDS}"
        )
    return records


def _id_value(value: Any) -> str | None:
    """An id as stored: a string, or an integer as its decimal string."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _record_id(record: Any, index: int) -> str:
    if not isinstance(record, dict):
        raise bad_request(
            f"Invalid record at index {index}: expected an object, got {kind(record)}"
        )
    raw = record.get("id")
    if raw is None or raw == "":
        raise bad_request(
            f"Invalid record at index {index}: ID field is required and cannot be an empty string"
        )
    id = _id_value(raw)
    if id is None:
        got = "a fractional number" if isinstance(raw, float) else kind(raw)
        raise bad_request(
            f"Invalid record at index {index}: id must be a string or an integer, got {got}"
        )
    return id


def _where(index: int, id: str) -> str:
    return f"Invalid record at index {index} (id {quote(id)})"


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
        f"unknown field {quote(unknown[0])} ({endpoint} takes {', '.join(sorted(allowed))})",
    )


def _check_data(data: Any, index: int, id: str, faults: Faults, *, where: str = "") -> None:
    if not isinstance(data, str):
        raise _refusal(where, index, id, f"data must be a string, got {kind(data)}")
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
        raise _refusal(where, index, id, f"metadata must be a JSON object, got {kind(value)}")
    try:
        encoded = orjson.dumps(value)
    except orjson.JSONEncodeError:  # what a parsed JSON object can fail on: its depth
        raise _refusal(
            where,
            index,
            id,
            f"metadata nests objects and arrays more than {MAX_METADATA_DEPTH} levels deep",
        ) from None
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
    ids = value if isinstance(value, list) else [value]
    found = [_id_value(id) for id in ids]
    if any(id is None for id in found):
        raise bad_request("ids must be an array of strings or integers")
    return [id for id in found if id is not None]


def _includes(body: dict[str, Any], where: str = "") -> Includes:
    flags = []
    for name in ("includeMetadata", "includeVectors", "includeData"):
        value = body.get(name, False)
        if not isinstance(value, bool):
            raise bad_request(f"{where}{name} must be true or false")
        flags.append(value)
    return Includes(*flags)


def _predicate(text: Any, where: str = "") -> Predicate | None:
    if not isinstance(text, str):
        raise bad_request(f"{where}filter must be a string")
    if len(text) > MAX_FILTER_LENGTH:
        raise bad_request(
            f"{where}filter is {len(text)} characters long, over the limit of {MAX_FILTER_LENGTH}"
        )
    try:
        return compile_filter(text)
    except FilterError as exc:
        raise bad_request(f"{where}{exc}") from None


def _refuse_unknown(body: dict[str, Any], allowed: frozenset[str], where: str) -> None:
    """Upstash answers 400 to a field it does not know; so does this server."""
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise bad_request(f"{where}unknown field {quote(unknown[0])}")


def _show(value: Any) -> str:
    return quote(value) if isinstance(value, str) else orjson.dumps(value).decode()


# -- answers ------------------------------------------------------------------------------


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


def decode_cursor(cursor: Any) -> int:
    """The position a ``range`` cursor starts from: ``""``, ``"0"`` and ``0`` start at the top."""
    if cursor == "":
        return 0
    if isinstance(cursor, str) and cursor.isascii() and cursor.isdigit() and len(cursor) < 20:
        cursor = int(cursor)
    if isinstance(cursor, int) and not isinstance(cursor, bool) and 0 <= cursor <= MAX_CURSOR:
        return cursor
    raise bad_request(f'Invalid cursor {_show(cursor)}: use "0" or a nextCursor')
