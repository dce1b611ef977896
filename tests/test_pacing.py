from __future__ import annotations

from vupsert.client import Answer, Kind
from vupsert.pacing import Throttle

OK = Answer(Kind.OK, 200, "Success")
LIMITED = Answer(Kind.TRANSIENT, 429, "limited", retry_after=1.0)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def never() -> bool:
    return False


def test_starts_with_one_request_then_opens_up() -> None:
    clock = Clock()
    t = Throttle(16, clock=clock)
    assert t.window == 1
    started = t.acquire(never)
    assert started is not None
    t.release(started, OK)
    assert t.window == 16


def test_429_halves_the_window_once_per_round_trip_and_learns_a_rate() -> None:
    clock = Clock()
    t = Throttle(16, clock=clock)
    for _ in range(20):
        s = t.acquire(never)
        assert s is not None
        clock.now += 0.01
        t.release(s, OK)
    assert t.window == 16
    starts = []
    for _ in range(4):
        s = t.acquire(never)
        assert s is not None
        starts.append(s)
    clock.now += 0.01
    for s in starts:
        t.release(s, LIMITED)
    assert t.window == 8  # not 1: the other three were already in flight
    assert t.rate is not None and 15 <= t.rate <= 20  # ~what got through in the last second
    assert t.throttled == 4


def test_cancelled_acquire_returns_none() -> None:
    t = Throttle(1)
    s = t.acquire(never)
    assert s is not None
    assert t.acquire(lambda: True) is None


def test_not_adaptive_keeps_the_full_window() -> None:
    t = Throttle(8, adaptive=False)
    s = t.acquire(never)
    assert s is not None
    t.release(s, LIMITED)
    assert t.window == 8


def test_oks_of_the_first_burst_answered_late_raise_the_first_estimate() -> None:
    clock = Clock()
    t = Throttle(16, clock=clock)
    first = t.acquire(never)
    assert first is not None
    t.release(first, OK)
    burst = [t.acquire(never) for _ in range(16)]
    clock.now += 0.01
    for s in burst[:6]:
        assert s is not None
        t.release(s, OK)
    assert burst[6] is not None
    t.release(burst[6], LIMITED)  # the limit is met while 9 answers are still coming
    early = t.rate
    for s in burst[7:]:
        assert s is not None
        t.release(s, OK)
    assert early is not None and t.rate is not None and t.rate > early
    assert 14 <= t.rate <= 16


def test_rate_grows_faster_the_longer_no_429_comes() -> None:
    clock = Clock()
    t = Throttle(4, clock=clock)
    t._rate, t._last_throttled = 10.0, clock.now
    assert t._growth(clock.now) == 1.02
    assert t._growth(clock.now + 10) == 1.08
    assert t._growth(clock.now + 60) == 1.5
