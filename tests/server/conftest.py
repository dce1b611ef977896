"""Fixtures of the local server's own tests: running indexes and a raw HTTP client."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from vupsert_server import LocalServer, ServerConfig

from ..conftest import emptied
from .server_helpers import Api

Serve = Callable[..., LocalServer]


@pytest.fixture(scope="module")
def module_local() -> Iterator[LocalServer]:
    with LocalServer(ServerConfig(port=0, seed=1)) as server:
        yield server


@pytest.fixture
def local(module_local: LocalServer) -> LocalServer:
    """A running in-memory index with embedding, no faults: the module's, emptied."""
    return emptied(module_local)


@pytest.fixture
def api(local: LocalServer) -> Iterator[Api]:
    client = Api(local)
    yield client
    client.close()


@pytest.fixture
def serve() -> Iterator[Serve]:
    """``serve(**config)`` starts a server (port 0 unless given), stopped after the test."""
    started: list[LocalServer] = []

    def start(**config: Any) -> LocalServer:
        config.setdefault("port", 0)
        server = LocalServer(ServerConfig(**config)).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
