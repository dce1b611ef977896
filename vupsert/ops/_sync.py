"""``vupsert sync``: afterwards the namespace (or the ids under a prefix) holds exactly the
source's records, the last occurrence of an id winning, and nothing else.

1. One paged scan learns what the scope holds (:class:`~vupsert.ops._scope.Scope`).
2. The source flows through the upsert pipeline with one more step after reading: a
   record whose data and metadata equal what is stored is not sent (it settles as
   skipped, counted unchanged); new and changed records go on with everything an upsert
   has (batching, retries, splits, rejects, report).
3. Once every record has settled, no batch failed and nothing was left unread, the stored
   ids the source does not hold are found by a second scan, to its end, and only then
   deleted, in batches (deleting between pages would shift a cursor that counts
   positions): unless the source lacks more records than the guard allows (by default
   half the scope), which deletes nothing and says how to allow it.

With chunks, a record is counted (and guarded) once: the ids of a record the source
holds that it no longer makes (chunks beyond its count, a copy stored whole) are
deleted as chunks, not as records missing from the source.

Killed at any point and run again, it converges: each run compares with what is stored
then. A rejected record keeps every id it has stored. Every exit, even one where the
index stopped answering, returns the summary with its error.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import replace
from typing import IO, Any, BinaryIO

import httpx
import orjson

from ..config import Endpoint, option
from ..config.settings import Settings
from ..errors import DeletionRefused, UsageError, VupsertError
from ..mapping import Chunks
from ..outcomes import Broadcast, Events, NoEvents, Stopping, Summary, SyncSummary, tell
from ..records import Fresh, Position, Record, Rejection
from ..run import Item, Run, check_run, check_types, preflight
from ..transport import Caller, Client, RetryPolicy, Stopped, deleted
from ._scope import Scope, StaleId, digest, id_hash

DELETE_BATCH = 1000
"""Ids per ``delete`` request."""
NAMED_DELETIONS = 10
"""Ids a dry run names of those it would delete; the rest are counted."""
DEFAULT_MAX_DELETE = "50%"
"""A sync deletes at most half of what its scope holds unless told more: an empty or
truncated source must not wipe a namespace."""


def parse_max_delete(value: int | str | None, stored: int) -> int:
    """How many stored records a sync may delete: ``N``, or ``P%`` of ``stored``."""
    given = DEFAULT_MAX_DELETE if value is None else value
    text = str(given).strip()
    try:
        if text.endswith("%"):
            share = float(text[:-1])
            if not 0 <= share <= 100:
                raise ValueError
            return int(stored * share / 100)
        count = int(text)
        if count < 0:
            raise ValueError
        return count
    except ValueError:
        raise UsageError(
            f"{option('max_delete', given)}: give a count (1000) or a share of what the "
            "scope holds (50%)."
        ) from None


class Differ:
    """The step after reading: records the index holds as they are go no further."""

    def __init__(self, scope: Scope, summary: SyncSummary, prefix: str | None) -> None:
        self._scope = scope
        self._summary = summary
        self._prefix = prefix
        self.unattributed = 0
        """Rejected items without an id (unreadable lines): one might be a stored id."""

    def filter(self, items: Iterable[Item]) -> Iterator[Item]:
        scope, summary, prefix = self._scope, self._summary, self._prefix
        for index, item in items:
            if type(item) is tuple or type(item) is Record:
                if type(item) is Record:
                    id_, body, source, line = item.id, item.body, item.source, item.line
                    offset, end_line = item.end
                else:
                    id_, body, source, line, offset, end_line = item  # type: ignore[misc]
                if prefix and not id_.startswith(prefix):
                    yield index, _outside(id_, body, source, line, offset, end_line, prefix)
                    continue
                scope.hold(id_)
                at = scope.find(id_hash(id_))
                if at < 0:
                    summary.records_new += 1
                elif self._same(at, body):
                    # Dropped from the stream: a sync keeps no checkpoint, so nothing
                    # needs its position, and it is counted here.
                    summary.records_unchanged += 1
                    continue
                else:
                    summary.records_changed += 1
            elif type(item) is Chunks:
                chunks = self._chunks(item)
                if chunks is None:
                    continue
                item = chunks
            elif type(item) is Rejection:
                if item.id is None:
                    self.unattributed += 1
                else:
                    at = scope.find(id_hash(item.id))
                    if at >= 0:
                        scope.present[at] = 1
            yield index, item

    def _same(self, at: int, body: bytes) -> bool:
        """Mark stored entry ``at`` as held; whether it holds ``body`` as it is."""
        scope = self._scope
        scope.present[at] = 1
        record = orjson.loads(body)
        fresh = digest(record.get("data"), record.get("metadata"))
        if scope.digests[at] == fresh:
            return True
        # A later record of the same id is compared with this one, which is what the
        # index will hold by then.
        scope.digests[at] = fresh
        return False

    def _chunks(self, item: Chunks) -> Chunks | Rejection | None:
        """A record's chunks that are new or changed; ``None`` when it is stored as it
        is. Counted once, whatever its chunks."""
        scope, summary, prefix = self._scope, self._summary, self._prefix
        if prefix and not (item.parent + "#").startswith(prefix):
            end = item.end
            return _outside(
                item.parent, item.body, item.source, item.line, end.offset, end.line, prefix
            )
        scope.hold(item.parent)
        changed: list[Fresh] = []
        stored = 0
        for chunk in item.records:
            at = scope.find(id_hash(chunk[0]))
            if at < 0:
                changed.append(chunk)
                continue
            stored += 1
            if not self._same(at, chunk[1]):
                changed.append(chunk)
        if not changed:
            summary.records_unchanged += 1
            return None
        # A copy stored whole (not marked: a sync deletes it) makes the record not new.
        if stored or scope.find(id_hash(item.parent)) >= 0:
            summary.records_changed += 1
        else:
            summary.records_new += 1
        return replace(item, records=changed)


def _outside(
    id_: str, body: bytes, source: str, line: int, offset: int, end_line: int, prefix: str
) -> Rejection:
    return Rejection(
        source,
        line,
        Position(offset, end_line),
        f"id {id_!r} does not start with {prefix!r}, the prefix this sync keeps in step",
        body=body,
        id=id_,
        stage="send",
    )


class SyncRun:
    """One sync; :meth:`execute` does it and returns the summary."""

    def __init__(
        self,
        settings: Settings,
        *,
        prefix: str | None = None,
        max_delete: int | str | None = None,
        events: Events | None = None,
        transport: httpx.BaseTransport | None = None,
        stdin: BinaryIO | None = None,
        records: Iterable[Mapping[str, Any]] | None = None,
        seed: int | None = None,
    ) -> None:
        check_types(settings)
        # Even a dry run reads the index: the URL and the token must be there.
        self.endpoint = Endpoint.of(settings)
        if settings.checkpoint is not None:
            raise UsageError(
                f"sync reads the whole source on every run, so it takes no "
                f"{option('checkpoint')}: run again, and it carries on from what the index "
                "holds.",
            )
        if settings.mapping.shard is not None:
            raise UsageError(
                f"sync takes no {option('shard')}: each shard would delete the others' "
                "records. Sync the whole source in one run.",
            )
        self.settings = settings
        self.prefix = prefix or None
        self.max_delete = max_delete
        self.events: Events = events or NoEvents()
        self._transport = transport
        self._stdin = stdin
        self._records = records
        self._seed = seed
        self.summary = SyncSummary(
            namespace=settings.namespace,
            dry_run=settings.dry_run,
            rejects_file=str(settings.rejects) if settings.rejects else None,
        )
        self._run: Run | None = None
        self._stop = threading.Event()
        """Ctrl-C: the scan, the upserts and the deletions stop at their next request."""
        self._reading_stopped = False
        self._lock = threading.Lock()
        """Between a stop and the run it stops."""

    def request_stop(self) -> None:
        """As :meth:`Run.request_stop`: whatever the sync is doing stops at once, what is in
        flight settles, and a rerun converges."""
        self.summary.interrupted = True
        with self._lock:
            first = not self._stop.is_set()
            self._stop.set()
            run = self._run
        if run is not None:
            run.request_stop()  # it says so
        elif first:
            tell(self.events, "stopping", Stopping(0, 0.0))

    def stop_reading(self) -> None:
        """Read nothing more; what was read is sent (a caller's code raised)."""
        with self._lock:
            self._reading_stopped = True
            run = self._run
        if run is not None:
            run.stop_reading()

    def execute(self) -> SyncSummary:
        settings, summary = self.settings, self.summary
        started = time.monotonic()
        check_run(settings)
        client = Client.for_settings(settings, self._transport)
        with client:
            caller = Caller(client, RetryPolicy.of(settings), stop=self._stop)
            try:
                self._sync(client, caller)
            except Stopped:
                summary.interrupted = True
            except VupsertError as exc:
                # The index stopped answering a scan or a delete: still a summary to show.
                if summary.error is None:
                    summary.error = exc
            finally:
                summary.requests += caller.requests
                summary.retries += caller.retries
                summary.throttled += caller.throttle.throttled
                summary.elapsed_s = time.monotonic() - started
        self.events.finished(summary)
        return summary

    def _sync(self, client: Client, caller: Caller) -> None:
        settings, summary = self.settings, self.summary
        info = preflight(client) if settings.preflight else None
        scope = Scope.scan(caller, prefix=self.prefix)
        if scope.records is not None or settings.mapping.chunk_size is not None:
            scope.track()
        summary.records_stored = scope.stored
        allowed = parse_max_delete(self.max_delete, summary.records_stored)
        differ = Differ(scope, summary, self.prefix)
        run = Run(
            replace(settings, preflight=False),
            # The summary is shown once, after the deletions; a rejected record keeps
            # what it has stored.
            events=_AllButFinished(self.events, _Keeper(scope)),
            transport=self._transport,
            stdin=self._stdin,
            records=self._records,
            seed=self._seed,
            summary=summary,
            select=differ.filter,
            index_info=info,
            # Copies stored whole beside their chunks are stale ids: deleted below.
            warn_whole=False,
            carry_on="Then run the same command again: a sync sends only what the index "
            "does not hold as it is.",
        )
        with self._lock:
            if self._stop.is_set():
                return  # stopped during the scan
            if self._reading_stopped:
                run.stop_reading()
            self._run = run
        try:
            run.execute()
        finally:
            with self._lock:
                self._run = None
        scope.settle()
        if self._may_delete(differ):
            self._delete(caller, scope, allowed)

    def _may_delete(self, differ: Differ) -> bool:
        """Whether every record settled and nothing might hold a stored id unseen."""
        summary = self.summary
        if summary.error is not None or summary.interrupted or summary.records_pending:
            return False
        reason = None
        if summary.batches_failed:
            reason = f"{summary.batches_failed:,} batches failed"
        elif differ.unattributed:
            reason = f"{differ.unattributed:,} records could not be read, so their ids are unknown"
        if reason is not None:
            self.events.warning(
                f"no record was deleted: {reason}. Fix them and sync again to delete "
                "what the source no longer holds."
            )
            return False
        return True

    def _delete(self, caller: Caller, scope: Scope, allowed: int) -> None:
        summary = self.summary
        stale = scope.stale()
        if stale.records > allowed:
            limit = (
                f"{option('max_delete', self.max_delete)} allows"
                if self.max_delete is not None
                else f"by default, half of the {summary.records_stored:,} in scope"
            )
            summary.error = DeletionRefused(
                f"{stale.records:,} stored records are not in the source: more than the "
                f"{allowed:,} this sync may delete ({limit}). Nothing was deleted.",
                hint="If the source is complete, allow it with "
                f"{option('max_delete', stale.records)}; if not, find what is missing from it.",
            )
            return
        if not stale.records and not stale.chunks:
            return
        if self.settings.dry_run:
            summary.records_deleted = stale.records
            summary.chunks_deleted += stale.chunks
            # The scan a sync makes before deleting, to name what it would delete.
            for page in scope.stale_ids(caller, prefix=self.prefix):
                summary.ids_to_delete += len(page)
                room = NAMED_DELETIONS - len(summary.to_delete)
                summary.to_delete += [entry.id for entry in page[:room]]
            return
        # The whole scan first: a deletion between its pages would move where a cursor
        # that counts positions points.
        with tempfile.TemporaryFile() as spool:
            for page in scope.stale_ids(caller, prefix=self.prefix):
                spool.writelines(orjson.dumps(tuple(entry)) + b"\n" for entry in page)
            spool.seek(0)
            counted = _Deletions(summary)
            try:
                for ids in _spooled(spool):
                    counted.add(ids, _delete_ids(caller, [entry.id for entry in ids]))
            finally:
                counted.close()


def _spooled(spool: IO[bytes]) -> Iterator[list[StaleId]]:
    """The stale ids written to ``spool``, :data:`DELETE_BATCH` at a time."""
    batch: list[StaleId] = []
    for line in spool:
        batch.append(StaleId(*orjson.loads(line)))
        if len(batch) == DELETE_BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def _delete_ids(caller: Caller, ids: list[str]) -> int:
    """How many of ``ids``, each seen stored by the scan, one request deleted. A retried
    request's answer says nothing of what an attempt before it did unanswered: then it
    counts every id, which the scan found and the index no longer holds."""
    retries = caller.retries
    count = deleted(caller.call("delete", {"ids": ids}))
    return count if caller.retries == retries else len(ids)


class _Deletions:
    """Counts deleted ids as records and chunks: a chunked record once, whatever its
    chunks."""

    def __init__(self, summary: SyncSummary) -> None:
        self._summary = summary
        self._records: set[int] = set()

    def add(self, ids: list[StaleId], count: int) -> None:
        summary = self._summary
        # Fewer than asked (another client deleted some): the first ones are counted.
        for entry in ids[:count]:
            if entry.chunk:
                summary.chunks_deleted += 1
            if entry.missing is not None:
                if entry.chunk:
                    self._records.add(entry.missing)
                else:
                    summary.records_deleted += 1

    def close(self) -> None:
        self._summary.records_deleted += len(self._records)


class _Keeper(NoEvents):
    """Hears the rejections: every id a rejected record has stored stays."""

    def __init__(self, scope: Scope) -> None:
        self._scope = scope

    def rejected(self, rejections: list[Rejection]) -> None:
        for rejection in rejections:
            if rejection.id is not None:
                self._scope.keep(rejection.id)


class _AllButFinished(Broadcast):
    """The listeners of a sync, which hear ``finished`` once the deletions are done."""

    def finished(self, summary: Summary) -> None:
        pass
