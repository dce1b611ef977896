"""Where vupsert export writes: a file replaced whole, a symlink's target, a pipe or a
device written through, stdout for ``-``, and a full disk that stops it with exit 3."""

from __future__ import annotations

import os
import resource
import socket
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

import vupsert
from vupsert_server import LocalServer, ServerConfig

from .conftest import cli_env, read_jsonl, run_cli, write_jsonl

FULL = Path("/dev/full")
RECORDS = 1500


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    """One index for the whole module: every test here only reads it."""
    rows = [{"id": f"d{i}", "data": f"document {i}", "metadata": {"i": i}} for i in range(RECORDS)]
    path = write_jsonl(tmp_path_factory.mktemp("load") / "docs.jsonl", rows)
    with LocalServer(ServerConfig(port=0)) as server:
        assert run_cli("upsert", path, "-n", "ns", "-q", server=server).code == 0
        yield server


def export(server: LocalServer, *args: str | Path) -> dict[str, object]:
    result = run_cli("export", "-n", "ns", "--json", "-o", *args, server=server)
    assert result.code == 0, result.stderr
    return result.summary


def test_a_fifo_is_written_through(loaded: LocalServer, tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()), daemon=True)
    reader.start()
    assert export(loaded, fifo)["records_exported"] == RECORDS
    reader.join(timeout=60)
    assert len(received[0].splitlines()) == RECORDS
    assert stat.S_ISFIFO(fifo.lstat().st_mode)
    assert sorted(tmp_path.iterdir()) == [fifo]


def test_a_symlink_has_its_target_replaced(loaded: LocalServer, tmp_path: Path) -> None:
    target = tmp_path / "backups" / "docs.jsonl"
    target.parent.mkdir()
    target.write_text("old\n")
    target.chmod(0o640)
    link = tmp_path / "latest.jsonl"
    link.symlink_to(target)
    export(loaded, link)
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert len(read_jsonl(target)) == RECORDS
    assert stat.S_IMODE(target.stat().st_mode) == 0o640  # the replaced file's mode is kept
    assert sorted(p.name for p in target.parent.iterdir()) == ["docs.jsonl"]
    dangling = tmp_path / "next.jsonl"
    dangling.symlink_to(tmp_path / "backups" / "next.jsonl")
    export(loaded, dangling)
    assert dangling.is_symlink() and len(read_jsonl(dangling)) == RECORDS


