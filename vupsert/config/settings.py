"""Everything a command needs, as frozen values, and every default, defined once.

:func:`~vupsert.config.build_settings` makes :class:`Settings` from keyword options, for
Python callers and the CLI alike.
"""

from __future__ import annotations

import codecs
import functools
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Literal

from ..errors import ConfigError
from ..records import MAX_BATCH_RECORDS
from ._secret import Secret
from ._spelling import option

Format = Literal["auto", "jsonl", "json", "csv", "tsv", "parquet"]
IdsFormat = Literal["auto", "text", "jsonl", "json", "csv", "tsv", "parquet"]
"""How a list of ids to delete is read: ``text`` is one id a line, as written."""
IdFrom = Literal["field", "hash", "line"]
ColumnType = Literal["str", "int", "float", "bool", "json"]
"""What ``types`` may make of a CSV/TSV column's cells."""

FORMAT: Format = "auto"
ENCODING = "utf-8"
"""How text inputs (JSON Lines, JSON, CSV, TSV, lists of ids) are decoded."""
IDS_FORMAT: IdsFormat = "auto"
ID_FIELD = "id"
DATA_FIELD = "data"
METADATA_FIELD = "metadata"
ID_FROM: IdFrom = "field"
INFER_TYPES = True
BATCH_SIZE = MAX_BATCH_RECORDS
MAX_BATCH_BYTES = 8 * 1024 * 1024
"""A batch also closes at this many bytes of request body."""
TIMEOUT = 600.0
"""Seconds to wait for one request's answer: a big batch can take minutes to embed."""
CONCURRENCY = 64
"""Batches in flight, at most. The pacing finds how many the server takes, below this:
at 64 batches of 1,000 records of ~600 bytes, the client peaks near 75 MB."""
MAX_CONCURRENCY = 256
RETRIES = 15
"""Retries of a batch after a 5xx, a timeout or a network error: with the backoff below,
about 2.5 minutes of trying."""
MAX_BACKOFF = 30.0
"""Longest wait between two retries, in seconds."""
THROTTLED_TIMEOUT = 300.0
"""Seconds a command goes on while nothing lands and every answer is 429 before it decides
that the index's quota is used up and stops (a 429 that says so stops it at once). A rate
limit lets some requests through within seconds; a quota that is used up refuses them all
until it resets, and Upstash does not say when."""
CHUNK_OVERLAP = 0
"""Characters a chunk repeats of the one before it, when ``chunk_size`` splits data."""
MAX_CHUNK_SIZE = 262_144
"""A chunk of this many characters fits Upstash's 1 MB of data even at 4 bytes each."""
TOP_K = 10
"""Records a query answers, by default: the SDKs' default."""
MAX_TOP_K = 1000
"""The most records one query may ask for: Upstash's limit of ``topK``."""


@dataclass(frozen=True)
class ReadOptions:
    """How inputs are opened and split into rows."""

    format: Format = FORMAT
    delimiter: str | None = None
    """CSV/TSV delimiter; ``None`` means ``,`` for CSV and tab for TSV."""
    columns: tuple[str, ...] | None = None
    """Column names for header-less CSV/TSV; ``None`` means the first row is the header."""
    encoding: str = ENCODING
    """The encoding of text inputs: UTF-8, or one in which every ASCII character (the
    newline, quotes, brackets, delimiters) is its one byte and no longer sequence holds
    an ASCII byte (Latin-1, cp1252, ...; :func:`check_encoding`)."""
    whole_lines: bool = False
    """Leave a last line that has no newline yet for the next run: with a checkpoint on
    a file that is still being written, it may be half a record."""

    def __post_init__(self) -> None:
        check_encoding(self.encoding)


def check_encoding(name: object) -> str:
    """``name``'s codec (``utf-8`` for ``UTF8``), if inputs in it can be read: lines,
    quotes and delimiters are found in the bytes, and positions count bytes. Else a
    :class:`~vupsert.errors.ConfigError` that says what to do."""
    if not isinstance(name, str):
        raise ConfigError(f"{option('encoding', name)}: an encoding is named by a string.")
    try:
        info = codecs.lookup(name)
    except LookupError:
        info = None
    # base64, zlib, rot13 are codecs, but not of text.
    if info is None or not getattr(info, "_is_text_encoding", True):
        raise ConfigError(
            f"{option('encoding', name)}: there is no such text encoding",
            hint="Name one as Python does: utf-8, latin-1, cp1252, iso-8859-15, ...",
        )
    codec = "utf-8" if info.name == "utf-8-sig" else info.name  # a BOM is skipped anyway
    if codec != "utf-8" and not _ascii_safe(codec):
        raise ConfigError(
            f"{option('encoding', name)}: vupsert reads text in which a newline and every "
            f"other ASCII character are one byte each, as UTF-8, Latin-1 and cp1252 have "
            f"them; {name} is not such an encoding",
            hint=f"Convert the input to UTF-8 first: iconv -f {name} -t UTF-8 FILE > "
            f"FILE.utf8 (or pipe it in: iconv -f {name} -t UTF-8 FILE | vupsert upsert - ...).",
        )
    return codec


