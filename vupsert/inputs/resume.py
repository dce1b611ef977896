"""Moving an input to a checkpoint's resume point, and proving it is the same input."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from ..config import option
from ..errors import InputError

if TYPE_CHECKING:
    Stream = io.BufferedReader[io.RawIOBase]
else:
    Stream = io.BufferedReader

_DISCARD_CHUNK = 1024 * 1024


def restart_hint() -> str:
    return f"Start this input over with {option('restart', True)} (or remove the checkpoint)."


def byte_before(stream: Stream, here: int, target: int, source: str) -> bytes:
    """Move the stream from byte ``here`` to ``target`` and return the byte before it,
    which ends what the checkpoint counted: the caller checks it is the kind that can."""
    # Land one byte early and read it.
    if stream.seekable():
        stream.seek(target - 1)
    else:
        remaining = target - 1 - here
        while remaining > 0:
            chunk = stream.read(min(remaining, _DISCARD_CHUNK))
            if not chunk:
                break
            remaining -= len(chunk)
    last = stream.read(1)
    if not last:
        raise InputError(
            f"{source}: is shorter than the checkpoint's resume point (byte {target:,}); "
            "it changed since that run",
            hint=restart_hint(),
        )
    return last
