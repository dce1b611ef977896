"""The files a run writes beside the index, checked together before any is opened.

An output that is also an input, or two outputs that are one file, would destroy data:
``--report in.jsonl`` used to empty the input, one path for the rejects file and the
checkpoint kept only the checkpoint. Paths are compared resolved (symlinks followed) and,
where both exist, by device and inode, so a hard link or a second name is caught too.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from .errors import UsageError

STDIN = "-"


def write_fully(fd: int, data: bytes) -> None:
    """Write all of ``data`` to ``fd``: a write near a size limit can take only part."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def lock_path(checkpoint: Path) -> Path:
    """The lock file beside a checkpoint (of the file a symlink points at)."""
    target = checkpoint.resolve()
    return target.with_name(target.name + ".lock")


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
    files = [Path(name) for name in inputs if name != STDIN]
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
