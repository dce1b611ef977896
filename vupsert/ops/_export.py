"""``vupsert export``: a namespace (or the ids under a prefix) as JSON Lines
``{id, data, metadata}``, one paged scan, written as it comes.

``vupsert upsert`` of the file into another namespace or index reproduces it: a backup, a
migration, a copy for a staging index. Where it goes (:func:`output_writer`): ``-`` is
stdout; a regular file (or a new one) is written beside its final name and renamed into
place at the end, so a failed export leaves no half file and the old one whole; a symlink
has its target replaced so, and stays a link; a pipe, a character device or an open
descriptor (``/dev/stdout``) is written through, as it cannot be replaced. ``.gz`` by the
name compresses. A vector stored without data (upserted as a vector, not as text) is
written without it and counted, since ``upsert-data`` cannot take it back.
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import os
import stat
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import orjson

from ..errors import OutputError, UsageError, VupsertError
from ..outcomes import ExportSummary
from ..transport import Caller
from ._namespaces import checked_namespace, stored_count
from ._scope import pages

STDOUT = "-"
"""The output name that means standard output."""
STDOUT_NAME = "<stdout>"
"""How messages name standard output."""

Write = Callable[[bytes], object]

_OPEN_DESCRIPTORS = ("/dev/stdout", "/dev/stderr", "/dev/fd/", "/proc/self/fd/")
"""Paths that name a descriptor already open (a shell's ``>>`` file): written through."""


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
    output: str | os.PathLike[str] | IO[bytes],
    *,
    prefix: str | None = None,
    progress: Callable[[int, int | None], object] | None = None,
) -> ExportSummary:
    """Write the caller's namespace (or the ids that start with ``prefix``) to ``output``
    (see :func:`output_writer`); ``progress(exported, total)`` hears of each page, the
    total being the namespace's count from ``/info`` (``None`` under a prefix). An error
    that stops the export is raised with the summary on it."""
    namespace = caller.client.namespace
    # Before anything is opened: a namespace the index lacks writes no file.
    info, warning = checked_namespace(caller.client)
    summary = ExportSummary(namespace=namespace, prefix=prefix or None)
    if warning is not None:
        summary.warnings.append(warning)
    on_page = None
    if progress is not None:
        total = None if prefix else stored_count(info, namespace)

        def on_page(n: int) -> None:
            progress(summary.records_exported, total)

    if isinstance(output, (str, os.PathLike)) and os.fspath(output) != STDOUT:
        summary.output = os.fspath(output)
    try:
        with output_writer(output) as write:
            _write_scope(caller, write, summary, on_page=on_page)
    except VupsertError as error:
        error.summary = summary
        raise
    return summary


