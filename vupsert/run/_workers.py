"""The sender threads: batches in flight, each sent until it settles.

The reading thread hands batches over a short queue to sender threads that share one
client and one :class:`~vupsert.transport.Throttle`. A sender takes a batch only while fewer
batches are held than the throttle's limit, and threads are started as the limit grows
(up to ``concurrency``): batches in memory follow what the server takes, not the most it
may be asked to take. Reading waits for the network only when the queue is full, which
is what keeps memory flat. A batch whose ids overlap a batch still in flight waits for it
to settle, so that the last occurrence of an id is the one the index keeps, whatever
retries happen.

A run stops in three steps. ``stop``: nothing more is read, what is queued still goes.
``drain`` (a stop asked, a fatal answer, a quota used up): no request starts and nothing
is retried; the answers of requests in flight still settle their batches, for
:data:`STOP_WAIT` seconds at most. ``abandon`` (a second stop, or that wait ran out): the
answers still out are not waited for, and settle nothing.
"""

from __future__ import annotations

import contextvars
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

from ..outcomes import Settlement
from ..records import Batch
from ..transport import OPENING_LIMIT, Client, QuotaSpent, RetryPolicy, Throttle
from ._sending import Abandoned, Activity, Fatal, Sender

STOP_WAIT = 30.0
"""Seconds a draining run waits for the answers of its requests in flight, at most: a
server that takes longer (or a batch that was about to time out) is abandoned."""


class Ledger(Protocol):
    """Where the senders hand what they settle (:class:`~vupsert.run._ledger.Ledger`)."""

    def settle(self, settlement: Settlement) -> None: ...

    def count_request(self) -> None:
        """A request whose answer settled no batch (a fatal one)."""


