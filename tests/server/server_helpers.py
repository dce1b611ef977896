"""Helpers of the local server's tests (fixtures are in ``conftest.py``)."""

from __future__ import annotations

from typing import Any

import httpx
import orjson

from vupsert_server import LocalServer


class Api:
    """Raw HTTP to a :class:`LocalServer`: what a client sends, what it gets back."""

    def __init__(self, server: LocalServer, *, token: str | None = None) -> None:
        self.server = server
        self.http = httpx.Client(
            base_url=server.url,
            headers={"Authorization": f"Bearer {token or server.token}"},
            timeout=10,
        )

    def send(
        self, path: str, body: Any = None, *, method: str = "POST", raw: bytes | None = None
    ) -> httpx.Response:
        content = raw if raw is not None else (orjson.dumps(body) if body is not None else b"")
        return self.http.request(method, path, content=content)

    def result(self, path: str, body: Any = None, *, method: str = "POST") -> Any:
        """The ``result`` of a request that must succeed."""
        response = self.send(path, body, method=method)
        assert response.status_code == 200, response.text
        return response.json()["result"]

    def error(self, path: str, body: Any = None, *, status: int, method: str = "POST") -> str:
        """The ``error`` message of a request that must fail with ``status``."""
        response = self.send(path, body, method=method)
        assert response.status_code == status, response.text
        payload = response.json()
        assert payload["status"] == status
        assert isinstance(payload["error"], str)
        return str(payload["error"])

    def close(self) -> None:
        self.http.close()


def docs(count: int, *, prefix: str = "doc", start: int = 0) -> list[dict[str, Any]]:
    """``count`` valid upsert-data records with distinct ids."""
    return [
        {"id": f"{prefix}-{i}", "data": f"record number {i} about things", "metadata": {"n": i}}
        for i in range(start, start + count)
    ]
