"""The options of the public functions -> :class:`~vupsert.config.settings.Settings`:
every option checked, alone and against the others, and named in each message the way
the caller spells it.

What a caller may pass is typed in :mod:`~vupsert.config.keywords`; these checks refuse a
misspelled or mistyped option at run time too, for a caller that runs no type checker.
Each option's default is the one :mod:`~vupsert.config.settings` gives it. Checks that
need the inputs themselves (a column the options name, a type for a CSV column) are made
where the inputs are read (:mod:`vupsert.run`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args

from ..errors import UsageError
from ..records import MAX_BATCH_RECORDS
from ._endpoint import Endpoint, find_checked
from ._secret import Secret
from ._spelling import option
from .settings import (
    CONNECTION_OPTIONS,
    DATA_FIELD,
    ID_FIELD,
    ID_FROM,
    MAPPING_OPTIONS,
    MAX_CHUNK_SIZE,
    MAX_CONCURRENCY,
    METADATA_FIELD,
    OPTIONS,
    READ_OPTIONS,
    ColumnType,
    Format,
    IdFrom,
    MappingOptions,
    ReadOptions,
    Settings,
)

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from .keywords import ConnectionKeywords, UpsertKeywords

__all__ = ["build_settings", "check_choice", "connection_settings"]


def build_settings(
    inputs: Sequence[str | os.PathLike[str]] = ("-",),
    *,
    url: str | None = None,
    token: str | None = None,
    namespace: str = "",
    environ: Mapping[str, str] | None = None,
    **options: Unpack[UpsertKeywords],
) -> Settings:
    """:class:`Settings` from keyword options, each checked; unknown names are refused.

    The URL and token are found (given, else in ``environ``, by default the process's
    environment) and checked before anything is built from them (:class:`Endpoint`): a
    bad token or a URL with a password stops here, and is never repeated. A dry run needs
    neither, but what is given is checked.
    """
    values: dict[str, Any] = dict(options)
    _known(values, OPTIONS)
    the_url, the_token = _connection(url, token, environ, values)
    read = {k: values.pop(k) for k in READ_OPTIONS & values.keys()}
    mapping = {k: values.pop(k) for k in MAPPING_OPTIONS & values.keys()}
    check_choice(read, "format", get_args(Format))
    check_choice(mapping, "id_from", get_args(IdFrom))
    if "columns" in read:
        read["columns"] = _names(read["columns"], "columns")
    if "metadata_columns" in mapping:
        mapping["metadata_columns"] = _names(mapping["metadata_columns"], "metadata_columns")
    if "delimiter" in read:
        read["delimiter"] = _delimiter(read["delimiter"])
    if "shard" in mapping:
        mapping["shard"] = _shard(mapping["shard"])
    if mapping.get("types"):
        mapping["types"] = _types(mapping["types"])
        _types_fit(mapping)
    else:
        mapping.pop("types", None)
    _chunking(mapping)
    for name in ("rejects", "checkpoint", "report"):
        if values.get(name) is not None:
            values[name] = Path(values[name])
    _bounded(values, "batch_size", 1, MAX_BATCH_RECORDS)
    _bounded(values, "concurrency", 1, MAX_CONCURRENCY)
    _bounded(values, "max_batch_bytes", 1024, None)
    _bounded(values, "retries", 0, None)
    _bounded(values, "timeout", 0.1, None)
    _bounded(values, "max_backoff", 0.0, None)
    _bounded(values, "throttled_timeout", 0.0, None)
    return Settings(
        url=the_url,
        token=the_token,
        inputs=tuple(os.fspath(name) for name in inputs),
        namespace=namespace,
        read=ReadOptions(**read),
        mapping=MappingOptions(**mapping),
        **values,
    )


def connection_settings(
    *,
    url: str | None = None,
    token: str | None = None,
    namespace: str = "",
    environ: Mapping[str, str] | None = None,
    **options: Unpack[ConnectionKeywords],
) -> Settings:
    """The settings of a command that talks to the index and reads no input (export,
    delete): the connection's options only, checked as :func:`build_settings` checks them."""
    _known(dict(options), CONNECTION_OPTIONS)
    return build_settings((), url=url, token=token, namespace=namespace, environ=environ, **options)


def _connection(
    url: str | None, token: str | None, environ: Mapping[str, str] | None, values: dict[str, Any]
) -> tuple[str, Secret]:
    """The URL and token the settings hold: an :class:`Endpoint`'s, found and checked; for
    a dry run, which sends nothing, whatever is there, checked."""
    insecure = bool(values.get("allow_insecure_http"))
    if values.get("dry_run"):
        return find_checked(url, token, environ=environ, allow_insecure_http=insecure)
    endpoint = Endpoint.find(url, token, environ=environ, allow_insecure_http=insecure)
    return endpoint.url, endpoint.token


def _known(options: Mapping[str, object], known: frozenset[str]) -> None:
    unknown = sorted(set(options) - known)
    if unknown:
        raise UsageError(
            f"Unknown option{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}.",
            hint=f"The options are: {', '.join(sorted(known))}.",
        )


def check_choice(values: Mapping[str, Any], name: str, choices: tuple[str, ...]) -> None:
    """Refuse ``values[name]`` when it is not one of ``choices``."""
    if name in values and values[name] not in choices:
        raise UsageError(f"{option(name, values[name])}: use {', '.join(choices)}.")


def _bounded(values: dict[str, Any], name: str, low: float, high: float | None) -> None:
    value = values.get(name)
    if value is None:
        return
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or value < low
        or (high is not None and value > high)
    ):
        limits = f"from {low} to {high}" if high is not None else f"at least {low}"
        raise UsageError(f"{option(name, value)}: it must be a number {limits}.")


