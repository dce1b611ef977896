"""The command line: options -> settings -> core; exceptions -> messages and exit codes.

This is the only module that imports Typer. Set ``VUPSERT_RAISE_ERRORS=1`` to let
unexpected exceptions crash with a traceback (the tests do).
"""

# No "from __future__ import annotations": Typer would eval every annotation string at
# each start (0.01 s of CPU); real objects it reads as they are.

import contextlib
import dataclasses
import os
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any, BinaryIO, NoReturn, TextIO, TypeVar

import orjson
import typer

from .._version import __version__
from ..api import delete as delete_records
from ..api import export as export_records
from ..api import info as index_info
from ..api import prepare, prepare_sync
from ..api import verify as verify_records
from ..config import TOKEN_ENV, URL_ENV, settings, spelled_as_flags
from ..config.settings import Settings
from ..errors import CallerError, ConfigError, ExitStatus, UsageError, VupsertError
from ..ops import STDOUT_NAME
from ..outcomes import DeleteSummary, ExportSummary, Summary
from ._malloc import tune_allocator
from .display import (
    ConsoleEvents,
    Counter,
    Terminal,
    describe_info,
    interrupted_line,
    verify_line,
    verify_lines,
)

if TYPE_CHECKING:
    from rich.console import Console

EXIT_CODES_HELP = """\
Exit codes: 0 every record upserted; 1 the run finished but some records were rejected
or failed; 2 usage or configuration error, nothing sent; 3 stopped by the server's answer
(bad token, no embedding model, a quota used up), by unreadable input, or by an output
that cannot be written; 130 interrupted.
"""


def _closed() -> TextIO:
    # A stream closed by the caller (`>&-`) is None in Python: what would go there is
    # dropped, rather than crashing at the first write.
    return open(os.devnull, "w")


@dataclass
class Environment:
    """Where the CLI reads and writes; tests replace any part of it.

    ``stdin`` is ``None`` when the caller closed it (`<&-`): only reading ``-`` needs it.
    """

    stdin: BinaryIO | None = field(
        default_factory=lambda: sys.stdin.buffer if sys.stdin is not None else None
    )
    stdout: TextIO = field(default_factory=lambda: sys.stdout or _closed())
    stderr: TextIO = field(default_factory=lambda: sys.stderr or _closed())
    environ: dict[str, str] = field(default_factory=lambda: dict(os.environ))

    def console(self) -> Terminal:
        return Terminal(self.stderr)

    def out(self) -> "Console":
        from rich.console import Console

        return Console(file=self.stdout, highlight=False)


env = Environment()

