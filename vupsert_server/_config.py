"""The local server's settings: one frozen value, checked once when it is built."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal, get_args

from ._errors import ServerConfigError

IndexType = Literal["dense", "sparse", "hybrid"]
Similarity = Literal["COSINE", "EUCLIDEAN", "DOT_PRODUCT"]
RateLimiter = Literal["bucket", "sliding"]
CursorMode = Literal["position", "offset"]
RequestLogForm = Literal["off", "text", "json"]
INDEX_TYPES: tuple[str, ...] = get_args(IndexType)
SIMILARITIES: tuple[str, ...] = get_args(Similarity)
RATE_LIMITERS: tuple[str, ...] = get_args(RateLimiter)
CURSOR_MODES: tuple[str, ...] = get_args(CursorMode)
REQUEST_LOG_FORMS: tuple[str, ...] = get_args(RequestLogForm)

EMBEDDING_MODEL = "VUPSERT_HASH_NGRAM"
"""What ``info`` reports as ``denseIndex.embeddingModel`` when the index embeds text."""
SPARSE_EMBEDDING_MODEL = "VUPSERT_HASH_BM25"
"""What ``info`` reports as ``sparseIndex.embeddingModel`` when the index embeds text."""

MIB = 1024 * 1024

DAILY_QUOTA_MESSAGE = "ERR max daily updates limit exceeded"
"""What Upstash answers (429, no ``Retry-After``) to a write once the day's quota of upserted
vectors is used up."""

FAULT_FIELDS = (
    "latency_ms",
    "latency_per_record_ms",
    "fail_rate",
    "rate_limit",
    "rate_limiter",
    "capacity",
    "drop_rate",
    "refuse_matching",
    "faulty_reads",
    "daily_quota",
    "seed",
)
"""The settings :meth:`LocalServer.set_faults` may change while the server runs."""


@dataclass(frozen=True)
class ServerConfig:
    """Everything ``vupsert serve`` (or a test) chooses about the local index."""

    host: str = "127.0.0.1"
    port: int = 8787
    """0 picks a free port."""
    token: str | None = field(default=None, repr=False)
    """``None`` generates one with :func:`secrets.token_urlsafe`."""
    readonly_token: str | None = field(default=None, repr=False)
    """A second token that may read (query, fetch, range, info) and gets 403 on writes."""
    db: str | None = None
    """SQLite file that keeps the index across restarts; ``None`` keeps it in memory."""
    index_type: IndexType = "dense"
    """``dense`` vectors, ``sparse`` vectors, or ``hybrid``: both on every record."""
    dimension: int = 384
    """Of the dense vectors (a sparse index has none)."""
    similarity: Similarity = "COSINE"
    """How dense vectors are scored; sparse ones always by their inner product."""
    embedding: bool = True
    """Models for text: the hashed n-gram embedder for dense vectors, the hashed BM25 one
    for sparse vectors. ``False`` turns both off: ``upsert-data`` and ``query-data``
    answer 422."""
    max_body_bytes: int = 64 * MIB
    """A request body above it is answered 413 without being read."""
    read_timeout: float = 30.0
    """Seconds a connection may take to send one request, or stay idle between two."""
    max_connections: int = 256
    """Connections served at once; more wait in the listen queue until one closes."""
    latency_ms: float = 0
    """Added to every write request."""
    latency_per_record_ms: float = 0
    """Added to every write request, per record it holds."""
    capacity: int = 0
    """Writes the server handles at full speed; with more in flight, the added latency
    of a write that arrives is multiplied by ``in_flight / capacity``. 0 turns it off."""
    fail_rate: float = 0
    """Share of writes answered 500/502/503, half of them after the write was applied."""
    rate_limit: float = 0
    """Writes per second before 429 (with ``Retry-After``); 0 turns it off."""
    rate_limiter: RateLimiter = "bucket"
    """``bucket``: a token bucket holding one second of writes, refilled continuously;
    ``sliding``: at most ``rate_limit`` writes in any window of one second."""
    drop_rate: float = 0
    """Share of writes whose connection is closed without an answer."""
    refuse_matching: str | None = None
    """A request holding a record whose data contains this text is refused with 400."""
    faulty_reads: bool = False
    """Reads of records (``fetch``, ``range``) meet the rate limit, the daily quota,
    failures and dropped connections too, as writes do: to test clients that scan, export
    or verify."""
    daily_quota: int = 0
    """Vectors upserted before every write (and, with ``faulty_reads``, every read of
    records) answers 429 ``quota_message`` without ``Retry-After``, as Upstash answers once
    a plan's daily updates are used up; a write that starts under it is applied whole.
    Setting it again (:meth:`LocalServer.set_faults`) starts a new day. 0 turns it off."""
    quota_message: str = DAILY_QUOTA_MESSAGE
    """The text of the quota's 429 (for tests: one that does not say "daily")."""
    seed: int | None = None
    """Seeds the fault dice, so a run's faults can be replayed."""
    cursor_mode: CursorMode = "position"
    """What a ``range`` cursor is: ``position``, as the service counts them (per
    namespace from 0: "5" after a first page of 5), where the next page starts whatever
    was deleted meanwhile; ``offset`` (for tests only), a count of rows to pass over,
    which a deletion before it shifts: to test clients that delete while they scan."""

    request_log: RequestLogForm = "off"
    """A line per request on stderr (``text``), or a JSON object per line (``json``): time,
    method, path, status, records, milliseconds; never the token nor a body."""

    def __post_init__(self) -> None:
        check_faults(self)
        if not 0 <= self.port <= 65535:
            raise ServerConfigError(f"Port {self.port} is out of range (0-65535).")
        if not 1 <= self.dimension <= 65536:
            raise ServerConfigError(f"Dimension {self.dimension} is out of range (1-65536).")
        if self.token is not None and not self.token.strip():
            raise ServerConfigError(
                "The token cannot be empty.", hint="Leave it out to generate one."
            )
        if self.readonly_token is not None and not self.readonly_token.strip():
            raise ServerConfigError(
                "The read-only token cannot be empty.", hint="Leave it out to have none."
            )
        if self.readonly_token is not None and self.readonly_token == self.token:
            raise ServerConfigError("The read-only token must differ from the token.")
        _check_choice("index_type", self.index_type, INDEX_TYPES)
        _check_choice("similarity", self.similarity, SIMILARITIES)
        _check_choice("cursor_mode", self.cursor_mode, CURSOR_MODES)
        _check_choice("request_log", self.request_log, REQUEST_LOG_FORMS)
        if self.max_body_bytes < 1024:
            raise ServerConfigError(
                f"max_body_bytes must be at least 1024, not {self.max_body_bytes}."
            )
        if not math.isfinite(self.read_timeout) or self.read_timeout <= 0:
            raise ServerConfigError(
                f"read_timeout must be a number > 0, not {self.read_timeout!r}."
            )
        if self.max_connections < 1:
            raise ServerConfigError(
                f"max_connections must be at least 1, not {self.max_connections}."
            )


