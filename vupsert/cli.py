"""The command line: options -> settings -> core; exceptions -> messages and exit codes.

This is the only module that imports Typer. Set ``VUPSERT_RAISE_ERRORS=1`` to let
unexpected exceptions crash with a traceback (the tests do).
"""

# No "from __future__ import annotations": Typer would eval every annotation string at
# each start (0.01 s of CPU); real objects it reads as they are.

import dataclasses
import os
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any, BinaryIO, NoReturn, TextIO

import orjson
import typer

from . import settings
from ._malloc import tune_allocator
from ._version import __version__
from .api import prepare
from .connection import TOKEN_ENV, URL_ENV, check_url, find_connection, require_connection
from .display import ConsoleEvents, Terminal, describe_info
from .errors import ConfigError, ExitStatus, UsageError, VupsertError
from .settings import Settings, spelled_as_flags

if TYPE_CHECKING:
    from rich.console import Console

EXIT_CODES_HELP = """\
Exit codes: 0 every record upserted; 1 the run finished but some records were rejected
or failed; 2 usage or configuration error, nothing sent; 3 stopped by the server's answer
(bad token, no embedding model) or unreadable input; 130 interrupted.
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


@app.command(epilog=EXIT_CODES_HELP)
def upsert(
    files: Annotated[
        list[str] | None,
        typer.Argument(
            help="Input files, read in order as one stream; - or nothing reads stdin. "
            ".gz, .bz2 and .xz are decompressed.",
            show_default=False,
        ),
    ] = None,
    url: UrlOption = None,
    token: TokenOption = None,
    namespace: Annotated[
        str, typer.Option("-n", "--namespace", help="Namespace to upsert into.")
    ] = "",
    format: Annotated[
        str,
        typer.Option(
            "-f",
            "--format",
            help="auto|jsonl|csv|tsv. auto goes by extension; stdin is JSONL.",
            rich_help_panel="Reading",
        ),
    ] = "auto",
    id_field: Annotated[
        str,
        typer.Option(
            help="Field (dotted path in JSONL) or column holding the id.", rich_help_panel="Mapping"
        ),
    ] = "id",
    data_field: Annotated[
        str,
        typer.Option(help="Field or column holding the text to embed.", rich_help_panel="Mapping"),
    ] = "data",
    metadata_field: Annotated[
        str,
        typer.Option(help="JSONL field holding the metadata object.", rich_help_panel="Mapping"),
    ] = "metadata",
    metadata_columns: Annotated[
        str | None,
        typer.Option(
            help="CSV/TSV: only these columns (a,b,c) become metadata.", rich_help_panel="Mapping"
        ),
    ] = None,
    data_template: Annotated[
        str | None,
        typer.Option(
            help="Compose data from fields, e.g. '{title}\\n\\n{body}'.", rich_help_panel="Mapping"
        ),
    ] = None,
    id_template: Annotated[
        str | None,
        typer.Option(help="Compose the id from fields, e.g. 'doc-{n}'.", rich_help_panel="Mapping"),
    ] = None,
    id_from: Annotated[
        str,
        typer.Option(
            help="field: the id field; hash: a stable hash of data and metadata "
            "(reruns are idempotent); line: file:line.",
            rich_help_panel="Mapping",
        ),
    ] = "field",
    infer_types: Annotated[
        bool,
        typer.Option(
            "--infer-types/--no-infer-types",
            help="CSV/TSV: turn numbers and true/false in metadata cells into JSON types.",
            rich_help_panel="Mapping",
        ),
    ] = True,
    delimiter: Annotated[
        str | None,
        typer.Option(help="CSV/TSV delimiter (one character, or \\t).", rich_help_panel="Reading"),
    ] = None,
    columns: Annotated[
        str | None,
        typer.Option(
            help="CSV/TSV without a header: the column names, e.g. id,data,lang.",
            rich_help_panel="Reading",
        ),
    ] = None,
    shard: Annotated[
        str | None,
        typer.Option(
            help="K/N: load only the records whose id hashes to shard K of N.",
            rich_help_panel="Mapping",
        ),
    ] = None,
    batch_size: Annotated[
        int,
        typer.Option(
            "-b",
            "--batch-size",
            min=1,
            max=settings.MAX_BATCH_RECORDS,
            help="Records per request (Upstash's limit is 1000).",
            rich_help_panel="Sending",
        ),
    ] = settings.BATCH_SIZE,
    max_batch_bytes: Annotated[
        int, typer.Option(min=1024, help="Request body limit in bytes.", rich_help_panel="Sending")
    ] = settings.MAX_BATCH_BYTES,
    concurrency: Annotated[
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
    ] = settings.CONCURRENCY,
    timeout: Annotated[
        float,
        typer.Option(
            min=0.1, help="Seconds to wait for one request's answer.", rich_help_panel="Sending"
        ),
    ] = settings.TIMEOUT,
    retries: Annotated[
        int,
        typer.Option(
            min=0,
            help="Retries of a batch after a 5xx, a timeout or a network error; about 2.5 "
            "minutes of trying with the default backoff. 429s have their own budget.",
            rich_help_panel="Sending",
        ),
    ] = settings.RETRIES,
    max_backoff: Annotated[
        float,
        typer.Option(
            min=0.0, help="Longest wait between two retries, in seconds.", rich_help_panel="Sending"
        ),
    ] = settings.MAX_BACKOFF,
    rejects: Annotated[
        Path | None,
        typer.Option(
            help="Write every record not upserted here, one JSON line with its source and "
            "reason; the file can be fed back as input.",
            dir_okay=False,
            rich_help_panel="Results and recovery",
        ),
    ] = None,
    checkpoint: Annotated[
        Path | None,
        typer.Option(
            help="Remember what is settled here; rerunning the same command carries on.",
            dir_okay=False,
            rich_help_panel="Results and recovery",
        ),
    ] = None,
    restart: Annotated[
        bool,
        typer.Option(
            "--restart",
            help="Ignore what --checkpoint remembers and start over.",
            rich_help_panel="Results and recovery",
        ),
    ] = False,
    report: Annotated[
        Path | None,
        typer.Option(
            help="Write one JSON line per batch here.",
            dir_okay=False,
            rich_help_panel="Results and recovery",
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Read, map, validate and batch everything; send nothing.",
            rich_help_panel="Results and recovery",
        ),
    ] = False,
    strict: Annotated[
        bool,
        typer.Option(
            "--strict", help="Stop at the first bad record.", rich_help_panel="Results and recovery"
        ),
    ] = False,
    fail_fast: Annotated[
        bool,
        typer.Option(
            "--fail-fast",
            help="Stop at the first batch that fails for good.",
            rich_help_panel="Results and recovery",
        ),
    ] = False,
    preflight: Annotated[
        bool,
        typer.Option(
            "--preflight/--no-preflight",
            help="Check with /info that the index has an embedding model before sending.",
            rich_help_panel="Sending",
        ),
    ] = True,
    allow_insecure_http: Annotated[
        bool,
        typer.Option(
            "--allow-insecure-http",
            # Beside --url and --token, where the width is there to show its whole name.
            help="Allow sending the token over plain http to another host.",
        ),
    ] = False,
    json_out: JsonOption = False,
    quiet: Annotated[
        bool,
        typer.Option(
            "-q",
            "--quiet",
            help="No progress and no per-batch lines.",
            rich_help_panel="Results and recovery",
        ),
    ] = False,
    seed: Annotated[int | None, typer.Option(hidden=True)] = None,
) -> None:
    """Stream JSONL or CSV records into the index's /upsert-data endpoint, in batches.

    Every record ends up in the index or in --rejects with its file:line and the reason.
    Failed batches are retried (429, 5xx, network errors) or split to isolate the records
    the server refuses. Progress and per-batch errors go to stderr; --json prints the
    summary on stdout.
    """
    console = env.console()
    with user_errors(console):
        if "-" in (files or ["-"]):
            if env.stdin is None:
                raise UsageError(
                    "No input: stdin is closed, so - cannot be read.",
                    hint="Give one or more FILEs, or pipe records in: "
                    "jq -c '.[]' docs.json | vupsert upsert -n docs -",
                )
            if env.stdin.isatty():
                raise UsageError(
                    "No input: stdin is a terminal.",
                    hint="Give one or more FILEs, or pipe records in: "
                    "jq -c '.[]' docs.json | vupsert upsert -n docs",
                )
        run = prepare(
            files or ["-"],
            url=url,
            token=token,
            namespace=namespace,
            events=ConsoleEvents(console, quiet=quiet, rejects=str(rejects) if rejects else None),
            environ=env.environ,
            stdin=env.stdin,
            seed=seed,
            format=format,
            delimiter=delimiter,
            columns=columns,
            id_field=id_field,
            data_field=data_field,
            metadata_field=metadata_field,
            metadata_columns=metadata_columns,
            infer_types=infer_types,
            data_template=data_template,
            id_template=id_template,
            id_from=id_from,
            shard=shard,
            batch_size=batch_size,
            max_batch_bytes=max_batch_bytes,
            timeout=timeout,
            concurrency=concurrency,
            retries=retries,
            max_backoff=max_backoff,
            rejects=rejects,
            checkpoint=checkpoint,
            restart=restart,
            report=report,
            dry_run=dry_run,
            strict=strict,
            fail_fast=fail_fast,
            preflight=preflight,
            allow_insecure_http=allow_insecure_http,
        )
        with _signals(run.request_stop):
            summary = run.execute()
        if json_out:
            env.stdout.write(orjson.dumps(summary.as_dict()).decode() + "\n")
            env.stdout.flush()
        if summary.error is not None:
            fail(summary.error, console)
        if summary.interrupted and not quiet:
            console.line("interrupted: the checkpoint and summary are written.")
        raise typer.Exit(int(summary.exit_status))


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
    from .client import Client
    from .preflight import embedding_models

    console = env.console()
    with user_errors(console):
        the_url, the_token = find_connection(url, token, env.environ)
        require_connection(the_url, the_token)
        the_url = check_url(the_url, allow_insecure_http=True)
        with Client(the_url, the_token) as client:
            result = client.info()
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
    seed: Annotated[int | None, typer.Option(help="Seed for the fault injection.")] = None,
) -> None:
    """Run a local index that speaks Upstash Vector's REST API, for demos and tests.

    Prints the two `export` lines to point vupsert (or an SDK) at it, then serves until
    Ctrl-C. Dense, sparse and hybrid indexes; faults can be injected to test a client's
    retries and pacing.
    """
    from .server import ServerConfig, serve_forever

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
            seed=seed,
        )

        def announce(text: str) -> None:
            env.stdout.write(text.rstrip("\n") + "\n")
            env.stdout.flush()

        try:
            serve_forever(config, announce)
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
        if param.is_flag:
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
