"""``vupsert delete``: records out of a namespace, by id, by id prefix or by metadata filter.

Ids come from a file (or stdin) of ids one per line, or of JSON Lines or CSV records
whose id field is used, so a rejects file or an export works as it is. They are deleted
1,000 to a request, with the retries and pacing upserts have. A filter is checked before
anything is sent. A dry run deletes nothing and counts what would go: the ids the index
holds, the ids under the prefix, the records the filter matches (evaluated here, on a
scan of the namespace, with the local index's reading of the filter language).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, BinaryIO

import orjson

from .errors import UsageError
from .outcomes import DeleteSummary
from .retrying import Caller
from .scope import pages
from .settings import ID_FIELD, ReadOptions, option
from .sources import detect_format, iter_lines, iter_rows

BATCH = 1000
"""Ids per ``delete`` request."""


def read_ids(
    name: str, summary: DeleteSummary, *, id_field: str = ID_FIELD, stdin: BinaryIO | None = None
) -> Iterator[str]:
    """The ids a file lists: plain lines, or the ``id_field`` of JSON Lines or CSV/TSV
    records (by the file's name). A record line without an id is counted, not fatal."""
    path = id_field.split(".")
    if detect_format(name, "auto") in ("csv", "tsv"):
        for row in iter_rows(name, ReadOptions(), stdin=stdin):
            value = getattr(row, "value", None)
            found = value.get(id_field) if isinstance(value, dict) else None
            if found:
                summary.ids_read += 1
                yield str(found)
            else:
                summary.lines_without_id += 1
        return
    for _, raw in iter_lines(name, stdin=stdin):
        text = raw.strip()
        if text.startswith(b"\xef\xbb\xbf"):
            text = text[3:].strip()
        if not text:
            continue
        if text.startswith(b"{"):
            found = _field(text, path)
            if found is None:
                summary.lines_without_id += 1
                continue
            summary.ids_read += 1
            yield found
            continue
        summary.ids_read += 1
        yield text.decode("utf-8", "surrogateescape")


def _field(text: bytes, path: list[str]) -> str | None:
    try:
        node: Any = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    for part in path:
        node = node.get(part) if isinstance(node, dict) else None
    if isinstance(node, bool) or not isinstance(node, (str, int)) or node == "":
        return None
    return str(node)


def delete_ids(caller: Caller, ids: Iterable[str], summary: DeleteSummary) -> None:
    """Delete ``ids``, a request per 1,000 (a dry run fetches them to count those held)."""
    batch: list[str] = []
    for id_ in ids:
        batch.append(id_)
        if len(batch) == BATCH:
            _delete_batch(caller, batch, summary)
            batch = []
    if batch:
        _delete_batch(caller, batch, summary)


def _delete_batch(caller: Caller, ids: list[str], summary: DeleteSummary) -> None:
    if summary.dry_run:
        found = caller.call("fetch", {"ids": ids, "includeData": False})
        summary.records_deleted += sum(1 for v in found or [] if v is not None)
        return
    summary.records_deleted += deleted(caller.call("delete", {"ids": ids}))


def delete_prefix(caller: Caller, prefix: str, summary: DeleteSummary) -> None:
    if not prefix:
        raise UsageError(f"{option('prefix')} is empty: it would delete the whole namespace.")
    if summary.dry_run:
        summary.records_deleted = sum(len(p) for p in pages(caller, prefix=prefix, data=False))
        return
    summary.records_deleted = deleted(caller.call("delete", {"prefix": prefix}))


def delete_filter(caller: Caller, expression: str, summary: DeleteSummary) -> None:
    from .server._filter import FilterError, compile_filter

    try:
        predicate = compile_filter(expression)
    except FilterError as exc:
        raise UsageError(
            f"{option('filter', expression)}: {exc}",
            hint="Write it in Upstash's filter language, e.g. \"genre = 'drama' AND year < 2000\".",
        ) from None
    if predicate is None:
        raise UsageError(f"{option('filter')} is empty: it would delete the whole namespace.")
    if summary.dry_run:
        summary.records_deleted = sum(
            sum(1 for vector in page if predicate(vector.get("metadata")))
            for page in pages(caller, prefix=None, data=False, metadata=True)
        )
        return
    summary.records_deleted = deleted(caller.call("delete", {"filter": expression}))


def deleted(result: Any) -> int:
    """The count of a ``delete`` answer."""
    if isinstance(result, dict) and isinstance(result.get("deleted"), int):
        return int(result["deleted"])
    return 0
