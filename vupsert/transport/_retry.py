"""The one retry rule: which answers are tried again (:func:`~vupsert.transport._answers.kind_of`
says which are transient), how long to wait before each try (:class:`RetryPolicy`), how
often one request has been tried (:class:`Tries`).

A transient failure (no answer, a timeout, 5xx, 429) is retried with capped exponential
backoff and full jitter, at least as long as ``Retry-After`` asks; a 429 waits as long as
``Retry-After`` asks (or a short backoff) on a budget of its own, since the shared
throttle is what slows down. Every request follows it: a batch of upserts
(:mod:`vupsert.run._sending`), one request of another endpoint (:class:`Caller`: a page of
``range``, a ``fetch``, a ``delete``), and ``/info`` at start-up (:func:`ride_out`).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from ..config.settings import MAX_BACKOFF, RETRIES, Settings
from ..errors import ServerError
from ._answers import Answer, Kind, fatal_hint, kind_of
from ._client import Client
from ._pacing import Throttle


@dataclass(frozen=True)
class RetryPolicy:
    retries: int = RETRIES
    base: float = 0.5
    max_backoff: float = MAX_BACKOFF
    throttled_retries: int = 100
    """429 answers one request may get before it is given up on."""
    jitter: bool = True
    """Wait a random time up to the backoff (full jitter), not the backoff itself."""

    @classmethod
    def of(cls, settings: Settings) -> RetryPolicy:
        """The retries a run's settings ask for."""
        return cls(retries=settings.retries, max_backoff=settings.max_backoff)

    def wait(self, answer: Answer, tries: Tries, rng: random.Random) -> float | None:
        """Seconds to wait before the request ``answer`` answered is tried again, counted
        in ``tries``; ``None`` once its retries are used up. A 429 waits as long as
        ``Retry-After`` asks (or a short backoff), on a budget of its own: the shared
        throttle is what slows down."""
        if answer.status == 429:
            tries.throttled += 1
            if tries.throttled > self.throttled_retries:
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


class Caller:
    """One request to the index (a page of ``range``, a ``fetch``, a ``delete``), tried until
    it is answered, with the pacing a batch of upserts gets: the shared :class:`Throttle`
    learns the index's rate. Any other answer, or running out of retries, raises
    :class:`~vupsert.errors.ServerError`: these requests have no records to reject one by
    one, so the command stops."""

    def __init__(
        self,
        client: Client,
        policy: RetryPolicy,
        *,
        throttle: Throttle | None = None,
        rng: random.Random | None = None,
        sleep: Callable[[float], object] = time.sleep,
    ) -> None:
        self.client = client
        self.policy = policy
        self.throttle = throttle or Throttle(1)
        self.rng = rng or random.Random()
        self._sleep = sleep
        self.requests = 0
        self.retries = 0
        self.unanswered = 0
        """Attempts that got no answer or a 5xx: a write may have been applied unseen."""

    def call(self, endpoint: str, payload: Any) -> Any:
        """The ``result`` of ``endpoint`` for ``payload``; :class:`ServerError` when the
        index refuses it, or does not answer through every retry."""
        tries = Tries()
        while True:
            started = self.throttle.acquire(_never)
            assert started is not None
            answer = self.client.call(endpoint, payload)
            self.throttle.release(started, answer)
            self.requests += 1
            if answer.kind is Kind.OK:
                return answer.result
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


def _never() -> bool:
    return False


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
