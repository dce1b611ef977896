"""Text that is not UTF-8, read with --encoding, and the hints a new user's first file gets:
a Latin-1 file read without it, a CSV separated by semicolons, https to a plain-http server.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import orjson
import pytest

import vupsert
from vupsert.config.settings import ReadOptions, check_encoding
from vupsert.errors import ConfigError
from vupsert.inputs import iter_rows, read_input
from vupsert.ops._delete import read_ids
from vupsert.outcomes import DeleteSummary
from vupsert.records import Position, Rejection, Row
from vupsert_server import LocalServer

from .conftest import ROOT, read_jsonl, run_cli

pytestmark = pytest.mark.lived_in

CITIES = ["Zürich", "Genève", "Malmö", "Cádiz", "Œuvre—€"]
"""Text that cp1252 holds and UTF-8 writes otherwise (``Œ``, ``—`` and ``€`` are cp1252's
own, not Latin-1's)."""


def cp1252_csv(tmp_path: Path, name: str = "cities.csv") -> Path:
    lines = ["id,data,city"] + [f"c{i},Café number {i},{c}" for i, c in enumerate(CITIES)]
    path = tmp_path / name
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode("cp1252"))
    return path


def cp1252_jsonl(tmp_path: Path, first: int, count: int, name: str = "cities.jsonl") -> Path:
    path = tmp_path / name
    with path.open("ab") as f:
        for i in range(first, first + count):
            city = CITIES[i % len(CITIES)]
            record = {"id": f"c{i}", "data": f"Café {i} in {city}", "metadata": {"city": city}}
            f.write(orjson.dumps(record).decode().encode("cp1252") + b"\n")
    return path


def expected(first: int, count: int) -> dict[str, tuple[str, dict[str, str]]]:
    return {
        f"c{i}": (f"Café {i} in {CITIES[i % 5]}", {"city": CITIES[i % 5]})
        for i in range(first, first + count)
    }


# --- --encoding ---------------------------------------------------------------------------


def test_a_cp1252_csv_lands_as_written(server: LocalServer, tmp_path: Path) -> None:
    path = cp1252_csv(tmp_path)
    result = run_cli("upsert", path, "-n", "c", "--encoding", "cp1252", "--json", server=server)
    assert result.code == 0, result.stderr
    assert result.summary["records_upserted"] == len(CITIES)
    assert server.records("c") == {
        f"c{i}": (f"Café number {i}", {"city": city}) for i, city in enumerate(CITIES)
    }


def test_json_lines_resume_at_byte_positions_of_the_input(
    server: LocalServer, tmp_path: Path
) -> None:
    """A checkpoint counts the input's bytes, not their UTF-8: a rerun over the grown
    file starts right after the lines the first run settled."""
    path = cp1252_jsonl(tmp_path, 0, 40)
    checkpoint = tmp_path / "run.ckpt"
    args = ("upsert", path, "-n", "j", "--encoding", "cp1252", "--checkpoint", checkpoint)
    first = run_cli(*args, "--json", server=server)
    assert first.code == 0, first.stderr
    cp1252_jsonl(tmp_path, 40, 25)
    second = run_cli(*args, "--json", server=server)
    assert second.code == 0, second.stderr
    assert second.summary["records_skipped"] == 40
    assert second.summary["records_upserted"] == 25
    assert server.records("j") == expected(0, 65)


def test_positions_are_byte_positions(tmp_path: Path) -> None:
    path = cp1252_jsonl(tmp_path, 0, 3)
    raw = path.read_bytes()
    ends = [i + 1 for i, byte in enumerate(raw) if byte == 0x0A]
    opened = read_input(str(path), ReadOptions(encoding="cp1252"))
    assert [item[1] for item in opened.items] == ends  # type: ignore[index]
    rows = list(iter_rows(str(cp1252_csv(tmp_path)), ReadOptions(encoding="cp1252")))
    raw = (tmp_path / "cities.csv").read_bytes()
    assert [r.end.offset for r in rows] == [i + 1 for i, b in enumerate(raw) if b == 0x0A][1:]
    resumed = read_input(str(path), ReadOptions(encoding="cp1252"), start=Position(ends[0], 1))
    assert [item[0] for item in resumed.items] == [2, 3]  # type: ignore[index]


