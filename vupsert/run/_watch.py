"""A watcher that tells the events, every so often while nothing settles, what the run
waits for (the senders' :class:`~vupsert.run._sending.Activity`): a log never goes silent
for long while the run waits on 429s, retries or a slow server.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from ..outcomes import Events, tell
from ._sending import Activity

WAITING_EVERY = 30.0
"""Seconds without a batch settling between two lines that say what the run waits for."""


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
