"""JSON: an array of objects (``[{...}, {...}]``), read as a stream, one element at a time;
or JSON Lines, when the first value is an object (BigQuery, among others, names JSON Lines
``.json``).

A small scanner finds where each element ends; orjson parses it. The scanner knows only
what it takes to find that end: strings, with their escapes, and the nesting of brackets.
Whether an element is valid JSON is orjson's to say, so a bad element is rejected alone
and the elements after it still load.

An element whose end cannot be found by JSON's rules (a string with a line break in it,
as an unclosed quote makes; a bracket that closes the wrong thing) is found by the array's
layout instead, when it has one: in an array printed one element per line, or indented,
the next element starts on a line of its own at the same indentation as the broken one,
and that element is rejected alone too. Without such a layout, or past a break the layout
cannot bridge (an element that never closes, two elements without a comma between them),
the reading ends with an :class:`~vupsert.errors.InputError`, after every element before
it.

An element is named by its number (1-based), as a JSON Lines record is by its line, and
its position is the byte just after it: a checkpoint resumes there, where a comma or the
closing bracket must follow. Nothing is held but the current element and a read buffer.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import orjson

from ..config import option
from ..errors import InputError
from ..records import JsonLine, Position, Rejection, json_type
from ._encoding import Text
from ._opening import Reading, Stream, byte_before, read_stream, restart_hint

MAX_ELEMENT_BYTES = 16 * 1024 * 1024
"""An element that has not ended after this many bytes stops the reading: a record holds
at most 1 MB of data and 48 KB of metadata, so this is almost always a bracket that never
closes, and holding it would eat memory."""
_READ_SIZE = 256 * 1024
_BOM = b"\xef\xbb\xbf"
_SPACE = b" \t\r\n"
_OPEN = {0x7B: 0x7D, 0x5B: 0x5D}  # { -> }, [ -> ]
_QUOTE = 0x22
# Everything up to the next bracket, whole strings included: an element's brackets are
# visited one by one, its text is skipped in C. It stops at a quote only when the string
# it opens does not end within the buffer.
# JSON has no line break inside a string: one there is an unclosed quote (see _Broken).
_PLAIN = re.compile(rb'[^"\[\]{}]*(?:"[^"\\\n]*(?:\\.[^"\\\n]*)*"[^"\[\]{}]*)*', re.S)
_STRING = re.compile(rb'"[^"\\\n]*(?:\\.[^"\\\n]*)*"', re.S)
_STRING_START = re.compile(rb'"[^"\\\n]*(?:\\.[^"\\\n]*)*', re.S)
_INDENT_WINDOW = 256
_SCALAR = re.compile(rb"[^,\]\s]*")
_BLANK = re.compile(rb"[ \t\r\n]*")
_SNIFF = 4096
"""Bytes looked at to tell an array from JSON Lines by the first value."""


Lines = Callable[[Stream, str, Position | None], Iterator[JsonLine | Rejection]]


def array_or(
    lines_of: Callable[[Reading], Lines],
) -> Callable[[Reading], Iterator[JsonLine | Rejection]]:
    """The reader of JSON: each element of the input's array as a JSON Lines reader gives
    lines (see :func:`elements`), or each of its lines (``lines_of``) when its first
    value is an object."""

    def read_json(reading: Reading) -> Iterator[JsonLine | Rejection]:
        lines = lines_of(reading)

        def produce(
            stream: Stream, source: str, start: Position | None
        ) -> Iterator[JsonLine | Rejection]:
            if starts_as_array(stream.peek(_SNIFF)) is False:
                return lines(stream, source, start)
            text = Text(reading.options.encoding, reading.on_warning)
            return elements(stream, source, start, text)

        return read_stream(reading, produce)

    return read_json


def starts_as_array(head: bytes) -> bool | None:
    """Whether input that begins with ``head`` is an array (True), JSON Lines (False:
    its first value is an object), or cannot be told from ``head`` (None)."""
    if head.startswith(_BOM):
        head = head[len(_BOM) :]
    head = head.lstrip(_SPACE)
    if not head:
        return None
    return head[:1] != b"{"


class _Buffer:
    """The bytes read and not yet handed out, and where they start in the stream."""

    __slots__ = ("base", "data", "eof", "stream")

    def __init__(self, stream: Stream, base: int) -> None:
        self.stream = stream
        self.data = b""
        self.base = base
        """Offset in the stream of ``data[0]``."""
        self.eof = False

    def more(self, keep: int) -> int:
        """Drop ``data[:keep]`` and read more; returns how far indexes moved (``keep``).
        Sets :attr:`eof` when nothing more came."""
        chunk = self.stream.read1(_READ_SIZE)
        if not chunk:
            self.eof = True
        self.data = self.data[keep:] + chunk
        self.base += keep
        return keep


def elements(
    stream: Stream, source: str, start: Position | None, text: Text | None = None
) -> Iterator[JsonLine | Rejection]:
    """Each element of the array as a JSON Lines reader gives lines: ``(number, end,
    value, text)`` for an object (``text`` the element as written, on one line, in
    UTF-8), or a :class:`Rejection` for an element that is not one. ``text`` is the
    input's encoding (UTF-8 by default)."""
    text = text or Text()
    number = 0
    if start is not None:
        _skip_to(stream, start, source)
        number = start.line
    buf = _Buffer(stream, start.offset if start is not None else 0)
    i = 0
    if start is None:
        i = _open_bracket(buf, source)
        if i < 0:
            return
    # After "[" or a comma: an element or "]"; after an element: a comma or "]".
    expect_element = start is None
    while True:
        i = _skip_blank(buf, i)
        if i >= len(buf.data):
            raise _ends_early(source, number, buf.base + i)
        c = buf.data[i]
        if c == 0x5D:  # "]" ends the array, after a trailing comma too
            i += 1
            break
        if c == 0x2C:  # ","; an empty element (",,") holds no record to lose
            i += 1
            expect_element = True
            continue
        if expect_element:
            indent = _indent(buf.data, i)
            try:
                i, end = _element_end(buf, i, source, number + 1)
                after = end
            except _Broken as broken:
                if indent is None:
                    raise broken.error from None
                i, end, after = _resync(buf, broken, indent)
                expect_element = True
            else:
                expect_element = False
            number += 1
            yield _element(buf.data[i:end], source, number, buf.base + end, text)
            i = after
            continue
        if start is not None and number == start.line:
            raise InputError(
                f"{source}: the checkpoint's resume point (byte {start.offset:,}) is not "
                "after an element of the array; the input changed since that run",
                hint=restart_hint(),
            )
        raise InputError(
            f"{source}: element {number} is followed by {_shown(buf.data[i : i + 20])} at "
            f"byte {buf.base + i + 1:,}, where a comma or the closing ] should be",
            hint="The elements before it were read. Fix the array there (a missing comma?) "
            "and run again: upserts are idempotent.",
        )
    _check_rest(buf, i, source)


