"""The pipeline in-process, with httpx.MockTransport standing in for the index."""

from __future__ import annotations

import email.utils
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from vupsert.config import Endpoint, Secret
from vupsert.config.settings import Settings
from vupsert.errors import CheckpointError, ExitStatus, UsageError
from vupsert.outcomes import Summary
from vupsert.records import Position, Rejection
from vupsert.run import _checkpoint
from vupsert.run._checkpoint import Checkpoint
from vupsert.run._pipeline import Run
from vupsert.run._rejects import RejectsWriter, reject_line

from .conftest import write_jsonl

INFO = {"result": {"dimension": 8, "denseIndex": {"embeddingModel": "X"}}}


def settings(path: Path, **kw: Any) -> Settings:
    base: dict[str, Any] = {
        "url": "http://127.0.0.1:9",
        "token": Secret("t"),
        "inputs": (str(path),),
        "retries": 3,
        "max_backoff": 0.01,
    }
    base.update(kw)
    return Settings(**base)


class Recorder:
    """A fake index: stores upserts in order, answers by a script."""

    def __init__(self, script: Any = None) -> None:
        self.script = script
        self.lock = threading.Lock()
        self.calls: list[tuple[float, list[dict[str, Any]]]] = []
        self.index: dict[str, str] = {}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/info":
            return httpx.Response(200, json=INFO)
        items = orjson.loads(request.content)
        with self.lock:
            self.calls.append((time.monotonic(), items))
            n = len(self.calls)
        if self.script is not None:
            answer: httpx.Response | None = self.script(n, items)
            if answer is not None:
                return answer
        with self.lock:
            for item in items:
                self.index[item["id"]] = item["data"]
        return httpx.Response(200, json={"result": "Success"})


def run(path: Path, recorder: Recorder, **kw: Any) -> Summary:
    return Run(settings(path, **kw), transport=httpx.MockTransport(recorder), seed=1).execute()


def rows(n: int, prefix: str = "r") -> list[dict[str, Any]]:
    return [{"id": f"{prefix}{i}", "data": f"text {i}"} for i in range(n)]


def test_retry_after_http_date_is_waited_for(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "in.jsonl", rows(5))

    def script(n: int, items: list[Any]) -> httpx.Response | None:
        if n == 1:
            when = email.utils.formatdate(time.time() + 2, usegmt=True)
            return httpx.Response(429, json={"error": "slow"}, headers={"Retry-After": when})
        return None

    recorder = Recorder(script)
    summary = run(path, recorder)
    assert summary.records_upserted == 5 and summary.retries == 1
    (t1, _), (t2, _) = recorder.calls[:2]
    assert t2 - t1 >= 1.0  # an HTTP date rounds to whole seconds


def test_duplicate_ids_never_land_out_of_order(tmp_path: Path) -> None:
    # Batch 1 fails twice before landing; batch 2 holds a newer version of one of its ids.
    data = [*rows(10), {"id": "r3", "data": "newer"}, *rows(9, "s")]
    path = write_jsonl(tmp_path / "in.jsonl", data)

    def script(n: int, items: list[Any]) -> httpx.Response | None:
        if items[0]["id"] == "r0" and n <= 3:
            return httpx.Response(503, text="busy")
        return None

    recorder = Recorder(script)
    summary = run(path, recorder, batch_size=10, concurrency=4)
    assert summary.records_upserted == 20
    assert recorder.index["r3"] == "newer"


def test_stdin_checkpoint_warns(tmp_path: Path) -> None:
    import io

    class Warnings:
        def __init__(self) -> None:
            self.seen: list[str] = []

        def started(self, total_bytes: int | None, inputs: tuple[str, ...]) -> None: ...
        def bytes_read(self, n: int) -> None: ...
        def batch_done(self, settlement: Any, summary: Summary) -> None: ...
        def rejected(self, rejections: list[Rejection]) -> None: ...
        def warning(self, message: str) -> None:
            self.seen.append(message)

        def finished(self, summary: Summary) -> None: ...

    events = Warnings()
    stdin = io.BytesIO(b'{"id":"a","data":"x"}\n')
    s = settings(tmp_path, inputs=("-",), checkpoint=tmp_path / "cp.json")
    summary = Run(
        s, events=events, stdin=stdin, transport=httpx.MockTransport(Recorder())
    ).execute()
    assert summary.records_upserted == 1
    assert any("stdin" in w for w in events.seen)
    state = orjson.loads((tmp_path / "cp.json").read_bytes())
    assert state["inputs"]["<stdin>"]["records"] == 1


