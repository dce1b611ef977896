"""One request to the index (a page of ``range``, a ``fetch``, a ``delete``), tried until
it is answered: the same retries, backoff and pacing as a batch of upserts gets.

A transient failure (no answer, a timeout, 5xx, 429) is retried with the
:class:`~vupsert.run.sending.RetryPolicy`'s backoff, at least as long as ``Retry-After``
asks, 429s on their own budget; the shared :class:`~vupsert.transport.pacing.Throttle` learns the
index's rate. Any other answer, or running out of retries, raises :class:`ServerError`:
these requests have no records to reject one by one, so the command stops.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

from ..errors import ServerError
from ..run.sending import RetryPolicy, Tries
from .client import Client, Kind, fatal_hint
from .pacing import Throttle


class Caller:
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
