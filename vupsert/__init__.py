"""vupsert: bulk-load text into an Upstash Vector index, in batches, without losing a record.

From Python::

    import vupsert

    summary = vupsert.upsert("docs.jsonl", namespace="docs", rejects="rejects.jsonl")
    print(summary.records_upserted, summary.records_rejected)

:func:`upsert` takes a path, a list of paths, a binary file or any iterable of dicts, and
every option of ``vupsert upsert`` under its Python name. An error that stops the run
raises a :class:`VupsertError`; rejected records are counted on the returned
:class:`Summary`. :func:`sync`, :func:`export`, :func:`verify` and :func:`delete` do what
the commands of those names do.
"""

from ._version import __version__
from .api import Records, delete, export, info, prepare, prepare_sync, sync, upsert, verify
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
from .outcomes import (
    DeleteSummary,
    Events,
    ExportSummary,
    NoEvents,
    Problem,
    Settlement,
    Summary,
    SyncSummary,
    VerifySummary,
)
from .records import Rejection

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
    "InputError",
    "NoEvents",
    "OutputError",
    "PreflightError",
    "Problem",
    "Records",
    "Rejection",
    "ServerError",
    "Settlement",
    "StoppedEarly",
    "StrictModeError",
    "Summary",
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
    "sync",
    "upsert",
    "verify",
]
