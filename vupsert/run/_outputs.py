"""The files a run writes beside the index (the rejects file, the checkpoint, the report
file): checked together before any is opened, opened and closed together.

An output that is also an input, or two outputs that are one file, would destroy data:
``--report in.jsonl`` used to empty the input, one path for the rejects file and the
checkpoint kept only the checkpoint. Paths are compared resolved (symlinks followed) and,
where both exist, by device and inode, so a hard link or a second name is caught too.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from urllib.parse import urlsplit

import orjson

from ..config.settings import Settings
from ..errors import ConfigError, OutputError, UsageError
from ..inputs import is_stream
from ..outcomes import Events, NoEvents, Settlement, Summary
from ._checkpoint import Checkpoint, lock_path
from ._files import write_fully
from ._rejects import RejectsWriter


class Outputs:
    """The outputs of one run, each ``None`` when the run does not write it."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self.checkpoint: Checkpoint | None = None
        self.rejects: RejectsWriter | None = None
        self.report: ReportFile | None = None

    def check(self) -> None:
        """Refuse paths that would destroy an input or another output."""
        settings = self._settings
        check_outputs(
            settings.inputs,
            {
                "the rejects file": settings.rejects,
                "the report file": settings.report,
                "the checkpoint": settings.checkpoint,
                "the checkpoint's lock file": lock_path(settings.checkpoint)
                if settings.checkpoint
                else None,
            },
        )

    def open(self, events: Events | None = None) -> None:
        """Take the checkpoint's lock and read it, then open the files to write."""
        settings = self._settings
        if settings.checkpoint is not None and not settings.dry_run:
            self.checkpoint = Checkpoint(
                settings.checkpoint,
                settings.inputs,
                namespace=settings.namespace,
                # The host only: a URL may carry credentials, the checkpoint never does.
                index=_index_address(settings.url),
                restart=settings.restart,
            )
        if settings.rejects is not None:
            self.rejects = self._open_rejects(settings.rejects, events or NoEvents())
        if self.checkpoint is not None:
            self.checkpoint.rejects_path = (
                str(settings.rejects.resolve()) if settings.rejects else None
            )
            self.checkpoint.rejects_offset = self.rejects.offset() if self.rejects else 0
        if settings.report is not None:
            self.report = ReportFile(settings.report)

    def _open_rejects(self, path: Path, events: Events) -> RejectsWriter:
        """The rejects file, holding the rejects of what the checkpoint says is settled
        (the records a rerun skips): one file has every reject of the run."""
        checkpoint = self.checkpoint
        if checkpoint is None:
            return RejectsWriter(path)
        earlier = checkpoint.earlier_rejects(path)
        if earlier is None:
            return RejectsWriter(path)
        writer = RejectsWriter(path, keep=checkpoint.rejects_offset, kept_from=earlier)
        if writer.copied_lines:
            events.warning(
                f"the rejects file {path} starts with the {writer.copied_lines:,} lines of "
                f"{earlier} that the checkpoint counts as settled; {earlier} is no longer "
                "used."
            )
        return writer

    def close(self) -> None:
        """Release the checkpoint's lock and close the files (the report closes itself
        when the run finishes)."""
        if self.checkpoint is not None:
            self.checkpoint.close()
        if self.rejects is not None:
            self.rejects.close()


class ReportFile(NoEvents):
    """The report file: one JSON line per batch, for CI artifacts and debugging."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            # Unbuffered: one write per batch, and a failed write is known at once.
            self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        except OSError as exc:
            raise ConfigError(f"Cannot write the report file {path}: {exc.strerror}.") from None
        self._broken = False

    def batch_done(self, settlement: Settlement, summary: Summary) -> None:
        if self._broken:
            return
        batch = settlement.batch
        line = {
            "batch": batch.seq,
            "span": batch.span,
            "records": batch.size,
            "sent": batch.sent,
            "upserted": settlement.upserted,
            "superseded": settlement.superseded,
            "rejected": len(settlement.rejected) + len(batch.rejections),
            "outcome": settlement.outcome,
            "attempts": settlement.attempts,
            "requests": settlement.requests,
            "status": settlement.status,
            "error": settlement.error,
            "duration_s": round(settlement.duration, 4),
        }
        try:
            write_fully(self._fd, orjson.dumps(line) + b"\n")
        except OSError as exc:
            self._broken = True
            raise OutputError(self.path, exc) from None

    def finished(self, summary: Summary) -> None:
        os.close(self._fd)


def _index_address(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port}" if parts.port else parts.hostname or ""


def _same(a: Path, b: Path) -> bool:
    if a.resolve() == b.resolve():
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def check_outputs(inputs: Iterable[str], outputs: Mapping[str, Path | None]) -> None:
    """Raise :class:`UsageError` unless every output is a file of its own.

    ``outputs`` maps what each file is ("the rejects file") to its path, ``None`` when the
    run does not write it. Nothing is opened, created or truncated here.
    """
    named = [(what, path) for what, path in outputs.items() if path is not None]
    files = [Path(name) for name in inputs if not is_stream(name)]
    for n, (what, path) in enumerate(named):
        if path.is_dir():
            raise UsageError(
                f"{what.capitalize()} {path} is a folder.",
                hint=f"Give {what} a file name, for example {path / 'out.jsonl'}.",
            )
        for source in files:
            if _same(path, source):
                raise UsageError(
                    f"{what.capitalize()} {path} is the input {source}: writing it would "
                    "destroy the input. Nothing was read or written.",
                    hint=f"Write {what} to another path.",
                )
        for other_what, other in named[n + 1 :]:
            if _same(path, other):
                raise UsageError(
                    f"{what.capitalize()} and {other_what} are one file ({path}): each would "
                    "overwrite the other. Nothing was read or written.",
                    hint="Give each output a path of its own.",
                )
