"""vupsert from Python: :func:`upsert` does what ``vupsert upsert`` does.

The command line is a thin layer over these functions: it turns its options into the same
keyword arguments (``--data-field text`` is ``data_field="text"``) and calls
:func:`build_settings` and :class:`~vupsert.run.pipeline.Run` as :func:`upsert` does.

The error contract: an error that stops the run (a bad token, an index without an
embedding model, an input that cannot be read, a file that cannot be written) raises a
:class:`~vupsert.errors.VupsertError`, with the summary of what was done before it on its
``summary`` attribute. An exception raised by the caller's own code (the records
iterable, a ``progress`` or ``events`` callback) stops the run the same way, what is in
flight settling first, and is raised again as it is, with ``summary`` set on it. Records
rejected and batches failed are not errors: they are counted on the returned
:class:`~vupsert.outcomes.Summary` (and written where ``rejects`` says).
"""

from __future__ import annotations

import io
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, BinaryIO, TypeVar, Union, cast, get_args

from .config.endpoint import check_url, find_connection, require_connection
from .config.settings import (
    DATA_FIELD,
    ENCODING,
    ID_FIELD,
    ID_FROM,
    IDS_FORMAT,
    MAPPING_OPTIONS,
    MAX_BACKOFF,
    MAX_CHUNK_SIZE,
    MAX_CONCURRENCY,
    METADATA_FIELD,
    OPTIONS,
    READ_OPTIONS,
    RETRIES,
    TIMEOUT,
    ColumnType,
    Format,
    IdFrom,
    IdsFormat,
    MappingOptions,
    ReadOptions,
    Settings,
    check_encoding,
    option,
)
from .errors import CallerError, StoppedEarly, UsageError, VupsertError
from .inputs import ArrowStreamExportable, as_records, format_of
from .ops.delete import delete_filter, delete_ids, delete_prefix, given_ids, read_ids, text_stream
from .ops.export import STDOUT, output_writer
from .ops.export import export as export_to
from .ops.sync import SyncRun
from .ops.verify import Verifier
from .outcomes import (
    Broadcast,
    DeleteSummary,
    Events,
    ExportSummary,
    Progress,
    Settlement,
    Summary,
    SyncSummary,
    VerifySummary,
)
from .records import MAX_BATCH_RECORDS, Cells, Rejection
from .run.pipeline import Run
from .run.sending import RetryPolicy
from .transport.client import Client
from .transport.retry import Caller

Records = Union[  # noqa: UP007 - a runtime alias: "|" cannot join these on Python 3.10
    str,
    os.PathLike[str],
    Sequence[Union[str, os.PathLike[str]]],  # noqa: UP007
    BinaryIO,
    Iterable[Mapping[str, Any]],
    ArrowStreamExportable,
]
"""What :func:`upsert` loads: a path, a list of paths, a binary file of JSON Lines (or
``format=``), any iterable of dicts, or a table (a pandas or polars DataFrame, a pyarrow
Table), streamed."""

SummaryT = TypeVar("SummaryT", Summary, SyncSummary, VerifySummary)


def upsert(
    records: Records,
    *,
    url: str | None = None,
    token: str | None = None,
    namespace: str = "",
    progress: Callable[[Summary], object] | None = None,
    events: Events | None = None,
    **options: Any,
) -> Summary:
    """Load ``records`` into the index's namespace; return what became of them.

    ``url`` and ``token`` default to ``UPSTASH_VECTOR_REST_URL`` and
    ``UPSTASH_VECTOR_REST_TOKEN``. ``options`` are the options of ``vupsert upsert`` under
    their Python names (``batch_size=500``, ``rejects="rejects.jsonl"``,
    ``data_field="text"``, ``shard=(0, 4)``; ``vupsert.OPTIONS`` lists them).
    ``progress(summary)`` is called after each batch settles; ``events`` hears everything
    the command line shows. Nothing is printed.
    """
    run = prepare(
        records,
        url=url,
        token=token,
        namespace=namespace,
        progress=progress,
        events=events,
        **options,
    )
    return _raised(run.execute())


