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

from ..config.settings import Settings
from ..errors import ServerError, UsageError, VupsertError
from ..inputs import STDIN
from ..outcomes import Broadcast, Events, NoEvents, Settlement, Summary
from ..transport import Client, RetryPolicy, fatal_hint
from ._batching import Item, batches
from ._columns import check_columns, read_settings
from ._documents import Documents
from ._ledger import Ledger
from ._outputs import Outputs
from ._preflight import new_namespace_warning, preflight
from ._reading import Reader, check_inputs, input_order, total_size
from ._stale_chunks import StaleChunks
from ._workers import Workers


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
    ) -> None:
        """``summary`` is the object to count in (a sync's has more to count); ``select``
        is a step between reading and batching (a sync's leaves out unchanged records);
        ``index_info`` is ``/info`` when the caller has it already; ``warn_whole`` looks
        for chunked records also stored whole, to warn of them (a sync deletes them)."""
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
        """Stop reading; let batches in flight finish."""
        self._abandon = threading.Event()
        """Stop at once; batches in flight are left unsettled."""
        self._workers: Workers | None = None
        self._index_info = index_info
        self._warn_whole = warn_whole
        self._stale: StaleChunks | None = None
        self.documents: Documents | None = None
        """Counts by input record when records are chunked."""
        self._new_namespace: str | None = None
        """The warning that the namespace is new, said once the first batch goes: a run
        that stops before it sends anything creates nothing."""

    def request_stop(self) -> None:
        """First call: finish what is in flight. Second call: abandon it."""
        if self._stop.is_set():
            self._abandon.set()
        self._stop.set()
        self.summary.interrupted = True
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
        finally:
            if client is not None:
                client.close()
            self.summary.elapsed_s = time.monotonic() - started
            outputs.close()
        self.events.finished(self.summary)
        return self.summary

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
        workers = None
        if client is not None:
            self._workers = workers = Workers(
                client,
                ledger,
                concurrency=settings.concurrency,
                policy=RetryPolicy.of(settings),
                stop=self._stop,
                abandon=self._abandon,
                rng=self._rng,
            )
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
            if workers is not None:
                workers.close()
        if workers is None:
            return
        if workers.crash is not None:
            raise workers.crash
        summary.throttled = workers.throttle.throttled
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
