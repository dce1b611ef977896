from __future__ import annotations

import bz2
import csv
import gzip
import io
import lzma
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import pytest

from vupsert.config.settings import Format, ReadOptions
from vupsert.errors import ConfigError, InputError
from vupsert.inputs import _csv, format_of, input_size, iter_rows
from vupsert.inputs._csv import quote_left_open
from vupsert.ops._delete import read_ids
from vupsert.outcomes import DeleteSummary
from vupsert.records import Position, Rejection, Row

from .conftest import CUTTERS, cut_short

Item = Row | Rejection

COMPRESSORS: dict[str, Callable[[bytes], bytes]] = {
    "": lambda b: b,
    ".gz": gzip.compress,
    ".bz2": bz2.compress,
    ".xz": lzma.compress,
}


def write(tmp_path: Path, name: str, content: bytes) -> str:
    """Write ``content`` under ``name``, compressed as its last suffix says."""
    suffix = next((s for s in COMPRESSORS if s and name.endswith(s)), "")
    path = tmp_path / name
    path.write_bytes(COMPRESSORS[suffix](content))
    return str(path)


def read(
    name: str,
    options: ReadOptions | None = None,
    *,
    start: Position | None = None,
    stdin: io.BytesIO | None = None,
    on_bytes: Callable[[int], None] | None = None,
) -> list[Item]:
    rows = iter_rows(name, options or ReadOptions(), start=start, stdin=stdin, on_bytes=on_bytes)
    return list(rows)


def summary(items: list[Item]) -> list[tuple[object, ...]]:
    """(line, end offset, end line, value or reason) per item, for compact expectations."""
    return [
        (i.line, i.end.offset, i.end.line, i.value if isinstance(i, Row) else i.reason)
        for i in items
    ]


# --- format detection -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "fmt", "expected"),
    [
        ("a.jsonl", "auto", "jsonl"),
        ("a.ndjson", "auto", "jsonl"),
        ("a.json", "auto", "json"),
        ("a.json.gz", "auto", "json"),
        ("a.parquet", "auto", "parquet"),
        ("A.PQ", "auto", "parquet"),
        ("a.jsonl.json", "auto", "json"),
        ("a.csv", "auto", "csv"),
        ("A.CSV", "auto", "csv"),
        ("a.tsv", "auto", "tsv"),
        ("a.tab", "auto", "tsv"),
        ("a.csv.gz", "auto", "csv"),
        ("dir.csv/a.tsv.bz2", "auto", "tsv"),
        ("a.jsonl.xz", "auto", "jsonl"),
        ("a.txt", "auto", "jsonl"),
        ("a", "auto", "jsonl"),
        ("a.gz", "auto", "jsonl"),
        ("-", "auto", "jsonl"),
        ("-", "csv", "csv"),
        ("a.csv", "jsonl", "jsonl"),
        ("a.jsonl", "tsv", "tsv"),
    ],
)
def test_detect_format(name: str, fmt: Format, expected: str) -> None:
    assert format_of(name, fmt).name == expected


def test_input_size(tmp_path: Path) -> None:
    path = write(tmp_path, "a.jsonl", b"x" * 123)
    assert input_size(path) == 123
    assert input_size("-") is None
    assert input_size(str(tmp_path / "missing")) is None
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert input_size(str(fifo)) is None


# --- JSON Lines -----------------------------------------------------------------------

JSONL = (
    b'\xef\xbb\xbf{"id": 1}\r\n'  # BOM and CRLF: ends at byte 14
    b"\n"  # 15
    b"  \t \r\n"  # 21
    b"[1, 2]\n"  # 28
    b'{"id": "caf\xe9"}\n'  # 43: Latin-1, not UTF-8
    b'{"id": 2,\n'  # 53
    b'"x"\n'  # 57
    b"null\n"  # 62
    b'{"id": "\xc3\xa9"}'  # 74: no final newline
)
JSONL_EXPECTED: list[tuple[object, ...]] = [
    (1, 14, 1, {"id": 1}),
    (4, 28, 4, "expected a JSON object, got array"),
    (5, 43, 5, "invalid UTF-8 at byte 12 of the line"),
    (6, 53, 6, "not valid JSON: unexpected end of data"),
    (7, 57, 7, "expected a JSON object, got string"),
    (8, 62, 8, "expected a JSON object, got null"),
    (9, 74, 9, {"id": "é"}),
]