_BEYOND_ASCII = "é€Жあ中한"
"""Characters most encodings beyond ASCII have one of."""


@functools.lru_cache(maxsize=8)
def _ascii_safe(codec: str) -> bool:
    """Whether ``codec`` writes every ASCII character as that one byte and no character
    as bytes that hold an ASCII one (as Shift JIS and GBK do, UTF-16 everywhere)."""
    ascii = bytes(range(128))
    try:
        if ascii.decode(codec) != ascii.decode("ascii") or "\n".encode(codec) != b"\n":
            return False
        for char in _BEYOND_ASCII:
            try:
                if min(char.encode(codec)) < 128:  # ISO-2022's escapes, IDNA's xn--
                    return False
            except UnicodeEncodeError:
                continue
        for lead in range(128, 256):
            for low in range(128):
                try:
                    text = bytes((lead, low)).decode(codec)
                except UnicodeDecodeError:
                    continue  # no such pair in text of this encoding
                if not text.endswith(chr(low)):
                    return False
    except UnicodeError:
        return False
    return True


@dataclass(frozen=True)
class MappingOptions:
    """How a row becomes ``{id, data, metadata}``."""

    id_field: str = ID_FIELD
    data_field: str = DATA_FIELD
    metadata_field: str = METADATA_FIELD
    metadata_columns: tuple[str, ...] | None = None
    """CSV/TSV: only these columns become metadata; ``None`` means all but id and data."""
    infer_types: bool = INFER_TYPES
    """CSV/TSV: metadata cells become int/float/bool where they look like one."""
    types: tuple[tuple[str, ColumnType], ...] = ()
    """CSV/TSV: ``(column, type)`` pairs; these columns' cells become that type whatever
    ``infer_types`` says, and a cell that does not fit is rejected."""
    data_template: str | None = None
    id_template: str | None = None
    id_from: IdFrom = ID_FROM
    shard: tuple[int, int] | None = None
    """``(k, n)``: keep only records whose id hashes to k modulo n."""
    chunk_size: int | None = None
    """Split each record's data into chunks of at most this many characters, each sent
    as a record of its own (see :mod:`vupsert.mapping.chunking`); ``None`` sends data whole."""
    chunk_overlap: int = CHUNK_OVERLAP
    """Characters each chunk repeats from the end of the one before it."""


@dataclass(frozen=True)
class Settings:
    """One command (``upsert``, ``sync``, ``verify``; the connection of ``export`` and
    ``delete``): the index, the inputs, and every option."""

    url: str
    token: Secret
    inputs: tuple[str, ...] = ("-",)
    """Paths, ``-`` for stdin."""
    namespace: str = ""
    read: ReadOptions = field(default_factory=ReadOptions)
    mapping: MappingOptions = field(default_factory=MappingOptions)
    batch_size: int = BATCH_SIZE
    max_batch_bytes: int = MAX_BATCH_BYTES
    timeout: float = TIMEOUT
    concurrency: int = CONCURRENCY
    retries: int = RETRIES
    max_backoff: float = MAX_BACKOFF
    throttled_timeout: float = THROTTLED_TIMEOUT
    rejects: Path | None = None
    checkpoint: Path | None = None
    restart: bool = False
    report: Path | None = None
    dry_run: bool = False
    strict: bool = False
    fail_fast: bool = False
    preflight: bool = True
    allow_insecure_http: bool = False


READ_OPTIONS = frozenset(f.name for f in fields(ReadOptions)) - {"whole_lines"}
MAPPING_OPTIONS = frozenset(f.name for f in fields(MappingOptions))
_RUN = frozenset(f.name for f in fields(Settings)) - {
    "url",
    "token",
    "inputs",
    "namespace",
    "read",
    "mapping",
}
OPTIONS = READ_OPTIONS | MAPPING_OPTIONS | _RUN
"""Every option of a run by its Python name: the CLI's options, ``-`` spelled ``_``."""
CONNECTION_OPTIONS = frozenset(
    {"timeout", "retries", "max_backoff", "throttled_timeout", "allow_insecure_http"}
)
"""The options of a command that talks to the index with no input to read (export,
delete): how long to wait, how often to retry, how long to wait out 429s, whether plain
http may carry the token."""