app = typer.Typer(
    name="vupsert",
    help="Bulk-load JSONL/CSV text into an Upstash Vector index, in batches, without "
    "losing a record.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # Markdown joins a docstring's wrapped lines into paragraphs and rewraps them to the
    # terminal; "rich" keeps each source line end, leaving one-word lines at 80 columns.
    rich_markup_mode="markdown",
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        env.stdout.write(f"vupsert {__version__}\n")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    """Bulk-load JSONL/CSV text into an Upstash Vector index, in batches, without losing
    a record. Run `vupsert COMMAND --help` for each command."""


def fail(error: VupsertError, console: Terminal) -> NoReturn:
    if console.is_terminal:
        console.line(error.message, head="error:", style="bold red")
        if error.hint:
            console.line(error.hint)
    else:
        # In a log, the error and what to do about it are one event: one line.
        text = f"{error.message} {error.hint}" if error.hint else error.message
        console.line(text, head="error:")
    raise typer.Exit(int(error.exit_status))


@contextmanager
def user_errors(console: Terminal) -> Iterator[None]:
    """The one place where exceptions become what a user sees."""
    try:
        yield
    except VupsertError as error:
        fail(error, console)
    except (typer.Exit, typer.Abort):
        raise
    except KeyboardInterrupt:
        console.line("interrupted")
        raise typer.Exit(int(ExitStatus.INTERRUPTED)) from None
    except BrokenPipeError:
        # stdout's reader left (`vupsert export | head`): nothing more to say to it. The
        # rest goes nowhere, so that the interpreter's last flush cannot fail too.
        _stdout_to_devnull()
        raise typer.Exit(int(ExitStatus.PARTIAL)) from None
    except Exception as exc:
        if env.environ.get("VUPSERT_RAISE_ERRORS"):
            raise
        console.line(
            f"{type(exc).__name__}. This is a bug in vupsert; rerun with "
            "VUPSERT_RAISE_ERRORS=1 to see where, and report it.",
            head="internal error:",
            style="bold red",
        )
        raise typer.Exit(int(ExitStatus.STOPPED)) from None


# Options shared by commands that talk to an index.
UrlOption = Annotated[
    str | None,
    typer.Option("--url", help=f"REST URL of the index. Default: ${URL_ENV}.", show_default=False),
]
TokenOption = Annotated[
    str | None,
    typer.Option(
        "--token", help=f"REST token of the index. Default: ${TOKEN_ENV}.", show_default=False
    ),
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print the result as one JSON object on stdout.")
]

# The options of the commands that read records (upsert, sync, verify).
FilesArg = Annotated[
    list[str] | None,
    typer.Argument(
        help="Input files (JSON Lines, JSON arrays, CSV, TSV, Parquet), read in order "
        "as one stream; - or nothing reads stdin. .gz, .bz2 and .xz are decompressed.",
        show_default=False,
    ),
]

NamespaceOption = Annotated[
    str,
    typer.Option("-n", "--namespace", help="Namespace of the index (default: the default one)."),
]
SeedOption = Annotated[int | None, typer.Option(hidden=True)]
PrefixOption = Annotated[
    str | None,
    typer.Option(
        help="Only the ids that start with this: the scope the command keeps to.",
        show_default=False,
    ),
]

FormatOption = Annotated[
    str,
    typer.Option(
        "-f",
        "--format",
        help="auto|jsonl|json|csv|tsv|parquet. auto goes by extension; stdin is JSONL.",
        rich_help_panel="Reading",
    ),
]

IdFieldOption = Annotated[
    str,
    typer.Option(
        help="Field (dotted path in JSONL) or column holding the id.", rich_help_panel="Mapping"
    ),
]

DataFieldOption = Annotated[
    str,
    typer.Option(help="Field or column holding the text to embed.", rich_help_panel="Mapping"),
]

MetadataFieldOption = Annotated[
    str,
    typer.Option(
        help="Field holding a metadata object (a JSON object in CSV); its keys are merged "
        "with the other fields, which are metadata too.",
        rich_help_panel="Mapping",
    ),
]

MetadataColumnsOption = Annotated[
    str | None,
    typer.Option(
        metavar="A,B",
        help="Only these fields (columns, dotted paths, keys of the metadata object) become "
        "metadata, in every format. Default: every field but the id and the data.",
        show_default=False,
        rich_help_panel="Mapping",
    ),
]

DataTemplateOption = Annotated[
    str | None,
    typer.Option(
        help="Compose data from fields, e.g. '{title}\\n\\n{body}'; they stay metadata too.",
        rich_help_panel="Mapping",
    ),
]

IdTemplateOption = Annotated[
    str | None,
    typer.Option(help="Compose the id from fields, e.g. 'doc-{n}'.", rich_help_panel="Mapping"),
]

IdFromOption = Annotated[
    str,
    typer.Option(
        help="field: the id field; hash: a stable hash of data and metadata "
        "(reruns are idempotent); line: file:line.",
        rich_help_panel="Mapping",
    ),
]

InferTypesOption = Annotated[
    bool,
    typer.Option(
        "--infer-types/--no-infer-types",
        help="CSV/TSV: turn numbers and true/false in metadata cells into JSON types.",
        rich_help_panel="Mapping",
    ),
]

TypesOption = Annotated[
    list[str] | None,
    typer.Option(
        "--type",
        metavar="COLUMN=TYPE",
        help="CSV/TSV: make that metadata column's cells str, int, float, bool or json, "
        "whatever --infer-types says; repeat for more columns.",
        show_default=False,
        rich_help_panel="Mapping",
    ),
]

ChunkSizeOption = Annotated[
    int | None,
    typer.Option(
        metavar="N",
        help="Split each record's data into chunks of at most N characters (at "
        "paragraph, sentence or word ends), sent as ID#1, ID#2 ... with the record's "
        "metadata and, under 'chunk', where each came from.",
        show_default=False,
        rich_help_panel="Mapping",
    ),
]

ChunkOverlapOption = Annotated[
    int,
    typer.Option(
        metavar="M",
        help="Characters each chunk repeats from the end of the one before it.",
        rich_help_panel="Mapping",
    ),
]

DelimiterOption = Annotated[
    str | None,
    typer.Option(help="CSV/TSV delimiter (one character, or \\t).", rich_help_panel="Reading"),
]

ColumnsOption = Annotated[
    str | None,
    typer.Option(
        help="CSV/TSV without a header: the column names, e.g. id,data,lang.",
        rich_help_panel="Reading",
    ),
]

ShardOption = Annotated[
    str | None,
    typer.Option(
        help="K/N: load only the records whose id hashes to shard K of N.",
        rich_help_panel="Mapping",
    ),
]

BatchSizeOption = Annotated[
    int,
    typer.Option(
        "-b",
        "--batch-size",
        min=1,
        max=settings.MAX_BATCH_RECORDS,
        help="Records per request (Upstash's limit is 1000).",
        rich_help_panel="Sending",
    ),
]

MaxBatchBytesOption = Annotated[
    int, typer.Option(min=1024, help="Request body limit in bytes.", rich_help_panel="Sending")
]

ConcurrencyOption = Annotated[
    int,
    typer.Option(
        "-c",
        "--concurrency",
        min=1,
        max=settings.MAX_CONCURRENCY,
        help="Batches in flight, at most: fewer while the index answers slower, or "
        "with 429 or 5xx.",
        rich_help_panel="Sending",
    ),
]

TimeoutOption = Annotated[
    float,
    typer.Option(
        min=0.1, help="Seconds to wait for one request's answer.", rich_help_panel="Sending"
    ),
]

RetriesOption = Annotated[
    int,
    typer.Option(
        min=0,
        help="Retries of a batch after a 5xx, a timeout or a network error; about 2.5 "
        "minutes of trying with the default backoff. 429s are waited out (see "
        "--throttled-timeout).",
        rich_help_panel="Sending",
    ),
]

MaxBackoffOption = Annotated[
    float,
    typer.Option(
        min=0.0, help="Longest wait between two retries, in seconds.", rich_help_panel="Sending"
    ),
]

ThrottledTimeoutOption = Annotated[
    float,
    typer.Option(
        min=0.0,
        help="Seconds: stop (exit 3) once nothing has landed for this long and every answer "
        "is 429: the index's quota looks used up. A 429 that says so (Upstash's \"max daily "
        'updates limit exceeded") stops at once. What did not land is not settled, never '
        "rejected.",
        # Beside --url and --token, where the width is there to show its whole name.
    ),
]

RejectsOption = Annotated[
    Path | None,
    typer.Option(
        help="Write every record not upserted here, one JSON line with its source and "
        "reason; the file can be fed back as input.",
        dir_okay=False,
        rich_help_panel="Results and recovery",
    ),
]

CheckpointOption = Annotated[
    Path | None,
    typer.Option(
        help="Remember what is settled here; rerunning the same command carries on.",
        dir_okay=False,
        rich_help_panel="Results and recovery",
    ),
]

RestartOption = Annotated[
    bool,
    typer.Option(
        "--restart",
        help="Ignore what --checkpoint remembers and start over.",
        rich_help_panel="Results and recovery",
    ),
]

ReportOption = Annotated[
    Path | None,
    typer.Option(
        help="Write one JSON line per batch here.",
        dir_okay=False,
        rich_help_panel="Results and recovery",
    ),
]

DryRunOption = Annotated[
    bool,
    typer.Option(
        "--dry-run",
        help="Read, map, validate and batch everything; send nothing.",
        rich_help_panel="Results and recovery",
    ),
]

StrictOption = Annotated[
    bool,
    typer.Option(
        "--strict", help="Stop at the first bad record.", rich_help_panel="Results and recovery"
    ),
]

FailFastOption = Annotated[
    bool,
    typer.Option(
        "--fail-fast",
        help="Stop at the first batch that fails for good.",
        rich_help_panel="Results and recovery",
    ),
]

PreflightOption = Annotated[
    bool,
    typer.Option(
        "--preflight/--no-preflight",
        help="Check with /info that the index has an embedding model before sending.",
        rich_help_panel="Sending",
    ),
]

AllowInsecureHttpOption = Annotated[
    bool,
    typer.Option(
        "--allow-insecure-http",
        # Beside --url and --token, where the width is there to show its whole name.
        help="Allow sending the token over plain http to another host.",
    ),
]

QuietOption = Annotated[
    bool,
    typer.Option(
        "-q",
        "--quiet",
        help="No progress and no per-batch lines.",
        rich_help_panel="Results and recovery",
    ),
]


@app.command(epilog=EXIT_CODES_HELP)
def upsert(
    files: FilesArg = None,
    url: UrlOption = None,
    token: TokenOption = None,
    namespace: NamespaceOption = "",
    format: FormatOption = settings.FORMAT,
    id_field: IdFieldOption = settings.ID_FIELD,
    data_field: DataFieldOption = settings.DATA_FIELD,
    metadata_field: MetadataFieldOption = settings.METADATA_FIELD,
    metadata_columns: MetadataColumnsOption = None,
    data_template: DataTemplateOption = None,
    id_template: IdTemplateOption = None,
    id_from: IdFromOption = settings.ID_FROM,
    infer_types: InferTypesOption = settings.INFER_TYPES,
    types: TypesOption = None,
    chunk_size: ChunkSizeOption = None,
    chunk_overlap: ChunkOverlapOption = settings.CHUNK_OVERLAP,
    delimiter: DelimiterOption = None,
    columns: ColumnsOption = None,
    shard: ShardOption = None,
    batch_size: BatchSizeOption = settings.BATCH_SIZE,
    max_batch_bytes: MaxBatchBytesOption = settings.MAX_BATCH_BYTES,
    concurrency: ConcurrencyOption = settings.CONCURRENCY,
    timeout: TimeoutOption = settings.TIMEOUT,
    retries: RetriesOption = settings.RETRIES,
    max_backoff: MaxBackoffOption = settings.MAX_BACKOFF,
    throttled_timeout: ThrottledTimeoutOption = settings.THROTTLED_TIMEOUT,
    rejects: RejectsOption = None,
    checkpoint: CheckpointOption = None,
    restart: RestartOption = False,
    report: ReportOption = None,
    dry_run: DryRunOption = False,
    strict: StrictOption = False,
    fail_fast: FailFastOption = False,
    preflight: PreflightOption = True,
    allow_insecure_http: AllowInsecureHttpOption = False,
    json_out: JsonOption = False,
    quiet: QuietOption = False,
    seed: SeedOption = None,
) -> None:
    """Stream JSON Lines, JSON, CSV, TSV or Parquet records into the index's /upsert-data
    endpoint, in batches.

    Every record ends up in the index or in --rejects with its file:line and the reason.
    Failed batches are retried (429, 5xx, network errors) or split to isolate the records
    the server refuses. Progress and per-batch errors go to stderr; --json prints the
    summary on stdout.
    """
    options = dict(locals())
    console = env.console()
    with user_errors(console):
        _check_stdin(files, "upsert")
        run = prepare(
            files or ["-"],
            url=url,
            token=token,
            namespace=namespace,
            events=ConsoleEvents(console, quiet=quiet, rejects=str(rejects) if rejects else None),
            environ=env.environ,
            stdin=env.stdin,
            seed=seed,
            **_run_options(options),
        )
        with _signals(run.request_stop):
            summary = run.execute()
        _finish(summary, console, json_out=json_out, quiet=quiet)


def _run_options(values: dict[str, Any]) -> dict[str, Any]:
    """The command's parameters that are options of a run (the library checks them)."""
    return {name: value for name, value in values.items() if name in settings.OPTIONS}


def _check_stdin(files: list[str] | None, command: str) -> None:
    """Refuse to read records from a closed stdin or a terminal."""
    if "-" not in (files or ["-"]):
        return
    if env.stdin is None:
        raise UsageError(
            "No input: stdin is closed, so - cannot be read.",
            hint="Give one or more FILEs, or pipe records in: "
            f"jq -c '.[]' docs.json | vupsert {command} -n docs -",
        )
    if env.stdin.isatty():
        raise UsageError(
            "No input: stdin is a terminal.",
            hint="Give one or more FILEs, or pipe records in: "
            f"jq -c '.[]' docs.json | vupsert {command} -n docs",
        )


def _print_json(document: dict[str, Any]) -> None:
    env.stdout.write(orjson.dumps(document).decode() + "\n")
    env.stdout.flush()


def _finish(summary: Summary, console: Terminal, *, json_out: bool, quiet: bool) -> NoReturn:
    if json_out:
        _print_json(summary.as_dict())
    if isinstance(summary.error, CallerError):
        raise summary.error.raised  # the display failed: a bug, shown as one
    if summary.error is not None:
        fail(summary.error, console)
    if summary.interrupted and not quiet:
        console.line(interrupted_line(summary))
    raise typer.Exit(int(summary.exit_status))


@app.command(epilog=EXIT_CODES_HELP)
def sync(
    files: FilesArg = None,
    url: UrlOption = None,
    token: TokenOption = None,
    namespace: NamespaceOption = "",
    prefix: PrefixOption = None,
    max_delete: Annotated[
        str | None,
        typer.Option(
            help="Delete at most this many stored records (N, or P% of what the scope "
            "holds); more refuses every deletion with exit 1. Default: 50%.",
            show_default=False,
        ),
    ] = None,
    format: FormatOption = settings.FORMAT,
    id_field: IdFieldOption = settings.ID_FIELD,
    data_field: DataFieldOption = settings.DATA_FIELD,
    metadata_field: MetadataFieldOption = settings.METADATA_FIELD,
    metadata_columns: MetadataColumnsOption = None,
    data_template: DataTemplateOption = None,
    id_template: IdTemplateOption = None,
    id_from: IdFromOption = settings.ID_FROM,
    infer_types: InferTypesOption = settings.INFER_TYPES,
    types: TypesOption = None,
    chunk_size: ChunkSizeOption = None,
    chunk_overlap: ChunkOverlapOption = settings.CHUNK_OVERLAP,
    delimiter: DelimiterOption = None,
    columns: ColumnsOption = None,
    batch_size: BatchSizeOption = settings.BATCH_SIZE,
    max_batch_bytes: MaxBatchBytesOption = settings.MAX_BATCH_BYTES,
    concurrency: ConcurrencyOption = settings.CONCURRENCY,
    timeout: TimeoutOption = settings.TIMEOUT,
    retries: RetriesOption = settings.RETRIES,
    max_backoff: MaxBackoffOption = settings.MAX_BACKOFF,
    throttled_timeout: ThrottledTimeoutOption = settings.THROTTLED_TIMEOUT,
    rejects: RejectsOption = None,
    report: ReportOption = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Read the index and the source, send and delete nothing, and report what "
            "would be.",
            rich_help_panel="Results and recovery",
        ),
    ] = False,
    strict: StrictOption = False,
    fail_fast: FailFastOption = False,
    preflight: PreflightOption = True,
    allow_insecure_http: AllowInsecureHttpOption = False,
    json_out: JsonOption = False,
    quiet: QuietOption = False,
    seed: SeedOption = None,
) -> None:
    """Make the namespace hold exactly the source's records, and nothing else.

    One scan learns what the namespace (or, with --prefix, the ids that start with it)
    holds. Records the index holds as they are are not sent again; new and changed ones
    are upserted as `vupsert upsert` does; then the stored records the source no longer
    holds are deleted, at most --max-delete of them. --json adds records_new,
    records_changed, records_unchanged and records_deleted to upsert's keys.
    """
    options = dict(locals())
    console = env.console()
    with user_errors(console):
        _check_stdin(files, "sync")
        run = prepare_sync(
            files or ["-"],
            url=url,
            token=token,
            namespace=namespace,
            prefix=prefix,
            max_delete=max_delete,
            events=ConsoleEvents(console, quiet=quiet, rejects=str(rejects) if rejects else None),
            environ=env.environ,
            stdin=env.stdin,
            seed=seed,
            **_run_options(options),
        )
        with _signals(run.request_stop):
            summary = run.execute()
        _finish(summary, console, json_out=json_out, quiet=quiet)


