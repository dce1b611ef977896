"""The throttle through what it does: requests started, against a simulated server.

The server is the local server's own fault model (rate limiters, capacity, latency) on a
clock the test moves, with as many senders as the concurrency allows, each sending again
as soon as its request is answered (after a 429, once Retry-After has passed). Nothing
here sleeps: thirty simulated seconds take a fraction of a real one.
"""

from __future__ import annotations

import heapq
import itertools
import random
import statistics
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import orjson
import pytest

from vupsert.config.settings import CONCURRENCY
from vupsert.run._batching import batch_of
from vupsert.run._sending import Sender
from vupsert.transport import Answer, Kind, RetryPolicy, Throttle
from vupsert_server import ServerConfig
from vupsert_server._config import RateLimiter
from vupsert_server._faults import Faults

from .conftest import ROOT

OK = Answer(Kind.OK, 200, "Success")
TICK = 0.001
README = ROOT / "README.md"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def never() -> bool:
    return False


@dataclass
class Sent:
    start: float
    """Seconds since the simulation began."""
    end: float
    status: int


@dataclass
class Run:
    sent: list[Sent] = field(default_factory=list, repr=False)
    load: list[int] = field(default_factory=list, repr=False)
    """Writes in flight at the server, each millisecond."""

    def ok_per_second(self, start: float, end: float) -> float:
        done = [s for s in self.sent if s.status == 200 and start <= s.end < end]
        return len(done) / (end - start)

    def refused(self) -> float:
        return sum(s.status == 429 for s in self.sent) / len(self.sent)

    def in_flight(self, start: float, end: float) -> list[int]:
        """Writes in flight at the server, each millisecond between the two times."""
        return self.load[round(start / TICK) : round(end / TICK)]


def simulate(
    config: ServerConfig,
    seconds: float,
    *,
    concurrency: int = 64,
    sizes: Iterable[int] = (1000,),
    slower: Callable[[float], float] = lambda t: 1.0,
    overloaded: int = 0,
) -> Run:
    """Senders that always have a batch to send, against ``config``'s faults.

    A write of ``n`` records takes ``faults.delay(n, in flight)`` times ``slower(t)``;
    with ``overloaded``, a write that arrives with more in flight is answered 503.
    """
    clock = Clock()
    faults = Faults(config, clock=clock)
    throttle = Throttle(concurrency, clock=clock)
    began, run = clock.now, Run()
    answers: list[tuple[float, int, float, int, int, float]] = []
    back: list[float] = []
    free, order, at_server = concurrency, itertools.count(), 0
    size = itertools.cycle(sizes) if isinstance(sizes, tuple) else iter(sizes)
    for _ in range(round(seconds / TICK)):
        now = clock.now
        while answers and answers[0][0] <= now:
            _, _, started, status, records, retry_after = heapq.heappop(answers)
            if status == 429:
                answer = Answer(Kind.TRANSIENT, 429, "limited", retry_after=retry_after)
                heapq.heappush(back, now + retry_after)
            elif status == 503:
                at_server -= 1
                answer = Answer(Kind.TRANSIENT, 503, "busy")
                heapq.heappush(back, now + 0.2)
            else:
                at_server -= 1
                answer, free = OK, free + 1
            throttle.release(started, answer, records)
        while back and back[0] <= now:
            heapq.heappop(back)
            free += 1
        while free:
            start = throttle.try_acquire()
            if start is None:
                break
            # Senders start one after another, as threads do, a microsecond apart.
            clock.now += 1e-6
            free -= 1
            records = next(size)
            wait = faults.admit()
            if wait is not None:
                heapq.heappush(answers, (now + 0.002, next(order), start, 429, records, wait))
                run.sent.append(Sent(now - began, now + 0.002 - began, 429))
                continue
            at_server += 1
            status = 503 if overloaded and at_server > overloaded else 200
            end = now + faults.delay(records, at_server) * slower(now - began)
            heapq.heappush(answers, (end, next(order), start, status, records, 0.0))
            run.sent.append(Sent(now - began, end - began, status))
        run.load.append(at_server)
        clock.now += TICK
    return run


def test_starts_with_one_request_then_opens_up() -> None:
    clock = Clock()
    t = Throttle(64, clock=clock)
    first = t.acquire(never)
    assert first is not None
    assert t.try_acquire() is None  # a server that refuses everything sees one request
    clock.now += 0.1
    t.release(first, OK, 1000)
    opened = [t.try_acquire() for _ in range(17)]
    assert opened.count(None) == 1 and opened[-1] is None  # 16 at once, not 64


def test_the_first_opening_is_never_above_the_concurrency() -> None:
    t = Throttle(4)
    first = t.acquire(never)
    assert first is not None
    t.release(first, OK, 1000)
    assert [t.try_acquire() is not None for _ in range(5)] == [True] * 4 + [False]


def test_cancelled_acquire_returns_none() -> None:
    t = Throttle(1)
    assert t.acquire(never) is not None
    assert t.acquire(lambda: True) is None


