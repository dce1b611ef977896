"""``vupsert delete``: records out of a namespace, by id, by id prefix or by metadata filter.

Ids come from a list (:func:`read_ids`): plain text, one id a line, each read exactly as
written but for its line end; or JSON Lines, a JSON array, CSV, TSV or Parquet records
whose id field is used, so a rejects file or an export works as it is. They go 1,000 to a
request, with the retries and pacing upserts have, and are counted by what the index held:
each batch is fetched before it is deleted (:func:`held`), so the count stays true when a
delete is applied, its answer lost and the request sent again, and ids the index does not
hold cost no delete. A dry run stops after the fetch.

A prefix or a filter is one request, counted by the index's answer. When an answer was
lost and the request sent again, the answer that came does not count what the lost one
removed: the summary says the count is uncertain rather than give a wrong one. A filter
is checked before anything is sent; its dry run counts on a scan of the namespace, with
the local index's reading of the filter language.
"""

from __future__ import annotations

import io
import itertools
import os
import threading
import time
from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future
from typing import IO, TYPE_CHECKING, Any, BinaryIO, TypeVar, cast, get_args

import orjson

from ..config import option
from ..config.options import check_choice
from ..config.settings import ENCODING, ID_FIELD, IDS_FORMAT, IdsFormat, ReadOptions, check_encoding
from ..errors import InputError, ServerError, UsageError, VupsertError
from ..inputs import FORMATS, Reading, Stream, Text, elements, format_named_by, read_stream
from ..outcomes import DeleteSummary
from ..records import Position, Rejection, Row, json_type
from ..transport import Caller, deleted
from ._namespaces import checked_namespace
from ._scope import pages

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer


BATCH = 1000
"""Ids per ``fetch`` and ``delete`` request."""
IDS_SOURCE = "<ids>"
"""How messages name ids handed over from Python as an iterable: ``<ids>:7``."""

_SNIFF = 4096
"""Bytes of a list's first line that tell its format: more is never needed."""
_READ = 256 * 1024
_BOM = b"\xef\xbb\xbf"
_BLANK = b" \t\r\n"
_EXACT_FLOAT_INT = 2**53


Ids = str | os.PathLike[str] | IO[bytes] | IO[str] | Iterable[Any]
"""What :func:`delete` takes as ``ids``: a path (``-`` for stdin), an open file (binary or
text), or an iterable of ids (strings, numbers, or dicts holding one)."""


def check_deletion(
    ids: Ids | None,
    prefix: str | None,
    filter: str | None,
    format: str,
    encoding: str = ENCODING,
) -> None:
    """Refuse, before anything is asked of the index, a deletion that names not exactly
    one of ``ids``, ``prefix`` and ``filter``, a format of ids there is not, or an
    encoding vupsert cannot read lines in."""
    chosen = [
        name
        for name, value in (("ids", ids), ("prefix", prefix), ("filter", filter))
        if value is not None
    ]
    if len(chosen) != 1:
        raise UsageError(
            f"Give exactly one of {option('ids')}, {option('prefix')} and {option('filter')}"
            + (f" (got {', '.join(chosen)})." if chosen else ".")
        )
    check_choice({"format": format}, "format", get_args(IdsFormat))
    check_encoding(encoding)


def delete(
    caller: Caller,
    *,
    ids: Ids | None = None,
    prefix: str | None = None,
    filter: str | None = None,
    id_field: str = ID_FIELD,
    format: IdsFormat = IDS_FORMAT,
    encoding: str = ENCODING,
    dry_run: bool = False,
    confirm: Confirm | None = None,
) -> DeleteSummary:
    """Delete from the caller's namespace the ids listed, every id that starts with
    ``prefix``, or every record whose metadata matches ``filter`` (exactly one; see
    :func:`check_deletion`); a list of ids in bytes is read in ``encoding``; ``dry_run``
    counts what would be deleted, and ``confirm``, given how many records a prefix or a
    filter matches, says whether to delete them. An error that stops it is raised with the
    summary on it."""
    summary = DeleteSummary(namespace=caller.client.namespace, dry_run=dry_run)
    started = time.monotonic()
    _, warning = checked_namespace(caller.client)
    summary = DeleteSummary(namespace=caller.client.namespace, dry_run=dry_run)
    if warning is not None:
        summary.warnings.append(warning)
    try:
        if prefix is not None:
            delete_prefix(caller, prefix, summary, confirm)
        elif filter is not None:
            delete_filter(caller, filter, summary, confirm)
        else:
            delete_ids(caller, _ids(ids, summary, id_field, format, encoding), summary)
    except VupsertError as error:
        error.summary = summary
        raise
    finally:
        summary.requests, summary.retries = caller.requests, caller.retries
        summary.elapsed_s = time.monotonic() - started
    return summary


