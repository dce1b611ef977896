"""``vupsert verify``: does the index hold the source's records as they are?

The source is read and mapped as ``upsert`` reads it; its ids are fetched back a batch at
a time and each record's data and metadata compared with what is stored. When an id
occurs more than once, its last occurrence is the one checked, as it is the one an
upsert leaves in the index.

Records the namespace holds beyond the source are counted (``records_extra``, a failure
with ``exact``), from what is known already where it can be: when ``/info`` counts as many
records in the namespace as the source's ids found there, there are none, and nothing
more is asked. Otherwise one scan of the namespace's ids alone (no data, a thousand a
request) looks each up among the hashes of the ids checked, which verify keeps anyway:
it holds no more than that.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any, BinaryIO

import orjson

from ..config.settings import Settings
from ..mapping import Chunks
from ..outcomes import Events, NoEvents, Problem, Summary, VerifySummary
from ..records import Record, Rejection
from ..run import Reader, as_fresh, check_inputs, read_settings
from ..transport import Caller, Client, RetryPolicy, index_info
from ._namespaces import checked_namespace, stored_count
from ._scope import digest, id_hash, pages

FETCH_BATCH = 1000
"""Ids per ``fetch`` request."""
SHOWN = 10
"""Problems named one by one; the rest are counted."""


class Verifier:
    def __init__(
        self,
        settings: Settings,
        *,
        events: Events | None = None,
        transport: Any = None,
        stdin: BinaryIO | None = None,
        records: Iterable[Mapping[str, Any]] | None = None,
        exact: bool = False,
    ) -> None:
        """``exact``: records the namespace holds beyond the source are a failure."""
        self.settings = settings = read_settings(settings, records)
        self.events: Events = events or NoEvents()
        self._transport = transport
        self._stdin = stdin
        self._records = records
        self.summary = VerifySummary(namespace=settings.namespace, exact=exact)
        self._seen: set[int] = set()
        """Every id checked, by hash: a later occurrence replaces an earlier verdict."""
        self._open: dict[int, Problem] = {}
        """The verdicts that are problems, by id hash, until a later occurrence says."""

    def execute(self) -> VerifySummary:
        settings, summary = self.settings, self.summary
        started = time.monotonic()
        check_inputs(settings.inputs)
        client = Client.for_settings(settings, self._transport)
        counting = Summary(namespace=settings.namespace)
        reader = Reader(
            settings,
            counting,
            self.events,
            checkpoint=None,
            stopped=threading.Event().is_set,
            stdin=self._stdin,
            records=self._records,
        )
        with client:
            _, warning = checked_namespace(client)
            if warning is not None:
                summary.warnings.append(warning)
            caller = Caller(client, RetryPolicy.of(settings))
            batch: dict[str, tuple[bytes, str]] = {}
            try:
                for _, item in reader.items():
                    if type(item) is tuple:
                        pieces = [item]
                    elif type(item) is Record:
                        pieces = [as_fresh(item)]
                    elif type(item) is Chunks:
                        pieces = item.records
                    else:
                        if type(item) is Rejection:
                            summary.records_rejected += 1
                        continue
                    for id_, body, source, line, *_ in pieces:
                        # Within a batch the last occurrence of an id replaces the earlier.
                        batch.pop(id_, None)
                        batch[id_] = (body, f"{source}:{line}")
                        if len(batch) >= FETCH_BATCH:
                            self._check(caller, batch)
                            batch = {}
                if batch:
                    self._check(caller, batch)
                if reader.error is not None:
                    summary.error = reader.error
                else:
                    self._count_extra(caller)
            finally:
                summary.records_read = counting.records_read
                summary.requests, summary.retries = caller.requests, caller.retries
                summary.elapsed_s = time.monotonic() - started
        return summary

    def _check(self, caller: Caller, batch: dict[str, tuple[bytes, str]]) -> None:
        ids = list(batch)
        stored = caller.call("fetch", {"ids": ids, "includeData": True, "includeMetadata": True})
        if not isinstance(stored, list) or len(stored) != len(ids):
            raise ValueError(f"fetch answered {str(stored)[:200]!r} for {len(ids)} ids")
        for id_, vector in zip(ids, stored, strict=True):
            body, where = batch[id_]
            self._forget(id_hash(id_))
            if vector is None:
                self._problem(Problem("missing", id_, where))
                continue
            record = orjson.loads(body)
            mine = digest(record.get("data"), record.get("metadata"))
            if mine == digest(vector.get("data"), vector.get("metadata")):
                self.summary.records_matching += 1
            else:
                self._problem(Problem("different", id_, where))

    def _count_extra(self, caller: Caller) -> None:
        """Count the records the namespace holds beyond the source's, naming the first."""
        summary = self.summary
        found = summary.records_matching + summary.records_different
        if stored_count(index_info(caller.client), summary.namespace) == found:
            return  # each one stored is one of the source's
        seen = self._seen
        for page in pages(caller, prefix=None, data=False):
            for vector in page:
                id_ = str(vector["id"])
                if id_hash(id_) in seen:
                    continue
                summary.records_extra += 1
                if len(summary.extra_ids) < SHOWN:
                    summary.extra_ids.append(id_)

    def _forget(self, hashed: int) -> None:
        """Undo the verdict of an earlier occurrence of this id, if there was one."""
        summary = self.summary
        if hashed not in self._seen:
            self._seen.add(hashed)
            summary.records_checked += 1
            return
        earlier = self._open.pop(hashed, None)
        if earlier is None:
            summary.records_matching -= 1
        elif earlier.kind == "missing":
            summary.records_missing -= 1
            if earlier in summary.problems:
                summary.problems.remove(earlier)
        else:
            summary.records_different -= 1
            if earlier in summary.problems:
                summary.problems.remove(earlier)

    def _problem(self, problem: Problem) -> None:
        summary = self.summary
        self._open[id_hash(problem.id)] = problem
        if problem.kind == "missing":
            summary.records_missing += 1
        else:
            summary.records_different += 1
        if len(summary.problems) < SHOWN:
            summary.problems.append(problem)
