"""Chunks a shorter version of a record left behind: deleted once its new chunks landed.

After each batch that completes chunked records, one ``delete`` by metadata filter
removes every chunk of those records numbered above their new count
(:func:`stale_filter`), whichever of them are there: a chunk missing in between (refused
once, deleted by hand) hides none above it. Upstash documents a delete by filter as a
scan of the namespace. An upsert also fetches the records' own ids, to count records
still stored whole beside their chunks (loaded once without chunking): queries would
find both, so the run warns of them at the end.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

from .chunking import CHUNK_KEY
from .client import Client
from .deleting import deleted
from .errors import ServerError
from .outcomes import Events
from .retrying import Caller
from .sending import RetryPolicy

SHOWN = 5
"""Ids of whole records the warning names."""


def stale_filter(counts: Mapping[str, int]) -> str:
    """A metadata filter matching every chunk of each record numbered above its count."""
    by_count: dict[int, list[str]] = {}
    for parent, count in counts.items():
        by_count.setdefault(count, []).append(parent)
    return " OR ".join(
        f"({CHUNK_KEY}.number > {count} AND {CHUNK_KEY}.parent IN "
        f"({', '.join(map(_quoted, parents))}))"
        for count, parents in sorted(by_count.items())
    )


def _quoted(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


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
            if self._whole:
                self._look_for_whole(caller, list(counts))
            before = caller.retries
            count = deleted(caller.call("delete", {"filter": stale_filter(counts)}))
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
        if caller.retries != before:
            self.uncertain = True
        return count

    def _look_for_whole(self, caller: Caller, parents: list[str]) -> None:
        found = caller.call(
            "fetch", {"ids": parents, "includeData": False, "includeMetadata": False}
        )
        if not isinstance(found, list) or len(found) != len(parents):
            raise ServerError("fetch did not answer one item per id asked")
        whole = [parent for parent, item in zip(parents, found, strict=True) if item is not None]
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
