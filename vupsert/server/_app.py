"""Routing, auth, faults and counters: one request in, one :class:`Response` out.

Nothing here touches a socket, so the whole Upstash surface can be driven in-process;
``_http`` only moves bytes. The order for a write is: count what arrived, auth, route,
rate limit (429), check the whole request (400/422), latency, roll the fault dice, fail
now, or write and then fail or answer.
"""

from __future__ import annotations

import hmac
import sys
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import orjson

from ._api import ApiError, Index, Write, bad_request
from ._faults import Fault, Faults
from ._stats import Stats


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()
    drop: bool = False
    """Close the connection without answering (``status`` is then meaningless)."""


@dataclass(frozen=True)
class _Route:
    methods: tuple[str, ...]
    namespaced: bool = True
    write: bool = False
    counts_records: bool = False


# The official SDKs POST every command, so POST is accepted everywhere, next to the
# method Upstash documents for the endpoint.
_ROUTES: dict[str, _Route] = {
    "upsert-data": _Route(("POST",), write=True, counts_records=True),
    "upsert": _Route(("POST",), write=True, counts_records=True),
    "update": _Route(("POST",), write=True),
    "delete": _Route(("DELETE", "POST"), write=True),
    "query-data": _Route(("POST",)),
    "query": _Route(("POST",)),
    "fetch": _Route(("GET", "POST")),
    "range": _Route(("GET", "POST")),
    "reset": _Route(("DELETE", "POST")),
    "info": _Route(("GET", "POST"), namespaced=False),
    "list-namespaces": _Route(("GET", "POST"), namespaced=False),
    "delete-namespace": _Route(("DELETE", "POST")),
}
UNKNOWN_ENDPOINT = "(unknown)"
"""The ``stats["requests"]`` key of requests to a path that is no endpoint."""

_SUCCESS = orjson.dumps({"result": "Success"})
_NO_BODY = object()

# What a proxy in front of Upstash answers when the index behind it is in trouble:
# clients must cope with error bodies that are not JSON.
_FAILURE_BODIES: dict[int, tuple[str, bytes]] = {
    500: (
        "application/json",
        orjson.dumps({"error": "Internal server error (injected fault)", "status": 500}),
    ),
    502: (
        "text/html",
        b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
        b"<center><h1>502 Bad Gateway</h1></center>\r\n</body>\r\n</html>\r\n",
    ),
    503: (
        "text/plain",
        b"upstream connect error or disconnect/reset before headers. "
        b"reset reason: connection termination",
    ),
}


def error_response(
    status: int, message: str, headers: tuple[tuple[str, str], ...] = ()
) -> Response:
    return Response(status, orjson.dumps({"error": message, "status": status}), headers=headers)


