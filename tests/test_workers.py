"""The sender threads through a whole run, against a scripted index."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import orjson

from vupsert.config import Secret
from vupsert.config.settings import Settings
from vupsert.run._pipeline import Run

from .conftest import write_jsonl

INFO = {"result": {"dimension": 8, "denseIndex": {"embeddingModel": "X"}}}


def test_batches_go_as_soon_as_the_first_record_lands_not_after_its_batch(
    tmp_path: Path,
) -> None:
    # Batch 1 sends its first record alone; once that lands, batch 2 must not wait for
    # the rest of batch 1. Here the rest of batch 1 is answered only once batch 2 arrives
    # (or after 5 s): a run that waited would take those 5 s and see batch 2 after it.
    path = write_jsonl(tmp_path / "in.jsonl", [{"id": f"r{i}", "data": "x"} for i in range(10)])
    second = threading.Event()
    order: list[str] = []

    def index(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/info":
            return httpx.Response(200, json=INFO)
        ids = [r["id"] for r in orjson.loads(request.content)]
        if ids[0] == "r1":  # the rest of batch 1
            second.wait(5)
        elif ids[0] == "r5":
            second.set()
        order.append(ids[0])
        return httpx.Response(200, json={"result": "Success"})

    settings = Settings(
        url="http://127.0.0.1:9", token=Secret("t"), inputs=(str(path),), batch_size=5
    )
    summary = Run(settings, transport=httpx.MockTransport(index)).execute()
    assert summary.records_upserted == 10
    assert order == ["r0", "r5", "r1"]
