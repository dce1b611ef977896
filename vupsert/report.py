"""What the user sees: progress, one line per batch that went wrong, the summary.

Everything here writes to stderr except the ``--json`` summary (stdout) and the
``--report`` file. On a terminal the progress is a live rich display; elsewhere (CI logs,
cron mail) a plain line every few seconds, with no control characters.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    # rich is imported where it is used: a quiet or --json run in cron or a pipe prints
    # nothing on the happy path, and importing rich costs about 0.05 s of every start.
    from rich.console import Console
    from rich.progress import Progress, TaskID
    from rich.table import Table

from .errors import ConfigError, OutputError
from .outputs import write_fully
from .pipeline import Events, Summary
from .records import Rejection
from .sending import Settlement

PLAIN_EVERY = 5.0
"""Seconds between plain progress lines when stderr is not a terminal."""
SHOWN_REJECTIONS = 10
"""Rejected records named on stderr, one line each; the rest are counted."""


class Terminal:
    """stderr as a rich ``Console``, made the first time something is printed."""

    def __init__(self, file: IO[str] | None = None, *, console: Console | None = None) -> None:
        self._file = file
        self._console = console

    @property
    def console(self) -> Console:
        if self._console is None:
            from rich.console import Console

            # rich honours NO_COLOR and TERM=dumb itself.
            self._console = Console(file=self._file, stderr=True, highlight=False)
        return self._console

    def print(self, *objects: Any, **options: Any) -> None:
        self.console.print(*objects, **options)


def batch_problem(settlement: Settlement, rejects: str | None) -> str | None:
    """One line for a batch that did not fully land, or ``None`` when it did."""
    batch = settlement.batch
    if not settlement.rejected:
        return None
    status = f"HTTP {settlement.error_status}" if settlement.error_status else "no answer"
    message = settlement.error or ""
    if len(message) > 160:
        message = message[:159] + "…"
    fate = f"{settlement.upserted:,} upserted, {len(settlement.rejected):,} rejected"
    if rejects:
        fate += f" (written to {rejects})"
    retries = f", {settlement.retries} retries" if settlement.retries else ""
    return f"batch {batch.seq} ({batch.span}): {status}{retries}: {message} — {fate}"


class ConsoleEvents:
    """Progress and per-batch lines on stderr; the summary table at the end."""

    def __init__(
        self,
        terminal: Terminal,
        *,
        quiet: bool = False,
        live: bool | None = None,
        rejects: str | None = None,
        plain_every: float = PLAIN_EVERY,
    ) -> None:
        self.terminal = terminal
        self.quiet = quiet
        # None: decided when the run starts, by whether stderr is a terminal.
        self.live = live
        self.rejects = rejects
        self.plain_every = plain_every
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._bytes = 0
        self._total: int | None = None
        self._started = time.monotonic()
        self._last_plain = self._started
        self._summary: Summary | None = None
        self._lock = threading.Lock()
        self._shown = 0
        self._unshown = 0
        """Rejected records past the first few, which are only counted."""

    def started(self, total_bytes: int | None, inputs: tuple[str, ...]) -> None:
        self._started = self._last_plain = time.monotonic()
        self._total = total_bytes
        if self.quiet:
            return
        if self.live is None:
            self.live = self.terminal.console.is_terminal
        if not self.live:
            return
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeRemainingColumn,
        )

        columns: list[Any] = [SpinnerColumn(), TextColumn("[bold]upserting[/]")]
        if total_bytes:
            columns += [BarColumn(), DownloadColumn(), TimeRemainingColumn()]
        columns.append(TextColumn("{task.fields[stats]}"))
        self._progress = Progress(*columns, console=self.terminal.console, transient=False)
        self._task = self._progress.add_task("upsert", total=total_bytes or None, stats="")
        self._progress.start()

    def bytes_read(self, n: int) -> None:
        self._bytes += n
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, completed=self._bytes)
        elif not self.quiet:
            self._maybe_plain()

    def batch_done(self, settlement: Settlement, summary: Summary) -> None:
        self._summary = summary
        line = None if self.quiet else batch_problem(settlement, self.rejects)
        if line:
            self.terminal.print(line, markup=False, highlight=False, soft_wrap=True)
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, stats=self._stats(summary))
        elif not self.quiet:
            self._maybe_plain()

    def rejected(self, rejections: list[Rejection]) -> None:
        # Quiet keeps them off a clean cron mail only when the rejects file has them.
        if self.quiet and self.rejects:
            return
        for rejection in rejections:
            if self._shown >= SHOWN_REJECTIONS:
                self._unshown += 1
                continue
            self._shown += 1
            self.terminal.print(
                f"rejected {rejection.where}: {rejection.reason}",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )

    def warning(self, message: str) -> None:
        self.terminal.print(f"warning: {message}", markup=False, highlight=False)

    def finished(self, summary: Summary) -> None:
        if self._progress is not None:
            if self._task is not None:
                self._progress.update(self._task, stats=self._stats(summary))
            self._progress.stop()
        if self._unshown:
            where = (
                f"all are in {self.rejects}"
                if self.rejects
                else "--rejects FILE keeps every one with its reason"
            )
            self.terminal.print(
                f"... and {self._unshown:,} more rejected records: {where}",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
        if not self.quiet:
            self.terminal.print(summary_table(summary))
        elif summary.records_rejected or summary.records_pending:
            # Quiet is for clean runs; cron mail must still say that records are missing.
            where = f"; see {self.rejects}" if self.rejects and summary.records_rejected else ""
            self.terminal.print(
                f"vupsert: {summary.records_rejected:,} records rejected, "
                f"{summary.records_pending:,} not settled, of {summary.records_read:,} read"
                f"{where}",
                markup=False,
                highlight=False,
            )

    def _stats(self, summary: Summary) -> str:
        elapsed = max(1e-9, time.monotonic() - self._started)
        rate = (summary.records_upserted + summary.records_rejected) / elapsed
        return (
            f"{summary.records_upserted:,} upserted · {rate:,.0f} rec/s · "
            f"{summary.batches_sent:,} batches · {summary.records_rejected:,} rejected"
        )

    def _maybe_plain(self) -> None:
        now = time.monotonic()
        if now - self._last_plain < self.plain_every:
            return
        with self._lock:
            if now - self._last_plain < self.plain_every:
                return
            self._last_plain = now
        parts = []
        if self._summary is not None:
            parts.append(self._stats(self._summary))
        if self._total:
            parts.append(f"{self._bytes / self._total:.0%} of {self._total:,} bytes read")
        else:
            parts.append(f"{self._bytes:,} bytes read")
        self.terminal.print("progress: " + " · ".join(parts), markup=False, highlight=False)


def summary_table(summary: Summary) -> Table:
    from rich.table import Table

    table = Table(
        title="vupsert dry run" if summary.dry_run else "vupsert",
        show_header=False,
        box=None,
        padding=(0, 2),
    )
    table.add_column(style="bold")
    table.add_column(justify="right")
    rows: list[tuple[str, str]] = [
        ("records read", f"{summary.records_read:,}"),
        (
            "upserted" if not summary.dry_run else "valid (not sent)",
            f"{summary.records_upserted if not summary.dry_run else summary.records_valid:,}",
        ),
        ("rejected", f"{summary.records_rejected:,}"),
    ]
    if summary.records_skipped:
        rows.append(("skipped", f"{summary.records_skipped:,}"))
    if summary.records_superseded:
        rows.append(("superseded", f"{summary.records_superseded:,}"))
    if summary.records_unrecorded:
        rows.append(("rejected, not in the rejects file", f"{summary.records_unrecorded:,}"))
    if summary.records_pending:
        rows.append(("not settled", f"{summary.records_pending:,}"))
    rows += [
        (
            "batches" if summary.dry_run else "batches sent",
            f"{summary.batches if summary.dry_run else summary.batches_sent:,}",
        ),
        ("batches failed", f"{summary.batches_failed:,}"),
        ("retries", f"{summary.retries:,}"),
        ("elapsed", f"{summary.elapsed_s:,.1f} s"),
        ("records/s", f"{summary.records_per_s:,.0f}"),
        ("namespace", repr(summary.namespace) if summary.namespace else "(default)"),
    ]
    if summary.rejects_file and summary.records_rejected:
        rows.append(("rejects in", summary.rejects_file))
    for name, value in rows:
        table.add_row(name, value)
    return table


class ReportFile:
    """``--report``: one JSON line per batch, for CI artifacts and debugging."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            # Unbuffered: one write per batch, and a failed write is known at once.
            self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        except OSError as exc:
            raise ConfigError(f"Cannot write the report file {path}: {exc.strerror}.") from None
        self._broken = False

    def started(self, total_bytes: int | None, inputs: tuple[str, ...]) -> None:
        pass

    def bytes_read(self, n: int) -> None:
        pass

    def batch_done(self, settlement: Settlement, summary: Summary) -> None:
        batch = settlement.batch
        line = {
            "batch": batch.seq,
            "span": batch.span,
            "records": batch.size,
            "sent": batch.sent,
            "upserted": settlement.upserted,
            "superseded": settlement.superseded,
            "rejected": len(settlement.rejected) + len(batch.rejections),
            "outcome": settlement.outcome,
            "attempts": settlement.attempts,
            "status": settlement.status,
            "error": settlement.error,
            "duration_s": round(settlement.duration, 4),
        }
        if self._broken:
            return
        try:
            write_fully(self._fd, orjson.dumps(line) + b"\n")
        except OSError as exc:
            self._broken = True
            raise OutputError(self.path, exc) from None

    def rejected(self, rejections: list[Rejection]) -> None:
        pass

    def warning(self, message: str) -> None:
        pass

    def finished(self, summary: Summary) -> None:
        os.close(self._fd)


