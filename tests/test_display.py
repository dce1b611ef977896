"""What the user sees: per-batch lines, plain progress for logs, the summary, --report."""

from __future__ import annotations

import io
import re
from pathlib import Path

import orjson
import pytest
from rich.console import Console

from vupsert.cli.display import (
    ConsoleEvents,
    Terminal,
    _LiveLine,
    batch_problem,
    plural,
    settled_share,
    stopping_line,
    summary_line,
    summary_table,
)
from vupsert.errors import UsageError
from vupsert.outcomes import Settlement, Stopping, Summary, Waiting
from vupsert.records import Position, Record, Rejection
from vupsert.run._batching import as_fresh, batch_of
from vupsert.run._outputs import ReportFile

pytestmark = pytest.mark.lived_in
"""What is shown depends on rich and on whether stderr is a terminal."""


def settlement(rejected: int = 1) -> Settlement:
    records = [Record(f"r{i}", b"{}", "docs.jsonl", 11001 + i, Position(i, i)) for i in range(1000)]
    batch = batch_of(
        12,
        [as_fresh(r) for r in records],
        first_where="docs.jsonl:11001",
        last_where="docs.jsonl:12000",
    )
    refused = [
        Rejection("docs.jsonl", 11017, Position(1, 1), "cannot embed", status=400)
        for _ in range(rejected)
    ]
    return Settlement(
        batch,
        upserted=999,
        rejected=refused,
        requests=21,
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
    assert out.getvalue().strip() == "vupsert: 1 record rejected, of 10 read; see r.jsonl"


def test_not_settled_says_what_it_means_wherever_it_is_counted() -> None:
    meaning = "read, but neither upserted nor rejected: never sent, or sent without an answer"
    summary = Summary(records_read=10, records_upserted=4, records_rejected=1)
    c, out = console()
    ConsoleEvents(c, quiet=True, rejects="r.jsonl").finished(summary)
    assert out.getvalue().strip() == (
        f"vupsert: 1 record rejected, 5 not settled ({meaning}), of 10 read; see r.jsonl"
    )
    for checkpoint, again in ((None, "."), ("c.ckpt", ", carrying on from the checkpoint.")):
        c, out = console()
        summary.checkpoint = checkpoint
        ConsoleEvents(c).finished(summary)
        lines = out.getvalue().splitlines()
        assert "not settled 5" in lines[0]
        assert lines[1] == (
            f"not settled: 5 records {meaning}. The same command, run again, loads them{again}"
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
    assert line["outcome"] == "partial" and (line["attempts"], line["requests"]) == (1, 21)
    assert line["error"] == "cannot embed record 17"


def test_plain_progress_lines_carry_a_timestamp_and_what_is_settled() -> None:
    c, out = console()
    events = ConsoleEvents(c, plain_every=0.0)
    events.started(1000, ("docs.jsonl",))
    events.bytes_read(980)
    # 98% of the bytes read, but of the 100 records read only 86 are settled.
    events.batch_done(
        settlement(), Summary(records_read=100, records_upserted=85, records_rejected=1)
    )
    line = [x for x in out.getvalue().splitlines() if "progress:" in x][-1]
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d progress: ", line), line
    assert "84% settled" in line and "98% of 1,000 bytes read" in line


@pytest.mark.parametrize(
    ("read", "settled", "bytes_read", "share"),
    [(100, 86, 980, 0.8428), (0, 0, 500, 0.0), (10, 10, 1000, 1.0), (10, 10, 400, 0.4)],
)
def test_the_settled_share_runs_ahead_of_neither_bytes_nor_records(
    read: int, settled: int, bytes_read: int, share: float
) -> None:
    summary = Summary(records_read=read, records_upserted=settled)
    value = settled_share(summary, bytes_read, 1000)
    assert value == pytest.approx(share)
    assert value is not None and value <= bytes_read / 1000
    assert value <= (settled / read if read else 0.0)
    assert settled_share(summary, bytes_read, None) is None


@pytest.mark.parametrize("width", [16, 24, 40, 60, 80, 200])
def test_the_live_line_keeps_upserted_and_rejected_at_any_width(width: int) -> None:
    out = io.StringIO()
    live = Console(file=out, force_terminal=True, width=width, no_color=True)
    events = ConsoleEvents(Terminal(console=live), live=True)
    events.started(1000, ("docs.jsonl",))
    events.bytes_read(1000)
    summary = Summary(records_read=12_345, records_upserted=12_342, records_rejected=3)
    events.batch_done(settlement(rejected=0), summary)
    line = _LiveLine(events).render(width, 0.0)
    assert "12,342" in line.plain and "3" in line.plain.replace("12,342", "")
    assert len(line.plain) <= width
    if width >= 40:
        assert "12,342 upserted · 3 rejected" in line.plain
    if width >= 60:  # the bar too, as it had been dropped at 60 columns
        assert "100%" in line.plain and "━" in line.plain
    events.finished(summary)


def test_the_bar_ends_on_the_summarys_rate() -> None:
    out = io.StringIO()
    live = Console(file=out, force_terminal=True, width=120, no_color=True)
    events = ConsoleEvents(Terminal(console=live), live=True)
    events.started(1000, ("docs.jsonl",))
    summary = Summary(records_read=100, records_upserted=90, records_superseded=10)
    events.batch_done(settlement(rejected=0), summary)
    summary.elapsed_s = 4.0  # start-up and all: 100 records settled in 4 s
    events.finished(summary)
    assert summary.records_per_s == 25.0
    assert " · 25 rec/s · " in _LiveLine(events).render(120, 0.0).plain
    assert "records/s 25 " in summary_line(summary)


def test_quiet_silences_warnings_but_not_missing_records() -> None:
    c, out = console()
    events = ConsoleEvents(c, quiet=True)
    events.started(None, ("-",))
    events.warning("docs.jsonl:3: the last line has no newline yet")
    events.finished(Summary(records_read=2, records_upserted=2))
    assert out.getvalue() == ""


def test_no_summary_when_an_error_came_before_anything_was_read() -> None:
    c, out = console()
    events = ConsoleEvents(c)
    events.started(None, ("-",))
    events.finished(Summary(error=UsageError("stdin has no column 'id'")))
    assert out.getvalue() == ""


def test_plain_summary_is_one_line() -> None:
    c, out = console()
    events = ConsoleEvents(c)
    events.started(None, ("-",))
    events.finished(
        Summary(records_read=2, records_upserted=1, records_rejected=1, rejects_file="r.jsonl")
    )
    (line,) = out.getvalue().splitlines()
    assert line.startswith("vupsert: records read 2 · upserted 1 · rejected 1 ·")
    assert line.endswith("rejects in r.jsonl")


def test_plural() -> None:
    assert plural(1, "record") == "1 record"
    assert plural(1000, "record") == "1,000 records"
    assert plural(0, "batch", "batches") == "0 batches"


README_TEXT = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def flowing(text: str) -> str:
    return " ".join(text.split())


def test_the_waiting_line_the_readme_shows_is_the_one_printed() -> None:
    waiting = Waiting(idle_s=30, retrying=4, throttled=57, stops_in_s=270)
    shown = (
        "waiting: nothing settled for 30 s; 57 answers 429 (the index's rate limit or quota; "
        "the run stops in 270 s unless a write lands); 4 batches waiting to be retried"
    )
    assert shown in flowing(README_TEXT)
    err = io.StringIO()
    ConsoleEvents(Terminal(err, tty=False)).waiting(waiting)
    assert re.fullmatch(r"\S+ " + re.escape(shown) + "\n", err.getvalue())
    slow = Waiting(idle_s=31, requests=2, oldest_s=31.4)
    assert slow.message == (
        "nothing settled for 31 s; 2 requests awaiting answers, the oldest for 31 s (a slow server)"
    )


def test_the_ctrl_c_acknowledgement_the_readme_shows_is_the_one_printed() -> None:
    ack = stopping_line(Stopping(12, 30.0))
    assert f"`{ack}`" in flowing(README_TEXT)
    assert stopping_line(Stopping(0, 30.0)) == "stopping: nothing in flight; nothing more is sent"
    assert stopping_line(Stopping(1, 30.0, abandoned=True)).startswith(
        "stopped waiting: 1 batch in flight abandoned"
    )
