"""The sender threads: batches in flight, each sent until it settles.

The reading thread hands batches over a short queue to ``concurrency`` threads that share
one client and one :class:`~vupsert.pacing.Throttle`; reading waits for the network only
when the queue is full, which is what keeps memory flat. A batch whose ids overlap a batch
still in flight waits for it to settle, so that the last occurrence of an id is the one
the index keeps, whatever retries happen.
"""

from __future__ import annotations

import contextvars
import queue
import random
import threading
from collections.abc import Callable

from .batching import Batch
from .client import Client
from .ledger import Ledger
from .pacing import Throttle
from .sending import Abandoned, Fatal, RetryPolicy, Sender


class Workers:
    def __init__(
        self,
        client: Client,
        ledger: Ledger,
        *,
        concurrency: int,
        policy: RetryPolicy,
        stop: threading.Event,
        abandon: threading.Event,
        rng: random.Random,
    ) -> None:
        self._ledger = ledger
        self._stop = stop
        """Set: no more batches come; those queued and in flight still settle."""
        self._abandon = abandon
        """Set: batches in flight are left unsettled."""
        self.throttle = Throttle(concurrency)
        self.fatal: Fatal | None = None
        """The answer that means no batch can succeed, if one came."""
        self.crash: BaseException | None = None
        """An exception no sender expected: a bug, raised again by the run."""
        self._claims = threading.Condition()
        self._in_flight: set[str] = set()
        # A short queue keeps the senders busy (reading is much faster than sending);
        # every queued batch is memory.
        self._queue: queue.Queue[Batch | None] = queue.Queue(maxsize=max(2, concurrency // 4))
        self._threads: list[threading.Thread] = []
        for n in range(concurrency):
            seed = rng.random()
            sender = Sender(client, self.throttle, policy, abandon=abandon, rng=random.Random(seed))
            # Each thread runs in a copy of this context: messages made there name
            # settings as the caller does (see vupsert.settings.option).
            context = contextvars.copy_context()
            thread = threading.Thread(
                target=context.run, args=(self._serve, sender), name=f"sender-{n}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def submit(self, batch: Batch) -> bool:
        """Queue ``batch`` once no batch in flight holds one of its ids; False when the
        run stops first."""
        if not self._claim(batch):
            return False
        if not self._put(batch, give_up=self._abandon.is_set):
            self._release(batch)
            return False
        return True

    def wake(self) -> None:
        """A stop was asked: a submit waiting for its ids looks again."""
        with self._claims:
            self._claims.notify_all()

    def close(self) -> None:
        """Let the senders finish the queue, then wait for them to leave."""

        def all_dead() -> bool:
            return not any(t.is_alive() for t in self._threads)

        # Each sender takes one None and leaves; they take batches even when abandoned,
        # so there is room, and a dead one is not waited for.
        for _ in self._threads:
            self._put(None, give_up=all_dead)
        for thread in self._threads:
            while thread.is_alive():
                thread.join(0.25)

    def _serve(self, sender: Sender) -> None:
        while (batch := self._queue.get()) is not None:
            try:
                self._send(sender, batch)
            except BaseException as exc:
                # A bug, not a server answer: stop everything and let the run raise it.
                self.crash = exc
                self._stop.set()
                self._abandon.set()
            finally:
                # Whatever happened, a later batch holding one of these ids must not wait.
                self._release(batch)

    def _send(self, sender: Sender, batch: Batch) -> None:
        if self._abandon.is_set() or self.fatal is not None:
            return  # left unsettled: the checkpoint never moves past it
        try:
            settlement = sender.send(batch)
        except Fatal as fatal:
            self._ledger.count_request()
            with self._claims:
                if self.fatal is None:
                    self.fatal = fatal
            # The sender has abandoned the run already, before freeing its slot.
            self._stop.set()
            return
        except Abandoned:
            return
        self._ledger.settle(settlement)

    def _claim(self, batch: Batch) -> bool:
        # Ids are unique within a batch and a batch waits for every earlier holder of its
        # ids, so an id is held by one batch at a time: plain set operations, in C.
        ids = self._in_flight
        with self._claims:
            while not ids.isdisjoint(batch.ids):
                if self._abandon.is_set() or self._stop.is_set():
                    return False
                self._claims.wait(0.25)
            ids.update(batch.ids)
        return True

    def _release(self, batch: Batch) -> None:
        with self._claims:
            self._in_flight.difference_update(batch.ids)
            self._claims.notify_all()

    def _put(self, item: Batch | None, give_up: Callable[[], bool]) -> bool:
        """Put ``item`` on the queue once there is room; False if ``give_up()`` first."""
        while True:
            try:
                self._queue.put(item, timeout=0.25)
                return True
            except queue.Full:
                if give_up():
                    return False
