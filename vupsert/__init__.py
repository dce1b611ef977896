"""vupsert: bulk-load text into an Upstash Vector index, in batches, without losing a record.

From Python::

    import vupsert

    summary = vupsert.upsert("docs.jsonl", namespace="docs", rejects="rejects.jsonl")
    print(summary.records_upserted, summary.records_rejected)

:func:`upsert` takes a path, a list of paths, a binary file or any iterable of dicts, and
every option of ``vupsert upsert`` under its Python name. An error that stops the run
raises a :class:`VupsertError`; rejected records are counted on the returned
:class:`Summary`. :func:`sync`, :func:`export`, :func:`verify`, :func:`delete`,
:func:`query` and :func:`info` do what the commands of those names do; :func:`prepare` and
:func:`prepare_sync` return the :class:`Run` or :class:`SyncRun` not started, for a caller
that stops it or watches its summary. ``__all__`` is the public surface.
"""

from ._version import __version__
from .api import (
    Records,
    delete,
    export,
    info,
    prepare,
    prepare_sync,
    query,
    sync,
    upsert,
    verify,
)
from .config.settings import OPTIONS
from .errors import (
    CallerError,
    CheckpointError,
    ConfigError,
    DeletionRefused,
    ExitStatus,
    FailFastError,
    InputError,
    OutputError,
    PreflightError,
    ServerError,
    StoppedEarly,
    StrictModeError,
    UsageError,
    VupsertError,
)
from .ops import SyncRun
from .outcomes import (
    DeleteSummary,
    Events,
    ExportSummary,
    Hit,
    NoEvents,
    Problem,
    QueryResult,
    Settlement,
    Summary,
    SyncSummary,
    VerifySummary,
)
from .records import Rejection
from .run import Run

__all__ = [
    "OPTIONS",
    "CallerError",
    "CheckpointError",
    "ConfigError",
    "DeleteSummary",
    "DeletionRefused",
    "Events",
    "ExitStatus",
    "ExportSummary",
    "FailFastError",
    "Hit",
    "InputError",
    "NoEvents",
    "OutputError",
    "PreflightError",
    "Problem",
    "QueryResult",
    "Records",
    "Rejection",
    "Run",
    "ServerError",
    "Settlement",
    "StoppedEarly",
    "StrictModeError",
    "Summary",
    "SyncRun",
    "SyncSummary",
    "UsageError",
    "VerifySummary",
    "VupsertError",
    "__version__",
    "delete",
    "export",
    "info",
    "prepare",
    "prepare_sync",
    "query",
    "sync",
    "upsert",
    "verify",
]
