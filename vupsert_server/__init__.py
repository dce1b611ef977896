"""A local index that speaks Upstash Vector's REST API, for demos, tests and benchmarks.

``vupsert serve`` runs it in the foreground (:func:`serve_forever`); tests and the demo
use :class:`LocalServer`, which serves from a background thread on a free port::

    with LocalServer(ServerConfig(port=0, fail_rate=0.1, seed=1)) as server:
        run_client(server.url, server.token)
        assert server.stats["records_written"] == 1000

It stores namespaces, ids, data, metadata and dense or sparse vectors in SQLite (in
memory, or in the ``db`` file so the index survives restarts); it can be a dense, sparse
or hybrid index, embeds text with deterministic hashing embedders (n-grams for dense
vectors, BM25 for sparse ones), answers queries, fused hybrid queries and resumable
queries, enforces Upstash's limits with precise 400 messages, takes a read-only token,
and can inject latency, a capacity, 5xx answers, 429s (token bucket or sliding window),
dropped connections and refused records into writes. It checks tokens before reading a
body, caps bodies, cuts stalled clients and bounds its connections, so it can be left
running. ``NOTES.md`` beside this file has its measurements and choices.

Modules: ``_app`` (routing, auth, faults, counters), ``_api`` (the endpoints),
``_search`` (ranking, fusion), ``_vectors`` (blob formats), ``_http`` (the socket
server), ``_storage`` (SQLite), ``_embed``, ``_bm25``, ``_filter`` (metadata filters),
``_resumable``, ``_faults``, ``_stats``, ``_errors``, ``_server`` (start/stop).
"""

from ._api import NO_EMBEDDING
from ._app import UNKNOWN_ENDPOINT
from ._config import EMBEDDING_MODEL, SPARSE_EMBEDDING_MODEL, ServerConfig
from ._embed import HashEmbedder
from ._errors import ServerConfigError
from ._server import LocalServer, serve_forever

__all__ = [
    "EMBEDDING_MODEL",
    "NO_EMBEDDING",
    "SPARSE_EMBEDDING_MODEL",
    "UNKNOWN_ENDPOINT",
    "HashEmbedder",
    "LocalServer",
    "ServerConfig",
    "ServerConfigError",
    "serve_forever",
]