def test_a_device_is_written_through(loaded: LocalServer, tmp_path: Path) -> None:
    node = tmp_path / "null"
    try:
        os.mknod(node, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # a /dev/null of our own
    except PermissionError:
        node = tmp_path / "null-link"
        node.symlink_to(os.devnull)
    assert export(loaded, node)["records_exported"] == RECORDS
    assert stat.S_ISCHR(node.stat().st_mode)
    assert sorted(tmp_path.iterdir()) == [node]


@pytest.mark.skipif(not FULL.exists(), reason="needs /dev/full")
def test_a_full_device_stops_the_export_with_its_summary(
    loaded: LocalServer, tmp_path: Path
) -> None:
    link = tmp_path / "full.jsonl"
    link.symlink_to(FULL)
    result = run_cli("export", "-n", "ns", "-o", link, "--json", server=loaded)
    assert result.code == 3, result.stderr
    assert f"could not write {link}: No space left on device" in result.stderr
    assert result.summary["error"] == f"could not write {link}: No space left on device"
    assert "vupsert export: 0 records" in result.stderr and "internal error" not in result.stderr
    assert link.is_symlink()


def test_a_socket_a_directory_or_a_block_device_is_refused(
    loaded: LocalServer, tmp_path: Path
) -> None:
    path = tmp_path / "s"
    with socket.socket(socket.AF_UNIX) as listening:
        listening.bind(str(path))
        result = run_cli("export", "-n", "ns", "-o", path, server=loaded)
        assert result.code == 2 and f"{path} is a socket" in result.stderr
        assert stat.S_ISSOCK(path.lstat().st_mode)
    directory = run_cli("export", "-n", "ns", "-o", tmp_path, server=loaded)
    assert directory.code == 2 and "is a directory" in directory.stderr
    block = tmp_path / "disk"
    try:
        os.mknod(block, stat.S_IFBLK | 0o600, os.makedev(7, 0))
    except PermissionError:
        return
    refused = run_cli("export", "-n", "ns", "-o", block, server=loaded)
    assert refused.code == 2 and f"{block} is a block device" in refused.stderr
    assert stat.S_ISBLK(block.lstat().st_mode)


def test_dev_stdout_is_written_through(loaded: LocalServer, tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    log.write_text('{"id": "kept"}\n')
    with log.open("ab") as appended:  # a shell's >>
        proc = subprocess.run(
            [sys.executable, "-m", "vupsert", "export", "-n", "ns", "-o", "/dev/stdout"],
            stdout=appended,
            env=cli_env(loaded),
            timeout=120,
        )
    assert proc.returncode == 0
    lines = read_jsonl(log)
    assert lines[0] == {"id": "kept"} and len(lines) == RECORDS + 1


def test_a_full_disk_leaves_the_old_file_whole(loaded: LocalServer, tmp_path: Path) -> None:
    out = tmp_path / "docs.jsonl"
    out.write_text('{"id": "old"}\n')

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))

    proc = subprocess.run(
        [sys.executable, "-m", "vupsert", "export", "-n", "ns", "-o", str(out), "--json"],
        capture_output=True,
        env=cli_env(loaded),
        timeout=120,
        preexec_fn=cap,
    )
    assert proc.returncode == 3, proc.stderr
    assert f"could not write {out}: File too large" in proc.stderr.decode()
    assert orjson.loads(proc.stdout)["error"] == f"could not write {out}: File too large"
    assert read_jsonl(out) == [{"id": "old"}] and sorted(tmp_path.iterdir()) == [out]


def test_dash_is_stdout(
    loaded: LocalServer, tmp_path: Path, capfdbinary: pytest.CaptureFixture[bytes]
) -> None:
    result = run_cli("export", "-n", "ns", "-o", "-", cwd=tmp_path, server=loaded)
    assert result.code == 0, result.stderr
    assert len(result.stdout.splitlines()) == RECORDS
    assert list(tmp_path.iterdir()) == []
    refused = run_cli("export", "-n", "ns", "-o", "-", "--json", server=loaded)
    assert refused.code == 2 and "--json needs --output" in refused.stderr
    summary = vupsert.export("-", url=loaded.url, token=loaded.token, namespace="ns")
    assert summary.records_exported == RECORDS and summary.output is None
    assert len(capfdbinary.readouterr().out.splitlines()) == RECORDS


@pytest.mark.skipif(not FULL.exists(), reason="needs /dev/full")
def test_stdout_on_a_full_disk_is_an_output_error(loaded: LocalServer) -> None:
    with FULL.open("wb") as full:
        proc = subprocess.run(
            [sys.executable, "-m", "vupsert", "export", "-n", "ns"],
            stdout=full,
            stderr=subprocess.PIPE,
            env=cli_env(loaded),
            timeout=120,
        )
    stderr = proc.stderr.decode()
    assert proc.returncode == 3, stderr
    assert "error: could not write <stdout>: No space left on device" in stderr
    assert "vupsert export: 0 records in" in stderr
    assert "internal error" not in stderr and "Exception ignored" not in stderr


def test_a_regular_file_is_replaced_whole(loaded: LocalServer, tmp_path: Path) -> None:
    out = tmp_path / "docs.jsonl"
    out.write_bytes(orjson.dumps({"id": "old"}) + b"\n")
    export(loaded, out)
    assert len(read_jsonl(out)) == RECORDS and not out.is_symlink()
    assert sorted(tmp_path.iterdir()) == [out]
