"""Exit statuses and the one exception tree of vupsert.

The core raises; only the command line (``vupsert.cli``) turns an exception into a
message and an exit status.

    VupsertError                     (any expected failure; message is for the user)
    ├── UsageError                   -> exit 2: bad options or configuration, nothing sent
    │   ├── ConfigError              missing URL/token, insecure URL, bad template ...
    │   ├── ColumnError              a column the options name is not in a CSV header
    │   └── CheckpointError          checkpoint locked, corrupt, or input changed under it
    ├── InputError                   -> exit 3: an input cannot be read at all
    ├── CallerError                  -> exit 3: a Python caller's records iterable or
    │                                   callback raised: what was in flight settled
    ├── OutputError                  -> exit 3: the rejects, report or checkpoint file
    │                                   cannot be written (a full disk): the run stops
    ├── StoppedEarly                 -> exit 1: the run stopped itself on purpose
    │   ├── StrictModeError          --strict and a record was invalid
    │   ├── FailFastError            --fail-fast and a batch failed for good
    │   └── DeletionRefused          -> exit 4: a sync would delete more than --max-delete
    │                                   allows, so it deleted nothing
    └── ServerError                  -> exit 3: the server's answer means no batch can succeed
        ├── PreflightError           /info says the index cannot embed text
        └── QuotaExhausted           every write is refused with 429 until a quota resets:
                                     what was in flight settled, nothing was rejected

A bad *record* is not an exception: it becomes a :class:`~vupsert.records.Rejection` and
the run goes on. Transient HTTP failures are not exceptions either: the transport makes
them answers, and the run batch outcomes.
"""

from __future__ import annotations

import enum
from typing import Any


class ExitStatus(enum.IntEnum):
    """What the process exit code tells a script."""

    SUCCESS = 0
    """Every record read was upserted (or skipped because a checkpoint settled it)."""
    PARTIAL = 1
    """The run finished, but some records were rejected or their batch failed."""
    USAGE = 2
    """Usage or configuration error; nothing was sent."""
    STOPPED = 3
    """Stopped by the server's answer (auth, no embedding model, a quota used up),
    unreadable input, or an output (rejects, report, checkpoint) that cannot be written."""
    DELETION_REFUSED = 4
    """A sync's guard (``--max-delete``) refused to delete: the source lacks more stored
    records than it allows. Nothing was deleted; what the source holds was upserted."""
    INTERRUPTED = 130
    """Interrupted by Ctrl-C or SIGTERM; the checkpoint and summary were written."""


class VupsertError(Exception):
    """An expected failure, with a message fit to show a user as it is."""

    exit_status: ExitStatus = ExitStatus.STOPPED

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.summary: Any = None
        """The :class:`~vupsert.outcomes.Summary` of what the run had done when this
        stopped it (set by :func:`vupsert.upsert`; typed loosely so that this module,
        the bottom of the package, imports nothing of it)."""

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n{self.hint}"
        return self.message


class UsageError(VupsertError):
    """Bad options or a bad invocation, found before anything was sent."""

    exit_status = ExitStatus.USAGE


class ConfigError(UsageError):
    """The URL, the token or another setting cannot be used: missing, insecure, malformed."""


class ColumnError(UsageError):
    """Every row of the input would be rejected alike: the options do not fit it."""


class CheckpointError(UsageError):
    """The checkpoint cannot be used: locked by another run, corrupt, or written for
    inputs that have changed since."""


class InputError(VupsertError):
    """An input cannot be read at all (missing, truncated, not the format it claims)."""

    exit_status = ExitStatus.STOPPED


class CallerError(VupsertError):
    """The code of the Python caller raised: its records iterable, or a ``progress`` or
    ``events`` callback. The run stopped as if its input had ended there; the caller
    gets its own exception back (:attr:`raised`), with the summary on it."""

    exit_status = ExitStatus.STOPPED

    def __init__(self, raised: Exception, where: str) -> None:
        super().__init__(
            f"{where} raised {type(raised).__name__}: {raised}",
            hint="What was read before it was sent and has settled (a checkpoint keeps it).",
        )
        self.raised = raised


class OutputError(VupsertError):
    """A file the run writes could not be written; what it would have held is counted."""

    exit_status = ExitStatus.STOPPED

    def __init__(
        self, path: object, exc: OSError, *, unrecorded: int = 0, hint: str | None = None
    ) -> None:
        self.path = path
        self.reason = exc.strerror or str(exc) or type(exc).__name__
        message = f"could not write {path}: {self.reason}"
        if unrecorded:
            message += (
                f"; {unrecorded:,} rejected record{'s' if unrecorded != 1 else ''} could not "
                "be written to it"
            )
        super().__init__(
            message,
            hint=hint or "Free some space (or choose another path) and run the same command again.",
        )
        self._exc = exc

    def advising(self, hint: str, *, unrecorded: int) -> OutputError:
        """The same error, with what a rerun does, and how many rejected records it kept
        out of the file."""
        return OutputError(self.path, self._exc, unrecorded=unrecorded, hint=hint)


class StoppedEarly(VupsertError):
    """The run stopped itself on purpose, as an option asked; what was in flight settled."""

    exit_status = ExitStatus.PARTIAL


class DeletionRefused(StoppedEarly):
    """A sync would delete more stored records than its guard allows; nothing deleted."""

    exit_status = ExitStatus.DELETION_REFUSED


class StrictModeError(StoppedEarly):
    """``strict`` met a record that is not valid."""


class FailFastError(StoppedEarly):
    """``fail_fast`` met a batch that failed for good."""


class ServerError(VupsertError):
    """The server answered in a way that means no further batch can succeed."""

    exit_status = ExitStatus.STOPPED

    def __init__(self, message: str, *, status: int | None = None, hint: str | None = None):
        super().__init__(message, hint=hint)
        self.status = status


class PreflightError(ServerError):
    """``/info`` says the index cannot take raw text: it has no embedding model."""


class QuotaExhausted(ServerError):
    """The index's quota looks used up (Upstash's free plan allows 10,000 upserted vectors a
    day): every request is answered 429 until it resets. The records not sent, or refused
    for it, are not settled (a rerun sends them), never rejected."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message, status=429, hint=hint)
