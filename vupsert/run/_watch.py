"""What a run waits for while nothing settles: the senders' requests and retries
(:class:`Activity`), and a watcher that tells the events every so often
(:class:`QuietWatch`), so that a log never goes silent for long while the run waits on
429s, retries or a slow server.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
from collections.abc import Callable, Iterator

from ..outcomes import Events, Waiting, tell
from ..transport import Answer, Kind, QuotaWatch

WAITING_EVERY = 30.0
"""Seconds without a batch settling between two lines that say what the run waits for."""


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


class QuietWatch:
    """A thread that tells ``events`` what the run waits for, each time ``every`` seconds
    pass without a batch settling while ``busy()`` (batches are out)."""

    def __init__(
        self,
        activity: Activity,
        events: Events,
        busy: Callable[[], bool],
        *,
        every: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._activity = activity
        self._events = events
        self._busy = busy
        self._every = WAITING_EVERY if every is None else every
        self._clock = clock
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="vupsert-watch", daemon=True)

    def __enter__(self) -> QuietWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()

    def _watch(self) -> None:
        told = self._clock()
        tick = min(1.0, self._every / 4)
        while not self._done.wait(tick):
            now = self._clock()
            quiet_since = max(told, self._activity.settled_at)
            if now - quiet_since < self._every - tick:  # never more than ``every`` apart
                continue
            told = now
            if self._busy():
                tell(self._events, "waiting", self._activity.waiting())
