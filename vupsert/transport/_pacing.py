"""How many requests may be in flight, and how fast requests may start.

Two controls share one lock:

- a limit on requests in flight, found from latency as TCP Vegas and Netflix's
  concurrency-limits find it, made to tell a queue at the server from latency that
  varies by itself. It starts at one request, so that a server that refuses everything
  (bad token, no embedding model) sees exactly one; the first success opens it to 16,
  and it doubles every round trip (slow start) until answers say a queue has formed.
  A round is the requests sent during about one fast answer's time (8 at least), and
  ends when all of them are answered: never its first answers alone, which are its
  fastest. Each size of request (in steps of 19% of body bytes) is compared only with
  itself: a batch ten times larger answers slower without any queue. Its base is a
  round's lower quartile latency, not the fastest answer, which with noisy latency is
  far below a typical one; a round within noise of the base moves the base a tenth of
  the way towards itself. How much noise there is comes from the answers themselves
  (how much one differs from the next sent), and only a slowdown beyond it counts as
  a queue: ``in flight x (1 - (1 + noise) x base / latency)``. Then, each round: no
  queue, the limit grows by its square root (by one near where it last queued or
  failed); a short queue (under ``max(QUEUE, QUEUE_SHARE x limit)``), by one; up to
  twice that, it holds; more, it drops to what the server absorbs without queueing
  (by half at most, unless the queue is far too long to be noise). While doubling,
  the last 8 answers are watched: those sent later coming slower than those sent
  first, beyond noise, stop it at once. A 429 or 503 halves it, another 5xx or a lost
  answer takes a quarter off. Never above ``concurrency``. The base is measured again
  (one round at half the limit, and at half again while that answers faster beyond
  noise) when no round has come near it for a while: a server that became slower for
  good is not mistaken for a queue forever, nor is a base measured during a stall.
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

import itertools
import math
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable

from ._answers import Answer, Kind

OPENING_LIMIT = 16
"""Requests in flight once the first one succeeds, before latency says more."""
BASE_TTL = 10.0
"""Seconds a base latency stands without a round coming within noise of it; then it is
measured anew."""
BASE_SEEN = 0.1
"""A round at most this much slower than the base (or within noise of it) sees the base
again."""
SIZE_STEPS = 4
"""Requests are compared by size in steps of 2 ** (1 / SIZE_STEPS) (19%) of body bytes."""
BASE_GAIN = 0.1
"""How far a round within noise of the base moves it towards itself."""
NEAR_STEPS = 2
"""A size without a base of its own takes that of one this many steps away, at most."""
ROUND_MIN = 8
"""Requests a round takes at least (or half the limit, if fewer)."""
RECENT = 8
"""Answers that say, while the limit doubles, whether a queue has formed."""
MIN_MARGIN = 0.05
"""A slowdown this small is never read as a queue."""
NOISE_SPREAD = 1.7
"""The interquartile range of noise over the median step between successive answers."""
NOISE_Z = 1.0
"""A slowdown is a queue only beyond this many times what noise alone would explain."""
QUEUE = 1.5
QUEUE_SHARE = 0.05
"""The limit holds while the server queues, beyond noise, between ``max(QUEUE,
QUEUE_SHARE x limit)`` requests and twice that: fewer, it grows; more, it falls."""
RATE_HOLD = 8.0
"""Seconds after a 429 during which the start rate does not grow; doubled each time a 429
comes at the rate of the one before (up to ``RATE_HOLD_MAX``)."""
RATE_HOLD_MAX = 64.0


Sample = tuple[int, float, float]
"""An answer: its size step, its latency, when it was sent."""


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
        # Latency: each size's base (a round's lower quartile, and of how many answers),
        # the last answers, and the current round's.
        self._bases: dict[int, tuple[float, int]] = {}
        self._base_seen = clock()
        self._recent: deque[Sample] = deque(maxlen=RECENT)
        self._failed_at = math.inf
        """The limit when requests last failed (429, 5xx, lost) or a long queue formed."""
        self._draining: float | None = None
        self._drained_from = math.inf
        """The fastest base before the draining round."""
        """The limit to go back to once a round at half of it has measured the base."""
        self._round_start = clock()
        self._cohort_until = math.inf
        self._cohort = self._answered = 0
        self._cohort_last = -math.inf
        self._samples: list[Sample] = []
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
            if not self._closed(now):
                self._cohort += 1
                self._cohort_last = now
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
            else:
                if answer.kind is Kind.TRANSIENT:
                    self._failed(started, now, answer)
                self._answered_in_round(started, now, None)
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
        # Requests of about the same size are compared with each other only: a batch ten
        # times larger answers slower without any queue.
        sample = (round(SIZE_STEPS * math.log2(max(1, size))), max(now - started, 1e-6), started)
        self._recent.append(sample)
        self._answered_in_round(started, now, sample)

    def _answered_in_round(self, started: float, now: float, sample: Sample | None) -> None:
        if started < self._round_start:
            return  # sent before the last change: says nothing about the current limit
        if started <= self._cohort_last:
            # One of the round's; those sent after it closed are not: counting them
            # would end the round on its fastest answers.
            self._answered += 1
            if sample is not None:
                self._samples.append(sample)
        if self._cohort_until == math.inf:
            self._cohort_until = now  # no base yet to set the round's length
        seen = self._queue_seen() if sample is not None else None
        if seen is not None:
            self._end_round(now, seen)
        elif self._answered >= self._cohort and self._closed(now):
            if self._samples:
                self._end_round(now, self._slowdown(self._samples, learn=True))
            else:
                self._new_round(now)

    def _queue_seen(self) -> tuple[float, float] | None:
        """While doubling: do the round's first answers already say that the server
        queues (as HyStart does)? Then stop without waiting for the round's end, which
        a queue delays: the slowdown and its margin, else ``None``.

        Its first answers are its fastest; what tells a queue from noise in them is
        that those sent later came slower than those sent first, by more than noise.
        """
        if not self._slow_start or len(self._recent) < RECENT:
            return None
        # Sizes a step or two apart (bodies of as many records whose texts differ) are
        # made comparable, halfway between a fixed latency and one that grows with the
        # body: enough for a look at a trend.
        size = statistics.median_low([sample[0] for sample in self._recent])
        answers = sorted(
            (s for s in self._recent if abs(s[0] - size) <= NEAR_STEPS), key=lambda s: s[2]
        )
        if len(answers) < RECENT // 2:
            return None
        scaled = [latency * 2 ** ((size - step) / (2 * SIZE_STEPS)) for step, latency, _ in answers]
        half = len(answers) // 2
        first = _lower_quartile(scaled[:half])
        base = min((self._base(size) or (first, half))[0], first)
        ratios = [latency / base for latency in scaled]
        slowdown = _lower_quartile(ratios[half:])
        spread = math.sqrt(len(ratios) / (len(ratios) - half))
        margin = spread * _margin(ratios, slowdown, half)
        queued, alpha = self._queued(slowdown, margin, self._in_flight + 1)
        if queued >= 1:
            self._slow_start = False  # a queue beyond noise: stop doubling
        if queued <= 2 * alpha:
            return None
        # A queue far beyond noise: those sent first came before it, a base to fit to.
        if base < self._bases.get(size, (math.inf, 0))[0]:
            self._bases[size] = (base, half)
        return slowdown, margin

    def _end_round(self, now: float, slowdown_margin: tuple[float, float]) -> None:
        slowdown, margin = slowdown_margin
        if self._draining is not None:
            fastest = min(base for base, _ in self._bases.values())
            if fastest * (1 + max(BASE_SEEN, margin)) < self._drained_from and self._limit > 1:
                # Half as many in flight answered faster beyond noise: a queue stood even
                # so; halve again until it no longer helps.
                self._drain(now, fastest)
                return
            self._limit, self._draining = self._draining, None
            self._base_seen = now
            self._new_round(now)
            return
        if slowdown <= 1.0 + max(BASE_SEEN, margin):
            self._base_seen = now
        load = self._loads / self._starts if self._starts else self._limit
        queued, alpha = self._queued(slowdown, margin, load)
        if queued > 2 * alpha:
            # Back to what the server absorbs without queueing, plus a little queue; by
            # half at most, unless the queue is far too long to be noise.
            self._slow_start = False
            fitted = load / slowdown + alpha
            floor = self._limit / 2 if queued < 8 * alpha else 1.0
            self._failed_at = self._limit  # where a queue formed: grow back slowly near it
            self._limit = max(1.0, floor, min(self._limit - 1.0, fitted))
        elif queued > alpha:
            self._slow_start = False
        elif (self._full or self._was_full) and not self._slow_start:
            # No queue beyond noise: more requests in flight bring more answers a second.
            self._limit = min(float(self.max_in_flight), self._limit + self._step(queued))
        if not self._slow_start and now - self._base_seen > BASE_TTL:
            # Queueing all along hides the latency without a queue: measure it at half
            # the limit.
            self._draining = self._limit
            self._drain(now, min((base for base, _ in self._bases.values()), default=math.inf))
            return
        self._new_round(now)

    def _drain(self, now: float, fastest: float) -> None:
        """A round at half the limit, to measure the base anew against ``fastest``."""
        self._drained_from = fastest
        self._bases.clear()
        self._limit = max(1.0, self._limit / 2)
        self._new_round(now)

    def _step(self, queued: float) -> float:
        """How much the limit grows after a round without a long queue: by its square
        root when latency did not grow beyond noise (as Gradient2 does: a server far
        from full is found in a few round trips, however slow they are), by one near
        the limit at which requests last failed or queued, or when a short queue
        formed."""
        if queued > 0:
            return 1.0
        if self._limit > 2 * self._failed_at:
            self._failed_at = math.inf  # long past: the server has changed
        room = self._failed_at - self._limit
        return max(1.0, min(math.sqrt(self._limit), room / 2))

    def _queued(self, slowdown: float, margin: float, load: float) -> tuple[float, float]:
        """Requests queued at the server, from ``load`` in flight answered ``slowdown``
        times slower than the base, less what noise could explain (``margin``); and how
        many queued is normal (``alpha``)."""
        queued = max(0.0, load * (1.0 - (1.0 + margin) / slowdown))
        # A few queued requests keep the server busy; how many is noise grows with the limit.
        return queued, max(QUEUE, QUEUE_SHARE * self._limit)

    def _base(self, size: int) -> tuple[float, int] | None:
        """The base of a size step, or one made from the nearest step's: bodies that
        grow slowly (longer ids, longer texts) cross into a new step while a queue
        may stand, and what they took then is no base."""
        known = self._bases.get(size)
        if known is not None:
            return known
        near = [step for step in self._bases if abs(step - size) <= NEAR_STEPS]
        if not near:
            return None
        step = min(near, key=lambda step: abs(step - size))
        base, count = self._bases[step]
        # Halfway between a latency that is fixed and one that grows with the body.
        return base * 2 ** ((size - step) / (2 * SIZE_STEPS)), count

    def _slowdown(self, samples: Iterable[Sample], *, learn: bool) -> tuple[float, float]:
        """How much slower these answers came than their sizes' base, and by how much
        that could be off from noise alone.

        Both are a lower quartile: of each answer's latency over its size's base, and a
        size's base is the lowest lower quartile of a round's answers of that size. Not
        the fastest answer, because with noisy latency the fastest of many is far below
        what one takes without any queue; not the median, which a burst's queue lifts.
        """
        by_size: dict[int, list[Sample]] = {}
        for sample in samples:
            by_size.setdefault(sample[0], []).append(sample)
        ratios: list[tuple[float, float]] = []
        counted = math.inf
        typical: dict[int, tuple[float, int]] = {}
        for size, answers in by_size.items():
            quartile = _lower_quartile([latency for _, latency, _ in answers])
            typical[size] = (quartile, len(answers))
            base, count = self._base(size) or typical[size]
            ratios += [(started, latency / base) for _, latency, started in answers]
            counted = min(counted, count)
        ratios.sort()
        slowdown = _lower_quartile([ratio for _, ratio in ratios])
        margin = _margin([ratio for _, ratio in ratios], slowdown, counted)
        if learn:
            for size, (quartile, count) in typical.items():
                self._learn(size, quartile, count, margin)
        return slowdown, margin

    def _learn(self, size: int, quartile: float, count: int, margin: float) -> None:
        """A round's lower quartile for a size: a new base if it is faster beyond noise;
        a step towards it if it is within noise (the fastest of many rounds is noise
        too); none if it is slower, which may be a queue."""
        base = self._base(size)
        if base is None or quartile * (1 + margin) < base[0]:
            self._bases[size] = (quartile, count)
        elif quartile <= base[0] * (1 + margin):
            self._bases[size] = (base[0] + BASE_GAIN * (quartile - base[0]), max(count, base[1]))

    def _closed(self, now: float) -> bool:
        """Whether the round takes no more requests."""
        enough = min(ROUND_MIN, max(1, int(self._limit) // 2))
        return now >= self._cohort_until and self._cohort >= enough

    def _new_round(self, now: float) -> None:
        # A round is the requests sent from now for as long as the fastest size's base
        # (and at least a few), and ends when all of them are answered: not on its first
        # answers (its fastest), and not sent until one came back (only the slower ones
        # would be in it).
        self._round_start = now
        self._cohort_until = now + min((base for base, _ in self._bases.values()), default=math.inf)
        self._cohort = self._answered = 0
        self._cohort_last = -math.inf
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
        self._failed_at = self._draining or self._limit
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


def _lower_quartile(values: list[float]) -> float:
    if len(values) < 2:
        return values[0]
    return statistics.quantiles(values, n=4, method="inclusive")[0]


def _margin(ratios: list[float], slowdown: float, counted: float) -> float:
    """By how much ``slowdown``, the lower quartile of ``ratios`` (in the order they were
    sent) against a base from ``counted`` answers, could be off from noise alone."""
    if len(ratios) < 4:
        return MIN_MARGIN
    # Noise from one answer to the next in the order they were sent: a queue that
    # grows (a trend) hardly shows in it, noise fully.
    steps = [abs(b - a) for a, b in itertools.pairwise(ratios)]
    spread = NOISE_SPREAD * statistics.median(steps) / slowdown
    # The round's quartile and the base's both wander by about spread / sqrt(n).
    return max(MIN_MARGIN, NOISE_Z * spread * math.sqrt(1 / len(ratios) + 1 / counted))
