"""The command line's options, each written once: groups shared by several commands, and
the few that one command has.

A group is a class whose annotated attributes are its options (``Annotated[type,
typer.Option(...)]``, the value the default, the library's from
:mod:`vupsert.config.settings`). A command names a group as one typed parameter
(``records: Records``): :func:`grouped` puts the group's options in its place in the
signature Typer reads, and hands the command one ``Records`` value, whose
:meth:`~Group.keywords` are the library's keyword arguments (``**records.keywords()``).
Adding an option to :class:`Records` adds it to upsert, sync and verify, as sqlite-utils's
``insert_upsert_options`` does for its two commands.
"""

# No "from __future__ import annotations": Typer reads these annotations as objects; as
# strings it would evaluate every one of them at each start.

import functools
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Generic, TypeVar, cast, get_args

import typer

from ..config import TOKEN_ENV, URL_ENV, settings
from ..config.settings import Format, IdFrom, IdsFormat

if TYPE_CHECKING:
    from typing import TypedDict

    from ..config.keywords import (
        ConnectionKeywords,
        MappingKeywords,
        ReadKeywords,
        ResumeKeywords,  # noqa: F401 - named as Group["ResumeKeywords"]
        SendKeywords,
    )

    class TargetKeywords(TypedDict):
        url: str | None
        token: str | None
        namespace: str

    class RecordKeywords(ReadKeywords, MappingKeywords, total=False):
        """How records are read and mapped."""

    class SendingKeywords(SendKeywords, total=False):
        preflight: bool

    class ResultKeywords(TypedDict, total=False):
        rejects: Path | None
        report: Path | None
        strict: bool
        fail_fast: bool

    class LoadKeywords(
        RecordKeywords, SendingKeywords, ConnectionKeywords, ResultKeywords, total=False
    ):
        """The options upsert and sync share."""


K = TypeVar("K")
R = TypeVar("R")

READING = "Reading"
MAPPING = "Mapping"
SENDING = "Sending"
REQUESTS = "Requests"
RESULTS = "Results and recovery"


def choices(literal: Any) -> str:
    """A metavar naming the values a ``Literal`` type allows: ``[auto|jsonl|...]``."""
    return "[" + "|".join(get_args(literal)) + "]"


class Group(Generic[K]):
    """Options that go together. Each annotated attribute of a subclass is one option
    (``Annotated[type, typer.Option(...)]``), its value the default; an instance holds
    what the command line gave, and :meth:`keywords` hands it to the library as ``K``."""

    def __init__(self, **values: Any) -> None:
        vars(self).update(values)

    @classmethod
    def parameters(cls) -> list[inspect.Parameter]:
        """The group's options, as parameters of a command's signature: a group made of
        others (``class Load(Records, Sending)``) has theirs, in the order it names them."""
        annotations: dict[str, Any] = {}
        for klass in cls.__mro__:
            for name, annotation in vars(klass).get("__annotations__", {}).items():
                annotations.setdefault(name, annotation)
        return [
            inspect.Parameter(
                name,
                inspect.Parameter.KEYWORD_ONLY,
                annotation=annotation,
                default=getattr(cls, name, inspect.Parameter.empty),
            )
            for name, annotation in annotations.items()
        ]

    def keywords(self) -> K:
        """The values, as the keyword arguments of the library's functions."""
        return cast(K, dict(vars(self)))


def grouped(command: Callable[..., R]) -> Callable[..., R]:
    """``command`` with each parameter typed by a :class:`Group` replaced, in the
    signature Typer reads, by the group's options; the command gets the group's value."""
    signature = inspect.signature(command)
    groups: dict[str, type[Group[Any]]] = {}
    parameters: list[inspect.Parameter] = []
    for parameter in signature.parameters.values():
        kind = parameter.annotation
        if isinstance(kind, type) and issubclass(kind, Group):
            groups[parameter.name] = kind
            parameters += kind.parameters()
        else:
            parameters.append(parameter.replace(kind=inspect.Parameter.KEYWORD_ONLY))

    @functools.wraps(command)
    def call(**values: Any) -> R:
        for name, group in groups.items():
            values[name] = group(**{p.name: values.pop(p.name) for p in group.parameters()})
        return command(**values)

    call.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
    return call


