"""Fault injection: what a client under test will meet, seeded so that it replays."""

from __future__ import annotations

import bisect
import contextlib
import random
import threading
import time

import httpx
import pytest

from vupsert_server import LocalServer, ServerConfig, ServerConfigError
from vupsert_server._config import RateLimiter
from vupsert_server._faults import Faults

from .conftest import Serve
from .server_helpers import Api, docs


def one(i: int) -> list[dict[str, str]]:
    return [{"id": f"r{i}", "data": f"record {i}"}]


def test_latency_delays_writes_without_blocking_other_connections(serve: Serve) -> None:
    server = serve(latency_ms=300, latency_per_record_ms=2)
    writer, reader = Api(server), Api(server)
    outcome: dict[str, float] = {}

    def write() -> None:
        started = time.perf_counter()
        assert writer.send("/upsert-data", docs(100)).status_code == 200
        outcome["write"] = time.perf_counter() - started

    thread = threading.Thread(target=write)
    thread.start()
    time.sleep(0.05)
    started = time.perf_counter()
    assert reader.send("/info").status_code == 200
    outcome["read"] = time.perf_counter() - started
    thread.join()
    assert outcome["write"] >= 0.3 + 100 * 0.002
    assert outcome["read"] < 0.3


def test_reads_are_never_faulted(serve: Serve) -> None:
    api = Api(serve(fail_rate=1.0, seed=1))
    for path in ("/info", "/list-namespaces"):
        assert api.send(path).status_code == 200
    assert api.send("/fetch", {"ids": ["x"]}).status_code == 200
    assert api.send("/query-data", {"data": "x"}).status_code == 200


def test_fail_rate_answers_5xx_and_half_of_them_after_writing(serve: Serve) -> None:
    server = serve(fail_rate=0.4, seed=11)
    api = Api(server)
    answered_ok: set[str] = set()
    failed: set[str] = set()
    bodies: dict[int, set[str]] = {500: set(), 502: set(), 503: set()}
    for i in range(300):
        response = api.send("/upsert-data", one(i))
        if response.status_code == 200:
            answered_ok.add(f"r{i}")
        else:
            failed.add(f"r{i}")
            bodies[response.status_code].add(response.headers["Content-Type"])
    assert 80 <= len(failed) <= 160
    assert bodies == {500: {"application/json"}, 502: {"text/html"}, 503: {"text/plain"}}
    stored = set(server.records())
    assert answered_ok <= stored
    applied_anyway = stored - answered_ok
    assert applied_anyway <= failed
    assert 0.25 * len(failed) <= len(applied_anyway) <= 0.75 * len(failed)
    stats = server.stats
    assert stats["records_written"] == len(stored)
    assert stats["records_received"] == 300
    assert sum(stats["statuses"].values()) == 300


def test_a_seed_replays_the_same_faults(serve: Serve) -> None:
    def statuses(server: LocalServer) -> list[int]:
        api = Api(server)
        return [api.send("/upsert-data", one(i)).status_code for i in range(40)]

    first = statuses(serve(fail_rate=0.5, seed=5))
    assert first == statuses(serve(fail_rate=0.5, seed=5))
    assert first != statuses(serve(fail_rate=0.5, seed=6))


def test_proxy_style_bodies_are_not_json(serve: Serve) -> None:
    api = Api(serve(fail_rate=1.0, seed=2))
    seen = {}
    for i in range(30):
        response = api.send("/upsert-data", one(i))
        seen[response.status_code] = response.text
    assert set(seen) == {500, 502, 503}
    assert seen[500].startswith('{"error":')
    assert "502 Bad Gateway" in seen[502]
    assert seen[503].startswith("upstream connect error")


def test_rate_limit_answers_429_with_retry_after(serve: Serve) -> None:
    server = serve(rate_limit=10)
    api = Api(server)
    statuses = [api.send("/upsert-data", one(i)) for i in range(15)]
    codes = [r.status_code for r in statuses]
    assert codes.count(200) >= 10
    assert 429 in codes
    refused = next(r for r in statuses if r.status_code == 429)
    assert refused.headers["Retry-After"] == "1"
    assert refused.json() == {
        "error": "Too many requests: the local server allows 10 writes per second",
        "status": 429,
    }
    assert api.send("/info").status_code == 200  # reads are not limited
    time.sleep(0.25)
    assert api.send("/upsert-data", one(99)).status_code == 200
    assert server.stats["records_received"] == 16
    assert server.stats["records_written"] == codes.count(200) + 1


def test_a_slow_rate_limit_asks_for_a_longer_wait(serve: Serve) -> None:
    api = Api(serve(rate_limit=0.25))
    assert api.send("/upsert-data", one(0)).status_code == 200
    refused = api.send("/upsert-data", one(1))
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) == 4


