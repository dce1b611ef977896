from __future__ import annotations

import random
import threading
from collections.abc import Callable

import orjson
import pytest

from vupsert.records import Batch, Position, Record
from vupsert.run._batching import as_fresh, batch_of
from vupsert.run._sending import Abandoned, Fatal, Sender
from vupsert.transport import Answer, Kind, RetryPolicy, Throttle

OK = Answer(Kind.OK, 200, "Success")


class FakeClient:
    """Answers each upsert with ``script(ids)``; records every body sent."""

    def __init__(self, script: Callable[[list[str]], Answer]) -> None:
        self.script = script
        self.bodies: list[bytes] = []

    def upsert(self, body: bytes) -> Answer:
        self.bodies.append(body)
        return self.script([r["id"] for r in orjson.loads(body)])


def make_batch(n: int) -> Batch:
    records = [
        Record(
            id=f"r{i}",
            body=orjson.dumps({"id": f"r{i}", "data": "x"}),
            source="in.jsonl",
            line=i,
            end=Position(i, i),
        )
        for i in range(1, n + 1)
    ]
    return batch_of(
        1, [as_fresh(r) for r in records], first_where="in.jsonl:1", last_where=f"in.jsonl:{n}"
    )


def sender(client: FakeClient, retries: int = 3, sleeps: list[float] | None = None) -> Sender:
    waits = sleeps if sleeps is not None else []

    def sleep(seconds: float) -> bool:
        waits.append(seconds)
        return False

    # Past the run's first request, which would go with one record alone.
    throttle = Throttle(4)
    started = throttle.acquire(lambda: False)
    assert started is not None
    throttle.release(started, OK)
    return Sender(
        client,  # type: ignore[arg-type]
        throttle,
        RetryPolicy(retries=retries, base=0.5, max_backoff=8),
        drain=threading.Event(),
        rng=random.Random(1),
        sleep=sleep,
    )


def test_success_sends_the_prebuilt_body_once() -> None:
    client = FakeClient(lambda ids: OK)
    batch = make_batch(5)
    s = sender(client).send(batch)
    assert s.upserted == 5 and not s.rejected and s.attempts == 1 and s.retries == 0
    assert client.bodies == [batch.body]
    assert s.outcome == "upserted"


def test_transient_failures_are_retried_with_the_same_body() -> None:
    answers = iter([Answer(Kind.TRANSIENT, 503, "busy"), Answer(Kind.TRANSIENT, None, "reset"), OK])
    client = FakeClient(lambda ids: next(answers))
    waits: list[float] = []
    s = sender(client, sleeps=waits).send(make_batch(3))
    assert s.upserted == 3 and s.retries == 2 and s.attempts == 3
    assert len(set(client.bodies)) == 1
    assert len(waits) == 2 and all(0 <= w <= 8 for w in waits)


def test_retry_after_is_a_floor_for_the_wait() -> None:
    answers = iter([Answer(Kind.TRANSIENT, 429, "slow down", retry_after=0.3), OK])
    waits: list[float] = []
    sender(FakeClient(lambda ids: next(answers)), sleeps=waits).send(make_batch(1))
    assert waits and waits[0] >= 0.3


def test_giving_up_rejects_every_record_with_the_last_error() -> None:
    client = FakeClient(lambda ids: Answer(Kind.TRANSIENT, 500, "boom"))
    s = sender(client, retries=2).send(make_batch(4))
    assert s.upserted == 0 and len(s.rejected) == 4 and s.attempts == 3
    assert s.rejected[0].reason == "gave up after 3 attempts: boom"
    assert s.rejected[0].status == 500
    assert s.outcome == "failed"


@pytest.mark.parametrize("bad", [[7], [1, 1000], [3, 500, 501, 998]])
def test_refusal_is_bisected_down_to_the_bad_records(bad: list[int]) -> None:
    bad_ids = {f"r{i}" for i in bad}

    def script(ids: list[str]) -> Answer:
        if bad_ids & set(ids):
            return Answer(Kind.REFUSED, 400, "cannot embed")
        return OK

    client = FakeClient(script)
    s = sender(client).send(make_batch(1000))
    assert sorted(r.id or "" for r in s.rejected) == sorted(bad_ids)
    assert s.upserted == 1000 - len(bad)
    assert all(r.status == 400 and r.reason == "cannot embed" for r in s.rejected)
    # Bounded cost: about 2*log2(1000) ~ 20 extra requests per bad record.
    assert len(client.bodies) <= 1 + 2 * 10 * len(bad)
    assert s.outcome == "partial"


def test_fatal_answer_raises() -> None:
    client = FakeClient(lambda ids: Answer(Kind.FATAL, 401, "Unauthorized"))
    with pytest.raises(Fatal) as caught:
        sender(client).send(make_batch(2))
    assert caught.value.answer.status == 401
    assert len(client.bodies) == 1


def test_fatal_answer_abandons_before_freeing_its_slot() -> None:
    # Another sender waiting for the slot must see the run abandoned when it gets it, or a
    # refused token meets a second request.
    client = FakeClient(lambda ids: Answer(Kind.FATAL, 401, "Unauthorized"))
    s = sender(client)
    seen: list[bool] = []
    release = s.throttle.release

    def watched(started: float, answer: Answer, size: int = 1) -> None:
        seen.append(s.drain.is_set())
        release(started, answer, size)

    s.throttle.release = watched  # type: ignore[method-assign]
    with pytest.raises(Fatal):
        s.send(make_batch(2))
    assert seen == [True]


def test_abandon_stops_a_backoff() -> None:
    client = FakeClient(lambda ids: Answer(Kind.TRANSIENT, 503, "busy"))
    abandon = threading.Event()
    waits: list[float] = []

    def sleep(seconds: float) -> bool:
        # The run is abandoned during the first wait: the backoff ends there.
        waits.append(seconds)
        abandon.set()
        return True

    patient = Sender(
        client,  # type: ignore[arg-type]
        Throttle(4),
        RetryPolicy(retries=5),
        drain=abandon,
        rng=random.Random(1),
        sleep=sleep,
    )
    with pytest.raises(Abandoned):
        patient.send(make_batch(1))
    assert len(waits) == 1 and len(client.bodies) == 1


def test_backoff_is_capped_full_jitter() -> None:
    policy = RetryPolicy(retries=20, base=0.5, max_backoff=4)
    rng = random.Random(0)
    delays = [policy.delay(a, rng, None) for a in range(1, 200)]
    assert max(delays) <= 4 and min(delays) >= 0
    assert max(delays[:1]) <= 0.5