# ---------------------------------------------------------------------------------------
# Options every command that talks to an index has

Url = Annotated[
    str | None,
    typer.Option(
        "--url",
        metavar="URL",
        help=f"REST URL of the index. Default: ${URL_ENV}.",
        show_default=False,
    ),
]
Token = Annotated[
    str | None,
    typer.Option(
        "--token",
        metavar="TOKEN",
        help=f"REST token of the index. Default: ${TOKEN_ENV}.",
        show_default=False,
    ),
]


class Target(Group["TargetKeywords"]):
    """The index and the namespace a command works on."""

    url: Url = None
    token: Token = None
    namespace: Annotated[
        str,
        typer.Option(
            "-n",
            "--namespace",
            metavar="NAME",
            help="Namespace of the index (default: the default one).",
            show_default=False,
        ),
    ] = ""


class Connection(Group["ConnectionKeywords"]):
    """How requests go to the index."""

    allow_insecure_http: Annotated[
        bool,
        typer.Option(
            "--allow-insecure-http",
            help="Allow sending the token over plain http to another host.",
        ),
    ] = False
    timeout: Annotated[
        float,
        typer.Option(
            min=0.1,
            metavar="SECONDS",
            help="Seconds to wait for one request's answer.",
            rich_help_panel=REQUESTS,
        ),
    ] = settings.TIMEOUT
    retries: Annotated[
        int,
        typer.Option(
            min=0,
            metavar="N",
            help="Retries of a request after a 5xx, a timeout or a network error; about "
            "2.5 minutes of trying with the default backoff. 429s are waited out (see "
            "--throttled-timeout).",
            rich_help_panel=REQUESTS,
        ),
    ] = settings.RETRIES
    max_backoff: Annotated[
        float,
        typer.Option(
            min=0.0,
            metavar="SECONDS",
            help="Longest wait between two retries, in seconds.",
            rich_help_panel=REQUESTS,
        ),
    ] = settings.MAX_BACKOFF
    throttled_timeout: Annotated[
        float,
        typer.Option(
            min=0.0,
            metavar="SECONDS",
            help="Stop (exit 3) once nothing has landed for this long and every answer is "
            "429: the index's quota looks used up. A 429 that says so (Upstash's \"max daily "
            'updates limit exceeded") stops at once. What did not land is not settled, never '
            "rejected.",
            rich_help_panel=REQUESTS,
        ),
    ] = settings.THROTTLED_TIMEOUT


# ---------------------------------------------------------------------------------------
# The records of upsert, sync and verify