def _ids(
    ids: Ids | None, summary: DeleteSummary, id_field: str, format: IdsFormat, encoding: str
) -> Iterable[str]:
    if isinstance(ids, (str, os.PathLike)):
        path = os.fspath(ids)
        return read_ids(path, summary, id_field=id_field, format=format, encoding=encoding)
    if isinstance(ids, (bytes, bytearray)):
        raise UsageError("ids is bytes: pass a path, a file, or an iterable of ids.")
    if isinstance(ids, io.TextIOBase):
        ids, encoding = text_stream(ids), "utf-8"  # decoded already, by the file
    if hasattr(ids, "read"):
        stdin = cast(BinaryIO, ids)
        return read_ids(
            "-", summary, id_field=id_field, format=format, stdin=stdin, encoding=encoding
        )
    assert ids is not None
    return given_ids(ids, summary, id_field)


# --- the list of ids --------------------------------------------------------------------


def read_ids(
    name: str,
    summary: DeleteSummary,
    *,
    id_field: str = ID_FIELD,
    format: IdsFormat = IDS_FORMAT,
    stdin: BinaryIO | None = None,
    encoding: str = ENCODING,
) -> Iterator[str]:
    """The ids an input lists (``name`` a path, or ``-`` for ``stdin``), read as
    ``format`` says. ``auto``: CSV, TSV, JSON or Parquet by the file's name, else by its
    first line: JSON Lines when it opens an object, a JSON array when it opens one, plain
    text (one id a line, as written) otherwise; text in ``encoding``. An item without an
    id is counted on ``summary``, not fatal."""
    reading = Reading(name, ReadOptions(encoding=encoding), stdin=stdin)
    fmt = format_named_by(name) if format == "auto" else FORMATS.get(format)
    if fmt is not None and fmt.tabular:
        summary.ids_format = fmt.name
        return _row_ids(fmt.rows(reading), id_field, summary)
    listed = format if fmt is None else fmt.name  # "auto" and "text" are a list's own

    def produce(stream: Stream, source: str, start: Position | None) -> Iterator[str]:
        return _listed_ids(stream, source, listed, id_field, summary, Text(encoding, inline=True))

    return read_stream(reading, produce)


def given_ids(
    items: Iterable[Any], summary: DeleteSummary, id_field: str = ID_FIELD
) -> Iterator[str]:
    """Ids handed over from Python: each string as it is, a number as its digits, a dict
    by its ``id_field``; anything else is counted as an item without an id."""
    for number, item in enumerate(items, 1):
        found = _take(item, f"{IDS_SOURCE}:{number}", id_field, summary)
        if found is not None:
            yield found


def text_stream(lines: Iterable[str]) -> Stream:
    """A text file (or any iterable of lines) as the byte stream :func:`read_ids` reads."""
    return _stream(line.encode("utf-8", "surrogateescape") for line in lines)


def id_of(value: Any, id_field: str = ID_FIELD) -> str:
    """The id ``upsert`` gives a record (``value`` a dict, by ``id_field``: a key that
    literally holds its dots first, else a dotted path), or a bare string or number;
    ``ValueError`` saying why there is none."""
    if type(value) is dict:
        found = _field(value, id_field)
        if found is _MISSING:
            raise ValueError(f'no "{id_field}" field')
        what = f'the "{id_field}" field'
    else:
        found, what = value, "the item"
    if type(found) is str:
        if found:
            return found
        raise ValueError(f"{what} is empty")
    if type(found) is int:
        return str(found)
    if type(found) is float and not (found.is_integer() and abs(found) >= _EXACT_FLOAT_INT):
        return str(found)
    expected = "an id" if what == "the item" else "a string or number"
    raise ValueError(f"{what} is not {expected} (got {json_type(found)})")