@app.command()
def export(
    url: UrlOption = None,
    token: TokenOption = None,
    namespace: NamespaceOption = "",
    prefix: PrefixOption = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "-o",
            "--output",
            help="Write here (.gz compresses): a file is replaced only by a whole export, a "
            "pipe or a device is written through. Default (or -): stdout.",
            dir_okay=False,
            show_default=False,
        ),
    ] = None,
    timeout: TimeoutOption = settings.TIMEOUT,
    retries: RetriesOption = settings.RETRIES,
    max_backoff: MaxBackoffOption = settings.MAX_BACKOFF,
    throttled_timeout: ThrottledTimeoutOption = settings.THROTTLED_TIMEOUT,
    allow_insecure_http: AllowInsecureHttpOption = False,
    json_out: Annotated[
        bool,
        typer.Option("--json", help="With --output: print the summary as JSON on stdout."),
    ] = False,
    quiet: QuietOption = False,
) -> None:
    """Write the namespace as JSON Lines {id, data, metadata}: a backup, a migration.

    `vupsert upsert` of the file into another namespace or index loads the same records.
    Progress goes to stderr, against the namespace's count from /info.
    """
    console = env.console()
    with user_errors(console):
        to_stdout = output is None or str(output) == "-"
        if json_out and to_stdout:
            raise UsageError(
                "--json needs --output: without it the records themselves go to stdout.",
            )
        counter = Counter(console, "exported", quiet=quiet)
        summary = _settled(
            export_records,
            output=_StdoutBytes(env.stdout) if to_stdout else output,
            url=url,
            token=token,
            namespace=namespace,
            prefix=prefix,
            progress=counter,
            environ=env.environ,
            timeout=timeout,
            retries=retries,
            max_backoff=max_backoff,
            throttled_timeout=throttled_timeout,
            allow_insecure_http=allow_insecure_http,
        )
        counter.done()
        _warn(summary.warnings, console, quiet=quiet)
        if summary.records_without_data:
            console.line(
                f"{summary.records_without_data:,} records have no data (they were upserted "
                "as vectors, not text): they are exported without it, and upsert-data "
                "cannot load them back.",
                head="warning:",
                style="yellow",
            )
        if not quiet or summary.error is not None:
            where = "" if to_stdout else f" to {output}"
            console.line(
                f"vupsert export: {summary.records_exported:,} records{where} in "
                f"{summary.elapsed_s:,.1f} s"
            )
        if json_out:
            _print_json(summary.as_dict())
        if summary.error is not None:
            fail(summary.error, console)


