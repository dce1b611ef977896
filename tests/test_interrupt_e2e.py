"""Ctrl-C against a slow index: acknowledged at once, nothing retried after it, a bounded
wait for the answers in flight, and "checkpoint written" only when there is one."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import threading
from pathlib import Path

import orjson
import pytest

from vupsert.run import _workers
from vupsert_server import LocalServer, ServerConfig

from .conftest import cli_env, communicate, run_cli, vupsert_command, wait_for, write_jsonl

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX signals")


def corpus(n: int) -> list[dict[str, str]]:
    return [{"id": f"id-{i}", "data": f"record {i}"} for i in range(n)]


def upserts(server: LocalServer) -> int:
    count = server.stats["requests"].get("upsert-data", 0)
    assert isinstance(count, int)
    return count


def test_ctrl_c_is_acknowledged_at_once_retries_nothing_and_the_checkpoint_carries_on(
    tmp_path: Path,
) -> None:
    path = write_jsonl(tmp_path / "in.jsonl", corpus(2000))
    checkpoint = tmp_path / "cp.json"
    args = ["upsert", str(path), "-b", "10", "--checkpoint", str(checkpoint), "--json"]
    with LocalServer(ServerConfig(port=0, latency_ms=3000, seed=1)) as server:
        proc = subprocess.Popen(
            vupsert_command(*args),
            env=cli_env(server),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            # Past the first request, which goes alone: the window is open, its 16 requests
            # are out, and none can start before one is answered.
            wait_for(lambda: server.stats["writes_in_flight"] >= 16)
            # What they answer, once their latency is over, is worth a retry.
            server.set_faults(fail_rate=1.0)
            sent = upserts(server)
            proc.send_signal(signal.SIGINT)
            stderr = proc.stderr
            assert stderr is not None
            lines: queue.Queue[bytes] = queue.Queue()
            threading.Thread(target=lambda: lines.put(stderr.readline()), daemon=True).start()
            # A safety net, not a measure: the answers it must not wait for take 3 s.
            ack = lines.get(timeout=60).decode()
            out, rest = communicate(proc)
        finally:
            proc.kill()
            proc.wait()
        # Answered at once: while the server still held every request.
        assert ack.startswith("stopping: 16 batches in flight, waiting up to 30 s"), ack
        assert "Ctrl-C again to abandon them" in ack
        assert proc.returncode == 130, rest
        assert upserts(server) == sent  # nothing retried, nothing new sent
        summary = orjson.loads(out.splitlines()[-1])
        assert summary["interrupted"] is True and summary["records_rejected"] == 0
        assert summary["records_pending"] > 0  # the failed answers left their batches
        assert f"interrupted: checkpoint written to {checkpoint}" in rest.decode()
        assert "Traceback" not in rest.decode()

        server.set_faults(fail_rate=0.0, latency_ms=0)
        again = run_cli(*args, server=server)
        assert again.code == 0, again.stderr
        assert len(server.records("")) == 2000


@pytest.mark.parametrize("presses", [1, 2])
def test_the_wait_for_answers_is_bounded_then_they_are_abandoned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, presses: int
) -> None:
    """One Ctrl-C waits :data:`STOP_WAIT` for the answers in flight (shortened here); a
    second abandons them at once (the wait is left as it is)."""
    assert _workers.STOP_WAIT == 30
    if presses == 1:
        monkeypatch.setattr(_workers, "STOP_WAIT", 0.5)
    path = write_jsonl(tmp_path / "in.jsonl", corpus(50))
    with LocalServer(ServerConfig(port=0, latency_ms=120_000)) as server:

        def interrupt() -> None:
            wait_for(lambda: server.stats["writes_in_flight"] >= 1)
            for _ in range(presses):
                os.kill(os.getpid(), signal.SIGINT)  # the run's handler takes it

        thread = threading.Thread(target=interrupt)
        thread.start()
        result = run_cli("upsert", path, server=server)
        thread.join()
        assert result.code == 130, result.stderr
        lines = result.stderr.splitlines()
        assert lines[0].startswith("stopping: 1 batch in flight"), result.stderr
        assert "stopped waiting: 1 batch in flight abandoned" in result.stderr
        assert "not settled 50" in result.stderr
        # No checkpoint: the run says what a rerun does instead.
        assert "interrupted: no checkpoint, so the same command sends every record again" in (
            result.stderr
        )
        assert "checkpoint written" not in result.stderr


def test_a_signal_that_comes_while_the_reader_holds_the_stops_lock_still_stops() -> None:
    # The reader (the main thread) holds the workers' lock while it queues a batch; a stop
    # asked from the signal handler, which runs in that same thread, took that lock and
    # waited for itself forever (seen once in 4 runs of SIGTERM on a busy machine).
    from vupsert.cli.app import _signals

    lock = threading.Lock()
    outcome: queue.Queue[str] = queue.Queue()

    def stop() -> None:
        if lock.acquire(timeout=2):  # the old handler gave up here: its own thread held it
            lock.release()
            outcome.put(threading.current_thread().name)
        else:
            outcome.put("deadlocked")

    with _signals(stop):
        with lock:
            os.kill(os.getpid(), signal.SIGTERM)
            threading.Event().wait(0.2)  # a handler runs here, in this thread
        said = outcome.get(timeout=5)
    assert said == "vupsert-signals"


def test_a_background_job_whose_ctrl_c_is_ignored_carries_on(tmp_path: Path) -> None:
    # A shell starts `vupsert upsert ... &` with Ctrl-C ignored: a Ctrl-C meant for the
    # command in the foreground reaches the whole group, and must not stop the load.
    path = write_jsonl(tmp_path / "in.jsonl", corpus(400))
    with LocalServer(ServerConfig(port=0, latency_ms=50)) as server:
        proc = subprocess.Popen(
            vupsert_command("upsert", path, "-b", "10", "--json"),
            env=cli_env(server),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
        )
        wait_for(lambda: server.stats["records_written"] >= 10)
        proc.send_signal(signal.SIGINT)
        out, err = communicate(proc)
        assert proc.returncode == 0, err
        assert orjson.loads(out.decode().splitlines()[-1])["interrupted"] is False
        assert len(server.records("")) == 400
