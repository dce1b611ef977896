"""Send one batch until every record of it is settled: retried, split, or rejected.

- Transient failures (connection, timeout, 5xx, 429) are retried as the one retry rule
  says (:class:`~vupsert.transport.RetryPolicy`). The body is built once and re-sent as
  is. 429s are retried until the :class:`~vupsert.transport.QuotaWatch` says the index's
  quota is used up: the batch is then left unsettled (never rejected), and the run drains.
- Once the run drains (a stop was asked, a fatal answer, a quota used up), no request
  starts and nothing is retried: what a request in flight answers still settles, the
  rest of the batch is left unsettled (:class:`Abandoned`).
- A refusal (400, 413) splits the records in halves, recursively, so only the records
  the server really refuses are rejected: about ``2 * log2(batch size)`` extra requests
  per bad record. The chunks of one input record are never parted: refused together,
  they are rejected together, so the index gets all of them or none.
- A fatal answer (401, 403, 404, 405, 422) raises :class:`Fatal`: no batch can succeed.
- Until a request has succeeded, a batch's first record goes alone: the run's first
  request waits for its answer before any other starts (see :mod:`vupsert.transport._pacing`).
- A record refused for good whose batch held an earlier record with the same id (sent in
  its place: see :attr:`~vupsert.records.Batch.superseded`) falls back to that one, so the
  index ends as if every record had been sent in input order, the refused ones skipped.
"""

from __future__ import annotations

import contextlib
import itertools
import random
import threading
import time
from collections.abc import Callable, Iterator

from ..outcomes import Settlement, Waiting
from ..records import Batch, Fresh, Record, Rejection
from ..transport import Answer, Client, Kind, QuotaWatch, RetryPolicy, Throttle, Tries
from ._batching import batch_of


class Fatal(Exception):
    """The server's answer means no batch can succeed."""

    def __init__(self, answer: Answer) -> None:
        super().__init__(answer.message)
        self.answer = answer


class Abandoned(Exception):
    """The run drains (it sends nothing more): this batch is left unsettled."""


