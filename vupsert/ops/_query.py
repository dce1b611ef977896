"""``vupsert query``: the records of a namespace nearest to a text, as the index ranks them.

The text goes to ``query-data``, where the index embeds it with the model that embedded
the records (dense, sparse or both, fused as the index fuses them), and the best
``top_k`` come back with their scores and metadata. What can be checked is checked before
anything is asked of the index: the text, ``top_k`` and the filter's syntax. Then
``/info`` says whether the index can embed a text at all, and whether it has the
namespace: a misspelled one would otherwise answer nothing, which looks like records that
were not loaded.
"""

from __future__ import annotations

from typing import Any

from ..config import option
from ..config.settings import MAX_TOP_K
from ..errors import PreflightError, ServerError, UsageError, VupsertError
from ..outcomes import Hit, QueryResult
from ..run import missing_model
from ..transport import Caller, index_info
from ._namespaces import no_such_namespace


def check_query(text: str, top_k: int, filter: str | None) -> None:
    """Refuse, before anything is asked of the index, a query that cannot be answered:
    no text, a ``top_k`` out of the index's range, a filter that does not parse."""
    if not isinstance(text, str) or not text.strip():
        raise UsageError("The query text is empty: give the words to look for.")
    if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= MAX_TOP_K:
        raise UsageError(f"{option('top_k', top_k)}: give a number from 1 to {MAX_TOP_K:,}.")
    if filter is not None:
        from ..filters import FilterError, compile_filter

        try:
            compile_filter(filter)
        except FilterError as exc:
            raise UsageError(
                f"{option('filter', filter)}: {exc}",
                hint="Write it in Upstash's filter language, e.g. \"genre = 'drama' AND "
                'year < 2000".',
            ) from None


def query(
    caller: Caller,
    text: str,
    *,
    top_k: int,
    filter: str | None = None,
    include_data: bool = False,
) -> QueryResult:
    """The records of the caller's namespace nearest to ``text``, best first: at most
    ``top_k``, those whose metadata matches ``filter`` when one is given. An error that
    stops it is raised with the (empty) result on it."""
    filter = filter if filter and filter.strip() else None
    result = QueryResult(
        namespace=caller.client.namespace,
        query=text,
        filter=filter,
        top_k=top_k,
        include_data=include_data,
    )
    try:
        check_query(text, top_k, filter)
        _look_up(caller, result)
        body: dict[str, Any] = {
            "data": text,
            "topK": top_k,
            "includeMetadata": True,
            "includeData": include_data,
        }
        if filter is not None:
            body["filter"] = filter
        result.hits = _hits(caller.call("query-data", body))
    except VupsertError as error:
        error.summary = result
        raise
    return result


def _look_up(caller: Caller, result: QueryResult) -> None:
    """What ``/info`` says of the index: refused when it cannot embed the text or lacks the
    namespace; the namespace's records and the others' names, which an empty answer
    is told by."""
    info = index_info(caller.client, policy=caller.policy)
    what = missing_model(info)
    if what is not None:
        raise PreflightError(
            f"The index at {caller.client.base_url} has {what}, so it cannot embed the "
            "query text: query-data would be refused (422).",
            status=422,
            hint="Such an index is queried with vectors, not text (the SDK's "
            "index.query(vector=...)); vupsert loads and queries indexes that embed text.",
        )
    namespaces = info.get("namespaces")
    if not isinstance(namespaces, dict):
        return
    result.namespaces = tuple(sorted(str(name) for name in namespaces))
    counts = namespaces.get(result.namespace)
    if counts is None and result.namespace:
        raise no_such_namespace(result.namespace, namespaces)
    if isinstance(counts, dict):
        result.stored = sum(
            n
            for n in (counts.get("vectorCount"), counts.get("pendingVectorCount"))
            if isinstance(n, int)
        )


def _hits(answer: Any) -> list[Hit]:
    """The hits of a ``query-data`` answer; :class:`ServerError` when it is not one."""
    if not isinstance(answer, list) or not all(
        isinstance(item, dict) and "id" in item and isinstance(item.get("score"), int | float)
        for item in answer
    ):
        raise ServerError(
            f"query-data answered {str(answer)[:200]!r}, not a list of scored records.",
            hint="Check that the URL is the index's REST URL.",
        )
    return [
        Hit(
            id=str(item["id"]),
            score=float(item["score"]),
            metadata=item.get("metadata") if isinstance(item.get("metadata"), dict) else None,
            data=item.get("data") if isinstance(item.get("data"), str) else None,
        )
        for item in answer
    ]
