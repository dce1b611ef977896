"""The request log: one line per request, for a developer who points a client at the server.

A line says when the request was answered (UTC), its method and path (without the query
string; bytes outside printable ASCII percent-encoded, so a line stays one line), the
status (``-`` when no answer went out: a dropped connection), the records it sent (an
upsert) or its answer holds (hits, vectors, deleted or updated ones), and the
milliseconds from its headers to its answer. Never a header (the token is one) nor a body.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timezone

import orjson


class RequestLog:
    def __init__(self, form: str, write: Callable[[str], None]) -> None:
        """``form``: ``text`` or ``json``; ``write`` takes each line, newline included."""
        self._json = form == "json"
        self._write = write
        self._lock = threading.Lock()

    def request(
        self, method: str, target: str, status: int | None, records: int, seconds: float
    ) -> None:
        when = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
        when = when.replace("+00:00", "Z")
        method, path = _printable(method), _printable(target.partition("?")[0])
        ms = round(seconds * 1000, 1)
        if self._json:
            fields = {
                "time": when,
                "method": method,
                "path": path,
                "status": status,
                "records": records,
                "ms": ms,
            }
            line = orjson.dumps(fields).decode()
        else:
            shown = "-" if status is None else str(status)
            line = f"{when} {method} {path} {shown} records={records} {ms:.1f} ms"
        with self._lock:
            self._write(line + "\n")


def _printable(text: str) -> str:
    """``text`` (the request line, read as Latin-1) with every byte outside printable
    ASCII percent-encoded."""
    return "".join(c if " " < c < "\x7f" else f"%{ord(c) & 0xFF:02X}" for c in text)
