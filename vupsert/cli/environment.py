"""Where the command line reads and writes: stdin, stdout, stderr and the environment
variables, as one value that tests replace (httpie's ``Environment``)."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, BinaryIO, TextIO, cast

if TYPE_CHECKING:
    from rich.console import Console


def _closed() -> TextIO:
    # A stream closed by the caller (`>&-`) is None in Python: what would go there is
    # dropped, rather than crashing at the first write.
    return open(os.devnull, "w")


@dataclass
class Environment:
    """Where the CLI reads and writes; tests replace any part of it.

    ``stdin`` is ``None`` when the caller closed it (`<&-`): only reading ``-`` needs it.
    """

    stdin: BinaryIO | None = field(
        default_factory=lambda: sys.stdin.buffer if sys.stdin is not None else None
    )
    stdout: TextIO = field(default_factory=lambda: sys.stdout or _closed())
    stderr: TextIO = field(default_factory=lambda: sys.stderr or _closed())
    environ: dict[str, str] = field(default_factory=lambda: dict(os.environ))

    def out(self) -> Console:
        from rich.console import Console

        return Console(file=self.stdout, highlight=False)

    def stdout_bytes(self, name: str) -> IO[bytes]:
        """stdout as a binary file named ``name`` in messages, for an export (which uses
        its ``write``, ``flush`` and ``name``)."""
        return cast(IO[bytes], StdoutBytes(self.stdout, name))


class StdoutBytes:
    """stdout, written to as bytes (the records an export writes are UTF-8 JSON)."""

    def __init__(self, stream: TextIO, name: str) -> None:
        self.name = name
        self._buffer: BinaryIO | None = getattr(stream, "buffer", None)
        self._stream = stream

    def write(self, data: bytes) -> int:
        with _dropped_on_error():
            if self._buffer is not None:
                return self._buffer.write(data)
            return self._stream.write(data.decode())

    def flush(self) -> None:
        with _dropped_on_error():
            (self._buffer or self._stream).flush()


@contextlib.contextmanager
def _dropped_on_error() -> Iterator[None]:
    """A write to stdout that failed (a full disk) failed for good: what is still buffered
    goes nowhere, so that the interpreter's last flush cannot fail again."""
    try:
        yield
    except OSError:
        stdout_to_devnull()
        raise


def stdout_to_devnull() -> None:
    """Point the process's stdout at /dev/null: its reader left, or it cannot be written."""
    with contextlib.suppress(OSError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
