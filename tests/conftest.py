"""Shared fixtures: a real local index per test, and the real CLI in a subprocess."""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import signal
import subprocess
import sys
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from vupsert_server import LocalServer, ServerConfig

# Unexpected exceptions crash loudly under test instead of becoming a polite message.
os.environ["VUPSERT_RAISE_ERRORS"] = "1"

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    @property
    def summary(self) -> dict[str, Any]:
        value = orjson.loads(self.stdout.strip().splitlines()[-1])
        assert isinstance(value, dict)
        return value


@pytest.fixture
def server() -> Iterator[LocalServer]:
    with LocalServer(ServerConfig(port=0, seed=7)) as running:
        yield running


def cli_env(server: LocalServer | None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("UPSTASH_")}
    env["NO_COLOR"] = "1"
    env["COLUMNS"] = "200"
    if server is not None:
        env["UPSTASH_VECTOR_REST_URL"] = server.url
        env["UPSTASH_VECTOR_REST_TOKEN"] = server.token
    env.update(extra)
    return env


def run_cli(
    *args: str | Path,
    server: LocalServer | None = None,
    input: bytes | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 120,
) -> Result:
    """Run ``python -m vupsert ARGS`` as a user would, pointed at ``server``."""
    proc = subprocess.run(
        [sys.executable, "-m", "vupsert", *map(str, args)],
        input=input if input is not None else b"",
        capture_output=True,
        env=env if env is not None else cli_env(server),
        cwd=cwd,
        timeout=timeout,
    )
    return Result(proc.returncode, proc.stdout.decode(), proc.stderr.decode())


def wait_for(predicate: Callable[[], object], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.01)


def kill_when(
    *args: str | Path,
    server: LocalServer,
    ready: Callable[[], object],
    delay: float = 0.0,
    timeout: float = 60,
) -> None:
    """Start ``python -m vupsert ARGS`` against ``server`` and ``kill -9`` it once
    ``ready()`` (and ``delay`` seconds more); it must still be running then."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "vupsert", *map(str, args)],
        env=cli_env(server),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: ready() or proc.poll() is not None, timeout)
        time.sleep(delay)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, f"vupsert ended first, with {proc.returncode}"


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    return path


CUTTERS: dict[str, tuple[Callable[[bytes], bytes], Callable[[], Any]]] = {
    "gzip": (gzip.compress, lambda: zlib.decompressobj(wbits=31)),
    # 100 KB blocks, so that a cut file still holds whole ones: bzip2 decodes by block.
    "bzip2": (lambda data: bz2.compress(data, 1), bz2.BZ2Decompressor),
    "xz": (lzma.compress, lzma.LZMADecompressor),
}


def cut_short(kind: str, data: bytes) -> tuple[bytes, bytes]:
    """``data`` compressed and cut at two thirds, and what a decompressor (``zcat``)
    decodes of it before the break."""
    compress, decompressor = CUTTERS[kind]
    whole = compress(data)
    cut = whole[: len(whole) * 2 // 3]
    return cut, decompressor().decompress(cut)
