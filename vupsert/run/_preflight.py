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
from ..outcomes import Events
from ..transport import AT_START, Client, RetryPolicy, fatal_hint, index_info

INDEX_PARTS = (("denseIndex", "dense"), ("sparseIndex", "sparse"))
"""The parts an index may have in ``/info``: a dense index has the first, a sparse one the
second, a hybrid one both."""


def embedding_models(info: dict[str, Any]) -> dict[str, str | None]:
    """Each part the index has (``dense``, ``sparse``) and its embedding model, if any.

    An ``/info`` that names no part is read as a dense index without a model.
    """
    models: dict[str, str | None] = {}
    for key, part in INDEX_PARTS:
        found = info.get(key)
        if isinstance(found, dict):
            model = found.get("embeddingModel")
            models[part] = model if isinstance(model, str) and model else None
    return models or {"dense": None}


def preflight(
    client: Client, *, policy: RetryPolicy = AT_START, sleep: Callable[[float], object] = time.sleep
) -> dict[str, Any]:
    """:func:`index_info`; :class:`PreflightError` when the index cannot embed raw text."""
    info = index_info(client, policy=policy, sleep=sleep)
    models = embedding_models(info)
    lacking = [part for part, model in models.items() if model is None]
    if lacking:
        what = (
            "no embedding model"
            if len(models) == 1
            else f"no embedding model for its {' and '.join(lacking)} part"
        )
        raise PreflightError(
            f"The index at {client.base_url} has {what}, so it cannot take raw text: every "
            "upsert-data request would be refused (422).",
            status=422,
            hint=f"{fatal_hint(422)} To skip this check, pass {option('preflight', False)}.",
        )
    return info


def warn_of_new_namespace(info: dict[str, Any], namespace: str, events: Events) -> None:
    """Say once when ``namespace`` is not in the index yet: a typo (``-n artciles``)
    would otherwise create a namespace without a word."""
    namespaces = info.get("namespaces")
    if not namespace or not isinstance(namespaces, dict) or namespace in namespaces:
        return
    names = ", ".join(repr(name) for name in sorted(namespaces) if name)
    existing = f"it has {names}" if names else "it has only the default namespace"
    events.warning(
        f"namespace {namespace!r} does not exist in the index yet, so this run creates it; "
        f"{existing} (`vupsert info` lists them)."
    )
