"""The pacing against the real local server, through the real CLI: what the server saw
while a run went on, and what it stored.

The CLI runs in a process of its own: pacing reads latency, which a client sharing this
process (and its interpreter lock) with the server would distort."""

from __future__ import annotations

import statistics
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from vupsert_server import LocalServer, ServerConfig

from .conftest import run_process, write_jsonl


def rows(n: int) -> list[dict[str, Any]]:
    return [{"id": f"r{i}", "data": f"text {i}", "metadata": {"n": i}} for i in range(n)]


def stored(items: list[dict[str, Any]]) -> dict[str, tuple[str, Any]]:
    return {r["id"]: (r["data"], r["metadata"]) for r in items}


@contextmanager
def watching(server: LocalServer) -> Iterator[list[int]]:
    """Writes in flight at the server, sampled every 2 ms while the block runs."""
    seen: list[int] = []
    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.002):
            seen.append(server.stats["writes_in_flight"])

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        done.set()
        thread.join()


def test_a_server_that_slows_down_when_busy_is_not_piled_on(tmp_path: Path) -> None:
    items = rows(2000)
    path = write_jsonl(tmp_path / "in.jsonl", items)
    # Two writes at full speed; with k in flight each takes k / 2 times longer. 50 ms
    # dwarfs what a busy machine adds to an answer, which would hide the queue.
    config = ServerConfig(port=0, latency_ms=50, capacity=2)
    with LocalServer(config) as server, watching(server) as seen:
        result = run_process("upsert", path, "-b", "10", "-c", "64", "--json", server=server)
        assert result.code == 0, result.stderr
        assert server.records("") == stored(items)
    busy = [n for n in seen if n]
    # A client that kept --concurrency in flight would show 64 here: every answer 32 times
    # slower, and not one record more per second.
    assert statistics.median(busy) <= 2 + 6


def test_a_sliding_window_limit_is_met_without_a_storm_of_429s(tmp_path: Path) -> None:
    items = rows(600)
    path = write_jsonl(tmp_path / "in.jsonl", items)
    config = ServerConfig(port=0, rate_limit=20, rate_limiter="sliding")
    with LocalServer(config) as server:
        result = run_process("upsert", path, "-b", "10", "-c", "64", "--json", server=server)
        assert result.code == 0, result.stderr
        assert server.records("") == stored(items)
    summary = result.summary
    # The first burst meets the limit; after that the pace keeps under it. One that
    # ignored Retry-After, or kept probing, would collect dozens more.
    assert summary["throttled"] <= 25, summary
    assert summary["records_rejected"] == 0
