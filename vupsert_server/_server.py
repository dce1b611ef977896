"""Starting and stopping the local index: in a background thread, or in the foreground."""

from __future__ import annotations

import secrets
import shlex
import signal
import sqlite3
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import Any

import orjson

from ._api import Index, models_of
from ._app import App
from ._config import FAULT_FIELDS, ServerConfig
from ._faults import Faults
from ._http import IndexHTTPServer, make_server
from ._log import RequestLog
from ._stats import Stats
from ._storage import Storage

_DEFAULT_CONFIG = ServerConfig(port=0)
_POLL_INTERVAL = 0.05
"""How often the background indexer looks for pending rows."""
_STOP_TIMEOUT = 5.0
_IDLE_BEFORE_INDEXING = 0.2
"""Seconds without a write before the background indexer embeds pending rows."""
_INDEXING_CHUNK = 256
"""Rows embedded between two looks at whether writes resumed (about 15 ms of work)."""


class LocalServer:
    """The local Upstash-compatible index, serving from a daemon thread.

    ``with LocalServer() as server:`` starts it on a free port; ``server.url`` and
    ``server.token`` are what a client needs; leaving the block stops it, closing
    every connection. ``stats``, ``records()`` and ``set_faults()`` let a test see
    and steer what the server does.
    """

    def __init__(
        self, config: ServerConfig = _DEFAULT_CONFIG, *, log: Callable[[str], None] | None = None
    ) -> None:
        """``log`` takes the request log's lines (``config.request_log``); stderr by default."""
        self.config = config
        self._log = (
            RequestLog(config.request_log, log or _to_stderr)
            if config.request_log != "off"
            else None
        )
        self.token = config.token if config.token is not None else secrets.token_urlsafe(24)
        self._faults = Faults(config)
        self._stats = Stats()
        self._lock = threading.Lock()
        self._url: str | None = None
        self._storage: Storage | None = None
        self._httpd: IndexHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._indexer: threading.Thread | None = None
        self._stopping = threading.Event()

    @property
    def url(self) -> str:
        """``http://host:port`` of the running server (the last one, once stopped)."""
        if self._url is None:
            raise RuntimeError("The local server has not been started: call start() first.")
        return self._url

    @property
    def running(self) -> bool:
        return self._httpd is not None

    def start(self) -> LocalServer:
        with self._lock:
            if self._httpd is not None:
                return self
            config = self.config
            storage = Storage(
                config.db,
                dimension=config.dimension,
                embedding_model=models_of(config)[0],
                index_type=config.index_type,
            )
            index = Index(storage, config, self._faults)
            self._stopping.clear()
            app = App(
                index,
                token=self.token,
                readonly_token=config.readonly_token,
                max_body_bytes=config.max_body_bytes,
                faults=self._faults,
                stats=self._stats,
                stopping=self._stopping,
            )
            try:
                httpd = make_server(
                    config.host,
                    config.port,
                    app,
                    read_timeout=config.read_timeout,
                    max_connections=config.max_connections,
                    log=self._log,
                )
            except BaseException:
                storage.close()
                raise
            self._url = _url_of(config.host, httpd.server_port)
            self._storage = storage
            self._httpd = httpd
            self._thread = threading.Thread(
                target=httpd.serve_until_stopped, name="vupsert-server", daemon=True
            )
            self._thread.start()
            if config.embedding:
                self._indexer = threading.Thread(
                    target=_index_when_idle,
                    args=(index, self._stopping),
                    name="vupsert-server-indexer",
                    daemon=True,
                )
                self._indexer.start()
            return self

    def stop(self) -> None:
        with self._lock:
            httpd, thread, storage = self._httpd, self._thread, self._storage
            indexer = self._indexer
            if httpd is None:
                return
            # Wakes writes sleeping on injected latency: they end as dropped connections.
            self._stopping.set()
            httpd.stop_serving()
            for worker in (thread, indexer):
                if worker is not None:
                    worker.join(_STOP_TIMEOUT)
            httpd.server_close()
            httpd.close_connections(_STOP_TIMEOUT)
            if storage is not None:
                storage.close()
            self._httpd = self._thread = self._indexer = self._storage = None

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- what tests look at -------------------------------------------------------------

    @property
    def stats(self) -> dict[str, Any]:
        """A snapshot: ``requests`` per endpoint, ``statuses`` per HTTP status (ints),
        ``records_received`` (records in upsert-data/upsert bodies whose token was
        right, whatever the answer), ``records_written`` (records actually upserted),
        ``dropped`` (connections closed without an answer) and ``writes_in_flight``
        (writes being handled now)."""
        return {**self._stats.snapshot(), "writes_in_flight": self._faults.writes_in_flight}

    def reset_stats(self) -> None:
        self._stats.reset()

    def set_faults(self, **changes: Any) -> None:
        """Change fault settings while running, e.g. ``set_faults(fail_rate=0)``."""
        self._faults.change(**changes)

    @property
    def faults(self) -> ServerConfig:
        """The settings in force, faults included (``config`` keeps the initial ones)."""
        return self._faults.config

    def records(self, namespace: str = "") -> dict[str, tuple[str | None, dict[str, Any] | None]]:
        """``id -> (data, metadata)`` of every vector in ``namespace``, read from storage."""
        return {
            row.id: (row.data, orjson.loads(row.metadata) if row.metadata else None)
            for _, row in self._live_storage().scan(namespace)
        }

    def namespaces(self) -> list[str]:
        return self._live_storage().namespaces()

    def describe(self) -> str:
        """One line saying what this server is (what ``vupsert serve`` prints)."""
        config = self._faults.config
        if config.index_type == "sparse":
            shape = "sparse index"
        else:
            shape = f"{config.index_type} index, dimension {config.dimension} {config.similarity}"
        models = " + ".join(filter(None, models_of(config)))
        model = f"embedding {models}" if models else "no embedding model"
        where = f"stored in {config.db}" if config.db else "in memory"
        parts = [f"{shape}, {model}, {where}"]
        if config.readonly_token is not None:
            parts.append("a read-only token too")
        if config.request_log != "off":
            parts.append(f"requests logged ({config.request_log})")
        faults = [
            f"{name}={value}"
            for name in FAULT_FIELDS
            if name not in ("seed", "rate_limiter") and (value := getattr(config, name))
        ]
        if config.rate_limit and config.rate_limiter != "bucket":
            faults.append(f"rate_limiter={config.rate_limiter}")
        if faults:
            seed = f", seed={config.seed}" if config.seed is not None else ""
            parts.append(f"faults: {' '.join(faults)}{seed}")
        return f"vupsert local index at {self.url}: {'; '.join(parts)}. Ctrl-C stops it."

    def _live_storage(self) -> Storage:
        storage = self._storage
        if storage is None:
            raise RuntimeError("The local server is not running: its index is closed.")
        return storage


