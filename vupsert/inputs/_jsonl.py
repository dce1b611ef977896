"""JSON Lines: one JSON object a line, handed to orjson as bytes, never decoded first
(a line in another encoding than UTF-8 is transcoded to it, alone).

A line becomes a plain :data:`~vupsert.records.JsonLine` tuple ``(line, offset, value,
text)``, the hot path's shape: at a million lines, making objects for them cost more than
parsing them. Blank lines are skipped; a line that is not an object is rejected alone,
with the reason and the line as read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import orjson

from ..config import option
from ..errors import InputError
from ..records import JsonLine, Position, Rejection, json_type
from ._encoding import Text
from ._opening import Reading, Stream, left_for_later, read_stream, skip_to_line_end

_BOM = b"\xef\xbb\xbf"


Lines = Callable[[Stream, str, Position | None], Iterator[JsonLine | Rejection]]
"""What reads the lines of an opened stream: ``(stream, source, start)``."""


def read_json_lines(reading: Reading) -> Iterator[JsonLine | Rejection]:
    """Each line of a JSON Lines input: a :data:`~vupsert.records.JsonLine`, or a
    :class:`~vupsert.records.Rejection` for a line that is not a JSON object."""
    return read_stream(reading, json_lines(reading))


def json_lines(reading: Reading) -> Lines:
    """What reads the lines of ``reading``'s stream once it is open."""
    return JsonLines(reading.whole_lines, reading.on_warning, reading.options.encoding).lines


class JsonLines:
    """Reads the lines of one stream; ``whole_lines`` leaves a last line that has no
    newline yet for the next run (``warn`` hears of it, and of a first line that is not
    UTF-8); ``encoding`` is the lines' encoding."""

    def __init__(
        self, whole_lines: bool, warn: Callable[[str], None] | None, encoding: str = "utf-8"
    ) -> None:
        self._whole_lines = whole_lines
        self.warn = warn
        self._encoding = encoding

    def lines(
        self, stream: Stream, source: str, start: Position | None
    ) -> Iterator[JsonLine | Rejection]:
        offset = line = 0
        if start is not None:
            mid_line = skip_to_line_end(stream, 0, start, source)
            offset, line = start.offset, start.line - mid_line
        text = Text(self._encoding, self.warn)
        loads = orjson.loads
        decode_error = orjson.JSONDecodeError
        whole_lines = self._whole_lines
        transcode = text.transcode
        size = 0
        for data in stream:
            if whole_lines and not data.endswith(b"\n") and not _complete_object(data, text):
                left_for_later(self.warn, source, line + 1)
                return
            offset += len(data)
            line += 1
            if transcode is not None:
                size = len(data)
                try:
                    data = transcode(data)
                except UnicodeDecodeError as exc:
                    reason = text.invalid(exc, data, source, line, "the line")
                    raw = text.shown(data.rstrip(b"\r\n"))
                    yield Rejection(source, line, Position(offset, line), reason, raw=raw)
                    continue
            try:
                value = loads(data)
            except decode_error as exc:
                # Blank lines, a BOM and every kind of bad line land here, off the hot path.
                first_line = offset == (size or len(data))
                item = _bad_json_line(data, exc, source, line, offset, first_line, text)
                if item is not None:
                    yield item
                continue
            if type(value) is dict:
                yield line, offset, value, data
            else:
                yield _not_an_object(value, data, source, line, offset)


def _raw_text(data: bytes) -> str:
    """The text of an unparseable item, kept for the rejects file."""
    if data.startswith(_BOM):
        data = data[3:]
    return data.rstrip(b"\r\n").decode("utf-8", "backslashreplace")


def _complete_object(data: bytes, text: Text) -> bool:
    try:
        return type(orjson.loads(text.transcode(data) if text.transcode else data)) is dict
    except (orjson.JSONDecodeError, UnicodeDecodeError):
        return False


def _not_an_object(value: object, data: bytes, source: str, line: int, offset: int) -> Rejection:
    return Rejection(
        source,
        line,
        Position(offset, line),
        f"expected a JSON object, got {json_type(value)}",
        raw=_raw_text(data),
    )


def _bad_json_line(
    data: bytes,
    exc: orjson.JSONDecodeError,
    source: str,
    line: int,
    offset: int,
    first_line: bool,
    text: Text,
) -> JsonLine | Rejection | None:
    """What a line orjson did not parse is (``data`` UTF-8 by now): nothing for a blank
    line, the record for a first line behind a BOM, else a rejection saying why."""
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
    bad = text.error(data) if text.utf8 else None
    if bad is not None:
        reason = text.invalid(bad, data, source, line, "the line")
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
