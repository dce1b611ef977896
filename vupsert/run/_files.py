"""Writing to the files a run keeps: whole, or not at all."""

from __future__ import annotations

import os


def write_fully(fd: int, data: bytes) -> None:
    """Write all of ``data`` to ``fd``: a write near a size limit can take only part."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
