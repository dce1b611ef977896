from __future__ import annotations

import orjson
import pytest

from vupsert.records import Batch, Position, Record, Rejection, Skip
from vupsert.run._batching import as_fresh, batch_of, batches


def rec(i: int, id_: str | None = None, size: int = 10, source: str = "a.jsonl") -> Record:
    body = orjson.dumps({"id": id_ or f"r{i}", "data": "x" * size})
    return Record(
        id=id_ or f"r{i}", body=body, source=source, line=i, end=Position(offset=i * 100, line=i)
    )


def rej(i: int, source: str = "a.jsonl") -> Rejection:
    return Rejection(source=source, line=i, end=Position(i * 100, i), reason="bad")


def test_count_limit_and_spans() -> None:
    out = list(batches(((0, rec(i)) for i in range(1, 2501)), max_records=1000))
    assert [len(b.records) for b in out] == [1000, 1000, 500]
    assert [b.seq for b in out] == [1, 2, 3]
    assert out[1].span == "a.jsonl:1001-2000"
    assert out[2].per_input == {0: (500, Position(250000, 2500))}
    assert out[0].per_input == {0: (1000, Position(100000, 1000))}


def test_byte_limit_keeps_overflowing_record_for_next_batch() -> None:
    items = [(0, rec(i, size=100)) for i in range(1, 11)]
    one = len(items[0][1].body)
    out = list(batches(items, max_bytes=2 + 3 * (one + 1)))
    assert [len(b.records) for b in out] == [3, 3, 3, 1]
    for b in out:
        assert len(b.body) <= 2 + 3 * (one + 1)
        assert orjson.loads(b.body)  # a valid JSON array
    assert out[0].per_input == {0: (3, Position(300, 3))}


def test_record_bigger_than_limit_travels_alone() -> None:
    out = list(batches([(0, rec(1, size=5000)), (0, rec(2))], max_bytes=100))
    assert [len(b.records) for b in out] == [1, 1]


def test_rejections_belong_to_their_span_and_flush_when_many() -> None:
    items: list[tuple[int, Record | Rejection]] = [(0, rec(1)), (0, rej(2)), (0, rec(3))]
    (only,) = list(batches(items))
    assert len(only.records) == 2 and len(only.rejections) == 1 and only.size == 3
    out = list(batches(((0, rej(i)) for i in range(1, 26)), max_rejections=10))
    assert [len(b.rejections) for b in out] == [10, 10, 5]
    assert all(not b.records for b in out)


def test_duplicate_ids_in_a_batch_keep_the_last() -> None:
    items = [(0, rec(1, "a")), (0, rec(2, "b")), (0, rec(3, "a"))]
    (b,) = list(batches(items))
    assert [r.line for r in b.records] == [2, 3]
    assert [s[3] for s in b.superseded] == [1] and b.size == 3


def test_spans_across_inputs_record_each_input() -> None:
    items = [(0, rec(1)), (0, rec(2)), (1, rec(1, "x", source="b.jsonl"))]
    (b,) = list(batches(items))
    assert b.per_input == {0: (2, Position(200, 2)), 1: (1, Position(100, 1))}
    assert b.span == "a.jsonl:1-b.jsonl:1"


def test_empty_input_gives_no_batch() -> None:
    assert list(batches([])) == []


def test_a_batch_body_is_a_json_array() -> None:
    assert orjson.loads(batch_of(1, [as_fresh(r) for r in [rec(1), rec(2)]]).body) == [
        {"id": "r1", "data": "x" * 10},
        {"id": "r2", "data": "x" * 10},
    ]
    assert batch_of(1, []).body == b"[]"


@pytest.mark.parametrize("n", [1, 999, 1000, 1001])
def test_every_record_lands_in_exactly_one_batch(n: int) -> None:
    out: list[Batch] = list(batches((0, rec(i)) for i in range(1, n + 1)))
    assert sorted(r.line for b in out for r in b.records) == list(range(1, n + 1))


def fresh(
    i: int, id_: str | None = None, source: str = "a.jsonl"
) -> tuple[str, bytes, str, int, int, int]:
    r = rec(i, id_, source=source)
    return (r.id, r.body, r.source, r.line, r.end.offset, r.end.line)


def test_fresh_tuples_and_records_batch_alike() -> None:
    as_records = list(batches((0, rec(i)) for i in range(1, 2501)))
    as_tuples = list(batches((0, fresh(i)) for i in range(1, 2501)))
    for a, b in zip(as_records, as_tuples, strict=True):
        assert (a.body, a.ids, a.per_input, a.span) == (b.body, b.ids, b.per_input, b.span)
        assert a.records == b.records


def test_a_record_ends_where_its_last_line_ends() -> None:
    # A CSV row with a quoted newline starts on line 4 and ends after line 5.
    multi = Record("x", b'{"id":"x","data":"a"}', "t.csv", 4, Position(90, 5))
    (batch,) = batches([(0, rec(2, source="t.csv")), (0, multi)])
    assert batch.per_input == {0: (2, Position(90, 5))}
    assert batch.records[1] == multi


@pytest.mark.parametrize("n", [1, 2, 3, 10])
def test_every_part_of_a_body_is_the_json_of_those_records(n: int) -> None:
    records = [rec(i, size=i) for i in range(1, n + 1)]
    batch = batch_of(1, [as_fresh(r) for r in records])
    assert batch.body == b"[" + b",".join(r.body for r in records) + b"]"
    for lo in range(n):
        for hi in range(lo + 1, n + 1):
            expected = [orjson.loads(r.body) for r in records[lo:hi]]
            assert orjson.loads(batch.part(lo, hi)) == expected
    assert batch.records == records


def test_superseded_records_leave_every_column() -> None:
    items = [(0, fresh(1, "a")), (0, fresh(2, "b")), (0, fresh(3, "a")), (0, fresh(4, "c"))]
    (batch,) = batches(items)
    assert list(batch.ids) == ["b", "a", "c"]
    assert [r.line for r in batch.records] == [2, 3, 4]
    assert [r["id"] for r in orjson.loads(batch.body)] == ["b", "a", "c"]
    assert len(batch.superseded) == 1 and batch.size == 4


def test_a_span_knows_its_first_and_last_item_whatever_they_are() -> None:
    # The first record is superseded later; a rejection ends the span; skips and
    # rejections sit between records of two inputs.
    items: list[tuple[int, Record | Rejection | Skip]] = [
        (0, rec(1, "a")),
        (0, rej(2)),
        (0, rec(3, "a")),
        (1, Skip("b.jsonl", 1, Position(50, 1))),
        (1, rec(2, "b", source="b.jsonl")),
        (1, rej(3, source="b.jsonl")),
    ]
    (batch,) = batches(items)
    assert batch.span == "a.jsonl:1-b.jsonl:3"
    assert batch.per_input == {0: (3, Position(300, 3)), 1: (3, Position(300, 3))}
    assert list(batch.ids) == ["a", "b"] and len(batch.superseded) == 1
    (batch,) = batches([(0, rej(4)), (0, rec(5)), (0, Skip("a.jsonl", 6, Position(600, 6)))])
    assert (batch.first_where, batch.last_where) == ("a.jsonl:4", "a.jsonl:6")
    assert batch.per_input == {0: (3, Position(600, 6))}
