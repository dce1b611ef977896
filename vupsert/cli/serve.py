"""``vupsert serve``: the local index in the foreground. Its options are the fields of the
server's :class:`~vupsert_server.ServerConfig`, with their types and defaults, each with
the help :data:`OPTIONS` gives it: a new server setting is a field there and a line here.

The command line imports this module only to run, or list, ``serve``: the server costs
every other command 35 ms of start-up.
"""

# No "from __future__ import annotations": Typer reads these annotations as objects.

import dataclasses
import functools
import inspect
import re
from typing import Annotated, Any, Literal, get_origin, get_type_hints

import typer

from vupsert_server import ServerConfig, ServerConfigError, serve_forever

from ..errors import ConfigError
from .environment import Environment
from .options import Group, choices

MIB = 1024 * 1024
FAULTS = "Faults"
DEFAULTS = ServerConfig()

OPTIONS: dict[str, Any] = {
    "host": typer.Option(metavar="HOST", help="Address to listen on."),
    "port": typer.Option(metavar="PORT", help="Port to listen on (0 picks a free one)."),
    "token": typer.Option(
        metavar="TOKEN",
        help="Token clients must send. Default: a new random one.",
        show_default=False,
    ),
    "readonly_token": typer.Option(
        metavar="TOKEN",
        help="A second token that reads (query, fetch, range, info) and gets 403 on every "
        "write, to test a client's read-only path.",
        show_default=False,
    ),
    "db": typer.Option(
        metavar="PATH",
        help="SQLite file to keep the index in. Default: in memory, which takes about 2.3 "
        "GB per million records of 384 dimensions and 300 characters of text (measured).",
        show_default=False,
    ),
    "index_type": typer.Option(
        help="dense, sparse (sparseVector) or hybrid (both on every record)."
    ),
    "dimension": typer.Option(metavar="N", help="Dense vector dimension."),
    "similarity": typer.Option(help="How dense vectors are scored."),
    "embedding": typer.Option(
        "--embedding/--no-embedding",
        help="--no-embedding turns every model off (hashed n-grams for dense vectors, "
        "hashed BM25 for sparse ones): upsert-data answers 422.",
    ),
    "read_timeout": typer.Option(
        metavar="SECONDS",
        help="Seconds a client may take to send a request, or stay idle between two, "
        "before its connection is closed.",
    ),
    "max_connections": typer.Option(
        metavar="N", help="Connections served at once; more wait until one closes."
    ),
    "latency_ms": typer.Option(metavar="MS", help="Added to every write.", rich_help_panel=FAULTS),
    "latency_per_record_ms": typer.Option(
        metavar="MS",
        help="Added per record of a write (embedding cost).",
        rich_help_panel=FAULTS,
    ),
    "capacity": typer.Option(
        metavar="N",
        help="Writes in flight the server takes at full speed: a write arriving with "
        "k > capacity writes in flight (itself included) waits its latency times "
        "k / capacity, so piling on gets slower answers, not more throughput. Needs a "
        "latency.",
        rich_help_panel=FAULTS,
    ),
    "fail_rate": typer.Option(
        metavar="SHARE", help="Share of writes answered 500/502/503.", rich_help_panel=FAULTS
    ),
    "rate_limit": typer.Option(
        metavar="N",
        help="Writes per second; beyond it 429 with Retry-After.",
        rich_help_panel=FAULTS,
    ),
    "rate_limiter": typer.Option(
        help="bucket: a token bucket holding one second of writes, refilled continuously; "
        "sliding: at most --rate-limit writes in any one second, which refuses bursts a "
        "bucket lets through.",
        rich_help_panel=FAULTS,
    ),
    "drop_rate": typer.Option(
        metavar="SHARE",
        help="Share of writes whose connection is dropped.",
        rich_help_panel=FAULTS,
    ),
    "refuse_matching": typer.Option(
        metavar="TEXT",
        help="Refuse (400) a request holding a record whose data contains this.",
        rich_help_panel=FAULTS,
    ),
    "faulty_reads": typer.Option(
        "--faulty-reads",
        help="fetch and range meet the rate limit, --daily-quota, --fail-rate and --drop-rate too.",
        rich_help_panel=FAULTS,
    ),
    "daily_quota": typer.Option(
        metavar="N",
        help='After N upserted vectors, every write answers 429 "ERR max daily updates limit '
        "exceeded\" with no Retry-After, as Upstash does once a plan's daily updates are "
        "used up (the free plan's: 10,000). 0: no quota.",
        rich_help_panel=FAULTS,
    ),
    "seed": typer.Option(metavar="N", help="Seed for the fault injection.", rich_help_panel=FAULTS),
}
"""The help of every setting that is an option of ``serve``, by field name."""
NOT_OPTIONS = {
    "max_body_bytes": "--max-body-mb, in MiB",
    "request_log": "--log-requests, and --json for its form",
    "cursor_mode": "for tests of clients that delete while they scan",
    "quota_message": "for tests of a quota answer that does not say 'daily'",
}
"""The settings that are not an option of their own, and why."""


