"""vupsert from Python: :func:`upsert` does what ``vupsert upsert`` does, and so on for
every command that talks to an index.

Each function is the settings its keywords make (:mod:`vupsert.config`) and one call of
the stage that does the work (:mod:`vupsert.run`, :mod:`vupsert.ops`). The command line
is a thin layer over these functions: it turns its options into the same keyword
arguments (``--data-field text`` is ``data_field="text"``).

The error contract: an error that stops the run (a bad token, an index without an
embedding model, an input that cannot be read, a file that cannot be written) raises a
:class:`~vupsert.errors.VupsertError`, with the summary of what was done before it on its
``summary`` attribute. An exception raised by the caller's own code (the records
iterable, a ``progress`` or ``events`` callback) stops the run the same way, what is in
flight settling first, and is raised again as it is, with ``summary`` set on it. Records
rejected and batches failed are not errors: they are counted on the returned
:class:`~vupsert.outcomes.Summary` (and written where ``rejects`` says), the first few
kept there with their reasons; :func:`upsert` and :func:`sync` warn of them on the
``vupsert`` logger as they settle (see :data:`log`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import IO, TYPE_CHECKING, Any, BinaryIO, TypeVar, Union

from .config import Endpoint, option
from .config.options import build_settings, connection_settings
from .config.settings import ENCODING, ID_FIELD, IDS_FORMAT, TOP_K, IdsFormat, Settings
from .errors import CallerError, UsageError
from .inputs import ArrowStreamExportable, as_records
from .ops import Ids, SyncRun, Verifier, check_deletion
from .ops import delete as delete_from
from .ops import export as export_to
from .ops import query as query_namespace
from .outcomes import (
    FIRST_REJECTIONS,
    Broadcast,
    CallerEvents,
    DeleteSummary,
    Events,
    ExportSummary,
    NoEvents,
    QueryResult,
    Summary,
    SyncSummary,
    VerifySummary,
)
from .records import Rejection
from .run import Run
from .transport import Caller, Client, RetryPolicy

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from .config.keywords import (
        ConnectionKeywords,
        SyncKeywords,
        UpsertKeywords,
        VerifyKeywords,
    )

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

log = logging.getLogger("vupsert")
"""Where :func:`upsert` and :func:`sync` warn of the records they reject, which a caller
would otherwise learn of only from the summary's counts. No handler is added to it, on
purpose: an application that has configured logging gets these warnings where its others
go; one that has not gets them on stderr from Python's last-resort handler, one line each,
for a record that was not loaded should not go unnoticed. Silence them with
``logging.getLogger("vupsert").setLevel(logging.ERROR)``."""


def upsert(
    records: Records,
    *,
    url: str | None = None,
    token: str | None = None,
    namespace: str = "",
    progress: Callable[[Summary], object] | None = None,
    events: Events | None = None,
    environ: Mapping[str, str] | None = None,
    **options: Unpack[UpsertKeywords],
) -> Summary:
    """Load ``records`` into the index's namespace; return what became of them.

    ``url`` and ``token`` default to ``UPSTASH_VECTOR_REST_URL`` and
    ``UPSTASH_VECTOR_REST_TOKEN``. ``options`` are the options of ``vupsert upsert`` under
    their Python names (``batch_size=500``, ``rejects="rejects.jsonl"``,
    ``data_field="text"``, ``shard=(0, 4)``; ``vupsert.OPTIONS`` lists them).
    ``progress(summary)`` is called after each batch settles; ``events`` hears everything
    the command line shows. Nothing is printed; each rejected record is warned of on the
    ``vupsert`` logger (:data:`log`), and the first few are on ``summary.rejections``.
    ``environ`` stands in for the process's environment where the URL and token are looked
    for.
    """
    run = prepare(
        records,
        url=url,
        token=token,
        namespace=namespace,
        progress=progress,
        events=_logged(events),
        environ=environ,
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
    environ: Mapping[str, str] | None = None,
    **options: Unpack[SyncKeywords],
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
        events=_logged(events),
        environ=environ,
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
    **options: Unpack[UpsertKeywords],
) -> Run:
    """The run :func:`upsert` would execute, not started: for a caller that stops it
    (:meth:`Run.request_stop`) or reads its summary as it goes."""
    inputs, stdin, dicts = _source(records, stdin)
    settings = build_settings(
        inputs, url=url, token=token, namespace=namespace, environ=environ, **options
    )
    callbacks = CallerEvents.of(events, progress)
    run = Run(settings, events=callbacks, stdin=stdin, records=dicts, seed=seed)
    if callbacks is not None:
        callbacks.attach(run.stop_reading, run.summary)
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
    **options: Unpack[SyncKeywords],
) -> SyncRun:
    """The sync :func:`sync` would execute, not started."""
    inputs, stdin, dicts = _source(records, stdin)
    settings = build_settings(
        inputs, url=url, token=token, namespace=namespace, environ=environ, **options
    )
    callbacks = CallerEvents.of(events, progress)
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
        callbacks.attach(run.stop_reading, run.summary)
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
    **options: Unpack[ConnectionKeywords],
) -> ExportSummary:
    """Write the namespace (or the ids that start with ``prefix``) to ``output`` as JSON
    Lines ``{id, data, metadata}``: a path (``.gz`` compressed by its name; a file is
    replaced only by a whole export, a pipe or a device is written through; ``"-"`` is
    stdout) or a binary file. ``progress(exported, total)`` hears of each page;
    ``total`` is the namespace's count from ``/info`` (``None`` under a prefix).
    ``options``: ``timeout``, ``retries``, ``max_backoff``, ``allow_insecure_http``."""
    settings = connection_settings(
        url=url, token=token, namespace=namespace, environ=environ, **options
    )
    with _calling(settings) as caller:
        return export_to(caller, output, prefix=prefix, progress=progress)


def verify(
    records: Records,
    *,
    url: str | None = None,
    token: str | None = None,
    namespace: str = "",
    exact: bool = False,
    events: Events | None = None,
    environ: Mapping[str, str] | None = None,
    stdin: BinaryIO | None = None,
    **options: Unpack[VerifyKeywords],
) -> VerifySummary:
    """Check that the index holds ``records`` as they are (read and mapped with the same
    options as :func:`upsert`): the summary counts the matching, missing and different
    ones, and names the first few; it counts the records the namespace holds beyond them
    too (``records_extra``), which ``exact=True`` makes differences. Differences are not
    errors: look at the counts, or at ``summary.exit_status``. A namespace the index does
    not have raises :class:`~vupsert.errors.ConfigError`."""
    inputs, stdin, dicts = _source(records, stdin)
    settings = build_settings(
        inputs, url=url, token=token, namespace=namespace, environ=environ, **options
    )
    verifier = Verifier(settings, events=events, stdin=stdin, records=dicts, exact=exact)
    return _raised(verifier.execute())


def delete(
    *,
    ids: Ids | None = None,
    prefix: str | None = None,
    filter: str | None = None,
    url: str | None = None,
    token: str | None = None,
    namespace: str = "",
    id_field: str = ID_FIELD,
    format: IdsFormat = IDS_FORMAT,
    encoding: str = ENCODING,
    dry_run: bool = False,
    confirm: Callable[[int], bool] | None = None,
    environ: Mapping[str, str] | None = None,
    **options: Unpack[ConnectionKeywords],
) -> DeleteSummary:
    """Delete records from the namespace: exactly one of ``ids``, ``prefix`` (every id
    that starts with it) or ``filter`` (a metadata filter). ``dry_run=True`` counts what
    would be deleted. ``confirm(count)``, for a prefix or a filter, is asked how many
    records match before they are deleted (a scan counts them): false deletes nothing
    (:class:`~vupsert.errors.UsageError`), and it is not asked when none does.

    ``ids``: a path (``"-"`` for stdin) or an open file (binary or text) listing ids one a
    line, each as written but for its line end, or JSON Lines, a JSON array, CSV, TSV or
    Parquet records whose ``id_field`` is used (``format`` says which; by default the
    file's name or first line tells), a binary one in ``encoding``; or an iterable of ids
    (strings as they are, or dicts whose ``id_field`` is used). ``records_deleted``
    counts the distinct ids the index held."""
    check_deletion(ids, prefix, filter, format, encoding)
    settings = connection_settings(
        url=url, token=token, namespace=namespace, environ=environ, **options
    )
    with _calling(settings) as caller:
        return delete_from(
            caller,
            ids=ids,
            prefix=prefix,
            filter=filter,
            id_field=id_field,
            format=format,
            encoding=encoding,
            dry_run=dry_run,
            confirm=confirm,
        )


def query(
    text: str,
    *,
    url: str | None = None,
    token: str | None = None,
    namespace: str = "",
    top_k: int = TOP_K,
    filter: str | None = None,
    include_data: bool = False,
    environ: Mapping[str, str] | None = None,
    **options: Unpack[ConnectionKeywords],
) -> QueryResult:
    """The records of the namespace nearest to ``text``, best first: the index embeds it as
    it embedded the records (``query-data``). At most ``top_k`` (1 to 1,000), only those
    whose metadata matches ``filter`` when one is given (``"lang = 'en'"``), each with its
    data when ``include_data``. ``result.hits`` holds them (``id``, ``score``,
    ``metadata``, ``data``); none is not an error. A namespace the index does not have
    raises :class:`~vupsert.errors.UsageError`, as does a filter that does not parse
    (before anything is sent). ``options``: ``timeout``, ``retries``, ``max_backoff``,
    ``allow_insecure_http``."""
    settings = connection_settings(
        url=url, token=token, namespace=namespace, environ=environ, **options
    )
    with _calling(settings) as caller:
        return query_namespace(caller, text, top_k=top_k, filter=filter, include_data=include_data)


def info(
    *,
    url: str | None = None,
    token: str | None = None,
    environ: Mapping[str, str] | None = None,
    allow_insecure_http: bool = False,
) -> dict[str, Any]:
    """The index's ``/info``: its dimension, similarity, embedding models, and the
    vectors each namespace holds. Raises :class:`~vupsert.errors.ServerError` when the
    index cannot be reached or refuses the token."""
    endpoint = Endpoint.find(url, token, environ=environ, allow_insecure_http=allow_insecure_http)
    with Client(endpoint) as client:
        return client.info()


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


def _raised(summary: SummaryT) -> SummaryT:
    """``summary``, or its error raised with the summary on it: the caller's own
    exception when its code raised."""
    error = summary.error
    if error is None:
        return summary
    raised: Exception = error.raised if isinstance(error, CallerError) else error
    raised.summary = summary  # type: ignore[attr-defined]
    raise raised


class _RejectionLog(NoEvents):
    """Warns of the first rejected records on :data:`log`, one each, as they settle; of how
    many more there were at the end."""

    def __init__(self) -> None:
        self._logged = 0
        self._more = 0

    def rejected(self, rejections: list[Rejection]) -> None:
        for rejection in rejections:
            if self._logged < FIRST_REJECTIONS:
                self._logged += 1
                log.warning("rejected %s: %s", rejection.where, rejection.reason)
            else:
                self._more += 1

    def finished(self, summary: Summary) -> None:
        if self._more:
            where = (
                f"all are in {summary.rejects_file}"
                if summary.rejects_file
                else f"a rejects file ({option('rejects')}) keeps every one with its reason"
            )
            log.warning("... and %s more rejected records: %s", f"{self._more:,}", where)


def _logged(events: Events | None) -> Events:
    """The caller's listener, and the log of what was rejected."""
    return _RejectionLog() if events is None else Broadcast(events, _RejectionLog())


@contextmanager
def _calling(settings: Settings) -> Iterator[Caller]:
    """A client of the settings' index, its requests retried by the one rule."""
    with Client.for_settings(settings) as client:
        yield Caller(client, RetryPolicy.of(settings))
