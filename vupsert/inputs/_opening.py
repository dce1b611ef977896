"""Open an input (a file, a compressed file, or stdin) as one stream of bytes, counted,
and move it to a checkpoint's resume point.

Every format that reads a byte stream is read through :func:`read_stream`: gzip, bzip2
and xz are decompressed whatever the name says (the content's magic bytes decide), the
on-disk bytes consumed are reported as they go (``on_bytes``), and what goes wrong with
the file itself is an :class:`~vupsert.errors.InputError` naming it. Nothing here holds
more than a read buffer, whatever the size of the input.

Positions count bytes of the *decompressed* stream. A UTF-8 byte order mark is part of
the stream (it is counted) but not of the first item.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import io
import lzma
import os
import stat
import sys
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, BinaryIO, TypeVar, cast

from ..config import option
from ..config.settings import ReadOptions
from ..errors import InputError
from ..records import Position

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

    Stream = io.BufferedReader[io.RawIOBase]
else:
    Stream = io.BufferedReader

_T = TypeVar("_T")

STDIN = "-"
"""The input name that means standard input."""
STDIN_NAME = "<stdin>"
"""How standard input is named in ``source:line`` and in messages."""
RECORDS = "<records>"
"""The input name of records a Python caller hands over as dicts; ``<records>:7`` is the
seventh of them."""

COMPRESSION_SUFFIXES = (".gz", ".bz2", ".xz")
"""Names of compressed files: what a format's suffix may be followed by (``a.csv.gz``)."""

_BUFFER_SIZE = 1024 * 1024
"""Read size of a plain file: each read hands the GIL to the sender threads, and each
hand-off is a context switch, so few large reads. A pipe still returns whatever it has
at once."""
_DECODED_BUFFER_SIZE = 64 * 1024
"""Read size from a decompressor (see :class:`_Decoded`)."""
_REPORT_EVERY = 64 * 1024
"""``on_bytes`` is called at most once per this many on-disk bytes (and at the end)."""
_SNIFF_SIZE = 10
_PARQUET_MAGIC = b"PAR1"
_BZIP2_BLOCKS = (b"1AY&SY", b"\x17rE8P\x90")
_DISCARD_CHUNK = 1024 * 1024
_TEST_COMMANDS = {"gzip": "gzip -t", "bzip2": "bzip2 -t", "xz": "xz -t"}


def display_name(name: str) -> str:
    """The name used for an input in ``source:line`` and in messages."""
    return STDIN_NAME if name == STDIN else name


def is_stream(name: str) -> bool:
    """Whether an input can be read only once, from its start (stdin, records in hand):
    a checkpoint resumes it by position, and nothing can be read ahead of the run."""
    return name in (STDIN, RECORDS)


def input_size(name: str) -> int | None:
    """On-disk size of an input in bytes, for a progress total; ``None`` when unknown.

    Unknown means stdin, a pipe or process substitution (``<(zcat a.gz)``), or a path
    that cannot be examined (opening it will say why).
    """
    if name == STDIN:
        return None
    try:
        st = os.stat(name)
    except OSError:
        return None
    return st.st_size if stat.S_ISREG(st.st_mode) else None


@dataclass(frozen=True)
class Reading:
    """One input to read, and how: what every format's reader is handed.

    ``name`` is a path, ``"-"`` for ``stdin`` (if given, else ``sys.stdin.buffer``; it
    is never closed), or ``"<records>"`` for ``records``, dicts in hand. ``start``
    resumes after an earlier run's :attr:`~vupsert.records.Row.end`. ``on_bytes(n)``
    hears of the on-disk bytes consumed since its previous call, about once per 64 KiB
    and once at the end, so that over a whole input they add up to :func:`input_size`
    (bytes a resume skips count as consumed); ``on_warning(message)`` of a last line left
    unread (``options.whole_lines``).
    """

    name: str
    options: ReadOptions = field(default_factory=ReadOptions)
    start: Position | None = None
    stdin: BinaryIO | None = None
    records: Iterable[Mapping[str, Any]] | None = None
    on_bytes: Callable[[int], None] | None = None
    on_warning: Callable[[str], None] | None = None

    @property
    def source(self) -> str:
        """The input as ``source:line`` names it."""
        return display_name(self.name)

    @property
    def whole_lines(self) -> bool:
        """Leave a last line without its newline for the next run: a file may still be
        being written (see :attr:`ReadOptions.whole_lines`); stdin has an end."""
        return self.options.whole_lines and self.name != STDIN