class Activity:
    """The senders' requests in flight and their waits before a retry, and the failed
    answers since a batch last settled. Safe to share between threads."""

    def __init__(
        self, quota: QuotaWatch | None = None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._quota = quota
        self._clock = clock
        self._lock = threading.Lock()
        self._out: dict[int, float] = {}
        """When each request in flight started, by a number of its own."""
        self._numbers = itertools.count()
        self._retrying = 0
        self._throttled = 0
        self._failed = 0
        self._last_error: str | None = None
        self.settled_at = clock()
        """When a batch last settled (or the run began)."""

    def sending(self, started: float) -> int:
        """A request is out since ``started``: its number, for :meth:`answered`."""
        number = next(self._numbers)
        with self._lock:
            self._out[number] = started
        return number

    def answered(self, number: int, answer: Answer) -> None:
        with self._lock:
            self._out.pop(number, None)
            if answer.kind is Kind.OK:
                return
            if answer.status == 429:
                self._throttled += 1
            else:
                self._failed += 1
                self._last_error = answer.message

    @contextlib.contextmanager
    def retrying(self) -> Iterator[None]:
        """A batch waits before it is sent again."""
        with self._lock:
            self._retrying += 1
        try:
            yield
        finally:
            with self._lock:
                self._retrying -= 1

    def settled(self) -> None:
        """A batch settled: the run moves."""
        with self._lock:
            self.settled_at = self._clock()
            self._throttled = self._failed = 0
            self._last_error = None

    def waiting(self) -> Waiting:
        """What the run waits for, now."""
        now = self._clock()
        with self._lock:
            oldest = min(self._out.values(), default=now)
            waiting = Waiting(
                idle_s=now - self.settled_at,
                requests=len(self._out),
                oldest_s=now - oldest,
                retrying=self._retrying,
                throttled=self._throttled,
                failed=self._failed,
                last_error=self._last_error,
            )
        stops_in = self._quota.stops_in() if self._quota is not None else None
        if stops_in is not None and waiting.throttled:
            waiting = waiting.giving_up_in(stops_in)
        return waiting


class Sender:
    """Sends batches through one client, sharing a throttle with the other senders."""

    def __init__(
        self,
        client: Client,
        throttle: Throttle,
        policy: RetryPolicy,
        *,
        drain: threading.Event,
        quota: QuotaWatch | None = None,
        activity: Activity | None = None,
        rng: random.Random | None = None,
        sleep: Callable[[float], bool] | None = None,
    ) -> None:
        self.client = client
        self.throttle = throttle
        self.policy = policy
        self.drain = drain
        """Set: no request starts, nothing is retried."""
        self.quota = quota or policy.quota_watch()
        self.activity = activity or Activity()
        self.rng = rng or random.Random()
        # Waiting on the event makes a backoff end early when the run drains.
        self._sleep = sleep or drain.wait

    def send(self, batch: Batch) -> Settlement:
        settlement = Settlement(batch, superseded=len(batch.superseded), started=time.monotonic())
        count = len(batch.ids)
        if count > 1 and not self.throttle.proven:
            # The first request waits alone for its answer: one record proves the token
            # and the index as well as a thousand, and is answered sooner.
            first = _record_end(batch, 0, count)
            self._send(batch, 0, first, settlement)
            self._send(batch, first, count, settlement)
        else:
            self._send(batch, 0, count, settlement)
        if batch.superseded and settlement.rejected:
            self._fall_back(batch, settlement)
        settlement.duration = time.monotonic() - settlement.started
        return settlement

    def _fall_back(self, batch: Batch, settlement: Settlement) -> None:
        """Send, for each id whose last record was refused, the record it superseded; and
        so on down each id's records until one lands or none is left."""
        earlier: dict[str, list[Fresh]] = {}
        for record in batch.superseded:
            earlier.setdefault(record[0], []).append(record)
        refused = settlement.rejected
        while True:
            fallback = [earlier[r.id].pop() for r in refused if r.id and earlier.get(r.id)]
            if not fallback:
                return
            settlement.superseded -= len(fallback)
            settled = len(settlement.rejected)
            retry = batch_of(batch.seq, fallback)
            self._send(retry, 0, len(retry.ids), settlement)
            refused = settlement.rejected[settled:]

    def _send(self, batch: Batch, lo: int, hi: int, settlement: Settlement) -> None:
        """Settle records ``lo`` to ``hi - 1`` of ``batch``."""
        if lo >= hi:
            return
        body = batch.part(lo, hi)
        tries = Tries()
        while True:
            started = self.throttle.acquire(self.drain.is_set)
            if started is None:
                raise Abandoned
            out = self.activity.sending(started)
            answer = self.client.upsert(body)
            spent = self.quota.answered(answer)
            if answer.kind is Kind.FATAL or spent is not None:
                # Before the slot is freed: a sender waiting for it must not start another
                # request the server is bound to refuse.
                self.drain.set()
            self.activity.answered(out, answer)
            self.throttle.release(started, answer, len(body))
            settlement.requests += 1
            settlement.status = answer.status
            if answer.kind is Kind.OK:
                settlement.upserted += hi - lo
                return
            if answer.kind is Kind.FATAL:
                raise Fatal(answer)
            if spent is not None:
                raise Abandoned  # not settled: a rerun after the quota resets sends it
            settlement.error, settlement.error_status = answer.message, answer.status
            if answer.kind is Kind.REFUSED:
                middle = _split_point(batch, lo, hi)
                if middle is None:
                    settlement.rejected.extend(
                        _rejection(r, answer.message, answer.status)
                        for r in batch.records_in(lo, hi)
                    )
                    return
                self._send(batch, lo, middle, settlement)
                self._send(batch, middle, hi, settlement)
                return
            delay = self.policy.wait(answer, tries, self.rng)
            if delay is None:
                reason = f"gave up after {tries.total} attempts: {answer.message}"
                settlement.rejected.extend(
                    _rejection(r, reason, answer.status) for r in batch.records_in(lo, hi)
                )
                return
            settlement.retries += 1
            with self.activity.retrying():
                if self._sleep(delay):
                    raise Abandoned


def _parts(batch: Batch, at: int) -> bool:
    """Whether records ``at - 1`` and ``at`` come from different input records: the chunks
    of one record share its source and line, and are never sent apart."""
    return batch.lines[at] != batch.lines[at - 1] or batch.sources[at] != batch.sources[at - 1]


def _record_end(batch: Batch, lo: int, hi: int) -> int:
    """Where the input record of record ``lo`` ends, before ``hi``."""
    at = lo + 1
    while at < hi and not _parts(batch, at):
        at += 1
    return at


def _split_point(batch: Batch, lo: int, hi: int) -> int | None:
    """The place nearest the middle of records ``lo`` to ``hi - 1`` that parts no input
    record's chunks; ``None`` when they are one record's."""
    middle = (lo + hi) // 2
    for distance in range(max(middle - lo, hi - middle)):
        for at in (middle - distance, middle + distance):
            if lo < at < hi and _parts(batch, at):
                return at
    return None


def _rejection(record: Record, reason: str, status: int | None) -> Rejection:
    return Rejection(
        source=record.source,
        line=record.line,
        end=record.end,
        reason=reason,
        body=record.body,
        status=status,
        id=record.id,
        stage="send",
    )
