"""The index's rows in SQLite: one connection behind one lock, one transaction per request.

Dense vectors and sparse vectors are blobs (``_vectors``), metadata is the JSON text as
bytes (it goes back out as it came in, through :class:`orjson.Fragment`), data is text.
A row upserted as text waits with no vector at all until it is embedded (Upstash's
"pending" vectors, see ``_api.Index.embed_pending``). Rows keep the place of their first
upsert (an upsert of an existing id keeps it): their position in their namespace,
counted from 0 (one past the namespace's last, so an emptied namespace counts from 0
again), is what a ``range`` cursor names, so a page starts where the last one ended
whatever was deleted meanwhile. The default namespace ``""`` always exists;
other namespaces exist from their first upsert until ``delete-namespace``, even when
empty, as on Upstash.

Scans for a query are read in chunks of rows, each under the lock for a moment, so a
query over a large index neither holds every vector in memory at once nor blocks the
writes for its whole duration.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NamedTuple

from ._errors import ServerConfigError

SCAN_CHUNK = 1000
"""Rows read under the lock at a time by a scan."""


Stored = tuple[str, str, bytes | None, str | None, bytes | None, bytes | None]
"""A row to write as the table's columns: ``(ns, id, vector, data, metadata, sparse)``.
Writes take plain tuples: a :class:`Row` per record cost 4% of an upsert's CPU."""


class Row(NamedTuple):
    id: str
    vector: bytes | None
    """The dense vector; ``None`` in a sparse index, or while the row waits to be embedded."""
    data: str | None
    metadata: bytes | None
    """The metadata object as JSON bytes, or ``None``."""
    sparse: bytes | None = None
    """The sparse vector; ``None`` in a dense index, or while the row waits."""


_SCHEMA = """
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS namespaces (name TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS vectors (
    ns TEXT NOT NULL,
    id TEXT NOT NULL,
    vector BLOB,
    data TEXT,
    metadata BLOB,
    sparse BLOB,
    position INTEGER,
    UNIQUE (ns, id)
);
INSERT OR IGNORE INTO namespaces (name) VALUES ('');
"""
_INDEXES = """
DROP INDEX IF EXISTS pending;
CREATE INDEX IF NOT EXISTS pending_rows ON vectors (ns) WHERE vector IS NULL AND sparse IS NULL;
DROP INDEX IF EXISTS by_namespace;
CREATE INDEX IF NOT EXISTS by_position ON vectors (ns, position);
"""
_PENDING = "vector IS NULL AND sparse IS NULL"
# ?1 is the namespace: a new row takes the place after its namespace's last one.
_UPSERT = """
INSERT INTO vectors (ns, id, vector, data, metadata, sparse, position)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, (SELECT IFNULL(MAX(position) + 1, 0) FROM vectors WHERE ns = ?1))
ON CONFLICT (ns, id) DO UPDATE
SET vector = excluded.vector, data = excluded.data, metadata = excluded.metadata,
    sparse = excluded.sparse
"""
_ROW = "SELECT id, vector, data, metadata, sparse FROM vectors"


