"""What the user sees: progress, one line per batch that went wrong, every command's
summary, the ``error:`` line, and the ``--json`` document.

Everything but the document, ``info``'s table and ``query``'s hits (stdout) writes to
stderr. On a terminal the progress is a live rich line and the summary a table. Elsewhere
(CI logs, cron mail, a file) every event is one whole line, never wrapped, with no control
characters: a timestamped progress line every few seconds, and the summary as one line;
rich is not even imported there.
"""

from __future__ import annotations

import datetime
import re
import threading
import time
from typing import IO, TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    # rich is imported where it is used: a quiet or --json run in cron or a pipe prints
    # nothing on the happy path, and importing rich costs about 0.05 s of every start.
    from rich.console import Console, ConsoleOptions, RenderResult
    from rich.live import Live
    from rich.table import Table
    from rich.text import Text

from ..config import option
from ..errors import VupsertError
from ..outcomes import (
    FIRST_REJECTIONS,
    DeleteSummary,
    ExportSummary,
    QueryResult,
    Settlement,
    Stopping,
    Summary,
    SyncSummary,
    VerifySummary,
    Waiting,
)
from ..records import Rejection
from ..transport import embedding_models

PLAIN_EVERY = 5.0
"""Seconds between plain progress lines when stderr is not a terminal."""
SHOWN_REJECTIONS = FIRST_REJECTIONS
"""Rejected records named on stderr, one line each; the rest are counted."""
SHOWN_VALUE = 40
"""Characters of a metadata string that a query's table shows; a longer one is cut."""
NOT_SETTLED = "read, but neither upserted nor rejected: never sent, or sent without an answer"
"""What "not settled" (``records_pending``) means, said wherever it is counted."""


def plural(n: int, word: str, words: str | None = None) -> str:
    """``1 record``, ``2 records``, ``1,000 records``; ``words`` where ``s`` is not it."""
    return f"{n:,} {word}" if n == 1 else f"{n:,} {words or word + 's'}"


def one_line(text: str) -> str:
    """``text`` as one log line: a newline inside a message would split the event."""
    return text.replace("\r", "\\r").replace("\n", "\\n")


def settled_share(summary: Summary, bytes_read: int, total: int | None) -> float | None:
    """The share of the input that is settled (upserted, rejected or skipped), or
    ``None`` without a total: bytes read times the share of the records read so far that
    are settled. It runs ahead of neither the bytes read nor the records settled."""
    if not total:
        return None
    read = summary.records_read
    settled = summary.records_upserted + summary.records_rejected + summary.records_skipped
    done = min(1.0, settled / read) if read else 0.0
    return min(1.0, bytes_read / total) * done


class Terminal:
    """stderr: a rich ``Console`` on a terminal, whole plain lines anywhere else.

    ``tty`` (default: whether the file is a terminal) picks the mode; a test may pass a
    ``console`` of its own, whose file then gets the plain lines too.
    """

    def __init__(
        self,
        file: IO[str] | None = None,
        *,
        console: Console | None = None,
        tty: bool | None = None,
    ) -> None:
        self._file = file if file is not None or console is None else console.file
        self._console = console
        self._tty = tty
        # One writer at a time: progress, the watch's waiting line and Ctrl-C's
        # acknowledgement come from different threads.
        self._lock = threading.RLock()

    @property
    def is_terminal(self) -> bool:
        if self._tty is None:
            if self._console is not None:
                self._tty = self._console.is_terminal
            else:
                isatty = getattr(self._target(), "isatty", None)
                self._tty = bool(isatty and isatty())
        return self._tty

    def _target(self) -> IO[str]:
        import sys

        return self._file if self._file is not None else sys.stderr

    @property
    def console(self) -> Console:
        if self._console is None:
            from rich.console import Console

            # rich honours NO_COLOR and TERM=dumb itself.
            self._console = Console(file=self._file, stderr=True, highlight=False)
        return self._console

    def print(self, *objects: Any, **options: Any) -> None:
        """A rich renderable (a table): for the terminal only."""
        self.console.print(*objects, **options)

    def line(self, text: str, *, head: str = "", style: str = "") -> None:
        """One message: ``head`` (``error:``, ``warning:``) in ``style`` on a terminal,
        then ``text``; elsewhere one whole line, written at once."""
        if self.is_terminal:
            from rich.text import Text

            message = Text()
            if head:
                message.append(head, style=style or None)
                message.append(" ")
            message.append(text)
            self.console.print(message, highlight=False)
            return
        plain = one_line(f"{head} {text}" if head else text) + "\n"
        with self._lock:
            target = self._target()
            target.write(plain)
            target.flush()


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
    retries = f", {plural(settlement.retries, 'retry', 'retries')}" if settlement.retries else ""
    return f"batch {batch.seq} ({batch.span}): {status}{retries}: {message} — {fate}"


