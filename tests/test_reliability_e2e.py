"""Nothing lost: faults, duplicates, kill -9 and resume, against the real local index."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from vupsert_server import LocalServer, ServerConfig

from .conftest import (
    cli_env,
    communicate,
    kill_when,
    read_jsonl,
    run_cli,
    run_process,
    vupsert_command,
    wait_for,
    write_jsonl,
)


def corpus(n: int, *, poison_every: int = 0, dup_every: int = 0) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for i in range(n):
        data = f"record {i} talks about subject {i % 13} and more words {i * 7}"
        if poison_every and i % poison_every == poison_every - 1:
            data += " POISON"
        id_ = f"id-{i}"
        if dup_every and i % dup_every == dup_every - 1:
            id_ = f"id-{i - dup_every + 1}"  # repeats an earlier id, with new data
        rows.append({"id": id_, "data": data, "metadata": {"i": i}})
    return rows


def expected_index(rows: list[dict[str, Any]]) -> dict[str, tuple[str, Any]]:
    """Last occurrence of each id wins; refused records keep their earlier version."""
    out: dict[str, tuple[str, Any]] = {}
    for row in rows:
        if "POISON" in row["data"]:
            continue
        out[row["id"]] = (row["data"], row["metadata"])
    return out


def test_faults_end_with_exact_index_and_rejects(tmp_path: Path) -> None:
    rows = corpus(6000, poison_every=997, dup_every=50)
    path = write_jsonl(tmp_path / "in.jsonl", rows)
    rejects = tmp_path / "rejects.jsonl"
    config = ServerConfig(
        port=0, seed=3, fail_rate=0.15, drop_rate=0.05, rate_limit=40, refuse_matching="POISON"
    )
    with LocalServer(config) as server:
        result = run_cli(
            "upsert",
            path,
            "-b",
            "200",
            "--rejects",
            rejects,
            "--json",
            "--max-backoff",
            "1",
            "--seed",
            "5",
            server=server,
        )
        assert result.code == 1, result.stderr
        summary = result.summary
        assert server.records("") == expected_index(rows)
        refused = [r for r in rows if "POISON" in r["data"]]
        lines = read_jsonl(rejects)
        assert sorted(line["id"] for line in lines) == sorted(r["id"] for r in refused)
        assert summary["records_rejected"] == len(refused)
        settled = ("records_upserted", "records_rejected", "records_superseded")
        assert sum(summary[key] for key in settled) == len(rows)
        assert summary["retries"] > 0
        statuses = server.stats["statuses"]
        assert any(str(s) in ("500", "502", "503") or s in (500, 502, 503) for s in statuses)


def test_retry_after_is_honoured(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "in.jsonl", corpus(3000))
    with LocalServer(ServerConfig(port=0, rate_limit=4)) as server:
        started = time.monotonic()
        # A process of its own: the pace must not share this one's interpreter lock.
        result = run_process("upsert", path, "-b", "100", "--json", server=server)
        elapsed = time.monotonic() - started
        assert result.code == 0, result.stderr
        throttled = result.summary["throttled"]
        # 30 requests at 4/s need at least ~6 s. The first burst (16 in flight) meets
        # the limit at once; after that the client keeps to it. One that ignored
        # Retry-After would hammer the server and collect hundreds of 429s.
        assert elapsed >= 5
        assert throttled <= 24, throttled
        assert len(server.records("")) == 3000


def test_gave_up_batches_are_rejected_not_lost(tmp_path: Path) -> None:
    rows = corpus(300)
    path = write_jsonl(tmp_path / "in.jsonl", rows)
    rejects = tmp_path / "rejects.jsonl"
    with LocalServer(ServerConfig(port=0, seed=1, fail_rate=1.0)) as server:
        result = run_cli(
            "upsert",
            path,
            "-b",
            "100",
            "--retries",
            "1",
            "--max-backoff",
            "0.05",
            "--rejects",
            rejects,
            "--json",
            server=server,
        )
        assert result.code == 1
        lines = read_jsonl(rejects)
        kept = set(server.records(""))
        rejected = {line["id"] for line in lines}
        # Each record is in the index (a 5xx after the write) or in the rejects, or both:
        # never neither.
        assert kept | rejected == {r["id"] for r in rows}
        assert all("gave up after 2 attempts" in line["_vupsert"]["reason"] for line in lines)


def test_fail_fast_stops_at_the_first_failed_batch(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "in.jsonl", corpus(3000, poison_every=10))
    with LocalServer(ServerConfig(port=0, refuse_matching="POISON")) as server:
        result = run_cli(
            "upsert", path, "-b", "100", "-c", "1", "--fail-fast", "--json", server=server
        )
        assert result.code == 1
        assert "--fail-fast" in result.stderr
        assert result.summary["batches_sent"] < 30


@pytest.mark.parametrize("kill_after_requests", [1, 4, 9])
def test_kill_9_then_resume_is_exact(tmp_path: Path, kill_after_requests: int) -> None:
    rows = corpus(4000, poison_every=333, dup_every=40)
    path = write_jsonl(tmp_path / "in.jsonl", rows)
    checkpoint = tmp_path / "cp.json"
    rejects = tmp_path / "rejects.jsonl"
    args = [
        "upsert",
        str(path),
        "-b",
        "100",
        "--checkpoint",
        str(checkpoint),
        "--rejects",
        str(rejects),
        "--json",
        "-c",
        "4",
    ]
    config = ServerConfig(
        port=0, seed=kill_after_requests, latency_ms=40, refuse_matching="POISON", fail_rate=0.1
    )
    with LocalServer(config) as server:
        # Past the first request, killed once a checkpoint is saved too: when that is
        # depends on the machine's pace, and the resume must have something to skip.
        kill_when(
            *args,
            server=server,
            ready=lambda: (
                sum(server.stats["requests"].values()) >= kill_after_requests + 1
                and (kill_after_requests == 1 or checkpoint.exists())
            ),
            delay=0.05 * kill_after_requests,
        )
        # The latency has served its purpose, a kill with batches in flight; the resume
        # still meets the faults and the poison, without the wait.
        server.set_faults(latency_ms=0)
        result = run_cli(*args, server=server)
        assert result.code == 1, result.stderr
        assert server.records("") == expected_index(rows)
        lines = read_jsonl(rejects)
        refused = sorted(r["id"] for r in rows if "POISON" in r["data"])
        assert sorted(line["id"] for line in lines) == refused  # each exactly once
        summary = result.summary
        assert summary["records_read"] == len(rows)
        settled = ("records_upserted", "records_rejected", "records_skipped", "records_superseded")
        assert sum(summary[key] for key in settled) == len(rows)
        assert summary["records_skipped"] > 0 or kill_after_requests == 1


def test_sigterm_finishes_in_flight_and_writes_checkpoint(tmp_path: Path) -> None:
    rows = corpus(5000)
    path = write_jsonl(tmp_path / "in.jsonl", rows)
    checkpoint = tmp_path / "cp.json"
    args = ["upsert", str(path), "-b", "100", "--checkpoint", str(checkpoint), "--json"]
    with LocalServer(ServerConfig(port=0, latency_ms=100)) as server:
        proc = subprocess.Popen(
            vupsert_command(*args),
            env=cli_env(server),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        wait_for(lambda: server.stats["records_written"] >= 500)
        proc.send_signal(signal.SIGTERM)
        out, err = communicate(proc)
        assert proc.returncode == 130, err
        summary = orjson.loads(out.strip().splitlines()[-1])
        assert summary["interrupted"] is True
        assert 0 < summary["records_upserted"] < 5000
        state = orjson.loads(checkpoint.read_bytes())
        assert state["inputs"]
        result = run_cli(*args, server=server)
        assert result.code == 0, result.stderr
        # The checkpoint holds the settled prefix: a batch held back when the stop came
        # (nothing more is sent) may precede one whose answer landed, which is sent again.
        skipped = result.summary["records_skipped"]
        assert 0 < skipped <= summary["records_upserted"]
        assert result.summary["records_upserted"] == 5000 - skipped
        assert len(server.records("")) == 5000


def test_append_only_file_three_runs_sends_nothing_twice(
    server: LocalServer, tmp_path: Path
) -> None:
    path = tmp_path / "log.jsonl"
    checkpoint = tmp_path / "cp.json"
    rows = corpus(900)
    for part in range(3):
        with path.open("ab") as f:
            for row in rows[part * 300 : (part + 1) * 300]:
                f.write(orjson.dumps(row) + b"\n")
        result = run_cli(
            "upsert", path, "--checkpoint", checkpoint, "-b", "64", "--json", server=server
        )
        assert result.code == 0, result.stderr
        assert result.summary["records_skipped"] == part * 300
        assert result.summary["records_upserted"] == 300
    assert len(server.records("")) == 900
    assert server.stats["records_received"] == 900


def test_changed_file_is_refused_unless_restart(server: LocalServer, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "in.jsonl", corpus(50))
    checkpoint = tmp_path / "cp.json"
    assert run_cli("upsert", path, "--checkpoint", checkpoint, server=server).code == 0
    write_jsonl(path, corpus(60)[::-1])
    result = run_cli("upsert", path, "--checkpoint", checkpoint, server=server)
    assert result.code == 2 and "changed" in result.stderr and "--restart" in result.stderr
    result = run_cli(
        "upsert", path, "--checkpoint", checkpoint, "--restart", "--json", server=server
    )
    assert result.code == 0 and result.summary["records_upserted"] == 60


def test_two_runs_on_one_checkpoint(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "in.jsonl", corpus(3000))
    checkpoint = tmp_path / "cp.json"
    with LocalServer(ServerConfig(port=0, latency_ms=200)) as server:
        args = ["upsert", str(path), "--checkpoint", str(checkpoint), "-b", "100", "-c", "1"]
        first = subprocess.Popen(
            vupsert_command(*args),
            env=cli_env(server),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        wait_for(lambda: sum(server.stats["requests"].values()) >= 2)
        started = time.monotonic()
        second = run_cli(*args, server=server)
        assert time.monotonic() - started < 10
        assert second.code == 2 and "in use by another run" in second.stderr
        first.send_signal(signal.SIGINT)
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=60)


def test_token_never_reaches_any_output_or_file(tmp_path: Path) -> None:
    token = "tok-NEVER-PRINT-ME-123"
    rows = corpus(500, poison_every=100)
    path = write_jsonl(tmp_path / "in.jsonl", rows)
    outputs = [tmp_path / "rejects.jsonl", tmp_path / "cp.json", tmp_path / "report.jsonl"]
    with LocalServer(
        ServerConfig(port=0, token=token, refuse_matching="POISON", fail_rate=0.2, seed=2)
    ) as server:
        result = run_cli(
            "upsert",
            path,
            "-b",
            "50",
            "--rejects",
            outputs[0],
            "--checkpoint",
            outputs[1],
            "--report",
            outputs[2],
            "--json",
            "--max-backoff",
            "0.1",
            server=server,
        )
        assert result.code == 1
        bad = run_cli(
            "upsert", path, "--json", env=cli_env(server, UPSTASH_VECTOR_REST_TOKEN=token + "x")
        )
        assert bad.code == 3
    texts = [result.stdout, result.stderr, bad.stdout, bad.stderr]
    texts += [p.read_text() for p in outputs]
    texts += [p.read_text() for p in tmp_path.iterdir() if p.is_file() and p.suffix != ".jsonl"]
    assert all(token not in text for text in texts)


def test_an_outage_costs_no_record(tmp_path: Path) -> None:
    # A 60 s outage is 40% of the default retry budget (a batch keeps trying for ~150 s
    # on average): the server fails every write until it has failed 6 of the 16 tries a
    # batch has, counted in tries rather than seconds so that a slow start cannot end the
    # outage before the client has met it. Until a write succeeds one is in flight.
    rows = corpus(2000)
    path = write_jsonl(tmp_path / "in.jsonl", rows)
    with LocalServer(ServerConfig(port=0, seed=4, fail_rate=1.0)) as server:
        proc = subprocess.Popen(
            vupsert_command("upsert", path, "-b", "100", "--json", "--max-backoff", "0.5"),
            env=cli_env(server),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        wait_for(lambda: failed_writes(server) >= 6)
        server.set_faults(fail_rate=0.0)
        out, err = communicate(proc)
        assert proc.returncode == 0, err
        summary = orjson.loads(out.strip().splitlines()[-1])
        assert summary["retries"] > 0 and summary["records_rejected"] == 0
        assert server.records("") == expected_index(rows)


def failed_writes(server: LocalServer) -> int:
    statuses: dict[int, int] = server.stats["statuses"]
    return sum(count for status, count in statuses.items() if int(status) >= 500)


def test_checkpointed_file_with_a_growing_last_line(server: LocalServer, tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    checkpoint = tmp_path / "cp.json"
    rows = corpus(4)
    lines = [orjson.dumps(r) for r in rows]
    args = [
        "upsert",
        str(path),
        "--checkpoint",
        str(checkpoint),
        "--rejects",
        str(tmp_path / "rej.jsonl"),
        "--json",
    ]
    # A complete object whose newline is not written yet is loaded...
    path.write_bytes(lines[0] + b"\n" + lines[1])
    first = run_cli(*args, server=server)
    assert first.code == 0 and first.summary["records_upserted"] == 2
    # ...and half a record is left for the next run, with a warning.
    path.write_bytes(lines[0] + b"\n" + lines[1] + b"\n" + lines[2][:15])
    second = run_cli(*args, server=server)
    assert second.code == 0 and second.summary["records_upserted"] == 0
    assert "log.jsonl:3" in second.stderr and "next run" in second.stderr
    path.write_bytes(b"\n".join(lines) + b"\n")
    third = run_cli(*args, server=server)
    assert third.code == 0, third.stderr
    assert third.summary["records_upserted"] == 2
    assert server.records("") == expected_index(rows)
    assert server.stats["records_received"] == 4
    # Line numbers stay true after the late newline.
    path.write_bytes(b"\n".join(lines) + b"\n" + b'{"id": ""}\n')
    fourth = run_cli(*args, server=server)
    assert fourth.code == 1 and "log.jsonl:5" in (tmp_path / "rej.jsonl").read_text()