def read_stream(
    reading: Reading, produce: Callable[[Stream, str, Position | None], Iterator[_T]]
) -> Iterator[_T]:
    """``produce(stream, source, start)`` over the input opened as one buffered stream of
    decompressed bytes, its errors named alike for every format.

    Everything about the input itself (missing file, corrupt compression) raises
    :class:`InputError` when the iterator is advanced, naming the input; items produced
    before a mid-stream failure have already been yielded.
    """
    source = reading.source
    start = reading.start
    if start is not None and start.offset <= 0:
        start = None
    with contextlib.ExitStack() as stack:
        stream, kind = _open(reading.name, source, reading.stdin, reading.on_bytes, stack)
        if kind is None and stream.peek(len(_PARQUET_MAGIC))[:4] == _PARQUET_MAGIC:
            raise InputError(
                f"{source}: is a Parquet file",
                hint=f"Name it .parquet, or read it with {option('format', 'parquet')}.",
            )
        try:
            yield from produce(stream, source, start)
        except EOFError:
            raise InputError(
                f"{source}: the {kind} data ends early; the file is truncated "
                "(an interrupted download or copy?)",
                hint="The records before the break were loaded as usual. Fetch a complete "
                "copy and run again: upserts are idempotent.",
            ) from None
        except (OSError, zlib.error, lzma.LZMAError) as exc:
            if kind is None:
                raise InputError(f"{source}: reading failed ({exc})") from None
            raise InputError(
                f"{source}: the {kind} data is corrupt ({exc})",
                hint=f"Check it with: {_TEST_COMMANDS[kind]} {source}",
            ) from None


def read_prefix(name: str, size: int) -> tuple[bytes, bool]:
    """The first ``size`` decompressed bytes of a file, and whether it is compressed.

    For checkpoint fingerprints: the same detection as reading, so both agree.
    """
    with contextlib.ExitStack() as stack:
        stream, kind = _open(name, display_name(name), None, None, stack)
        return stream.read(size), kind is not None


# --- the resume point -----------------------------------------------------------------


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


def skip_to_line_end(stream: Stream, here: int, start: Position, source: str) -> bool:
    """Move the stream from byte ``here`` to ``start.offset``, proving it is a line end.

    True when the resume point is a last line whose newline came after that run: the
    newline then ends the line already counted, not a new one.
    """
    target = start.offset
    if target < here:
        raise InputError(
            f"{source}: the checkpoint's resume point (byte {target:,}) is inside the header",
            hint=restart_hint(),
        )
    if target == here:
        return False
    # The byte before the resume point must end a line, or the input is not the one the
    # checkpoint was written for.
    last = byte_before(stream, here, target, source)
    # The last item of a file may end without a newline; then nothing may follow it but
    # the newline its writer had not written yet.
    mid_line = last != b"\n"
    if mid_line and (last == b"\r" or stream.peek(1)[:1] not in (b"", b"\n", b"\r")):
        raise InputError(
            f"{source}: the checkpoint's resume point (byte {target:,}) is not at the end of "
            "a line; the input changed since that run",
            hint=restart_hint(),
        )
    return mid_line


def left_for_later(warn: Callable[[str], None] | None, source: str, line: int) -> None:
    """Say that a last line without its newline is left for the next run."""
    if warn is not None:
        warn(
            f"{source}:{line}: the last line has no newline yet and is left for the next "
            "run (the file may still be being written)"
        )


# --- opening --------------------------------------------------------------------------