class Many:
    """Several event sinks as one."""

    def __init__(self, *sinks: Events) -> None:
        self.sinks = sinks

    def started(self, total_bytes: int | None, inputs: tuple[str, ...]) -> None:
        for sink in self.sinks:
            sink.started(total_bytes, inputs)

    def bytes_read(self, n: int) -> None:
        for sink in self.sinks:
            sink.bytes_read(n)

    def batch_done(self, settlement: Settlement, summary: Summary) -> None:
        for sink in self.sinks:
            sink.batch_done(settlement, summary)

    def rejected(self, rejections: list[Rejection]) -> None:
        for sink in self.sinks:
            sink.rejected(rejections)

    def warning(self, message: str) -> None:
        for sink in self.sinks:
            sink.warning(message)

    def finished(self, summary: Summary) -> None:
        for sink in self.sinks:
            sink.finished(summary)


def describe_info(info: dict[str, Any]) -> Table:
    """``vupsert info`` as a table."""
    dense = info.get("denseIndex") or {}
    model = dense.get("embeddingModel") if isinstance(dense, dict) else None
    from rich.table import Table

    table = Table(show_header=False, box=None, padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    table.add_row("dimension", str(info.get("dimension", "?")))
    table.add_row("similarity", str(info.get("similarityFunction", "?")))
    table.add_row("index type", str(info.get("indexType", "?")))
    table.add_row("embedding model", str(model) if model else "none (upsert-data will fail)")
    table.add_row("vectors", f"{info.get('vectorCount', 0):,}")
    table.add_row("pending", f"{info.get('pendingVectorCount', 0):,}")
    namespaces = info.get("namespaces") or {}
    for name, counts in sorted(namespaces.items()):
        label = f"namespace {name!r}" if name else "namespace (default)"
        table.add_row(
            label,
            f"{counts.get('vectorCount', 0):,} vectors, "
            f"{counts.get('pendingVectorCount', 0):,} pending",
        )
    return table
