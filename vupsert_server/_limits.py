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
MAX_METADATA_DEPTH = 254
"""Objects and arrays nested in one metadata value, itself included (what its JSON
encoder takes; the service documents none)."""
MAX_RANGE_LIMIT = 1000
"""Vectors in one ``range`` page (the service's largest page, as vupsert knows it)."""
MAX_FILTER_LENGTH = 16 * 1024
"""Characters of a metadata filter (ours): a query tests each vector against each
clause, about 0.35 us a clause in Python."""
MAX_NAMESPACE_BYTES = 255
"""A namespace name's UTF-8 bytes (ours)."""
MAX_CURSOR = 2**63 - 1
"""The largest ``range`` cursor: a position is a 64-bit integer."""
