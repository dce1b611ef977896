"""What the index's answers mean: the kind of each status (:class:`Kind`), one attempt's
:class:`Answer`, what to do about a fatal one, ``Retry-After``, the message of an error
body, the count a delete answers.

The client makes answers of responses; the retry rule, the pacing and the commands read
them. Nothing here sends a request.
"""

from __future__ import annotations

import email.utils
import enum
import re
import time
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from ..config import option, where_set


class Kind(enum.Enum):
    OK = "ok"
    REFUSED = "refused"
    """The request was refused as bad (400, 413): some record in it may be at fault."""
    TRANSIENT = "transient"
    """Worth another try later: 429, 5xx, timeouts, connection failures."""
    FATAL = "fatal"
    """No batch can succeed: auth, wrong URL, no embedding model."""


REDIRECTS = frozenset({301, 302, 303, 307, 308})
FATAL_STATUSES = frozenset({401, 403, 404, 405, 422}) | REDIRECTS
"""Answers after which no batch can succeed: the run stops."""


def fatal_hint(status: int) -> str | None:
    """What to do about a fatal answer, in the caller's words for settings."""
    if status == 401:
        return (
            f"The token was refused. Check {where_set('token')}: use the index's REST token "
            "from the Upstash console."
        )
    if status == 403:
        return (
            "A read-only token cannot write: use the index's standard REST token, from the "
            "Upstash console. (An older server also answers 403 for an index without an "
            "embedding model: `vupsert info` tells.)"
        )
    if status == 404:
        return (
            f"Nothing answers at this address. Check {where_set('url')}: it is the index's REST "
            "URL, like https://example-us1-vector.upstash.io, with no path."
        )
    if status == 405:
        return (
            "The server does not accept this method at this address. Check that "
            "UPSTASH_VECTOR_REST_URL has no path after the host."
        )
    if status == 422:
        return (
            "The index was created without an embedding model, so it cannot embed raw "
            "text. Create an index with an embedding model (for example "
            f"BAAI/bge-small-en-v1.5) and point {option('url')} at it."
        )
    if status in REDIRECTS:
        return (
            "vupsert does not follow redirects: a redirect could carry the token to another "
            f"address. Set {where_set('url')} to the index's own REST URL, as the Upstash "
            "console shows it."
        )
    return None


RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
"""Answers worth another try, whose ``Retry-After`` is heeded."""
REFUSED_STATUSES = frozenset({400, 413})


def kind_of(status: int | None) -> Kind:
    """What an answer other than Upstash's success means; ``None``: no answer came."""
    if status is None:
        return Kind.TRANSIENT
    if 300 <= status < 400:
        # Not worth a retry: the address is wrong, and the same answer would follow.
        return Kind.FATAL
    if status in RETRY_STATUSES:
        return Kind.TRANSIENT
    if status in REFUSED_STATUSES:
        return Kind.REFUSED
    if status in FATAL_STATUSES or 400 <= status < 500:
        return Kind.FATAL
    return Kind.TRANSIENT


@dataclass(slots=True, frozen=True)
class Answer:
    kind: Kind
    status: int | None
    """HTTP status, or ``None`` when no answer came back."""
    message: str
    retry_after: float | None = None
    """Seconds the server asked us to wait (``Retry-After``)."""
    elapsed: float = 0.0
    result: Any = None
    """What an OK answer of :meth:`Client.call` holds (the JSON ``result``)."""


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Parse ``Retry-After`` as seconds or as an HTTP date; ``None`` if absent or bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


_TAGS = re.compile(r"<[^>]+>")
_SPACE = re.compile(r"\s+")


def error_message(response: httpx.Response, limit: int = 300) -> str:
    """A readable, one-line message from any error body, JSON or not."""
    text = ""
    try:
        payload = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        payload = None
    if isinstance(payload, dict) and isinstance(payload.get("error"), str):
        text = payload["error"]
    elif payload is not None:
        text = response.text
    else:
        text = _TAGS.sub(" ", response.text)
    text = _SPACE.sub(" ", text).strip()
    if not text:
        text = response.reason_phrase or "no message"
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text


def deleted(result: Any) -> int:
    """The count a ``delete`` answered."""
    if isinstance(result, dict) and isinstance(result.get("deleted"), int):
        return int(result["deleted"])
    return 0


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
