"""The index's rows in SQLite: one connection behind one lock, one transaction per request.

Vectors are little-endian float32 blobs, metadata is the JSON text as bytes (it goes back
out as it came in, through :class:`orjson.Fragment`), data is text. A row upserted as
text waits with a NULL vector until it is embedded (Upstash's "pending" vectors, see
``_api.Index.embed_pending``). The default namespace ``""`` always exists; other
namespaces exist from their first upsert until ``delete-namespace``, even when empty, as
on Upstash.
"""

from __future__ import annotations

import sqlite3
import struct
import sys
import threading
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NamedTuple

from ..errors import ConfigError


class Row(NamedTuple):
    id: str
    vector: bytes | None
    """``None`` while the row waits to be embedded."""
    data: str | None
    metadata: bytes | None
    """The metadata object as JSON bytes, or ``None``."""


_SCHEMA = """
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS namespaces (name TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS vectors (
    ns TEXT NOT NULL,
    id TEXT NOT NULL,
    vector BLOB,
    data TEXT,
    metadata BLOB,
    UNIQUE (ns, id)
);
CREATE INDEX IF NOT EXISTS pending ON vectors (ns) WHERE vector IS NULL;
INSERT OR IGNORE INTO namespaces (name) VALUES ('');
"""
_UPSERT = """
INSERT INTO vectors (ns, id, vector, data, metadata) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (ns, id) DO UPDATE
SET vector = excluded.vector, data = excluded.data, metadata = excluded.metadata
"""
_ROW = "SELECT id, vector, data, metadata FROM vectors"


def pack_vector(values: Sequence[float]) -> bytes:
    """Float32 bytes of ``values``; raises :class:`OverflowError` beyond float32's range."""
    return struct.pack(f"<{len(values)}f", *values)


def unpack_vector(blob: bytes) -> array[float]:
    values = array("f")
    values.frombytes(blob)
    if sys.byteorder != "little":
        values.byteswap()
    return values


def prefix_end(prefix: str) -> str | None:
    """The smallest string above every string that starts with ``prefix``.

    SQLite compares TEXT as UTF-8 bytes, which orders like code points, so bumping the
    last code point that can be bumped bounds the prefix range and keeps it an index scan.
    """
    chars = list(prefix)
    while chars:
        code = ord(chars.pop()) + 1
        if code == 0xD800:
            code = 0xE000
        if code <= 0x10FFFF:
            return "".join(chars) + chr(code)
    return None


