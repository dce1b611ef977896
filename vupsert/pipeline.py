"""One run of ``vupsert upsert``: read -> map -> batch -> send -> settle.

The calling thread reads, maps and batches; a bounded queue hands batches to sender
threads that share one connection pool and one :class:`~vupsert.pacing.Throttle`. Reading
never waits for the network except when the queue is full, which is what keeps memory
constant. Every batch ends as a :class:`~vupsert.sending.Settlement`; settlements arrive
in any order, and the settled prefix (rejects file, checkpoint) advances in batch order.

A batch whose ids overlap a batch still in flight waits for it, so that the last
occurrence of an id is the one the index keeps, whatever retries happen.
"""

from __future__ import annotations

import os
import queue
import random
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any, BinaryIO, Protocol, TypedDict
from urllib.parse import urlsplit

import httpx

from .batching import Batch, Item, batches
from .checkpoint import Checkpoint, input_key
from .client import FATAL_HINTS, RETRYABLE, Client, check_url, embedding_models
from .columns import check_columns
from .errors import (
    ConfigError,
    ExitStatus,
    FailFastError,
    InputError,
    OutputError,
    PreflightError,
    ServerError,
    StoppedEarly,
    StrictModeError,
    UsageError,
    VupsertError,
)
from .mapping import Mapper
from .outputs import check_outputs, lock_path
from .pacing import Throttle
from .records import Fresh, Position, Record, Rejection, Skip
from .rejects import RejectsWriter
from .sending import Abandoned, Fatal, RetryPolicy, Sender, Settlement
from .settings import Settings, option
from .sources import detect_format, display_name, input_size, iter_json_lines, iter_rows

CHECKPOINT_EVERY = 2.0
"""Seconds between checkpoint writes while running."""


@dataclass
class Summary:
    """The totals of a run; ``as_dict`` is the ``--json`` document."""

    namespace: str = ""
    dry_run: bool = False
    records_read: int = 0
    records_upserted: int = 0
    records_rejected: int = 0
    records_skipped: int = 0
    records_superseded: int = 0
    records_unrecorded: int = 0
    """Rejected, but not written to the rejects file: it could not be written."""
    batches: int = 0
    batches_sent: int = 0
    batches_failed: int = 0
    requests: int = 0
    retries: int = 0
    throttled: int = 0
    elapsed_s: float = 0.0
    interrupted: bool = False
    rejects_file: str | None = None
    checkpoint: str | None = None
    error: VupsertError | None = field(default=None, repr=False)

    @property
    def records_pending(self) -> int:
        """Read but neither upserted, rejected, skipped nor superseded: the run stopped
        early."""
        if self.dry_run:
            return 0
        return max(
            0,
            self.records_read
            - self.records_upserted
            - self.records_rejected
            - self.records_skipped
            - self.records_superseded,
        )

    @property
    def records_valid(self) -> int:
        return self.records_read - self.records_skipped - self.records_rejected

    @property
    def records_per_s(self) -> float:
        done = self.records_read - self.records_skipped - self.records_pending
        return done / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "records_read": self.records_read,
            "records_upserted": self.records_upserted,
            "records_rejected": self.records_rejected,
            "records_skipped": self.records_skipped,
            "records_superseded": self.records_superseded,
            "records_unrecorded": self.records_unrecorded,
            "records_pending": self.records_pending,
            "records_valid": self.records_valid,
            "batches": self.batches,
            "batches_sent": self.batches_sent,
            "batches_failed": self.batches_failed,
            "requests": self.requests,
            "retries": self.retries,
            "throttled": self.throttled,
            "elapsed_s": round(self.elapsed_s, 3),
            "records_per_s": round(self.records_per_s, 1),
            "namespace": self.namespace,
            "dry_run": self.dry_run,
            "interrupted": self.interrupted,
            "rejects_file": self.rejects_file,
            "checkpoint": self.checkpoint,
            "error": str(self.error.message) if self.error else None,
        }


