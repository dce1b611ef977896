"""Settlements -> the summary's counts and, in batch order, the rejects file, the
rejections shown, and the checkpoint.

Batches settle in any order, on any sender thread. The counts are kept under a lock
that guards nothing else; the ordered writes (the rejects file, the checkpoint and their
fsyncs) and the events happen outside it, one writer at a time, each writer taking every
batch whose turn has come. Only the prefix of settled batches is ever recorded, so after
a crash a rerun re-sends at most what was in flight. In a chunked run the counts are by
input record (:class:`~vupsert.run._documents.Documents`), and the checkpoint stops for good
before a batch whose records' stale chunks could not be deleted, so that a rerun does it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from ..config import option
from ..errors import FailFastError, OutputError, StoppedEarly, UsageError, VupsertError
from ..outcomes import Events, Settlement, Summary, Tally
from ..records import Position, Rejection
from ._checkpoint import Checkpoint
from ._documents import Documents
from ._rejects import RejectsWriter, rerun_advice

CHECKPOINT_EVERY = 2.0
"""Seconds between checkpoint writes while running."""


class Ledger:
    def __init__(
        self,
        summary: Summary,
        events: Events,
        *,
        rejects: RejectsWriter | None,
        checkpoint: Checkpoint | None,
        input_order: Callable[[Rejection], tuple[int, int]],
        fail_fast: bool,
        stop: Callable[[], None],
        documents: Documents | None = None,
    ) -> None:
        self.summary = summary
        self.events = events
        self._rejects = rejects
        self._checkpoint = checkpoint
        self._input_order = input_order
        self._fail_fast = fail_fast
        self._stop = stop
        self._documents = documents
        self._counts = threading.Lock()
        self._writing = threading.Lock()
        """Held by the one thread that writes what is settled, in order."""
        self._done: dict[int, tuple[dict[int, tuple[int, Position]], list[Rejection], bool]] = {}
        """Settled batches waiting for an earlier one: what their turn needs, without
        their bodies (a batch in a long retry would otherwise hold every later one), and
        whether the checkpoint must stop before them."""
        self._next = 1
        self._unwritable = False
        """An output could not be written: the settled prefix no longer moves."""
        self._held = False
        """Stale chunks could not be deleted: the checkpoint no longer moves."""
        self._saved_at = 0.0
        """When the checkpoint was last saved: never, so the first batch settled saves it."""

    def settle(self, settlement: Settlement) -> None:
        """Count what became of a batch; write out every batch whose turn has come."""
        batch, summary = settlement.batch, self.summary
        # Before the batch joins the settled prefix: the checkpoint must not pass records
        # whose stale chunks are still being deleted.
        if self._documents is None:
            tally = Tally.of(settlement)
        else:
            tally = self._documents.settle(settlement)
        rejected = tally.rejected
        if len(rejected) > 1 and settlement.rejected:
            # Splits and fallbacks settle records out of input order.
            rejected.sort(key=self._input_order)
        with self._counts:
            summary.records_upserted += tally.upserted
            summary.records_superseded += tally.superseded
            summary.records_rejected += len(rejected)
            summary.records_stale_chunks += tally.stale_chunks
            summary.chunks_upserted += tally.chunks_upserted
            summary.chunks_rejected += tally.chunks_rejected
            summary.chunks_deleted += tally.chunks_deleted
            summary.requests += settlement.requests
            summary.retries += settlement.retries
            if settlement.requests:
                summary.batches_sent += 1
            if settlement.rejected:
                summary.batches_failed += 1
            self._done[batch.seq] = (batch.per_input, rejected, tally.hold)
        if settlement.rejected and self._fail_fast:
            self.stopped_by(
                FailFastError(
                    f"batch {batch.seq} ({batch.span}) failed: {settlement.error}",
                    hint=f"Stopped by {option('fail_fast', True)}; what was in flight has settled.",
                )
            )
        with self._writing:
            try:
                self.events.batch_done(settlement, summary)
            except OutputError as exc:
                self._failed(exc)
            self._write_out()

    def count_request(self) -> None:
        """A request whose answer settled no batch (a fatal one)."""
        with self._counts:
            self.summary.requests += 1

    def stopped_by(self, error: VupsertError) -> None:
        """Record why the run stops and stop reading. The first reason wins, except that
        any failure outranks a stop on purpose (``strict``, ``fail_fast``).

        A usage error (exit 2: the options do not fit the input) also holds the
        checkpoint where the last run left it: the same command, its options fixed,
        reads again what this run rejected for them."""
        with self._counts:
            current = self.summary.error
            if current is None or (
                isinstance(current, StoppedEarly) and not isinstance(error, StoppedEarly)
            ):
                self.summary.error = error
        if isinstance(error, UsageError):
            with self._writing:
                self._held = True
        self._stop()

    def close(self) -> None:
        """The last checkpoint; what a rerun does, and the count of rejections that could
        not be written, go into an output's error."""
        with self._writing:
            self._save()
        error, unrecorded = self.summary.error, self.summary.records_unrecorded
        if isinstance(error, OutputError):
            self.summary.error = error.advising(
                rerun_advice(checkpoint=self._checkpoint is not None, rejects=self._rejects),
                unrecorded=unrecorded,
            )

    def _write_out(self) -> None:
        """Write out what is settled, in batch order: rejects, then the checkpoint."""
        with self._counts:
            ready = []
            while self._next in self._done:
                ready.append(self._done.pop(self._next))
                self._next += 1
        for per_input, rejected, hold in ready:
            if hold and not self._held:
                # Saved as it stands, then never again: a rerun starts before this batch.
                self._save()
                self._held = True
            if self._unwritable:
                # Past a failed write nothing is recorded: a rerun must settle it again.
                if self._rejects is not None:
                    self.summary.records_unrecorded += len(rejected)
                continue
            if rejected:
                self.summary.keep_rejections(rejected)
                self.events.rejected(rejected)
                if self._rejects is not None:
                    try:
                        self._rejects.write(rejected)
                    except OutputError as exc:
                        self.summary.records_unrecorded += len(rejected)
                        self._failed(exc)
                        continue
            if self._checkpoint is not None and not self._held:
                for index, (count, end) in per_input.items():
                    self._checkpoint.advance(index, end, count)
        if ready and self._checkpoint is not None:
            now = time.monotonic()
            if now - self._saved_at >= CHECKPOINT_EVERY:
                self._save()
                self._saved_at = now

    def _save(self) -> None:
        if self._checkpoint is None or self._held:
            return
        try:
            if self._rejects is not None:
                self._checkpoint.rejects_offset = self._rejects.offset()
            self._checkpoint.save()
        except OutputError as exc:
            self._failed(exc)

    def _failed(self, error: OutputError) -> None:
        """A file could not be written: stop reading, let what is in flight settle."""
        self._unwritable = True
        self.stopped_by(error)