@pytest.mark.parametrize("suffix", list(COMPRESSORS))
def test_jsonl_lines_offsets_and_reasons(tmp_path: Path, suffix: str) -> None:
    path = write(tmp_path, f"a.jsonl{suffix}", JSONL)
    items = read(path)
    assert summary(items) == JSONL_EXPECTED
    assert all(i.source == path for i in items)
    raws = [i.raw for i in items if isinstance(i, Rejection)]
    assert raws == ["[1, 2]", '{"id": "caf\\xe9"}', '{"id": 2,', '"x"', "null"]


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"42", "expected a JSON object, got number"),
        (b"1.5", "expected a JSON object, got number"),
        (b"true", "expected a JSON object, got boolean"),
        (b'"s"', "expected a JSON object, got string"),
        (b"{'a': 1}", "not valid JSON: unexpected character, expected a string key at column 2"),
        (
            b'{"\xc3\xa9": x}',
            "not valid JSON: unexpected character, expected a JSON value at column 7",
        ),
        (b'{"a": 1,}', "not valid JSON: trailing comma is not allowed at column 8"),
        (b'{"a": "cut off in the mid', "not valid JSON: unexpected end of data"),
        (b'{"a": 1} {"b": 2}', "not valid JSON: unexpected content after document at column 10"),
        (b'{"a": "\\ud800"}', "not valid JSON: no low surrogate in string at column 8"),
        (b'{"a": "\xed\xa0\x80"}', "invalid UTF-8 at byte 8 of the line"),
    ],
)
def test_jsonl_rejection_reasons(tmp_path: Path, line: bytes, reason: str) -> None:
    [item] = read(write(tmp_path, "a.jsonl", line + b"\n"))
    assert isinstance(item, Rejection)
    assert item.reason == reason
    assert item.body is None


@pytest.mark.parametrize(
    "content",
    [b'[\n  {"id": 1}\n]\n', b'\xef\xbb\xbf{\n  "id": 1\n}\n', b'[{"id": 1},\n{"id": 2}]\n'],
)
def test_json_document_instead_of_lines_is_an_input_error(tmp_path: Path, content: bytes) -> None:
    path = write(tmp_path, "a.jsonl", content)
    with pytest.raises(InputError, match="looks like one JSON document") as e:
        read(path)
    assert "jq -c" in str(e.value) and "format='json'" in str(e.value)


def test_stdin_plain_and_compressed() -> None:
    plain = b'{"id": 1}\n{"id": 2}\n'
    for content in (plain, gzip.compress(plain), bz2.compress(plain), lzma.compress(plain)):
        items = read("-", stdin=io.BytesIO(content))
        assert [(i.source, i.line, i.end.offset) for i in items] == [
            ("<stdin>", 1, 10),
            ("<stdin>", 2, 20),
        ]


def test_stdin_is_not_closed() -> None:
    stdin = io.BytesIO(b'{"id": 1}\n')
    read("-", stdin=stdin)
    assert not stdin.closed


