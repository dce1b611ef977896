"""A quota that is used up, against the local index's daily quota (``--daily-quota``): the
run stops by itself with exit 3, what landed is counted, nothing is rejected, and the
advice it gives carries on after the reset."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from vupsert.run import _watch
from vupsert_server import LocalServer, ServerConfig

from .conftest import run_cli, write_jsonl


def corpus(n: int) -> list[dict[str, Any]]:
    return [{"id": f"id-{i}", "data": f"record {i} on subject {i % 7}"} for i in range(n)]


def flat(text: str) -> str:
    return " ".join(text.split())


def test_a_used_up_daily_quota_stops_the_run_and_the_same_command_carries_on(
    tmp_path: Path,
) -> None:
    rows = corpus(3000)
    path = write_jsonl(tmp_path / "in.jsonl", rows)
    rejects, checkpoint = tmp_path / "rejects.jsonl", tmp_path / "cp.json"
    args: list[str | Path] = [
        *("upsert", path, "-b", "100"),
        *("--rejects", rejects, "--checkpoint", checkpoint),
    ]
    with LocalServer(ServerConfig(port=0, daily_quota=1500)) as server:
        first = run_cli(*args, "--json", server=server)
        assert first.code == 3, first.stderr
        summary = first.summary
        assert len(server.records("")) == 1500 == summary["records_upserted"]
        assert summary["records_rejected"] == 0 and not rejects.exists()
        assert summary["records_pending"] == summary["records_read"] - 1500 > 0
        said = flat(first.stderr)
        assert "quota looks used up" in said
        assert '429 "ERR max daily updates limit exceeded"' in said
        assert "1,500 records landed" in said
        assert "run the same command again: the checkpoint skips what settled" in said
        # A 429 that names the quota stops at once: a few refusals, not a hundred a batch.
        assert server.stats["statuses"][429] <= 2 * summary["batches"]
        assert "Traceback" not in first.stderr

        server.set_faults(daily_quota=0)  # the quota has reset
        second = run_cli(*args, "--json", server=server)
        assert second.code == 0, second.stderr
        assert second.summary["records_skipped"] > 0
        assert len(server.records("")) == 3000
        assert not rejects.exists()


def test_without_a_checkpoint_the_advice_sends_only_what_did_not_land(tmp_path: Path) -> None:
    rows = corpus(2000)
    path = write_jsonl(tmp_path / "in.jsonl", rows)
    with LocalServer(ServerConfig(port=0, daily_quota=1200)) as server:
        first = run_cli("upsert", path, "-n", "docs", "-b", "100", server=server)
        assert first.code == 3, first.stderr
        said = flat(first.stderr)
        assert "1,200 records landed" in said
        assert "Without --checkpoint the same command would send the 1,200 records" in said
        assert "`vupsert sync` of the same inputs with the same options" in said
        assert "--max-delete" not in said  # the namespace held nothing before the run
        server.set_faults(daily_quota=1200)  # the next day
        server.reset_stats()
        advised = run_cli("sync", path, "-n", "docs", "-b", "100", "--json", server=server)
        assert advised.code == 0, advised.stderr
        assert advised.summary["records_unchanged"] == 1200
        assert server.stats["records_received"] == 800  # only what had not landed
        assert len(server.records("docs")) == 2000


def test_a_namespace_that_held_records_is_kept_by_the_advice(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "in.jsonl", corpus(500))
    others = write_jsonl(tmp_path / "others.jsonl", [{"id": "other", "data": "kept"}])
    with LocalServer(ServerConfig(port=0, daily_quota=301)) as server:
        assert run_cli("upsert", others, "-n", "docs", server=server).code == 0
        result = run_cli("upsert", path, "-n", "docs", "-b", "100", server=server)
        assert result.code == 3, result.stderr
        assert "with --max-delete 0" in flat(result.stderr)


def test_a_quota_that_does_not_say_so_stops_after_throttled_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_watch, "WAITING_EVERY", 0.4)
    path = write_jsonl(tmp_path / "in.jsonl", corpus(1000))
    config = ServerConfig(port=0, daily_quota=300, quota_message="Too many requests")
    with LocalServer(config) as server:
        result = run_cli(
            "upsert", path, "-b", "100", "--throttled-timeout", "2", "--json", server=server
        )
        assert result.code == 3, result.stderr
        said = flat(result.stderr)
        assert re.search(r'nothing has landed for \d s and every answer is 429 "Too many', said)
        assert "(--throttled-timeout 2)" in said and "300 records landed" in said
        assert result.summary["records_rejected"] == 0
        assert result.summary["throttled"] > 0
        # Off a terminal, a line while nothing moves says what the run waits for...
        waiting = [line for line in result.stderr.splitlines() if " waiting: " in line]
        assert waiting, result.stderr
        # (the first may come before any 429 has: on a busy machine, once in a run or so)
        told = [line for line in waiting if re.search(r"settled for \d+ s; \d+ answers? 429", line)]
        assert told and "unless a write lands" in told[-1], waiting
        # ...and the summary line counts the 429s.
        assert re.search(r"· throttled [1-9]", result.stderr)


def test_a_429_that_asks_for_a_longer_wait_than_the_bound_stops_at_once(
    tmp_path: Path,
) -> None:
    path = write_jsonl(tmp_path / "in.jsonl", corpus(200))
    # One write in 100 s: the second batch is told to come back in 100 s.
    with LocalServer(ServerConfig(port=0, rate_limit=0.01)) as server:
        result = run_cli(
            "upsert", path, "-b", "100", "-c", "1", "--throttled-timeout", "30", server=server
        )
        assert result.code == 3, result.stderr
        assert "asks to wait 100 s, longer than --throttled-timeout 30 waits" in flat(result.stderr)
        # The first record goes alone and lands; its batch does not land whole, so
        # nothing settles.
        assert len(server.records("")) == 1
        assert "0 records landed; 200 read are not settled" in flat(result.stderr)
        assert "Nothing settled: run the same command again" in flat(result.stderr)


@pytest.mark.parametrize(
    "command",
    [
        ["delete", "--ids", "ids.txt"],
        ["export", "-o", "out.jsonl"],
        ["verify", "in.jsonl"],
        ["sync", "in.jsonl"],
    ],
)
def test_every_command_stops_promptly_at_a_used_up_quota(
    tmp_path: Path, command: list[str]
) -> None:
    write_jsonl(tmp_path / "in.jsonl", corpus(50))
    (tmp_path / "ids.txt").write_text("id-1\nid-2\n")
    with LocalServer(ServerConfig(port=0, daily_quota=10, faulty_reads=True)) as server:
        assert run_cli("upsert", tmp_path / "in.jsonl", "-b", "10", server=server).code == 3
        result = run_cli(*command, "-n", "", server=server, cwd=tmp_path)
        assert result.code == 3, result.stderr
        said = flat(result.stderr)
        assert '429 "ERR max daily updates limit exceeded"' in said
        assert "run the same command again" in said
        assert not (tmp_path / "out.jsonl").exists()


def test_a_quiet_run_says_it_waits_for_a_slow_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_watch, "WAITING_EVERY", 0.4)
    path = write_jsonl(tmp_path / "in.jsonl", corpus(5))
    with LocalServer(ServerConfig(port=0, latency_ms=1500)) as server:
        result = run_cli("upsert", path, server=server)
        assert result.code == 0, result.stderr
        waiting = [line for line in result.stderr.splitlines() if " waiting: " in line]
        assert waiting and all("1 request awaiting answers" in line for line in waiting)
        assert any(line.endswith("(a slow server)") for line in waiting), waiting