def _shown(data: bytes) -> str:
    return repr(data.decode("utf-8", "backslashreplace"))


def _skip_to(stream: Stream, start: Position, source: str) -> None:
    """Move to ``start.offset``, checking that an element ended right before it."""
    target = start.offset
    if byte_before(stream, 0, target, source) in (b" ", b"\t", b"\r", b"\n", b",", b"["):
        raise InputError(
            f"{source}: the checkpoint's resume point (byte {target:,}) is not after an "
            "element of the array; the input changed since that run",
            hint=restart_hint(),
        )


def _skip_blank(buf: _Buffer, i: int) -> int:
    start = i
    while True:
        i = _BLANK.match(buf.data, i).end()  # type: ignore[union-attr]
        if i < len(buf.data) or buf.eof:
            return i
        # Keep the last line break skipped: it tells the next element's indentation.
        line = buf.data.rfind(b"\n", start, i)
        moved = buf.more(line if line >= 0 else i)
        i, start = i - moved, max(0, line - moved)


def _indent(data: bytes, i: int) -> bytes | None:
    """The blank space between the line break before ``i`` and ``i``; ``None`` when
    something else comes first on that line (a compact array)."""
    line = data.rfind(b"\n", max(0, i - _INDENT_WINDOW), i)
    if line < 0:
        return None
    indent = data[line + 1 : i]
    return indent if not indent.strip(b" \t\r") else None