class Records(Group["RecordKeywords"]):
    """How the inputs are read and each row becomes a record."""

    format: Annotated[
        str,
        typer.Option(
            "-f",
            "--format",
            metavar=choices(Format),
            help="How the inputs are read: auto goes by extension; stdin is JSONL.",
            rich_help_panel=READING,
        ),
    ] = settings.FORMAT
    delimiter: Annotated[
        str | None,
        typer.Option(
            metavar="CHAR",
            help="CSV/TSV delimiter (one character, or \\t).",
            rich_help_panel=READING,
        ),
    ] = None
    columns: Annotated[
        str | None,
        typer.Option(
            metavar="A,B",
            help="CSV/TSV without a header: the column names, e.g. id,data,lang.",
            rich_help_panel=READING,
        ),
    ] = None
    encoding: Annotated[
        str,
        typer.Option(
            metavar="NAME",
            help="The encoding of text inputs and stdin: utf-8, or one in which a newline is "
            "one byte, e.g. latin-1 or cp1252. Convert UTF-16 first: iconv -f UTF-16 -t UTF-8.",
            rich_help_panel=READING,
        ),
    ] = settings.ENCODING
    id_field: Annotated[
        str,
        typer.Option(
            metavar="FIELD",
            help="Field (dotted path in JSONL) or column holding the id.",
            rich_help_panel=MAPPING,
        ),
    ] = settings.ID_FIELD
    data_field: Annotated[
        str,
        typer.Option(
            metavar="FIELD",
            help="Field or column holding the text to embed.",
            rich_help_panel=MAPPING,
        ),
    ] = settings.DATA_FIELD
    metadata_field: Annotated[
        str,
        typer.Option(
            metavar="FIELD",
            help="Field holding a metadata object (a JSON object in CSV); its keys are "
            "merged with the other fields, which are metadata too.",
            rich_help_panel=MAPPING,
        ),
    ] = settings.METADATA_FIELD
    metadata_columns: Annotated[
        str | None,
        typer.Option(
            metavar="A,B",
            help="Only these fields (columns, dotted paths, keys of the metadata object) "
            "become metadata, in every format. Default: every field but the id and the data.",
            show_default=False,
            rich_help_panel=MAPPING,
        ),
    ] = None
    data_template: Annotated[
        str | None,
        typer.Option(
            metavar="TEMPLATE",
            help="Compose data from fields, e.g. '{title}\\n\\n{body}'; they stay metadata too.",
            rich_help_panel=MAPPING,
        ),
    ] = None
    id_template: Annotated[
        str | None,
        typer.Option(
            metavar="TEMPLATE",
            help="Compose the id from fields, e.g. '{source}-{page}' from the fields "
            "source and page.",
            rich_help_panel=MAPPING,
        ),
    ] = None
    id_from: Annotated[
        str,
        typer.Option(
            metavar=choices(IdFrom),
            help="field: the id field; hash: a stable hash of data and metadata (reruns "
            "are idempotent); line: file:line.",
            rich_help_panel=MAPPING,
        ),
    ] = settings.ID_FROM
    infer_types: Annotated[
        bool,
        typer.Option(
            "--infer-types/--no-infer-types",
            help="CSV/TSV: turn numbers and true/false in metadata cells into JSON types.",
            rich_help_panel=MAPPING,
        ),
    ] = settings.INFER_TYPES
    types: Annotated[
        list[str] | None,
        typer.Option(
            "--type",
            metavar="COLUMN=TYPE",
            help="CSV/TSV: make that metadata column's cells str, int, float, bool or "
            "json, whatever --infer-types says; repeat for more columns.",
            show_default=False,
            rich_help_panel=MAPPING,
        ),
    ] = None
    chunk_size: Annotated[
        int | None,
        typer.Option(
            metavar="N",
            help="Split each record's data into chunks of at most N characters (at "
            "paragraph, sentence or word ends), sent as ID#1, ID#2 ... with the record's "
            "metadata and, under 'chunk', where each came from.",
            show_default=False,
            rich_help_panel=MAPPING,
        ),
    ] = None
    chunk_overlap: Annotated[
        int,
        typer.Option(
            metavar="M",
            help="Characters each chunk repeats from the end of the one before it.",
            rich_help_panel=MAPPING,
        ),
    ] = settings.CHUNK_OVERLAP


# ---------------------------------------------------------------------------------------
# How upsert and sync send, and what they write beside the index