class ConsoleEvents:
    """Progress and per-batch lines on stderr; the summary at the end."""

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
        self._live: Live | None = None
        self._bytes = 0
        self._total: int | None = None
        self._started = time.monotonic()
        """When the run began (made just before it): the clock of the rate, as of the
        summary's ``records/s``."""
        self._flowing = self._last_plain = self._started
        """When records began to flow (after the index's checks): the clock of the ETA."""
        self._finished = False
        self._summary: Summary | None = None
        self._lock = threading.Lock()
        self._shown = 0
        self._unshown = 0
        """Rejected records past the first few, which are only counted."""

    def started(self, total_bytes: int | None, inputs: tuple[str, ...]) -> None:
        self._flowing = self._last_plain = time.monotonic()
        self._total = total_bytes
        if self.quiet:
            return
        if self.live is None:
            self.live = self.terminal.is_terminal
        if not self.live:
            return
        from rich.live import Live

        self._live = Live(
            _LiveLine(self),
            console=self.terminal.console,
            refresh_per_second=4,
            transient=False,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self._live.start()

    def bytes_read(self, n: int) -> None:
        self._bytes += n
        if self._live is None and not self.quiet:
            self._maybe_plain()

    def batch_done(self, settlement: Settlement, summary: Summary) -> None:
        self._summary = summary
        line = None if self.quiet else batch_problem(settlement, self.rejects)
        if line:
            self.terminal.line(line)
        if self._live is None and not self.quiet:
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
            self.terminal.line(f"{rejection.where}: {rejection.reason}", head="rejected")

    def warning(self, message: str) -> None:
        # Quiet is for cron: a clean run there must print nothing, and warnings (a new
        # namespace, a line still being written) are about runs that went fine.
        if not self.quiet:
            self.terminal.line(message, head="warning:", style="yellow")

    def waiting(self, waiting: Waiting) -> None:
        """Nothing has settled for a while: what the run waits for, with a timestamp."""
        if not self.quiet:
            self.terminal.line(f"{_stamp()} waiting: {waiting.message}")

    def stopping(self, stopping: Stopping) -> None:
        """A stop was asked (Ctrl-C), or the answers it waited for were abandoned."""
        self.terminal.line(stopping_line(stopping))

    def finished(self, summary: Summary) -> None:
        self._summary = summary
        self._finished = True
        if self._live is not None:
            self._live.stop()
            self._live = None
        if self._unshown:
            where = (
                f"all are in {self.rejects}"
                if self.rejects
                else f"a rejects file ({option('rejects')}) keeps every one with its reason"
            )
            self.terminal.line(f"... and {plural(self._unshown, 'more rejected record')}: {where}")
        if summary.error is not None and summary.records_read == 0:
            # Nothing was read: a table of zeros would only push the error out of sight.
            return
        if not self.quiet:
            if self.terminal.is_terminal:
                self.terminal.print(summary_table(summary))
            else:
                self.terminal.line(summary_line(summary))
            if summary.records_pending:
                self.terminal.line(unsettled(summary))
            if isinstance(summary, SyncSummary) and summary.to_delete:
                self.terminal.line(would_delete(summary))
            if summary.interrupted and summary.error is None:
                self.terminal.line(interrupted_line(summary))
        elif summary.records_rejected or summary.records_pending or summary.records_stale_chunks:
            # Quiet is for clean runs; cron mail must still say that records are missing.
            self.terminal.line(missing_line(summary, self.rejects))

    def share(self) -> float | None:
        """What the bar shows: see :func:`settled_share`."""
        if self._summary is None:
            return 0.0 if self._total else None
        return settled_share(self._summary, self._bytes, self._total)

    def counts(self) -> tuple[str, str]:
        """``(upserted, rejected)`` as the live line shows them."""
        summary = self._summary or Summary()
        return f"{summary.records_upserted:,}", f"{summary.records_rejected:,}"

    def rate(self) -> float:
        """Records settled per second of the run so far: the summary's ``records/s``,
        which it is once the run has ended."""
        summary = self._summary or Summary()
        if self._finished:
            return summary.records_per_s
        return summary.records_done / max(1e-9, time.monotonic() - self._started)

    def eta(self) -> float | None:
        """Seconds left, from how fast the settled share has grown."""
        share = self.share()
        if not share or share >= 1.0:
            return None
        elapsed = time.monotonic() - self._flowing
        return elapsed * (1.0 - share) / share

    def _stats(self, summary: Summary) -> str:
        return (
            f"{summary.records_upserted:,} upserted · {summary.records_rejected:,} rejected · "
            f"{self.rate():,.0f} rec/s · {plural(summary.batches_sent, 'batch', 'batches')}"
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
        share = self.share()
        if share is not None:
            parts.append(f"{share:.0%} settled")
        if self._summary is not None:
            parts.append(self._stats(self._summary))
        if self._total:
            parts.append(f"{self._bytes / self._total:.0%} of {self._total:,} bytes read")
        else:
            parts.append(f"{self._bytes:,} bytes read")
        self.terminal.line(f"{_stamp()} progress: " + " · ".join(parts))


def _stamp() -> str:
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


def stopping_line(stopping: Stopping) -> str:
    """What Ctrl-C is answered with at once, and what is said if the wait it started runs
    out."""
    batches = plural(stopping.in_flight, "batch", "batches")
    if stopping.abandoned:
        return (
            f"stopped waiting: {batches} in flight abandoned; their records are not settled "
            "(a rerun sends them)"
        )
    if not stopping.in_flight:
        return "stopping: nothing in flight; nothing more is sent"
    return (
        f"stopping: {batches} in flight, waiting up to {stopping.wait_s:.0f} s for their "
        "answers (nothing more is sent or retried); Ctrl-C again to abandon them"
    )


def interrupted_line(summary: Summary) -> str:
    """What an interrupted run says last: whether a checkpoint keeps what settled."""
    pending = summary.records_pending
    if summary.checkpoint and not summary.dry_run and summary.error is None:
        return (
            f"interrupted: checkpoint written to {summary.checkpoint}; the same command carries "
            f"on with the {pending:,} records not settled and the rest of the input"
        )
    if isinstance(summary, SyncSummary):
        return "interrupted: the same command carries on from what the index holds"
    return (
        f"interrupted: no checkpoint, so the same command sends every record again "
        f"({option('checkpoint')} keeps what settled)"
    )


class _LiveLine:
    """The live progress line, laid out for the width it gets at each refresh.

    Upserted and rejected come first and stay at any width; the bar, the share, the
    rate, the ETA and the batches are added while they fit, so nothing is cut short.
    """

    def __init__(self, events: ConsoleEvents) -> None:
        self.events = events

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield self.render(options.max_width, console.get_time())

    def render(self, width: int, now: float) -> Text:
        from rich.text import Text

        events = self.events
        upserted, rejected = events.counts()
        essential = next(
            (
                text
                for text in (
                    f"{upserted} upserted · {rejected} rejected",
                    f"{upserted} up · {rejected} rej",
                    f"{upserted}✓ {rejected}✗",
                )
                if len(text) <= width
            ),
            f"{upserted}✓ {rejected}✗",
        )
        share = events.share()
        summary = events._summary or Summary()
        room = width - len(essential)
        shown: dict[str, str] = {}
        bar = 0
        if share is not None and room >= 5:
            shown["pct"] = f"{share:>4.0%}"
            room -= 5
            if room >= 11:  # a bar of 10 at least, before any other part
                bar, room = 10, room - 11
        optional: list[tuple[str, str]] = [("rate", f"{events.rate():,.0f} rec/s")]
        eta = events.eta()
        if eta is not None:
            optional.append(("eta", f"eta {_clock(eta)}"))
        optional.append(("batches", plural(summary.batches_sent, "batch", "batches")))
        for where, text in optional:
            if len(text) + 3 <= room:
                shown[where] = text
                room -= len(text) + 3
        if bar:
            grow = min(30, room)  # what is left widens the bar, up to 40
            bar, room = bar + grow, room - grow
        spinner = ""
        if share is None and room >= 2:
            frames = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
            spinner = frames[int(now * 10) % len(frames)]
            room -= 2
        line = Text(no_wrap=True, overflow="ellipsis")
        if spinner:
            line.append(spinner + " ", style="green")
        if "pct" in shown:
            line.append(shown["pct"] + " ")
        if bar:
            filled = int(bar * (share or 0.0))
            line.append("━" * filled, style="magenta")
            line.append("━" * (bar - filled), style="grey23")
            line.append(" ")
        line.append(essential, style="bold")
        for where in ("rate", "eta", "batches"):
            if where in shown:
                line.append(" · " + shown[where])
        return line


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def unsettled(summary: Summary) -> str:
    """What the records not settled are, and what loads them."""
    again = "The same command, run again, loads them"
    if summary.checkpoint:
        again += ", carrying on from the checkpoint"
    return f"not settled: {plural(summary.records_pending, 'record')} {NOT_SETTLED}. {again}."


def would_delete(summary: SyncSummary) -> str:
    """The ids a dry run of a sync would delete: the first ones, and how many."""
    named = ", ".join(map(repr, summary.to_delete))
    more = summary.ids_to_delete - len(summary.to_delete)
    rest = f" and {plural(more, 'more id')}" if more > 0 else ""
    of = f"{plural(summary.records_deleted, 'record')} of {summary.records_stored:,} stored"
    if summary.chunks_deleted:
        of += f", and {plural(summary.chunks_deleted, 'chunk')}"
    return f"would delete {named}{rest} ({of})"


def missing_line(summary: Summary, rejects: str | None) -> str:
    """The one line a quiet run prints when records are not in the index."""
    counts = (
        (summary.records_rejected, "rejected"),
        (summary.records_pending, f"not settled ({NOT_SETTLED})"),
        (summary.records_stale_chunks, "left with old chunks"),
    )
    parts = [f"{count:,} {what}" for count, what in counts if count]
    first = next(count for count, _ in counts if count)
    parts[0] = parts[0].replace(f"{first:,} ", f"{plural(first, 'record')} ", 1)
    where = f"; see {rejects}" if rejects and summary.records_rejected else ""
    return f"vupsert: {', '.join(parts)}, of {summary.records_read:,} read{where}"


def summary_rows(summary: Summary) -> list[tuple[str, str]]:
    """The summary as ``(name, value)`` rows: the table's, and the plain line's."""
    rows: list[tuple[str, str]] = [
        ("records read", f"{summary.records_read:,}"),
        (
            "upserted" if not summary.dry_run else "to send",
            f"{summary.records_upserted if not summary.dry_run else _to_send(summary):,}",
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
    deleted = "to delete" if summary.dry_run else "deleted"
    rows += _chunk_rows(summary, deleted)
    rows += [
        (
            "batches" if summary.dry_run else "batches sent",
            f"{summary.batches if summary.dry_run else summary.batches_sent:,}",
        ),
        ("batches failed", f"{summary.batches_failed:,}"),
        ("retries", f"{summary.retries:,}"),
        ("throttled", f"{summary.throttled:,}"),
        ("elapsed", f"{summary.elapsed_s:,.1f} s"),
        ("records/s", f"{summary.records_per_s:,.0f}"),
        ("namespace", repr(summary.namespace) if summary.namespace else "(default)"),
    ]
    if summary.rejects_file and summary.records_rejected:
        rows.append(("rejects in", summary.rejects_file))
    if isinstance(summary, SyncSummary):
        rows[1:1] = [
            ("new", f"{summary.records_new:,}"),
            ("changed", f"{summary.records_changed:,}"),
            ("unchanged", f"{summary.records_unchanged:,}"),
            (deleted, f"{summary.records_deleted:,} of {summary.records_stored:,} stored"),
        ]
    return rows


def _to_send(summary: Summary) -> int:
    """What a dry run would send: the valid records, but those a later one of the same id
    replaces in its batch (and, for a sync, those the index holds as they are)."""
    count = summary.records_valid - summary.records_superseded
    if isinstance(summary, SyncSummary):
        count -= summary.records_unchanged
    return count


def _chunk_rows(summary: Summary, deleted: str) -> list[tuple[str, str]]:
    """What became of the chunks, and of records left with old ones, when there are."""
    rows = []
    if summary.records_stale_chunks:
        rows.append(("left with old chunks", f"{summary.records_stale_chunks:,}"))
    for name, count in (
        ("upserted", summary.chunks_upserted),
        ("rejected", summary.chunks_rejected),
        (deleted, summary.chunks_deleted),
    ):
        if count:
            rows.append((f"chunks {name}", f"{count:,}"))
    return rows


def summary_line(summary: Summary) -> str:
    """The summary as one log line."""
    title = "vupsert dry run" if summary.dry_run else "vupsert"
    if isinstance(summary, SyncSummary):
        title = "vupsert sync (dry run)" if summary.dry_run else "vupsert sync"
    return f"{title}: " + " · ".join(f"{name} {value}" for name, value in summary_rows(summary))


def summary_table(summary: Summary) -> Table:
    from rich.table import Table

    table = Table(
        title="vupsert dry run" if summary.dry_run else "vupsert",
        show_header=False,
        box=None,
        padding=(0, 2),
    )
    table.add_column(style="bold")
    table.add_column(justify="right", overflow="fold")
    for name, value in summary_rows(summary):
        table.add_row(name, value)
    return table


def verify_lines(summary: VerifySummary) -> list[str]:
    """The records a verify names: the first that differ, then the first the namespace
    holds beyond the source."""
    lines = [
        f"{problem.where}: {problem.id!r} is {problem.kind} in the index"
        for problem in summary.problems
    ]
    unnamed = summary.records_missing + summary.records_different - len(summary.problems)
    if unnamed > 0:
        lines.append(f"... and {unnamed:,} more")
    lines += [f"{id_!r} is in the index, not in the source" for id_ in summary.extra_ids]
    unnamed = summary.records_extra - len(summary.extra_ids)
    if unnamed > 0:
        lines.append(f"... and {unnamed:,} more in the index only")
    return lines


def verify_line(summary: VerifySummary) -> str:
    """A verify's counts, as one line."""
    extra = f"{summary.records_extra:,} extra"
    if summary.records_extra and not summary.exact:
        extra += f" (not a difference without {option('exact')})"
    return (
        f"vupsert verify: {summary.records_checked:,} checked · "
        f"{summary.records_matching:,} matching · {summary.records_missing:,} missing "
        f"· {summary.records_different:,} different · {extra} · "
        f"{summary.records_rejected:,} could not be read"
    )


def describe_info(info: dict[str, Any], url: str = "") -> Table:
    """``vupsert info`` as a table: the index at ``url`` (as a message may show it)."""
    from rich.table import Table

    table = Table(show_header=False, box=None, padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    if url:
        table.add_row("url", url)
    table.add_row("dimension", str(info.get("dimension", "?")))
    table.add_row("similarity", str(info.get("similarityFunction", "?")))
    table.add_row("index type", str(info.get("indexType", "?")))
    for part, model in embedding_models(info).items():
        table.add_row(f"{part} embedding model", model or "none (upsert-data will fail)")
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


class Counter:
    """Progress of a count against a known total or none (an export): on a terminal one
    line rewritten in place, elsewhere a timestamped line every few seconds; nothing when
    quiet."""

    def __init__(
        self, terminal: Terminal, what: str, *, quiet: bool = False, every: float = PLAIN_EVERY
    ) -> None:
        self.terminal = terminal
        self.what = what
        self.quiet = quiet
        self.every = every
        self.count = 0
        self.total: int | None = None
        self._started = self._last = time.monotonic()

    def __call__(self, count: int, total: int | None) -> None:
        self.count, self.total = count, total
        now = time.monotonic()
        if self.quiet or now - self._last < (0.2 if self.terminal.is_terminal else self.every):
            return
        self._last = now
        self._show(end="\r" if self.terminal.is_terminal else "\n")

    def done(self) -> None:
        if not self.quiet and self.terminal.is_terminal and self.count:
            self._show(end="\n")

    def _show(self, end: str) -> None:
        of = f" of {self.total:,}" if self.total else ""
        share = f" ({self.count / self.total:.0%})" if self.total else ""
        rate = self.count / max(1e-9, time.monotonic() - self._started)
        text = f"{self.count:,}{of} {self.what}{share} · {rate:,.0f}/s"
        if self.terminal.is_terminal:
            self.terminal.console.print(text, end=end, highlight=False, markup=False)
        else:
            stamp = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
            self.terminal.line(f"{stamp} progress: {text}")


def joined(*parts: str | None) -> str:
    """The parts of a message as one line, each ending its sentence before the next:
    ``invalid token. The token was refused...``."""
    text = ""
    for part in parts:
        if not part:
            continue
        if text and not text.endswith((".", "!", "?", ":", ";")):
            text += "."
        text = f"{text} {part}" if text else part
    return text


def failure(terminal: Terminal, error: VupsertError, *, head: str = "error:") -> None:
    """The ``error:`` line: on a terminal the message, then what to do on a line of its
    own; in a log one line, as the error and what to do about it are one event."""
    if terminal.is_terminal:
        terminal.line(error.message, head=head, style="bold red")
        if error.hint:
            terminal.line(error.hint)
    else:
        terminal.line(joined(error.message, error.hint), head=head)


def document(stream: IO[str], value: dict[str, Any]) -> None:
    """``value`` as one JSON object on a line of its own: the ``--json`` result."""
    stream.write(orjson.dumps(value).decode() + "\n")
    stream.flush()


def exported(terminal: Terminal, summary: ExportSummary, *, quiet: bool) -> None:
    """What an export wrote, and the records it could not write whole."""
    _warned(terminal, summary.warnings, quiet=quiet)
    if summary.records_without_data:
        terminal.line(
            f"{summary.records_without_data:,} records have no data (they were upserted "
            "as vectors, not text): they are exported without it, and upsert-data "
            "cannot load them back.",
            head="warning:",
            style="yellow",
        )
    if not quiet or summary.error is not None:
        where = f" to {summary.output}" if summary.output else ""
        terminal.line(
            f"vupsert export: {summary.records_exported:,} records{where} in "
            f"{summary.elapsed_s:,.1f} s"
        )


def verified(terminal: Terminal, summary: VerifySummary, *, quiet: bool) -> None:
    """The records that do not match, the first ones the index holds beyond the source,
    then the counts."""
    _warned(terminal, summary.warnings, quiet=quiet)
    for line in verify_lines(summary):
        terminal.line(line)
    if not quiet or summary.exit_status:
        terminal.line(verify_line(summary))


def deleted(terminal: Terminal, summary: DeleteSummary, *, quiet: bool) -> None:
    """The lines of ``--ids`` that held no id, then what was deleted."""
    _warned(terminal, summary.warnings, quiet=quiet)
    if summary.lines_without_id:
        terminal.line(_skipped_line(summary), head="warning:", style="yellow")
    if not quiet or summary.count_uncertain or summary.error is not None:
        terminal.line(_delete_line(summary))


def _warned(terminal: Terminal, warnings: list[str], *, quiet: bool) -> None:
    """The command's warnings (an empty namespace): cron's ``--quiet`` hears none."""
    if not quiet:
        for warning in warnings:
            terminal.line(warning, head="warning:", style="yellow")


def _skipped_line(summary: DeleteSummary) -> str:
    text = (
        f"{summary.lines_without_id:,} lines of --ids hold no id, skipped (the first: "
        f"{summary.first_without_id}"
    )
    if summary.ids_format not in (None, "text"):
        text += f"; read as {summary.ids_format}, and --format text reads each line as an id"
    return text + ")."


def _delete_line(summary: DeleteSummary) -> str:
    verb = "would delete" if summary.dry_run else "deleted"
    count = f"{summary.records_deleted:,} records"
    if summary.count_uncertain:
        count = f"at least {count}" if summary.records_deleted else "an unknown number of records"
        count += (
            " (a delete's answer was lost after it may have been applied: what it removed "
            "is not counted)"
        )
    elif summary.ids_read:
        others = summary.ids_read - summary.records_deleted
        count += f" ({summary.ids_read:,} ids read"
        count += f"; {others:,} not in the index or listed twice)" if others else ")"
    return f"vupsert delete: {verb} {count}"


def described(
    terminal: Terminal, info: dict[str, Any], *, out: Console | None, url: str = ""
) -> None:
    """``vupsert info``: the table on ``out`` (none with ``--json``), then a warning for
    each part of the index that has no embedding model."""
    if out is not None:
        out.print(describe_info(info, url))
    lacking = [part for part, model in embedding_models(info).items() if not model]
    if lacking:
        terminal.line(
            f"this index has no embedding model for its {' and '.join(lacking)} part: "
            "upsert-data (and so vupsert upsert) will be refused with 422.",
            head="warning:",
            style="yellow",
        )


def queried(terminal: Terminal, result: QueryResult, *, out: IO[str] | None) -> None:
    """``vupsert query``'s hits on ``out`` (none with ``--json``): a table on a terminal,
    elsewhere one JSON object per hit (JSON Lines); an empty answer is said on stderr."""
    if out is None or result.error is not None:
        return
    if not result.hits:
        terminal.line(f"vupsert query: {no_match(result)}")
        return
    screen = Terminal(out)
    if screen.is_terminal:
        screen.print(hits_table(result, screen.console.width))
        return
    out.write(
        "".join(
            orjson.dumps(hit.as_dict(data=result.include_data)).decode() + "\n"
            for hit in result.hits
        )
    )
    out.flush()


def no_match(result: QueryResult) -> str:
    """Why a query found nothing, as far as ``/info`` tells: an empty namespace (the
    default one, when the records are in another), or a filter nothing matches."""
    where = f"namespace {result.namespace!r}" if result.namespace else "the default namespace"
    if result.stored == 0:
        others = ", ".join(repr(name) for name in result.namespaces if name)
        pick = f"; the index has {others} (pick one with {option('namespace')})" if others else ""
        return f"no match: {where} holds no records{pick}"
    if result.filter is not None:
        return f"no match: no record of {where} matches the filter"
    return f"no match in {where}"


def hits_table(result: QueryResult, width: int) -> Table:
    """A query's hits as a table ``width`` columns wide at most: id and score whole (an id
    too long for the width is folded, never cut), the metadata (as compact JSON, long
    strings cut) and the data (on one line) cut to fit."""
    from rich.cells import cell_len
    from rich.table import Table
    from rich.text import Text

    rows = [
        [
            _printable(hit.id),
            f"{hit.score:.4f}",
            compact(hit.metadata),
            *([_printable(" ".join((hit.data or "").split()))] if result.include_data else []),
        ]
        for hit in result.hits
    ]
    names = ["id", "score", "metadata", "data"][: 4 if result.include_data else 3]
    natural = [
        max(cell_len(text) for text in [name, *(row[i] for row in rows)])
        for i, name in enumerate(names)
    ]
    room = max(0, width - natural[0] - natural[1] - 2 * (len(names) - 1))
    limits = _shares(room, natural[2:], [len(name) for name in names[2:]])
    table = Table(box=None, padding=(0, 1), pad_edge=False, header_style="bold")
    table.add_column("id", overflow="fold")
    table.add_column("score", justify="right", no_wrap=True)
    for name, limit in zip(names[2:], limits, strict=True):
        table.add_column(name, no_wrap=True, overflow="ellipsis", max_width=limit)
    for row in rows:
        table.add_row(*(Text(cell) for cell in row))
    return table


def _shares(room: int, natural: list[int], least: list[int]) -> list[int]:
    """The widths of the metadata column (and the data column) in ``room``: each its own
    when both fit, else the metadata at least two fifths, the data the rest; neither
    narrower than ``least`` (its header)."""
    if sum(natural) <= room:
        return natural
    if len(natural) == 1:
        return [max(least[0], room)]
    metadata, data = natural
    shown = max(least[0], min(metadata, max(room * 2 // 5, room - data)))
    return [shown, max(least[1], room - shown)]


def compact(metadata: dict[str, Any] | None) -> str:
    """Metadata as compact JSON on one line, each string of it cut at :data:`SHOWN_VALUE`
    characters."""
    return orjson.dumps(_shortened(metadata)).decode() if metadata else ""


def _shortened(value: Any) -> Any:
    if isinstance(value, str) and len(value) > SHOWN_VALUE:
        return value[: SHOWN_VALUE - 1] + "…"
    if isinstance(value, dict):
        return {key: _shortened(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_shortened(item) for item in value]
    return value


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _printable(text: str) -> str:
    """``text`` with its control characters written as escapes: a stored id or text must
    not move a terminal's cursor."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
