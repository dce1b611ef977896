"""Faults injected into write requests, to test how a client copes with a bad day.

All dice come from one :class:`random.Random` (seeded by ``seed``) behind a lock, and
every roll draws the same three numbers whatever the outcome, so a seeded run against a
sequential client replays exactly.
"""

from __future__ import annotations

import dataclasses
import math
import random
import threading
import time
from dataclasses import dataclass
from typing import Any, Literal

from ._config import FAULT_FIELDS, ServerConfig, check_faults

FAIL_STATUSES = (500, 502, 503)


@dataclass(frozen=True)
class Fault:
    """What to do to one write instead of (or after) answering it normally."""

    kind: Literal["fail", "drop"]
    after_write: bool
    """``True``: the write is applied first, then the answer is lost or replaced."""
    status: int = 0
    """For ``fail``: 500, 502 or 503."""


class Faults:
    def __init__(self, config: ServerConfig) -> None:
        self._lock = threading.Lock()
        self._config = config
        self._rng = random.Random(config.seed)
        self._tokens = max(1.0, config.rate_limit)
        self._refilled = time.monotonic()

    @property
    def config(self) -> ServerConfig:
        """The current settings (faults included) as one frozen value."""
        return self._config

    def change(self, **changes: Any) -> None:
        unknown = sorted(set(changes) - set(FAULT_FIELDS))
        if unknown:
            raise TypeError(
                f"Not a fault setting: {', '.join(unknown)} (known: {', '.join(FAULT_FIELDS)})"
            )
        with self._lock:
            config = dataclasses.replace(self._config, **changes)
            check_faults(config)
            if "seed" in changes:
                self._rng = random.Random(config.seed)
            if config.rate_limit != self._config.rate_limit:
                self._tokens = max(1.0, config.rate_limit)
                self._refilled = time.monotonic()
            self._config = config

    def admit(self) -> int | None:
        """Take a write from the rate limit's bucket; ``None`` if allowed, else Retry-After.

        A token bucket holding one second's worth of writes, refilled continuously:
        a steady client at the limit is never refused, a burst above it is.
        """
        with self._lock:
            rate = self._config.rate_limit
            if rate <= 0:
                return None
            now = time.monotonic()
            capacity = max(1.0, rate)
            self._tokens = min(capacity, self._tokens + (now - self._refilled) * rate)
            self._refilled = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return None
            return max(1, math.ceil((1.0 - self._tokens) / rate))

    def delay(self, records: int) -> float:
        """Seconds a write of ``records`` records should take (before any work)."""
        config = self._config
        return (config.latency_ms + config.latency_per_record_ms * records) / 1000.0

    def roll(self) -> Fault | None:
        with self._lock:
            config = self._config
            chance = self._rng.random()
            after_write = self._rng.random() < 0.5
            status = FAIL_STATUSES[self._rng.randrange(len(FAIL_STATUSES))]
        if chance < config.drop_rate:
            return Fault("drop", after_write)
        if chance < config.drop_rate + config.fail_rate:
            return Fault("fail", after_write, status)
        return None

    def refuses(self, data: str) -> bool:
        needle = self._config.refuse_matching
        return needle is not None and needle in data
