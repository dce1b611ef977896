"""Open an input (a file, a compressed file, or stdin) and split it into rows.

JSON Lines, JSON arrays (:mod:`vupsert.inputs.json_array`) and CSV/TSV are read here; Parquet
(:mod:`vupsert.inputs.parquet`) has a reader of its own, as it is not read as a byte stream.

Every row carries where it came from (``source:line``) and the reader's position right
after it, so a checkpoint can say "everything up to byte N, line L is settled" and a
later run can resume there with ``start=Position(N, L)``.

Inputs are read as bytes through one buffered binary stream; JSON Lines are handed to
``orjson`` as bytes, never decoded to ``str`` first. Nothing here holds more than the
current item and a read buffer, whatever the size of the input.

Positions count bytes of the *decompressed* stream. A UTF-8 byte order mark is part of
the stream (it is counted) but not of the first item.
"""

from __future__ import annotations

import bz2
import contextlib
import csv
import gzip
import io
import lzma
import os
import stat
import sys
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, BinaryIO, Literal, TypeVar, cast

import orjson

from ..config import option
from ..config.settings import Format, ReadOptions
from ..errors import ConfigError, InputError
from ..records import JsonLine, Position, Rejection, Row, json_type
from .json_array import elements, starts_as_array
from .parquet import parquet_rows
from .resume import Stream, byte_before, restart_hint

_T = TypeVar("_T")

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

__all__ = [
    "RECORDS",
    "STDIN",
    "STDIN_NAME",
    "RowFormat",
    "detect_format",
    "display_name",
    "input_size",
    "is_stream",
    "iter_json",
    "iter_json_lines",
    "iter_records",
    "iter_rows",
    "read_stream",
]

RowFormat = Literal["jsonl", "json", "csv", "tsv", "parquet"]

STDIN = "-"
"""The input name that means standard input."""
STDIN_NAME = "<stdin>"
"""How standard input is named in ``source:line`` and in messages."""
RECORDS = "<records>"
"""The input name of records a Python caller hands over as dicts; ``<records>:7`` is the
seventh of them."""

COMPRESSION_SUFFIXES = (".gz", ".bz2", ".xz")

_BUFFER_SIZE = 1024 * 1024
"""Read size of a plain file: each read hands the GIL to the sender threads, and each
hand-off is a context switch, so few large reads. A pipe still returns whatever it has
at once."""
_DECODED_BUFFER_SIZE = 64 * 1024
"""Read size from a decompressor (see :class:`_Decoded`)."""
_REPORT_EVERY = 64 * 1024
"""``on_bytes`` is called at most once per this many on-disk bytes (and at the end)."""
_BOM = b"\xef\xbb\xbf"
_SNIFF_SIZE = 10
_SNIFF_JSON = 4096
"""Bytes looked at to tell a JSON array from JSON Lines by the first value."""
_PARQUET_MAGIC = b"PAR1"
_BZIP2_BLOCKS = (b"1AY&SY", b"\x17rE8P\x90")
_CSV_FIELD_LIMIT = 8 * 1024 * 1024
"""Characters in one CSV cell before the row is rejected.

Data over 1 MB is refused anyway, so a bigger cell is almost always an unbalanced quote
swallowing the rest of the file; the limit keeps that from eating all memory.
"""


def display_name(name: str) -> str:
    """The name used for an input in ``source:line`` and in messages."""
    return STDIN_NAME if name == STDIN else name


def is_stream(name: str) -> bool:
    """Whether an input can be read only once, from its start (stdin, records in hand):
    a checkpoint resumes it by position, and nothing can be read ahead of the run."""
    return name in (STDIN, RECORDS)


def iter_records(
    records: Iterable[Mapping[str, Any]], start: Position | None = None
) -> Iterator[JsonLine | Rejection]:
    """Records handed over as dicts, as :func:`iter_json_lines` gives lines: each with its
    number as line and offset, and no text. ``start`` skips the records before it."""
    skip = start.line if start is not None else 0
    for n, value in enumerate(records, 1):
        if n <= skip:
            continue
        if type(value) is not dict:
            if not isinstance(value, Mapping):
                reason = f"expected a dict, got {type(value).__name__}"
                yield Rejection(RECORDS, n, Position(n, n), reason, raw=repr(value)[:1000])
                continue
            value = dict(value)
        yield n, n, value, b""


