"""The one retry rule: which answers are tried again (:func:`~vupsert.transport._answers.kind_of`
says which are transient), how long to wait before each try (:class:`RetryPolicy`), how
often one request has been tried (:class:`Tries`).

A transient failure (no answer, a timeout, 5xx, 429) is retried with capped exponential
backoff and full jitter, at least as long as ``Retry-After`` asks; a 429 waits as long as
``Retry-After`` asks (or a short backoff), with no count of its own: the shared throttle
is what slows down, and a :class:`~vupsert.transport._quota.QuotaWatch` says when 429s
mean a quota used up, which stops the command. Every request follows it: a batch of upserts
(:mod:`vupsert.run._sending`), one request of another endpoint (:class:`Caller`: a page of
``range``, a ``fetch``, a ``delete``), and ``/info`` at start-up (:func:`ride_out`).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from ..config.settings import MAX_BACKOFF, RETRIES, THROTTLED_TIMEOUT, Settings
from ..errors import ServerError
from ._answers import Answer, Kind, fatal_hint, kind_of
from ._client import Client
from ._pacing import Throttle
from ._quota import QuotaWatch, quota_error


@dataclass(frozen=True)
class RetryPolicy:
    retries: int = RETRIES
    base: float = 0.5
    max_backoff: float = MAX_BACKOFF
    throttled_retries: int | None = None
    """429 answers one request may get before it is given up on; ``None``: no count, the
    quota watch (``throttled_timeout``) decides when to stop."""
    jitter: bool = True
    """Wait a random time up to the backoff (full jitter), not the backoff itself."""
    throttled_timeout: float = THROTTLED_TIMEOUT
    """Seconds of nothing but 429s after which the quota looks used up (see
    :class:`~vupsert.transport._quota.QuotaWatch`)."""

    @classmethod
    def of(cls, settings: Settings) -> RetryPolicy:
        """The retries a run's settings ask for."""
        return cls(
            retries=settings.retries,
            max_backoff=settings.max_backoff,
            throttled_timeout=settings.throttled_timeout,
        )

    def quota_watch(self) -> QuotaWatch:
        """A watch over the answers of one command's requests, with this policy's bound."""
        return QuotaWatch(self.throttled_timeout)

    def wait(self, answer: Answer, tries: Tries, rng: random.Random) -> float | None:
        """Seconds to wait before the request ``answer`` answered is tried again, counted
        in ``tries``; ``None`` once its retries are used up. A 429 waits as long as
        ``Retry-After`` asks (or a short backoff), with no budget unless
        ``throttled_retries`` sets one: the shared throttle is what slows down."""
        if answer.status == 429:
            tries.throttled += 1
            if self.throttled_retries is not None and tries.throttled > self.throttled_retries:
                return None
            if answer.retry_after is not None:
                return answer.retry_after
            return self.delay(min(tries.throttled, 4), rng, None)
        tries.failed += 1
        if tries.failed > self.retries:
            return None
        return self.delay(tries.failed, rng, answer.retry_after)

    def delay(self, attempt: int, rng: random.Random, retry_after: float | None) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based)."""
        cap = min(self.max_backoff, self.base * 2 ** (attempt - 1))
        delay = rng.uniform(0, cap) if self.jitter else cap
        if retry_after is not None:
            delay = max(delay, min(retry_after, max(self.max_backoff, 1.0)))
        return delay


@dataclass
class Tries:
    """How often one request has been tried: its transient failures and its 429s."""

    failed: int = 0
    throttled: int = 0

    @property
    def total(self) -> int:
        return self.failed + self.throttled


class Stopped(Exception):
    """A :class:`Caller` was asked to stop (``stop`` is set): no request is sent or retried."""


class Caller:
    """One request to the index (a page of ``range``, a ``fetch``, a ``delete``), tried until
    it is answered, with the pacing a batch of upserts gets: the shared :class:`Throttle`
    learns the index's rate. Any other answer, running out of retries, or a quota that
    looks used up raises :class:`~vupsert.errors.ServerError`: these requests have no
    records to reject one by one, so the command stops. Once ``stop`` is set, the next
    attempt or wait raises :class:`Stopped`."""

    def __init__(
        self,
        client: Client,
        policy: RetryPolicy,
        *,
        throttle: Throttle | None = None,
        quota: QuotaWatch | None = None,
        stop: threading.Event | None = None,
        rng: random.Random | None = None,
        sleep: Callable[[float], object] | None = None,
    ) -> None:
        self.client = client
        self.policy = policy
        self.throttle = throttle or Throttle(1)
        self.quota = quota or policy.quota_watch()
        """Shared with the callers of the same command: one verdict for all."""
        self.stop = stop or threading.Event()
        self.rng = rng or random.Random()
        self._sleep = sleep or self._wait
        self.requests = 0
        self.retries = 0
        self.unanswered = 0
        """Attempts that got no answer or a 5xx: a write may have been applied unseen."""

    def call(self, endpoint: str, payload: Any) -> Any:
        """The ``result`` of ``endpoint`` for ``payload``; :class:`ServerError` when the
        index refuses it, or does not answer through every retry."""
        tries = Tries()
        while True:
            started = self.throttle.acquire(self.stop.is_set)
            if started is None:
                raise Stopped
            answer = self.client.call(endpoint, payload)
            self.throttle.release(started, answer)
            self.requests += 1
            spent = self.quota.answered(answer)
            if answer.kind is Kind.OK:
                return answer.result
            if spent is not None:
                raise quota_error(
                    spent,
                    f"Stopped at a {endpoint} request.",
                    "Then run the same command again.",
                )
            if answer.kind is not Kind.TRANSIENT:
                raise ServerError(
                    f"{endpoint} answered {answer.status}: {answer.message.rstrip('.')}.",
                    status=answer.status,
                    hint=fatal_hint(answer.status or 0),
                )
            if answer.status != 429:
                self.unanswered += 1
            delay = self.policy.wait(answer, tries, self.rng)
            if delay is None:
                raise ServerError(
                    f"{endpoint} gave up after {tries.total} attempts: {answer.message}",
                    status=answer.status,
                    hint="The index did not answer through every retry; run the same "
                    "command again later.",
                )
            self.retries += 1
            self._sleep(delay)
            if self.stop.is_set():
                raise Stopped

    def with_own_pacing(self) -> Caller:
        """A caller of the same client for requests that go beside this one's (a fetch
        ahead of a delete): pacing of its own, the same quota watch and stop."""
        return Caller(self.client, self.policy, quota=self.quota, stop=self.stop, sleep=self._sleep)

    def _wait(self, seconds: float) -> None:
        self.stop.wait(seconds)


T = TypeVar("T")


def ride_out(
    attempt: Callable[[], T],
    policy: RetryPolicy,
    *,
    rng: random.Random | None = None,
    sleep: Callable[[float], object] = time.sleep,
) -> T:
    """What ``attempt()`` returns, tried again as ``policy`` says while the
    :class:`~vupsert.errors.ServerError` it raises is transient (no answer, 429, 5xx);
    the last error, or the first that is not transient, is raised."""
    tries, rng = Tries(), rng or random.Random()
    while True:
        try:
            return attempt()
        except ServerError as exc:
            answer = Answer(kind_of(exc.status), exc.status, exc.message)
            if answer.kind is not Kind.TRANSIENT:
                raise
            delay = policy.wait(answer, tries, rng)
            if delay is None:
                raise
            sleep(delay)


AT_START = RetryPolicy(retries=3, base=1.0, max_backoff=4.0, throttled_retries=3, jitter=False)
"""``/info`` before a command: a transient failure is tried again 1, 2 and 4 s later. A
cron run should not die of a blip that the requests themselves would ride out."""


def index_info(
    client: Client, *, policy: RetryPolicy = AT_START, sleep: Callable[[float], object] = time.sleep
) -> dict[str, Any]:
    """``/info`` of the index, a transient failure (no answer, 429, 5xx) tried again as
    ``policy`` says."""
    return ride_out(client.info, policy, sleep=sleep)
