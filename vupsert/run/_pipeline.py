"""One run of an upsert, put together: read -> map -> batch -> send -> settle.

:class:`Run` checks the inputs and outputs, talks to the index before anything is sent
(:mod:`~vupsert.run._preflight`), then lets the records flow: :class:`~vupsert.run._reading.Reader`
reads and maps them, :func:`~vupsert.run._batching.batches` groups them,
:class:`~vupsert.run._workers.Workers` send them, and the :class:`~vupsert.run._ledger.Ledger`
counts what became of each batch and writes it out in order.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, BinaryIO

import httpx

from ..config import command, option
from ..config.settings import Settings
from ..errors import ServerError, UsageError, VupsertError
from ..inputs import STDIN
from ..outcomes import Broadcast, Events, NoEvents, Settlement, Stopping, Summary, tell
from ..transport import Client, QuotaSpent, RetryPolicy, fatal_hint, quota_error
from ._batching import Item, batches
from ._columns import check_columns, read_settings
from ._documents import Documents
from ._ledger import Ledger
from ._outputs import Outputs
from ._preflight import new_namespace_warning, preflight
from ._reading import Reader, check_inputs, input_order, total_size
from ._stale_chunks import StaleChunks
from ._watch import QuietWatch
from ._workers import STOP_WAIT, Workers


def check_run(settings: Settings) -> None:
    """What can be found wrong before anything is asked of the index, raised: an input
    that is not there, an output that would destroy an input, a column the options name
    that an input lacks."""
    check_inputs(settings.inputs)
    Outputs(settings).check()
    check_columns(settings)


class Run:
    """Everything one run needs; :meth:`execute` does it and returns the summary.

    Only errors found before anything is read are raised; every later failure is
    recorded on :attr:`Summary.error`, so that the summary is still there to show.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        events: Events | None = None,
        transport: httpx.BaseTransport | None = None,
        stdin: BinaryIO | None = None,
        records: Iterable[Mapping[str, Any]] | None = None,
        seed: int | None = None,
        summary: Summary | None = None,
        select: Callable[[Iterator[Item]], Iterator[Item]] | None = None,
        index_info: dict[str, Any] | None = None,
        warn_whole: bool = True,
        carry_on: str | None = None,
    ) -> None:
        """``summary`` is the object to count in (a sync's has more to count); ``select``
        is a step between reading and batching (a sync's leaves out unchanged records);
        ``index_info`` is ``/info`` when the caller has it already; ``warn_whole`` looks
        for chunked records also stored whole, to warn of them (a sync deletes them);
        ``carry_on`` says how to carry on after a quota resets, when the caller knows
        better than an upsert (a sync: the same command)."""
        self.settings = settings = read_settings(settings, records)
        self.events: Events = events or NoEvents()
        self._transport = transport
        self._stdin = stdin
        self._records = records
        self._rng = random.Random(seed)
        self.summary = summary or Summary(
            namespace=settings.namespace,
            dry_run=settings.dry_run,
            rejects_file=str(settings.rejects) if settings.rejects else None,
            checkpoint=str(settings.checkpoint) if settings.checkpoint else None,
        )
        self._select = select
        self._stop = threading.Event()
        """Stop reading; let what is read be sent."""
        self._drain = threading.Event()
        """Send nothing more, retry nothing; answers in flight still settle."""
        self._abandon = threading.Event()
        """Stop waiting for the answers in flight: their batches are left unsettled."""
        self._stops_asked = 0
        self._workers: Workers | None = None
        self._carry_on = carry_on
        self._quota: QuotaSpent | None = None
        self._index_info = index_info
        self._warn_whole = warn_whole
        self._stale: StaleChunks | None = None
        self.documents: Documents | None = None
        """Counts by input record when records are chunked."""
        self._new_namespace: str | None = None
        """The warning that the namespace is new, said once the first batch goes: a run
        that stops before it sends anything creates nothing."""

    def request_stop(self) -> None:
        """Stop as Ctrl-C asks. First call: read nothing more, send nothing more, retry
        nothing; wait (at most :data:`~vupsert.run._workers.STOP_WAIT` seconds) for the
        answers of requests in flight, whose batches settle. Second call: stop waiting.
        Each is told to the events at once (:meth:`Events.stopping`)."""
        self._stops_asked += 1
        self.summary.interrupted = True
        if self._stops_asked > 1:
            self._abandon.set()
        self._stop.set()
        self._drain.set()
        workers = self._workers
        if workers is not None:
            workers.wake()
        if self._stops_asked == 1:
            if workers is None:
                tell(self.events, "stopping", Stopping(0, STOP_WAIT))
            else:
                tell(self.events, "stopping", Stopping(workers.in_flight, workers.stop_wait))

    def stop_reading(self) -> None:
        """Read nothing more; what was read is sent and settles (a caller's code raised)."""
        self._stop.set()
        if self._workers is not None:
            self._workers.wake()

    def execute(self) -> Summary:
        started = time.monotonic()
        settings = self.settings
        check_run(settings)
        outputs = Outputs(settings)
        client = self._client()
        try:
            if client is not None and settings.preflight:
                self._index_info = preflight(client)
                self._new_namespace = new_namespace_warning(self._index_info, settings.namespace)
            outputs.open(self.events)
            if outputs.report is not None:
                self.events = Broadcast(self.events, outputs.report)
            if settings.mapping.chunk_size is not None:
                self.documents = self._documents(client)
            if outputs.checkpoint is not None and STDIN in settings.inputs:
                self.events.warning(
                    "stdin is checkpointed by position: the rerun must get the same input."
                )
            ledger = Ledger(
                self.summary,
                self.events,
                rejects=outputs.rejects,
                checkpoint=outputs.checkpoint,
                input_order=input_order(settings.inputs),
                fail_fast=settings.fail_fast,
                stop=self._stop.set,
                documents=self.documents,
            )
            try:
                self._flow(client, ledger, outputs)
            finally:
                ledger.close()
                self._stale_said()
            if self._quota is not None:
                # Once everything has settled: the message counts what landed.
                ledger.stopped_by(self._quota_stop(self._quota, outputs))
        finally:
            if client is not None:
                client.close()
            self.summary.elapsed_s = time.monotonic() - started
            outputs.close()
        self.events.finished(self.summary)
        return self.summary

    def _quota_stop(self, spent: QuotaSpent, outputs: Outputs) -> VupsertError:
        """The error of a run stopped by a quota used up: what landed, what did not, and
        how to carry on once it resets without spending the new quota on what landed."""
        summary = self.summary
        landed, pending = summary.records_upserted, summary.records_pending
        outcome = (
            f"{_records(landed)} landed; {pending:,} read are not settled (not sent, or "
            "refused with 429: none is rejected)."
        )
        if self._carry_on is not None:
            carry_on = self._carry_on
        elif not landed:
            carry_on = "Nothing settled: run the same command again once the quota resets."
        elif outputs.checkpoint is not None:
            carry_on = "Then run the same command again: the checkpoint skips what settled."
        else:
            carry_on = (
                f"Without {option('checkpoint')} the same command would send the "
                f"{_records(landed)} that landed again, spending the new quota on them. "
                + self._instead()
            )
        return quota_error(spent, outcome, carry_on)

    def _instead(self) -> str:
        """How to carry on, without a checkpoint, from what the index holds."""
        settings = self.settings
        next_time = (
            f"Next time, give {option('checkpoint', 'PATH')}: the same command then carries on."
        )
        if settings.mapping.shard is not None:
            return next_time
        held = _held_records(self._index_info, settings.namespace)
        keep = (
            f", with {option('max_delete', 0)} (so that it deletes none of the records the "
            "namespace held before)"
            if held
            else ""
        )
        return (
            f"Instead, {command('sync')} of the same inputs with the same options{keep} "
            f"sends only the records the index does not hold as they are. {next_time}"
        )

    def _documents(self, client: Client | None) -> Documents:
        if client is None:
            return Documents(dry_run=True)
        # After each batch, before a later one with the same ids is sent.
        policy = RetryPolicy.of(self.settings)
        self._stale = StaleChunks(client, policy, self.events, whole=self._warn_whole)
        return Documents(tidy=self._stale)

    def _stale_said(self) -> None:
        """The requests the stale chunks took; what they have to say."""
        stale = self._stale
        if stale is None:
            return
        self.summary.requests += stale.requests
        self.summary.retries += stale.retries
        for warning in stale.warnings():
            self.events.warning(warning)

    def _client(self) -> Client | None:
        settings = self.settings
        if settings.dry_run:
            return None
        return Client.for_settings(settings, self._transport)

    def _flow(self, client: Client | None, ledger: Ledger, outputs: Outputs) -> None:
        settings, summary = self.settings, self.summary
        reader = Reader(
            settings,
            summary,
            self.events,
            checkpoint=outputs.checkpoint,
            stopped=self._stop.is_set,
            stdin=self._stdin,
            records=self._records,
            index_info=self._index_info,
        )
        self.events.started(total_size(settings.inputs), settings.inputs)
        if client is None:
            self._read(reader, None, ledger)
            return
        self._workers = workers = Workers(
            client,
            ledger,
            concurrency=settings.concurrency,
            policy=RetryPolicy.of(settings),
            stop=self._stop,
            drain=self._drain,
            abandon=self._abandon,
            rng=self._rng,
        )
        with QuietWatch(workers.activity, self.events, lambda: workers.busy):
            self._read(reader, workers, ledger)
        if workers.crash is not None:
            raise workers.crash
        summary.throttled = workers.throttle.throttled
        self._quota = workers.quota_spent
        if workers.fatal is not None:
            answer = workers.fatal.answer
            ledger.stopped_by(
                ServerError(
                    f"The server answered {answer.status}: {answer.message.rstrip('.')}. "
                    "Stopped sending: no batch can succeed.",
                    status=answer.status,
                    hint=fatal_hint(answer.status or 0),
                )
            )

    def _read(self, reader: Reader, workers: Workers | None, ledger: Ledger) -> None:
        """Read, batch and hand every batch over, until the input ends or the run stops;
        then let what was handed over settle."""
        settings, summary = self.settings, self.summary
        try:
            items = reader.items()
            if self._select is not None:
                items = self._select(items)
            if self.documents is not None:
                items = self.documents.watch(items)
            for batch in batches(
                items, max_records=settings.batch_size, max_bytes=settings.max_batch_bytes
            ):
                summary.batches += 1
                if isinstance(reader.error, UsageError):
                    # Before the batch it ends settles: exit 2 holds the checkpoint.
                    ledger.stopped_by(reader.error)
                if workers is None or not batch.ids:
                    ledger.settle(Settlement(batch, superseded=len(batch.superseded)))
                    continue
                if self._new_namespace is not None:
                    self.events.warning(self._new_namespace)
                    self._new_namespace = None
                if not workers.submit(batch) or self._stop.is_set():
                    break
            if reader.error is not None:
                ledger.stopped_by(reader.error)
        except VupsertError as exc:
            # An input that cannot be opened or mapped at all: what is in flight settles.
            ledger.stopped_by(exc)
        finally:
            if workers is not None and not workers.close():
                tell(
                    self.events,
                    "stopping",
                    Stopping(workers.in_flight, workers.stop_wait, abandoned=True),
                )


def _records(n: int) -> str:
    return "1 record" if n == 1 else f"{n:,} records"


def _held_records(info: dict[str, Any] | None, namespace: str) -> bool:
    """Whether the namespace held records before the run, by ``/info`` (when it was not
    asked: maybe)."""
    namespaces = (info or {}).get("namespaces")
    if not isinstance(namespaces, dict):
        return True
    counts = namespaces.get(namespace)
    return isinstance(counts, dict) and bool(counts.get("vectorCount"))