def test_a_daily_quota_refuses_every_write_once_used_up(serve: Serve) -> None:
    server = serve(daily_quota=25)
    api = Api(server)
    codes = [api.send("/upsert-data", docs(10, start=10 * i)).status_code for i in range(3)]
    assert codes == [200, 200, 200]  # the third starts under the quota: applied whole
    refused = api.send("/upsert-data", docs(10, start=30))
    assert refused.status_code == 429
    assert refused.json() == {"error": "ERR max daily updates limit exceeded", "status": 429}
    assert "Retry-After" not in refused.headers  # Upstash says nothing of when it resets
    assert api.send("/delete", {"ids": ["doc0"]}).status_code == 429  # every write
    assert api.send("/fetch", {"ids": ["doc0"]}).status_code == 200  # reads are not counted
    assert len(server.records()) == 30
    assert "daily_quota=25" in server.describe()
    server.set_faults(daily_quota=25)  # a new day
    assert api.send("/upsert-data", docs(10, start=30)).status_code == 200


def test_faulty_reads_meet_the_daily_quota_too(serve: Serve) -> None:
    server = serve(daily_quota=5, faulty_reads=True, quota_message="quota used up")
    api = Api(server)
    assert api.send("/range", {"cursor": "0", "limit": 10}).status_code == 200
    assert api.send("/upsert-data", docs(5)).status_code == 200
    for path, body in (("/range", {"cursor": "0", "limit": 10}), ("/fetch", {"ids": ["a"]})):
        refused = api.send(path, body)
        assert (refused.status_code, refused.json()["error"]) == (429, "quota used up")
    assert api.send("/info").status_code == 200


def test_drop_closes_the_connection_before_or_after_writing(serve: Serve) -> None:
    server = serve(drop_rate=1.0, seed=3)
    api = Api(server)
    for i in range(20):
        with pytest.raises(httpx.RemoteProtocolError):
            api.send("/upsert-data", one(i))
    stats = server.stats
    assert stats["dropped"] == 20
    assert stats["statuses"] == {}
    assert 3 <= len(server.records()) <= 17
    assert api.send("/info").status_code == 200


def test_refuse_matching_names_the_record_and_writes_nothing(serve: Serve) -> None:
    server = serve(refuse_matching="POISON")
    api = Api(server)
    batch = [*docs(2), {"id": "bad-one", "data": "this holds POISON inside"}, *docs(2, start=5)]
    message = api.error("/upsert-data", batch, status=400)
    assert (
        message == 'Invalid record at index 2 (id "bad-one"): the server could not embed this data'
    )
    assert server.records() == {}
    assert server.stats["records_received"] == 5
    assert api.result("/upsert-data", docs(2)) == "Success"


def test_faults_change_at_runtime(serve: Serve) -> None:
    server = serve(seed=1)
    api = Api(server)
    assert api.send("/upsert-data", one(0)).status_code == 200
    server.set_faults(fail_rate=1.0)
    assert server.faults.fail_rate == 1.0
    assert api.send("/upsert-data", one(1)).status_code in (500, 502, 503)
    server.set_faults(fail_rate=0, refuse_matching="record 2")
    assert api.send("/upsert-data", one(2)).status_code == 400
    server.set_faults(refuse_matching=None)
    assert api.send("/upsert-data", one(2)).status_code == 200
    assert server.config.fail_rate == 0  # the initial settings are kept apart
    with pytest.raises(TypeError, match="Not a fault setting: dimension"):
        server.set_faults(dimension=3)
    with pytest.raises(ServerConfigError, match="fail_rate"):
        server.set_faults(fail_rate=2)


def test_stop_wakes_writes_sleeping_on_latency(serve: Serve) -> None:
    server = serve(latency_ms=30_000)
    api = Api(server)
    errors: list[Exception] = []

    def write() -> None:
        try:
            api.send("/upsert-data", one(0))
        except httpx.HTTPError as exc:
            errors.append(exc)

    thread = threading.Thread(target=write)
    thread.start()
    time.sleep(0.1)
    started = time.perf_counter()
    server.stop()
    thread.join(5)
    assert time.perf_counter() - started < 3
    assert len(errors) == 1


def test_stats_count_requests_statuses_and_records(local: LocalServer, api: Api) -> None:
    api.result("/upsert-data", docs(3))
    api.error("/upsert-data", [{"id": ""}], status=400)
    api.send("/upsert", raw=b"not json")
    httpx.post(f"{local.url}/upsert-data", content=b'[{"id": "x", "data": "y"}]')
    api.result("/info")
    stats = local.stats
    assert stats["requests"] == {"upsert-data": 3, "upsert": 1, "info": 1}
    assert stats["statuses"] == {200: 2, 400: 2, 401: 1}
    # Refused requests included, but not the 401's: a body is read only once the token is.
    assert stats["records_received"] == 4
    assert stats["records_written"] == 3
    local.reset_stats()
    assert local.stats == {
        "requests": {},
        "statuses": {},
        "records_received": 0,
        "records_written": 0,
        "dropped": 0,
        "writes_in_flight": 0,
    }


