"""Counters that let an end-to-end test say what reached the server."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any


class Stats:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._requests: Counter[str] = Counter()
            self._statuses: Counter[int] = Counter()
            self._received = 0
            self._written = 0
            self._dropped = 0

    def request(self, endpoint: str) -> None:
        with self._lock:
            self._requests[endpoint] += 1

    def answered(self, status: int) -> None:
        with self._lock:
            self._statuses[status] += 1

    def dropped(self) -> None:
        with self._lock:
            self._dropped += 1

    def received(self, records: int) -> None:
        with self._lock:
            self._received += records

    def written(self, records: int) -> None:
        with self._lock:
            self._written += records

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": dict(self._requests),
                "statuses": dict(self._statuses),
                "records_received": self._received,
                "records_written": self._written,
                "dropped": self._dropped,
            }