class Events(Protocol):
    """What a run tells the outside world; :mod:`vupsert.report` implements it."""

    def started(self, total_bytes: int | None, inputs: tuple[str, ...]) -> None: ...
    def bytes_read(self, n: int) -> None: ...
    def batch_done(self, settlement: Settlement, summary: Summary) -> None: ...
    def rejected(self, rejections: list[Rejection]) -> None:
        """Records that will not be upserted, in input order, as they are settled."""

    def warning(self, message: str) -> None: ...
    def finished(self, summary: Summary) -> None: ...


class NoEvents:
    def started(self, total_bytes: int | None, inputs: tuple[str, ...]) -> None:
        pass

    def bytes_read(self, n: int) -> None:
        pass

    def batch_done(self, settlement: Settlement, summary: Summary) -> None:
        pass

    def rejected(self, rejections: list[Rejection]) -> None:
        pass

    def warning(self, message: str) -> None:
        pass

    def finished(self, summary: Summary) -> None:
        pass


def preflight(
    client: Client, *, attempts: int = 4, sleep: Callable[[float], None] = time.sleep
) -> dict[str, Any]:
    """Refuse to start when the index cannot embed raw text.

    A transient failure (no answer, 429, 5xx) is tried again a few times, 1, 2 and 4 s
    apart: a cron run should not die of a blip that the upserts themselves would ride out.
    """
    for attempt in range(attempts):
        try:
            info = client.info()
            break
        except ServerError as exc:
            if attempt == attempts - 1 or not (exc.status is None or exc.status in RETRYABLE):
                raise
            sleep(2.0**attempt)
    models = embedding_models(info)
    lacking = [part for part, model in models.items() if model is None]
    if lacking:
        what = (
            "no embedding model"
            if len(models) == 1
            else f"no embedding model for its {' and '.join(lacking)} part"
        )
        raise PreflightError(
            f"The index at {client.base_url} has {what}, so it cannot take raw text: every "
            "upsert-data request would be refused (422).",
            status=422,
            hint=FATAL_HINTS[422] + f" To skip this check, pass {option('no_preflight')}.",
        )
    return info


def warn_of_new_namespace(info: dict[str, Any], namespace: str, events: Events) -> None:
    """Say once when ``namespace`` is not in the index yet: a typo (``-n artciles``)
    would otherwise create a namespace without a word."""
    namespaces = info.get("namespaces")
    if not namespace or not isinstance(namespaces, dict) or namespace in namespaces:
        return
    names = ", ".join(repr(name) for name in sorted(namespaces) if name)
    existing = f"it has {names}" if names else "it has only the default namespace"
    events.warning(
        f"namespace {namespace!r} does not exist in the index yet, so this run creates it; "
        f"{existing} (`vupsert info` lists them)."
    )