class _StdoutBytes:
    """stdout, written to as bytes (the records are UTF-8 JSON)."""

    name = STDOUT_NAME

    def __init__(self, stream: TextIO) -> None:
        self._buffer: BinaryIO | None = getattr(stream, "buffer", None)
        self._stream = stream

    def write(self, data: bytes) -> int:
        with _dropped_on_error():
            if self._buffer is not None:
                return self._buffer.write(data)
            return self._stream.write(data.decode())

    def flush(self) -> None:
        with _dropped_on_error():
            (self._buffer or self._stream).flush()


@contextmanager
def _dropped_on_error() -> Iterator[None]:
    """A write to stdout that failed (a full disk) failed for good: what is still buffered
    goes nowhere, so that the interpreter's last flush cannot fail again."""
    try:
        yield
    except OSError:
        _stdout_to_devnull()
        raise


def _stdout_to_devnull() -> None:
    with contextlib.suppress(OSError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


@app.command()
def verify(
    files: FilesArg = None,
    url: UrlOption = None,
    token: TokenOption = None,
    namespace: NamespaceOption = "",
    format: FormatOption = settings.FORMAT,
    id_field: IdFieldOption = settings.ID_FIELD,
    data_field: DataFieldOption = settings.DATA_FIELD,
    metadata_field: MetadataFieldOption = settings.METADATA_FIELD,
    metadata_columns: MetadataColumnsOption = None,
    data_template: DataTemplateOption = None,
    id_template: IdTemplateOption = None,
    id_from: IdFromOption = settings.ID_FROM,
    infer_types: InferTypesOption = settings.INFER_TYPES,
    types: TypesOption = None,
    chunk_size: ChunkSizeOption = None,
    chunk_overlap: ChunkOverlapOption = settings.CHUNK_OVERLAP,
    delimiter: DelimiterOption = None,
    columns: ColumnsOption = None,
    timeout: TimeoutOption = settings.TIMEOUT,
    retries: RetriesOption = settings.RETRIES,
    max_backoff: MaxBackoffOption = settings.MAX_BACKOFF,
    throttled_timeout: ThrottledTimeoutOption = settings.THROTTLED_TIMEOUT,
    allow_insecure_http: AllowInsecureHttpOption = False,
    exact: Annotated[
        bool,
        typer.Option(
            "--exact",
            help="Records the namespace holds that the source does not are a difference "
            "too (exit 1): the index holds exactly the source.",
        ),
    ] = False,
    json_out: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Check that the index holds the source's records as they are: the check a CI job
    runs after a load.

    Reads the source as `vupsert upsert` does (same mapping options), fetches its ids back
    in batches and compares data and metadata. Names the first records that are missing
    or different, with their file:line, and counts those the namespace holds beyond the
    source (records_extra). Exit 0 when every record matches, 1 otherwise (with --exact,
    also when the namespace holds more).
    """
    options = dict(locals())
    console = env.console()
    with user_errors(console):
        _check_stdin(files, "verify")
        summary = verify_records(
            files or ["-"],
            url=url,
            token=token,
            namespace=namespace,
            exact=exact,
            environ=env.environ,
            stdin=env.stdin,
            **_run_options(options),
        )
        _warn(summary.warnings, console, quiet=quiet)
        for line in verify_lines(summary):
            console.line(line)
        if not quiet or summary.exit_status:
            console.line(verify_line(summary))
        if json_out:
            _print_json(summary.as_dict())
        raise typer.Exit(int(summary.exit_status))


@app.command()
def delete(
    url: UrlOption = None,
    token: TokenOption = None,
    namespace: NamespaceOption = "",
    ids: Annotated[
        str | None,
        typer.Option(
            help="A file (or -) of ids, one a line and each as written, or of JSON Lines, "
            "JSON array, CSV, TSV or Parquet records whose id field is used: a rejects file "
            "or an export works.",
            show_default=False,
        ),
    ] = None,
    prefix: Annotated[
        str | None,
        typer.Option(help="Delete every record whose id starts with this.", show_default=False),
    ] = None,
    filter: Annotated[
        str | None,
        typer.Option(
            help="Delete every record whose metadata matches this filter, e.g. "
            "\"genre = 'drama'\".",
            show_default=False,
        ),
    ] = None,
    id_field: Annotated[
        str, typer.Option(help="With --ids: the field or column holding the id.")
    ] = settings.ID_FIELD,
    format: Annotated[
        str,
        typer.Option(
            "-f",
            "--format",
            help="How --ids is read: auto|text|jsonl|json|csv|tsv|parquet. auto goes by "
            "extension, else by the first line: JSON Lines if it opens an object, a JSON "
            "array if it opens one, text (one id a line) otherwise.",
        ),
    ] = settings.IDS_FORMAT,
    yes: Annotated[
        bool,
        typer.Option("--yes", "-y", help="Do not ask before deleting by --prefix or --filter."),
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Delete nothing; count what would be deleted.")
    ] = False,
    timeout: TimeoutOption = settings.TIMEOUT,
    retries: RetriesOption = settings.RETRIES,
    max_backoff: MaxBackoffOption = settings.MAX_BACKOFF,
    throttled_timeout: ThrottledTimeoutOption = settings.THROTTLED_TIMEOUT,
    allow_insecure_http: AllowInsecureHttpOption = False,
    json_out: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Delete records from the namespace: by --ids, --prefix or --filter.

    Ids go 1,000 to a request, with the retries and pacing upserts have; each batch is
    fetched first, so the count is the records the index held. --prefix and --filter
    delete what they match, so they ask first (or take --yes).
    """
    console = env.console()
    with user_errors(console):
        source: Any = ids
        if ids == "-":
            if env.stdin is None or env.stdin.isatty():
                raise UsageError("--ids -: pipe the ids in, one a line.")
            source = env.stdin
        what = (
            f"every record whose id starts with {prefix!r}"
            if prefix is not None
            else f"every record that matches {filter!r}"
        )
        if (prefix is not None or filter is not None) and not (yes or dry_run):
            if env.stdin is None or not env.stdin.isatty():
                raise UsageError(
                    f"This deletes {what} from namespace {namespace!r}: pass --yes to "
                    "confirm (or --dry-run to count them first).",
                )
            if not typer.confirm(f"Delete {what} from namespace {namespace!r}?", err=True):
                raise typer.Exit(int(ExitStatus.USAGE))
        summary = _settled(
            delete_records,
            ids=source,
            prefix=prefix,
            filter=filter,
            url=url,
            token=token,
            namespace=namespace,
            id_field=id_field,
            format=format,
            dry_run=dry_run,
            environ=env.environ,
            timeout=timeout,
            retries=retries,
            max_backoff=max_backoff,
            throttled_timeout=throttled_timeout,
            allow_insecure_http=allow_insecure_http,
        )
        _warn(summary.warnings, console, quiet=quiet)
        if summary.lines_without_id:
            console.line(_skipped_line(summary), head="warning:", style="yellow")
        if not quiet or summary.count_uncertain or summary.error is not None:
            console.line(_delete_line(summary))
        if json_out:
            _print_json(summary.as_dict())
        if summary.error is not None:
            fail(summary.error, console)
        raise typer.Exit(int(summary.exit_status))


def _warn(warnings: list[str], console: Terminal, *, quiet: bool) -> None:
    if not quiet:
        for warning in warnings:
            console.line(warning, head="warning:", style="yellow")


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


_S = TypeVar("_S", DeleteSummary, ExportSummary)


def _settled(run: Callable[..., _S], **options: Any) -> _S:
    """What ``run(**options)`` returns, or the summary its error carries, with the error
    on it: every exit prints its summary."""
    try:
        return run(**options)
    except VupsertError as error:
        if error.summary is None:
            raise
        summary: _S = error.summary
        summary.error = error
        return summary


@contextmanager
def _signals(stop: Callable[[], None]) -> Iterator[None]:
    """Ctrl-C and SIGTERM ask the run to stop; a second Ctrl-C abandons what is in flight."""
    if sys.platform == "win32" or not _main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        stop()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


@app.command()
def info(url: UrlOption = None, token: TokenOption = None, json_out: JsonOption = False) -> None:
    """Show the index: dimension, similarity, embedding model, vectors per namespace.

    Warns when the index has no embedding model (then upsert-data cannot work).
    Exit 3 when the index cannot be reached or refuses the token.
    """
    from ..run import embedding_models

    console = env.console()
    with user_errors(console):
        result = index_info(url=url, token=token, environ=env.environ, allow_insecure_http=True)
        if json_out:
            env.stdout.write(orjson.dumps(result).decode() + "\n")
        else:
            env.out().print(describe_info(result))
        lacking = [part for part, model in embedding_models(result).items() if not model]
        if lacking:
            console.line(
                f"this index has no embedding model for its {' and '.join(lacking)} part: "
                "upsert-data (and so vupsert upsert) will be refused with 422.",
                head="warning:",
                style="yellow",
            )


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on (0 picks a free one).")] = 8787,
    token: Annotated[
        str | None,
        typer.Option(
            help="Token clients must send. Default: a new random one.", show_default=False
        ),
    ] = None,
    readonly_token: Annotated[
        str | None,
        typer.Option(
            help="A second token that reads (query, fetch, range, info) and gets 403 on "
            "every write, to test a client's read-only path.",
            show_default=False,
        ),
    ] = None,
    db: Annotated[
        Path | None,
        typer.Option(
            help="SQLite file to keep the index in. Default: in memory, which takes about "
            "2.3 GB per million records of 384 dimensions and 300 characters of text "
            "(measured).",
            show_default=False,
        ),
    ] = None,
    index_type: Annotated[
        str,
        typer.Option(
            help="dense, sparse (sparseVector) or hybrid (both on every record).",
        ),
    ] = "dense",
    dimension: Annotated[int, typer.Option(min=1, help="Dense vector dimension.")] = 384,
    similarity: Annotated[
        str, typer.Option(help="COSINE, EUCLIDEAN or DOT_PRODUCT, for dense vectors.")
    ] = "COSINE",
    embedding: Annotated[
        bool,
        typer.Option(
            "--embedding/--no-embedding",
            help="--no-embedding turns every model off (hashed n-grams for dense vectors, "
            "hashed BM25 for sparse ones): upsert-data answers 422.",
        ),
    ] = True,
    max_body_mb: Annotated[
        int, typer.Option(min=1, help="A larger request body is answered 413 unread.")
    ] = 64,
    read_timeout: Annotated[
        float,
        typer.Option(
            min=0.001,
            help="Seconds a client may take to send a request, or stay idle between two, "
            "before its connection is closed.",
        ),
    ] = 30.0,
    max_connections: Annotated[
        int,
        typer.Option(min=1, help="Connections served at once; more wait until one closes."),
    ] = 256,
    latency_ms: Annotated[float, typer.Option(help="Added to every write.")] = 0.0,
    latency_per_record_ms: Annotated[
        float, typer.Option(help="Added per record of a write (embedding cost).")
    ] = 0.0,
    capacity: Annotated[
        int,
        typer.Option(
            min=0,
            help="Writes in flight the server takes at full speed: a write arriving with "
            "k > capacity writes in flight (itself included) waits its latency times "
            "k / capacity, so piling on gets slower answers, not more throughput. Needs a "
            "latency.",
        ),
    ] = 0,
    fail_rate: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Share of writes answered 500/502/503.")
    ] = 0.0,
    rate_limit: Annotated[
        float, typer.Option(min=0.0, help="Writes per second; beyond it 429 with Retry-After.")
    ] = 0.0,
    rate_limiter: Annotated[
        str,
        typer.Option(
            help="bucket: a token bucket holding one second of writes, refilled "
            "continuously; sliding: at most --rate-limit writes in any one second, which "
            "refuses bursts a bucket lets through.",
        ),
    ] = "bucket",
    drop_rate: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Share of writes whose connection is dropped.")
    ] = 0.0,
    refuse_matching: Annotated[
        str | None,
        typer.Option(help="Refuse (400) a request holding a record whose data contains this."),
    ] = None,
    faulty_reads: Annotated[
        bool,
        typer.Option(
            "--faulty-reads",
            help="fetch and range meet the rate limit, --daily-quota, --fail-rate and "
            "--drop-rate too.",
        ),
    ] = False,
    daily_quota: Annotated[
        int,
        typer.Option(
            min=0,
            metavar="N",
            help='After N upserted vectors, every write answers 429 "ERR max daily updates '
            "limit exceeded\" with no Retry-After, as Upstash does once a plan's daily "
            "updates are used up (the free plan's: 10,000). 0: no quota.",
        ),
    ] = 0,
    seed: Annotated[int | None, typer.Option(help="Seed for the fault injection.")] = None,
    log_requests: Annotated[
        bool,
        typer.Option(
            "--log-requests",
            help="Print a line per request on stderr: time, method, path, status, records, "
            "milliseconds (never the token or a body).",
        ),
    ] = False,
    json_log: Annotated[
        bool,
        typer.Option("--json", help="The request log as one JSON object per line."),
    ] = False,
) -> None:
    """Run a local index that speaks Upstash Vector's REST API, for demos and tests.

    Prints the two `export` lines to point vupsert (or an SDK) at it, then serves until
    Ctrl-C. Dense, sparse and hybrid indexes; faults can be injected to test a client's
    retries and pacing.
    """
    from vupsert_server import ServerConfig, ServerConfigError, serve_forever

    console = env.console()
    with user_errors(console):
        choices = {
            "--index-type": (index_type, ("dense", "sparse", "hybrid")),
            "--similarity": (similarity, ("COSINE", "EUCLIDEAN", "DOT_PRODUCT")),
            "--rate-limiter": (rate_limiter, ("bucket", "sliding")),
        }
        for flag, (value, allowed) in choices.items():
            if value not in allowed:
                raise UsageError(f"{flag} {value!r}: use {', '.join(allowed)}.")
        if capacity and not (latency_ms or latency_per_record_ms):
            raise UsageError(
                "--capacity multiplies the latency of writes, and there is none.",
                hint="Add --latency-ms or --latency-per-record-ms.",
            )

        def announce(text: str) -> None:
            env.stdout.write(text.rstrip("\n") + "\n")
            env.stdout.flush()

        def log(line: str) -> None:
            env.stderr.write(line)
            env.stderr.flush()

        try:
            config = ServerConfig(
                host=host,
                port=port,
                token=token,
                readonly_token=readonly_token,
                db=str(db) if db else None,
                index_type=index_type,  # type: ignore[arg-type]
                dimension=dimension,
                similarity=similarity,  # type: ignore[arg-type]
                embedding=embedding,
                max_body_bytes=max_body_mb * 1024 * 1024,
                read_timeout=read_timeout,
                max_connections=max_connections,
                latency_ms=latency_ms,
                latency_per_record_ms=latency_per_record_ms,
                capacity=capacity,
                fail_rate=fail_rate,
                rate_limit=rate_limit,
                rate_limiter=rate_limiter,  # type: ignore[arg-type]
                drop_rate=drop_rate,
                refuse_matching=refuse_matching,
                faulty_reads=faulty_reads,
                daily_quota=daily_quota,
                seed=seed,
            )
            if log_requests or json_log:  # otherwise ServerConfig's default
                config = dataclasses.replace(config, request_log="json" if json_log else "text")
            serve_forever(config, announce, log=log)
        except ServerConfigError as exc:
            raise ConfigError(exc.message, hint=exc.hint) from None
        except OSError as exc:
            raise ConfigError(
                f"Cannot listen on {host}:{port}: {exc.strerror}.",
                hint="Pick another --port (0 picks a free one).",
            ) from None


