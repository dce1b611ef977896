"""The commands: each takes its options (:mod:`.options`), makes one call of the library
(:mod:`vupsert.api`) and returns what it did; the frame every command runs in
(:mod:`.errors`) shows the result or the error and sets the exit status.

This package is the only one that imports Typer.
"""

# No "from __future__ import annotations": Typer would eval every annotation string at
# each start (0.01 s of CPU); real objects it reads as they are.

import contextvars
import dataclasses
import shlex
import signal
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Annotated, Any, NoReturn, cast

import typer
from typer.main import get_command

from .._version import __version__
from ..api import delete as delete_records
from ..api import export as export_records
from ..api import info as index_info
from ..api import prepare, prepare_sync
from ..api import query as query_records
from ..api import verify as verify_records
from ..config import Endpoint, settings, shown_url, spelled_as_flags
from ..config.settings import IdsFormat, Settings
from ..errors import ExitStatus, UsageError
from ..ops import STDOUT_NAME
from ..outcomes import (
    DeleteSummary,
    ExportSummary,
    QueryResult,
    Summary,
    SyncSummary,
    VerifySummary,
)
from ._malloc import tune_allocator
from .display import (
    ConsoleEvents,
    Counter,
    Terminal,
    deleted,
    described,
    exported,
    plural,
    queried,
    verified,
)
from .environment import Environment
from .errors import framed, run, settled
from .help import Command, Group
from .options import (
    Connection,
    DeleteDryRun,
    DeletePrefix,
    DryRun,
    Exact,
    ExportJson,
    Files,
    Filter,
    IdField,
    Ids,
    IdsEncoding,
    IdsFormatOption,
    IncludeData,
    Json,
    Load,
    MaxDelete,
    Output,
    Prefix,
    QueryFilter,
    QueryText,
    Quiet,
    Records,
    Resume,
    Samples,
    Seed,
    SyncDryRun,
    Target,
    Token,
    TopK,
    Url,
    Yes,
)

__all__ = ["Environment", "app", "main", "upsert_command"]

COMMANDS = ("upsert", "sync", "export", "verify", "delete", "info", "query", "serve", "demo")
"""In the order ``vupsert --help`` lists them."""
EXIT_CODES_HELP = """\
Exit codes: 0 every record upserted; 1 the run finished but some records were rejected
or failed; 2 usage or configuration error, nothing sent; 3 stopped by the server's answer
(bad token, no embedding model, a quota used up), by unreadable input, or by an output
that cannot be written; 4 (sync) the --max-delete guard refused to delete, and nothing was
deleted; 130 interrupted.
"""


class Commands(Group):
    """vupsert's commands. ``serve`` is made when it is asked for: its options come from
    the local server's config, which would cost every other command 35 ms to import."""

    def list_commands(self, ctx: Any) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: Any, name: str) -> Any:
        if name == "serve" and name not in self.commands:
            from .serve import serve

            alone = typer.Typer(add_completion=False)
            alone.command(cls=Command)(framed(serve))
            self.commands[name] = get_command(alone)
        return super().get_command(ctx, name)


