"""No output may destroy an input or another output: checked before anything is opened."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from vupsert_server import LocalServer, ServerConfig

from .conftest import cli_env, run_cli, vupsert_command, wait_for, write_jsonl
from .test_reliability_e2e import corpus

ROWS = [{"id": f"r{i}", "data": f"text {i}"} for i in range(20)]


def snapshot(*paths: Path) -> dict[Path, bytes | None]:
    return {p: p.read_bytes() if p.exists() else None for p in paths}


@pytest.mark.parametrize("option", ["--report", "--rejects", "--checkpoint"])
def test_an_output_on_the_input_is_refused(
    server: LocalServer, tmp_path: Path, option: str
) -> None:
    path = write_jsonl(tmp_path / "in.jsonl", ROWS)
    before = path.read_bytes()
    result = run_cli("upsert", path, option, path, server=server)
    assert result.code == 2, result.stderr
    assert "is the input" in result.stderr and "Traceback" not in result.stderr
    assert path.read_bytes() == before
    assert server.records("") == {}


def test_a_second_name_of_the_input_is_refused(server: LocalServer, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "in.jsonl", ROWS)
    before = path.read_bytes()
    (tmp_path / "soft").symlink_to(path)
    os.link(path, tmp_path / "hard")
    for other in ("soft", "hard", "./in.jsonl"):
        result = run_cli("upsert", "in.jsonl", "--report", other, server=server, cwd=tmp_path)
        assert result.code == 2, (other, result.stderr)
        assert path.read_bytes() == before


@pytest.mark.parametrize(
    ("first", "second"),
    [("--rejects", "--checkpoint"), ("--rejects", "--report"), ("--report", "--checkpoint")],
)
def test_one_path_for_two_outputs_is_refused(
    server: LocalServer, tmp_path: Path, first: str, second: str
) -> None:
    path = write_jsonl(tmp_path / "in.jsonl", ROWS)
    shared = tmp_path / "out"
    shared.write_bytes(b"what an earlier run wrote\n")
    result = run_cli("upsert", path, first, shared, second, shared, server=server)
    assert result.code == 2, result.stderr
    assert "are one file" in result.stderr
    assert shared.read_bytes() == b"what an earlier run wrote\n"
    assert server.records("") == {}


def test_an_output_on_the_checkpoint_lock_is_refused(server: LocalServer, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "in.jsonl", ROWS)
    result = run_cli(
        "upsert",
        path,
        "--checkpoint",
        tmp_path / "cp",
        "--rejects",
        tmp_path / "cp.lock",
        server=server,
    )
    assert result.code == 2 and "lock file" in result.stderr


def test_an_output_that_is_a_folder_is_refused(server: LocalServer, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "in.jsonl", ROWS)
    result = run_cli("upsert", path, "--report", tmp_path, server=server)
    assert result.code == 2 and "Traceback" not in result.stderr


def test_a_checkpoint_through_a_symlink_is_locked_at_its_target(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "in.jsonl", corpus(3000))
    real = tmp_path / "real.ckpt"
    link = tmp_path / "link.ckpt"
    link.symlink_to(real)
    with LocalServer(ServerConfig(port=0, latency_ms=200)) as server:
        args = ["upsert", str(path), "-b", "100", "-c", "1", "--checkpoint"]
        first = subprocess.Popen(
            vupsert_command(*args, real),
            env=cli_env(server),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            wait_for(lambda: sum(server.stats["requests"].values()) >= 2)
            second = run_cli(*args, link, server=server)
            assert second.code == 2 and "in use by another run" in second.stderr
        finally:
            first.send_signal(signal.SIGINT)
            first.send_signal(signal.SIGINT)
            first.communicate(timeout=60)
        # A run through the link replaces the target, and the link stays a link. The
        # latency kept the first run going; this one need not wait for it.
        server.set_faults(latency_ms=0)
        done = run_cli(*args[:-1], "--checkpoint", link, server=server)
        assert done.code == 0, done.stderr
    assert link.is_symlink() and link.resolve() == real.resolve() and real.stat().st_size > 0
    # Each run removed its lock as it ended: only the checkpoint and its link are left.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl", "link.ckpt", "real.ckpt"]
