"""vupsert: bulk-load text into an Upstash Vector index, in batches, without losing a record.

From Python::

    import vupsert

    summary = vupsert.upsert("docs.jsonl", namespace="docs", rejects="rejects.jsonl")
    print(summary.records_upserted, summary.records_rejected)

:func:`upsert` takes a path, a list of paths, a binary file or any iterable of dicts, and
every option of ``vupsert upsert`` under its Python name. An error that stops the run
raises a :class:`VupsertError`; rejected records are counted on the returned
:class:`Summary`.
"""

from ._version import __version__
from .api import Records, prepare, upsert
from .errors import (
    CheckpointError,
    ConfigError,
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
from .outcomes import Events, NoEvents, Settlement, Summary
from .records import Rejection
from .settings import OPTIONS

__all__ = [
    "OPTIONS",
    "CheckpointError",
    "ConfigError",
    "Events",
    "ExitStatus",
    "FailFastError",
    "InputError",
    "NoEvents",
    "OutputError",
    "PreflightError",
    "Records",
    "Rejection",
    "ServerError",
    "Settlement",
    "StoppedEarly",
    "StrictModeError",
    "Summary",
    "UsageError",
    "VupsertError",
    "__version__",
    "prepare",
    "upsert",
]