class Storage:
    def __init__(self, path: str | None, *, dimension: int, embedding_model: str) -> None:
        self._lock = threading.Lock()
        self._closed = False
        target = path if path is not None else ":memory:"
        try:
            self._conn = sqlite3.connect(target, check_same_thread=False, isolation_level=None)
        except sqlite3.Error as exc:
            raise ConfigError(f"Cannot open the index database {path}: {exc}.") from None
        try:
            if path is not None:
                # WAL: readers (fetch, range, info) never wait for a write to finish on disk.
                self._conn.execute("PRAGMA journal_mode=WAL")
                self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.executescript(_SCHEMA)
            self._check_settings(path, dimension, embedding_model)
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            raise ConfigError(f"{path} is not a usable index database: {exc}.") from None
        except ConfigError:
            self._conn.close()
            raise

    def _check_settings(self, path: str | None, dimension: int, embedding_model: str) -> None:
        stored = dict(self._conn.execute("SELECT key, value FROM settings").fetchall())
        if "dimension" in stored and int(stored["dimension"]) != dimension:
            raise ConfigError(
                f"{path} holds an index of dimension {stored['dimension']}, not {dimension}.",
                hint=f"Pass --dimension {stored['dimension']}, or use another --db file.",
            )
        self._conn.execute(
            "INSERT OR REPLACE INTO settings (key, value) VALUES ('dimension', ?), "
            "('embedding_model', ?)",
            (str(dimension), embedding_model),
        )

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._conn.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _read(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    # -- writes -------------------------------------------------------------------------

    def upsert(
        self, ns: str, rows: Iterable[tuple[str, bytes | None, str | None, bytes | None]]
    ) -> int:
        """Insert or replace ``(id, vector, data, metadata)`` rows; returns how many."""
        params = [(ns, *row) for row in rows]
        with self._transaction() as conn:
            conn.execute("INSERT OR IGNORE INTO namespaces (name) VALUES (?)", (ns,))
            conn.executemany(_UPSERT, params)
        return len(params)

    def update(self, ns: str, id: str, change: Callable[[Row], Row]) -> bool:
        """Replace the row ``id`` by ``change(row)`` atomically; ``False`` when it is absent."""
        with self._transaction() as conn:
            found = conn.execute(f"{_ROW} WHERE ns = ? AND id = ?", (ns, id)).fetchone()
            if found is None:
                return False
            new = change(Row(*found))
            conn.execute(
                "UPDATE vectors SET vector = ?, data = ?, metadata = ? WHERE ns = ? AND id = ?",
                (new.vector, new.data, new.metadata, ns, id),
            )
        return True

    def set_vectors(self, rows: Sequence[tuple[str, str, str, bytes]]) -> int:
        """Store the vectors of pending ``(ns, id, data, vector)`` rows.

        A row whose data changed since it was read keeps waiting: its vector is stale.
        """
        with self._transaction() as conn:
            before = conn.total_changes
            conn.executemany(
                "UPDATE vectors SET vector = ? "
                "WHERE ns = ? AND id = ? AND vector IS NULL AND data = ?",
                [(vector, ns, id, data) for ns, id, data, vector in rows],
            )
            return conn.total_changes - before

    def delete_ids(self, ns: str, ids: Sequence[str]) -> int:
        with self._transaction() as conn:
            before = conn.total_changes
            conn.executemany(
                "DELETE FROM vectors WHERE ns = ? AND id = ?", [(ns, id) for id in set(ids)]
            )
            return conn.total_changes - before

    def delete_prefix(self, ns: str, prefix: str) -> int:
        where, params = _prefix_clause(prefix)
        with self._transaction() as conn:
            cursor = conn.execute(f"DELETE FROM vectors WHERE ns = ?{where}", (ns, *params))
            return cursor.rowcount

    def delete_matching(self, ns: str, matches: Callable[[bytes | None], bool]) -> int:
        """Delete the rows whose metadata ``matches``, judged inside the transaction."""
        with self._transaction() as conn:
            ids = [
                (ns, id)
                for id, metadata in conn.execute(
                    "SELECT id, metadata FROM vectors WHERE ns = ?", (ns,)
                )
                if matches(metadata)
            ]
            conn.executemany("DELETE FROM vectors WHERE ns = ? AND id = ?", ids)
            return len(ids)

    def reset(self, ns: str) -> None:
        with self._transaction() as conn:
            conn.execute("DELETE FROM vectors WHERE ns = ?", (ns,))

    def reset_all(self) -> None:
        with self._transaction() as conn:
            conn.execute("DELETE FROM vectors")
            conn.execute("DELETE FROM namespaces WHERE name != ''")

    def delete_namespace(self, ns: str) -> bool:
        with self._transaction() as conn:
            cursor = conn.execute("DELETE FROM namespaces WHERE name = ?", (ns,))
            if cursor.rowcount == 0:
                return False
            conn.execute("DELETE FROM vectors WHERE ns = ?", (ns,))
            return True

    # -- reads --------------------------------------------------------------------------

    def get(self, ns: str, ids: Sequence[str]) -> dict[str, Row]:
        found: dict[str, Row] = {}
        unique = list(dict.fromkeys(ids))
        with self._lock:
            # Chunks stay under SQLite's limit on bound parameters.
            for start in range(0, len(unique), 500):
                chunk = unique[start : start + 500]
                marks = ",".join("?" * len(chunk))
                for row in self._conn.execute(
                    f"{_ROW} WHERE ns = ? AND id IN ({marks})", (ns, *chunk)
                ):
                    found[row[0]] = Row(*row)
        return found

    def scan(
        self, ns: str, *, start: str | None = None, prefix: str | None = None, limit: int = -1
    ) -> list[Row]:
        """Rows in id order, from ``start`` (inclusive), with ``prefix``, at most ``limit``."""
        where, params = _prefix_clause(prefix) if prefix else ("", [])
        if start is not None:
            where += " AND id >= ?"
            params.append(start)
        rows = self._read(f"{_ROW} WHERE ns = ?{where} ORDER BY id LIMIT ?", (ns, *params, limit))
        return [Row(*row) for row in rows]

    def vectors(self, ns: str, *, with_metadata: bool) -> list[tuple[str, bytes, bytes | None]]:
        """``(id, vector, metadata or None)`` of every embedded row of ``ns``, for a query."""
        column = "metadata" if with_metadata else "NULL"
        rows = self._read(
            f"SELECT id, vector, {column} FROM vectors WHERE ns = ? AND vector IS NOT NULL", (ns,)
        )
        return [(row[0], row[1], row[2]) for row in rows]

    def pending(self, ns: str | None, limit: int) -> list[tuple[str, str, str]]:
        """Up to ``limit`` ``(ns, id, data)`` rows waiting for a vector (any ns if ``None``)."""
        if ns is None:
            rows = self._read(
                "SELECT ns, id, data FROM vectors WHERE vector IS NULL LIMIT ?", (limit,)
            )
        else:
            rows = self._read(
                "SELECT ns, id, data FROM vectors WHERE ns = ? AND vector IS NULL LIMIT ?",
                (ns, limit),
            )
        return [(row[0], row[1], row[2]) for row in rows]

    def namespaces(self) -> list[str]:
        return [str(row[0]) for row in self._read("SELECT name FROM namespaces ORDER BY name")]

    def has_namespace(self, ns: str) -> bool:
        return bool(self._read("SELECT 1 FROM namespaces WHERE name = ?", (ns,)))

    def counts(self) -> dict[str, tuple[int, int]]:
        """``(vectors, pending)`` per namespace, every namespace included."""
        # Both counts read an index only (the (ns, id) key, the partial index of pending
        # rows), never the rows: info stays cheap on a large index under load.
        with self._lock:
            names = self._conn.execute("SELECT name FROM namespaces ORDER BY name").fetchall()
            totals = dict(self._conn.execute("SELECT ns, COUNT(*) FROM vectors GROUP BY ns"))
            pending = dict(
                self._conn.execute(
                    "SELECT ns, COUNT(*) FROM vectors WHERE vector IS NULL GROUP BY ns"
                )
            )
        return {name: (totals.get(name, 0), pending.get(name, 0)) for (name,) in names}

    def size(self) -> int:
        """Bytes of the database (what ``indexSize`` reports)."""
        rows = self._read(
            "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()"
        )
        return int(rows[0][0])


def _prefix_clause(prefix: str | None) -> tuple[str, list[object]]:
    if not prefix:
        return "", []
    end = prefix_end(prefix)
    if end is None:
        return " AND id >= ?", [prefix]
    return " AND id >= ? AND id < ?", [prefix, end]
