"""The index ends as if the records had been sent one by one in input order, the refused
ones skipped, whatever the batch size, the concurrency, the server's faults, the splits
of refused batches and a resume in the middle did.

A property, checked with hypothesis against the real local index.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vupsert.config import Secret
from vupsert.config.settings import Settings
from vupsert.outcomes import Summary
from vupsert.run._pipeline import Run
from vupsert_server import LocalServer, ServerConfig

from .conftest import read_jsonl

POISON = "BADWORD"
_namespaces = itertools.count()


@pytest.fixture(scope="module")
def clean() -> Iterator[LocalServer]:
    with LocalServer(ServerConfig(port=0, seed=3, refuse_matching=POISON)) as server:
        yield server


@pytest.fixture(scope="module")
def faulty() -> Iterator[LocalServer]:
    config = ServerConfig(port=0, seed=5, refuse_matching=POISON, fail_rate=0.15, drop_rate=0.05)
    with LocalServer(config) as server:
        yield server


record = st.tuples(
    st.sampled_from(["a", "b", "c", "d", "e", "f"]),  # few ids: many repeats
    st.booleans(),  # refused by the server
    st.sampled_from([None, {"k": 1}, {"k": "v", "n": [1, 2]}]),
)


def replay(rows: list[dict[str, Any]]) -> dict[str, tuple[str, Any]]:
    """The index after sending ``rows`` one at a time, the refused ones skipped."""
    index: dict[str, tuple[str, Any]] = {}
    for row in rows:
        if POISON not in row["data"]:
            index[row["id"]] = (row["data"], row.get("metadata"))
    return index


def load(server: LocalServer, path: Path, namespace: str, **kw: Any) -> Summary:
    settings_ = Settings(
        url=server.url,
        token=Secret(server.token),
        inputs=(str(path),),
        namespace=namespace,
        retries=30,
        max_backoff=0.02,
        **kw,
    )
    return Run(settings_, seed=1).execute()


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    records=st.lists(record, min_size=1, max_size=40),
    batch_size=st.sampled_from([1, 2, 3, 7, 1000]),
    concurrency=st.sampled_from([1, 2, 8]),
    faults=st.booleans(),
    resume_at=st.none() | st.integers(min_value=0, max_value=40),
)
def test_the_index_is_the_one_by_one_replay(
    clean: LocalServer,
    faulty: LocalServer,
    tmp_path_factory: pytest.TempPathFactory,
    records: list[tuple[str, bool, Any]],
    batch_size: int,
    concurrency: int,
    faults: bool,
    resume_at: int | None,
) -> None:
    server = faulty if faults else clean
    rows: list[dict[str, Any]] = []
    for n, (id_, refused, metadata) in enumerate(records):
        row: dict[str, Any] = {"id": id_, "data": f"{POISON if refused else 'good'} {id_} {n}"}
        if metadata is not None:
            row["metadata"] = metadata
        rows.append(row)
    folder = tmp_path_factory.mktemp("replay")
    path, rejects = folder / "in.jsonl", folder / "rejects.jsonl"
    namespace = f"ns{next(_namespaces)}"
    lines = [orjson.dumps(row) + b"\n" for row in rows]
    options: dict[str, Any] = {"batch_size": batch_size, "concurrency": concurrency}

    summaries = []
    if resume_at is not None:
        # A first run on the head of the file, then a second that carries on after it.
        options["checkpoint"] = folder / "ckpt"
        path.write_bytes(b"".join(lines[:resume_at]))
        summaries.append(load(server, path, namespace, **options))
    path.write_bytes(b"".join(lines))
    summaries.append(load(server, path, namespace, rejects=rejects, **options))

    assert server.records(namespace) == replay(rows)
    last = summaries[-1]
    assert last.error is None and last.records_pending == 0
    first_skipped = summaries[0].records_read if len(summaries) == 2 else 0
    assert last.records_skipped == first_skipped
    settled = sum(s.records_upserted + s.records_rejected + s.records_superseded for s in summaries)
    assert settled == len(rows)
    # Only refused records are rejected, and each refused record that is the last of its
    # id is among them: nothing after it could stand in for it.
    rejected = {r["_vupsert"]["source"] for r in read_jsonl(rejects)} if rejects.exists() else set()
    refused_lines = {n + 1 for n, row in enumerate(rows) if POISON in row["data"]}
    if resume_at is None:
        assert {int(s.rsplit(":", 1)[1]) for s in rejected} <= refused_lines
        last_of_id = {row["id"]: n + 1 for n, row in enumerate(rows)}
        must = {line for line in last_of_id.values() if line in refused_lines}
        assert must <= {int(s.rsplit(":", 1)[1]) for s in rejected}
        assert last.records_rejected == len(rejected)


def test_a_refused_record_falls_back_to_the_one_it_replaced(
    clean: LocalServer, tmp_path: Path
) -> None:
    """The case as first tried: good X, filler, refused X, all in one batch."""
    path = tmp_path / "in.jsonl"
    rows = [
        {"id": "X", "data": "good X"},
        {"id": "f0", "data": "filler"},
        {"id": "X", "data": f"{POISON} X"},
    ]
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    summary = load(clean, path, "fallback", batch_size=1000)
    assert clean.records("fallback") == {"X": ("good X", None), "f0": ("filler", None)}
    assert (summary.records_upserted, summary.records_rejected) == (2, 1)
    assert summary.records_superseded == 0


def test_a_superseded_record_is_counted_as_such_not_upserted(
    clean: LocalServer, tmp_path: Path
) -> None:
    path = tmp_path / "in.jsonl"
    rows = [{"id": "X", "data": f"{POISON} X"}, {"id": "X", "data": "good X"}]
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    summary = load(clean, path, "superseded", batch_size=1000)
    assert clean.records("superseded") == {"X": ("good X", None)}
    assert (summary.records_upserted, summary.records_superseded) == (1, 1)
    assert summary.records_rejected == 0 and summary.records_pending == 0
