"""A file that cannot be written (a full disk) stops the run with a clear error: no record
lost, no hang, no traceback, and the summary still printed.

``/dev/full`` answers every write with ENOSPC, as a full disk does; a file-size limit
(``RLIMIT_FSIZE``) cuts a file in the middle of a line, as a disk that fills up mid-run
does. Neither needs privileges.
"""

from __future__ import annotations

import resource
import subprocess
from pathlib import Path
from typing import Any

import orjson
import pytest

from vupsert_server import LocalServer, ServerConfig

from .conftest import (
    CUTTERS,
    Result,
    cli_env,
    cut_short,
    read_jsonl,
    run_cli,
    vupsert_command,
    write_jsonl,
)

FULL = Path("/dev/full")
pytestmark = pytest.mark.skipif(not FULL.exists(), reason="needs /dev/full")


def rows(n: int, *, poison_every: int = 0) -> list[dict[str, Any]]:
    return [
        {
            "id": f"r{i}",
            "data": f"record {i} {'POISON' if poison_every and i % poison_every == 0 else ''}",
        }
        for i in range(n)
    ]


def run_limited(limit: int, *args: str | Path, server: LocalServer) -> Result:
    """The CLI with every file it writes limited to ``limit`` bytes."""

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    proc = subprocess.run(
        vupsert_command(*args),
        capture_output=True,
        env=cli_env(server),
        timeout=120,
        preexec_fn=cap,
    )
    return Result(proc.returncode, proc.stdout.decode(), proc.stderr.decode())


def assert_clean_failure(result: Result, path: Path | str) -> dict[str, Any]:
    assert result.code == 3, result.stderr
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    assert f"error: could not write {path}" in result.stderr
    summary = result.summary  # the --json summary is still printed
    assert summary["error"].startswith(f"could not write {path}")
    return summary


def test_rejects_on_a_full_disk(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "in.jsonl", rows(300, poison_every=10))
    with LocalServer(ServerConfig(port=0, refuse_matching="POISON")) as server:
        result = run_cli("upsert", path, "--rejects", FULL, "--json", "-b", "50", server=server)
        summary = assert_clean_failure(result, FULL)
        assert summary["records_unrecorded"] > 0
        assert summary["records_unrecorded"] == summary["records_rejected"]
        assert f"{summary['records_unrecorded']:,} rejected" in result.stderr
        # What was sent before the stop is in the index.
        assert len(server.records("")) == summary["records_upserted"] > 0


def test_a_rejects_file_cut_by_the_disk_ends_on_a_whole_line(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "in.jsonl", rows(400, poison_every=4))
    rejects = tmp_path / "rejects.jsonl"
    with LocalServer(ServerConfig(port=0, refuse_matching="POISON")) as server:
        result = run_limited(
            3000, "upsert", path, "--rejects", rejects, "--json", "-b", "20", server=server
        )
        summary = assert_clean_failure(result, rejects)
    data = rejects.read_bytes()
    assert 0 < len(data) <= 3000 and data.endswith(b"\n")
    written = read_jsonl(rejects)  # every line whole
    assert len(written) + summary["records_unrecorded"] == summary["records_rejected"]
    assert summary["records_unrecorded"] > 0


def test_report_on_a_full_disk_does_not_hang(server: LocalServer, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "in.jsonl", rows(3000))
    result = run_cli("upsert", path, "--report", FULL, "--json", "-b", "100", server=server)
    summary = assert_clean_failure(result, FULL)
    assert summary["records_pending"] == 0
    assert len(server.records("")) == summary["records_upserted"] > 0


def test_checkpoint_on_a_full_disk_keeps_the_last_good_one(
    server: LocalServer, tmp_path: Path
) -> None:
    path = write_jsonl(tmp_path / "in.jsonl", rows(2000))
    checkpoint = tmp_path / "cp.json"
    first = run_cli("upsert", path, "--checkpoint", checkpoint, "-b", "100", server=server)
    assert first.code == 0
    good = checkpoint.read_bytes()
    path.write_bytes(path.read_bytes() + b"".join(orjson.dumps(r) + b"\n" for r in rows(5)))
    result = run_limited(100, "upsert", path, "--checkpoint", checkpoint, "--json", server=server)
    assert_clean_failure(result, checkpoint)
    assert checkpoint.read_bytes() == good  # replaced whole or not at all
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".cp.json.")]
    again = run_cli("upsert", path, "--checkpoint", checkpoint, "--json", server=server)
    assert again.code == 0 and again.summary["records_skipped"] == 2000