class Workers:
    def __init__(
        self,
        client: Client,
        ledger: Ledger,
        *,
        concurrency: int,
        policy: RetryPolicy,
        stop: threading.Event,
        drain: threading.Event,
        abandon: threading.Event,
        rng: random.Random,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._ledger = ledger
        self._policy = policy
        self._rng = rng
        self._stop = stop
        """Set: no more batches come; those queued and in flight still settle."""
        self._drain = drain
        """Set: no request starts, nothing is retried; answers in flight still settle."""
        self._abandon = abandon
        """Set: the answers still out are not waited for."""
        self._clock = clock
        self.stop_wait = STOP_WAIT
        """Seconds a draining run waits for the answers in flight."""
        self._drained_at: float | None = None
        self._concurrency = max(1, concurrency)
        self.throttle = Throttle(self._concurrency, grown=self._grown)
        self.quota = policy.quota_watch()
        """Says when 429s mean the index's quota is used up: the run then drains."""
        self.activity = Activity(self.quota)
        self.fatal: Fatal | None = None
        """The answer that means no batch can succeed, if one came."""
        self.crash: BaseException | None = None
        """An exception no sender expected: a bug, raised again by the run."""
        self._claims = threading.Condition()
        self._in_flight: set[str] = set()
        # One lock, two waits: a sender for a batch it may take, the reader for room in
        # the queue. Each is woken alone, as queue.Queue does.
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)
        self._room = threading.Condition(self._lock)
        self._queue: deque[Batch] = deque()
        self._holding = 0
        """Batches a sender has taken and not yet settled."""
        self._idle = 0
        """Senders waiting for a batch (or about to start)."""
        self._closing = False
        self._answered = False
        """A batch has settled: until then the window is one request wide."""
        self._threads: list[threading.Thread] = []
        with self._lock:
            self._spawn()

    def submit(self, batch: Batch) -> bool:
        """Queue ``batch`` once no batch in flight holds one of its ids; False when the
        run stops first."""
        if not self._claim(batch):
            return False
        if not self._put(batch):
            self._release(batch)
            return False
        return True

    @property
    def in_flight(self) -> int:
        """Requests out, waiting for their answers."""
        return self.throttle.in_flight

    @property
    def busy(self) -> bool:
        """Batches are taken or queued: the run waits on the index."""
        return bool(self._holding or self._queue)

    @property
    def quota_spent(self) -> QuotaSpent | None:
        """Why the index's quota looks used up, if it does."""
        return self.quota.spent

    def wake(self) -> None:
        """A stop was asked: a submit waiting for its ids looks again."""
        with self._claims:
            self._claims.notify_all()
        with self._lock:
            self._room.notify_all()

    def close(self) -> bool:
        """Let the senders finish the queue, then wait for them to leave: once the run
        drains, for :data:`STOP_WAIT` seconds at most, then it is abandoned. Whether every
        sender left (``False``: answers were abandoned)."""
        with self._lock:
            self._closing = True
            self._work.notify_all()
        while True:
            with self._lock:
                alive = [t for t in self._threads if t.is_alive()]
            if not alive:
                return True
            if self._abandon.is_set() or self._overdue():
                self._abandon.set()
                return False
            alive[0].join(0.25)

    def _overdue(self) -> bool:
        """Whether the run has drained for longer than :data:`STOP_WAIT`."""
        if not self._drain.is_set():
            return False
        now = self._clock()
        if self._drained_at is None:
            self._drained_at = now
        return now - self._drained_at >= self.stop_wait

    def _spawn(self) -> None:
        """Start one more sender (the caller holds ``_lock``)."""
        sender = Sender(
            self._client,
            self.throttle,
            self._policy,
            drain=self._drain,
            quota=self.quota,
            activity=self.activity,
            rng=random.Random(self._rng.random()),
        )
        # Each thread runs in a copy of this context: messages made there name
        # settings as the caller does (see vupsert.config.option).
        context = contextvars.copy_context()
        thread = threading.Thread(
            target=context.run,
            args=(self._serve, sender),
            name=f"sender-{len(self._threads)}",
            daemon=True,
        )
        self._idle += 1
        self._threads.append(thread)
        thread.start()

    def _grown(self) -> None:
        """The throttle's limit grew in the middle of a batch: queued batches may go."""
        with self._lock:
            self._more_senders()
            if self._takeable() > 0:
                self._work.notify(self._takeable())

    def _more_senders(self) -> None:
        """Start a sender if a queued batch may be taken and nobody is free to take it."""
        if (
            self._queue
            and not self._idle
            and len(self._threads) < self._concurrency
            and self._holding < self.throttle.limit
        ):
            self._spawn()

    def _takeable(self) -> int:
        """Queued batches senders may take now."""
        if self._drain.is_set():
            # Drained, batches are taken only to be dropped: the limit no longer matters.
            return len(self._queue)
        return min(len(self._queue), self.throttle.limit - self._holding)

    def _serve(self, sender: Sender) -> None:
        while True:
            with self._lock:
                while self._takeable() <= 0:
                    if self._closing and not self._queue:
                        self._idle -= 1
                        return
                    self._work.wait(0.25)
                batch = self._queue.popleft()
                self._idle -= 1
                self._holding += 1
                self._more_senders()
                self._room.notify()
                if self._takeable() > 0:
                    self._work.notify()
            try:
                self._send(sender, batch)
            except BaseException as exc:
                # A bug, not a server answer: stop everything and let the run raise it.
                self.crash = exc
                self._stop.set()
                self._drain.set()
                self._abandon.set()
            finally:
                # Whatever happened, a later batch holding one of these ids must not wait.
                self._release(batch)
                with self._lock:
                    self._holding -= 1
                    self._idle += 1
                    self._answered = True
                    # This sender takes one; a limit that grew may let others take more.
                    if self._takeable() > 1:
                        self._work.notify(self._takeable() - 1)

    def _send(self, sender: Sender, batch: Batch) -> None:
        if self._drain.is_set():
            return  # left unsettled: the checkpoint never moves past it
        try:
            settlement = sender.send(batch)
        except Fatal as fatal:
            self._ledger.count_request()
            with self._claims:
                if self.fatal is None:
                    self.fatal = fatal
            # The sender has drained the run already, before freeing its slot.
            self._stop.set()
            return
        except Abandoned:
            if self._drain.is_set():
                self._stop.set()  # a quota used up drains the run from a sender
            return
        if self._abandon.is_set():
            return  # the run no longer waits for this answer: it may have ended
        self.activity.settled()
        self._ledger.settle(settlement)

    def _claim(self, batch: Batch) -> bool:
        # Ids are unique within a batch and a batch waits for every earlier holder of its
        # ids, so an id is held by one batch at a time: plain set operations, in C.
        ids = self._in_flight
        with self._claims:
            while not ids.isdisjoint(batch.ids):
                if self._drain.is_set() or self._stop.is_set():
                    return False
                self._claims.wait(0.25)
            ids.update(batch.ids)
        return True

    def _release(self, batch: Batch) -> None:
        with self._claims:
            self._in_flight.difference_update(batch.ids)
            self._claims.notify_all()

    def _queue_size(self) -> int:
        """Batches the queue holds."""
        if not self._answered:
            # While the first request is out, read what goes once it opens the window.
            return min(self._concurrency, OPENING_LIMIT)
        # A short queue keeps the senders busy (reading is much faster than sending);
        # every queued batch is memory.
        return max(2, self.throttle.limit // 4)

    def _put(self, batch: Batch) -> bool:
        """Queue ``batch`` once there is room; False if the run is abandoned first."""
        with self._lock:
            while len(self._queue) >= self._queue_size():
                if self._drain.is_set():
                    return False
                self._more_senders()
                self._room.wait(0.25)
            self._queue.append(batch)
            self._more_senders()
            if self._takeable() > 0:
                self._work.notify()
        return True
