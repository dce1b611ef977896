"""How many batches may be in flight, and how fast requests may start.

Two controls share one lock:

- a window of requests in flight, grown additively on success and halved on 429/503
  (AIMD), never above ``--concurrency``. It starts at one request so that a server that
  refuses everything (bad token, no embedding model) sees exactly one request;
- a start rate, unknown (unlimited) until the server first says 429. Then it is set to
  what the server let through in the last second, cut by 15% on each later 429, and
  grown by 2% a second, faster the longer no 429 comes: a rate-limited index is used
  near its limit with few refusals, and a first estimate that was too low does not last.

A ``Retry-After`` pauses every sender, not only the one that was told.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable

from .client import Answer, Kind


class Throttle:
    def __init__(
        self,
        max_in_flight: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        adaptive: bool = True,
    ) -> None:
        self.max_in_flight = max(1, max_in_flight)
        self._clock = clock
        self._adaptive = adaptive
        self._cond = threading.Condition()
        self._window = 1.0
        self._in_flight = 0
        self._rate: float | None = None
        self._next_start = 0.0
        self._pause_until = 0.0
        self._last_decrease = -1.0
        self._last_throttled = 0.0
        self._learned_at = -1.0
        self._recent_ok: deque[float] = deque()
        self._best_latency: float | None = None
        self._latency = 0.0
        self.throttled = 0
        """429 answers seen."""

    @property
    def window(self) -> int:
        return int(self._window)

    @property
    def rate(self) -> float | None:
        return self._rate

    def acquire(self, cancelled: Callable[[], bool]) -> float | None:
        """Wait for a slot; return the start time, or ``None`` if ``cancelled()``."""
        with self._cond:
            while True:
                if cancelled():
                    return None
                now = self._clock()
                if self._in_flight >= int(self._window):
                    self._cond.wait(0.25)
                    continue
                wait = max(self._pause_until, self._next_start) - now
                if wait > 0:
                    self._cond.wait(min(wait, 0.25))
                    continue
                self._in_flight += 1
                if self._rate:
                    self._next_start = max(now, self._next_start) + 1.0 / self._rate
                return now

    def release(self, started: float, answer: Answer) -> None:
        with self._cond:
            self._in_flight -= 1
            now = self._clock()
            if answer.status == 429:
                self.throttled += 1
            if answer.retry_after:
                self._pause_until = max(self._pause_until, now + answer.retry_after)
            if self._adaptive:
                self._adapt(started, now, answer)
            else:
                self._window = float(self.max_in_flight)
            self._cond.notify_all()

    def _adapt(self, started: float, now: float, answer: Answer) -> None:
        if answer.kind is Kind.OK:
            self._recent_ok.append(now)
            while self._recent_ok and self._recent_ok[0] < now - 1.0:
                self._recent_ok.popleft()
            if self._window < 2 and self._last_decrease < 0:
                # The first success proves the token and the index: open up at once.
                self._window = float(self.max_in_flight)
            else:
                self._window = min(float(self.max_in_flight), self._window + 1.0 / self._window)
            if self._rate is not None:
                if started <= self._learned_at:
                    # Let through in the burst that first met the limit, answered after
                    # it: part of what the server allows, so part of the estimate.
                    self._rate = max(self._rate, 0.95 * len(self._recent_ok))
                else:
                    self._rate *= self._growth(now) ** (1.0 / self._rate)
            self._watch_latency(started, now)
            return
        if answer.status in (429, 503) and started > self._last_decrease:
            # Only one decrease per round trip: the answers to requests that were
            # already in flight say nothing new.
            self._last_decrease = now
            self._window = max(1.0, self._window / 2)
            if answer.status == 429:
                self._last_throttled = now
                if self._rate is None:
                    # What the server let through in the last second, while we were
                    # pushing as fast as we could, is the first estimate of its limit.
                    self._rate = max(1.0, 0.95 * len(self._recent_ok))
                    self._learned_at = now
                else:
                    self._rate = max(0.5, self._rate * 0.85)

    def _growth(self, now: float) -> float:
        """Factor by which the start rate may grow per second.

        2% just after a 429, doubling every 5 s without one (at most 50%): a limit just
        found is approached gently, while a first estimate that was far too low (the
        limit was shared, or its bucket not full) is left behind within seconds.
        """
        calm = now - self._last_throttled
        return 1.0 + min(0.5, 0.02 * math.pow(2.0, calm / 5.0))

    def _watch_latency(self, started: float, now: float) -> None:
        latency = now - started
        self._latency = latency if not self._latency else 0.8 * self._latency + 0.2 * latency
        if self._best_latency is None or latency < self._best_latency:
            self._best_latency = latency
        # A server that answers four times slower than it can is queueing our requests:
        # fewer in flight costs nothing and spares it.
        if (
            self._best_latency > 0.05
            and self._latency > 4 * self._best_latency
            and started > self._last_decrease
        ):
            self._last_decrease = now
            self._window = max(1.0, self._window - 1)