app = typer.Typer(
    name="vupsert",
    cls=Commands,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def command(**options: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Makes a function a command of vupsert, run in the frame (:func:`.errors.framed`)."""

    def register(function: Callable[..., Any]) -> Callable[..., Any]:
        app.command(cls=Command, **options)(framed(function))
        return function

    return register


def _version(ctx: typer.Context, value: bool) -> None:
    if value:
        ctx.obj.stdout.write(f"vupsert {__version__}\n")
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


@command(epilog=EXIT_CODES_HELP)
def upsert(
    env: Environment,
    files: Files = None,
    *,
    target: Target,
    load: Load,
    resume: Resume,
    dry_run: DryRun = False,
    json_out: Json = False,
    quiet: Quiet = False,
    seed: Seed = None,
) -> Summary:
    """Stream JSON Lines, JSON, CSV, TSV or Parquet records into the index's /upsert-data
    endpoint, in batches.

    Every record ends up in the index or in --rejects with its file:line and the reason.
    Failed batches are retried (429, 5xx, network errors) or split to isolate the records
    the server refuses. Progress and per-batch errors go to stderr; --json prints the
    summary on stdout.
    """
    run = prepare(
        _inputs(env, files, "upsert"),
        **target.keywords(),
        **load.keywords(),
        **resume.keywords(),
        dry_run=dry_run,
        events=_events(env, load, quiet=quiet),
        environ=env.environ,
        stdin=env.stdin,
        seed=seed,
    )
    with _signals(run.request_stop):
        return run.execute()


@command(epilog=EXIT_CODES_HELP)
def sync(
    env: Environment,
    files: Files = None,
    *,
    target: Target,
    prefix: Prefix = None,
    max_delete: MaxDelete = None,
    load: Load,
    dry_run: SyncDryRun = False,
    json_out: Json = False,
    quiet: Quiet = False,
    seed: Seed = None,
) -> SyncSummary:
    """Make the namespace hold exactly the source's records, and nothing else.

    One scan learns what the namespace (or, with --prefix, the ids that start with it)
    holds. Records the index holds as they are are not sent again; new and changed ones
    are upserted as `vupsert upsert` does; then the stored records the source no longer
    holds are deleted, at most --max-delete of them. --json adds records_new,
    records_changed, records_unchanged and records_deleted to upsert's keys.
    """
    run = prepare_sync(
        _inputs(env, files, "sync"),
        **target.keywords(),
        prefix=prefix,
        max_delete=max_delete,
        **load.keywords(),
        dry_run=dry_run,
        events=_events(env, load, quiet=quiet),
        environ=env.environ,
        stdin=env.stdin,
        seed=seed,
    )
    with _signals(run.request_stop):
        return run.execute()


@command()
def export(
    env: Environment,
    *,
    target: Target,
    prefix: Prefix = None,
    output: Output = None,
    connection: Connection,
    json_out: ExportJson = False,
    quiet: Quiet = False,
) -> ExportSummary:
    """Write the namespace as JSON Lines {id, data, metadata}: a backup, a migration.

    `vupsert upsert` of the file into another namespace or index loads the same records.
    Progress goes to stderr, against the namespace's count from /info.
    """
    to_stdout = output is None or str(output) == "-"
    if json_out and to_stdout:
        raise UsageError("--json needs --output: without it the records themselves go to stdout.")
    counter = Counter(Terminal(env.stderr), "exported", quiet=quiet)
    summary = settled(
        export_records,
        env.stdout_bytes(STDOUT_NAME) if to_stdout or output is None else output,
        **target.keywords(),
        prefix=prefix,
        progress=counter,
        environ=env.environ,
        **connection.keywords(),
    )
    counter.done()
    exported(Terminal(env.stderr), summary, quiet=quiet)
    return summary


@command()
def verify(
    env: Environment,
    files: Files = None,
    *,
    target: Target,
    records: Records,
    connection: Connection,
    exact: Exact = False,
    json_out: Json = False,
    quiet: Quiet = False,
) -> VerifySummary:
    """Check that the index holds the source's records as they are: the check a CI job
    runs after a load.

    Reads the source as `vupsert upsert` does (same mapping options), fetches its ids back
    in batches and compares data and metadata. Names the first records that are missing
    or different, with their file:line, and counts those the namespace holds beyond the
    source (records_extra). Exit 0 when every record matches, 1 otherwise (with --exact,
    also when the namespace holds more).
    """
    summary = settled(
        verify_records,
        _inputs(env, files, "verify"),
        **target.keywords(),
        **records.keywords(),
        **connection.keywords(),
        exact=exact,
        environ=env.environ,
        stdin=env.stdin,
    )
    verified(Terminal(env.stderr), summary, quiet=quiet)
    return summary


@command()
def delete(
    env: Environment,
    *,
    target: Target,
    ids: Ids = None,
    prefix: DeletePrefix = None,
    filter: Filter = None,
    id_field: IdField = settings.ID_FIELD,
    format: IdsFormatOption = settings.IDS_FORMAT,
    encoding: IdsEncoding = settings.ENCODING,
    yes: Yes = False,
    dry_run: DeleteDryRun = False,
    connection: Connection,
    json_out: Json = False,
    quiet: Quiet = False,
) -> DeleteSummary:
    """Delete records from the namespace: by --ids, --prefix or --filter.

    Ids go 1,000 to a request, with the retries and pacing upserts have; each batch is
    fetched first, so the count is the records the index held. --prefix and --filter
    delete what they match, so they count it and ask first (or take --yes).
    """
    confirm = None
    if (prefix is not None or filter is not None) and not (yes or dry_run):
        confirm = _asking(env, target.namespace, prefix, filter)
    summary = settled(
        delete_records,
        ids=_ids(env, ids),
        prefix=prefix,
        filter=filter,
        **target.keywords(),
        id_field=id_field,
        format=cast(IdsFormat, format),
        encoding=encoding,
        dry_run=dry_run,
        confirm=confirm,
        environ=env.environ,
        **connection.keywords(),
    )
    deleted(Terminal(env.stderr), summary, quiet=quiet)
    return summary


@command()
def info(
    env: Environment, url: Url = None, token: Token = None, json_out: Json = False
) -> dict[str, Any]:
    """Show the index: its URL (scheme and host), dimension, similarity, embedding model,
    vectors per namespace.

    Warns when the index has no embedding model (then upsert-data cannot work).
    Exit 3 when the index cannot be reached or refuses the token.
    """
    result = index_info(url=url, token=token, environ=env.environ, allow_insecure_http=True)
    endpoint = Endpoint.find(url, token, environ=env.environ, allow_insecure_http=True)
    out = None if json_out else env.out()
    described(Terminal(env.stderr), result, out=out, url=shown_url(endpoint.url))
    return result


@command()
def query(
    env: Environment,
    text: QueryText,
    *,
    target: Target,
    top_k: TopK = settings.TOP_K,
    filter: QueryFilter = None,
    include_data: IncludeData = False,
    connection: Connection,
    json_out: Json = False,
) -> QueryResult:
    """Show the records nearest to TEXT: a check that what was loaded is found.

    The index embeds TEXT as it embedded the records (query-data) and answers the best
    --top-k of the namespace, the best first. On a terminal: a table of id, score and
    metadata (and data, with --include-data). Elsewhere: one JSON object per record, JSON
    Lines for jq. --json prints one object that holds them all. Exit 0 whether anything
    matches or not; 2 for a bad filter or a namespace the index does not have; 3 when the
    index refuses the token or cannot embed text.
    """
    result = settled(
        query_records,
        text,
        **target.keywords(),
        top_k=top_k,
        filter=filter,
        include_data=include_data,
        environ=env.environ,
        **connection.keywords(),
    )
    queried(Terminal(env.stderr), result, out=None if json_out else env.stdout)
    return result


@command()
def demo(env: Environment, samples: Samples = Path("samples")) -> ExitStatus:
    """Load the bundled samples into a local index, then query it: no account needed.

    Starts the same local server as `vupsert serve` on a free port, runs the same
    pipeline as `vupsert upsert` on samples/articles.jsonl and samples/products.csv,
    shows what the index holds and the best matches of a question.
    """
    from .demo import run_demo

    return run_demo(
        samples, Terminal(env.stderr), env.out(), describe=upsert_command, query=query_records
    )


def main(argv: list[str] | None = None, environment: Environment | None = None) -> NoReturn:
    """Entry point of the ``vupsert`` script and ``python -m vupsert``."""
    env = environment or Environment()
    tune_allocator()
    with spelled_as_flags():
        raise SystemExit(run(app, argv, env))


def upsert_command(settings: Settings) -> str:
    """The ``vupsert upsert`` command line that runs ``settings``, with the options that
    differ from the defaults (the URL and token are left to the environment): what the
    demo prints for each of its runs."""
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
        encoding=settings.read.encoding,
    )
    if settings.mapping.shard is not None:
        values["shard"] = "{}/{}".format(*settings.mapping.shard)
    values["types"] = [f"{k}={v}" for k, v in settings.mapping.types] or None
    if values["delimiter"] == "\t":
        values["delimiter"] = "\\t"
    argv = ["vupsert", "upsert", *settings.inputs]
    for param in get_command(app).commands["upsert"].params:  # type: ignore[attr-defined]
        value = values.get(param.name, param.default)
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


def _inputs(env: Environment, files: list[str] | None, command: str) -> list[str]:
    """The inputs to read: ``files``, or stdin, refused when it is closed or a terminal."""
    if "-" not in (files or ["-"]):
        return files or ["-"]
    example = f"jq -c '.[]' docs.json | vupsert {command} -n docs"
    if env.stdin is None:
        raise UsageError(
            "No input: stdin is closed, so - cannot be read.",
            hint=f"Give one or more FILEs, or pipe records in: {example} -",
        )
    if env.stdin.isatty():
        raise UsageError(
            "No input: stdin is a terminal.",
            hint=f"Give one or more FILEs, or pipe records in: {example}",
        )
    return files or ["-"]


def _events(env: Environment, load: Load, *, quiet: bool) -> ConsoleEvents:
    rejects = str(load.rejects) if load.rejects else None
    return ConsoleEvents(Terminal(env.stderr), quiet=quiet, rejects=rejects)


def _ids(env: Environment, ids: str | None) -> Any:
    """``--ids``: a path, or stdin for ``-``."""
    if ids != "-":
        return ids
    if env.stdin is None or env.stdin.isatty():
        raise UsageError("--ids -: pipe the ids in, one a line.")
    return env.stdin


def _asking(
    env: Environment, namespace: str, prefix: str | None, filter: str | None
) -> Callable[[int], bool]:
    """What asks, once the records a prefix or a filter matches are counted, whether to
    delete them; refused at once where no one can answer."""
    where = f"namespace {namespace!r}" if namespace else "the default namespace"
    which = f"whose id starts with {prefix!r}" if prefix is not None else f"that match {filter!r}"
    stdin = env.stdin
    if stdin is None or not stdin.isatty():
        raise UsageError(
            f"This deletes every record of {where} {which}: pass --yes to confirm (or "
            "--dry-run to count them first).",
        )

    matching = f"ids starting with {prefix!r}" if prefix is not None else f"matching {filter!r}"

    def ask(count: int) -> bool:
        env.stderr.write(f"Delete {plural(count, 'record')} of {where} ({matching})? [y/N]: ")
        env.stderr.flush()
        answer = stdin.readline().decode(errors="replace").strip().lower()
        return answer in ("y", "yes")

    return ask


@contextmanager
def _signals(stop: Callable[[], None]) -> Iterator[None]:
    """Ctrl-C and SIGTERM ask the run to stop; a second Ctrl-C abandons what is in flight.

    The stop is asked from a thread of its own, never from the handler: a handler runs in
    the main thread between any two of its steps, maybe while it holds the lock the stop
    takes (the reader queueing a batch), and would wait for itself forever. The handler
    does nothing; Python's C-level handler writes the signal's number to a socket, which
    that thread reads."""
    if sys.platform == "win32" or threading.current_thread() is not threading.main_thread():
        yield
        return
    # One ignored stays ignored: a shell's background job (`vupsert upsert ... &`) must not
    # stop at a Ctrl-C meant for the command in the foreground.
    caught = [sig for sig in (signal.SIGINT, signal.SIGTERM) if not _ignored(sig)]
    heard, told = socket.socketpair()
    told.setblocking(False)

    def listen() -> None:
        while received := heard.recv(64):  # b"" once ``told`` is closed
            for signum in received:
                if signum in caught:
                    stop()

    def handler(signum: int, frame: FrameType | None) -> None:
        """Nothing here: ``listen`` acts on the byte the signal wrote."""

    listener = threading.Thread(
        target=contextvars.copy_context().run, args=(listen,), name="vupsert-signals", daemon=True
    )
    listener.start()
    previous_fd = signal.set_wakeup_fd(told.fileno(), warn_on_full_buffer=False)
    previous = {sig: signal.signal(sig, handler) for sig in caught}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
        signal.set_wakeup_fd(previous_fd)
        told.close()
        listener.join(5)
        heard.close()


def _ignored(signum: signal.Signals) -> bool:
    return signal.getsignal(signum) is signal.SIG_IGN