_MISSING = object()


def _field(value: dict[str, Any], path: str) -> Any:
    found = value.get(path, _MISSING)
    if found is not _MISSING or "." not in path:
        return found
    node: Any = value
    for part in path.split("."):
        if type(node) is not dict:
            return _MISSING
        node = node.get(part, _MISSING)
    return node


def _take(value: Any, where: str, id_field: str, summary: DeleteSummary) -> str | None:
    try:
        found = id_of(value, id_field)
    except ValueError as exc:
        summary.skipped(where, str(exc))
        return None
    summary.ids_read += 1
    return found


def _row_ids(
    rows: Iterable[Row | Rejection], id_field: str, summary: DeleteSummary
) -> Iterator[str]:
    for row in rows:
        if isinstance(row, Rejection):
            summary.skipped(row.where, row.reason)
            continue
        found = _take(row.value, f"{row.source}:{row.line}", id_field, summary)
        if found is not None:
            yield found


def _listed_ids(
    stream: Stream, source: str, format: str, id_field: str, summary: DeleteSummary, text: Text
) -> Iterator[str]:
    """A list that is not a table: text, JSON Lines or a JSON array, told by its first line
    unless ``format`` says; in ``text``'s encoding."""
    head = _head(stream)
    first = b"".join(head).removeprefix(_BOM).lstrip(_BLANK)
    if format == "auto":
        format = _sniffed(first)
    elif format == "json" and first.startswith(b"{"):
        format = "jsonl"  # JSON Lines named .json, as BigQuery writes them
    summary.ids_format = format
    if format == "json":
        replayed = _stream(itertools.chain(head, _rest(stream)))
        return _array_ids(elements(replayed, source, None, text), source, id_field, summary)
    if head and not head[-1].endswith(b"\n"):
        head[-1] += stream.readline()  # the first line was cut at _SNIFF bytes
    lines = enumerate(itertools.chain(head, stream), 1)
    if format == "jsonl":
        return _json_line_ids(lines, source, id_field, summary, text)
    return _text_ids(lines, source, summary, text)


def _head(stream: Stream) -> list[bytes]:
    """The lines up to the first that is not blank space (at most ``_SNIFF`` bytes of it)."""
    head: list[bytes] = []
    while True:
        line = stream.readline(_SNIFF)
        if not line:
            return head
        head.append(line)
        if line.removeprefix(_BOM).strip(_BLANK):
            return head


def _sniffed(first: bytes) -> str:
    if first.startswith(b"{"):
        return "jsonl"
    # "[draft] notes" is an id; "[", '["a",' and '[{"id":' open arrays.
    if first.startswith(b"[") and first[1:].lstrip(_BLANK)[:1] in (b"", b"{", b'"', b"]"):
        return "json"
    return "text"


def _rest(stream: Stream) -> Iterator[bytes]:
    return iter(lambda: stream.read1(_READ), b"")


def _text_ids(
    lines: Iterator[tuple[int, bytes]], source: str, summary: DeleteSummary, text: Text
) -> Iterator[str]:
    for number, line in lines:
        if line.endswith(b"\n"):
            line = line[:-2] if line.endswith(b"\r\n") else line[:-1]
        if number == 1:
            line = line.removeprefix(_BOM)
        if not line:
            continue
        try:
            id_ = text.decode(line)
        except UnicodeDecodeError as exc:
            reason = text.invalid(exc, line, source, number, "the line")
            summary.skipped(f"{source}:{number}", reason)
            continue
        summary.ids_read += 1
        yield id_


def _json_line_ids(
    lines: Iterator[tuple[int, bytes]],
    source: str,
    id_field: str,
    summary: DeleteSummary,
    text: Text,
) -> Iterator[str]:
    for number, line in lines:
        data = (line.removeprefix(_BOM) if number == 1 else line).strip(_BLANK)
        if not data:
            continue
        try:
            value = orjson.loads(text.transcode(data) if text.transcode else data)
        except UnicodeDecodeError as exc:
            reason = text.invalid(exc, data, source, number, "the line")
            summary.skipped(f"{source}:{number}", reason)
            continue
        except orjson.JSONDecodeError as exc:
            summary.skipped(f"{source}:{number}", f"not valid JSON: {exc.msg}")
            continue
        found = _take(value, f"{source}:{number}", id_field, summary)
        if found is not None:
            yield found