class _Broken(Exception):
    """An element whose end JSON's rules cannot find: ``error`` says why, should the
    array's layout not find it either (see :func:`_resync`)."""

    def __init__(self, start: int, at: int, error: InputError) -> None:
        super().__init__(error.message)
        self.start = start
        """Where the element starts in the buffer."""
        self.at = at
        """Where the scanner found it broken."""
        self.error = error


def _resync(buf: _Buffer, broken: _Broken, indent: bytes) -> tuple[int, int, int]:
    """``(start, end, after)`` of a broken element by the array's layout: it ends before
    the next line that starts an element at its indentation (or closes the array at a
    lesser one), its trailing comma left out."""
    closing = rb"\]" if not indent else rb"[ \t]{0,%d}\]" % (len(indent) - 1)
    # The next element: anything at its indentation but what closes (its own "}" when it
    # spans lines); the array's end: "]" further left.
    boundary = re.compile(rb"\n(?:" + re.escape(indent) + rb"[^\s}\],]|" + closing + rb")")
    start, pos = broken.start, broken.at
    while True:
        found = boundary.search(buf.data, pos)
        if found is not None:
            break
        if buf.eof or len(buf.data) - start > MAX_ELEMENT_BYTES:
            raise broken.error
        pos = max(pos, len(buf.data) - len(indent) - 2)
        moved = buf.more(start)
        start, pos = start - moved, pos - moved
    after = found.start()
    end = len(buf.data[:after].rstrip(_SPACE))
    if buf.data[end - 1 : end] == b",":
        end = len(buf.data[: end - 1].rstrip(_SPACE))
    return start, max(end, start + 1), after


def _open_bracket(buf: _Buffer, source: str) -> int:
    """Past the opening ``[``; -1 for an input with nothing in it."""
    buf.more(0)
    i = 0
    if buf.data.startswith(_BOM):
        i = len(_BOM)
    i = _skip_blank(buf, i)
    if i >= len(buf.data):
        return -1
    if buf.data[i] == 0x5B:
        return i + 1
    if buf.data[i] == 0x7B:
        raise InputError(
            f"{source}: holds JSON Lines after {buf.base + i:,} bytes of blank space, not an array",
            hint=f"Read it as JSON Lines with {option('format', 'jsonl')}.",
        )
    raise InputError(
        f"{source}: is not a JSON array of objects (it starts with {_shown(buf.data[i : i + 20])})",
        hint=f"A .json file holds one array of records, [{{...}}, {{...}}]; for one "
        f"object per line, use {option('format', 'jsonl')}.",
    )


def _element_end(buf: _Buffer, i: int, source: str, number: int) -> tuple[int, int]:
    """``(start, end)`` of the element starting at ``i``: indexes into ``buf.data``,
    which may have moved (been refilled) meanwhile."""
    first = buf.data[i]
    closer = _OPEN.get(first)
    if closer is None:
        pattern = _STRING if first == _QUOTE else _SCALAR
        while True:
            m = pattern.match(buf.data, i)
            # A scalar that reaches the end of the buffer, or a string that does not close
            # in it, may go on in the next read.
            if m is not None and m.end() < len(buf.data):
                return i, m.end()
            if first == _QUOTE:
                _check_string(buf, i, i, source, number)
            if buf.eof:
                raise _ends_early(source, number - 1, buf.base + len(buf.data))
            _grow(buf, i, source, number)
            i -= buf.more(i)
    stack = [closer]
    j = i + 1
    while True:
        j = _PLAIN.match(buf.data, j).end()  # type: ignore[union-attr]
        if j < len(buf.data) and buf.data[j] == _QUOTE:
            _check_string(buf, i, j, source, number)
        if j >= len(buf.data) or buf.data[j] == _QUOTE:
            # The buffer ends inside the element (or inside one of its strings).
            if buf.eof:
                raise _ends_early(source, number - 1, buf.base + len(buf.data), inside=True)
            _grow(buf, i, source, number)
            moved = buf.more(i)
            i, j = i - moved, j - moved
            continue
        c = buf.data[j]
        j += 1
        if c in _OPEN:
            stack.append(_OPEN[c])
        elif c == stack[-1]:
            stack.pop()
            if not stack:
                return i, j
        else:
            error = InputError(
                f"{source}: element {number} has {chr(c)!r} at byte {buf.base + j:,} where "
                f"{chr(stack[-1])!r} should close what it opened",
                hint="The elements before it were read. Fix the array there and run again: "
                "upserts are idempotent.",
            )
            raise _Broken(i, j, error)


