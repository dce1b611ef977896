"""Every rejection is visible, and every reject can be fixed and fed back.

Each kind of reject line (a line that could not be parsed, a JSON Lines row or a CSV row
that could not be mapped, a record the server refused, a record given up on) is fixed in
the rejects file and fed back with the same options, and lands in the index.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from vupsert_server import LocalServer, ServerConfig

from .conftest import read_jsonl, run_cli, write_jsonl


def rows(n: int, field: str = "data") -> list[dict[str, Any]]:
    return [{"id": f"r{i}", field: f"text number {i}"} for i in range(n)]


def write_lines(path: Path, lines: list[dict[str, Any]]) -> None:
    path.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in lines))


def test_without_a_rejects_file_the_first_rejections_are_named_on_stderr(
    server: LocalServer, tmp_path: Path
) -> None:
    records: list[dict[str, Any]] = rows(30)
    for i in range(0, 30, 2):
        records[i] = {"id": f"r{i}"}  # no data: 15 rejected
    path = write_jsonl(tmp_path / "in.jsonl", records)
    for quiet in ([], ["-q"]):
        result = run_cli("upsert", path, *quiet, server=server)
        assert result.code == 1, result.stderr
        named = [line for line in result.stderr.splitlines() if line.startswith("rejected ")]
        assert named[:2] == [
            f'rejected {path}:1: missing data (field "data")',
            f'rejected {path}:3: missing data (field "data")',
        ]
        assert len(named) == 10
        assert "... and 5 more rejected records: a rejects file (--rejects) keeps every one" in (
            result.stderr
        )


def test_with_a_rejects_file_quiet_names_none(server: LocalServer, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "in.jsonl", [*rows(3), {"id": "x"}])
    rejects = tmp_path / "rejects.jsonl"
    result = run_cli("upsert", path, "-q", "--rejects", rejects, server=server)
    assert result.code == 1
    assert "rejected " not in result.stderr and len(read_jsonl(rejects)) == 1
    loud = run_cli("upsert", path, "--rejects", rejects, server=server)
    assert f'rejected {path}:4: missing data (field "data")' in loud.stderr


def test_text_instead_of_data_is_hinted(server: LocalServer, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "in.jsonl", rows(5, field="text"))
    result = run_cli("upsert", path, server=server)
    assert result.code == 1
    assert 'missing data (field "data"); the record has "text": use --data-field text' in (
        result.stderr
    )


def test_a_whole_input_that_misfits_the_options_stops_before_sending(
    server: LocalServer, tmp_path: Path
) -> None:
    path = write_jsonl(tmp_path / "in.jsonl", rows(5000, field="text"))
    rejects, checkpoint = tmp_path / "rejects.jsonl", tmp_path / "run.ckpt"
    args = ("upsert", path, "--rejects", rejects, "--checkpoint", checkpoint, "--json")
    result = run_cli(*args, server=server)
    assert result.code == 2, result.stderr
    assert "use --data-field text" in result.stderr and "nothing was sent" in result.stderr
    assert server.records("") == {}
    # The 100 read are rejected, each in the rejects file; the rest is not read.
    summary = result.summary
    assert summary["records_read"] == summary["records_rejected"] == 100
    assert summary["records_pending"] == 0 and summary["records_upserted"] == 0
    assert "not settled" not in result.stderr
    assert [line["_vupsert"]["source"] for line in read_jsonl(rejects)] == [
        f"{path}:{n}" for n in range(1, 101)
    ]
    # The checkpoint did not move past them: the options fixed, the same run loads all.
    fixed = run_cli(*args, "--data-field", "text", server=server)
    assert fixed.code == 0, fixed.stderr
    assert fixed.summary["records_skipped"] == 0 and len(server.records("")) == 5000
    assert not rejects.exists() or read_jsonl(rejects) == []


def test_csv_piped_as_json_lines_is_hinted_and_stopped(server: LocalServer) -> None:
    csv = b"id,data\n" + b"".join(b"r%d,text %d\n" % (i, i) for i in range(300))
    result = run_cli("upsert", "-", server=server, input=csv)
    assert result.code == 2, result.stderr
    assert "use --format csv" in result.stderr
    again = run_cli("upsert", "-f", "csv", "-", server=server, input=csv)
    assert again.code == 0 and len(server.records("")) == 300


def test_every_kind_of_reject_is_fixed_and_fed_back(tmp_path: Path) -> None:
    jsonl = tmp_path / "in.jsonl"
    jsonl.write_bytes(
        b'{"id":"ok-1","text":"fine"}\n'
        b'{"id":"broken", "text": "a quote is missing}\n'  # read: not JSON
        b'{"id":"no-text","title":"the text field is absent"}\n'  # map
        b'{"id":"poison","text":"POISON in here"}\n'  # send: refused by the server
    )
    csv = tmp_path / "in.csv"
    csv.write_bytes(b"id,text,zip\nok-2,fine,00501\nempty,,02134\n")  # map: empty text
    rejects = tmp_path / "rejects.jsonl"
    options = ["-n", "docs", "--data-field", "text"]
    config = ServerConfig(port=0, refuse_matching="POISON")
    with LocalServer(config) as server:
        first = run_cli(
            "upsert", jsonl, csv, *options, "--no-infer-types", "--rejects", rejects,
            "--json", server=server,
        )  # fmt: skip
        assert first.code == 1, first.stderr
        lines = read_jsonl(rejects)
        stages = {line["_vupsert"]["source"].rsplit("/", 1)[1]: line for line in lines}
        assert {k: v["_vupsert"]["stage"] for k, v in stages.items()} == {
            "in.jsonl:2": "read",
            "in.jsonl:3": "map",
            "in.jsonl:4": "send",
            "in.csv:3": "map",
        }
        # Each line holds what is needed to fix it: the raw text, the row as read (the
        # CSV row with its cells), the record as sent.
        assert stages["in.jsonl:2"]["_vupsert"]["raw"].startswith('{"id":"broken"')
        assert stages["in.jsonl:3"]["title"] == "the text field is absent"
        assert stages["in.csv:3"]["zip"] == "02134"
        assert stages["in.csv:3"]["_vupsert"]["format"] == "csv"
        assert stages["in.jsonl:4"]["data"] == "POISON in here"

        fixed = []
        for line in lines:
            where = line["_vupsert"]["source"].rsplit("/", 1)[1]
            if where == "in.jsonl:2":
                line = {"id": "broken", "text": "the quote is back"}  # the line replaced
            elif where == "in.jsonl:3":
                line["text"] = line.pop("title")
            elif where == "in.csv:3":
                line["text"] = "now it has text"
            else:
                line["data"] = "cleaned up"
            fixed.append(line)
        write_lines(rejects, fixed)
        again = run_cli("upsert", rejects, *options, "--no-infer-types", "--json", server=server)
        assert again.code == 0, again.stderr
        stored = server.records("docs")
    assert stored == {
        "ok-1": ("fine", None),
        "ok-2": ("fine", {"zip": "00501"}),
        "broken": ("the quote is back", None),
        "no-text": ("the text field is absent", None),
        "empty": ("now it has text", {"zip": "02134"}),
        "poison": ("cleaned up", None),
    }


def test_a_record_given_up_on_is_fed_back(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "in.jsonl", rows(20))
    rejects = tmp_path / "rejects.jsonl"
    with LocalServer(ServerConfig(port=0, fail_rate=1.0, seed=1)) as server:
        first = run_cli(
            "upsert", path, "--retries", "0", "--rejects", rejects, "--json", server=server
        )
        assert first.code == 1, first.stderr
        lines = read_jsonl(rejects)
        assert len(lines) == 20 and {line["_vupsert"]["stage"] for line in lines} == {"send"}
        assert lines[0]["_vupsert"]["reason"].startswith("gave up after 1 attempts")
        server.set_faults(fail_rate=0.0)
        again = run_cli("upsert", rejects, "--json", server=server)
        assert again.code == 0, again.stderr
        assert len(server.records("")) == 20


def test_the_rejects_file_is_made_by_the_first_reject(server: LocalServer, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "in.jsonl", rows(5))
    rejects = tmp_path / "rejects.jsonl"
    clean = run_cli("upsert", path, "--rejects", rejects, "--json", server=server)
    assert clean.code == 0 and not rejects.exists()  # nothing rejected: no file
    assert clean.summary["rejects_file"] == str(rejects)
    write_jsonl(path, [*rows(5), {"id": "bad"}])
    assert run_cli("upsert", path, "--rejects", rejects, server=server).code == 1
    assert [line["id"] for line in read_jsonl(rejects)] == ["bad"]
    # Fixed and run again without a checkpoint: the earlier run's rejects go with it.
    write_jsonl(path, rows(6))
    assert run_cli("upsert", path, "--rejects", rejects, server=server).code == 0
    assert not rejects.exists()


def test_with_a_checkpoint_the_rejects_of_what_is_settled_stay(
    server: LocalServer, tmp_path: Path
) -> None:
    path = write_jsonl(tmp_path / "in.jsonl", [*rows(3), {"id": "bad"}])
    rejects, checkpoint = tmp_path / "rejects.jsonl", tmp_path / "run.ckpt"
    args = ("upsert", path, "--rejects", rejects, "--checkpoint", checkpoint)
    assert run_cli(*args, server=server).code == 1
    with path.open("ab") as more:
        more.write(b'{"id": "later", "data": "appended"}\n')
    # The rerun settles only the new line, cleanly: the run's reject is still its own.
    assert run_cli(*args, server=server).code == 0
    assert [line["id"] for line in read_jsonl(rejects)] == ["bad"]
    # Started again from the beginning, the inputs fixed: no reject, no file.
    write_jsonl(path, rows(4))
    assert run_cli(*args, "--restart", server=server).code == 0
    assert not rejects.exists()


def test_a_rejects_file_that_cannot_be_made_stops_the_run_before_it_sends(
    server: LocalServer, tmp_path: Path
) -> None:
    path = write_jsonl(tmp_path / "in.jsonl", rows(3))
    result = run_cli("upsert", path, "--rejects", tmp_path / "no" / "r.jsonl", server=server)
    assert result.code == 2 and "Cannot write the rejects file" in result.stderr
    assert server.records("") == {}


def test_a_rejects_symlink_keeps_pointing_where_it_did(server: LocalServer, tmp_path: Path) -> None:
    target = tmp_path / "kept.jsonl"
    target.write_text('{"id": "old", "_vupsert": {"reason": "an earlier run"}}\n')
    link = tmp_path / "rejects.jsonl"
    link.symlink_to(target)
    path = write_jsonl(tmp_path / "in.jsonl", rows(3))
    assert run_cli("upsert", path, "--rejects", link, server=server).code == 0
    assert link.is_symlink() and target.read_bytes() == b""