class App:
    def __init__(
        self,
        index: Index,
        *,
        token: str,
        faults: Faults,
        stats: Stats,
        stopping: threading.Event,
    ) -> None:
        self.index = index
        self._token = token.encode()
        self.faults = faults
        self.stats = stats
        self._stopping = stopping
        self._handlers: dict[str, Callable[[str, Any, str], Any]] = {
            "query-data": lambda ns, body, _: index.query_data(ns, body),
            "query": lambda ns, body, _: index.query(ns, body),
            "fetch": lambda ns, body, _: index.fetch(ns, body),
            "range": lambda ns, body, _: index.range(ns, body),
            "reset": lambda ns, _, query: index.reset(ns, _has_flag(query, "all")),
            "info": lambda *_: index.info(),
            "list-namespaces": lambda *_: index.list_namespaces(),
            "delete-namespace": lambda ns, *_: index.delete_namespace(ns),
        }
        self._writes: dict[str, Callable[[str, Any], Write]] = {
            "upsert-data": index.upsert_data,
            "upsert": index.upsert,
            "update": index.update,
            "delete": index.delete,
        }

    def handle(self, method: str, target: str, authorization: str | None, body: bytes) -> Response:
        path, _, query = target.partition("?")
        name, _, raw_ns = path.lstrip("/").partition("/")
        route = _ROUTES.get(name)
        self.stats.request(name if route else UNKNOWN_ENDPOINT)
        parsed: Any = _NO_BODY
        if route is not None and route.counts_records:
            # Counted before anything can refuse the request: "what reached the server".
            parsed = _parse(body)
            self.stats.received(_record_count(parsed))
        try:
            response = self._answer(method, name, route, raw_ns, query, authorization, body, parsed)
        except ApiError as exc:
            response = error_response(exc.status, exc.message)
        except Exception as exc:
            traceback.print_exc(file=sys.stderr)
            response = error_response(500, f"Internal error of the local server: {exc!r}")
        if response.drop:
            self.stats.dropped()
        else:
            self.stats.answered(response.status)
        return response

    def _answer(
        self,
        method: str,
        name: str,
        route: _Route | None,
        raw_ns: str,
        query: str,
        authorization: str | None,
        body: bytes,
        parsed: Any,
    ) -> Response:
        refusal = self._check_auth(authorization)
        if refusal is not None:
            return refusal
        if route is None or (raw_ns and not route.namespaced):
            return error_response(404, f"Unknown endpoint: /{name}{'/' if raw_ns else ''}{raw_ns}")
        if method not in route.methods:
            allowed = ", ".join(route.methods)
            return error_response(
                405,
                f"Method {method} is not allowed on /{name} (allowed: {allowed})",
                (("Allow", allowed),),
            )
        ns = unquote(raw_ns)
        if parsed is _NO_BODY:
            parsed = _parse(body)
        if route.write:
            return self._write(name, ns, parsed)
        if isinstance(parsed, _BadJson):
            raise bad_request(parsed.message)
        result = self._handlers[name](ns, parsed, query)
        return Response(200, orjson.dumps({"result": result}))

    def _write(self, name: str, ns: str, parsed: Any) -> Response:
        retry_after = self.faults.admit()
        if retry_after is not None:
            return error_response(
                429,
                f"Too many requests: the local server allows "
                f"{self.faults.config.rate_limit:g} writes per second",
                (("Retry-After", str(retry_after)),),
            )
        if isinstance(parsed, _BadJson):
            raise bad_request(parsed.message)
        write = self._writes[name](ns, parsed)
        delay = self.faults.delay(write.records)
        if delay > 0 and self._stopping.wait(delay):
            return Response(0, drop=True)
        fault = self.faults.roll()
        if fault is not None and not fault.after_write:
            return _fault_response(fault)
        result = write.apply()
        self.stats.written(write.written)
        if fault is not None:
            return _fault_response(fault)
        if result == "Success":
            return Response(200, _SUCCESS)
        return Response(200, orjson.dumps({"result": result}))

    def _check_auth(self, authorization: str | None) -> Response | None:
        if not authorization:
            return error_response(401, "Unauthorized: missing Authorization header")
        scheme, _, credentials = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            credentials.strip().encode(), self._token
        ):
            return error_response(401, "Unauthorized: invalid token")
        return None


class _BadJson:
    def __init__(self, message: str) -> None:
        self.message = message


def _parse(body: bytes) -> Any:
    """The JSON value of ``body``: ``None`` when empty, :class:`_BadJson` when broken."""
    if not body or body.isspace():
        return None
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        return _BadJson(f"Invalid JSON in the request body: {exc}")


def _record_count(parsed: Any) -> int:
    if isinstance(parsed, list):
        return len(parsed)
    if isinstance(parsed, dict):
        return 1
    return 0


def _has_flag(query: str, flag: str) -> bool:
    return any(part.partition("=")[0] == flag for part in query.split("&"))


def _fault_response(fault: Fault) -> Response:
    if fault.kind == "drop":
        return Response(0, drop=True)
    content_type, body = _FAILURE_BODIES[fault.status]
    return Response(fault.status, body, content_type)
