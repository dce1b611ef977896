"""The server's two exceptions: a request the index refuses, as Upstash answers it, and a
setting it cannot honour."""

from __future__ import annotations

import orjson


class ServerConfigError(ValueError):
    """A setting the server cannot honour (``ServerConfig``, a ``db`` file): ``message``
    says what, ``hint`` what to do; ``vupsert serve`` prints both and exits 2."""

    def __init__(self, message: str, *, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n{self.hint}" if self.hint else self.message


class ApiError(Exception):
    """A request the index refuses: becomes ``{"error": message, "status": status}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def bad_request(message: str) -> ApiError:
    return ApiError(400, message)


def kind(value: object) -> str:
    """What a JSON value is, for a message: ``a string``, ``an array``, ``null``..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def quote(text: str) -> str:
    """``text`` as a JSON string, so quotes and control characters in an id stay readable."""
    return orjson.dumps(text).decode()
