"""The settled prefix of every input, kept across runs so that a rerun carries on.

Batches finish out of order; only the prefix up to the oldest unsettled batch is
recorded, so after a crash at any moment a rerun re-sends at most the batches that were
in flight (upserts are idempotent) and never skips one that was not settled.

The file is JSON, replaced atomically (temporary file, fsync, rename). It holds paths,
byte offsets, line numbers, counts, fingerprints and the rejects file's length and
fingerprint (so that a rerun finds its lines, on the same path or moved); never the URL's
credentials or the token.

Two runs cannot share a checkpoint: a run holds a lock on ``PATH.lock`` beside it (the
checkpoint itself is replaced at each save, and a lock on a replaced file holds nothing),
and removes that file as it ends. One left by a run that was killed is taken by the next.

A settled prefix is fingerprinted by SHA-256 of its first and last 64 KiB (of the
decompressed stream). A rewrite, truncation or rotation of the file changes one of them;
an edit in the middle of a large settled prefix would not be noticed.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson

from ..config import option
from ..errors import CheckpointError, InputError, OutputError
from ..inputs import display_name, is_stream, read_prefix
from ..records import Position

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Windows
    fcntl = None  # type: ignore[assignment]

VERSION = 1
SAMPLE = 64 * 1024


@dataclass
class InputState:
    offset: int = 0
    line: int = 0
    records: int = 0
    head: str = ""
    tail: str = ""


@dataclass(frozen=True)
class Start:
    """Where a run starts in one input, and how many records that skips."""

    position: Position | None
    skipped: int


def input_key(name: str) -> str:
    """How the checkpoint names an input: a file by its resolved path, a stream by its
    display name."""
    return display_name(name) if is_stream(name) else str(Path(name).resolve())


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fingerprint(name: str, offset: int) -> tuple[str, str]:
    """``(head, tail)`` hashes of the first ``offset`` bytes of an input.

    For compressed inputs only the head is checked: reaching the tail would mean
    decompressing the whole prefix again.
    """
    if is_stream(name) or offset <= 0:
        return "", ""
    try:
        head, compressed = read_prefix(name, min(offset, SAMPLE))
        if compressed:
            return _sha(head), ""
        tail = _tail(name, offset)
    except (OSError, InputError):
        return "unreadable", ""
    return _sha(head), _sha(tail)


def _tail(path: str | Path, offset: int) -> bytes:
    """The last ``SAMPLE`` bytes (or fewer) before ``offset`` of a plain file."""
    with open(path, "rb") as f:
        f.seek(max(0, offset - SAMPLE))
        return f.read(offset - max(0, offset - SAMPLE))


def file_fingerprint(path: str | Path, offset: int) -> tuple[str, str]:
    """``(head, tail)`` hashes of a plain file's first ``offset`` bytes; ``("", "")``
    when it cannot be read or is shorter than that."""
    try:
        with open(path, "rb") as f:
            head = f.read(min(offset, SAMPLE))
        tail = _tail(path, offset)
    except OSError:
        return "", ""
    if len(tail) < min(offset, SAMPLE):
        return "", ""
    return _sha(head), _sha(tail)


class Checkpoint:
    """A locked checkpoint file for one set of inputs."""

    def __init__(
        self,
        path: Path,
        inputs: tuple[str, ...],
        *,
        namespace: str,
        index: str = "",
        restart: bool = False,
    ) -> None:
        self.path = path
        """As given, for messages."""
        self._file = path.resolve()
        """What it names: a symlinked checkpoint is locked, read and replaced at its
        target, so two runs through two names still exclude each other."""
        self.index = index
        self.inputs = inputs
        self.keys = [input_key(name) for name in inputs]
        self.namespace = namespace
        self.rejects_path: str | None = None
        """The rejects file (resolved) whose first ``rejects_offset`` bytes are the lines
        of the settled prefix, fingerprinted by ``rejects_sums``."""
        self.rejects_offset = 0
        self.rejects_sums = ("", "")
        self._lock: IO[str] | None = None
        self._acquire_lock()
        try:
            data = self._load() if not restart else None
        except BaseException:
            self.close()
            raise
        self.states: dict[str, InputState] = {}
        if data is not None:
            self._adopt(data)
        # What the previous run settled (to validate and resume) and the offsets last
        # fingerprinted (so a save hashes only inputs that moved).
        self._resume = {key: InputState(**vars(state)) for key, state in self.states.items()}
        self._hashed = {key: state.offset for key, state in self.states.items()}
        self._rejects_hashed: tuple[str | None, int] = (self.rejects_path, self.rejects_offset)

    def _acquire_lock(self) -> None:
        if fcntl is None:
            return
        locked = lock_path(self._file)
        while True:
            try:
                handle = open(locked, "a+", encoding="utf-8")  # noqa: SIM115 - held open
            except OSError as exc:
                raise CheckpointError(
                    f"Cannot create the lock file {locked}: {exc.strerror}.",
                    hint="Choose a path for the checkpoint in a writable folder.",
                ) from None
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.seek(0)
                holder = handle.read().strip() or "unknown"
                handle.close()
                raise CheckpointError(
                    f"The checkpoint {self.path} is in use by another run (pid {holder}).",
                    hint="Wait for that run to finish, or give this one a checkpoint of its own.",
                ) from None
            if _names(locked, handle):
                break
            # The run that held it removed it as it ended, after it was opened here: a
            # lock on it would exclude nobody. The file at the path is the one to take.
            handle.close()
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._lock = handle

    def _load(self) -> dict[str, Any] | None:
        try:
            raw = self._file.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise CheckpointError(f"Cannot read the checkpoint {self.path}: {exc}") from None
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            data = None
        if not isinstance(data, dict) or data.get("version") != VERSION:
            raise CheckpointError(
                f"The checkpoint {self.path} is not a vupsert checkpoint (or is damaged).",
                hint=f"Pass {option('restart', True)} to start from the beginning and "
                "overwrite it.",
            )
        return data

    def _adopt(self, data: dict[str, Any]) -> None:
        if data.get("index", "") != self.index:
            raise CheckpointError(
                f"The checkpoint {self.path} was written for the index at "
                f"{data.get('index') or '(none)'}, not {self.index}.",
                hint=f"Use another checkpoint for this index, or {option('restart', True)}.",
            )
        if data.get("namespace", "") != self.namespace:
            raise CheckpointError(
                f"The checkpoint {self.path} belongs to namespace "
                f"{data.get('namespace', '')!r}, not {self.namespace!r}.",
                hint=f"Use another checkpoint for this namespace, or {option('restart', True)}.",
            )
        for key, state in (data.get("inputs") or {}).items():
            self.states[key] = InputState(**state)
        self.rejects_path = data.get("rejects_path")
        self.rejects_offset = int(data.get("rejects_offset") or 0)
        self.rejects_sums = (data.get("rejects_head", ""), data.get("rejects_tail", ""))

    def start(self, index: int) -> Start:
        """Where input ``index`` resumes; refuses an input that changed under us."""
        name, key = self.inputs[index], self.keys[index]
        state = self._resume.get(key)
        if state is None or state.offset == 0:
            return Start(None, 0)
        if not is_stream(name):
            try:
                size = os.path.getsize(name)
            except OSError:
                size = -1
            if (state.tail and size < state.offset) or (
                state.head,
                state.tail,
            ) != fingerprint(name, state.offset):
                raise CheckpointError(
                    f"{name} changed since the checkpoint {self.path} was written: its "
                    f"first {state.offset:,} bytes are not the ones already loaded.",
                    hint=f"Pass {option('restart', True)} to load it from the beginning "
                    "(upserts are idempotent), or use a new checkpoint.",
                )
        return Start(Position(state.offset, state.line), state.records)

    def advance(self, index: int, end: Position, records: int) -> None:
        """The span of input ``index`` up to ``end`` is settled, holding ``records``."""
        state = self.states.setdefault(self.keys[index], InputState())
        state.offset, state.line = end.offset, end.line
        state.records += records

    def save(self) -> None:
        for index, key in enumerate(self.keys):
            state = self.states.get(key)
            if state is None:
                continue
            if self._hashed.get(key) != state.offset:
                state.head, state.tail = fingerprint(self.inputs[index], state.offset)
                self._hashed[key] = state.offset
        if self._rejects_hashed != (self.rejects_path, self.rejects_offset):
            self.rejects_sums = (
                file_fingerprint(self.rejects_path, self.rejects_offset)
                if self.rejects_path and self.rejects_offset
                else ("", "")
            )
            self._rejects_hashed = (self.rejects_path, self.rejects_offset)
        payload = {
            "version": VERSION,
            "index": self.index,
            "namespace": self.namespace,
            "inputs": {key: vars(state) for key, state in self.states.items()},
            "rejects_path": self.rejects_path,
            "rejects_offset": self.rejects_offset,
            "rejects_head": self.rejects_sums[0],
            "rejects_tail": self.rejects_sums[1],
        }
        directory = self._file.parent
        tmp = None
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{self._file.name}.", dir=directory)
            with os.fdopen(fd, "wb") as f:
                f.write(orjson.dumps(payload, option=orjson.OPT_INDENT_2))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self._file)
        except BaseException as exc:
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
            if isinstance(exc, OSError):
                # The previous checkpoint is still whole: a rerun resumes from there.
                raise OutputError(self.path, exc) from None
            raise

    def earlier_rejects(self, path: Path) -> Path | None:
        """The file that holds the rejects of the settled prefix, for a run that writes
        its rejects file at ``path``: ``path`` itself (the same file, or the last run's
        moved there), else the last run's file; ``None`` when there are none, or no file
        is left of them (it was removed).

        Raises :class:`CheckpointError` when a file there no longer starts with them: it
        was edited, and cutting it back to the checkpoint would destroy the edits.
        """
        if not self.rejects_path or not self.rejects_offset:
            return None
        last = Path(self.rejects_path)
        for candidate in (path, last):
            if self._holds_rejects(candidate):
                return candidate
        changed = next((p for p in (last, path) if p.exists()), None)
        if changed is None:
            return None
        raise CheckpointError(
            f"The rejects file {changed} changed since the checkpoint {self.path} was "
            f"written: its first {self.rejects_offset:,} bytes are no longer the rejects "
            "of what the checkpoint says is settled.",
            hint=f"Move {changed} away and run again (its lines are then not in this run's "
            f"rejects file), or pass {option('restart', True)} to load the inputs again "
            "from the beginning.",
        )

    def _holds_rejects(self, path: Path) -> bool:
        if not path.is_file():
            return False
        if any(self.rejects_sums):
            return file_fingerprint(path, self.rejects_offset) == self.rejects_sums
        # A checkpoint written before rejects files were fingerprinted names its own.
        return (
            str(path.resolve()) == self.rejects_path and path.stat().st_size >= self.rejects_offset
        )

    def close(self) -> None:
        """Release the lock, and remove its file while it is still held (a run that opened
        it in between then takes the next one: see :meth:`_acquire_lock`)."""
        if self._lock is not None:
            with contextlib.suppress(OSError):
                if _names(lock_path(self._file), self._lock):
                    os.unlink(lock_path(self._file))
            self._lock.close()
            self._lock = None


def lock_path(checkpoint: Path) -> Path:
    """The lock file beside a checkpoint (of the file a symlink points at)."""
    target = checkpoint.resolve()
    return target.with_name(target.name + ".lock")


def _names(path: Path, handle: IO[str]) -> bool:
    """Whether ``path`` is the file ``handle`` has open."""
    try:
        named, opened = os.stat(path), os.fstat(handle.fileno())
    except OSError:
        return False
    return (named.st_dev, named.st_ino) == (opened.st_dev, opened.st_ino)