@app.command()
def demo(
    samples: Annotated[
        Path, typer.Argument(help="Folder holding articles.jsonl and products.csv.")
    ] = Path("samples"),
) -> None:
    """Load the bundled samples into a local index, then query it: no account needed.

    Starts the same local server as `vupsert serve` on a free port, runs the same
    pipeline as `vupsert upsert` on samples/articles.jsonl and samples/products.csv,
    shows what the index holds and the best matches of a question.
    """
    from .demo import run_demo

    console = env.console()
    with user_errors(console):
        status = run_demo(samples, console, env.out(), describe=upsert_command)
        raise typer.Exit(int(status))


def upsert_command(settings: Settings) -> str:
    """The ``vupsert upsert`` command line that runs ``settings``, with the options that
    differ from the defaults (the URL and token are left to the environment): what the
    demo prints for each of its runs."""
    import shlex

    values: dict[str, object] = {
        f.name: getattr(settings, f.name)
        for f in dataclasses.fields(settings)
        if f.name not in ("url", "token", "inputs", "read", "mapping")
    }
    values.update(vars(settings.mapping))
    values.update(
        format=settings.read.format,
        delimiter=settings.read.delimiter,
        columns=settings.read.columns,
    )
    if settings.mapping.shard is not None:
        values["shard"] = "{}/{}".format(*settings.mapping.shard)
    values["types"] = [f"{k}={v}" for k, v in settings.mapping.types] or None
    if values["delimiter"] == "\t":
        values["delimiter"] = "\\t"
    command = typer.main.get_command(app)
    params = command.commands["upsert"].params  # type: ignore[attr-defined]
    argv = ["vupsert", "upsert", *settings.inputs]
    for param in params:
        if param.name not in values or param.name in ("files",):
            continue
        value = values[param.name]
        if isinstance(value, tuple):
            value = ",".join(value)
        if isinstance(value, Path):
            value = str(value)
        if value == param.default:
            continue
        if isinstance(value, list):
            for item in value:
                argv += [param.opts[0], item]
        elif param.is_flag:
            argv.append(param.opts[0] if value else param.secondary_opts[0])
        else:
            argv += [param.opts[0], str(value)]
    return shlex.join(argv)


def main(argv: list[str] | None = None, environment: Environment | None = None) -> Any:
    """Entry point of the ``vupsert`` script and ``python -m vupsert``."""
    global env
    env = environment or Environment()
    tune_allocator()
    with spelled_as_flags():
        return app(args=argv, prog_name="vupsert")
