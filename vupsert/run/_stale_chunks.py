"""Chunks a shorter version of a record left behind: found and deleted once its new
chunks landed.

After each batch that completes chunked records, one ``fetch`` asks for the
:data:`WINDOW` chunk ids above each record's new count, with their metadata. A chunk
found there is stale, and its ``chunk.count`` names how many chunks its version had:
every id up to that count is deleted, by id, whichever of them are still there, so a
chunk missing in between (refused once, deleted by hand) hides none above it. Above the
highest count found, the next ids are asked for again, for chunks of a still older
version. Point lookups and deletes by id cost the index the ids asked, not a scan:
a delete by metadata filter would find the same chunks, but Upstash documents it as a
scan of the namespace, one per batch, and a load would slow down as the namespace grew.

An upsert also asks for the records' own ids in that ``fetch``, to count records still
stored whole beside their chunks (loaded once without chunking): queries would find
both, so the run warns of them at the end.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from ..errors import ServerError
from ..mapping import CHUNK_KEY, chunk_id
from ..outcomes import Events
from ..transport import Caller, Client, RetryPolicy, deleted

WINDOW = 2
"""Chunk ids asked for above a record's count: one missing there hides none above it."""
IDS_PER_REQUEST = 1000
"""Ids in one ``fetch`` or ``delete``."""
MAX_COUNT = 1_000_000
"""A stored chunk's ``count`` above this is not believed: only the chunks found go."""
SHOWN = 5
"""Ids of whole records the warning names."""


class StaleChunks:
    """Deletes the chunks of records above their count, a batch's records at a time.

    ``whole`` also looks for the records stored whole (a sync deletes those itself).
    Called by the sender threads, each for the batch it settles.
    """

    def __init__(
        self, client: Client, policy: RetryPolicy, events: Events, *, whole: bool = True
    ) -> None:
        self._client = client
        self._policy = policy
        self._events = events
        self._whole = whole
        self.beside = 0
        """Records found stored whole beside their chunks."""
        self.first: list[str] = []
        self.uncertain = False
        """A delete was retried: what an unanswered attempt deleted is not counted."""
        self.requests = 0
        self.retries = 0
        self._lock = threading.Lock()

    def __call__(self, counts: Mapping[str, int], where: str) -> int | None:
        """Delete the chunks above ``counts[parent]`` of each record ``parent`` (settled
        by the batch ``where`` names); how many were deleted, or ``None`` (and a warning)
        when the index did not let it."""
        # A caller of its own: its retries are this call's alone.
        caller = Caller(self._client, self._policy)
        try:
            stale = self._find(caller, counts)
            retries = caller.retries
            count = sum(
                deleted(caller.call("delete", {"ids": ids}))
                for ids in _slices(_stale_ids(counts, stale))
            )
        except ServerError as exc:
            self._events.warning(
                f"{where}: the chunks its {len(counts):,} records had beyond their new count "
                f"could not be deleted ({exc.message}). Run the same command again to delete "
                "them."
            )
            return None
        finally:
            with self._lock:
                self.requests += caller.requests
                self.retries += caller.retries
        if caller.retries != retries:
            self.uncertain = True
        return count

    def _find(self, caller: Caller, counts: Mapping[str, int]) -> dict[str, int]:
        """The highest stale chunk number of each record that has stale chunks."""
        stale: dict[str, int] = {}
        above = dict(counts)
        whole = list(counts) if self._whole else []
        while above:
            asked = [chunk_id(p, n) for p, top in above.items() for n in _window(top)]
            found = self._fetch(caller, asked + whole)
            self._count_whole(whole, found[len(asked) :])
            higher: dict[str, int] = {}
            for parent, top in _tops(above, found):
                if top > stale.get(parent, counts[parent]):
                    stale[parent] = higher[parent] = top
            above, whole = higher, []
        return stale

    def _fetch(self, caller: Caller, ids: list[str]) -> list[Any]:
        found: list[Any] = []
        for part in _slices(ids):
            answer = caller.call(
                "fetch", {"ids": part, "includeData": False, "includeMetadata": True}
            )
            if not isinstance(answer, list) or len(answer) != len(part):
                raise ServerError("fetch did not answer one item per id asked")
            found += answer
        return found

    def _count_whole(self, parents: list[str], found: list[Any]) -> None:
        whole = [parent for parent, item in zip(parents, found, strict=True) if item is not None]
        if whole:
            with self._lock:
                self.beside += len(whole)
                self.first.extend(whole[: SHOWN - len(self.first)])

    def warnings(self) -> list[str]:
        """What to say at the end: records stored whole beside their chunks, a count of
        deleted chunks that may be short."""
        said = []
        if self.beside:
            ids = ", ".join(map(repr, self.first))
            said.append(
                f"{self.beside:,} records are also stored whole, beside their chunks "
                f"(first: {ids}): a query finds both. They were loaded without chunking; "
                "a sync with the same options deletes them, or delete those ids."
            )
        if self.uncertain:
            said.append(
                "chunks_deleted may be short: a delete of stale chunks was retried, and "
                "what an unanswered attempt deleted cannot be counted."
            )
        return said


def _window(top: int) -> range:
    return range(top + 1, top + 1 + WINDOW)


def _tops(above: Mapping[str, int], found: list[Any]) -> Iterator[tuple[str, int]]:
    """For each record with a chunk found above its count, the highest chunk number that
    chunk says its version had."""
    items = iter(found)
    for parent, top in above.items():
        for number in _window(top):
            item = next(items)
            if not isinstance(item, dict):
                continue
            chunk = (item.get("metadata") or {}).get(CHUNK_KEY)
            count = chunk.get("count") if isinstance(chunk, dict) else None
            if type(count) is int and number < count <= MAX_COUNT:
                number = count
            yield parent, number


def _stale_ids(counts: Mapping[str, int], stale: Mapping[str, int]) -> Iterator[str]:
    for parent, top in stale.items():
        for number in range(counts[parent] + 1, top + 1):
            yield chunk_id(parent, number)


def _slices(ids: Iterable[str]) -> Iterator[list[str]]:
    """``ids``, :data:`IDS_PER_REQUEST` at a time."""
    each = iter(ids)
    while part := list(itertools.islice(each, IDS_PER_REQUEST)):
        yield part