def test_while_latency_holds_requests_in_flight_double_each_round_trip() -> None:
    run = simulate(ServerConfig(latency_ms=100), 2.0)
    # One alone, 16 after its answer, then twice as many each 100 ms round trip.
    assert max(run.in_flight(0, 0.1)) == 1
    assert max(run.in_flight(0.1, 0.2)) == 16
    assert max(run.in_flight(0.2, 0.3)) == 32
    assert max(run.in_flight(0.5, 2.0)) == 64  # and never above --concurrency
    assert run.ok_per_second(1, 2) == pytest.approx(640, rel=0.02)


@pytest.mark.parametrize("capacity", [4, 16, 40])
@pytest.mark.parametrize("jitter", [0.0, 0.2])
def test_settles_near_the_capacity_of_a_server_that_slows_down_when_busy(
    capacity: int, jitter: float
) -> None:
    rng = random.Random(capacity)
    run = simulate(
        ServerConfig(latency_ms=100, capacity=capacity),
        30.0,
        slower=lambda t: rng.uniform(1 - jitter, 1 + jitter),
    )
    if jitter:
        # Answers that vary (as real ones do) stop the doubling within a round trip of
        # the queue forming: the burst at the start stays within reach of the capacity.
        assert max(run.in_flight(0, 5)) <= max(2 * capacity, capacity + 24)
    settled = run.in_flight(5, 30)
    # A few more than the capacity keep the server busy; 64 would make every answer
    # 64 / capacity times slower for nothing.
    assert capacity <= statistics.median(settled) <= capacity + max(4, capacity * 0.25)
    assert max(settled) <= 2 * capacity + 4
    assert run.ok_per_second(5, 30) >= 0.95 * capacity / 0.1


@pytest.mark.parametrize("limiter", ["bucket", "sliding"])
def test_a_rate_limit_is_used_with_few_requests_refused(limiter: RateLimiter) -> None:
    run = simulate(ServerConfig(rate_limit=20, rate_limiter=limiter, latency_ms=5), 30.0)
    # From the very start: the first burst, the pause it earns and the learning count.
    assert run.ok_per_second(0, 30) >= 0.9 * 20
    assert run.refused() <= 0.1
    # A 429 pauses every sender for a second: the limit is probed rarely.
    assert sum(s.status == 429 for s in run.sent if s.start >= 2) <= 3


def test_retry_after_pauses_every_sender() -> None:
    clock = Clock()
    t = Throttle(8, clock=clock)
    first = t.acquire(never)
    assert first is not None
    t.release(first, OK, 1000)
    started = [t.try_acquire() for _ in range(2)]
    assert started[0] is not None and started[1] is not None
    t.release(started[0], Answer(Kind.TRANSIENT, 429, "limited", retry_after=2.0), 1000)
    clock.now += 1.9
    assert t.try_acquire() is None  # not only the sender that was told
    clock.now += 0.2
    assert t.try_acquire() is not None


@pytest.mark.parametrize(("status", "left"), [(429, 8), (503, 8), (500, 12), (None, 12)])
def test_a_429_or_503_halves_the_requests_in_flight_another_failure_takes_a_quarter(
    status: int | None, left: int
) -> None:
    # Once per round trip: answers to requests sent before the first failure came say
    # nothing new.
    clock = Clock()
    t = Throttle(64, clock=clock)
    first = t.acquire(never)
    assert first is not None
    clock.now += 0.1
    t.release(first, OK, 1000)
    wave = [t.try_acquire() for _ in range(16)]
    clock.now += 0.1
    busy = Answer(Kind.TRANSIENT, status, "busy")
    for started in wave[:4]:
        assert started is not None
        t.release(started, busy, 1000)
    for started in wave[4:]:
        assert started is not None
        t.release(started, OK, 1000)
    # Whatever the pace after a 429, no more start until one is answered.
    in_flight = 0
    for _ in range(100):
        clock.now += 0.1
        in_flight += t.try_acquire() is not None
    assert in_flight == left


def test_a_server_answering_503_when_overloaded_is_not_overloaded_for_long() -> None:
    run = simulate(ServerConfig(latency_ms=100), 30.0, overloaded=12)
    late = [s for s in run.sent if s.start >= 5]
    assert sum(s.status == 503 for s in late) / len(late) <= 0.05
    assert run.ok_per_second(5, 30) >= 0.75 * 12 / 0.1


def test_a_server_slower_for_good_is_not_mistaken_for_a_queue() -> None:
    # Every answer three times slower from t = 10 s, however few are in flight: the
    # fastest latency seen before no longer comes, and is measured again.
    run = simulate(
        ServerConfig(latency_ms=100, capacity=8),
        60.0,
        slower=lambda t: 3.0 if t >= 10 else 1.0,
    )
    assert run.ok_per_second(30, 60) >= 0.9 * 8 / 0.3
    assert statistics.median(run.in_flight(30, 60)) <= 8 + 4


def test_small_requests_are_not_taken_for_fast_answers() -> None:
    # A split answers faster because it is small: the full requests after it are not
    # slower because of a queue.
    config = ServerConfig(latency_ms=10, latency_per_record_ms=0.1)
    run = simulate(config, 5.0, sizes=(1000,) * 100 + (10,))
    assert statistics.median(run.in_flight(2, 5)) == 64


