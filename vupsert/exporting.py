"""``vupsert export``: a namespace (or the ids under a prefix) as JSON Lines
``{id, data, metadata}``, one paged scan, written as it comes.

``vupsert upsert`` of the file into another namespace or index reproduces it: a backup, a
migration, a copy for a staging index. A file is written beside its final name and
renamed into place at the end (``.gz`` compressed), so a failed export leaves no half
file; a vector stored without data (upserted as a vector, not as text) is written
without it and counted, since ``upsert-data`` cannot take it back.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import orjson

from .errors import OutputError
from .outcomes import ExportSummary
from .retrying import Caller
from .scope import pages


def line(vector: dict[str, Any]) -> bytes:
    """A stored vector as the JSON Lines record that loads it back."""
    record: dict[str, Any] = {"id": vector["id"]}
    if vector.get("data") is not None:
        record["data"] = vector["data"]
    if vector.get("metadata"):
        record["metadata"] = vector["metadata"]
    return orjson.dumps(record) + b"\n"


def export(
    caller: Caller,
    write: Callable[[bytes], object],
    summary: ExportSummary,
    *,
    on_page: Callable[[int], None] | None = None,
) -> None:
    """Write every vector of the scope through ``write``, counting into ``summary``."""
    started = time.monotonic()
    try:
        for page in pages(caller, prefix=summary.prefix, data=True):
            write(b"".join(map(line, page)))
            summary.records_exported += len(page)
            summary.records_without_data += sum(1 for v in page if v.get("data") is None)
            if on_page is not None:
                on_page(len(page))
    finally:
        summary.requests, summary.retries = caller.requests, caller.retries
        summary.elapsed_s = time.monotonic() - started


@contextlib.contextmanager
def file_writer(path: Path) -> Iterator[Callable[[bytes], object]]:
    """Writes to a file beside ``path``, renamed to it when the block ends well (removed
    otherwise); ``.gz`` by ``path``'s name."""
    directory = path.resolve().parent
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
    except OSError as exc:
        raise OutputError(path, exc) from None
    handle: IO[bytes] = os.fdopen(fd, "wb")
    try:
        if path.suffix == ".gz":
            # Closing the gzip stream writes its trailer and leaves the file open.
            with gzip.GzipFile(filename=path.name, mode="wb", fileobj=handle) as packed:
                yield packed.write
        else:
            yield handle.write
        handle.flush()
        os.fsync(handle.fileno())
        handle.close()
        os.replace(tmp, path)
    except OSError as exc:
        handle.close()
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise OutputError(path, exc) from None
    except BaseException:
        handle.close()
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