def _write_scope(
    caller: Caller,
    write: Write,
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
def output_writer(output: str | os.PathLike[str] | IO[bytes]) -> Iterator[Write]:
    """Writes to ``output``: a path (``-`` for stdout) or a binary file, whose errors
    (a full disk) raise :class:`OutputError` naming it. A broken pipe on a file object
    is left to the caller: its reader has gone, which is no error of the export."""
    if not isinstance(output, (str, os.PathLike)):
        with _stream_writer(output, _stream_name(output)) as write:
            yield write
    elif os.fspath(output) == STDOUT:
        with _stream_writer(sys.stdout.buffer, STDOUT_NAME) as write:
            yield write
    else:
        with file_writer(Path(output)) as write:
            yield write


@contextlib.contextmanager
def file_writer(path: Path) -> Iterator[Write]:
    """Writes to the file ``path`` names, as what it is: replaced whole when it is a
    regular file (or none yet), written through when it is a pipe or a device."""
    try:
        found = os.stat(path)
    except FileNotFoundError:
        found = None
    except OSError as exc:
        raise _output_error(path, exc) from None
    if str(path).startswith(_OPEN_DESCRIPTORS) or (
        found is not None and (stat.S_ISFIFO(found.st_mode) or stat.S_ISCHR(found.st_mode))
    ):
        with _written_through(path) as write:
            yield write
        return
    if found is not None and not stat.S_ISREG(found.st_mode):
        raise UsageError(
            f"{path} is {_kind(found.st_mode)}: an export goes to a file, a pipe or a "
            "character device.",
            hint=f"Give a file's path (or {STDOUT} for stdout).",
        )
    with _replaced(path, found) as write:
        yield write


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISBLK(mode):
        return "a block device"
    return "a socket" if stat.S_ISSOCK(mode) else "not a file"


@contextlib.contextmanager
def _replaced(path: Path, found: os.stat_result | None) -> Iterator[Write]:
    """Writes to a new file beside ``path`` (beside its target, for a symlink), renamed
    over it when the block ends well (removed otherwise). The file keeps the mode and
    owner of the one it replaces; a new one gets the umask's."""
    target = Path(os.path.realpath(path))
    try:
        fd, tmp = _create_beside(target, found)
    except OSError as exc:
        raise _output_error(path, exc) from None
    handle: IO[bytes] = os.fdopen(fd, "wb")
    try:
        with _compressed(handle, path) as write:
            yield write
        handle.flush()
        os.fsync(handle.fileno())
        handle.close()
        os.replace(tmp, target)
    except OSError as exc:
        _discard(handle, tmp)
        raise _output_error(path, exc) from None
    except BaseException:
        _discard(handle, tmp)
        raise
    _sync_directory(target.parent)


def _create_beside(target: Path, found: os.stat_result | None) -> tuple[int, Path]:
    mode = 0o666 if found is None else stat.S_IMODE(found.st_mode)
    for _ in range(100):
        tmp = target.with_name(f".{target.name}.{os.urandom(4).hex()}")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        except FileExistsError:
            continue
        if found is not None and sys.platform != "win32":
            _keep_mode_and_owner(fd, found)
        return fd, tmp
    raise FileExistsError(f"no free name beside {target.name}")


def _keep_mode_and_owner(fd: int, found: os.stat_result) -> None:
    # os.open left out what the umask masks: the replaced file's mode is kept whole.
    os.fchmod(fd, stat.S_IMODE(found.st_mode))
    if (found.st_uid, found.st_gid) != (os.geteuid(), os.getegid()):
        with contextlib.suppress(OSError):
            os.fchown(fd, found.st_uid, found.st_gid)


def _discard(handle: IO[bytes], tmp: Path) -> None:
    handle.close()
    with contextlib.suppress(OSError):
        os.unlink(tmp)


def _sync_directory(directory: Path) -> None:
    """Make the rename durable; a file system that cannot is left as it is."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def _written_through(path: Path) -> Iterator[Write]:
    """Writes straight into a pipe or a device, which a rename would replace rather than
    feed. Appending: a descriptor a shell opened with ``>>`` keeps what it holds."""
    try:
        handle = open(path, "ab")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise _output_error(path, exc) from None
    try:
        with handle, _compressed(handle, path) as write:
            yield write
    except OSError as exc:
        raise _output_error(path, exc) from None


@contextlib.contextmanager
def _stream_writer(stream: IO[bytes], name: str) -> Iterator[Write]:
    def write(data: bytes) -> object:
        try:
            return stream.write(data)
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise _output_error(name, exc) from None

    yield write
    try:
        stream.flush()
    except BrokenPipeError:
        raise
    except OSError as exc:
        raise _output_error(name, exc) from None


@contextlib.contextmanager
def _compressed(handle: IO[bytes], path: Path) -> Iterator[Write]:
    """``handle``'s writes, gzip-compressed when ``path`` ends in ``.gz``."""
    if path.suffix != ".gz":
        yield handle.write
        return
    # Closing the gzip stream writes its trailer and leaves the file open.
    with gzip.GzipFile(filename=path.name, mode="wb", fileobj=handle) as packed:
        yield packed.write


def _stream_name(stream: IO[bytes]) -> str:
    name = getattr(stream, "name", None)
    return name if isinstance(name, str) else "the output"


def _output_error(where: object, exc: OSError) -> OutputError:
    error = OutputError(where, exc)
    fix = (
        "Free some space (or write elsewhere)"
        if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
        else "Check the path and its permissions"
    )
    error.hint = f"{fix} and export again: a file is replaced only by a whole export."
    return error