def sync(
    records: Records,
    *,
    url: str | None = None,
    token: str | None = None,
    namespace: str = "",
    prefix: str | None = None,
    max_delete: int | str | None = None,
    progress: Callable[[Summary], object] | None = None,
    events: Events | None = None,
    **options: Any,
) -> SyncSummary:
    """Make the namespace (or the ids that start with ``prefix``) hold exactly
    ``records``: new and changed records are upserted, unchanged ones not sent, stored
    ones the source lacks deleted (at most ``max_delete``: a count, or ``"P%"`` of what
    the scope holds; half by default). Takes :func:`upsert`'s options but ``checkpoint``
    and ``shard``; ``dry_run=True`` counts without writing."""
    run = prepare_sync(
        records,
        url=url,
        token=token,
        namespace=namespace,
        prefix=prefix,
        max_delete=max_delete,
        progress=progress,
        events=events,
        **options,
    )
    return _raised(run.execute())


def prepare(
    records: Records,
    *,
    url: str | None = None,
    token: str | None = None,
    namespace: str = "",
    progress: Callable[[Summary], object] | None = None,
    events: Events | None = None,
    environ: Mapping[str, str] | None = None,
    stdin: BinaryIO | None = None,
    seed: int | None = None,
    **options: Any,
) -> Run:
    """The run :func:`upsert` would execute, not started: for a caller that stops it
    (:meth:`~vupsert.run.pipeline.Run.request_stop`) or reads its summary as it goes."""
    inputs, stdin, dicts = _source(records, stdin)
    settings = build_settings(
        inputs, url=url, token=token, namespace=namespace, environ=environ, **options
    )
    callbacks = _listeners(events, progress)
    run = Run(settings, events=callbacks, stdin=stdin, records=dicts, seed=seed)
    if callbacks is not None:
        callbacks.attach(run.request_stop, run.summary)
    return run


def prepare_sync(
    records: Records,
    *,
    url: str | None = None,
    token: str | None = None,
    namespace: str = "",
    prefix: str | None = None,
    max_delete: int | str | None = None,
    progress: Callable[[Summary], object] | None = None,
    events: Events | None = None,
    environ: Mapping[str, str] | None = None,
    stdin: BinaryIO | None = None,
    seed: int | None = None,
    **options: Any,
) -> SyncRun:
    """The sync :func:`sync` would execute, not started."""
    inputs, stdin, dicts = _source(records, stdin)
    # A dry run of a sync still reads the index: it needs the URL and the token.
    settings = build_settings(
        inputs, url=url, token=token, namespace=namespace, environ=environ, **options
    )
    require_connection(settings.url, settings.token)
    callbacks = _listeners(events, progress)
    run = SyncRun(
        settings,
        prefix=prefix,
        max_delete=max_delete,
        events=callbacks,
        stdin=stdin,
        records=dicts,
        seed=seed,
    )
    if callbacks is not None:
        callbacks.attach(run.request_stop, run.summary)
    return run


def export(
    output: str | os.PathLike[str] | IO[bytes],
    *,
    url: str | None = None,
    token: str | None = None,
    namespace: str = "",
    prefix: str | None = None,
    progress: Callable[[int, int | None], object] | None = None,
    environ: Mapping[str, str] | None = None,
    **options: Any,
) -> ExportSummary:
    """Write the namespace (or the ids that start with ``prefix``) to ``output`` as JSON
    Lines ``{id, data, metadata}``: a path (``.gz`` compressed by its name; a file is
    replaced only by a whole export, a pipe or a device is written through; ``"-"`` is
    stdout) or a binary file. ``progress(exported, total)`` hears of each page;
    ``total`` is the namespace's count from ``/info`` (``None`` under a prefix).
    ``options``: ``timeout``, ``retries``, ``max_backoff``, ``allow_insecure_http``."""
    caller = _caller(url, token, namespace, environ, options)
    summary = ExportSummary(namespace=namespace, prefix=prefix or None)
    on_page = None
    if progress is not None:
        total = None if prefix else _count(caller.client.info(), namespace)

        def on_page(n: int) -> None:
            progress(summary.records_exported, total)

    if isinstance(output, (str, os.PathLike)) and os.fspath(output) != STDOUT:
        summary.output = os.fspath(output)
    try:
        with output_writer(output) as write:
            export_to(caller, write, summary, on_page=on_page)
    except VupsertError as error:
        error.summary = summary
        raise
    finally:
        caller.client.close()
    return summary


def verify(
    records: Records,
    *,
    url: str | None = None,
    token: str | None = None,
    namespace: str = "",
    events: Events | None = None,
    environ: Mapping[str, str] | None = None,
    stdin: BinaryIO | None = None,
    **options: Any,
) -> VerifySummary:
    """Check that the index holds ``records`` as they are (read and mapped with the same
    options as :func:`upsert`): the summary counts the matching, missing and different
    ones, and names the first few. Differences are not errors: look at the counts, or at
    ``summary.exit_status``."""
    inputs, stdin, dicts = _source(records, stdin)
    settings = build_settings(
        inputs, url=url, token=token, namespace=namespace, environ=environ, **options
    )
    verifier = Verifier(settings, events=events, stdin=stdin, records=dicts)
    return _raised(verifier.execute())


