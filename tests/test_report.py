"""What the user sees: per-batch lines, plain progress for logs, the summary, --report."""

from __future__ import annotations

import io
from pathlib import Path

import orjson
from rich.console import Console

from vupsert.batching import Batch
from vupsert.pipeline import Summary
from vupsert.records import Position, Record, Rejection
from vupsert.report import ConsoleEvents, ReportFile, Terminal, batch_problem, summary_table
from vupsert.sending import Settlement


def settlement(rejected: int = 1) -> Settlement:
    records = [Record(f"r{i}", b"{}", "docs.jsonl", 11001 + i, Position(i, i)) for i in range(1000)]
    batch = Batch.of(12, records, first_where="docs.jsonl:11001", last_where="docs.jsonl:12000")
    refused = [
        Rejection("docs.jsonl", 11017, Position(1, 1), "cannot embed", status=400)
        for _ in range(rejected)
    ]
    return Settlement(
        batch,
        upserted=999,
        rejected=refused,
        attempts=21,
        retries=0,
        status=200,
        error="cannot embed record 17",
        error_status=400,
    )


def console() -> tuple[Terminal, io.StringIO]:
    out = io.StringIO()
    plain = Console(file=out, force_terminal=False, width=200, no_color=True)
    return Terminal(console=plain), out


def test_batch_problem_line_names_batch_span_status_message_and_fate() -> None:
    line = batch_problem(settlement(), "rejects.jsonl")
    assert line == (
        "batch 12 (docs.jsonl:11001-12000): HTTP 400: cannot embed record 17 — "
        "999 upserted, 1 rejected (written to rejects.jsonl)"
    )
    assert batch_problem(settlement(rejected=0), None) is None


def test_plain_progress_lines_when_not_a_terminal() -> None:
    c, out = console()
    events = ConsoleEvents(c, plain_every=0.0)
    events.started(1000, ("docs.jsonl",))
    events.bytes_read(500)
    events.batch_done(settlement(), Summary(records_upserted=999, records_rejected=1))
    text = out.getvalue()
    assert "progress: " in text and "50% of 1,000 bytes read" in text
    assert "batch 12" in text
    assert "\x1b[" not in text  # no control characters in a log


def test_quiet_prints_one_line_only_when_records_are_missing() -> None:
    c, out = console()
    events = ConsoleEvents(c, quiet=True, rejects="r.jsonl")
    events.started(None, ("-",))
    events.batch_done(settlement(), Summary())
    events.finished(Summary(records_read=10, records_upserted=10))
    assert out.getvalue() == ""
    events.finished(Summary(records_read=10, records_upserted=9, records_rejected=1))
    assert out.getvalue().strip() == (
        "vupsert: 1 records rejected, 0 not settled, of 10 read; see r.jsonl"
    )


def test_summary_table_rows() -> None:
    c, out = console()
    c.print(
        summary_table(
            Summary(
                records_read=5,
                records_upserted=4,
                records_rejected=1,
                batches_sent=1,
                namespace="docs",
                rejects_file="r.jsonl",
            )
        )
    )
    text = out.getvalue()
    for piece in ("records read", "upserted", "rejected", "'docs'", "r.jsonl"):
        assert piece in text


def test_report_file_line(tmp_path: Path) -> None:
    path = tmp_path / "report.jsonl"
    report = ReportFile(path)
    report.batch_done(settlement(), Summary())
    report.finished(Summary())
    (line,) = [orjson.loads(x) for x in path.read_bytes().splitlines()]
    assert line["batch"] == 12 and line["span"] == "docs.jsonl:11001-12000"
    assert line["outcome"] == "partial" and line["attempts"] == 21
    assert line["error"] == "cannot embed record 17"