def test_stdin_and_a_json_array_in_latin_1(server: LocalServer, tmp_path: Path) -> None:
    lines = cp1252_jsonl(tmp_path, 0, 4).read_bytes().decode("cp1252")
    latin = lines.replace("Œuvre—€", "Ærø").encode("latin-1")
    result = run_cli("upsert", "-", "-n", "s", "--encoding", "latin-1", server=server, input=latin)
    assert result.code == 0, result.stderr
    assert server.records("s")["c2"] == ("Café 2 in Malmö", {"city": "Malmö"})

    array = b"[\n  " + b",\n  ".join(latin.splitlines()) + b"\n]\n"
    (tmp_path / "a.json").write_bytes(array)
    result = run_cli(
        "upsert", tmp_path / "a.json", "-n", "a", "--encoding", "latin1", server=server
    )
    assert result.code == 0, result.stderr
    assert server.records("a") == server.records("s")


def test_text_that_is_not_in_the_encoding_is_rejected_by_line(
    server: LocalServer, tmp_path: Path
) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b'{"id": "1", "data": "ok \x80"}\n{"id": "2", "data": "bad \x81"}\n')
    rejects = tmp_path / "rejects.jsonl"
    result = run_cli(
        "upsert", path, "-n", "b", "--encoding", "cp1252", "--rejects", rejects, server=server
    )
    assert result.code == 1, result.stderr
    assert server.records("b") == {"1": ("ok €", None)}
    (rejected,) = read_jsonl(rejects)
    assert rejected["_vupsert"]["source"] == f"{path}:2"
    assert rejected["_vupsert"]["reason"] == "invalid cp1252 at byte 26 of the line"
    assert rejected["_vupsert"]["raw"] == '{"id": "2", "data": "bad \\x81"}'


def test_delete_reads_a_list_of_ids_in_its_encoding(server: LocalServer, tmp_path: Path) -> None:
    rows = [{"id": city, "data": f"about {city}"} for city in CITIES]
    vupsert.upsert(rows, url=server.url, token=server.token, namespace="d")
    listed = tmp_path / "ids.txt"
    listed.write_bytes("\n".join(CITIES[:3]).encode("cp1252") + b"\n")
    result = run_cli(
        "delete", "-n", "d", "--ids", listed, "--encoding", "cp1252", "--json", server=server
    )
    assert result.code == 0, result.stderr
    assert result.summary["records_deleted"] == 3
    assert sorted(server.records("d")) == sorted(CITIES[3:])


def test_delete_says_once_which_option_reads_a_list_that_is_not_utf8(tmp_path: Path) -> None:
    listed = tmp_path / "ids.txt"
    listed.write_bytes("Zürich\nGenève\n".encode("latin-1"))
    summary = DeleteSummary()
    assert list(read_ids(str(listed), summary)) == []
    assert summary.first_without_id is not None
    assert "encoding='cp1252'" in summary.first_without_id
    assert list(read_ids(str(listed), DeleteSummary(), encoding="latin-1")) == ["Zürich", "Genève"]


@pytest.mark.parametrize("name", ["utf-16", "UTF-32", "utf-16-le", "shift_jis", "gbk", "utf-7"])
def test_encodings_whose_ascii_is_not_one_byte_are_refused(
    server: LocalServer, tmp_path: Path, name: str
) -> None:
    path = cp1252_csv(tmp_path)
    result = run_cli("upsert", path, "--encoding", name, server=server)
    assert result.code == 2
    assert f"--encoding {name}: vupsert reads text in which a newline" in result.stderr
    assert f"iconv -f {name} -t UTF-8" in result.stderr
    assert server.stats["requests"] == {}


@pytest.mark.parametrize("name", ["nope", "base64", "rot13"])
def test_a_name_that_is_no_text_encoding_is_refused(name: str) -> None:
    with pytest.raises(ConfigError, match="there is no such text encoding"):
        check_encoding(name)
    with pytest.raises(ConfigError, match=f"encoding='{name}'"):
        vupsert.upsert([{"id": "1", "data": "x"}], encoding=name, dry_run=True)