def test_a_small_first_request_is_no_base_for_full_ones() -> None:
    # The run's first request holds one record and is answered in 50 ms; a full one
    # takes 250 ms however few are in flight.
    config = ServerConfig(latency_ms=50, latency_per_record_ms=0.2)
    run = simulate(config, 5.0, sizes=itertools.chain([1], itertools.repeat(1000)))
    assert statistics.median(run.in_flight(2, 5)) == 64


class Bodies:
    """A client that answers every upsert with success and keeps what it was sent."""

    def __init__(self) -> None:
        self.sent: list[list[str]] = []

    def upsert(self, body: bytes) -> Answer:
        self.sent.append([r["id"] for r in orjson.loads(body)])
        return OK


def test_until_a_request_succeeds_a_batch_sends_its_first_record_alone() -> None:
    client = Bodies()
    sender = Sender(
        client,  # type: ignore[arg-type]
        Throttle(64),
        RetryPolicy(),
        drain=threading.Event(),
    )
    fresh = [(f"r{i}", b'{"id":"r%d","data":"x"}' % i, "in.jsonl", i, i, i) for i in range(4)]
    first = sender.send(batch_of(1, fresh[:3]))
    second = sender.send(batch_of(2, fresh[3:] + fresh[:1]))
    assert client.sent == [["r0"], ["r1", "r2"], ["r3", "r0"]]
    assert first.upserted == 3 and first.requests == 2 and second.requests == 1
    assert first.attempts == second.attempts == 1  # the record sent alone is no retry


def test_the_readme_gives_the_default_concurrency() -> None:
    row = next(line for line in README.read_text().splitlines() if "`--concurrency`" in line)
    assert f"(default {CONCURRENCY})" in row


def test_a_queue_far_too_long_to_be_noise_is_emptied_in_one_step() -> None:
    # The opening burst of 16 at a server that takes 2 at full speed: halving once a
    # round trip would take seconds to come down; the queue says at once by how much.
    rng = random.Random(2)
    run = simulate(
        ServerConfig(latency_ms=50, capacity=2), 2.0, slower=lambda t: rng.uniform(0.9, 1.1)
    )
    assert statistics.median(run.in_flight(1, 2)) <= 2 * 2 + 4


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_noisy_latency_is_not_taken_for_a_queue(seed: int) -> None:
    # Each answer takes 50 ms + 2 ms a record, times anything from 0.5 to 1.5: the
    # fastest answer is half the typical one without any queue. All 64 in flight give
    # 64 batches per 2.05 s; fewer give fewer, and nothing is gained by waiting.
    rng = random.Random(seed)
    run = simulate(
        ServerConfig(latency_ms=50, latency_per_record_ms=2),
        30.0,
        slower=lambda t: rng.uniform(0.5, 1.5),
    )
    assert statistics.median(run.in_flight(8, 30)) >= 0.8 * 64
    assert run.ok_per_second(8, 30) >= 0.8 * 64 / 2.05


def test_a_queue_behind_noisy_latency_is_still_found() -> None:
    # The same noise, at a server that takes 24 writes at full speed and slows down
    # beyond: the limit settles near 24 rather than at 64 (every answer 2.7 times
    # slower for nothing) or far below (answers per second lost).
    rng = random.Random(24)
    run = simulate(
        ServerConfig(latency_ms=100, capacity=24),
        40.0,
        slower=lambda t: rng.uniform(0.5, 1.5),
    )
    settled = run.in_flight(10, 40)
    assert 0.75 * 24 <= statistics.median(settled) <= 24 + 12
    assert run.ok_per_second(10, 40) >= 0.85 * 24 / 0.1


@pytest.mark.parametrize("jitter", [0.0, 0.5])
def test_batches_of_different_sizes_are_not_taken_for_a_queue(jitter: float) -> None:
    # Every other batch is ten times larger, and takes ten times longer: a queue to a
    # client that compared their latencies with each other's.
    rng = random.Random(10)
    config = ServerConfig(latency_ms=10, latency_per_record_ms=0.1)
    run = simulate(
        config, 20.0, sizes=(1000, 10_000), slower=lambda t: rng.uniform(1 - jitter, 1 + jitter)
    )
    assert statistics.median(run.in_flight(5, 20)) >= 0.8 * 64


def test_a_stall_while_the_base_is_first_measured_does_not_hide_a_queue_for_long() -> None:
    # The machine stalls for the first second (every answer five times slower, as on a
    # busy box): the latency then is no base. The server takes 2 writes at full speed;
    # the queue after the stall is read against the stalled base until the base is
    # measured again, and then the server is not piled on.
    run = simulate(
        ServerConfig(latency_ms=50, capacity=2), 25.0, slower=lambda t: 5.0 if t < 1 else 1.0
    )
    assert statistics.median(run.in_flight(15, 25)) <= 2 + 6
    assert run.ok_per_second(15, 25) >= 0.9 * 2 / 0.05