class Run:
    """Everything one run needs; ``execute`` does it and returns the summary.

    Only errors that stop the run before anything is read are raised; every later
    failure is recorded on ``Summary.error`` so the summary is still shown.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        events: Events | None = None,
        transport: httpx.BaseTransport | None = None,
        stdin: BinaryIO | None = None,
        seed: int | None = None,
    ) -> None:
        self.settings = settings
        self.events: Events = events or NoEvents()
        self.transport = transport
        self.stdin = stdin
        self.rng = random.Random(seed)
        self.summary = Summary(
            namespace=settings.namespace,
            dry_run=settings.dry_run,
            rejects_file=str(settings.rejects) if settings.rejects else None,
            checkpoint=str(settings.checkpoint) if settings.checkpoint else None,
        )
        self._stop = threading.Event()
        """Stop reading; let batches in flight finish."""
        self._abandon = threading.Event()
        """Stop at once; batches in flight are left unsettled."""
        self._lock = threading.Condition()
        self._in_flight_ids: set[str] = set()
        self._done: dict[int, tuple[dict[int, tuple[int, Position]], list[Rejection]]] = {}
        """Settled batches waiting for an earlier one: what their turn needs, without
        their bodies (a batch in a long retry would otherwise hold every later one)."""
        self._next_seq = 1
        self._fatal: Fatal | None = None
        self._checkpoint: Checkpoint | None = None
        self._rejects: RejectsWriter | None = None
        self._last_save = 0.0
        self._crash: BaseException | None = None
        self._read_error: VupsertError | None = None
        """Why reading ended early, once what was read has been sent."""
        self._unwritable = False
        """An output could not be written: the settled prefix no longer moves."""
        ranks = {display_name(name): rank for rank, name in enumerate(settings.inputs)}
        self._input_order: Callable[[Rejection], tuple[int, int]] = lambda r: (
            ranks.get(r.source, 0),
            r.line,
        )

    # -- control ------------------------------------------------------------------

    def request_stop(self) -> None:
        """First call: finish what is in flight. Second call: abandon it."""
        if self._stop.is_set():
            self._abandon.set()
        self._stop.set()
        self.summary.interrupted = True
        with self._lock:
            self._lock.notify_all()

    # -- the run ------------------------------------------------------------------

    def execute(self) -> Summary:
        started = time.monotonic()
        s = self.settings
        self._check_inputs()
        client: Client | None = None
        if not s.dry_run:
            url = check_url(s.url, allow_insecure_http=s.allow_insecure_http)
            if not s.token:
                raise ConfigError(
                    "No token: set UPSTASH_VECTOR_REST_TOKEN or pass --token.",
                )
            client = Client(
                url,
                s.token,
                namespace=s.namespace,
                timeout=s.timeout,
                max_connections=s.concurrency,
                transport=self.transport,
            )
        try:
            if client is not None and s.preflight:
                warn_of_new_namespace(preflight(client), s.namespace, self.events)
            self._open_outputs()
            self._run(client)
        finally:
            if client is not None:
                client.close()
            self.summary.elapsed_s = time.monotonic() - started
            self._close_outputs()
            error, unrecorded = self.summary.error, self.summary.records_unrecorded
            if isinstance(error, OutputError) and unrecorded:
                self.summary.error = error.counting(unrecorded)
        self.events.finished(self.summary)
        return self.summary

    def _check_inputs(self) -> None:
        s = self.settings
        seen: set[str] = set()
        for name in s.inputs:
            if name == "-":
                continue
            if not os.path.exists(name):
                raise UsageError(
                    f"{name}: no such file.", hint="Check the path; use - to read stdin."
                )
            if os.path.isdir(name):
                raise UsageError(f"{name} is a folder, not a file.")
            key = input_key(name)
            if key in seen:
                raise UsageError(f"{name} is given twice.")
            seen.add(key)
        if s.inputs.count("-") > 1:
            raise UsageError("stdin (-) is given twice.")
        check_outputs(
            s.inputs,
            {
                "the rejects file": s.rejects,
                "the report file": s.report,
                "the checkpoint": s.checkpoint,
                "the checkpoint's lock file": lock_path(s.checkpoint) if s.checkpoint else None,
            },
        )
        check_columns(s)

    def _open_outputs(self) -> None:
        s = self.settings
        resume_at: int | None = None
        if s.checkpoint is not None and not s.dry_run:
            self._checkpoint = Checkpoint(
                s.checkpoint,
                s.inputs,
                namespace=s.namespace,
                # The host only: a URL may carry credentials, the checkpoint never does.
                index=_index_address(s.url),
                restart=s.restart,
            )
            cp = self._checkpoint
            rejects = str(s.rejects.resolve()) if s.rejects else None
            if cp.rejects_path is not None and cp.rejects_path == rejects:
                resume_at = cp.rejects_offset
            cp.rejects_path = rejects
            if "-" in s.inputs:
                self.events.warning(
                    "stdin is checkpointed by position: the rerun must get the same input."
                )
        if s.rejects is not None:
            self._rejects = RejectsWriter(s.rejects, resume_at=resume_at)
            if self._checkpoint is not None:
                self._checkpoint.rejects_offset = self._rejects.offset()
        if s.report is not None:
            from .report import Many, ReportFile

            self.events = Many(self.events, ReportFile(s.report))

    def _close_outputs(self) -> None:
        if self._checkpoint is not None:
            # Always safe: only the prefix of settled batches is ever recorded.
            self._save_checkpoint()
            self._checkpoint.close()
        if self._rejects is not None:
            self._rejects.close()

    def _items(self) -> Iterator[Item]:
        s = self.settings
        mapper = Mapper(s.mapping)
        summary = self.summary
        # A checkpointed file may still be written to (the cron case): a last line
        # without its newline is left for the next run rather than read half-written.
        read_options = replace(s.read, whole_lines=self._checkpoint is not None)
        stopped, strict = self._stop.is_set, s.strict
        guard: _MisfitGuard | None = _MisfitGuard()
        for index, name in enumerate(s.inputs):
            if stopped():
                return
            position = None
            if self._checkpoint is not None:
                start = self._checkpoint.start(index)
                position = start.position
                summary.records_read += start.skipped
                summary.records_skipped += start.skipped
            fmt = detect_format(name, s.read.format)
            mapper.tabular = fmt != "jsonl"
            reading = _Reading(
                start=position,
                stdin=self.stdin if name == "-" else None,
                on_bytes=self.events.bytes_read,
                on_warning=self.events.warning,
            )
            items: Iterator[Fresh | Record | Rejection | Skip]
            if fmt == "jsonl":
                lines = iter_json_lines(name, read_options, **reading)
                items = mapper.json_records(display_name(name), lines)
            else:
                items = mapper.records(iter_rows(name, read_options, **reading))
            try:
                for item in items:
                    summary.records_read += 1
                    if type(item) is tuple:
                        # A record: its batch closes within 1,000 of them, and the run
                        # checks for a stop after each batch.
                        if guard is not None:
                            guard = None
                        yield index, item
                        continue
                    if guard is not None and (
                        isinstance(item, (tuple, Record)) or not guard.see(item)
                    ):
                        guard = None
                    yield index, item
                    if strict and type(item) is Rejection:
                        # Ends the stream here: what was read before it is still sent.
                        self._read_error = StrictModeError(
                            f"{item.where}: {item.reason}",
                            hint="Stopped by --strict at the first bad record. Fix it, or "
                            "run without --strict to reject bad records and carry on.",
                        )
                        return
                    if type(item) is Skip:
                        summary.records_skipped += 1
                    # A span of skips or rejections can run long before its batch closes.
                    if stopped():
                        return
            except InputError as exc:
                # An input that breaks off (a truncated archive): the records read before
                # the break are sent like any others, then the run stops.
                self._read_error = exc
                return

    def _run(self, client: Client | None) -> None:
        s = self.settings
        total = 0
        for name in s.inputs:
            size = input_size(name)
            if size is None:
                total = -1
                break
            total += size
        self.events.started(total if total >= 0 else None, s.inputs)

        # A short queue is enough to keep the senders busy: reading is much faster than
        # sending. Every queued batch is memory.
        work: queue.Queue[Batch | None] = queue.Queue(maxsize=max(2, s.concurrency // 4))
        threads: list[threading.Thread] = []
        if client is not None:
            throttle = Throttle(s.concurrency)
            self._throttle = throttle
            policy = RetryPolicy(retries=s.retries, max_backoff=s.max_backoff)
            for n in range(s.concurrency):
                sender = Sender(
                    client,
                    throttle,
                    policy,
                    abandon=self._abandon,
                    rng=random.Random(self.rng.random()),
                )
                thread = threading.Thread(
                    target=self._sender_loop,
                    args=(sender, work),
                    name=f"sender-{n}",
                    daemon=True,
                )
                thread.start()
                threads.append(thread)
        try:
            for batch in batches(
                self._items(), max_records=s.batch_size, max_bytes=s.max_batch_bytes
            ):
                self.summary.batches += 1
                if client is None or not batch.ids:
                    self._settle(Settlement(batch, superseded=len(batch.superseded)))
                    continue
                if not self._claim_ids(batch):
                    break
                if not _offer(work, batch, give_up=self._abandon.is_set):
                    self._release_ids(batch)
                if self._stop.is_set():
                    break
            if self._read_error is not None and self.summary.error is None:
                self.summary.error = self._read_error
        except VupsertError as exc:
            # An input that cannot be opened or mapped at all: what is in flight settles.
            self.summary.error = exc
            self._stop.set()
        finally:
            # Senders finish the queue, then each takes one None and leaves. They take
            # batches even when abandoned, so there is room; a dead one is not waited for.
            for _ in threads:
                _offer(work, None, give_up=lambda: not any(t.is_alive() for t in threads))
            for thread in threads:
                while thread.is_alive():
                    thread.join(0.25)
        if self._crash is not None:
            raise self._crash
        if client is not None:
            self.summary.throttled = self._throttle.throttled
        if self._fatal is not None:
            answer = self._fatal.answer
            self.summary.error = ServerError(
                f"The server answered {answer.status}: {answer.message.rstrip('.')}. "
                "Stopped sending: no batch can succeed.",
                status=answer.status,
                hint=FATAL_HINTS.get(answer.status or 0),
            )

    def _sender_loop(self, sender: Sender, work: queue.Queue[Batch | None]) -> None:
        while (batch := work.get()) is not None:
            try:
                self._send(sender, batch)
            except BaseException as exc:
                # A bug, not a server answer: stop everything and let the caller raise it.
                self._crash = exc
                self._stop.set()
                self._abandon.set()
            finally:
                # Whatever happened, a later batch holding one of these ids must not wait.
                self._release_ids(batch)

    def _send(self, sender: Sender, batch: Batch) -> None:
        if self._abandon.is_set() or self._fatal is not None:
            return  # left unsettled: the checkpoint never moves past it
        try:
            settlement = sender.send(batch)
        except Fatal as fatal:
            with self._lock:
                self.summary.requests += 1
                if self._fatal is None:
                    self._fatal = fatal
            # The sender has abandoned the run already, before freeing its slot.
            self._stop.set()
            return
        except Abandoned:
            return
        self._settle(settlement)

    # -- ordering and settling ------------------------------------------------------

    def _claim_ids(self, batch: Batch) -> bool:
        # Ids are unique within a batch and a batch waits for every earlier holder of its
        # ids, so an id is held by one batch at a time: plain set operations, in C.
        ids = self._in_flight_ids
        with self._lock:
            while not ids.isdisjoint(batch.ids):
                if self._abandon.is_set() or self._stop.is_set():
                    return False
                self._lock.wait(0.25)
            ids.update(batch.ids)
        return True

    def _release_ids(self, batch: Batch) -> None:
        with self._lock:
            self._in_flight_ids.difference_update(batch.ids)
            self._lock.notify_all()

    def _settle(self, settlement: Settlement) -> None:
        batch = settlement.batch
        summary = self.summary
        with self._lock:
            summary.records_upserted += settlement.upserted
            summary.records_superseded += settlement.superseded
            summary.records_rejected += len(settlement.rejected) + len(batch.rejections)
            summary.requests += settlement.attempts
            summary.retries += settlement.retries
            if settlement.attempts:
                summary.batches_sent += 1
            if settlement.rejected:
                summary.batches_failed += 1
            rejected = batch.rejections + settlement.rejected
            if len(rejected) > 1 and settlement.rejected:
                # Splits and fallbacks settle records out of input order.
                rejected.sort(key=self._input_order)
            self._done[batch.seq] = (batch.per_input, rejected)
            self._advance()
            if settlement.rejected and self.settings.fail_fast and summary.error is None:
                summary.error = FailFastError(
                    f"batch {batch.seq} ({batch.span}) failed: {settlement.error}",
                    hint="Stopped by --fail-fast; what was in flight has settled.",
                )
                self._stop.set()
            try:
                self.events.batch_done(settlement, summary)
            except OutputError as exc:
                self._output_failed(exc)

    def _advance(self) -> None:
        """Write out what is settled in batch order: rejects, then the checkpoint."""
        moved = False
        while self._next_seq in self._done:
            per_input, rejected = self._done.pop(self._next_seq)
            self._next_seq += 1
            if self._unwritable:
                # Past a failed write nothing is recorded: a rerun must settle it again.
                if self._rejects is not None:
                    self.summary.records_unrecorded += len(rejected)
                continue
            if rejected:
                self.events.rejected(rejected)
            if self._rejects is not None and rejected:
                try:
                    self._rejects.write(rejected)
                except OutputError as exc:
                    self.summary.records_unrecorded += len(rejected)
                    self._output_failed(exc)
                    continue
            if self._checkpoint is not None:
                for index, (count, end) in per_input.items():
                    self._checkpoint.advance(index, end, count)
            moved = True
        if moved and self._checkpoint is not None:
            now = time.monotonic()
            if now - self._last_save >= CHECKPOINT_EVERY:
                self._save_checkpoint()
                self._last_save = now

    def _output_failed(self, error: OutputError) -> None:
        """A file could not be written: stop reading, let what is in flight settle."""
        self._unwritable = True
        if self.summary.error is None or isinstance(self.summary.error, StoppedEarly):
            self.summary.error = error
        self._stop.set()

    def _save_checkpoint(self) -> None:
        if self._checkpoint is None or self.settings.dry_run:
            return
        try:
            if self._rejects is not None:
                self._checkpoint.rejects_offset = self._rejects.offset()
            self._checkpoint.save()
        except OutputError as exc:
            self._output_failed(exc)


class _MisfitGuard:
    """Stops a run whose first records are all rejected for one reason, before anything
    is sent: the options do not fit the input, and the rejects file would be as long
    as the input."""

    LIMIT = 100

    def __init__(self) -> None:
        self.first: Rejection | None = None
        self.kind = ""
        self.count = 0

    def see(self, item: Rejection | Skip) -> bool:
        """Take the next item that is not a record; False when there is nothing more to
        watch for."""
        if type(item) is not Rejection:
            return True
        kind = _DIGITS.sub("N", item.reason)
        if self.first is None:
            self.first, self.kind = item, kind
        elif kind != self.kind:
            return False
        self.count += 1
        if self.count >= self.LIMIT:
            raise UsageError(
                f"{self.first.where}: {self.first.reason}",
                hint=f"So were the next {self.LIMIT - 1} records, and none was valid, so "
                "nothing was sent: the mapping options do not fit this input. Fix them "
                "and run again.",
            )
        return True


_DIGITS = re.compile(r"\d+")


class _Reading(TypedDict):
    """How the run reads each input (the keyword arguments of the readers)."""

    start: Position | None
    stdin: BinaryIO | None
    on_bytes: Callable[[int], None] | None
    on_warning: Callable[[str], None] | None


def _index_address(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port}" if parts.port else parts.hostname or ""


def exit_status_of(summary: Summary) -> ExitStatus:
    if summary.error is not None:
        return summary.error.exit_status
    if summary.interrupted:
        return ExitStatus.INTERRUPTED
    if summary.records_rejected or summary.records_pending:
        return ExitStatus.PARTIAL
    return ExitStatus.SUCCESS


def _offer(
    work: queue.Queue[Batch | None], item: Batch | None, give_up: Callable[[], bool]
) -> bool:
    """Put ``item`` on the queue once there is room; False if ``give_up()`` first."""
    while True:
        try:
            work.put(item, timeout=0.25)
            return True
        except queue.Full:
            if give_up():
                return False