def _index_when_idle(index: Index, stopping: threading.Event) -> None:
    """Embed pending rows while no write is coming in, until the server stops.

    Waiting for a pause keeps the embedding off the GIL while a client is loading,
    so the write path stays fast; a query embeds what it needs itself.
    """
    while not stopping.wait(_POLL_INTERVAL):
        if not _writes_paused(index):
            continue
        try:
            while not stopping.is_set() and index.embed_pending(limit=_INDEXING_CHUNK):
                if not _writes_paused(index):
                    break
        except sqlite3.ProgrammingError:
            return  # the storage closed under us: the server is stopping


def _writes_paused(index: Index) -> bool:
    # A write waiting out its injected latency has not set last_write yet: in flight counts.
    return (
        index.faults.writes_in_flight == 0
        and time.monotonic() - index.last_write >= _IDLE_BEFORE_INDEXING
    )


def _to_stderr(line: str) -> None:
    sys.stderr.write(line)
    sys.stderr.flush()


def _url_of(host: str, port: int) -> str:
    # A wildcard address is where to listen, not where to connect.
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def serve_forever(
    config: ServerConfig,
    announce: Callable[[str], None],
    *,
    log: Callable[[str], None] | None = None,
) -> None:
    """Serve in the foreground until Ctrl-C or SIGTERM.

    Before serving, calls ``announce`` three times: the ``export`` line of the URL, the
    one of the token (both shell-quoted, ready to paste), and a ``#`` comment saying
    what the index is. ``log`` takes the request log's lines (stderr by default).
    """
    server = LocalServer(config, log=log).start()
    try:
        announce(f"export UPSTASH_VECTOR_REST_URL={shlex.quote(server.url)}")
        announce(f"export UPSTASH_VECTOR_REST_TOKEN={shlex.quote(server.token)}")
        announce(f"# {server.describe()}")
        _wait_for_stop()
    finally:
        server.stop()


def _wait_for_stop() -> None:
    stop = threading.Event()

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        stop.set()

    try:
        previous: Any = signal.signal(signal.SIGTERM, on_sigterm)
    except ValueError:
        previous = None  # not the main thread: SIGTERM stays with whoever owns it
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
