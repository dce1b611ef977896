"""The reading loop: every input in turn, read, mapped and counted, as one stream of items
for :func:`~vupsert.run._batching.batches`.

Where a checkpoint says an input was settled up to some point, reading starts there and
counts what it passes over as skipped. Reading ends early, with :attr:`Reader.error` set,
when ``strict`` meets a bad record or an input breaks off; what was read before is still
sent. A run whose first records all fail the same way stops before anything is sent.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import replace
from typing import Any, BinaryIO

from ..config import option
from ..config.settings import Settings
from ..errors import CallerError, InputError, StrictModeError, UsageError, VupsertError
from ..inputs import display_name, input_size, is_stream, read_input
from ..mapping import Chunker, LongData, Mapper
from ..outcomes import Events, Summary
from ..records import Fresh, Position, Record, Rejection, Skip
from ._batching import Item, Piece
from ._checkpoint import Checkpoint, input_key
from ._columns import check_fields


def check_inputs(inputs: tuple[str, ...]) -> None:
    """Raise :class:`UsageError` for an input that is missing, a folder, or given twice."""
    seen: set[str] = set()
    for name in inputs:
        if is_stream(name):
            if name in seen:
                raise UsageError(f"{display_name(name)} is given twice.")
            seen.add(name)
            continue
        if not os.path.exists(name):
            raise UsageError(f"{name}: no such file.", hint="Check the path; use - to read stdin.")
        if os.path.isdir(name):
            raise UsageError(f"{name} is a folder, not a file.")
        key = input_key(name)
        if key in seen:
            raise UsageError(f"{name} is given twice.")
        seen.add(key)


def total_size(inputs: tuple[str, ...]) -> int | None:
    """The on-disk bytes of every input, for a progress total; ``None`` if one is unknown."""
    total = 0
    for name in inputs:
        size = input_size(name)
        if size is None:
            return None
        total += size
    return total


def input_order(inputs: tuple[str, ...]) -> Callable[[Rejection], tuple[int, int]]:
    """A sort key that puts rejections in input order: input, then line."""
    ranks = {display_name(name): rank for rank, name in enumerate(inputs)}
    return lambda rejection: (ranks.get(rejection.source, 0), rejection.line)


class Reader:
    def __init__(
        self,
        settings: Settings,
        summary: Summary,
        events: Events,
        *,
        checkpoint: Checkpoint | None,
        stopped: Callable[[], bool],
        stdin: BinaryIO | None = None,
        records: Iterable[Mapping[str, Any]] | None = None,
        index_info: Mapping[str, Any] | None = None,
    ) -> None:
        """``index_info`` (the index's ``/info``) names its model: records longer than it
        reads are counted and warned of."""
        self._settings = settings
        self._summary = summary
        self._events = events
        self._checkpoint = checkpoint
        self._stopped = stopped
        self._stdin = stdin
        self._records = records
        self.error: VupsertError | None = None
        """Why reading ended before the end of the inputs, once what was read is sent."""
        self._long = LongData.of_index(index_info, chunked=settings.mapping.chunk_size is not None)

    def items(self) -> Iterator[Item]:
        """Each item of every input, with the index of the input it came from, counted;
        then, once, a warning if records were longer than the index's model reads."""
        yield from self._items()
        warning = self._long.warning() if self._long is not None else None
        if warning is not None:
            self._events.warning(warning)

    def _items(self) -> Iterator[Item]:
        summary, strict, stopped = self._summary, self._settings.strict, self._stopped
        guard: _MisfitGuard | None = _MisfitGuard()
        for index, name in enumerate(self._settings.inputs):
            if stopped() or self.error is not None:
                return
            try:
                for item in self._mapped(index, name):
                    summary.records_read += 1
                    if type(item) is tuple:
                        # A record: its batch closes within 1,000 of them, and the run
                        # checks for a stop after each batch.
                        if guard is not None:
                            guard = None
                        yield index, item
                        continue
                    if guard is not None and (
                        not isinstance(item, (Rejection, Skip)) or not guard.see(item)
                    ):
                        guard = None
                    if guard is not None and guard.misfit is not None:
                        # Ends the stream after this one: the records read are rejected.
                        self.error = guard.misfit
                    if type(item) is Skip:
                        summary.records_skipped += 1
                    elif strict and type(item) is Rejection:
                        # Ends the stream here: what was read before it is still sent.
                        self.error = StrictModeError(
                            f"{item.where}: {item.reason}",
                            hint=f"Stopped by {option('strict', True)} at the first bad "
                            f"record. Fix it, or run without {option('strict', True)} to "
                            "reject bad records and carry on.",
                        )
                    yield index, item
                    # A span of skips or rejections can run long before its batch closes.
                    if self.error is not None or stopped():
                        return
            except (InputError, CallerError) as exc:
                # An input that breaks off (a truncated archive, a generator that raised):
                # the records read before the break are sent like any others, then the run
                # stops.
                self.error = exc

    def _mapped(self, index: int, name: str) -> Iterator[Piece]:
        settings, summary = self._settings, self._summary
        position = None
        if self._checkpoint is not None:
            start = self._checkpoint.start(index)
            position = start.position
            summary.records_read += start.skipped
            summary.records_skipped += start.skipped
        # A checkpointed file may still be written to (the cron case): a last line
        # without its newline is left for the next run rather than read half-written.
        read = replace(settings.read, whole_lines=self._checkpoint is not None)
        opened = read_input(
            name,
            read,
            start=position,
            stdin=self._stdin,
            records=self._records,
            on_bytes=self._events.bytes_read,
            on_warning=self._events.warning,
        )
        mapper = Mapper(settings.mapping, cells=opened.format.cells)
        items = check_fields(mapper, opened.source, opened.items, self._events.warning)
        return self._stages(mapper.records(opened.source, items), position)

    def _stages(
        self, items: Iterator[Fresh | Record | Rejection | Skip], start: Position | None
    ) -> Iterator[Piece]:
        """The mapped records, chunked if asked (a record's chunks are one item), and
        looked at for long data."""
        stream: Iterator[Piece] = items
        if self._settings.mapping.chunk_size is not None:
            stream = Chunker(self._settings.mapping).chunks(items, start)
        if self._long is not None:
            stream = self._long.watch(stream)
        return stream


class _MisfitGuard:
    """Stops a run whose first records are all rejected for one reason, before anything
    is sent: the options do not fit the input, and the rejects file would be as long
    as the input. The records read are rejected; the rest is not read."""

    LIMIT = 100

    def __init__(self) -> None:
        self.first: Rejection | None = None
        self.kind = ""
        self.count = 0
        self.misfit: UsageError | None = None
        """Why the run stops, once the limit is reached."""

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
            self.misfit = UsageError(
                f"{self.first.where}: {self.first.reason}",
                hint=f"So were the next {self.LIMIT - 1} records, and none was valid, so "
                "nothing was sent and the rest was not read: the mapping options do not "
                "fit this input. Fix them and run the same command again.",
            )
        return True


_DIGITS = re.compile(r"\d+")