def _names(value: str | Sequence[str] | None, name: str) -> tuple[str, ...] | None:
    """Column names, as a tuple, from ``"a,b"`` or a sequence."""
    if value is None:
        return None
    parts = value.split(",") if isinstance(value, str) else list(value)
    names = tuple(p.strip() for p in parts if p.strip())
    if not names:
        raise UsageError(f"{option(name, value)} names no column.")
    return names


def _delimiter(value: str | None) -> str | None:
    if value is None:
        return None
    if value in ("\\t", "tab"):
        return "\t"
    if len(value) != 1:
        raise UsageError(f"{option('delimiter', value)}: it must be one character.")
    return value


def _shard(value: str | Sequence[int] | None) -> tuple[int, int] | None:
    """``(k, n)`` from ``"k/n"`` or a pair, with ``0 <= k < n``."""
    if value is None:
        return None
    try:
        if isinstance(value, str):
            k, sep, n = value.partition("/")
            shard, shards = int(k), (int(n) if sep else 0)
        else:
            shard, shards = (int(v) for v in value)
    except (TypeError, ValueError):
        shard, shards = -1, 0
    if shards < 1 or not 0 <= shard < shards:
        raise UsageError(
            f"{option('shard', value)} is not K/N with 0 <= K < N.",
            hint="For example 0/4, 1/4, 2/4 and 3/4 for four jobs.",
        )
    return shard, shards


_TYPE_NAMES: dict[Any, ColumnType] = {
    "str": "str",
    "text": "str",
    "string": "str",
    "int": "int",
    "integer": "int",
    "float": "float",
    "number": "float",
    "bool": "bool",
    "boolean": "bool",
    "json": "json",
    str: "str",
    int: "int",
    float: "float",
    bool: "bool",
}


def _types(
    value: Mapping[str, Any] | Sequence[str] | str,
) -> tuple[tuple[str, ColumnType], ...]:
    """``(column, type)`` pairs from ``{"zip": "str"}`` or ``["zip=str", ...]``."""
    if isinstance(value, Mapping):
        pairs = [(str(k), v) for k, v in value.items()]
    else:
        pairs = []
        for item in [value] if isinstance(value, str) else value:
            name, sep, kind = str(item).partition("=")
            if not sep or not name.strip():
                raise UsageError(
                    f"{option('types', item)}: write COLUMN=TYPE, e.g. zip=str.",
                    hint=f"The types are {', '.join(get_args(ColumnType))}.",
                )
            pairs.append((name, kind))
    types: dict[str, ColumnType] = {}
    for name, kind in pairs:
        key = kind.strip().lower() if isinstance(kind, str) else kind
        try:
            typed = _TYPE_NAMES[key]
        except (KeyError, TypeError):
            raise UsageError(
                f"{option('types', {name: kind})}: {kind!r} is not a type.",
                hint=f"The types are {', '.join(get_args(ColumnType))}.",
            ) from None
        column = name.strip()
        if types.get(column, typed) != typed:
            raise UsageError(
                f"{option('types', {column: types[column]})} and "
                f"{option('types', {column: typed})} give one column two types.",
                hint="Give each column one type.",
            )
        types[column] = typed
    return tuple(types.items())


def _types_fit(mapping: dict[str, Any]) -> None:
    """``types`` make the cells of metadata columns a type: given to a column whose cells
    never become metadata values, they would do nothing, so they are refused."""
    roles = {
        mapping.get("metadata_field", METADATA_FIELD): "the metadata column: its cells are "
        "JSON objects, merged into the metadata"
    }
    if mapping.get("data_template") is None:
        roles[mapping.get("data_field", DATA_FIELD)] = "the data column: the text to embed"
    if mapping.get("id_from", ID_FROM) == "field" and mapping.get("id_template") is None:
        roles[mapping.get("id_field", ID_FIELD)] = "the id column: ids are text"
    picked = mapping.get("metadata_columns")
    for column, kind in mapping["types"]:
        role = roles.get(column)
        if role is None and picked is not None and column not in picked:
            role = f"not among {option('metadata_columns', ','.join(picked))}"
        if role is not None:
            raise UsageError(
                f"{option('types', {column: kind})} does nothing: {column!r} is {role}.",
                hint="A type applies to a column whose cells become metadata values.",
            )


def _chunking(mapping: dict[str, Any]) -> None:
    if mapping.get("chunk_overlap", 0) is None:
        del mapping["chunk_overlap"]
    size, overlap = mapping.get("chunk_size"), mapping.get("chunk_overlap")
    for name, value, low, high in (
        ("chunk_size", size, 1, MAX_CHUNK_SIZE),
        ("chunk_overlap", overlap, 0, None),
    ):
        if value is not None and (
            isinstance(value, bool)
            or not isinstance(value, int)
            or value < low
            or (high is not None and value > high)
        ):
            limits = f"from {low} to {high:,}" if high is not None else f"at least {low}"
            raise UsageError(f"{option(name, value)}: it must be a whole number {limits}.")
    if size is None:
        if overlap:
            raise UsageError(
                f"{option('chunk_overlap', overlap)} needs {option('chunk_size')}.",
                hint="The overlap is what each chunk repeats of the one before it.",
            )
        return
    if overlap is not None and overlap > size // 2:
        raise UsageError(
            f"{option('chunk_overlap', overlap)}: it must be at most half of "
            f"{option('chunk_size', size)} ({size // 2:,}).",
        )
