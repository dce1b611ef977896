"""When 429s mean a quota is used up, not a rate to slow down to: the run then stops
rather than wait for a reset that may be a day away.

A rate limit lets some requests through and asks for short waits; a used-up quota (Upstash's
free plan allows 10,000 upserted vectors a day) refuses every request until it resets, and
Upstash does not say when. :class:`QuotaWatch` tells them apart, from the answers alone:

- a 429 whose text names a quota (``ERR max daily updates limit exceeded``: "daily",
  "monthly", "quota") is one at once;
- a 429 whose ``Retry-After`` asks for longer than ``throttled_timeout`` is one at once;
- otherwise, nothing has landed for ``throttled_timeout`` seconds since the first 429
  after the last success, and the latest answer is a 429 again.

The pacing (:mod:`~vupsert.transport._pacing`) slows down for each 429 whatever this says;
the watch only decides when waiting has no point.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from ..config import option
from ..errors import QuotaExhausted
from ._answers import Answer, Kind

QUOTA_WORDS = re.compile(r"\b(daily|monthly|quota)\b", re.IGNORECASE)
"""What a 429's text says when it is a quota, not a rate: Upstash answers ``ERR max daily
updates limit exceeded`` (Vector) or ``ERR max daily request limit exceeded`` (Redis)."""

RESET_ADVICE = (
    "Upstash does not say when a quota resets; a daily one (the free plan allows 10,000 "
    "upserted vectors a day) is worth trying again on the next UTC day."
)


def names_a_quota(answer: Answer) -> bool:
    """Whether ``answer`` is a 429 whose text says a quota is used up."""
    return answer.status == 429 and QUOTA_WORDS.search(answer.message) is not None


@dataclass(frozen=True)
class QuotaSpent:
    """Why the watch decided that the index's quota is used up."""

    reason: Literal["said", "retry_after", "stalled"]
    message: str
    """The text of the 429 that decided it."""
    waited: float
    """Seconds since the first 429 after the last success."""
    bound: float
    """``throttled_timeout``, as the watch had it."""
    retry_after: float | None = None

    def describe(self) -> str:
        """Why, in a few words: what a stop's message says after ``looks used up:``."""
        quoted = f'429 "{self.message.rstrip(".")}"'
        bound = option("throttled_timeout", round(self.bound))
        if self.reason == "said":
            return f"the index answers {quoted}"
        if self.reason == "retry_after":
            return (
                f"the index answers {quoted} and asks to wait {self.retry_after or 0:,.0f} s, "
                f"longer than {bound} waits"
            )
        return f"nothing has landed for {self.waited:,.0f} s and every answer is {quoted} ({bound})"


class QuotaWatch:
    """Reads every answer a command's requests get (from any thread) and says when waiting
    out 429s has no point: :attr:`spent` is then set, for good."""

    def __init__(self, timeout: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.timeout = timeout
        """``throttled_timeout``: seconds of nothing but 429s before a run gives up."""
        self._clock = clock
        self._lock = threading.Lock()
        self._since: float | None = None
        """When the first 429 after the last success came; ``None`` after a success."""
        self.spent: QuotaSpent | None = None

    def answered(self, answer: Answer) -> QuotaSpent | None:
        """Take ``answer`` into account; the verdict, once the quota looks used up."""
        with self._lock:
            if self.spent is not None:
                return self.spent
            if answer.kind is Kind.OK:
                self._since = None
                return None
            if answer.status != 429:
                return None
            now = self._clock()
            if self._since is None:
                self._since = now
            waited = now - self._since
            if names_a_quota(answer):
                self.spent = QuotaSpent("said", answer.message, waited, self.timeout)
            elif answer.retry_after is not None and answer.retry_after > self.timeout:
                self.spent = QuotaSpent(
                    "retry_after", answer.message, waited, self.timeout, answer.retry_after
                )
            elif waited >= self.timeout:
                self.spent = QuotaSpent("stalled", answer.message, waited, self.timeout)
            return self.spent

    def stops_in(self) -> float | None:
        """Seconds left before a run that gets nothing but 429s gives up; ``None`` while
        no 429 has come since the last success."""
        with self._lock:
            if self._since is None or self.spent is not None:
                return None
            return max(0.0, self.timeout - (self._clock() - self._since))


def quota_error(spent: QuotaSpent, outcome: str, carry_on: str) -> QuotaExhausted:
    """The error that stops a command once its index's quota looks used up: why, what
    became of the work (``outcome``), and how to carry on after the reset (``carry_on``)."""
    return QuotaExhausted(
        f"The index's quota looks used up: {spent.describe()}. {outcome}".rstrip(),
        hint=f"{RESET_ADVICE} {carry_on}",
    )
