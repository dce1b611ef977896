"""Faults injected into write requests, to test how a client copes with a bad day.

All dice come from one :class:`random.Random` (seeded by ``seed``) behind a lock, and
every roll draws the same three numbers whatever the outcome, so a seeded run against a
sequential client replays exactly.

Two rate limiters, chosen by ``rate_limiter``: a token bucket holding one second of
writes and refilled continuously (``bucket``: a steady client at the limit is never
refused, a burst up to a second's worth passes), or a sliding window (``sliding``: at
most ``rate_limit`` writes in any one second, counting the writes it let through; below
one write a second, one write per ``1 / rate_limit`` seconds). The window refuses
bursts a bucket lets through: after a burst of R writes a bucket admits the next one
``1 / R`` seconds later, a window only one second after the burst began.

``daily_quota`` counts the vectors upserted: once that many have been, every write is
refused until the quota is set again (a new day), as Upstash refuses them once a plan's
daily updates are used up.

``capacity`` models a server that slows down as it gets busier: a write that arrives
while ``k`` writes (itself included) are in flight takes its added latency times
``max(1, k / capacity)``, so a client that keeps more than ``capacity`` writes in flight
gets slower answers and no more throughput.
"""

from __future__ import annotations

import collections
import dataclasses
import math
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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
    def __init__(
        self, config: ServerConfig, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._config = config
        self._rng = random.Random(config.seed)
        self._tokens = max(1.0, config.rate_limit)
        self._refilled = clock()
        self._admitted: collections.deque[float] = collections.deque()
        self._in_flight = 0
        self._upserted = 0
        """Vectors upserted today, against ``daily_quota``."""

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
            if (config.rate_limit, config.rate_limiter) != (
                self._config.rate_limit,
                self._config.rate_limiter,
            ):
                self._tokens = max(1.0, config.rate_limit)
                self._refilled = self._clock()
                self._admitted.clear()
            if "daily_quota" in changes:
                self._upserted = 0
            self._config = config

    def admit(self) -> int | None:
        """Count a write against the rate limit: ``None`` if allowed, else Retry-After."""
        with self._lock:
            rate = self._config.rate_limit
            if rate <= 0:
                return None
            if self._config.rate_limiter == "sliding":
                return self._admit_window(rate)
            now = self._clock()
            capacity = max(1.0, rate)
            self._tokens = min(capacity, self._tokens + (now - self._refilled) * rate)
            self._refilled = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return None
            return max(1, math.ceil((1.0 - self._tokens) / rate))

    def quota_spent(self) -> bool:
        """Whether the day's quota of upserted vectors is used up."""
        with self._lock:
            quota = self._config.daily_quota
            return bool(quota) and self._upserted >= quota

    def spend(self, vectors: int) -> bool:
        """Count a write of ``vectors`` against the daily quota, if it is not used up yet:
        whether the write may go (writes in flight at once are counted one by one)."""
        with self._lock:
            quota = self._config.daily_quota
            if quota and self._upserted >= quota:
                return False
            self._upserted += vectors
            return True

    def refund(self, vectors: int) -> None:
        """A write counted by :meth:`spend` was not applied."""
        with self._lock:
            self._upserted = max(0, self._upserted - vectors)

    def _admit_window(self, rate: float) -> int | None:
        allowed, window = (math.floor(rate), 1.0) if rate >= 1 else (1, 1.0 / rate)
        now = self._clock()
        admitted = self._admitted
        while admitted and admitted[0] <= now - window:
            admitted.popleft()
        if len(admitted) < allowed:
            admitted.append(now)
            return None
        return max(1, math.ceil(admitted[0] + window - now))

    @property
    def writes_in_flight(self) -> int:
        return self._in_flight

    @contextmanager
    def in_flight(self) -> Iterator[int]:
        """Count a write as in flight while the block runs; yields the count, itself in."""
        with self._lock:
            self._in_flight += 1
            count = self._in_flight
        try:
            yield count
        finally:
            with self._lock:
                self._in_flight -= 1

    def delay(self, records: int, in_flight: int = 1) -> float:
        """Seconds a write of ``records`` records should take (before any work), when it
        arrived with ``in_flight`` writes in flight (itself included)."""
        config = self._config
        seconds = (config.latency_ms + config.latency_per_record_ms * records) / 1000.0
        if config.capacity and in_flight > config.capacity:
            seconds *= in_flight / config.capacity
        return seconds

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
