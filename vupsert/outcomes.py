"""The values that flow out of a run: what became of each batch (:class:`Settlement`),
the totals (:class:`Summary`), and what a run tells the outside world as it goes
(:class:`Events`). The display, the report file and a Python caller's progress callback
read these; none of them imports the machinery that makes them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, is_dataclass, replace
from typing import Any, Literal, Protocol, TypeVar

from .errors import CallerError, ExitStatus, StoppedEarly, VupsertError
from .records import Batch, Rejection


@dataclass
class Settlement:
    """What became of one batch."""

    batch: Batch
    upserted: int = 0
    superseded: int = 0
    """Records never sent because a later record of the batch with the same id landed."""
    rejected: list[Rejection] = field(default_factory=list)
    """Records the server refused or that were given up on (local ones are on the batch)."""
    requests: int = 0
    """Requests the batch took: its first record alone while no request of the run has
    succeeded yet, the halves of a batch the server refused in part, the retries."""
    retries: int = 0
    """Requests sent again after no answer, a 429 or a 5xx (the summary's ``retries``)."""
    status: int | None = None
    """Status of the last answer."""
    error: str | None = None
    """Message of the last failure, even if a retry or a split then succeeded."""
    error_status: int | None = None
    started: float = 0.0
    duration: float = 0.0

    @property
    def attempts(self) -> int:
        """How many times the batch was tried: once if it was sent, and once more for each
        retry. A first record sent alone, or halves of a refused batch, are not retries."""
        return (1 if self.requests else 0) + self.retries

    @property
    def outcome(self) -> str:
        if not self.batch.ids:
            return "empty" if not self.batch.rejections else "rejected"
        if not self.rejected:
            return "upserted"
        return "partial" if self.upserted else "failed"


@dataclass
class Tally:
    """What one settled batch adds to the counts, by input record: a record split into
    chunks counts once (see :mod:`~vupsert.run._documents`)."""

    upserted: int = 0
    superseded: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    """One per record rejected: what the rejects file gets."""
    chunks_upserted: int = 0
    chunks_rejected: int = 0
    chunks_deleted: int = 0
    stale_chunks: int = 0
    """Records whose chunks from a longer version could not be deleted."""
    hold: bool = False
    """The checkpoint must not pass this batch: chunks it should have deleted are there."""

    @classmethod
    def of(cls, settlement: Settlement) -> Tally:
        """The tally of a batch of records that are not chunked."""
        batch = settlement.batch
        return cls(
            settlement.upserted, settlement.superseded, batch.rejections + settlement.rejected
        )


F = TypeVar("F", bound=Callable[..., Any])


def reported(*, digits: int = 3) -> Callable[[F], F]:
    """Makes a summary's property (under ``@property``) a key of its document, after the
    fields; a float is rounded to ``digits``."""

    def mark(method: F) -> F:
        method.__reported__ = digits  # type: ignore[attr-defined]
        return method

    return mark


NOT_REPORTED = {"reported": False}
"""A summary field's ``metadata`` that keeps it out of the document."""

FIRST_REJECTIONS = 10
"""Rejected records a summary keeps (and the command line names), with their reasons."""


class _Document:
    """A summary's document (``--json``), made from its dataclass: every field in order
    (but those marked :data:`NOT_REPORTED`), then every :func:`reported` property; a float
    rounded (to milliseconds unless the property says), an error as its message, a
    dataclass value as a dict."""

    def as_dict(self) -> dict[str, Any]:
        return {
            name: _plain(getattr(self, name), digits)
            for name, digits in _document_keys(type(self)).items()
        }


def _document_keys(cls: type) -> dict[str, int]:
    """Each key of ``cls``'s document, and the digits a float keeps there."""
    keys = {f.name: 3 for f in fields(cls) if f.metadata.get("reported", True)}
    for klass in reversed(cls.__mro__):
        for name, value in vars(klass).items():
            digits = getattr(getattr(value, "fget", None), "__reported__", None)
            if isinstance(value, property) and digits is not None:
                keys[name] = digits
    return keys


def _plain(value: Any, digits: int) -> Any:
    if isinstance(value, VupsertError):
        return value.message
    if isinstance(value, float):
        return round(value, digits)
    if isinstance(value, list):
        return [_plain(item, digits) for item in value]
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    return value


@dataclass
class Summary(_Document):
    """The totals of a run; :meth:`as_dict` is the ``--json`` document.

    ``records_*`` count input records; with chunking, ``chunks_*`` count their chunks.
    """

    records_read: int = 0
    records_upserted: int = 0
    records_rejected: int = 0
    records_skipped: int = 0
    """Settled by an earlier run (a checkpoint), or another shard's."""
    records_superseded: int = 0
    records_unrecorded: int = 0
    """Rejected, but not written to the rejects file: it could not be written."""
    records_stale_chunks: int = 0
    """Upserted, but chunks a longer version of them left could not be deleted."""
    chunks_upserted: int = 0
    chunks_rejected: int = 0
    chunks_deleted: int = 0
    """Stored chunks deleted: beyond a record's new count (a sync also counts here the
    chunks of records the source no longer holds, and whole copies of chunked records)."""
    batches: int = 0
    batches_sent: int = 0
    batches_failed: int = 0
    requests: int = 0
    retries: int = 0
    throttled: int = 0
    elapsed_s: float = 0.0
    namespace: str = ""
    dry_run: bool = False
    interrupted: bool = False
    rejects_file: str | None = None
    checkpoint: str | None = None
    error: VupsertError | None = field(default=None, repr=False)
    """Why the run stopped early, if it did."""
    rejections: list[Rejection] = field(default_factory=list, repr=False, metadata=NOT_REPORTED)
    """The first :data:`FIRST_REJECTIONS` rejected records, in input order, each with its
    ``where`` (``file:line``) and ``reason``; the rejects file has every one. Not a key of
    the document: stderr names them."""

    def keep_rejections(self, rejections: list[Rejection]) -> None:
        """Keep the first few of the rejections that settled, in order."""
        room = FIRST_REJECTIONS - len(self.rejections)
        if room > 0:
            self.rejections.extend(rejections[:room])

    @property
    @reported()
    def records_pending(self) -> int:
        """Read but neither upserted, rejected, skipped nor superseded ("not settled"):
        never sent, or sent without an answer, as the run stopped early. The same run
        again loads them (with a checkpoint, carrying on from it)."""
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
    @reported()
    def records_valid(self) -> int:
        return self.records_read - self.records_skipped - self.records_rejected

    @property
    def records_done(self) -> int:
        """Records this run settled: upserted, rejected or superseded (a sync's unchanged
        ones too; in a dry run, every record read). Earlier runs' (skipped) are not."""
        return self.records_read - self.records_skipped - self.records_pending

    @property
    @reported(digits=1)
    def records_per_s(self) -> float:
        """:attr:`records_done` per second of the whole run (start-up included): the
        progress bar's rate, as it ends."""
        return self.records_done / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def exit_status(self) -> ExitStatus:
        """What the process exit code of this run is."""
        if self.error is not None:
            return self.error.exit_status
        if self.interrupted:
            return ExitStatus.INTERRUPTED
        if self.records_rejected or self.records_pending or self.records_stale_chunks:
            return ExitStatus.PARTIAL
        return ExitStatus.SUCCESS


@dataclass
class SyncSummary(Summary):
    """An upsert's summary, and what the comparison with the index found."""

    records_new: int = 0
    """Source records whose id the scope did not hold."""
    records_changed: int = 0
    records_unchanged: int = 0
    """Not sent: the index holds them as they are."""
    records_deleted: int = 0
    """Stored records the source does not hold, deleted (in a dry run: to delete); a
    chunked record counts once, its chunks in ``chunks_deleted``."""
    records_stored: int = 0
    """Records the scope held before the run (a chunked one counts once)."""
    to_delete: list[str] = field(default_factory=list, metadata=NOT_REPORTED)
    """A dry run: the first ids it would delete, in the index's order (said on stderr)."""
    ids_to_delete: int = field(default=0, metadata=NOT_REPORTED)
    """A dry run: how many ids it would delete in all (chunks each count)."""

    @property
    @reported()
    def records_pending(self) -> int:
        return max(0, super().records_pending - self.records_unchanged)


@dataclass
class ExportSummary(_Document):
    """What an export wrote; :meth:`as_dict` is the ``--json`` document."""

    records_exported: int = 0
    records_without_data: int = 0
    requests: int = 0
    retries: int = 0
    elapsed_s: float = 0.0
    namespace: str = ""
    prefix: str | None = None
    output: str | None = None
    """The file written, ``None`` for stdout."""
    error: VupsertError | None = None
    warnings: list[str] = field(default_factory=list, metadata=NOT_REPORTED)
    """What the command line says as warnings (an empty namespace): not a key."""

    @property
    def exit_status(self) -> ExitStatus:
        return self.error.exit_status if self.error is not None else ExitStatus.SUCCESS


Verdict = Literal["missing", "different"]


@dataclass
class Problem:
    """A source record the index does not hold as it is: ``missing`` or ``different``."""

    kind: Verdict
    id: str
    where: str
    """``file:line`` of the source record."""


@dataclass
class VerifySummary(_Document):
    """What a verify found; :meth:`as_dict` is the ``--json`` document."""

    records_read: int = 0
    records_checked: int = 0
    """Distinct ids checked."""
    records_matching: int = 0
    records_missing: int = 0
    records_different: int = 0
    records_rejected: int = 0
    """Source records that could not be mapped, so not checked."""
    records_extra: int = 0
    """Records the namespace holds that the source does not (its ids not among the
    source's): a failure only when ``exact``."""
    requests: int = 0
    retries: int = 0
    elapsed_s: float = 0.0
    namespace: str = ""
    problems: list[Problem] = field(default_factory=list)
    """The first few records that do not match, in the order they were found."""
    extra_ids: list[str] = field(default_factory=list)
    """The first few ids of ``records_extra``, in the order the namespace holds them."""
    error: VupsertError | None = None
    exact: bool = field(default=False, metadata=NOT_REPORTED)
    """Records the source does not hold make the index differ from it (exit 1)."""
    warnings: list[str] = field(default_factory=list, metadata=NOT_REPORTED)
    """What the command line says as warnings (an empty namespace): not a key."""

    @property
    def exit_status(self) -> ExitStatus:
        if self.error is not None:
            return self.error.exit_status
        if self.records_missing or self.records_different or self.records_rejected:
            return ExitStatus.PARTIAL
        if self.exact and self.records_extra:
            return ExitStatus.PARTIAL
        return ExitStatus.SUCCESS


@dataclass
class DeleteSummary(_Document):
    """What a delete removed (or would); :meth:`as_dict` is the ``--json`` document."""

    records_deleted: int = 0
    """Records the index held and deleted (in a dry run: would delete). For ids, the
    distinct ids a fetch found before deleting them; for a prefix or filter, the index's
    answer: at least this many when ``count_uncertain``."""
    count_uncertain: bool = False
    """A delete's answer was lost after the request may have been applied, and what it
    removed could not be counted: ``records_deleted`` is a lower bound."""
    ids_read: int = 0
    """Ids given (``ids``), each counted once per line, item or element."""
    lines_without_id: int = 0
    """Lines (items, rows) of ``ids`` that hold no id: skipped."""
    ids_format: str | None = None
    """How ``ids`` was read: ``text``, ``jsonl``, ``json``, ``csv``, ``tsv`` or ``parquet``
    (``None`` for ids handed over from Python)."""
    requests: int = 0
    retries: int = 0
    elapsed_s: float = 0.0
    namespace: str = ""
    dry_run: bool = False
    error: VupsertError | None = None
    first_without_id: str | None = field(default=None, metadata=NOT_REPORTED)
    """The first line without an id, ``file:line: why``: said on stderr, not a key."""
    warnings: list[str] = field(default_factory=list, metadata=NOT_REPORTED)
    """What the command line says as warnings (an empty namespace): not a key."""

    @property
    def exit_status(self) -> ExitStatus:
        if self.error is not None:
            return self.error.exit_status
        return ExitStatus.PARTIAL if self.lines_without_id else ExitStatus.SUCCESS

    def skipped(self, where: str, reason: str) -> None:
        """Count a line of ``ids`` that holds no id."""
        self.lines_without_id += 1
        if self.first_without_id is None:
            self.first_without_id = f"{where}: {reason}"


@dataclass
class Hit:
    """A record a query found: its id, its score (higher is nearer), its metadata, and its
    data when the query asked for it."""

    id: str
    score: float
    metadata: dict[str, Any] | None = None
    data: str | None = None

    def as_dict(self, *, data: bool = False) -> dict[str, Any]:
        """The hit as a JSON Lines record ``{id, score, metadata}``, with ``data`` when the
        query asked for it (``null`` for a vector stored without it)."""
        found: dict[str, Any] = {"id": self.id, "score": self.score, "metadata": self.metadata}
        if data:
            found["data"] = self.data
        return found


@dataclass
class QueryResult(_Document):
    """What a query found, best first; :meth:`as_dict` is the ``--json`` document."""

    namespace: str = ""
    query: str = ""
    filter: str | None = None
    top_k: int = 0
    hits: list[Hit] = field(default_factory=list)
    error: VupsertError | None = None
    include_data: bool = field(default=False, metadata=NOT_REPORTED)
    """Whether each hit carries its data (the query asked for it)."""
    stored: int | None = field(default=None, metadata=NOT_REPORTED)
    """Records the namespace holds, by ``/info`` (``None`` when it did not say): what an
    empty answer is told by."""
    namespaces: tuple[str, ...] = field(default=(), metadata=NOT_REPORTED)
    """The index's namespaces, by ``/info``."""

    def as_dict(self) -> dict[str, Any]:
        document = super().as_dict()
        # Scores as answered: the document's rounding would tie fused scores (1/60 + 1/61).
        document["hits"] = [hit.as_dict(data=self.include_data) for hit in self.hits]
        return document

    @property
    def exit_status(self) -> ExitStatus:
        """0 whether or not anything matched: an empty answer is an answer."""
        return self.error.exit_status if self.error is not None else ExitStatus.SUCCESS


def _count(n: int, word: str, words: str | None = None) -> str:
    return f"{n:,} {word}" if n == 1 else f"{n:,} {words or word + 's'}"


@dataclass(frozen=True)
class Waiting:
    """What a run waits for while no batch settles (:meth:`Events.waiting`)."""

    idle_s: float
    """Seconds since a batch last settled (or the run began)."""
    requests: int = 0
    """Requests out, waiting for their answers."""
    oldest_s: float = 0.0
    """How long the oldest of them has been out."""
    retrying: int = 0
    """Batches waiting before they are sent again."""
    throttled: int = 0
    """429 answers since a batch last settled."""
    failed: int = 0
    """Other failed attempts since then: 5xx, timeouts, lost connections."""
    last_error: str | None = None
    """The message of the last of them."""
    stops_in_s: float | None = None
    """While nothing but 429s come: seconds before the run decides the index's quota is
    used up and stops (``throttled_timeout``)."""

    def giving_up_in(self, seconds: float) -> Waiting:
        return replace(self, stops_in_s=seconds)

    @property
    def message(self) -> str:
        """One line: what the run waits for."""
        parts = [f"nothing settled for {self.idle_s:,.0f} s"]
        if self.throttled:
            text = f"{_count(self.throttled, 'answer')} 429 (the index's rate limit or quota"
            if self.stops_in_s is not None:
                text += f"; the run stops in {self.stops_in_s:,.0f} s unless a write lands"
            parts.append(text + ")")
        if self.failed:
            parts.append(f"{_count(self.failed, 'failed attempt')} ({self.last_error})")
        if self.retrying:
            parts.append(f"{_count(self.retrying, 'batch', 'batches')} waiting to be retried")
        if self.requests:
            text = f"{_count(self.requests, 'request')} awaiting answers"
            if self.oldest_s >= 1:
                text += f", the oldest for {self.oldest_s:,.0f} s"
                if not self.throttled and not self.failed:
                    text += " (a slow server)"
            parts.append(text)
        return "; ".join(parts)


@dataclass(frozen=True)
class Stopping:
    """A run asked to stop (:meth:`Events.stopping`): it sends nothing more and retries
    nothing, and waits at most ``wait_s`` seconds for the answers of ``in_flight``
    requests; or (``abandoned``) it stopped waiting for them."""

    in_flight: int
    wait_s: float
    abandoned: bool = False


class Events(Protocol):
    """What a run tells the outside world as it goes (the display, the report file).

    Called from the thread that reads, the sender threads and a watcher, never under a
    lock of the run's; ``batch_done`` and ``rejected`` come one at a time, the rejections
    in input order.

    Two more methods are heard by a listener that has them (:class:`NoEvents` does, so a
    subclass of it may override them): ``waiting(waiting: Waiting)``, each time 30
    seconds pass with batches out and none settling; ``stopping(stopping: Stopping)``,
    when a stop is asked (from whatever thread asks it; the command line asks from a
    thread of its own), and again if the answers it waits for are abandoned.
    """

    def started(self, total_bytes: int | None, inputs: tuple[str, ...]) -> None: ...
    def bytes_read(self, n: int) -> None: ...
    def batch_done(self, settlement: Settlement, summary: Summary) -> None: ...
    def rejected(self, rejections: list[Rejection]) -> None: ...
    def warning(self, message: str) -> None: ...
    def finished(self, summary: Summary) -> None: ...


def tell(listener: Events, name: Literal["waiting", "stopping"], value: object) -> None:
    """``listener.waiting(value)`` or ``listener.stopping(value)``, if the listener has that
    method (see :class:`Events`)."""
    method = getattr(listener, name, None)
    if method is not None:
        method(value)


class NoEvents:
    """Events nobody hears: a Python caller's default."""

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

    def waiting(self, waiting: Waiting) -> None:
        pass

    def stopping(self, stopping: Stopping) -> None:
        pass

    def finished(self, summary: Summary) -> None:
        pass


class Progress(NoEvents):
    """Calls ``callback(summary)`` after each batch settles, and at the end only when the
    end changed what the last call said (a sync's deletions, an error, a run that settled
    no batch): the final totals come once."""

    def __init__(self, callback: Callable[[Summary], object]) -> None:
        self._callback = callback
        self._said: dict[str, Any] | None = None

    def batch_done(self, settlement: Settlement, summary: Summary) -> None:
        self._callback(summary)
        self._said = _counted(summary)

    def finished(self, summary: Summary) -> None:
        if _counted(summary) != self._said:
            self._callback(summary)


def _counted(summary: Summary) -> dict[str, Any]:
    """What a summary says but how long the run took, which only the end sets."""
    said = summary.as_dict()
    del said["elapsed_s"], said["records_per_s"]
    return said


class Broadcast:
    """Several listeners heard as one, in order."""

    def __init__(self, *listeners: Events) -> None:
        self.listeners = listeners

    def started(self, total_bytes: int | None, inputs: tuple[str, ...]) -> None:
        for listener in self.listeners:
            listener.started(total_bytes, inputs)

    def bytes_read(self, n: int) -> None:
        for listener in self.listeners:
            listener.bytes_read(n)

    def batch_done(self, settlement: Settlement, summary: Summary) -> None:
        for listener in self.listeners:
            listener.batch_done(settlement, summary)

    def rejected(self, rejections: list[Rejection]) -> None:
        for listener in self.listeners:
            listener.rejected(rejections)

    def warning(self, message: str) -> None:
        for listener in self.listeners:
            listener.warning(message)

    def waiting(self, waiting: Waiting) -> None:
        for listener in self.listeners:
            tell(listener, "waiting", waiting)

    def stopping(self, stopping: Stopping) -> None:
        for listener in self.listeners:
            tell(listener, "stopping", stopping)

    def finished(self, summary: Summary) -> None:
        for listener in self.listeners:
            listener.finished(summary)


class CallerEvents(Broadcast):
    """A Python caller's listeners (its ``events``, its ``progress`` callback), heard as
    one. The first exception one of them raises stops the run as ``Run.stop_reading``
    does (what was read is sent and settles, the checkpoint is written) and goes on the summary as
    a :class:`~vupsert.errors.CallerError`; that listener is not called again."""

    @classmethod
    def of(
        cls, events: Events | None, progress: Callable[[Summary], object] | None
    ) -> CallerEvents | None:
        """The listeners the caller gave, if any."""
        listeners: list[tuple[Events, str]] = [] if events is None else [(events, "events")]
        if progress is not None:
            listeners.append((Progress(progress), "the progress callback"))
        return cls(listeners) if listeners else None

    def __init__(self, listeners: list[tuple[Events, str]]) -> None:
        super().__init__(*(listener for listener, _ in listeners))
        self._names = {id(listener): name for listener, name in listeners}
        self._failed: set[int] = set()
        self._lock = threading.Lock()
        self._stop: Callable[[], object] = lambda: None
        self._summary: Summary | None = None

    def attach(self, stop: Callable[[], object], summary: Summary) -> None:
        """The run these listeners hear, to stop and to tell why."""
        self._stop, self._summary = stop, summary

    def _each(self, call: Callable[[Events], object]) -> None:
        for listener in self.listeners:
            if id(listener) in self._failed:
                continue
            try:
                call(listener)
            except Exception as exc:
                self._fail(listener, exc)

    def _fail(self, listener: Events, exc: Exception) -> None:
        with self._lock:
            first = not self._failed
            self._failed.add(id(listener))
        summary = self._summary
        if not first or summary is None:
            return
        current = summary.error
        if current is None or isinstance(current, StoppedEarly):
            summary.error = CallerError(exc, self._names[id(listener)])
        interrupted = summary.interrupted
        self._stop()
        summary.interrupted = interrupted  # the error says why it stopped

    def started(self, total_bytes: int | None, inputs: tuple[str, ...]) -> None:
        self._each(lambda listener: listener.started(total_bytes, inputs))

    def bytes_read(self, n: int) -> None:
        self._each(lambda listener: listener.bytes_read(n))

    def batch_done(self, settlement: Settlement, summary: Summary) -> None:
        self._each(lambda listener: listener.batch_done(settlement, summary))

    def rejected(self, rejections: list[Rejection]) -> None:
        self._each(lambda listener: listener.rejected(rejections))

    def warning(self, message: str) -> None:
        self._each(lambda listener: listener.warning(message))

    def waiting(self, waiting: Waiting) -> None:
        self._each(lambda listener: tell(listener, "waiting", waiting))

    def stopping(self, stopping: Stopping) -> None:
        self._each(lambda listener: tell(listener, "stopping", stopping))

    def finished(self, summary: Summary) -> None:
        self._each(lambda listener: listener.finished(summary))
