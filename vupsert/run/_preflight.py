"""Before anything is sent: can this index take raw text, and does the namespace exist?

An index has a dense part, a sparse part (BM25) or both (hybrid); ``/info`` describes
each. Raw text can be upserted only when every part it has has an embedding model.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ..config import option
from ..errors import PreflightError
from ..transport import AT_START, Client, RetryPolicy, embedding_models, fatal_hint, index_info


def missing_model(info: dict[str, Any]) -> str | None:
    """What the index lacks to embed text, as a message says it (``no embedding model``,
    ``no embedding model for its sparse part``); ``None`` when every part has a model."""
    models = embedding_models(info)
    lacking = [part for part, model in models.items() if model is None]
    if not lacking:
        return None
    if len(models) == 1:
        return "no embedding model"
    return f"no embedding model for its {' and '.join(lacking)} part"


def preflight(
    client: Client, *, policy: RetryPolicy = AT_START, sleep: Callable[[float], object] = time.sleep
) -> dict[str, Any]:
    """:func:`index_info`; :class:`PreflightError` when the index cannot embed raw text."""
    info = index_info(client, policy=policy, sleep=sleep)
    what = missing_model(info)
    if what is not None:
        raise PreflightError(
            f"The index at {client.base_url} has {what}, so it cannot take raw text: every "
            "upsert-data request would be refused (422).",
            status=422,
            hint=f"{fatal_hint(422)} To skip this check, pass {option('preflight', False)}.",
        )
    return info


def new_namespace_warning(info: dict[str, Any], namespace: str) -> str | None:
    """What to say when ``namespace`` is not in the index yet (a typo, ``-n artciles``,
    would otherwise create a namespace without a word); ``None`` when it is there."""
    namespaces = info.get("namespaces")
    if not namespace or not isinstance(namespaces, dict) or namespace in namespaces:
        return None
    names = ", ".join(repr(name) for name in sorted(namespaces) if name)
    existing = f"it has {names}" if names else "it has only the default namespace"
    return (
        f"namespace {namespace!r} does not exist in the index yet, so this run creates it; "
        f"{existing} (`vupsert info` lists them)."
    )