@pytest.mark.parametrize("kind", CUTTERS)
def test_a_truncated_archive_sends_every_line_decoded_before_the_break(
    server: LocalServer, tmp_path: Path, kind: str
) -> None:
    data = b"".join(orjson.dumps(r) + b"\n" for r in rows(12_000))
    cut, decoded = cut_short(kind, data)
    path = tmp_path / "in.jsonl"
    path.write_bytes(cut)
    result = run_cli("upsert", path, "--json", server=server)
    assert result.code == 3 and "truncated" in result.stderr
    summary = result.summary
    # What zcat decodes before the break, but the line the break cuts.
    whole = decoded.count(b"\n")
    assert summary["records_read"] == summary["records_upserted"] == whole > 1000
    assert summary["records_pending"] == summary["records_rejected"] == 0
    stored = server.records("")
    assert sorted(stored) == sorted(f"r{i}" for i in range(whole))
    assert "were loaded" in result.stderr


def _rejected_ids(path: Path) -> list[str]:
    return [line["id"] for line in read_jsonl(path)]


@pytest.mark.parametrize("rerun", ["same path", "another path", "moved"])
@pytest.mark.parametrize("checkpointed", [True, False], ids=["checkpoint", "no checkpoint"])
def test_a_rerun_after_a_full_disk_keeps_every_reject_in_one_file(
    tmp_path: Path, rerun: str, checkpointed: bool
) -> None:
    path = write_jsonl(tmp_path / "in.jsonl", rows(400, poison_every=4))
    first, second = tmp_path / "rejects.jsonl", tmp_path / "elsewhere" / "rejects.jsonl"
    second.parent.mkdir()
    checkpoint: list[str | Path] = ["--checkpoint", tmp_path / "run.ckpt"] if checkpointed else []
    args = ["upsert", path, *checkpoint, "--json", "-b", "20"]
    with LocalServer(ServerConfig(port=0, refuse_matching="POISON")) as server:
        full = run_limited(3000, *args, "--rejects", first, server=server)
        assert_clean_failure(full, first)
        assert 0 < len(_rejected_ids(first)) < 100
        advice = " ".join(full.stderr.split())
        if checkpointed:
            assert "carries on from the checkpoint" in advice and "move it" in advice
        else:
            assert "reads every record again" in advice
        if rerun == "moved":
            first.rename(second)
        target = first if rerun == "same path" else second
        again = run_cli(*args, "--rejects", target, server=server)
        assert again.code == 1, again.stderr
        assert len(server.records("")) == 300
    assert sorted(_rejected_ids(target)) == sorted(f"r{i}" for i in range(0, 400, 4))
    copied = f"the rejects file {target} starts with the"
    assert (copied in again.stderr) == (checkpointed and rerun == "another path")


def test_a_rejects_file_edited_under_its_checkpoint_is_not_cut(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "in.jsonl", rows(400, poison_every=4))
    rejects = tmp_path / "rejects.jsonl"
    args: list[str | Path] = [
        "upsert",
        path,
        "--checkpoint",
        tmp_path / "run.ckpt",
        "--rejects",
        rejects,
    ]
    with LocalServer(ServerConfig(port=0, refuse_matching="POISON")) as server:
        assert_clean_failure(run_limited(3000, *args, "--json", "-b", "20", server=server), rejects)
        # A record fixed and its line taken out, in place, while the run is unfinished.
        edited = b"".join(rejects.read_bytes().splitlines(keepends=True)[1:])
        rejects.write_bytes(edited)
        again = run_cli(*args, server=server)
        assert again.code == 2 and f"{rejects} changed since the checkpoint" in again.stderr
        assert rejects.read_bytes() == edited
        rejects.rename(tmp_path / "fixed.jsonl")
        assert run_cli(*args, server=server).code == 1
        assert len(server.records("")) == 300