def delete(
    *,
    ids: str | os.PathLike[str] | IO[bytes] | IO[str] | Iterable[Any] | None = None,
    prefix: str | None = None,
    filter: str | None = None,
    url: str | None = None,
    token: str | None = None,
    namespace: str = "",
    id_field: str = ID_FIELD,
    format: IdsFormat = IDS_FORMAT,
    encoding: str = ENCODING,
    dry_run: bool = False,
    environ: Mapping[str, str] | None = None,
    **options: Any,
) -> DeleteSummary:
    """Delete records from the namespace: exactly one of ``ids``, ``prefix`` (every id
    that starts with it) or ``filter`` (a metadata filter). ``dry_run=True`` counts what
    would be deleted.

    ``ids``: a path (``"-"`` for stdin) or an open file (binary or text) listing ids one a
    line, each as written but for its line end, or JSON Lines, a JSON array, CSV, TSV or
    Parquet records whose ``id_field`` is used (``format`` says which; by default the
    file's name or first line tells), a binary one in ``encoding``; or an iterable of ids
    (strings as they are, or dicts whose ``id_field`` is used). ``records_deleted``
    counts the distinct ids the index held."""
    chosen = [
        name
        for name, value in (("ids", ids), ("prefix", prefix), ("filter", filter))
        if value is not None
    ]
    if len(chosen) != 1:
        raise UsageError(
            f"Give exactly one of {option('ids')}, {option('prefix')} and {option('filter')}"
            + (f" (got {', '.join(chosen)})." if chosen else ".")
        )
    _choice({"format": format}, "format", get_args(IdsFormat))
    check_encoding(encoding)
    caller = _caller(url, token, namespace, environ, options)
    summary = DeleteSummary(namespace=namespace, dry_run=dry_run)
    started = time.monotonic()
    try:
        if prefix is not None:
            delete_prefix(caller, prefix, summary)
        elif filter is not None:
            delete_filter(caller, filter, summary)
        else:
            delete_ids(caller, _ids(ids, summary, id_field, format, encoding), summary)
    except VupsertError as error:
        error.summary = summary
        raise
    finally:
        summary.requests, summary.retries = caller.requests, caller.retries
        summary.elapsed_s = time.monotonic() - started
        caller.client.close()
    return summary


def _count(info: dict[str, Any], namespace: str) -> int | None:
    counts = (info.get("namespaces") or {}).get(namespace)
    count = counts.get("vectorCount") if isinstance(counts, dict) else None
    return count if isinstance(count, int) else None


def _ids(
    ids: str | os.PathLike[str] | IO[bytes] | IO[str] | Iterable[Any] | None,
    summary: DeleteSummary,
    id_field: str,
    format: IdsFormat,
    encoding: str,
) -> Iterable[str]:
    if isinstance(ids, (str, os.PathLike)):
        path = os.fspath(ids)
        return read_ids(path, summary, id_field=id_field, format=format, encoding=encoding)
    if isinstance(ids, (bytes, bytearray)):
        raise UsageError("ids is bytes: pass a path, a file, or an iterable of ids.")
    if isinstance(ids, io.TextIOBase):
        ids, encoding = text_stream(ids), "utf-8"  # decoded already, by the file
    if hasattr(ids, "read"):
        stdin = cast(BinaryIO, ids)
        return read_ids(
            "-", summary, id_field=id_field, format=format, stdin=stdin, encoding=encoding
        )
    assert ids is not None
    return given_ids(ids, summary, id_field)


def _caller(
    url: str | None,
    token: str | None,
    namespace: str,
    environ: Mapping[str, str] | None,
    options: dict[str, Any],
) -> Caller:
    """A client of the namespace, and requests tried with the retries upserts have."""
    allowed = {"timeout", "retries", "max_backoff", "allow_insecure_http"}
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise UsageError(
            f"Unknown option{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}.",
            hint=f"The options are: {', '.join(sorted(allowed))}.",
        )
    the_url, the_token = find_connection(url, token, environ)
    require_connection(the_url, the_token)
    for name, low in (("timeout", 0.1), ("retries", 0), ("max_backoff", 0.0)):
        _bounded(options, name, low, None)
    client = Client(
        check_url(the_url, allow_insecure_http=bool(options.get("allow_insecure_http"))),
        the_token,
        namespace=namespace,
        timeout=options.get("timeout", TIMEOUT),
    )
    policy = RetryPolicy(
        retries=options.get("retries", RETRIES), max_backoff=options.get("max_backoff", MAX_BACKOFF)
    )
    return Caller(client, policy)