def detect_format(name: str, fmt: Format) -> RowFormat:
    """The row format of an input: ``fmt`` unless it is ``"auto"``, else by file name.

    ``.csv`` is CSV, ``.tsv``/``.tab`` is TSV and ``.json`` is JSON (an array, or JSON
    Lines: see :func:`iter_json`), also under a compression suffix (``a.csv.gz``);
    ``.parquet``/``.pq`` is Parquet; everything else, stdin included, is JSON Lines.
    """
    if fmt != "auto":
        return fmt
    if name == STDIN:
        return "jsonl"
    lower = name.lower()
    if lower.endswith((".parquet", ".pq")):
        return "parquet"
    for suffix in COMPRESSION_SUFFIXES:
        if lower.endswith(suffix):
            lower = lower[: -len(suffix)]
            break
    if lower.endswith(".csv"):
        return "csv"
    if lower.endswith((".tsv", ".tab")):
        return "tsv"
    if lower.endswith(".json"):
        return "json"
    return "jsonl"


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


def iter_rows(
    name: str,
    options: ReadOptions,
    *,
    start: Position | None = None,
    stdin: BinaryIO | None = None,
    on_bytes: Callable[[int], None] | None = None,
    on_warning: Callable[[str], None] | None = None,
) -> Iterator[Row | Rejection]:
    """Yield each item of an input as a :class:`Row`, or a :class:`Rejection` if unparseable.

    ``name`` is a path or ``"-"`` for stdin (``stdin`` if given, else
    ``sys.stdin.buffer``; it is never closed). gzip, bzip2 and xz inputs are decompressed
    transparently; the content's magic bytes decide, not the name. Blank lines are skipped.

    ``start`` resumes after an earlier run's :attr:`Row.end`: the reader seeks there (or
    reads and discards, for compressed input and stdin) and numbers lines after
    ``start.line``. CSV/TSV still read their header from the top first.

    ``on_warning(message)`` hears of a last line left unread (``options.whole_lines``).
    A JSON array's items are numbered by element (:func:`iter_json`), a Parquet file's by
    row (:func:`vupsert.inputs.parquet.parquet_rows`: ``stdin`` does not apply).

    ``on_bytes(n)`` is called with the number of on-disk (compressed) bytes consumed
    since its previous call (an increment, never negative), about once per 64 KiB and
    once at the end. Over a whole input the increments add up to :func:`input_size`;
    bytes skipped by a resume count as consumed, so one progress bar can advance by ``n``
    against the sum of all inputs' sizes.

    Option errors raise :class:`ConfigError` at once. Everything about the input itself
    (missing file, corrupt compression, bad header, file shorter than ``start``) raises
    :class:`InputError` when the iterator is advanced, naming the input; rows read before
    a mid-stream failure have already been yielded.
    """
    fmt = detect_format(name, options.format)
    whole_lines = options.whole_lines and name != STDIN
    if fmt == "jsonl":
        return _read(name, start, stdin, on_bytes, _JsonLines(whole_lines, on_warning).rows)
    if fmt == "json":
        items = iter_json(
            name, options, start=start, stdin=stdin, on_bytes=on_bytes, on_warning=on_warning
        )
        return _as_rows(display_name(name), items)
    if fmt == "parquet":
        return parquet_rows(name, start=start, on_bytes=on_bytes)
    delimiter = options.delimiter
    if delimiter is None:
        delimiter = "," if fmt == "csv" else "\t"
    if len(delimiter) != 1:
        raise ConfigError(f"the delimiter must be one character, not {delimiter!r}")
    columns = None
    if options.columns is not None:
        given = f"the column names given with {option('columns')}"
        checked = _check_header(list(options.columns), given)
        if isinstance(checked, str):
            raise ConfigError(checked)
        columns = checked
    table = _Table(delimiter, columns, whole_lines, on_warning)
    return _read(name, start, stdin, on_bytes, table.rows)


