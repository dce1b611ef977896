"""The rejects file: every record that was not upserted, one JSON line each.

Each line holds what is needed to fix the record and feed it back, plus a ``_vupsert``
object with its source, reason, stage and HTTP status (see
:class:`~vupsert.records.Rejection`): the record as sent when the server refused it, the
row as read when it could not be mapped (``"format": "csv"`` for a CSV/TSV row), the raw
text when it could not be parsed. Fed back with the run's mapping options, each line is
read the way its stage says.

Lines are written a settled batch at a time; a write that fails (a full disk) is cut back
to the last whole batch, so the file always ends on a whole line. A run that resumes from
a checkpoint keeps the lines of what is settled, in the same file or copied from the last
run's, so that one file holds every reject of the run. Otherwise the file is made by the
first reject: a clean run leaves none, and an earlier run's file at the path is removed
as the run starts, so that no reject of it is taken for one of this run.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

from ..errors import ConfigError, OutputError
from ..records import REJECT_KEY, Rejection
from ._files import write_fully


def reject_line(rejection: Rejection) -> bytes:
    info: dict[str, Any] = {
        "source": rejection.where,
        "reason": rejection.reason,
        "stage": rejection.stage,
    }
    if rejection.status is not None:
        info["status"] = rejection.status
    if rejection.table:
        info["format"] = "parquet" if rejection.typed else "csv"
    if rejection.body is None or not rejection.body.endswith(b"}"):
        if rejection.raw is not None:
            info["raw"] = rejection.raw
        return orjson.dumps({REJECT_KEY: info}) + b"\n"
    tail = orjson.dumps(info)
    if rejection.body == b"{}":
        return b'{"' + REJECT_KEY.encode() + b'":' + tail + b"}\n"
    # The body is already a serialised object: splice the key in rather than parse it.
    return rejection.body[:-1] + b',"' + REJECT_KEY.encode() + b'":' + tail + b"}\n"


class RejectsWriter:
    """Appends reject lines to a file that starts with the first ``keep`` bytes of
    ``kept_from``: itself (cut back to a checkpoint) or another file (copied); or, without
    ``kept_from``, to a file made by the first reject."""

    def __init__(self, path: Path, *, keep: int = 0, kept_from: Path | None = None) -> None:
        self.path = path
        self.copied_lines = 0
        """Lines copied from ``kept_from`` when it is another file."""
        self._fd: int | None = None
        """Unbuffered: a failed write is known at once, and to the byte."""
        try:
            if kept_from is not None and _same_file(path, kept_from):
                self._fd = os.open(path, os.O_WRONLY)
                # Lines past the checkpoint belong to batches that will be settled again.
                os.ftruncate(self._fd, keep)
                os.lseek(self._fd, keep, os.SEEK_SET)
            elif kept_from is not None:
                self._fd = _create(path)
                self.copied_lines = _copy(kept_from, self._fd, keep)
            elif not _cleared(path):
                self._fd = _create(path)  # a pipe, a device, a symlink: written through
        except OSError as exc:
            if self._fd is not None:
                os.close(self._fd)
            raise ConfigError(
                f"Cannot write the rejects file {path}: {exc.strerror}.",
                hint="Choose another path for the rejects file, in a writable folder.",
            ) from None
        self.length = keep if kept_from is not None else 0

    def write(self, rejections: Iterable[Rejection]) -> None:
        """Append the lines of ``rejections``: all of them, or (raising) none."""
        data = b"".join(map(reject_line, rejections))
        try:
            if self._fd is None:
                self._fd = _create(self.path)
            write_fully(self._fd, data)
        except OSError as exc:
            if self._fd is not None:
                with contextlib.suppress(OSError):
                    os.ftruncate(self._fd, self.length)
                    os.lseek(self._fd, self.length, os.SEEK_SET)
            raise OutputError(self.path, exc) from None
        self.length += len(data)

    def offset(self) -> int:
        """Length of the file so far, made durable: a checkpoint may point at it."""
        if self._fd is None:
            return self.length
        try:
            os.fsync(self._fd)
        except OSError as exc:
            raise OutputError(self.path, exc) from None
        return self.length

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)


def _create(path: Path) -> int:
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)


def _cleared(path: Path) -> bool:
    """Whether ``path`` is free for a file the first reject makes: nothing is there (and
    its folder can be written), or an earlier run's file was, removed. ``False`` for what
    is written through instead: a pipe, a device, a symlink (which keeps pointing where it
    does). Raises :class:`OSError` as opening the file would."""
    try:
        kind = os.lstat(path).st_mode
    except FileNotFoundError:
        folder = path.parent
        if not folder.is_dir():
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT)) from None
        if not os.access(folder, os.W_OK | os.X_OK):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES)) from None
        return True
    if not stat.S_ISREG(kind):
        return False
    if not os.access(path, os.W_OK):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
    try:
        os.unlink(path)
    except PermissionError:
        return False  # a folder that cannot be written to: the file is emptied instead
    return True


def rerun_advice(*, checkpoint: bool, rejects: RejectsWriter | None) -> str:
    """What to do after an output could not be written, and what the rerun does then."""
    if checkpoint:
        advice = (
            "Free some space and run the same command again: it carries on from the "
            "checkpoint, and the records not recorded are rejected again."
        )
        if rejects is not None:
            advice += (
                f" {rejects.path} keeps its lines and gets the others. To write the rejects "
                "elsewhere, move it and give its new path, or give a new path: its lines "
                "are copied there."
            )
        return advice
    advice = (
        "Free some space and run the same command again: it reads every record again "
        "(upserts are idempotent, so nothing is duplicated)"
    )
    if rejects is None:
        return advice + "."
    return advice + (
        f" and writes {rejects.path} afresh, with every record it rejects. Given another "
        f"path for the rejects, it writes them all there, and {rejects.path} can be deleted."
    )


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _copy(source: Path, fd: int, size: int) -> int:
    """Copy the first ``size`` bytes of ``source`` to ``fd``; return how many lines."""
    lines = 0
    with open(source, "rb") as f:
        while size > 0:
            chunk = f.read(min(size, 1 << 20))
            if not chunk:
                raise OSError(errno.EIO, f"{source} is shorter than the checkpoint says")
            write_fully(fd, chunk)
            lines += chunk.count(b"\n")
            size -= len(chunk)
    return lines