def _source(
    records: Records, stdin: BinaryIO | None
) -> tuple[tuple[str | os.PathLike[str], ...], BinaryIO | None, Iterable[Mapping[str, Any]] | None]:
    """``records`` as the run takes them: paths, or a binary file read as stdin, or dicts
    (or a table: :func:`~vupsert.inputs.as_records`)."""
    records = as_records(records)  # type: ignore[assignment]
    if isinstance(records, (str, os.PathLike)):
        return (records,), stdin, None
    if isinstance(records, (bytes, bytearray)):
        raise UsageError("records is bytes: pass a path, a binary file, or dicts.")
    if hasattr(records, "read"):
        return ("-",), records, None  # type: ignore[return-value]
    if isinstance(records, Sequence) and all(isinstance(r, (str, os.PathLike)) for r in records):
        if not records:
            raise UsageError("No input: the list of paths is empty.")
        return tuple(records), stdin, None
    return (), stdin, records  # type: ignore[return-value]


def _listeners(
    events: Events | None, progress: Callable[[Summary], object] | None
) -> _Callbacks | None:
    listeners: list[tuple[Events, str]] = [] if events is None else [(events, "events")]
    if progress is not None:
        listeners.append((Progress(progress), "the progress callback"))
    return _Callbacks(listeners) if listeners else None


class _Callbacks(Broadcast):
    """The caller's listeners, heard as one. The first exception one of them raises stops
    the run as :meth:`~vupsert.run.pipeline.Run.request_stop` does (what is in flight
    settles, the checkpoint is written) and goes on the summary as a
    :class:`~vupsert.errors.CallerError`; that listener is not called again."""

    def __init__(self, listeners: list[tuple[Events, str]]) -> None:
        super().__init__(*(listener for listener, _ in listeners))
        self._names = {id(listener): name for listener, name in listeners}
        self._failed: set[int] = set()
        self._lock = threading.Lock()
        self._stop: Callable[[], object] = lambda: None
        self._summary: Summary | None = None

    def attach(self, stop: Callable[[], object], summary: Summary) -> None:
        """The run these listeners hear, to stop and to tell why."""
        self._stop, self._summary = stop, summary

    def _each(self, call: Callable[[Events], object]) -> None:
        for listener in self.listeners:
            if id(listener) in self._failed:
                continue
            try:
                call(listener)
            except Exception as exc:
                self._fail(listener, exc)

    def _fail(self, listener: Events, exc: Exception) -> None:
        with self._lock:
            first = not self._failed
            self._failed.add(id(listener))
        summary = self._summary
        if not first or summary is None:
            return
        current = summary.error
        if current is None or isinstance(current, StoppedEarly):
            summary.error = CallerError(exc, self._names[id(listener)])
        interrupted = summary.interrupted
        self._stop()
        summary.interrupted = interrupted  # the error says why it stopped

    def started(self, total_bytes: int | None, inputs: tuple[str, ...]) -> None:
        self._each(lambda listener: listener.started(total_bytes, inputs))

    def bytes_read(self, n: int) -> None:
        self._each(lambda listener: listener.bytes_read(n))

    def batch_done(self, settlement: Settlement, summary: Summary) -> None:
        self._each(lambda listener: listener.batch_done(settlement, summary))

    def rejected(self, rejections: list[Rejection]) -> None:
        self._each(lambda listener: listener.rejected(rejections))

    def warning(self, message: str) -> None:
        self._each(lambda listener: listener.warning(message))

    def finished(self, summary: Summary) -> None:
        self._each(lambda listener: listener.finished(summary))


def _raised(summary: SummaryT) -> SummaryT:
    """``summary``, or its error raised with the summary on it: the caller's own
    exception when its code raised."""
    error = summary.error
    if error is None:
        return summary
    raised: Exception = error.raised if isinstance(error, CallerError) else error
    raised.summary = summary  # type: ignore[attr-defined]
    raise raised