def test_rejects_path_equal_to_input_is_refused(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "in.jsonl", rows(1))
    with pytest.raises(UsageError):
        run(path, Recorder(), rejects=path)


def test_exit_status() -> None:
    assert Summary().exit_status is ExitStatus.SUCCESS
    assert (
        Summary(records_read=2, records_upserted=1, records_rejected=1).exit_status
        is ExitStatus.PARTIAL
    )
    assert Summary(interrupted=True).exit_status is ExitStatus.INTERRUPTED


def test_reject_line_shapes() -> None:
    where = Position(10, 1)
    full = Rejection("f", 1, where, "bad", body=b'{"id":"a","data":""}', status=400, stage="send")
    assert orjson.loads(reject_line(full)) == {
        "id": "a",
        "data": "",
        "_vupsert": {"source": "f:1", "reason": "bad", "stage": "send", "status": 400},
    }
    raw = Rejection("f", 2, where, "not valid JSON", raw='{"id": ')
    assert orjson.loads(reject_line(raw)) == {
        "_vupsert": {"source": "f:2", "reason": "not valid JSON", "stage": "read", "raw": '{"id": '}
    }
    row = Rejection("f", 3, where, "no data", body=b'{"id":"7","text":""}', stage="map", table=True)
    assert orjson.loads(reject_line(row))["_vupsert"] == {
        "source": "f:3",
        "reason": "no data",
        "stage": "map",
        "format": "csv",
    }
    empty = Rejection("f", 3, where, "x", body=b"{}")
    assert orjson.loads(reject_line(empty))["_vupsert"]["source"] == "f:3"