def test_compression_is_detected_by_content_not_name(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_bytes(gzip.compress(b'{"id": 1}\n'))
    assert summary(read(str(path))) == [(1, 10, 1, {"id": 1})]
    # A name that says gzip over plain content is read as what it is.
    path = tmp_path / "b.jsonl.gz"
    path.write_bytes(b'{"id": 1}\n')
    assert summary(read(str(path))) == [(1, 10, 1, {"id": 1})]


def test_csv_header_that_starts_like_bzip2_is_plain(tmp_path: Path) -> None:
    path = write(tmp_path, "a.csv", b"BZh9,data\n1,x\n")
    assert summary(read(path)) == [(2, 14, 2, {"BZh9": "1", "data": "x"})]


def test_multi_member_gzip(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl.gz"
    path.write_bytes(gzip.compress(b'{"id": 1}\n') + gzip.compress(b'{"id": 2}\n'))
    assert [i.end.offset for i in read(str(path))] == [10, 20]


# --- errors about the input as a whole -------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file") as e:
        read(str(tmp_path / "nope.jsonl"))
    assert str(tmp_path / "nope.jsonl") in str(e.value)


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="is a directory"):
        read(str(tmp_path))


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read any file")
def test_unreadable_file(tmp_path: Path) -> None:
    path = write(tmp_path, "a.jsonl", b"{}\n")
    os.chmod(path, 0)
    with pytest.raises(InputError, match="permission denied"):
        read(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param(content, message, id=message)
        for content, message in [
            (gzip.compress(b'{"id": 1}\n' * 1000)[:-30], "the gzip data ends early"),
            (gzip.compress(b'{"id": 1}\n')[:10] + b"\xff" * 40, "the gzip data is corrupt"),
            (bz2.compress(b'{"id": 1}\n')[:20] + b"\x00" * 40, "the bzip2 data is corrupt"),
            (lzma.compress(b'{"id": 1}\n')[:30] + b"\x00" * 40, "the xz data is corrupt"),
            (b"\x28\xb5\x2f\xfd" + b"\x00" * 20, "is zstd-compressed"),
            (b"PK\x03\x04" + b"\x00" * 20, "is a zip archive"),
        ]
    ],
)
def test_corrupt_or_unsupported_compression(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "a.jsonl.gz"
    path.write_bytes(content)
    with pytest.raises(InputError, match=message) as e:
        read(str(path))
    assert str(path) in str(e.value)


CUT_SHORT = {
    "jsonl": b"".join(
        b'{"id": "%d", "data": "line %d of a file cut short"}\n' % (i, i) for i in range(9000)
    ),
    "csv": b"id,data\n"
    + b"".join(b"%d,line %d of a file cut short\n" % (i, i) for i in range(9000)),
    "json": b"[\n"
    + b"".join(b'{"id": "%d", "data": "line %d cut short"},\n' % (i, i) for i in range(9000))
    + b"{}]\n",
    "ids": b"".join(b"id-%d\n" % i for i in range(40_000)),
}
"""About 200-500 KB of each: a few bzip2 blocks, each line one record (or id)."""


@pytest.mark.parametrize("kind", CUTTERS)
@pytest.mark.parametrize("fmt", CUT_SHORT)
def test_a_compressed_file_cut_short_yields_every_line_decoded_before_the_break(
    tmp_path: Path, kind: str, fmt: str
) -> None:
    cut, decoded = cut_short(kind, CUT_SHORT[fmt])
    whole = decoded.count(b"\n") - (fmt in ("csv", "json"))  # less a header, or "["
    path = tmp_path / f"a.{fmt}.{kind}"
    path.write_bytes(cut)
    got: list[Any] = []
    with pytest.raises(InputError, match="ends early"):
        if fmt == "ids":
            got.extend(read_ids(str(path), DeleteSummary(namespace="")))
        else:
            got.extend(iter_rows(str(path), ReadOptions(format=cast(Format, fmt))))
    assert len(got) == whole > 1000
    # Each a whole line: the one the break cuts is not read at all.
    if fmt == "ids":
        assert got[-1] == f"id-{whole - 1}"
    else:
        assert all(isinstance(row, Row) for row in got)
        assert got[-1].value["id"] == str(whole - 1)


def test_bad_options_raise_config_error_at_once() -> None:
    with pytest.raises(ConfigError, match="one character"):
        iter_rows("a.csv", ReadOptions(delimiter=";;"))
    with pytest.raises(ConfigError, match="names column 'a' twice"):
        iter_rows("a.csv", ReadOptions(columns=("a", "b", "a")))
    with pytest.raises(ConfigError, match="empty name"):
        iter_rows("a.csv", ReadOptions(columns=("a", " ")))


# --- CSV and TSV ----------------------------------------------------------------------

CSV = (
    b"\xef\xbb\xbfid,data,n\r\n"  # ends at byte 14
    b'1,"multi\r\n'  # 24
    b'line, with ""quotes""",3\r\n'  # 50
    b"\r\n"  # 52
    b"2,short\r\n"  # 61
    b'3,"a\n\nb",x\n'  # 72, lines 6-8
    b"4,caf\xe9,y\n"  # 81
    b"5,z,"  # 85, no final newline
)
CSV_EXPECTED: list[tuple[object, ...]] = [
    (2, 50, 3, {"id": "1", "data": 'multi\r\nline, with "quotes"', "n": "3"}),
    (5, 61, 5, "expected 3 fields, got 2"),
    (6, 72, 8, {"id": "3", "data": "a\n\nb", "n": "x"}),
    (9, 81, 9, "invalid UTF-8 at byte 6 of the line"),
    (10, 85, 10, {"id": "5", "data": "z", "n": ""}),
]


@pytest.mark.parametrize("suffix", list(COMPRESSORS))
def test_csv_rows_offsets_and_reasons(tmp_path: Path, suffix: str) -> None:
    path = write(tmp_path, f"a.csv{suffix}", CSV)
    items = read(path)
    assert summary(items) == CSV_EXPECTED
    raws = [i.raw for i in items if isinstance(i, Rejection)]
    assert raws == ["2,short", "4,caf\\xe9,y"]


LEFT_OPEN = (
    "the quote opened on line {0} is left open, so lines {0}-{1} were read as one row "
    '(close it; a quote inside a quoted cell is written "")'
)


@pytest.mark.parametrize("delimiter", [",", "\t"])
def test_a_quote_left_open_is_named_where_it_opened(tmp_path: Path, delimiter: str) -> None:
    rows = [
        "id,data,a,b",
        '1,"multi',  # a quoted cell over two lines: fine
        'line",x,y',
        '2,"hello,x,y',  # line 4: its quote is never closed, and takes every line after it
        "3,world,x,y",
        "4,ok,x,y",
        "5,end,x,y",
    ]
    text = "\n".join(rows).replace(",", delimiter) + "\n"
    path = write(tmp_path, "a.csv" if delimiter == "," else "a.tsv", text.encode())
    items = read(path)
    assert summary(items)[0][3] == {"id": "1", "data": "multi\nline", "a": "x", "b": "y"}
    (rejection,) = [item for item in items if isinstance(item, Rejection)]
    assert rejection.line == 4
    assert rejection.reason == "expected 4 fields, got 2: " + LEFT_OPEN.format(4, 7)


def test_a_row_of_the_wrong_width_with_a_closed_quote_says_only_that(tmp_path: Path) -> None:
    text = b'id,data,n\n1,"two\nlines",x,y\n2,"two\nlines"\n3,"a,\nb",c,d\n'
    items = read(write(tmp_path, "a.csv", text))
    assert [item.reason for item in items if isinstance(item, Rejection)] == [
        "expected 3 fields, got 4",
        "expected 3 fields, got 2",
        "expected 3 fields, got 4",
    ]


@pytest.mark.parametrize(
    ("lines", "opened"),
    [
        (['1,"a\n', "b,c\n"], 0),
        (['1,"a\n', 'b",c\n'], None),  # a cell of two lines, closed
        (['1,x"y,"z\n', "w,v\n"], 0),  # a quote inside a cell opens nothing
        (['1,"a""\n', "b,c\n"], 0),  # "" is a quote, the cell still open
        (['1,"a""",b\n'], None),
        (['1,"a\n', 'b","c\n', "d,e\n"], 1),  # the last quote to swallow a delimiter
    ],
)
def test_quote_left_open(lines: list[str], opened: int | None) -> None:
    assert quote_left_open(lines, ",") == opened


def test_csv_offsets_match_the_bytes(tmp_path: Path) -> None:
    path = write(tmp_path, "a.csv", CSV)
    ends = [i.end.offset for i in read(path)]
    for end in ends[:-1]:
        assert CSV[end - 1 : end] == b"\n"
    assert ends[-1] == len(CSV)


def test_tsv_and_custom_delimiter(tmp_path: Path) -> None:
    tsv = write(tmp_path, "a.tsv", b'id\tdata\n1\thello, "world"\n')
    assert summary(read(tsv)) == [(2, 25, 2, {"id": "1", "data": 'hello, "world"'})]
    semi = write(tmp_path, "a.csv", b"id;data\n1;x,y\n")
    options = ReadOptions(delimiter=";")
    assert summary(read(semi, options)) == [(2, 14, 2, {"id": "1", "data": "x,y"})]


def test_csv_without_header(tmp_path: Path) -> None:
    path = write(tmp_path, "a.csv", b"1,x\n2,y\n")
    items = read(path, ReadOptions(columns=("id", "data")))
    assert summary(items) == [
        (1, 4, 1, {"id": "1", "data": "x"}),
        (2, 8, 2, {"id": "2", "data": "y"}),
    ]


def test_csv_header_names_are_stripped(tmp_path: Path) -> None:
    path = write(tmp_path, "a.csv", b"id , data\n1, x\n")
    assert summary(read(path)) == [(2, 15, 2, {"id": "1", "data": " x"})]


def test_csv_whitespace_only_lines_are_skipped(tmp_path: Path) -> None:
    path = write(tmp_path, "a.csv", b"\n  \ndata\n \nx\n")
    assert summary(read(path)) == [(5, 13, 5, {"data": "x"})]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"id,data,id\n1,2,3\n", "names column 'id' twice"),
        (b"id,,data\n", r"empty name \(column 2\)"),
        (b"id,caf\xe9\n", "header has invalid UTF-8"),
    ],
)
def test_bad_header(tmp_path: Path, content: bytes, message: str) -> None:
    path = write(tmp_path, "a.csv", content)
    with pytest.raises(InputError, match=message) as e:
        read(path)
    assert path in str(e.value)