class Sending(Group["SendingKeywords"]):
    """How records are batched and sent."""

    batch_size: Annotated[
        int,
        typer.Option(
            "-b",
            "--batch-size",
            min=1,
            max=settings.MAX_BATCH_RECORDS,
            metavar="N",
            help="Records per request (Upstash's limit is 1000).",
            rich_help_panel=SENDING,
        ),
    ] = settings.BATCH_SIZE
    max_batch_bytes: Annotated[
        int,
        typer.Option(
            min=1024,
            metavar="BYTES",
            help="Request body limit in bytes.",
            rich_help_panel=SENDING,
        ),
    ] = settings.MAX_BATCH_BYTES
    concurrency: Annotated[
        int,
        typer.Option(
            "-c",
            "--concurrency",
            min=1,
            max=settings.MAX_CONCURRENCY,
            metavar="N",
            help="Batches in flight, at most: fewer while the index answers slower, or "
            "with 429 or 5xx.",
            rich_help_panel=SENDING,
        ),
    ] = settings.CONCURRENCY
    preflight: Annotated[
        bool,
        typer.Option(
            "--preflight/--no-preflight",
            help="Check with /info that the index has an embedding model before sending.",
            rich_help_panel=SENDING,
        ),
    ] = True


class Results(Group["ResultKeywords"]):
    """What a run writes beside the index, and when it stops."""

    rejects: Annotated[
        Path | None,
        typer.Option(
            metavar="PATH",
            help="Write every record not upserted here, one JSON line with its source and "
            "reason; the file can be fed back as input. Made by the first reject: a clean "
            "run leaves none.",
            dir_okay=False,
            rich_help_panel=RESULTS,
        ),
    ] = None
    report: Annotated[
        Path | None,
        typer.Option(
            metavar="PATH",
            help="Write one JSON line per batch here: its span, outcome, attempts (1 and "
            "one per retry), requests, status, error and duration.",
            dir_okay=False,
            rich_help_panel=RESULTS,
        ),
    ] = None
    strict: Annotated[
        bool,
        typer.Option("--strict", help="Stop at the first bad record.", rich_help_panel=RESULTS),
    ] = False
    fail_fast: Annotated[
        bool,
        typer.Option(
            "--fail-fast",
            help="Stop at the first batch that fails for good.",
            rich_help_panel=RESULTS,
        ),
    ] = False


class Load(Records, Sending, Connection, Results):
    """What upsert and sync share: how records are read, mapped and sent, and what is
    written beside the index."""

    def keywords(self) -> "LoadKeywords":
        return cast("LoadKeywords", dict(vars(self)))


class Resume(Group["ResumeKeywords"]):
    """What lets several runs share one load: a checkpoint, a shard."""

    checkpoint: Annotated[
        Path | None,
        typer.Option(
            metavar="PATH",
            help="Remember what is settled here; rerunning the same command carries on.",
            dir_okay=False,
            rich_help_panel=RESULTS,
        ),
    ] = None
    restart: Annotated[
        bool,
        typer.Option(
            "--restart",
            help="Ignore what --checkpoint remembers and start over.",
            rich_help_panel=RESULTS,
        ),
    ] = False
    shard: Annotated[
        str | None,
        typer.Option(
            metavar="K/N",
            help="Load only the records whose id hashes to shard K of N.",
            rich_help_panel=MAPPING,
        ),
    ] = None


# ---------------------------------------------------------------------------------------
# Options of one command or a few