def test_rejects_writer_resumes_by_cutting_back(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    writer = RejectsWriter(path)
    writer.write([Rejection("f", 1, Position(1, 1), "a", body=b'{"id":"1"}')])
    keep = writer.offset()
    writer.write([Rejection("f", 2, Position(2, 2), "b", body=b'{"id":"2"}')])
    writer.close()
    again = RejectsWriter(path, keep=keep, kept_from=path)
    again.close()
    assert path.read_bytes().count(b"\n") == 1
    elsewhere = RejectsWriter(tmp_path / "r2.jsonl", keep=keep, kept_from=path)
    elsewhere.close()
    assert elsewhere.copied_lines == 1 and (tmp_path / "r2.jsonl").read_bytes() == path.read_bytes()


def test_checkpoint_lock_and_atomic_save(tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "in.jsonl", rows(3))
    cp_path = tmp_path / "cp.json"
    first = Checkpoint(cp_path, (str(data),), namespace="ns")
    with pytest.raises(CheckpointError, match="in use"):
        Checkpoint(cp_path, (str(data),), namespace="ns")
    first.advance(0, Position(data.stat().st_size, 3), 3)
    first.save()
    first.close()
    assert not list(tmp_path.glob(".cp.json.*"))  # no temporary file left behind
    second = Checkpoint(cp_path, (str(data),), namespace="ns")
    start = second.start(0)
    assert start.skipped == 3 and start.position == Position(data.stat().st_size, 3)
    second.close()
    with pytest.raises(CheckpointError, match="namespace"):
        Checkpoint(cp_path, (str(data),), namespace="other")
    cp_path.write_text("{not json")
    with pytest.raises(CheckpointError, match="restart=True"):
        Checkpoint(cp_path, (str(data),), namespace="ns")
    Checkpoint(cp_path, (str(data),), namespace="ns", restart=True).close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cp.json", "in.jsonl"]  # no .lock


def test_a_lock_left_by_a_killed_run_is_taken(tmp_path: Path) -> None:
    cp_path = tmp_path / "cp.json"
    (tmp_path / "cp.json.lock").write_text("12345")  # its run was killed: no one holds it
    Checkpoint(cp_path, (), namespace="ns").close()
    assert not (tmp_path / "cp.json.lock").exists()


def test_a_lock_removed_as_it_is_taken_is_taken_anew(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A run opens the lock file just as the run holding it ends and removes it, and a third
    # run makes a new one: a lock on the file removed would let two runs share the checkpoint.
    cp_path = tmp_path / "cp.json"
    holder = Checkpoint(cp_path, (), namespace="ns")
    third: list[Checkpoint] = []

    def opening(*args: Any, **kwargs: Any) -> Any:
        handle = open(*args, **kwargs)  # noqa: SIM115
        if not third:
            holder.close()
            monkeypatch.undo()
            third.append(Checkpoint(cp_path, (), namespace="ns"))
        return handle

    monkeypatch.setattr(_checkpoint, "open", opening, raising=False)
    with pytest.raises(CheckpointError, match="in use"):
        Checkpoint(cp_path, (), namespace="ns")
    third[0].close()


def index_answering(*responses: httpx.Response) -> Any:
    """A client of an index that gives ``responses`` in turn."""
    from vupsert.transport import Client

    answers = iter(responses)
    return Client(
        Endpoint("http://127.0.0.1:9", Secret("t")),
        transport=httpx.MockTransport(lambda request: next(answers)),
    )


def test_preflight_rides_out_a_blip_but_not_a_bad_token() -> None:
    from vupsert.errors import ServerError
    from vupsert.run._preflight import preflight

    client = index_answering(httpx.Response(503, text="busy"), httpx.Response(200, json=INFO))
    waits: list[float] = []
    assert preflight(client, sleep=waits.append)["dimension"] == 8
    assert waits == [1.0]
    refused = index_answering(httpx.Response(401, json={"error": "Unauthorized", "status": 401}))
    with pytest.raises(ServerError):
        preflight(refused, sleep=waits.append)
    assert waits == [1.0]


@pytest.mark.parametrize("status", [501, 520, 522, 524])
def test_preflight_rides_out_every_status_an_upsert_would_retry(status: int) -> None:
    # A proxy's 52x (its origin timed out) is a blip to the upserts, which retry any 5xx;
    # the check before them must not stop the run for it.
    from vupsert.run._preflight import preflight

    client = index_answering(httpx.Response(status, text="timeout"), httpx.Response(200, json=INFO))
    waits: list[float] = []
    assert preflight(client, sleep=waits.append)["dimension"] == 8
    assert waits == [1.0]


def test_a_stalled_batch_does_not_hold_the_bodies_settled_after_it(tmp_path: Path) -> None:
    # Batch 2 is answered only after 30 later batches were. Those must be freed as they
    # settle, not kept until batch 2's turn: memory must not grow with a retry's length.
    # (Batch 1 goes first and alone: the first success opens the window.)
    path = write_jsonl(
        tmp_path / "in.jsonl", [{"id": f"r{i}", "data": "x" * 4000} for i in range(4000)]
    )
    answered = 0
    lock = threading.Lock()
    held: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal answered
        if request.url.path == "/info":
            return httpx.Response(200, json=INFO)
        if request.content.startswith(b'[{"id":"r100",'):
            deadline = time.monotonic() + 30
            while answered < 30 and time.monotonic() < deadline:
                time.sleep(0.005)
            held.append(tracemalloc.get_traced_memory()[0])
        else:
            with lock:
                answered += 1
        return httpx.Response(200, json={"result": "Success"})

    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        summary = Run(
            settings(path, batch_size=100, concurrency=4),
            transport=httpx.MockTransport(handler),
            seed=1,
        ).execute()
    finally:
        tracemalloc.stop()
    assert summary.records_upserted == 4000 and answered >= 31
    # A body is 400 KB. In flight, queued and being filled: about ten of them.
    assert held[0] - before < 10_000_000


@pytest.mark.parametrize(
    ("info", "lacking"),
    [
        ({"denseIndex": {"embeddingModel": "BGE_SMALL"}}, None),
        ({"indexType": "SPARSE", "sparseIndex": {"embeddingModel": "BM25"}}, None),
        (
            {"denseIndex": {"embeddingModel": "BGE"}, "sparseIndex": {"embeddingModel": "BM25"}},
            None,
        ),
        ({"denseIndex": {"embeddingModel": None}}, "has no embedding model,"),
        ({}, "has no embedding model,"),
        ({"sparseIndex": {}}, "has no embedding model,"),
        (
            {"denseIndex": {"embeddingModel": "BGE"}, "sparseIndex": {"embeddingModel": ""}},
            "no embedding model for its sparse part",
        ),
        (
            {"denseIndex": {"dimension": 2}, "sparseIndex": {"embeddingModel": "BM25"}},
            "no embedding model for its dense part",
        ),
    ],
)
def test_preflight_needs_a_model_for_every_part_of_the_index(
    info: dict[str, Any], lacking: str | None
) -> None:
    """Dense, sparse (BM25) and hybrid indexes take raw text when every part they have
    has an embedding model; the error names the part that has none."""
    from vupsert.errors import PreflightError
    from vupsert.run._preflight import preflight
    from vupsert.transport import Client

    client = Client(
        Endpoint("http://127.0.0.1:9", Secret("t")),
        transport=httpx.MockTransport(lambda request: httpx.Response(200, json={"result": info})),
    )
    if lacking is None:
        assert preflight(client) == info
        return
    with pytest.raises(PreflightError, match=lacking):
        preflight(client)