def _check_string(buf: _Buffer, i: int, j: int, source: str, number: int) -> None:
    """Raise :class:`_Broken` if the string opening at ``j`` holds a line break."""
    end = _STRING_START.match(buf.data, j).end()  # type: ignore[union-attr]
    if end < len(buf.data) and buf.data[end] == 0x0A:
        error = InputError(
            f"{source}: element {number} has a line break inside a string at byte "
            f"{buf.base + end + 1:,}: a quote left open?",
            hint="The elements before it were read. Fix the array there and run again: "
            "upserts are idempotent.",
        )
        raise _Broken(i, end, error)


def _grow(buf: _Buffer, i: int, source: str, number: int) -> None:
    if len(buf.data) - i > MAX_ELEMENT_BYTES:
        raise InputError(
            f"{source}: element {number} (from byte {buf.base + i + 1:,}) is over "
            f"{MAX_ELEMENT_BYTES // (1024 * 1024)} MiB and has not ended: a bracket that "
            "never closes?",
            hint="The elements before it were read. Check the array there.",
        )


def _ends_early(source: str, number: int, at: int, *, inside: bool = False) -> InputError:
    if inside:
        where = f"inside element {number + 1}"
    else:
        where = f"after element {number}" if number else "before its first element"
    return InputError(
        f"{source}: the array ends early, {where} (byte {at:,}), without its closing ]; the "
        "file is truncated (an interrupted download or copy?)",
        hint="The elements before the break were read. Fetch a complete copy and run "
        "again: upserts are idempotent.",
    )


def _check_rest(buf: _Buffer, i: int, source: str) -> None:
    """Nothing but blank space may follow the closing bracket."""
    i = _skip_blank(buf, i)
    if i < len(buf.data):
        raise InputError(
            f"{source}: {_shown(buf.data[i : i + 20])} follows the array's closing ] at byte "
            f"{buf.base + i + 1:,}",
            hint="Every element of the array was read. A file holds one array; split "
            "several into files of their own.",
        )


def _element(data: bytes, source: str, number: int, end: int, text: Text) -> JsonLine | Rejection:
    if text.transcode is not None:
        try:
            data = text.transcode(data)
        except UnicodeDecodeError as exc:
            reason = text.invalid(exc, data, source, number, "the element")
            return Rejection(source, number, Position(end, number), reason, raw=text.shown(data))
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        reason = _why_bad(data, exc, source, number, text)
        return Rejection(source, number, Position(end, number), reason, raw=_raw(data))
    if type(value) is not dict:
        return Rejection(
            source,
            number,
            Position(end, number),
            f"expected a JSON object, got {json_type(value)}",
            raw=_raw(data),
        )
    if b"\n" in data or b"\r" in data:
        # Outside strings a line break is only blank space, and inside one JSON has it
        # escaped: on one line, the element is the same JSON, fit for a rejects file line.
        data = data.replace(b"\r\n", b" ").replace(b"\n", b" ").replace(b"\r", b" ")
    return number, end, value, data


def _why_bad(data: bytes, exc: orjson.JSONDecodeError, source: str, number: int, text: Text) -> str:
    bad = text.error(data) if text.utf8 else None
    if bad is not None:
        return text.invalid(bad, data, source, number, "the element")
    reason = f"not valid JSON: {exc.msg}"
    if "end of data" not in exc.msg:
        reason += f" at character {exc.pos + 1} of the element"
    return reason


def _raw(text: bytes) -> str:
    return text.decode("utf-8", "backslashreplace")