class _CountingInput(io.RawIOBase):
    """The on-disk byte stream: counts what was read, and lets the opener sniff its start.

    The sniffed bytes are kept and served again, so stdin (which cannot seek back) can be
    checked for compression magic too.
    """

    def __init__(
        self,
        f: BinaryIO,
        *,
        owned: bool,
        seekable: bool,
        on_bytes: Callable[[int], None] | None,
    ) -> None:
        super().__init__()
        self._f = f
        self._owned = owned
        self._seekable = seekable
        self._on_bytes = on_bytes
        self._head = b""
        self._pos = 0
        self._reported = 0
        # readinto1 returns what a pipe has now instead of waiting for a full buffer.
        self._fill: Callable[[memoryview], int | None] | None = getattr(
            f, "readinto1", None
        ) or getattr(f, "readinto", None)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return self._seekable

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        if self._head:
            n = min(len(view), len(self._head))
            view[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        n = self._read_into(view)
        self._pos += n
        if self._on_bytes is not None and (
            self._pos - self._reported >= _REPORT_EVERY or (n == 0 and self._pos > self._reported)
        ):
            self._report()
        return n

    def _report(self) -> None:
        # Only ever forward from the furthest point reported: a CSV resume reads the
        # header and then seeks, and that must not count bytes twice or go backwards.
        assert self._on_bytes is not None
        if self._pos > self._reported:
            self._on_bytes(self._pos - self._reported)
            self._reported = self._pos

    def _read_into(self, view: memoryview) -> int:
        if self._fill is not None:
            return self._fill(view) or 0
        data = self._f.read(len(view))
        view[: len(data)] = data
        return len(data)

    def sniff(self, size: int) -> bytes:
        """Read up to ``size`` bytes and keep them to be read again."""
        head = bytearray()
        while len(head) < size:
            buf = bytearray(size - len(head))
            n = self._read_into(memoryview(buf))
            if not n:
                break
            head += buf[:n]
        self._pos += len(head)
        self._head = bytes(head)
        return self._head

    def tell(self) -> int:
        return self._pos - len(self._head)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if not self._seekable:
            raise io.UnsupportedOperation("seek")
        if whence == io.SEEK_CUR:
            offset, whence = self.tell() + offset, io.SEEK_SET
        self._head = b""
        self._pos = self._f.seek(offset, whence)
        if self._on_bytes is not None:
            self._report()
        return self._pos

    def close(self) -> None:
        if not self.closed and self._owned:
            self._f.close()
        super().close()


def _compression(head: bytes) -> str | None:
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    # "BZh" alone could start a CSV header; the block or end-of-stream magic makes it sure.
    if head[:3] == b"BZh" and head[3:4].isdigit() and head[4:10] in _BZIP2_BLOCKS:
        return "bzip2"
    if head.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    return None


def _unsupported(head: bytes) -> str | None:
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        return (
            "is zstd-compressed, which vupsert cannot read; pipe it in: zstd -dc FILE | vupsert -"
        )
    if head.startswith(b"PK\x03\x04"):
        return "is a zip archive; unzip it and give the files inside"
    if head.startswith((b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff")):
        # What PowerShell's > and Notepad's "Unicode" write: two or four bytes a character.
        return (
            "is UTF-16 or UTF-32 text (its byte order mark says so), which vupsert cannot "
            "read; convert it to UTF-8 first: iconv -f UTF-16 -t UTF-8 FILE > FILE.utf8"
        )
    return None


def _open_error(source: str, exc: OSError) -> InputError:
    if isinstance(exc, FileNotFoundError):
        return InputError(f"{source}: no such file", hint="Check the path; use - to read stdin.")
    if isinstance(exc, IsADirectoryError):
        return InputError(
            f"{source}: is a directory",
            hint=f"Give the files inside it, e.g. {os.path.join(source, '*.jsonl')}",
        )
    if isinstance(exc, PermissionError):
        return InputError(f"{source}: permission denied", hint="Check the file's permissions.")
    return InputError(f"{source}: cannot be opened ({exc.strerror or exc})")


def _open(
    name: str,
    source: str,
    stdin: BinaryIO | None,
    on_bytes: Callable[[int], None] | None,
    stack: contextlib.ExitStack,
) -> tuple[Stream, str | None]:
    """Open an input as one buffered stream of decompressed bytes, and its compression."""
    if name == STDIN:
        f: BinaryIO = stdin if stdin is not None else sys.stdin.buffer
        # Offsets count from where stdin stood when we got it, so never seek it.
        raw = _CountingInput(f, owned=False, seekable=False, on_bytes=on_bytes)
    else:
        try:
            file = open(name, "rb", buffering=0)  # noqa: SIM115 - closed by the stack
        except OSError as exc:
            raise _open_error(source, exc) from None
        raw = _CountingInput(file, owned=True, seekable=file.seekable(), on_bytes=on_bytes)
    stack.enter_context(raw)
    try:
        head = raw.sniff(_SNIFF_SIZE)
    except OSError as exc:
        raise _open_error(source, exc) from None
    problem = _unsupported(head)
    if problem:
        raise InputError(f"{source}: {problem}")
    kind = _compression(head)
    decoded: io.RawIOBase = raw
    if kind is not None:
        decompressor = stack.enter_context(_decompressor(kind, raw))
        decoded = _Decoded(decompressor)
    # A BufferedReader over the decompressor too: its line iteration runs in C and only
    # calls back into Python once per buffer, not once per line.
    reader = io.BufferedReader(
        decoded, buffer_size=_BUFFER_SIZE if decoded is raw else _DECODED_BUFFER_SIZE
    )
    stack.enter_context(reader)
    return reader, kind


def _decompressor(kind: str, raw: _CountingInput) -> io.BufferedIOBase:
    if kind == "gzip":
        return gzip.GzipFile(fileobj=raw, mode="rb")
    if kind == "bzip2":
        return bz2.BZ2File(raw)
    return lzma.LZMAFile(cast(BinaryIO, raw))


class _Decoded(io.RawIOBase):
    """A decompressor's output, one decompression at a time.

    A decompressor's ``readinto`` fills the whole buffer before it returns, so when the
    data breaks off (``EOFError``) the bytes it had decoded into that buffer are lost:
    about 40 lines of a truncated ``.gz``. ``readinto1`` returns what one step decoded,
    so every whole line before the break is read; only the line the break cuts is not.
    """

    def __init__(self, decompressor: io.BufferedIOBase) -> None:
        super().__init__()
        self._decompressor = decompressor

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        return self._decompressor.readinto1(buffer)