@functools.cache
def _settings() -> list[inspect.Parameter]:
    """An option for each setting of :data:`OPTIONS`: its type (a ``Literal`` taken as
    text whose values the metavar names) and its default from the config's field."""
    types = get_type_hints(ServerConfig)
    parameters = []
    for field in dataclasses.fields(ServerConfig):
        if field.name not in OPTIONS:
            continue
        kind, option = types[field.name], OPTIONS[field.name]
        if get_origin(kind) is Literal:
            kind, option.metavar = str, option.metavar or choices(kind)
        parameters.append(
            inspect.Parameter(
                field.name,
                inspect.Parameter.KEYWORD_ONLY,
                annotation=Annotated[kind, option],
                default=field.default,
            )
        )
    return parameters


class Settings(Group[dict[str, Any]]):
    """Every setting of the local server that is an option of ``serve``."""

    @classmethod
    def parameters(cls) -> list[inspect.Parameter]:
        return _settings()


FLAGS = {name: "--" + name.replace("_", "-") for name in OPTIONS}


def flags(text: str) -> str:
    """A message of the server, with the settings it names as ``serve``'s flags: its
    snake_case names, and a name that opens it (``capacity multiplies ...``)."""

    def spelled(match: re.Match[str]) -> str:
        name = match.group(0)
        known = name in FLAGS and ("_" in name or match.start() == 0)
        return FLAGS[name] if known else name

    return re.sub(r"(?<![\w./-])[a-z]+(?:_[a-z]+)*\b", spelled, text)


def serve(
    env: Environment,
    settings: Settings,
    max_body_mb: Annotated[
        int,
        typer.Option(min=1, metavar="MIB", help="A larger request body is answered 413 unread."),
    ] = DEFAULTS.max_body_bytes // MIB,
    log_requests: Annotated[
        bool,
        typer.Option(
            "--log-requests",
            help="Print a line per request on stderr: time, method, path, status, records, "
            "milliseconds (never the token or a body).",
        ),
    ] = False,
    json_log: Annotated[
        bool, typer.Option("--json", help="The request log as one JSON object per line.")
    ] = False,
) -> None:
    """Run a local index that speaks Upstash Vector's REST API, for demos and tests.

    Prints the two `export` lines to point vupsert (or an SDK) at it, then serves until
    Ctrl-C. Dense, sparse and hybrid indexes; faults can be injected to test a client's
    retries and pacing.
    """
    request_log = "json" if json_log else "text" if log_requests else DEFAULTS.request_log
    try:
        config = ServerConfig(
            **settings.keywords(), max_body_bytes=max_body_mb * MIB, request_log=request_log
        )
        serve_forever(
            config,
            lambda text: _written(env.stdout, text.rstrip("\n") + "\n"),
            log=lambda line: _written(env.stderr, line),
        )
    except ServerConfigError as exc:
        raise ConfigError(flags(exc.message), hint=exc.hint and flags(exc.hint)) from None
    except OSError as exc:
        where = f"{config.host}:{config.port}"
        raise ConfigError(
            f"Cannot listen on {where}: {exc.strerror}.",
            hint="Pick another --port (0 picks a free one).",
        ) from None


def _written(stream: Any, text: str) -> None:
    stream.write(text)
    stream.flush()
