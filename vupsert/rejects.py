"""The rejects file: every record that was not upserted, one JSON line each.

A line is the record as it would have been sent (``id``, ``data``, ``metadata``) plus a
``_vupsert`` object with its source, reason and HTTP status, so the file can be fed back
to ``vupsert upsert`` as it is. Input that could not be parsed keeps its raw text there.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO, Any

import orjson

from .errors import ConfigError
from .records import REJECT_KEY, Rejection


def reject_line(rejection: Rejection) -> bytes:
    info: dict[str, Any] = {"source": rejection.where, "reason": rejection.reason}
    if rejection.status is not None:
        info["status"] = rejection.status
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
                handle: IO[bytes] = open(path, "r+b")  # noqa: SIM115 - closed by close()
                # Lines past the checkpoint belong to batches that will be settled again.
                handle.truncate(resume_at)
                handle.seek(resume_at)
            else:
                handle = open(path, "wb")  # noqa: SIM115
        except OSError as exc:
            raise ConfigError(
                f"Cannot write the rejects file {path}: {exc.strerror}.",
                hint="Choose a --rejects path in a writable folder.",
            ) from None
        self._handle = handle
        self.count = 0

    def write(self, rejection: Rejection) -> None:
        self._handle.write(reject_line(rejection))
        self.count += 1

    def offset(self) -> int:
        """Length of the file so far, made durable: a checkpoint may point at it."""
        self._handle.flush()
        os.fsync(self._handle.fileno())
        return self._handle.tell()

    def close(self) -> None:
        self._handle.close()