@pytest.mark.parametrize(
    ("name", "codec"),
    [
        ("utf-8", "utf-8"),
        ("UTF8", "utf-8"),
        ("utf-8-sig", "utf-8"),
        ("latin-1", "iso8859-1"),
        ("cp1252", "cp1252"),
        ("iso-8859-15", "iso8859-15"),
        ("cp1251", "cp1251"),
        ("euc-jp", "euc_jp"),
    ],
)
def test_encodings_whose_ascii_is_one_byte_are_read(name: str, codec: str) -> None:
    assert check_encoding(name) == codec


def test_a_utf16_file_says_what_it_is(server: LocalServer, tmp_path: Path) -> None:
    path = tmp_path / "notepad.csv"
    path.write_bytes("id,data\n1,hello\n".encode("utf-16"))
    result = run_cli("upsert", path, server=server)
    assert result.code == 3
    assert "is UTF-16 or UTF-32 text" in result.stderr
    assert "iconv -f UTF-16 -t UTF-8" in result.stderr


# --- the hint ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["csv", "jsonl", "json"])
def test_a_file_that_is_not_utf8_gets_one_hint_naming_the_option(
    server: LocalServer, tmp_path: Path, kind: str
) -> None:
    if kind == "csv":
        path = cp1252_csv(tmp_path)
    else:
        path = cp1252_jsonl(tmp_path, 0, 5)
        if kind == "json":
            lines = path.read_bytes().splitlines()
            path = tmp_path / "cities.json"
            path.write_bytes(b"[\n" + b",\n".join(lines) + b"\n]\n")
    result = run_cli("upsert", path, "-n", "h", server=server)
    assert result.code == 1
    rejected = [line for line in result.stderr.splitlines() if line.startswith("rejected ")]
    assert len(rejected) == 5
    assert all("invalid UTF-8 at byte" in line for line in rejected)
    hints = [line for line in result.stderr.splitlines() if "--encoding" in line]
    assert len(hints) == 1, result.stderr
    (hint,) = hints
    assert hint.startswith(f"warning: {path}:")
    assert "give --encoding cp1252" in hint
    assert "Zürich" in hint or "Café 0 in Zürich" in hint


@pytest.mark.parametrize(
    ("line", "byte"),
    [
        ("1,Привет мир".encode("cp1251"), 3),  # no Western text in cp1252: no guess
        (b"1,caf\xff\xfe au lait", 6),  # bytes that are no text, as samples/bad-records.jsonl has
    ],
)
def test_a_line_that_reads_as_no_western_text_gets_the_option_without_a_guess(
    server: LocalServer, tmp_path: Path, line: bytes, byte: int
) -> None:
    path = tmp_path / "other.csv"
    path.write_bytes(b"id,data\n" + line + b"\n")
    result = run_cli("upsert", path, server=server)
    (hint,) = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert hint == (
        f"warning: {path}:2: invalid UTF-8 at byte {byte} of the line: if the file is in another "
        "encoding than UTF-8, give it with --encoding (cp1252, latin-1, iso-8859-15, "
        "cp1251, ...)"
    )


def test_a_csv_header_that_is_not_utf8_names_the_option(
    server: LocalServer, tmp_path: Path
) -> None:
    path = tmp_path / "header.csv"
    path.write_bytes("id,data,Straße\n1,hello,x\n".encode("latin-1"))
    result = run_cli("upsert", path, server=server)
    assert result.code == 3
    assert "the header has invalid UTF-8 (line 1, byte 13)" in result.stderr
    assert "'id,data,Straße'" in result.stderr
    assert "give --encoding cp1252" in result.stderr
    assert run_cli("upsert", path, "--encoding", "cp1252", server=server).code == 0
    assert server.records() == {"1": ("hello", {"Straße": "x"})}


def test_a_semicolon_separated_csv_gets_a_hint_about_the_delimiter(
    server: LocalServer, tmp_path: Path
) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes(b"id;data;lang\n1;hello;en\n2;hallo;de\n")
    for args in ((), ("--id-from", "hash")):
        result = run_cli("upsert", path, *args, server=server)
        assert result.code == 2
        assert "has no column" in result.stderr
        assert "The header is one column, 'id;data;lang'" in result.stderr
        assert "give --delimiter ';'" in result.stderr
    result = run_cli("upsert", path, "--delimiter", ";", server=server)
    assert result.code == 0, result.stderr
    assert server.records() == {"1": ("hello", {"lang": "en"}), "2": ("hallo", {"lang": "de"})}


