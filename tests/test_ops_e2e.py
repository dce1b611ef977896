"""info, --shard, --report, --id-from, templates: through the CLI against a local index."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

import orjson
import pytest

from vupsert_server import LocalServer, ServerConfig

from .conftest import SAMPLES, cli_env, read_jsonl, run_cli, vupsert_command, write_jsonl

pytestmark = pytest.mark.lived_in
"""The CLI end to end: info, shards, reports, the version and shell completion."""


def test_info_human_and_json(server: LocalServer) -> None:
    assert run_cli("upsert", SAMPLES / "articles.jsonl", "-n", "kb", "-q", server=server).code == 0
    result = run_cli("info", server=server)
    assert result.code == 0, result.stderr
    assert "embedding model" in result.stdout and "'kb'" in result.stdout
    assert "300" in result.stdout
    info = orjson.loads(run_cli("info", "--json", server=server).stdout)
    assert info["namespaces"]["kb"]["vectorCount"] == 300
    assert info["denseIndex"]["embeddingModel"]


def test_info_warns_without_embedding_model() -> None:
    with LocalServer(ServerConfig(port=0, embedding=False)) as server:
        result = run_cli("info", server=server)
        assert result.code == 0
        assert "no embedding model" in result.stderr


def test_info_bad_token_exit_3(server: LocalServer) -> None:
    result = run_cli("info", env=cli_env(server, UPSTASH_VECTOR_REST_TOKEN="nope"))
    assert result.code == 3 and "401" in result.stderr


def test_shards_are_disjoint_and_complete(server: LocalServer) -> None:
    per_shard = []
    for k in range(3):
        result = run_cli(
            "upsert",
            SAMPLES / "articles.jsonl",
            "--shard",
            f"{k}/3",
            "-n",
            f"s{k}",
            "--json",
            server=server,
        )
        assert result.code == 0, result.stderr
        per_shard.append(set(server.records(f"s{k}")))
        assert result.summary["records_read"] == 300
        assert result.summary["records_skipped"] == 300 - len(per_shard[-1])
    assert sum(len(s) for s in per_shard) == 300
    assert set().union(*per_shard) == {r["id"] for r in read_jsonl(SAMPLES / "articles.jsonl")}


def test_report_has_a_line_per_batch(tmp_path: Path) -> None:
    rows = [{"id": f"r{i}", "data": "POISON" if i == 5 else f"t {i}"} for i in range(250)]
    path = write_jsonl(tmp_path / "in.jsonl", rows)
    report = tmp_path / "report.jsonl"
    with LocalServer(ServerConfig(port=0, refuse_matching="POISON")) as server:
        result = run_cli("upsert", path, "-b", "100", "--report", report, server=server)
        assert result.code == 1
    lines = sorted(read_jsonl(report), key=lambda line: line["batch"])
    assert [line["batch"] for line in lines] == [1, 2, 3]
    first = lines[0]
    assert first["outcome"] == "partial" and first["rejected"] == 1 and first["upserted"] == 99
    assert first["span"].endswith("in.jsonl:1-100") and first["requests"] > 1
    assert first["status"] in (200, 400) and "POISON" not in (first["error"] or "")
    assert lines[1]["outcome"] == "upserted" and lines[1]["attempts"] == 1
    assert {"records", "duration_s", "error"} <= first.keys()


def test_a_report_counts_attempts_as_the_summary_counts_retries(
    server: LocalServer, tmp_path: Path
) -> None:
    # The run's first request carries one record alone: a request, not a retry.
    path = write_jsonl(tmp_path / "in.jsonl", [{"id": f"r{i}", "data": "t"} for i in range(50)])
    report = tmp_path / "report.jsonl"
    result = run_cli("upsert", path, "--report", report, "--json", server=server)
    assert result.code == 0, result.stderr
    (line,) = read_jsonl(report)
    assert (line["attempts"], line["requests"]) == (1, 2)
    assert (result.summary["retries"], result.summary["requests"]) == (0, 2)


def test_id_from_hash_is_idempotent_and_templates(server: LocalServer, tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "in.jsonl",
        [
            {"title": "T1", "body": "first body", "n": 1},
            {"title": "T2", "body": "second body", "n": 2},
            {"title": "T3", "n": 3},
        ],
    )
    args = [
        "upsert",
        str(path),
        "--data-template",
        "{title}\\n\\n{body}",
        "--id-from",
        "hash",
        "-n",
        "h",
        "--json",
    ]
    first = run_cli(*args, server=server)
    assert first.code == 1 and first.summary["records_rejected"] == 1
    assert "body" in first.stderr or first.summary["records_rejected"] == 1
    again = run_cli(*args, server=server)
    stored = server.records("h")
    assert len(stored) == 2 and again.summary["records_upserted"] == 2
    assert sorted(d or "" for d, _ in stored.values()) == ["T1\n\nfirst body", "T2\n\nsecond body"]
    templ = run_cli(
        "upsert",
        str(path),
        "--id-template",
        "doc-{n}",
        "--data-field",
        "title",
        "-n",
        "t",
        "--json",
        server=server,
    )
    assert templ.code == 0 and set(server.records("t")) == {"doc-1", "doc-2", "doc-3"}


def test_version_and_completion() -> None:
    result = run_cli("--version")
    assert result.code == 0 and result.stdout.startswith("vupsert 0.")
    # Typer names the shell from the processes above this one: from bash, as a user types
    # it (a suite run from sh would be told "Shell sh not supported"); `; exit` keeps bash
    # from replacing itself with the command.
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("no bash here")
    command = shlex.join([*vupsert_command("--show-completion")])
    shown = subprocess.run([bash, "-c", f"{command}; exit $?"], capture_output=True, text=True)
    assert shown.returncode == 0, shown.stderr
    assert "complete -o default -F _vupsert_completion vupsert" in shown.stdout
