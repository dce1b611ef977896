"""The rejects file: every record that was not upserted, one JSON line each.

Each line holds what is needed to fix the record and feed it back, plus a ``_vupsert``
object with its source, reason, stage and HTTP status (see
:class:`~vupsert.records.Rejection`): the record as sent when the server refused it, the
row as read when it could not be mapped (``"format": "csv"`` for a CSV/TSV row), the raw
text when it could not be parsed. Fed back with the run's mapping options, each line is
read the way its stage says.

Lines are written a settled batch at a time; a write that fails (a full disk) is cut back
to the last whole batch, so the file always ends on a whole line.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

from ._files import write_fully
from .errors import ConfigError, OutputError
from .records import REJECT_KEY, Rejection


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
    """Appends reject lines; can resume by cutting the file back to a known length."""

    def __init__(self, path: Path, *, resume_at: int | None = None) -> None:
        self.path = path
        try:
            if resume_at is not None and path.exists():
                fd = os.open(path, os.O_WRONLY)
                # Lines past the checkpoint belong to batches that will be settled again.
                os.ftruncate(fd, resume_at)
                os.lseek(fd, resume_at, os.SEEK_SET)
                self.length = resume_at
            else:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
                self.length = 0
        except OSError as exc:
            raise ConfigError(
                f"Cannot write the rejects file {path}: {exc.strerror}.",
                hint="Choose another path for the rejects file, in a writable folder.",
            ) from None
        self._fd = fd
        """Unbuffered: a failed write is known at once, and to the byte."""

    def write(self, rejections: Iterable[Rejection]) -> None:
        """Append the lines of ``rejections``: all of them, or (raising) none."""
        data = b"".join(map(reject_line, rejections))
        try:
            write_fully(self._fd, data)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self.length)
                os.lseek(self._fd, self.length, os.SEEK_SET)
            raise OutputError(self.path, exc) from None
        self.length += len(data)

    def offset(self) -> int:
        """Length of the file so far, made durable: a checkpoint may point at it."""
        try:
            os.fsync(self._fd)
        except OSError as exc:
            raise OutputError(self.path, exc) from None
        return self.length

    def close(self) -> None:
        os.close(self._fd)
