"""How many requests may be in flight, and how fast requests may start.

Two controls share one lock:

- a limit on requests in flight, found from latency as TCP Vegas and Netflix's
  concurrency-limits find it. It starts at one request, so that a server that refuses
  everything (bad token, no embedding model) sees exactly one; the first success opens
  it to 16, and it doubles every round trip while latency holds (slow start). Then,
  once a round trip: the requests queued at the server are estimated from how much
  slower answers come than the fastest seen (``in flight x (1 - fastest / now)``); the
  limit grows by one while that queue is short, and drops to what the server absorbs
  without queueing when it is long (by half at most, unless the queue is far too long
  to be noise). A 429 or 503 halves it, another 5xx or a lost answer takes a quarter
  off. Never above ``concurrency``. The fastest latency is measured again (one round
  at half the limit) when it has not been seen for a while: a server that became
  slower for good is not mistaken for a queue forever.
- a start rate, unknown (unlimited) until the server first says 429. Then it is set to
  what the server let through in the last second, less 5%, and cut by 5% on each later
  429. It holds for 8 seconds after a 429 (twice as long each time a 429 comes at the
  rate the last one came at, up to 64), then grows by 1% a second, doubling every 5
  seconds without a 429 (at most 50%): each 429 costs every sender a pause of
  ``Retry-After``, so a known limit is probed rarely, and a first estimate that was too
  low does not last.

A ``Retry-After`` pauses every sender, not only the one that was told.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable

from ._answers import Answer, Kind

OPENING_LIMIT = 16
"""Requests in flight once the first one succeeds, before latency says more."""
BASE_TTL = 10.0
"""Seconds the fastest latency stands without being seen again; then it is measured anew."""
COMPARABLE = 0.5
"""A request this much smaller than the largest one sent says nothing of the latency of
a full one (a split, the last batch): it is not a latency sample."""
SLOW_START_EXIT = 1.25
"""Slow start ends at an answer this many times slower than the fastest."""
QUEUE = 2.0
QUEUE_SHARE = 0.1
"""The limit holds while the server queues between ``max(QUEUE, QUEUE_SHARE x limit)``
requests and twice that: fewer, it grows; more, it falls."""
RATE_HOLD = 8.0
"""Seconds after a 429 during which the start rate does not grow; doubled each time a 429
comes at the rate of the one before (up to ``RATE_HOLD_MAX``)."""
RATE_HOLD_MAX = 64.0


class Throttle:
    def __init__(
        self,
        max_in_flight: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        grown: Callable[[], None] | None = None,
    ) -> None:
        self.max_in_flight = max(1, max_in_flight)
        self._clock = clock
        self._grown = grown
        """Called (outside the lock) when the limit has grown: more may be sent now."""
        self._cond = threading.Condition()
        self._in_flight = 0
        self._limit = 1.0
        self._opened = False
        self._slow_start = True
        self._last_decrease = -math.inf
        # Latency: the fastest answer to a full request, and the current round trip.
        self._largest = 0
        self._base = math.inf
        self._base_seen = 0.0
        self._last: deque[float] = deque(maxlen=4)
        self._draining: float | None = None
        """The limit to go back to once a round at half of it has measured the base."""
        self._round_start = clock()
        self._samples: list[float] = []
        self._loads = 0
        self._starts = 0
        self._full = self._was_full = False
        # Start rate.
        self._rate: float | None = None
        self._next_start = -math.inf
        self._pause_until = -math.inf
        self._last_throttled = -math.inf
        self._learned_at = -math.inf
        self._limit_met = 0.0
        """The start rate at which the last 429 came."""
        self._hold = RATE_HOLD
        self._recent_ok: deque[float] = deque()
        self.throttled = 0
        """429 answers seen."""

    @property
    def proven(self) -> bool:
        """A request has succeeded: the token and the index work."""
        return self._opened

    @property
    def in_flight(self) -> int:
        """Requests started and not yet answered."""
        return self._in_flight

    @property
    def limit(self) -> int:
        """Requests that may be in flight now (at least one)."""
        return int(self._limit)

    def acquire(self, cancelled: Callable[[], bool]) -> float | None:
        """Wait for a slot; return the start time, or ``None`` if ``cancelled()``."""
        with self._cond:
            while True:
                if cancelled():
                    return None
                started = self.try_acquire()
                if started is not None:
                    return started
                wait = max(self._pause_until, self._next_start) - self._clock()
                self._cond.wait(min(wait, 0.25) if wait > 0 else 0.25)

    def try_acquire(self) -> float | None:
        """Take a slot if one is free now and the pace allows: the start time, else None."""
        with self._cond:  # reentrant: acquire() holds it already
            now = self._clock()
            if self._in_flight >= int(self._limit):
                return None
            if max(self._pause_until, self._next_start) > now:
                return None
            self._in_flight += 1
            if self._rate:
                self._next_start = max(now, self._next_start) + 1.0 / self._rate
            self._loads += self._in_flight
            self._starts += 1
            if self._in_flight >= int(self._limit):
                self._full = True
            return now

    def release(self, started: float, answer: Answer, size: int = 1) -> None:
        """The request that began at ``started``, of ``size`` (its body's bytes), got
        ``answer``."""
        with self._cond:
            self._in_flight -= 1
            now = self._clock()
            before = int(self._limit)
            if answer.status == 429:
                self.throttled += 1
            if answer.kind is Kind.OK:
                self._succeeded(started, now, size)
            elif answer.kind is Kind.TRANSIENT:
                self._failed(started, now, answer)
            if answer.retry_after:
                self._pause_until = max(self._pause_until, now + answer.retry_after)
            self._cond.notify_all()
            grown = int(self._limit) > before
        if grown and self._grown is not None:
            self._grown()

    # --- the limit on requests in flight ----------------------------------------------

    def _succeeded(self, started: float, now: float, size: int) -> None:
        self._count_ok(started, now)
        if not self._opened:
            self._opened = True
            if self._last_decrease == -math.inf:
                # The first success proves the token and the index: open up at once.
                self._limit = float(min(self.max_in_flight, OPENING_LIMIT))
                self._new_round(now)
        elif self._slow_start and (self._full or self._was_full):
            self._limit = min(float(self.max_in_flight), self._limit + 1.0)
        if size < COMPARABLE * self._largest:
            return
        if COMPARABLE * size > self._largest:
            # Larger requests than any so far: what smaller ones took is no base for them.
            self._base = math.inf
            self._last.clear()
        self._largest = max(self._largest, size)
        latency = now - started
        if latency < self._base:
            self._base, self._base_seen = latency, now
        elif latency <= 1.1 * self._base:
            self._base_seen = now
        self._last.append(latency)
        if min(self._last) > SLOW_START_EXIT * self._base:
            # Answers come slower: the server is queueing, stop doubling (as HyStart does).
            self._slow_start = False
        if started < self._round_start:
            return  # sent before the last change: says nothing about the current limit
        self._samples.append(latency)
        if len(self._samples) >= min(8, max(1, int(self._limit) // 2)):
            self._end_round(now)

    def _end_round(self, now: float) -> None:
        # The round's fastest answer, against the fastest ever: noise in latency (which
        # a median would mistake for a queue) cancels out.
        latency = min(self._samples)
        if self._draining is not None:
            self._base, self._base_seen = latency, now
            self._limit, self._draining = self._draining, None
            self._new_round(now)
            return
        load = self._loads / self._starts if self._starts else self._limit
        queued = load * (1.0 - self._base / latency)
        # A few queued requests keep the server busy; how many is noise grows with the limit.
        alpha = max(QUEUE, QUEUE_SHARE * self._limit)
        if queued > 2 * alpha:
            # Back to what the server absorbs without queueing, plus a little queue; by
            # half at most, unless the queue is far too long to be noise.
            self._slow_start = False
            fitted = load * self._base / latency + alpha
            floor = self._limit / 2 if queued < 8 * alpha else 1.0
            self._limit = max(1.0, floor, min(self._limit - 1.0, fitted))
        elif queued > alpha:
            self._slow_start = False
        elif (self._full or self._was_full) and not self._slow_start:
            self._limit = min(float(self.max_in_flight), self._limit + 1.0)
        if not self._slow_start and now - self._base_seen > BASE_TTL:
            # Queueing all along hides the fastest latency: measure it at half the limit.
            self._draining = self._limit
            self._limit = max(1.0, self._limit / 2)
        self._new_round(now)

    def _new_round(self, now: float) -> None:
        self._round_start = now
        self._samples = []
        self._loads = self._starts = 0
        # A window full in the last round is still the constraint now.
        self._was_full = self._full
        self._full = self._in_flight >= int(self._limit)

    def _failed(self, started: float, now: float, answer: Answer) -> None:
        if started <= self._last_decrease:
            # One decrease per round trip: the answers to requests that were already in
            # flight say nothing new.
            return
        self._last_decrease = now
        if self._opened:
            self._slow_start = False
        if self._draining is not None:
            self._limit, self._draining = self._draining, None
        overloaded = answer.status in (429, 503)
        self._limit = max(1.0, self._limit * (0.5 if overloaded else 0.75))
        self._new_round(now)
        if answer.status == 429:
            self._throttled(now)

    # --- the start rate -------------------------------------------------------------------

    def _count_ok(self, started: float, now: float) -> None:
        self._recent_ok.append(now)
        while self._recent_ok[0] < now - 1.0:
            self._recent_ok.popleft()
        if self._rate is None:
            return
        if started <= self._learned_at:
            # Let through in the burst that first met the limit, answered after it: part
            # of what the server allows, so part of the estimate.
            self._limit_met = max(self._limit_met, len(self._recent_ok))
            self._rate = max(self._rate, 0.95 * self._limit_met)
        else:
            self._rate *= self._growth(now) ** (1.0 / self._rate)

    def _throttled(self, now: float) -> None:
        if self._rate is None:
            # What the server let through in the last second, while we were pushing as
            # fast as we could, is the first estimate of its limit.
            limit = float(len(self._recent_ok))
            self._rate = max(1.0, 0.95 * limit)
            self._learned_at = now
        else:
            limit = self._rate
            self._rate = max(0.5, self._rate * 0.95)
            # Met again where it was met last time: the limit is known, probe it less.
            same = abs(limit - self._limit_met) <= 0.1 * self._limit_met
            self._hold = min(RATE_HOLD_MAX, 2 * self._hold) if same else RATE_HOLD
        self._limit_met = limit
        self._last_throttled = now

    def _growth(self, now: float) -> float:
        """Factor by which the start rate may grow per second."""
        calm = now - self._last_throttled - self._hold
        if calm < 0:
            return 1.0
        return 1.0 + min(0.5, 0.01 * math.pow(2.0, calm / 5.0))