# -- the two rate limiters, on a clock the test moves ----------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def limiter(rate: float, window: RateLimiter) -> tuple[Faults, Clock]:
    clock = Clock()
    return Faults(ServerConfig(rate_limit=rate, rate_limiter=window), clock=clock), clock


def test_a_sliding_window_refuses_the_burst_a_bucket_lets_through() -> None:
    bucket, bucket_clock = limiter(5, "bucket")
    window, window_clock = limiter(5, "sliding")
    for faults in (bucket, window):
        assert [faults.admit() for _ in range(5)] == [None] * 5
        assert faults.admit() == 1  # the sixth in the same instant: 429, Retry-After 1
    # Half a second later the bucket has refilled 2.5 writes; the window holds 5 writes
    # of the last second, so it refuses until a second after the burst.
    bucket_clock.now += 0.5
    window_clock.now += 0.5
    assert [bucket.admit() for _ in range(3)] == [None, None, 1]
    assert window.admit() == 1
    window_clock.now += 0.5
    assert [window.admit() for _ in range(6)] == [None] * 5 + [1]


def test_a_sliding_window_never_admits_more_than_the_rate_in_any_one_second() -> None:
    faults, clock = limiter(20, "sliding")
    rng = random.Random(4)
    admitted: list[float] = []
    for _ in range(2000):
        clock.now += rng.expovariate(60)  # three times the rate, in bursts and lulls
        if faults.admit() is None:
            admitted.append(clock.now)
    for i, start in enumerate(admitted):
        within = bisect.bisect_left(admitted, start + 1.0) - i
        assert within <= 20
    # ...and it lets the rate through: about 20 a second over the run.
    span = admitted[-1] - admitted[0]
    assert len(admitted) >= 0.9 * 20 * span


def test_a_sliding_window_below_one_write_a_second() -> None:
    faults, clock = limiter(0.25, "sliding")
    assert faults.admit() is None
    assert faults.admit() == 4
    clock.now += 3.9
    assert faults.admit() == 1
    clock.now += 0.2
    assert faults.admit() is None


def test_a_sliding_window_at_the_server(serve: Serve) -> None:
    server = serve(rate_limit=3, rate_limiter="sliding")
    assert "rate_limiter=sliding" in server.describe()
    # A slow rate, so that the second write is refused however slow this machine is.
    server.set_faults(rate_limit=0.1)
    api = Api(server)
    assert api.send("/upsert-data", one(0)).status_code == 200
    refused = api.send("/upsert-data", one(1))
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "10"
    assert refused.json()["error"] == (
        "Too many requests: the local server allows one write in any 10 seconds"
    )


# -- a server that slows down as it gets busier -------------------------------------------


def test_capacity_multiplies_the_latency_by_the_writes_in_flight() -> None:
    faults = Faults(ServerConfig(latency_ms=100, latency_per_record_ms=1, capacity=4))
    assert faults.delay(10, in_flight=1) == pytest.approx(0.11)
    assert faults.delay(10, in_flight=4) == pytest.approx(0.11)
    assert faults.delay(10, in_flight=8) == pytest.approx(0.22)
    with faults.in_flight() as first, faults.in_flight() as second:
        assert (first, second) == (1, 2)
        assert faults.writes_in_flight == 2
    assert faults.writes_in_flight == 0
    with pytest.raises(ServerConfigError, match="capacity multiplies the latency"):
        ServerConfig(capacity=4)


def test_a_write_that_piles_on_waits_longer(serve: Serve) -> None:
    server = serve(latency_per_record_ms=60, capacity=2)

    def occupy(i: int) -> None:
        # 1,000 records x 60 ms: in flight until the server stops and drops it.
        with contextlib.suppress(httpx.HTTPError):
            Api(server).send("/upsert-data", docs(1000, prefix=f"b{i}"))

    background = [threading.Thread(target=occupy, args=(i,)) for i in range(3)]
    for thread in background:
        thread.start()
    deadline = time.monotonic() + 10
    while server.stats["writes_in_flight"] < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.stats["writes_in_flight"] == 3
    # It arrives fourth with capacity 2: its 10 records x 60 ms take twice as long.
    started = time.perf_counter()
    assert Api(server).send("/upsert-data", docs(10)).status_code == 200
    assert time.perf_counter() - started >= 10 * 0.060 * 4 / 2
    server.stop()
    for thread in background:
        thread.join()