def _create_private(path: str) -> None:
    """Create the file at ``path`` readable by its owner only (0600), unless it exists:
    the index may hold what its data holds. SQLite gives its -wal file the same mode."""
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        pass
    except OSError as exc:
        raise ServerConfigError(
            f"Cannot create the index database {path}: {exc.strerror}."
        ) from None


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
    def __init__(
        self, path: str | None, *, dimension: int, embedding_model: str, index_type: str = "dense"
    ) -> None:
        self._lock = threading.Lock()
        self._closed = False
        target = path if path is not None else ":memory:"
        if path is not None:
            _create_private(path)
        try:
            # No busy wait: the only other holder of the file is another server.
            self._conn = sqlite3.connect(
                target, check_same_thread=False, isolation_level=None, timeout=0
            )
        except sqlite3.Error as exc:
            raise ServerConfigError(f"Cannot open the index database {path}: {exc}.") from None
        try:
            if path is None:
                # Rows of ~2 KB (a 384-dimension vector and its text) fill 4 KiB pages
                # badly: 16 KiB pages take 5% less memory, 22% for vectors alone.
                self._conn.execute("PRAGMA page_size=16384")
            else:
                # The file is this server's alone while it runs (locked from its first
                # write until it closes): a second server on it is refused, not corrupted.
                self._conn.execute("PRAGMA locking_mode=EXCLUSIVE")
                # WAL: readers (fetch, range, info) never wait for a write to finish on disk.
                self._conn.execute("PRAGMA journal_mode=WAL")
                self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.executescript(_SCHEMA)
            columns = {row[1] for row in self._conn.execute("PRAGMA table_info(vectors)")}
            if "sparse" not in columns:  # a file written before sparse vectors existed
                self._conn.execute("ALTER TABLE vectors ADD COLUMN sparse BLOB")
            if "position" not in columns:  # a file written before positions existed
                self._number_rows()
            self._conn.executescript(_INDEXES)
            self._check_settings(path, dimension, embedding_model, index_type)
        except sqlite3.OperationalError as exc:
            self._conn.close()
            if "locked" not in str(exc):
                raise ServerConfigError(f"{path} is not a usable index database: {exc}.") from None
            raise ServerConfigError(
                f"{path} is in use by another vupsert serve (or another program): two "
                "servers cannot share one --db file.",
                hint="Stop the other one, or give this one another --db file.",
            ) from None
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            raise ServerConfigError(f"{path} is not a usable index database: {exc}.") from None
        except ServerConfigError:
            self._conn.close()
            raise

    def _number_rows(self) -> None:
        """Give the rows of a file written before positions their place in upsert order."""
        conn = self._conn
        conn.execute("ALTER TABLE vectors ADD COLUMN position INTEGER")
        counts: dict[str, int] = {}
        numbered = []
        for rowid, ns in conn.execute("SELECT rowid, ns FROM vectors ORDER BY rowid").fetchall():
            numbered.append((counts.get(ns, 0), rowid))
            counts[ns] = counts.get(ns, 0) + 1
        conn.executemany("UPDATE vectors SET position = ? WHERE rowid = ?", numbered)

    def _check_settings(
        self, path: str | None, dimension: int, embedding_model: str, index_type: str
    ) -> None:
        stored = dict(self._conn.execute("SELECT key, value FROM settings").fetchall())
        if "dimension" in stored and int(stored["dimension"]) != dimension:
            raise ServerConfigError(
                f"{path} holds an index of dimension {stored['dimension']}, not {dimension}.",
                hint=f"Pass --dimension {stored['dimension']}, or use another --db file.",
            )
        # Files written before index types existed hold a dense index.
        if "dimension" in stored and stored.get("index_type", "dense") != index_type:
            kept = stored.get("index_type", "dense")
            raise ServerConfigError(
                f"{path} holds a {kept} index, not a {index_type} one.",
                hint=f"Pass --index-type {kept}, or use another --db file.",
            )
        self._conn.execute(
            "INSERT OR REPLACE INTO settings (key, value) VALUES ('dimension', ?), "
            "('embedding_model', ?), ('index_type', ?)",
            (str(dimension), embedding_model, index_type),
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

    def upsert(self, ns: str, rows: Sequence[Stored]) -> int:
        """Insert or replace rows of ``ns`` (a replaced row keeps its place in ``range``)."""
        with self._transaction() as conn:
            conn.execute("INSERT OR IGNORE INTO namespaces (name) VALUES (?)", (ns,))
            conn.executemany(_UPSERT, rows)
        return len(rows)

    def update(self, ns: str, id: str, change: Callable[[Row], Row]) -> bool:
        """Replace the row ``id`` by ``change(row)`` atomically; ``False`` when it is absent."""
        with self._transaction() as conn:
            found = conn.execute(f"{_ROW} WHERE ns = ? AND id = ?", (ns, id)).fetchone()
            if found is None:
                return False
            new = change(Row(*found))
            conn.execute(
                "UPDATE vectors SET vector = ?, data = ?, metadata = ?, sparse = ? "
                "WHERE ns = ? AND id = ?",
                (new.vector, new.data, new.metadata, new.sparse, ns, id),
            )
        return True

    def set_vectors(self, rows: Sequence[tuple[str, str, str, bytes | None, bytes | None]]) -> int:
        """Store the vectors of pending ``(ns, id, data, vector, sparse)`` rows.

        A row whose data changed since it was read keeps waiting: its vectors are stale.
        """
        with self._transaction() as conn:
            before = conn.total_changes
            conn.executemany(
                "UPDATE vectors SET vector = ?, sparse = ? "
                f"WHERE ns = ? AND id = ? AND {_PENDING} AND data = ?",
                [(vector, sparse, ns, id, data) for ns, id, data, vector, sparse in rows],
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
        """Empty every namespace; the namespaces stay, as on Upstash."""
        with self._transaction() as conn:
            conn.execute("DELETE FROM vectors")

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
        self,
        ns: str,
        *,
        start: int = 0,
        prefix: str | None = None,
        limit: int = -1,
        offset: int = 0,
    ) -> list[tuple[int, Row]]:
        """``(position, row)`` in upsert order from position ``start``, with ``prefix``,
        passing over ``offset`` rows first."""
        # Unary plus keeps SQLite off the (ns, id) index: it walks positions, no sort.
        where, params = _prefix_clause(prefix, "+id") if prefix else ("", [])
        rows = self._read(
            "SELECT position, id, vector, data, metadata, sparse FROM vectors "
            f"WHERE ns = ? AND position >= ?{where} ORDER BY position LIMIT ? OFFSET ?",
            (ns, start, *params, limit, offset),
        )
        return [(row[0], Row(*row[1:])) for row in rows]

    def stream(
        self, ns: str, column: str, *, with_metadata: bool
    ) -> Iterator[tuple[str, bytes, bytes | None]]:
        """``(id, blob of column, metadata or None)`` of every row of ``ns`` that has one.

        ``column`` is ``vector`` or ``sparse``. Read :data:`SCAN_CHUNK` rows at a time.
        """
        assert column in ("vector", "sparse")
        metadata = "metadata" if with_metadata else "NULL"
        sql = (
            f"SELECT rowid, id, {column}, {metadata} FROM vectors "
            f"WHERE +ns = ? AND rowid > ? AND {column} IS NOT NULL ORDER BY rowid LIMIT ?"
        )
        last = 0
        while True:
            rows = self._read(sql, (ns, last, SCAN_CHUNK))
            for _, id, blob, meta in rows:
                yield id, blob, meta
            if len(rows) < SCAN_CHUNK:
                return
            last = rows[-1][0]

    def pending(
        self, ns: str | None, limit: int, *, after: int = 0, upto: int = -1
    ) -> list[tuple[int, str, str, str]]:
        """Up to ``limit`` ``(rowid, ns, id, data)`` rows waiting for vectors: of any
        namespace when ``ns`` is ``None``, else of ``ns`` in rowid order with
        ``after < rowid <= upto`` (``upto`` -1: no bound)."""
        # Both read the partial index of pending rows only: an ORDER BY rowid without a
        # namespace would walk the whole table instead, every poll of the indexer.
        if ns is None:
            rows = self._read(
                "SELECT rowid, ns, id, data FROM vectors INDEXED BY pending_rows "
                f"WHERE {_PENDING} LIMIT ?",
                (limit,),
            )
        else:
            rows = self._read(
                "SELECT rowid, ns, id, data FROM vectors INDEXED BY pending_rows "
                f"WHERE {_PENDING} AND ns = ? AND rowid > ? AND (? < 0 OR rowid <= ?) "
                "ORDER BY rowid LIMIT ?",
                (ns, after, upto, upto, limit),
            )
        return [(row[0], row[1], row[2], row[3]) for row in rows]

    def last_rowid(self) -> int:
        rows = self._read("SELECT MAX(rowid) FROM vectors")
        return int(rows[0][0] or 0)

    def namespaces(self) -> list[str]:
        return [str(row[0]) for row in self._read("SELECT name FROM namespaces ORDER BY name")]

    def counts(self) -> dict[str, tuple[int, int]]:
        """``(vectors, pending)`` per namespace, every namespace included."""
        # Both counts read an index only (the (ns, id) one, the partial index of pending
        # rows), never the rows: info stays cheap on a large index under load.
        with self._lock:
            names = self._conn.execute("SELECT name FROM namespaces ORDER BY name").fetchall()
            totals = dict(self._conn.execute("SELECT ns, COUNT(*) FROM vectors GROUP BY ns"))
            pending = dict(
                self._conn.execute(f"SELECT ns, COUNT(*) FROM vectors WHERE {_PENDING} GROUP BY ns")
            )
        return {name: (totals.get(name, 0), pending.get(name, 0)) for (name,) in names}

    def size(self) -> int:
        """Bytes of the database (what ``indexSize`` reports)."""
        rows = self._read(
            "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()"
        )
        return int(rows[0][0])


def _prefix_clause(prefix: str | None, column: str = "id") -> tuple[str, list[object]]:
    if not prefix:
        return "", []
    end = prefix_end(prefix)
    if end is None:
        return f" AND {column} >= ?", [prefix]
    return f" AND {column} >= ? AND {column} < ?", [prefix, end]
