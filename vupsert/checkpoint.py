"""The settled prefix of every input, kept across runs so that a rerun carries on.

Batches finish out of order; only the prefix up to the oldest unsettled batch is
recorded, so after a crash at any moment a rerun re-sends at most the batches that were
in flight (upserts are idempotent) and never skips one that was not settled.

The file is JSON, replaced atomically (temporary file, fsync, rename). It holds paths,
byte offsets, line numbers, counts, fingerprints and the rejects file's length; never
the URL's credentials or the token. A lock file next to it keeps two runs apart.

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

from .errors import CheckpointError, InputError, OutputError
from .records import Position
from .settings import option
from .sources import display_name, is_stream, read_prefix

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
        with open(name, "rb") as f:
            f.seek(max(0, offset - SAMPLE))
            tail = f.read(offset - max(0, offset - SAMPLE))
    except (OSError, InputError):
        return "unreadable", ""
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
        self.rejects_offset = 0
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

    def _acquire_lock(self) -> None:
        if fcntl is None:
            return
        lock_path = self._file.with_name(self._file.name + ".lock")
        try:
            handle = open(lock_path, "a+", encoding="utf-8")  # noqa: SIM115 - held open
        except OSError as exc:
            raise CheckpointError(
                f"Cannot create the lock file {lock_path}: {exc.strerror}.",
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
        payload = {
            "version": VERSION,
            "index": self.index,
            "namespace": self.namespace,
            "inputs": {key: vars(state) for key, state in self.states.items()},
            "rejects_path": self.rejects_path,
            "rejects_offset": self.rejects_offset,
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

    def close(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None
