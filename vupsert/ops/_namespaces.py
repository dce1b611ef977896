"""The namespace a command reads (export, verify, delete) must be one the index has: a
typo (``-n artciles``) would otherwise export an empty backup, or verify and delete
nothing, without a word.

The index's ``/info`` lists its namespaces. One that is not there stops the command before
anything is read or written, naming those there are (the nearest first); one that is
there but holds nothing is a warning.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

from ..config import option
from ..errors import ConfigError
from ..transport import Client, index_info

SHOWN = 10
"""Namespaces named when the one asked for is not there; the rest are counted."""


def checked_namespace(client: Client) -> tuple[dict[str, Any], str | None]:
    """The index's ``/info``, and a warning when the client's namespace is empty;
    :class:`ConfigError` when the index has no such namespace."""
    info = index_info(client)
    namespace = client.namespace
    namespaces = info.get("namespaces")
    if not isinstance(namespaces, dict):
        return info, None  # an index that does not list them: nothing to check against
    counts = namespaces.get(namespace)
    if counts is None and namespace:
        raise no_such_namespace(namespace, namespaces)
    if isinstance(counts, dict) and not counts.get("vectorCount"):
        return info, f"{_named(namespace)} holds no record."
    return info, None


def no_such_namespace(namespace: str, namespaces: Iterable[str]) -> ConfigError:
    """The error of a command whose namespace the index does not have, naming those it
    has, the nearest first."""
    return ConfigError(
        f"{option('namespace', namespace)}: the index has no such namespace; it has "
        f"{_listed(namespace, list(namespaces))}.",
        hint="Check the name (`vupsert info` lists the namespaces). Nothing was read or written.",
    )


def stored_count(info: dict[str, Any], namespace: str) -> int | None:
    """The vectors ``/info`` counts in ``namespace`` (``None`` when it does not say)."""
    counts = (info.get("namespaces") or {}).get(namespace)
    count = counts.get("vectorCount") if isinstance(counts, dict) else None
    return count if isinstance(count, int) else None


def _named(namespace: str) -> str:
    return f"namespace {namespace!r}" if namespace else "the default namespace"


def _listed(wanted: str, names: list[str]) -> str:
    """The index's namespaces, the nearest to ``wanted`` first, the default one last."""
    named = [name for name in names if name]
    nearest = difflib.get_close_matches(wanted, named, n=1)
    ordered = nearest + sorted(name for name in named if name not in nearest)
    shown = [repr(name) for name in ordered[:SHOWN]]
    if nearest:
        shown[0] += " (the nearest)"
    if len(ordered) > SHOWN:
        shown.append(f"{len(ordered) - SHOWN:,} more")
    if "" in names:
        shown.append("the default namespace")
    if len(shown) <= 1:
        return shown[0] if named else "only the default namespace"
    return ", ".join(shown[:-1]) + " and " + shown[-1]