def build_settings(
    inputs: Sequence[str | os.PathLike[str]] = ("-",),
    *,
    url: str | None = None,
    token: str | None = None,
    namespace: str = "",
    environ: Mapping[str, str] | None = None,
    **options: Any,
) -> Settings:
    """:class:`Settings` from keyword options, each checked; unknown names are refused.

    The URL and token are found (given, else in ``environ``, by default the process's
    environment) and checked before anything is built from them: a bad token or a URL
    with a password stops here, and is never repeated.
    """
    unknown = sorted(set(options) - OPTIONS)
    if unknown:
        raise UsageError(
            f"Unknown option{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}.",
            hint=f"The options are: {', '.join(sorted(OPTIONS))}.",
        )
    the_url, the_token = find_connection(url, token, environ)
    if the_url:
        the_url = check_url(the_url, allow_insecure_http=bool(options.get("allow_insecure_http")))
    if not options.get("dry_run"):
        require_connection(the_url, the_token)
    read = {k: options.pop(k) for k in READ_OPTIONS & options.keys()}
    mapping = {k: options.pop(k) for k in MAPPING_OPTIONS & options.keys()}
    _choice(read, "format", get_args(Format))
    _choice(mapping, "id_from", get_args(IdFrom))
    if "columns" in read:
        read["columns"] = _names(read["columns"], "columns")
    if "metadata_columns" in mapping:
        mapping["metadata_columns"] = _names(mapping["metadata_columns"], "metadata_columns")
    if "delimiter" in read:
        read["delimiter"] = _delimiter(read["delimiter"])
    if "shard" in mapping:
        mapping["shard"] = _shard(mapping["shard"])
    if mapping.get("types"):
        mapping["types"] = _types(mapping["types"])
        _types_apply(inputs, read.get("format", "auto"), mapping["types"])
        _types_fit(mapping)
    else:
        mapping.pop("types", None)
    _chunking(mapping)
    for name in ("rejects", "checkpoint", "report"):
        if options.get(name) is not None:
            options[name] = Path(options[name])
    _bounded(options, "batch_size", 1, MAX_BATCH_RECORDS)
    _bounded(options, "concurrency", 1, MAX_CONCURRENCY)
    _bounded(options, "max_batch_bytes", 1024, None)
    _bounded(options, "retries", 0, None)
    _bounded(options, "timeout", 0.1, None)
    _bounded(options, "max_backoff", 0.0, None)
    return Settings(
        url=the_url,
        token=the_token,
        inputs=tuple(os.fspath(name) for name in inputs),
        namespace=namespace,
        read=ReadOptions(**read),
        mapping=MappingOptions(**mapping),
        **options,
    )


def _choice(values: dict[str, Any], name: str, choices: tuple[str, ...]) -> None:
    if name in values and values[name] not in choices:
        raise UsageError(f"{option(name, values[name])}: use {', '.join(choices)}.")


def _bounded(values: dict[str, Any], name: str, low: float, high: float | None) -> None:
    value = values.get(name)
    if value is None:
        return
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or value < low
        or (high is not None and value > high)
    ):
        limits = f"from {low} to {high}" if high is not None else f"at least {low}"
        raise UsageError(f"{option(name, value)}: it must be a number {limits}.")


def _names(value: str | Sequence[str] | None, name: str) -> tuple[str, ...] | None:
    """Column names, as a tuple, from ``"a,b"`` or a sequence."""
    if value is None:
        return None
    parts = value.split(",") if isinstance(value, str) else list(value)
    names = tuple(p.strip() for p in parts if p.strip())
    if not names:
        raise UsageError(f"{option(name, value)} names no column.")
    return names


def _delimiter(value: str | None) -> str | None:
    if value is None:
        return None
    if value in ("\\t", "tab"):
        return "\t"
    if len(value) != 1:
        raise UsageError(f"{option('delimiter', value)}: it must be one character.")
    return value


def _shard(value: str | Sequence[int] | None) -> tuple[int, int] | None:
    """``(k, n)`` from ``"k/n"`` or a pair, with ``0 <= k < n``."""
    if value is None:
        return None
    try:
        if isinstance(value, str):
            k, sep, n = value.partition("/")
            shard, shards = int(k), (int(n) if sep else 0)
        else:
            shard, shards = (int(v) for v in value)
    except (TypeError, ValueError):
        shard, shards = -1, 0
    if shards < 1 or not 0 <= shard < shards:
        raise UsageError(
            f"{option('shard', value)} is not K/N with 0 <= K < N.",
            hint="For example 0/4, 1/4, 2/4 and 3/4 for four jobs.",
        )
    return shard, shards