Files = Annotated[
    list[str] | None,
    typer.Argument(
        metavar="[FILE]...",
        help="Input files (JSON Lines, JSON arrays, CSV, TSV, Parquet), read in order "
        "as one stream; - or nothing reads stdin. .gz, .bz2 and .xz are decompressed.",
        show_default=False,
    ),
]
Json = Annotated[
    bool, typer.Option("--json", help="Print the result as one JSON object on stdout.")
]
Quiet = Annotated[
    bool,
    typer.Option("-q", "--quiet", help="No progress and no per-batch lines."),
]
Prefix = Annotated[
    str | None,
    typer.Option(
        metavar="PREFIX",
        help="Only the ids that start with this: the scope the command keeps to.",
        show_default=False,
    ),
]
DryRun = Annotated[
    bool,
    typer.Option(
        "--dry-run",
        help="Read, map, validate and batch everything; send nothing.",
        rich_help_panel=RESULTS,
    ),
]
SyncDryRun = Annotated[
    bool,
    typer.Option(
        "--dry-run",
        help="Read the index and the source, send and delete nothing, and report what would be.",
        rich_help_panel=RESULTS,
    ),
]
MaxDelete = Annotated[
    str | None,
    typer.Option(
        metavar="N|P%",
        help="Delete at most this many stored records (N, or P% of what the scope holds); "
        "more refuses every deletion with exit 4. Default: 50%.",
        show_default=False,
    ),
]
Seed = Annotated[int | None, typer.Option(hidden=True)]
Output = Annotated[
    Path | None,
    typer.Option(
        "-o",
        "--output",
        metavar="PATH",
        help="Write here (.gz compresses): a file is replaced only by a whole export, a "
        "pipe or a device is written through. Default (or -): stdout.",
        dir_okay=False,
        show_default=False,
    ),
]
ExportJson = Annotated[
    bool,
    typer.Option("--json", help="With --output: print the summary as JSON on stdout."),
]
Ids = Annotated[
    str | None,
    typer.Option(
        metavar="PATH",
        help="A file (or -) of ids, one a line and each as written, or of JSON Lines, JSON "
        "array, CSV, TSV or Parquet records whose id field is used: a rejects file or an "
        "export works.",
        show_default=False,
    ),
]
DeletePrefix = Annotated[
    str | None,
    typer.Option(
        metavar="PREFIX",
        help="Delete every record whose id starts with this.",
        show_default=False,
    ),
]
Filter = Annotated[
    str | None,
    typer.Option(
        metavar="FILTER",
        help="Delete every record whose metadata matches this filter, e.g. \"genre = 'drama'\".",
        show_default=False,
    ),
]
IdField = Annotated[
    str,
    typer.Option(metavar="FIELD", help="With --ids: the field or column holding the id."),
]
IdsFormatOption = Annotated[
    str,
    typer.Option(
        "-f",
        "--format",
        metavar=choices(IdsFormat),
        help="How --ids is read: auto goes by extension, else by the first line: JSON Lines "
        "if it opens an object, a JSON array if it opens one, text (one id a line) otherwise.",
    ),
]
IdsEncoding = Annotated[
    str,
    typer.Option(
        metavar="NAME",
        help="The encoding of --ids: utf-8, or one in which a newline is one byte, e.g. "
        "latin-1 or cp1252.",
    ),
]
Exact = Annotated[
    bool,
    typer.Option(
        "--exact",
        help="Records the namespace holds beyond the source (records_extra) are differences "
        "too: exit 1. Without it they are counted and named, and verify exits 0.",
    ),
]
Yes = Annotated[
    bool,
    typer.Option("--yes", "-y", help="Do not ask before deleting by --prefix or --filter."),
]
DeleteDryRun = Annotated[
    bool, typer.Option("--dry-run", help="Delete nothing; count what would be deleted.")
]
Samples = Annotated[
    Path,
    typer.Argument(metavar="[SAMPLES]", help="Folder holding articles.jsonl and products.csv."),
]
QueryText = Annotated[
    str,
    typer.Argument(
        metavar="TEXT",
        help="What to look for: the index embeds it as it embedded the records.",
        show_default=False,
    ),
]
TopK = Annotated[
    int,
    typer.Option(
        "-k",
        "--top-k",
        min=1,
        max=settings.MAX_TOP_K,
        metavar="N",
        help=f"How many records to show, the best first (at most {settings.MAX_TOP_K:,}).",
    ),
]
QueryFilter = Annotated[
    str | None,
    typer.Option(
        metavar="FILTER",
        help="Only records whose metadata matches this filter, e.g. \"lang = 'en'\".",
        show_default=False,
    ),
]
IncludeData = Annotated[
    bool,
    typer.Option("--include-data", help="Show each record's data (its text) too."),
]