def iter_json(
    name: str,
    options: ReadOptions,
    *,
    start: Position | None = None,
    stdin: BinaryIO | None = None,
    on_bytes: Callable[[int], None] | None = None,
    on_warning: Callable[[str], None] | None = None,
) -> Iterator[JsonLine | Rejection]:
    """:func:`iter_json_lines` for a JSON input (``format="json"``): one array of objects,
    read element by element (:mod:`vupsert.inputs.json_array`), or JSON Lines when its first
    value is an object (BigQuery, among others, names JSON Lines ``.json``).

    An element is numbered as a line is (``docs.json:7`` is the seventh element), and
    resumes after its last byte.
    """
    lines = _JsonLines(options.whole_lines and name != STDIN, on_warning).lines

    def produce(
        stream: Stream, source: str, start: Position | None
    ) -> Iterator[JsonLine | Rejection]:
        if starts_as_array(stream.peek(_SNIFF_JSON)) is False:
            return lines(stream, source, start)
        return elements(stream, source, start)

    return _read(name, start, stdin, on_bytes, produce)


def iter_json_lines(
    name: str,
    options: ReadOptions,
    *,
    start: Position | None = None,
    stdin: BinaryIO | None = None,
    on_bytes: Callable[[int], None] | None = None,
    on_warning: Callable[[str], None] | None = None,
) -> Iterator[JsonLine | Rejection]:
    """:func:`iter_rows` for a JSON Lines input, each row as a plain
    :data:`~vupsert.records.JsonLine` tuple: the hot path's shape (see ``pipeline``)."""
    lines = _JsonLines(options.whole_lines and name != STDIN, on_warning)
    return _read(name, start, stdin, on_bytes, lines.lines)


def read_stream(
    name: str, produce: Callable[[Stream, str], Iterator[_T]], *, stdin: BinaryIO | None = None
) -> Iterator[_T]:
    """``produce(stream, source)`` over an input opened as :func:`iter_rows` opens it
    (decompressed, its errors named alike): for inputs that are lists rather than records
    (ids to delete), whose reader tells their format by their first bytes."""
    return _read(name, None, stdin, None, lambda stream, source, start: produce(stream, source))


def _as_rows(source: str, items: Iterator[JsonLine | Rejection]) -> Iterator[Row | Rejection]:
    for item in items:
        if type(item) is tuple:
            line, offset, value, text = item
            yield Row(source, line, Position(offset, line), value, text)
        else:
            assert isinstance(item, Rejection)
            yield item


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


def read_prefix(name: str, size: int) -> tuple[bytes, bool]:
    """The first ``size`` decompressed bytes of a file, and whether it is compressed.

    For checkpoint fingerprints: the same detection as reading, so both agree.
    """
    with contextlib.ExitStack() as stack:
        stream, kind = _open(name, display_name(name), None, None, stack)
        return stream.read(size), kind is not None


# --- reading --------------------------------------------------------------------------


class _Format:
    """How one kind of input turns a stream into rows."""

    def __init__(self, whole_lines: bool, warn: Callable[[str], None] | None) -> None:
        self._whole_lines = whole_lines
        """Leave a last line without its newline for the next run (see ``warn``)."""
        self.warn = warn

    def rows(
        self, stream: Stream, source: str, start: Position | None
    ) -> Iterator[Row | Rejection]:
        raise NotImplementedError


def _read(
    name: str,
    start: Position | None,
    stdin: BinaryIO | None,
    on_bytes: Callable[[int], None] | None,
    produce: Callable[[Stream, str, Position | None], Iterator[_T]],
) -> Iterator[_T]:
    source = display_name(name)
    if start is not None and start.offset <= 0:
        start = None
    with contextlib.ExitStack() as stack:
        stream, kind = _open(name, source, stdin, on_bytes, stack)
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


_TEST_COMMANDS = {"gzip": "gzip -t", "bzip2": "bzip2 -t", "xz": "xz -t"}


def _skip_to(stream: Stream, here: int, start: Position, source: str) -> bool:
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


def _raw_text(data: bytes) -> str:
    """The text of an unparseable item, kept for the rejects file."""
    if data.startswith(_BOM):
        data = data[3:]
    return data.rstrip(b"\r\n").decode("utf-8", "backslashreplace")