def test_a_table_of_one_column_without_a_delimiter_gets_the_usual_hint(
    server: LocalServer, tmp_path: Path
) -> None:
    path = tmp_path / "one.csv"
    path.write_bytes(b"text\nhello\n")
    result = run_cli("upsert", path, server=server)
    assert result.code == 2
    assert "--delimiter" not in result.stderr and "--id-field" in result.stderr


# --- https to a plain-http server -----------------------------------------------------------


def test_https_to_a_plain_http_server_suggests_http(server: LocalServer, tmp_path: Path) -> None:
    https = server.url.replace("http://", "https://")
    path = cp1252_csv(tmp_path)
    for args in (
        ("info",),
        ("upsert", path, "--encoding", "cp1252"),
        ("delete", "--ids", "-"),
        ("export", "-n", "x", "-o", tmp_path / "out.jsonl"),
    ):
        result = run_cli(*args, "--url", https, server=server, input=b"a\n")
        assert result.code == 2, (args, result.stderr)
        assert f"{https} answered in plain HTTP, not HTTPS" in result.stderr
        assert f"Use {server.url} in UPSTASH_VECTOR_REST_URL (or --url)" in result.stderr
        assert "SSL" not in result.stderr
    with pytest.raises(ConfigError, match=f"Use {server.url} in .* \\(or url=...\\)"):
        vupsert.upsert([{"id": "1", "data": "x"}], url=https, token=server.token)
    assert server.records() == {}


def test_without_preflight_the_batches_say_why(server: LocalServer, tmp_path: Path) -> None:
    https = server.url.replace("http://", "https://")
    path = tmp_path / "one.jsonl"
    path.write_bytes(b'{"id": "1", "data": "x"}\n')
    result = run_cli(
        "upsert", path, "--url", https, "--no-preflight", "--retries", "0", server=server
    )
    assert result.code == 1
    assert "answered in plain HTTP, not HTTPS: the server there does not speak TLS" in (
        result.stderr
    )


def test_rows_and_rejections_keep_their_type(tmp_path: Path) -> None:
    rows = list(iter_rows(str(cp1252_csv(tmp_path)), ReadOptions(encoding="cp1252")))
    assert all(isinstance(r, Row) for r in rows)
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"id,data\n1,\x81\n")
    (rejection,) = iter_rows(str(bad), ReadOptions(encoding="cp1252"))
    assert isinstance(rejection, Rejection)
    assert rejection.reason == "invalid cp1252 at byte 3 of the line"


# --- the README, as written ------------------------------------------------------------------

_TAGGED = re.compile(r"<!-- test: ([\w-]+) -->\n```\w+\n(.*?)^```$", re.S | re.M)


def readme_block(name: str) -> str:
    blocks: dict[str, str] = dict(_TAGGED.findall((ROOT / "README.md").read_text("utf-8")))
    return blocks[name]


def test_the_readme_loads_the_cp1252_sample(server: LocalServer) -> None:
    (line,) = readme_block("encoding").splitlines()
    argv = shlex.split(line)
    assert argv[:2] == ["vupsert", "upsert"]
    result = run_cli(*argv[1:], server=server, cwd=ROOT)
    assert result.code == 0, result.stderr
    stores = server.records("stores-fr")
    assert len(stores) == 6
    assert stores["store-02"] == (
        "Épicerie fine où l\u2019on trouve fromages affinés, œufs de la ferme et thés en vrac.",
        {"city": "Genève", "price": "12,90 €"},
    )


def test_the_readme_shows_the_warning_as_printed(server: LocalServer) -> None:
    command, shown = readme_block("encoding-hint").splitlines()
    argv = shlex.split(command.removeprefix("$ "))
    result = run_cli(*argv[1:], server=server, cwd=ROOT)
    assert result.code == 1
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert warnings == [shown]
