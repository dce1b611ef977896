"""The local server's settings: one frozen value, checked once when it is built."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import ConfigError

EMBEDDING_MODEL = "VUPSERT_HASH_NGRAM"
"""What ``info`` reports as ``denseIndex.embeddingModel`` when the index embeds text."""

FAULT_FIELDS = (
    "latency_ms",
    "latency_per_record_ms",
    "fail_rate",
    "rate_limit",
    "drop_rate",
    "refuse_matching",
    "seed",
)
"""The settings :meth:`LocalServer.set_faults` may change while the server runs."""


@dataclass(frozen=True)
class ServerConfig:
    """Everything ``vupsert serve`` (or a test) chooses about the local index."""

    host: str = "127.0.0.1"
    port: int = 8787
    """0 picks a free port."""
    token: str | None = None
    """``None`` generates one with :func:`secrets.token_urlsafe`."""
    db: str | None = None
    """SQLite file that keeps the index across restarts; ``None`` keeps it in memory."""
    dimension: int = 384
    embedding: bool = True
    """``False`` makes a plain dense index: ``upsert-data`` and ``query-data`` answer 422."""
    latency_ms: float = 0
    """Added to every write request."""
    latency_per_record_ms: float = 0
    """Added to every write request, per record it holds."""
    fail_rate: float = 0
    """Share of writes answered 500/502/503, half of them after the write was applied."""
    rate_limit: float = 0
    """Writes per second before 429 (with ``Retry-After``); 0 turns it off."""
    drop_rate: float = 0
    """Share of writes whose connection is closed without an answer."""
    refuse_matching: str | None = None
    """A request holding a record whose data contains this text is refused with 400."""
    seed: int | None = None
    """Seeds the fault dice, so a run's faults can be replayed."""

    def __post_init__(self) -> None:
        check_faults(self)
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"Port {self.port} is out of range (0-65535).")
        if not 1 <= self.dimension <= 65536:
            raise ConfigError(f"Dimension {self.dimension} is out of range (1-65536).")
        if self.token is not None and not self.token.strip():
            raise ConfigError("The token cannot be empty.", hint="Leave it out to generate one.")


def check_faults(config: ServerConfig) -> None:
    """Raise :class:`ConfigError` when a fault setting cannot be honoured."""
    for name in ("latency_ms", "latency_per_record_ms", "rate_limit"):
        value = getattr(config, name)
        if not math.isfinite(value) or value < 0:
            raise ConfigError(f"{name} must be a finite number >= 0, not {value!r}.")
    for name in ("fail_rate", "drop_rate"):
        value = getattr(config, name)
        if not 0 <= value <= 1:
            raise ConfigError(f"{name} must be between 0 and 1, not {value!r}.")
    if config.fail_rate + config.drop_rate > 1:
        raise ConfigError(
            f"fail_rate + drop_rate is {config.fail_rate + config.drop_rate:g}; "
            "together they cannot exceed 1."
        )
    if config.refuse_matching == "":
        raise ConfigError("refuse_matching cannot be empty: it would refuse every record.")
