"""CSV and TSV: a header row (or the names ``columns`` gives), then one row per record,
each a :class:`~vupsert.records.Row` of ``{column: cell}``, every cell text.

A record is named by the line it starts on (a quoted cell may hold line breaks), and its
position is the byte just after it. A row that cannot be read (bad quoting, invalid
UTF-8, the wrong number of fields) is rejected alone, with its text as read.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator

from ..config import option
from ..errors import ConfigError, InputError
from ..records import Position, Rejection, Row
from ._encoding import Text, encoding_hint
from ._opening import Reading, Stream, left_for_later, read_stream, skip_to_line_end

_CSV_FIELD_LIMIT = 8 * 1024 * 1024
"""Characters in one CSV cell before the row is rejected.

Data over 1 MB is refused anyway, so a bigger cell is almost always an unbalanced quote
swallowing the rest of the file; the limit keeps that from eating all memory.
"""


def table(delimiter: str) -> Callable[[Reading], Iterator[Row | Rejection]]:
    """The reader of a table whose cells ``delimiter`` separates unless ``delimiter=``
    says otherwise."""

    def read_table(reading: Reading) -> Iterator[Row | Rejection]:
        """Each row of the table. Options that cannot work raise ConfigError at once."""
        options = reading.options
        given = options.delimiter if options.delimiter is not None else delimiter
        if len(given) != 1:
            raise ConfigError(f"the delimiter must be one character, not {given!r}")
        columns = None
        if options.columns is not None:
            what = f"the column names given with {option('columns')}"
            checked = _check_header(list(options.columns), what)
            if isinstance(checked, str):
                raise ConfigError(checked)
            columns = checked
        text = Text(reading.options.encoding, reading.on_warning)
        table = _Table(given, columns, reading.whole_lines, reading.on_warning, text)
        return read_stream(reading, table.rows)

    return read_table


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

    __slots__ = ("bad", "line", "lines", "offset", "source", "text", "warn", "whole_lines")

    def __init__(
        self,
        whole_lines: bool = False,
        source: str = "",
        warn: Callable[[str], None] | None = None,
        text: Text | None = None,
    ) -> None:
        self.whole_lines = whole_lines
        self.source = source
        self.warn = warn
        self.text = text or Text()
        self.offset = 0
        self.line = 0
        self.lines: list[str] = []
        """Text of the current record's lines, for a rejection's ``raw``."""
        self.bad: tuple[int, UnicodeDecodeError, bytes] | None = None
        """(line, error, bytes of that line) of the current record's first line that is
        not text in the input's encoding."""


def _feed(stream: Stream, st: _LineState) -> Iterator[str]:
    """Decoded lines for csv.reader, tracking the bytes and lines it has taken.

    csv.reader pulls lines only as it needs them to finish a record, so right after it
    yields a record, ``st`` says exactly where that record ended.
    """
    decode = st.text.decode
    for data in stream:
        if st.whole_lines and not data.endswith(b"\n"):
            left_for_later(st.warn, st.source, st.line + 1)
            return
        st.offset += len(data)
        st.line += 1
        try:
            text = decode(data)
        except UnicodeDecodeError as exc:
            if st.bad is None:
                st.bad = (st.line, exc, data)
            text = st.text.lenient(data)
        if st.offset == len(data) and text.startswith("\ufeff"):
            text = text[1:]
        st.lines.append(text)
        yield text


def quote_left_open(lines: list[str], delimiter: str) -> int | None:
    """Which of a record's ``lines`` (counted from 0) opened the last quoted cell that
    swallowed the delimiters of a line after it, as a quote left open does; ``None`` when
    none did. A quote opens a cell only at its start, and ``""`` inside one is a quote,
    as :mod:`csv` reads them."""
    quoted, opened, found = False, 0, None
    for number, text in enumerate(lines):
        start, skip = True, False
        for at, char in enumerate(text):
            if skip:
                skip = False
            elif quoted:
                if char == '"':
                    skip = text[at + 1 : at + 2] == '"'
                    quoted = skip
                elif char == delimiter and number > opened:
                    found = opened
            elif char == '"' and start:
                quoted, opened = True, number
            start = not quoted and char == delimiter
    return found


def _record_text(lines: list[str]) -> str:
    text = "".join(lines).rstrip("\r\n")
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


class _Table:
    def __init__(
        self,
        delimiter: str,
        columns: list[str] | None,
        whole_lines: bool,
        warn: Callable[[str], None] | None,
        text: Text,
    ) -> None:
        self._delimiter = delimiter
        self._columns = columns
        self._text = text
        self._whole_lines = whole_lines
        """Leave a last line without its newline for the next run (see ``warn``)."""
        self.warn = warn
        if csv.field_size_limit() < _CSV_FIELD_LIMIT:
            # Process-wide, but only ever raised: the 128 Ki default is below the data limit.
            csv.field_size_limit(_CSV_FIELD_LIMIT)

    def rows(
        self, stream: Stream, source: str, start: Position | None
    ) -> Iterator[Row | Rejection]:
        st = _LineState(self._whole_lines, source, self.warn, self._text)
        reader = csv.reader(_feed(stream, st), delimiter=self._delimiter)
        header = self._columns
        if header is None:
            header = self._read_header(reader, st, source)
            if header is None:
                return
        if start is not None:
            mid_line = skip_to_line_end(stream, st.offset, start, source)
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
                yield self._reject(source, first, st, f"not valid CSV: {exc}{self._open(st)}")
                continue
            if st.bad is not None:
                bad_line, error, data = st.bad
                st.bad = None
                where = "the line" if st.line == first else f"line {bad_line}"
                reason = st.text.invalid(error, data, source, first, where)
                yield self._reject(source, first, st, reason)
                continue
            if len(cells) != width or width == 1:
                if not cells or (len(cells) == 1 and not cells[0].strip()):
                    continue
                if len(cells) != width:
                    # Too few: a quote left open may have swallowed the delimiters.
                    open_quote = self._open(st) if len(cells) < width else ""
                    reason = f"expected {width} fields, got {len(cells)}{open_quote}"
                    yield self._reject(source, first, st, reason)
                    continue
            yield Row(
                source, first, Position(st.offset, st.line), dict(zip(header, cells, strict=True))
            )

    def _open(self, st: _LineState) -> str:
        """What a record that could not be read owes to a quote left open, if anything:
        where the quote opened, and the lines it swallowed."""
        opened = quote_left_open(st.lines, self._delimiter)
        if opened is None:
            return ""
        line = st.line - len(st.lines) + 1 + opened
        return (
            f": the quote opened on line {line} is left open, so lines {line}-{st.line} were "
            'read as one row (close it; a quote inside a quoted cell is written "")'
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
            line, exc, data = st.bad
            if st.text.utf8:
                said = encoding_hint(data, exc.start, "the header")
                hint = f"{said[0].upper()}{said[1:]}; or save the file as UTF-8."
            else:
                hint = f"Is the file in {st.text.encoding}? Check {option('encoding')}."
            raise InputError(
                f"{source}: the header has invalid {st.text.name} (line {line}, byte "
                f"{exc.start + 1})",
                hint=hint,
            )
        header = _check_header(cells, "the header")
        if isinstance(header, str):
            raise InputError(
                f"{source}: {header}",
                hint=f"Name every column once, or give the names with {option('columns')} "
                "if the file has no header.",
            )
        return header