@pytest.mark.parametrize("content", [b"", b"id,data\n", b"\n\n"])
def test_csv_without_rows(tmp_path: Path, content: bytes) -> None:
    assert read(write(tmp_path, "a.csv", content)) == []


def test_csv_cell_over_the_field_limit_is_rejected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    saved = csv.field_size_limit()
    monkeypatch.setattr(_csv, "_CSV_FIELD_LIMIT", 100)
    csv.field_size_limit(100)
    try:
        path = write(tmp_path, "a.csv", b"id,data\n1," + b"x" * 200 + b"\n2,y\n")
        items = read(path)
    finally:
        csv.field_size_limit(saved)
    assert isinstance(items[0], Rejection)
    assert items[0].reason.startswith("not valid CSV: field larger than field limit")
    assert summary(items[1:]) == [(3, 215, 3, {"id": "2", "data": "y"})]


# --- resume -----------------------------------------------------------------------------

RESUME_CASES = [
    ("a.jsonl", JSONL, ReadOptions()),
    ("a.csv", CSV, ReadOptions()),
    ("a.csv", b"1,x\n\n2,y\n3,z\n", ReadOptions(columns=("id", "data"))),
]


@pytest.mark.parametrize("suffix", list(COMPRESSORS))
@pytest.mark.parametrize(("name", "content", "options"), RESUME_CASES)
def test_resume_after_each_item_yields_the_rest(
    tmp_path: Path, suffix: str, name: str, content: bytes, options: ReadOptions
) -> None:
    path = write(tmp_path, name + suffix, content)
    items = read(path, options)
    assert len(items) >= 3
    for i, item in enumerate(items):
        assert summary(read(path, options, start=item.end)) == summary(items[i + 1 :])