def _utf8_error(data: bytes) -> int | None:
    """1-based byte column of the first invalid UTF-8 sequence, if there is one."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start + 1
    return None


def _complete_object(data: bytes) -> bool:
    try:
        return type(orjson.loads(data)) is dict
    except orjson.JSONDecodeError:
        return False


def _left_for_later(warn: Callable[[str], None] | None, source: str, line: int) -> None:
    if warn is not None:
        warn(
            f"{source}:{line}: the last line has no newline yet and is left for the next "
            "run (the file may still be being written)"
        )


class _JsonLines(_Format):
    def rows(
        self, stream: Stream, source: str, start: Position | None
    ) -> Iterator[Row | Rejection]:
        for item in self.lines(stream, source, start):
            if type(item) is tuple:
                line, offset, value, text = item
                yield Row(source, line, Position(offset, line), value, text)
            else:
                assert isinstance(item, Rejection)
                yield item

    def lines(
        self, stream: Stream, source: str, start: Position | None
    ) -> Iterator[JsonLine | Rejection]:
        offset = line = 0
        if start is not None:
            mid_line = _skip_to(stream, 0, start, source)
            offset, line = start.offset, start.line - mid_line
        loads = orjson.loads
        decode_error = orjson.JSONDecodeError
        whole_lines = self._whole_lines
        for data in stream:
            if whole_lines and not data.endswith(b"\n") and not _complete_object(data):
                _left_for_later(self.warn, source, line + 1)
                return
            offset += len(data)
            line += 1
            try:
                value = loads(data)
            except decode_error as exc:
                # Blank lines, a BOM and every kind of bad line land here, off the hot path.
                item = _bad_json_line(data, exc, source, line, offset)
                if item is not None:
                    yield item
                continue
            if type(value) is dict:
                yield line, offset, value, data
            else:
                yield _not_an_object(value, data, source, line, offset)


def _not_an_object(value: object, data: bytes, source: str, line: int, offset: int) -> Rejection:
    return Rejection(
        source,
        line,
        Position(offset, line),
        f"expected a JSON object, got {json_type(value)}",
        raw=_raw_text(data),
    )


def _bad_json_line(
    data: bytes, exc: orjson.JSONDecodeError, source: str, line: int, offset: int
) -> JsonLine | Rejection | None:
    first_line = offset == len(data)
    if first_line and data.startswith(_BOM):
        data = data[3:]
        try:
            value = orjson.loads(data)
        except orjson.JSONDecodeError as again:
            exc = again
        else:
            if type(value) is dict:
                return line, offset, value, data
            return _not_an_object(value, data, source, line, offset)
    stripped = data.strip()
    if not stripped:
        return None
    # Records are objects, so a first line that opens an array (or only a brace) and
    # does not parse is a whole JSON document: say so once instead of per line.
    if first_line and (stripped.startswith(b"[") or stripped == b"{"):
        raise InputError(
            f"{source}: looks like one JSON document, not JSON Lines",
            hint="vupsert reads one JSON object per line here. For an array of objects, "
            f"name the file .json or use {option('format', 'json')}; or convert it with: "
            "jq -c '.[]' FILE",
        )
    try:
        # Again without the line end, so a line cut short says so instead of blaming
        # the newline as a control character inside a string.
        orjson.loads(data.rstrip(b"\r\n"))
    except orjson.JSONDecodeError as again:
        exc = again
    bad = _utf8_error(data)
    if bad is not None:
        reason = f"invalid UTF-8 at byte {bad} of the line"
    else:
        reason = f"not valid JSON: {exc.msg}"
        if "end of data" not in exc.msg:
            # pos counts characters of this line alone, as an editor's column does.
            reason += f" at column {exc.pos + 1}"
        if not stripped.startswith((b"{", b"[")) and (b"," in stripped or b"\t" in stripped):
            reason += (
                f"; the line looks like CSV: use {option('format', 'csv')} "
                f"(or {option('format', 'tsv')})"
            )
    return Rejection(source, line, Position(offset, line), reason, raw=_raw_text(data))


# --- CSV and TSV ----------------------------------------------------------------------


def _check_header(names: list[str], what: str) -> list[str] | str:
    """Stripped column names, or what is wrong with them."""
    names = [n.strip() for n in names]
    seen: set[str] = set()
    for i, n in enumerate(names, 1):
        if not n:
            return f"{what} has an empty name (column {i})"
        if n in seen:
            return f"{what} names column {n!r} twice"
        seen.add(n)
    return names


class _LineState:
    """What the CSV line feeder has consumed, read back after each record."""

    __slots__ = ("bad", "line", "lines", "offset", "source", "warn", "whole_lines")

    def __init__(
        self, whole_lines: bool = False, source: str = "", warn: Callable[[str], None] | None = None
    ) -> None:
        self.whole_lines = whole_lines
        self.source = source
        self.warn = warn
        self.offset = 0
        self.line = 0
        self.lines: list[str] = []
        """Text of the current record's lines, for a rejection's ``raw``."""
        self.bad: tuple[int, int] | None = None
        """(line, 1-based byte) of the first invalid UTF-8 in the current record."""


def _feed(stream: Stream, st: _LineState) -> Iterator[str]:
    """Decoded lines for csv.reader, tracking the bytes and lines it has taken.

    csv.reader pulls lines only as it needs them to finish a record, so right after it
    yields a record, ``st`` says exactly where that record ended.
    """
    for data in stream:
        if st.whole_lines and not data.endswith(b"\n"):
            _left_for_later(st.warn, st.source, st.line + 1)
            return
        st.offset += len(data)
        st.line += 1
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            if st.bad is None:
                st.bad = (st.line, exc.start + 1)
            text = data.decode("utf-8", "surrogateescape")
        if st.offset == len(data) and text.startswith("\ufeff"):
            text = text[1:]
        st.lines.append(text)
        yield text


def _record_text(lines: list[str]) -> str:
    text = "".join(lines).rstrip("\r\n")
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


class _Table(_Format):
    def __init__(
        self,
        delimiter: str,
        columns: list[str] | None,
        whole_lines: bool,
        warn: Callable[[str], None] | None,
    ) -> None:
        super().__init__(whole_lines, warn)
        self._delimiter = delimiter
        self._columns = columns
        if csv.field_size_limit() < _CSV_FIELD_LIMIT:
            # Process-wide, but only ever raised: the 128 Ki default is below the data limit.
            csv.field_size_limit(_CSV_FIELD_LIMIT)

    def rows(
        self, stream: Stream, source: str, start: Position | None
    ) -> Iterator[Row | Rejection]:
        st = _LineState(self._whole_lines, source, self.warn)
        reader = csv.reader(_feed(stream, st), delimiter=self._delimiter)
        header = self._columns
        if header is None:
            header = self._read_header(reader, st, source)
            if header is None:
                return
        if start is not None:
            mid_line = _skip_to(stream, st.offset, start, source)
            st.offset, st.line = start.offset, start.line - mid_line
        width = len(header)
        while True:
            first = st.line + 1
            st.lines.clear()
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                st.bad = None
                yield self._reject(source, first, st, f"not valid CSV: {exc}")
                continue
            if st.bad is not None:
                bad_line, bad_byte = st.bad
                st.bad = None
                where = "the line" if st.line == first else f"line {bad_line}"
                yield self._reject(
                    source, first, st, f"invalid UTF-8 at byte {bad_byte} of {where}"
                )
                continue
            if len(cells) != width or width == 1:
                if not cells or (len(cells) == 1 and not cells[0].strip()):
                    continue
                if len(cells) != width:
                    yield self._reject(
                        source, first, st, f"expected {width} fields, got {len(cells)}"
                    )
                    continue
            yield Row(
                source, first, Position(st.offset, st.line), dict(zip(header, cells, strict=True))
            )

    @staticmethod
    def _reject(source: str, line: int, st: _LineState, reason: str) -> Rejection:
        return Rejection(
            source, line, Position(st.offset, st.line), reason, raw=_record_text(st.lines)
        )

    @staticmethod
    def _read_header(reader: Iterator[list[str]], st: _LineState, source: str) -> list[str] | None:
        try:
            for cells in reader:
                header = _Table._check_first_row(cells, st, source)
                if header is not None:
                    return header
        except csv.Error as exc:
            raise InputError(f"{source}: the header is not valid CSV ({exc})") from None
        return None

    @staticmethod
    def _check_first_row(cells: list[str], st: _LineState, source: str) -> list[str] | None:
        """The header, or ``None`` if this row is blank."""
        if not cells or (len(cells) == 1 and not cells[0].strip()):
            return None
        if st.bad is not None:
            raise InputError(
                f"{source}: the header has invalid UTF-8 (line {st.bad[0]}, byte {st.bad[1]})",
                hint="Save the file as UTF-8.",
            )
        header = _check_header(cells, "the header")
        if isinstance(header, str):
            raise InputError(
                f"{source}: {header}",
                hint=f"Name every column once, or give the names with {option('columns')} "
                "if the file has no header.",
            )
        return header
