"""Everything a run needs, as frozen values built once by the CLI (or by a test)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from .records import MAX_BATCH_RECORDS

Format = Literal["auto", "jsonl", "csv", "tsv"]


def option(setting: str, value: object = None) -> str:
    """How a message names a setting (and a value for it) to the user."""
    flag = "--" + setting.replace("_", "-")
    return flag if value is None else f"{flag} {value}"


IdFrom = Literal["field", "hash", "line"]


class Secret:
    """A string that never shows itself in a repr, a str, a log line or a traceback."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class ReadOptions:
    """How inputs are opened and split into rows."""

    format: Format = "auto"
    delimiter: str | None = None
    """CSV/TSV delimiter; ``None`` means ``,`` for CSV and tab for TSV."""
    columns: tuple[str, ...] | None = None
    """Column names for header-less CSV/TSV; ``None`` means the first row is the header."""
    whole_lines: bool = False
    """Leave a last line that has no newline yet for the next run: with a checkpoint on
    a file that is still being written, it may be half a record."""


@dataclass(frozen=True)
class MappingOptions:
    """How a row becomes ``{id, data, metadata}``."""

    id_field: str = "id"
    data_field: str = "data"
    metadata_field: str = "metadata"
    metadata_columns: tuple[str, ...] | None = None
    """CSV/TSV: only these columns become metadata; ``None`` means all but id and data."""
    infer_types: bool = True
    """CSV/TSV: metadata cells become int/float/bool where they look like one."""
    data_template: str | None = None
    id_template: str | None = None
    id_from: IdFrom = "field"
    shard: tuple[int, int] | None = None
    """``(k, n)``: keep only records whose id hashes to k modulo n."""


@dataclass(frozen=True)
class Settings:
    """One run of ``vupsert upsert``."""

    url: str
    token: Secret
    inputs: tuple[str, ...] = ("-",)
    namespace: str = ""
    read: ReadOptions = field(default_factory=ReadOptions)
    mapping: MappingOptions = field(default_factory=MappingOptions)
    batch_size: int = MAX_BATCH_RECORDS
    max_batch_bytes: int = 8 * 1024 * 1024
    timeout: float = 600.0
    concurrency: int = 4
    retries: int = 15
    max_backoff: float = 30.0
    rejects: Path | None = None
    checkpoint: Path | None = None
    restart: bool = False
    report: Path | None = None
    dry_run: bool = False
    strict: bool = False
    fail_fast: bool = False
    preflight: bool = True
    allow_insecure_http: bool = False