@pytest.mark.parametrize("compress", [lambda b: b, gzip.compress])
def test_resume_on_stdin_reads_and_discards(compress: Callable[[bytes], bytes]) -> None:
    items = read("-", stdin=io.BytesIO(compress(JSONL)))
    rest = read("-", stdin=io.BytesIO(compress(JSONL)), start=items[2].end)
    assert summary(rest) == summary(items[3:])


def test_resume_numbers_lines_after_start(tmp_path: Path) -> None:
    path = write(tmp_path, "a.jsonl", b'{"a": 1}\n{"a": 2}\n')
    # A checkpoint only counts lines; reading resumes counting from its line number.
    [row] = read(path, start=Position(9, 100))
    assert (row.line, row.end) == (101, Position(18, 101))


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize(
    ("start", "message"),
    [
        (Position(1000, 9), "is shorter than the checkpoint's resume point"),
        (Position(len(JSONL) + 1, 9), "is shorter than"),
        (Position(20, 4), "not at the end of a line"),
    ],
)
def test_resume_into_a_changed_file(
    tmp_path: Path, suffix: str, start: Position, message: str
) -> None:
    path = write(tmp_path, "a.jsonl" + suffix, JSONL)
    with pytest.raises(InputError, match=message) as e:
        read(path, start=start)
    assert "restart=True" in str(e.value)


def test_resume_inside_csv_header(tmp_path: Path) -> None:
    path = write(tmp_path, "a.csv", CSV)
    with pytest.raises(InputError, match="inside the header"):
        read(path, start=Position(5, 1))


def test_resume_at_end_of_file_without_newline(tmp_path: Path) -> None:
    path = write(tmp_path, "a.jsonl", JSONL)
    assert read(path, start=Position(len(JSONL), 9)) == []


# --- progress ---------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_on_bytes_increments_add_up_to_the_size(tmp_path: Path, suffix: str) -> None:
    content = b"".join(b'{"id": %d, "data": "%s"}\n' % (i, b"x" * 200) for i in range(2000))
    path = write(tmp_path, "a.jsonl" + suffix, content)
    seen: list[int] = []
    read(path, on_bytes=seen.append)
    assert all(n > 0 for n in seen)
    assert sum(seen) == os.path.getsize(path) == input_size(path)
    if not suffix:
        assert len(seen) <= len(content) // (64 * 1024) + 2


@pytest.mark.parametrize(("name", "content", "options"), RESUME_CASES)
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_on_bytes_counts_bytes_skipped_by_a_resume_once(
    tmp_path: Path, name: str, content: bytes, options: ReadOptions, suffix: str
) -> None:
    path = write(tmp_path, name + suffix, content)
    start = read(path, options)[1].end
    seen: list[int] = []
    read(path, options, start=start, on_bytes=seen.append)
    assert all(n > 0 for n in seen)
    assert sum(seen) == os.path.getsize(path)