def _array_ids(
    items: Iterator[Any], source: str, id_field: str, summary: DeleteSummary
) -> Iterator[str]:
    for item in items:
        if isinstance(item, Rejection):
            # The array reader takes objects: an id string (or number) comes back as
            # the element's text, and is an id here.
            try:
                value = orjson.loads(item.raw or "")
            except orjson.JSONDecodeError:
                summary.skipped(item.where, item.reason)
                continue
            where = item.where
        else:
            number, _, value, _ = item
            where = f"{source}:{number}"
        found = _take(value, where, id_field, summary)
        if found is not None:
            yield found


def _stream(chunks: Iterator[bytes]) -> Stream:
    return io.BufferedReader(cast(io.RawIOBase, _Chunks(chunks)))


class _Chunks(io.RawIOBase):
    """Chunks of bytes read as one stream."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._view = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        while not self._view:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._view = memoryview(chunk)
        target = memoryview(buffer).cast("B")
        n = min(len(target), len(self._view))
        target[:n] = self._view[:n]
        self._view = self._view[n:]
        return n


# --- deleting ---------------------------------------------------------------------------


def held(caller: Caller, ids: Sequence[str]) -> list[str]:
    """Which of ``ids`` (at most :data:`BATCH`) the index holds: one ``fetch`` of ids alone."""
    found = caller.call("fetch", {"ids": list(ids), "includeData": False, "includeMetadata": False})
    if not isinstance(found, list):
        raise ServerError(f"fetch answered {str(found)[:200]!r}, not a list of vectors.")
    there = {str(v["id"]) for v in found if isinstance(v, dict) and "id" in v}
    return [id_ for id_ in ids if id_ in there]


def delete_held(caller: Caller, ids: Sequence[str]) -> int:
    """Delete ``ids``, which the index holds (a fetch or a scan just found them), and
    return how many they are: counted from the ids, not from the index's answer, which
    counts nothing when a first attempt was applied, its answer lost and the request sent
    again."""
    distinct = list(dict.fromkeys(ids))
    if distinct:
        caller.call("delete", {"ids": distinct})
    return len(distinct)


def delete_ids(caller: Caller, ids: Iterable[str], summary: DeleteSummary) -> None:
    """Delete ``ids``, :data:`BATCH` distinct ids at a time, counting those the index held
    (a dry run counts them, and deletes nothing). Ids read before a break in the list
    are deleted before the break is raised."""
    if summary.dry_run:
        seen = _Seen()
        for batch in _batches(ids):
            summary.records_deleted += sum(1 for id_ in held(caller, batch) if seen.add(id_))
        return
    # The next batch is fetched while one is deleted, by a caller with pacing of its own:
    # a clean run takes little longer than its deletes alone.
    fetcher = caller.with_own_pacing()
    try:
        _fetch_ahead(caller, fetcher, _batches(ids), summary)
    finally:
        caller.requests += fetcher.requests
        caller.retries += fetcher.retries


def _fetch_ahead(
    caller: Caller, fetcher: Caller, batches: Iterator[list[str]], summary: DeleteSummary
) -> None:
    ahead: Future[list[str]] | None = None
    last: list[str] = []
    try:
        for batch in batches:
            fetching = _in_background(held, fetcher, batch)
            if ahead is not None:
                last = _delete_fetched(caller, ahead.result(), last, summary)
            ahead = fetching
    except InputError:
        if ahead is not None:
            _delete_fetched(caller, ahead.result(), last, summary)
        raise
    if ahead is not None:
        _delete_fetched(caller, ahead.result(), last, summary)


def _batches(ids: Iterable[str]) -> Iterator[list[str]]:
    """Distinct ids, :data:`BATCH` at a time; after a break in the list, the ids before it,
    then the break."""
    batch: dict[str, None] = {}
    try:
        for id_ in ids:
            batch[id_] = None
            if len(batch) == BATCH:
                yield list(batch)
                batch.clear()
    except InputError:
        if batch:
            yield list(batch)
        raise
    if batch:
        yield list(batch)


def _delete_fetched(
    caller: Caller, there: list[str], last: list[str], summary: DeleteSummary
) -> list[str]:
    """Delete the ids a fetch found, but those the batch before deleted (the fetch may have
    come first): the ids deleted."""
    if last:
        before = set(last)
        there = [id_ for id_ in there if id_ not in before]
    unanswered = caller.unanswered
    try:
        summary.records_deleted += delete_held(caller, there)
    except VupsertError:
        # An attempt that lost its answer may have deleted them: not counted, not known.
        if caller.unanswered > unanswered:
            summary.count_uncertain = True
        raise
    return there


_T = TypeVar("_T")


def _in_background(work: Callable[..., _T], *args: Any) -> Future[_T]:
    """``work(*args)`` on a thread of its own, which an interrupted run does not wait for."""
    future: Future[_T] = Future()

    def run() -> None:
        try:
            future.set_result(work(*args))
        except BaseException as exc:
            future.set_exception(exc)

    threading.Thread(target=run, name="vupsert-fetch", daemon=True).start()
    return future


class _Seen:
    """The ids a dry run counted, so that one listed twice counts once: a 64-bit hash of
    each (as :mod:`vupsert.ops._scope` keeps them), in sorted arrays of 8 bytes an id."""

    _FREEZE = 1 << 18

    def __init__(self) -> None:
        self._recent: set[int] = set()
        self._frozen: list[array[int]] = []

    def add(self, id_: str) -> bool:
        """Whether ``id_`` is new (and now seen)."""
        hashed = hash(id_)
        if hashed in self._recent or any(_holds(block, hashed) for block in self._frozen):
            return False
        self._recent.add(hashed)
        if len(self._recent) >= self._FREEZE:
            self._frozen.append(array("q", sorted(self._recent)))
            self._recent = set()
        return True


def _holds(block: array[int], hashed: int) -> bool:
    at = bisect_left(block, hashed)
    return at < len(block) and block[at] == hashed


Confirm = Callable[[int], bool]
"""Asked, with how many records match, before a prefix or a filter deletes them: whether
to go on."""


def delete_prefix(
    caller: Caller, prefix: str, summary: DeleteSummary, confirm: Confirm | None = None
) -> None:
    if not prefix:
        raise UsageError(f"{option('prefix')} is empty: it would delete the whole namespace.")

    def count() -> int:
        return sum(len(p) for p in pages(caller, prefix=prefix, data=False))

    if _counted(count, summary, confirm):
        _delete_matching(caller, {"prefix": prefix}, summary)


def _counted(count: Callable[[], int], summary: DeleteSummary, confirm: Confirm | None) -> bool:
    """Whether to delete what matches: not in a dry run (which counts it), nor when
    ``confirm``, told how many records match, says no (or none does)."""
    if not summary.dry_run and confirm is None:
        return True
    matching = count()
    if summary.dry_run:
        summary.records_deleted = matching
        return False
    if not matching:
        return False
    if confirm is not None and not confirm(matching):
        raise UsageError("Nothing deleted: the deletion was not confirmed.")
    return True


def delete_filter(
    caller: Caller, expression: str, summary: DeleteSummary, confirm: Confirm | None = None
) -> None:
    from ..filters import FilterError, compile_filter

    try:
        predicate = compile_filter(expression)
    except FilterError as exc:
        raise UsageError(
            f"{option('filter', expression)}: {exc}",
            hint="Write it in Upstash's filter language, e.g. \"genre = 'drama' AND year < 2000\".",
        ) from None
    if predicate is None:
        raise UsageError(f"{option('filter')} is empty: it would delete the whole namespace.")

    def count() -> int:
        return sum(
            sum(1 for vector in page if predicate(vector.get("metadata")))
            for page in pages(caller, prefix=None, data=False, metadata=True)
        )

    if _counted(count, summary, confirm):
        _delete_matching(caller, {"filter": expression}, summary)


def _delete_matching(caller: Caller, payload: dict[str, str], summary: DeleteSummary) -> None:
    """One delete by prefix or filter: the index's count, uncertain when an answer was
    lost on the way (the attempt that lost it may have deleted what it matched)."""
    before = caller.unanswered
    try:
        summary.records_deleted = deleted(caller.call("delete", payload))
    finally:
        if caller.unanswered > before:
            summary.count_uncertain = True