def check_faults(config: ServerConfig) -> None:
    """Raise :class:`ServerConfigError` when a fault setting cannot be honoured."""
    for name in ("latency_ms", "latency_per_record_ms", "rate_limit"):
        value = getattr(config, name)
        if not math.isfinite(value) or value < 0:
            raise ServerConfigError(f"{name} must be a finite number >= 0, not {value!r}.")
    for name in ("fail_rate", "drop_rate"):
        value = getattr(config, name)
        if not 0 <= value <= 1:
            raise ServerConfigError(f"{name} must be between 0 and 1, not {value!r}.")
    if config.fail_rate + config.drop_rate > 1:
        raise ServerConfigError(
            f"fail_rate + drop_rate is {config.fail_rate + config.drop_rate:g}; "
            "together they cannot exceed 1."
        )
    if config.refuse_matching == "":
        raise ServerConfigError("refuse_matching cannot be empty: it would refuse every record.")
    _check_choice("rate_limiter", config.rate_limiter, RATE_LIMITERS)
    if config.capacity < 0:
        raise ServerConfigError(f"capacity must be >= 0, not {config.capacity}.")
    if config.daily_quota < 0:
        raise ServerConfigError(f"daily_quota must be >= 0, not {config.daily_quota}.")
    if config.capacity and not (config.latency_ms or config.latency_per_record_ms):
        raise ServerConfigError(
            "capacity multiplies the latency of writes, and there is none.",
            hint="Give latency_ms or latency_per_record_ms too.",
        )


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ServerConfigError(f"{name} must be one of {', '.join(choices)}, not {value!r}.")