_TYPE_NAMES: dict[Any, ColumnType] = {
    "str": "str",
    "text": "str",
    "string": "str",
    "int": "int",
    "integer": "int",
    "float": "float",
    "number": "float",
    "bool": "bool",
    "boolean": "bool",
    "json": "json",
    str: "str",
    int: "int",
    float: "float",
    bool: "bool",
}


def _types(
    value: Mapping[str, Any] | Sequence[str] | str,
) -> tuple[tuple[str, ColumnType], ...]:
    """``(column, type)`` pairs from ``{"zip": "str"}`` or ``["zip=str", ...]``."""
    if isinstance(value, Mapping):
        pairs = [(str(k), v) for k, v in value.items()]
    else:
        pairs = []
        for item in [value] if isinstance(value, str) else value:
            name, sep, kind = str(item).partition("=")
            if not sep or not name.strip():
                raise UsageError(
                    f"{option('types', item)}: write COLUMN=TYPE, e.g. zip=str.",
                    hint=f"The types are {', '.join(get_args(ColumnType))}.",
                )
            pairs.append((name, kind))
    types: dict[str, ColumnType] = {}
    for name, kind in pairs:
        key = kind.strip().lower() if isinstance(kind, str) else kind
        try:
            typed = _TYPE_NAMES[key]
        except (KeyError, TypeError):
            raise UsageError(
                f"{option('types', {name: kind})}: {kind!r} is not a type.",
                hint=f"The types are {', '.join(get_args(ColumnType))}.",
            ) from None
        column = name.strip()
        if types.get(column, typed) != typed:
            raise UsageError(
                f"{option('types', {column: types[column]})} and "
                f"{option('types', {column: typed})} give one column two types.",
                hint="Give each column one type.",
            )
        types[column] = typed
    return tuple(types.items())


def _types_fit(mapping: dict[str, Any]) -> None:
    """``types`` make the cells of metadata columns a type: given to a column whose cells
    never become metadata values, they would do nothing, so they are refused."""
    roles = {
        mapping.get("metadata_field", METADATA_FIELD): "the metadata column: its cells are "
        "JSON objects, merged into the metadata"
    }
    if mapping.get("data_template") is None:
        roles[mapping.get("data_field", DATA_FIELD)] = "the data column: the text to embed"
    if mapping.get("id_from", ID_FROM) == "field" and mapping.get("id_template") is None:
        roles[mapping.get("id_field", ID_FIELD)] = "the id column: ids are text"
    picked = mapping.get("metadata_columns")
    for column, kind in mapping["types"]:
        role = roles.get(column)
        if role is None and picked is not None and column not in picked:
            role = f"not among {option('metadata_columns', ','.join(picked))}"
        if role is not None:
            raise UsageError(
                f"{option('types', {column: kind})} does nothing: {column!r} is {role}.",
                hint="A type applies to a column whose cells become metadata values.",
            )


def _types_apply(
    inputs: Sequence[str | os.PathLike[str]], fmt: str, types: tuple[tuple[str, str], ...]
) -> None:
    """``types`` cast CSV/TSV cells: given for inputs none of which is one, they would do
    nothing, so they are refused rather than ignored."""
    if not any(format_of(os.fspath(name), fmt).cells is Cells.TEXT for name in inputs):
        raise UsageError(
            f"{option('types', dict(types))} applies to CSV and TSV cells, and no input is "
            "CSV or TSV.",
            hint="JSON and Parquet values keep the types they have: leave it out.",
        )


def _chunking(mapping: dict[str, Any]) -> None:
    if mapping.get("chunk_overlap", 0) is None:
        del mapping["chunk_overlap"]
    size, overlap = mapping.get("chunk_size"), mapping.get("chunk_overlap")
    for name, value, low, high in (
        ("chunk_size", size, 1, MAX_CHUNK_SIZE),
        ("chunk_overlap", overlap, 0, None),
    ):
        if value is not None and (
            isinstance(value, bool)
            or not isinstance(value, int)
            or value < low
            or (high is not None and value > high)
        ):
            limits = f"from {low} to {high:,}" if high is not None else f"at least {low}"
            raise UsageError(f"{option(name, value)}: it must be a whole number {limits}.")
    if size is None:
        if overlap:
            raise UsageError(
                f"{option('chunk_overlap', overlap)} needs {option('chunk_size')}.",
                hint="The overlap is what each chunk repeats of the one before it.",
            )
        return
    if overlap is not None and overlap > size // 2:
        raise UsageError(
            f"{option('chunk_overlap', overlap)}: it must be at most half of "
            f"{option('chunk_size', size)} ({size // 2:,}).",
        )
