"""The options of the public functions as keyword arguments, typed once for all of them:
a group per stage, composed per function (``**options: Unpack[UpsertKeywords]``), so that
a type checker refuses ``data_feild="text"`` or ``batch_size="500"``.

Names and types only: each option's default is the one :mod:`~vupsert.config.settings`
gives it, :func:`~vupsert.config.options.build_settings` checks every value at run time,
and ``vupsert.OPTIONS`` lists the names. The functions import this module for type
checking only: a run does not pay for building these classes.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, TypedDict

from .settings import Format, IdFrom


class ReadKeywords(TypedDict, total=False):
    """How inputs are split into rows (:class:`~vupsert.config.ReadOptions`)."""

    format: Format
    delimiter: str | None
    """One character, or ``"\\t"`` / ``"tab"``."""
    columns: str | Sequence[str] | None
    """``"id,text"`` or ``["id", "text"]``."""
    encoding: str
    """How text inputs are decoded: ``"utf-8"``, or one such as ``"cp1252"``."""


class MappingKeywords(TypedDict, total=False):
    """How a row becomes a record (:class:`~vupsert.config.MappingOptions`), but ``shard``."""

    id_field: str
    data_field: str
    metadata_field: str
    metadata_columns: str | Sequence[str] | None
    infer_types: bool
    types: Mapping[str, str | type[Any]] | Sequence[str] | str | None
    """``{"zip": "str"}``, ``{"zip": str}`` or ``["zip=str"]``."""
    data_template: str | None
    id_template: str | None
    id_from: IdFrom
    chunk_size: int | None
    chunk_overlap: int | None


class ConnectionKeywords(TypedDict, total=False):
    """How requests go to the index: every command that talks to it takes these."""

    timeout: float
    retries: int
    max_backoff: float
    throttled_timeout: float
    allow_insecure_http: bool


class SendKeywords(TypedDict, total=False):
    """How records are batched and sent."""

    batch_size: int
    max_batch_bytes: int
    concurrency: int


class RunKeywords(TypedDict, total=False):
    """What a run writes beside the index, and when it stops."""

    rejects: str | os.PathLike[str] | None
    report: str | os.PathLike[str] | None
    dry_run: bool
    strict: bool
    fail_fast: bool
    preflight: bool


class ResumeKeywords(TypedDict, total=False):
    """What lets several runs share one load: a checkpoint, a shard."""

    checkpoint: str | os.PathLike[str] | None
    restart: bool
    shard: str | Sequence[int] | None
    """``"K/N"`` or ``(K, N)``."""


class UpsertKeywords(
    ReadKeywords,
    MappingKeywords,
    ConnectionKeywords,
    SendKeywords,
    RunKeywords,
    ResumeKeywords,
    total=False,
):
    """Every option of :func:`vupsert.upsert`: ``vupsert.OPTIONS``."""


class SyncKeywords(
    ReadKeywords, MappingKeywords, ConnectionKeywords, SendKeywords, RunKeywords, total=False
):
    """:func:`vupsert.sync`'s: an upsert's but the checkpoint and the shard (a sync reads
    the whole source every time)."""


class VerifyKeywords(ReadKeywords, MappingKeywords, ConnectionKeywords, total=False):
    """:func:`vupsert.verify`'s: the source read and mapped as an upsert reads it."""
