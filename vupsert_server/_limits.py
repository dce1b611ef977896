"""The limits of the service this server emulates: Upstash's where it states them, ours
(each a 400 with a message) where it says nothing and a request could otherwise hold the
server or break it."""

from __future__ import annotations

MAX_BATCH_RECORDS = 1000
"""Vectors in one upsert request (Upstash's documented limit)."""
MAX_DATA_BYTES = 1_048_576
"""Data of one vector, in UTF-8 bytes (1 MB)."""
MAX_METADATA_BYTES = 48 * 1024
"""Metadata of one vector, as JSON bytes (48 KB)."""
MAX_TOP_K = 1000
"""``topK`` of a query and ``additionalK`` of a resumable query."""
