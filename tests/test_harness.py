"""The test harness holds to what it promises: ``run_cli`` gives what the shell would see
of ``python -m vupsert``, and ``server`` is a module's index as a new one would be."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import httpx
import pytest

from vupsert import __version__
from vupsert.server import LocalServer

from . import conftest
from .conftest import cli_env, emptied, run_cli, write_jsonl


def test_run_cli_is_a_process_of_its_own(
    server: LocalServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UPSTASH_VECTOR_REST_URL", "http://127.0.0.1:9")
    before = (dict(os.environ), os.getcwd(), sys.stdin, sys.stdout, sys.stderr, sys.argv)
    write_jsonl(tmp_path / "in.jsonl", [{"id": "a", "data": "x"}])

    # The run sees its environment and working folder, not this process's.
    result = run_cli("upsert", "in.jsonl", "--json", server=server, cwd=tmp_path)
    assert result.code == 0, result.stderr
    assert result.summary["records_upserted"] == 1 and list(server.records("")) == ["a"]
    assert run_cli("--version").stdout == f"vupsert {__version__}\n"
    piped = run_cli(
        "upsert",
        "-f",
        "jsonl",
        "-",
        "-n",
        "piped",
        server=server,
        input=b'{"id": "b", "data": "y"}\n',
    )
    assert piped.code == 0 and list(server.records("piped")) == ["b"]
    missing = run_cli("upsert", tmp_path / "nope.jsonl", env=cli_env(server))
    assert (missing.code, missing.stdout) == (2, "")
    assert "nope.jsonl" in missing.stderr

    assert (dict(os.environ), os.getcwd(), sys.stdin, sys.stdout, sys.stderr, sys.argv) == before


def test_an_exception_that_escapes_is_a_traceback_and_exit_status_1(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken() -> bool:
        raise RuntimeError("a bug")

    monkeypatch.setattr(sys.modules[conftest.main.__module__], "tune_allocator", broken)
    result = run_cli("--version")
    assert result.code == 1 and result.stdout == ""
    assert "Traceback" in result.stderr and "RuntimeError: a bug" in result.stderr


def test_emptied_makes_a_used_server_as_new(module_server: LocalServer) -> None:
    http = httpx.Client(
        base_url=module_server.url,
        headers={"Authorization": f"Bearer {module_server.token}"},
    )
    for namespace in ("", "other"):
        answer = http.post(f"/upsert-data/{namespace}", json=[{"id": "a", "data": "x"}])
        assert answer.status_code == 200
    module_server.set_faults(latency_ms=5, fail_rate=0.5, seed=99)
    http.close()

    server = emptied(module_server)
    assert server.namespaces() == [""] and server.records("") == {}
    assert server.faults == server.config
    assert server.stats["requests"] == {} and server.stats["records_received"] == 0
