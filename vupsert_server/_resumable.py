"""Resumable queries: a query opened once, whose next hits are fetched later by its uuid.

A session keeps its query and the ids it has answered, not a ranking: each
``resumable-query-next`` is the query again over the vectors not sent yet (fused anew,
as the service's figures show), so a session costs memory in proportion to what its
client has read. Sessions end
with ``resumable-query-end``, after ``maxIdle`` seconds without a call, or, beyond
:data:`MAX_SESSIONS` open at once, the longest idle first.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from ._errors import ApiError

MAX_SESSIONS = 1000


@dataclass
class Session:
    ns: str
    query: Any
    """What ``_api`` needs to rank again (its ``Query``)."""
    max_idle: float
    sent: set[str] = field(default_factory=set)
    used: float = field(default_factory=time.monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock)


class Sessions:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: OrderedDict[str, Session] = OrderedDict()

    def open(self, session: Session) -> str:
        import uuid  # here, not at the top: 6 ms of every start, for a rare endpoint

        key = str(uuid.uuid4())
        with self._lock:
            self._expire()
            while len(self._open) >= MAX_SESSIONS:
                self._open.popitem(last=False)
            self._open[key] = session
        return key

    def get(self, key: Any) -> Session:
        with self._lock:
            self._expire()
            session = self._open.get(key) if isinstance(key, str) else None
            if session is None:
                raise _unknown(key)
            session.used = time.monotonic()
            self._open.move_to_end(key)
            return session

    def end(self, key: Any) -> None:
        with self._lock:
            self._expire()
            if not isinstance(key, str) or self._open.pop(key, None) is None:
                raise _unknown(key)

    def _expire(self) -> None:
        now = time.monotonic()
        for key, session in list(self._open.items()):
            if now - session.used > session.max_idle:
                del self._open[key]


def _unknown(key: Any) -> ApiError:
    return ApiError(
        404,
        f"Resumable query {key!r} does not exist: it was ended, or idle longer than its maxIdle",
    )
