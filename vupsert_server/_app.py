"""Routing, auth, faults and counters: one request in, one :class:`Response` out.

Nothing here touches a socket, so the whole Upstash surface can be driven in-process;
``_http`` only moves bytes. A request is judged twice. :meth:`App.admit` sees only its
request line and headers: the token (401, or 403 for the read-only token on a write)
and the declared body size (413) are checked before a byte of the body is read, so a
stranger cannot make the server hold anything. :meth:`App.handle` gets the body. The
order for a write is then: count what arrived, route, rate limit (429), check the whole
request (400/422), daily quota (429), latency, roll the fault dice, fail now, or write and
then fail or answer.
"""

from __future__ import annotations

import hmac
import math
import sys
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import orjson

from ._api import ApiError, Index, Write, bad_request, namespace_of
from ._config import ServerConfig
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
    records: int = 0
    """What the request log counts: the records an upsert sent, or its answer holds."""


Answer = Callable[[Index, str, Any, str], Any]
"""``(index, namespace, body, query string) -> result`` of an endpoint answered at once."""
Check = Callable[[Index, str, Any], Write]
"""``(index, namespace, body) -> Write``: a write endpoint's checked request."""


@dataclass(frozen=True)
class Route:
    """One endpoint: its methods, and either what answers it or the write it makes."""

    methods: tuple[str, ...]
    answer: Answer | None = None
    write: Check | None = None
    """Goes through the write path: rate limit, latency, faults."""
    namespaced: bool = True
    counts_records: bool = False
    """Its records count in ``stats["records_received"]``: an upsert."""
    resets: bool = False
    """Changes the index without being a write (reset, delete-namespace)."""
    record_read: bool = False
    """Reads records: faulty too when ``faulty_reads`` is on."""

    @property
    def mutates(self) -> bool:
        """Changes the index: refused to the read-only token."""
        return self.write is not None or self.resets


# Every endpoint, declared once. The official SDKs POST every command, so POST is
# accepted everywhere, next to the method Upstash documents for the endpoint.
_POST = ("POST",)
_GET = ("GET", "POST")
_DELETE = ("DELETE", "POST")
ROUTES: dict[str, Route] = {
    "upsert-data": Route(_POST, write=Index.upsert_data, counts_records=True),
    "upsert": Route(_POST, write=Index.upsert, counts_records=True),
    "update": Route(_POST, write=Index.update),
    "delete": Route(_DELETE, write=Index.delete),
    "query-data": Route(_POST, lambda index, ns, body, _: index.query_data(ns, body)),
    "query": Route(_POST, lambda index, ns, body, _: index.query(ns, body)),
    "resumable-query": Route(
        _POST, lambda index, ns, body, _: index.resumable_query(ns, body, text=False)
    ),
    "resumable-query-data": Route(
        _POST, lambda index, ns, body, _: index.resumable_query(ns, body, text=True)
    ),
    "resumable-query-next": Route(
        _POST, lambda index, _, body, __: index.resumable_query_next(body), namespaced=False
    ),
    "resumable-query-end": Route(
        _POST, lambda index, _, body, __: index.resumable_query_end(body), namespaced=False
    ),
    "fetch": Route(_GET, lambda index, ns, body, _: index.fetch(ns, body), record_read=True),
    "range": Route(_GET, lambda index, ns, body, _: index.range(ns, body), record_read=True),
    "reset": Route(
        _DELETE, lambda index, ns, _, query: index.reset(ns, _has_flag(query, "all")), resets=True
    ),
    "info": Route(_GET, lambda index, *_: index.info(), namespaced=False),
    "list-namespaces": Route(_GET, lambda index, *_: index.list_namespaces(), namespaced=False),
    "delete-namespace": Route(
        _DELETE, lambda index, ns, *_: index.delete_namespace(ns), resets=True
    ),
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


@dataclass(frozen=True)
class Request:
    """A request whose request line and headers were admitted: all but its body."""

    method: str
    name: str
    route: Route | None
    raw_ns: str
    query: str


class App:
    def __init__(
        self,
        index: Index,
        *,
        token: str,
        faults: Faults,
        stats: Stats,
        stopping: threading.Event,
        readonly_token: str | None = None,
        max_body_bytes: int | None = None,
    ) -> None:
        self.index = index
        self._token = token.encode()
        self._readonly_token = readonly_token.encode() if readonly_token else None
        self.max_body_bytes = max_body_bytes
        self.faults = faults
        self.stats = stats
        self._stopping = stopping

    def admit(
        self, method: str, target: str, authorization: str | None, length: int | None
    ) -> Request | Response:
        """Judge a request on its headers: the answer to send at once, or the go-ahead.

        ``length`` is the declared Content-Length (``None`` when chunked or absent).
        """
        path, _, query = target.partition("?")
        name, _, raw_ns = path.lstrip("/").partition("/")
        route = ROUTES.get(name)
        self.stats.request(name if route else UNKNOWN_ENDPOINT)
        refusal = self._check_auth(authorization, name, route)
        if refusal is None and length is not None:
            refusal = self._check_size(length)
        if refusal is not None:
            self.stats.answered(refusal.status)
            return refusal
        return Request(method, name, route, raw_ns, query)

    def too_large(self, size: int) -> Response:
        """The answer to a chunked body found over the cap while it was read."""
        response = self._check_size(size)
        assert response is not None
        self.stats.answered(response.status)
        return response

    def _check_size(self, size: int) -> Response | None:
        cap = self.max_body_bytes
        if cap is None or size <= cap:
            return None
        return error_response(
            413,
            f"Request body too large: {size} bytes, over this server's limit of {cap} bytes; "
            "send fewer records per request",
        )

    def handle(self, request: Request, body: bytes) -> Response:
        route = request.route
        parsed: Any = _NO_BODY
        sent = 0
        if route is not None and route.counts_records:
            # Counted before anything can refuse the request: "what reached the server".
            parsed = _parse(body)
            sent = _record_count(parsed)
            self.stats.received(sent)
        try:
            response = self._answer(request, body, parsed)
        except ApiError as exc:
            response = error_response(exc.status, exc.message)
        except Exception as exc:
            traceback.print_exc(file=sys.stderr)
            response = error_response(500, f"Internal error of the local server: {exc!r}")
        if response.drop:
            self.stats.dropped()
        else:
            self.stats.answered(response.status)
        return replace(response, records=sent) if sent else response

    def _answer(self, request: Request, body: bytes, parsed: Any) -> Response:
        name, route, raw_ns = request.name, request.route, request.raw_ns
        if route is None or (raw_ns and not route.namespaced):
            return error_response(404, f"Unknown endpoint: /{name}{'/' if raw_ns else ''}{raw_ns}")
        if request.method not in route.methods:
            allowed = ", ".join(route.methods)
            return error_response(
                405,
                f"Method {request.method} is not allowed on /{name} (allowed: {allowed})",
                (("Allow", allowed),),
            )
        ns = namespace_of(raw_ns)
        if parsed is _NO_BODY:
            parsed = _parse(body)
        if route.write is not None:
            return self._write(route.write, ns, parsed)
        if isinstance(parsed, _BadJson):
            raise bad_request(parsed.message)
        if route.record_read and self.faults.config.faulty_reads:
            refused = self._read_fault()
            if refused is not None:
                return refused
        assert route.answer is not None
        result = route.answer(self.index, ns, parsed, request.query)
        return Response(200, orjson.dumps({"result": result}), records=_records_in(result))

    def _throttled(self) -> Response | None:
        """The 429 a request gets when the rate limit or the daily quota refuses it."""
        retry_after = self.faults.admit()
        if retry_after is None:
            return None
        return error_response(
            429,
            f"Too many requests: the local server allows {_rate(self.faults.config)}",
            (("Retry-After", str(retry_after)),),
        )

    def _over_quota(self) -> Response:
        # As Upstash answers it: no Retry-After, the quota resets another day.
        return error_response(429, self.faults.config.quota_message)

    def _read_fault(self) -> Response | None:
        """What a faulty read gets instead of its answer, if anything."""
        throttled = self._throttled()
        if throttled is not None:
            return throttled
        if self.faults.quota_spent():
            return self._over_quota()
        fault = self.faults.roll()
        return _fault_response(fault) if fault is not None else None

    def _write(self, check: Check, ns: str, parsed: Any) -> Response:
        throttled = self._throttled()
        if throttled is not None:
            return throttled
        if isinstance(parsed, _BadJson):
            raise bad_request(parsed.message)
        with self.faults.in_flight() as in_flight:
            write = check(self.index, ns, parsed)
            if not self.faults.spend(write.written):
                return self._over_quota()
            delay = self.faults.delay(write.records, in_flight)
            if delay > 0 and self._stopping.wait(delay):
                self.faults.refund(write.written)
                return Response(0, drop=True)
            fault = self.faults.roll()
            if fault is not None and not fault.after_write:
                self.faults.refund(write.written)
                return _fault_response(fault)
            result = write.apply()
        self.stats.written(write.written)
        if fault is not None:
            return _fault_response(fault)
        if result == "Success":
            return Response(200, _SUCCESS)
        return Response(200, orjson.dumps({"result": result}), records=_records_in(result))

    def _check_auth(
        self, authorization: str | None, name: str, route: Route | None
    ) -> Response | None:
        if not authorization:
            return error_response(401, "Unauthorized: missing Authorization header")
        scheme, _, credentials = authorization.strip().partition(" ")
        given = credentials.strip().encode()
        bearer = scheme.lower() == "bearer"
        # Both comparisons always run: the time taken says nothing about either token.
        full = hmac.compare_digest(given, self._token)
        read_only = self._readonly_token is not None and hmac.compare_digest(
            given, self._readonly_token
        )
        if bearer and full:
            return None
        if bearer and read_only:
            if route is not None and route.mutates:
                return error_response(
                    403,
                    f"Forbidden: /{name} writes to the index, and this token is read-only; "
                    "use the read-write token",
                )
            return None
        return error_response(401, "Unauthorized: invalid token")


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


def _records_in(result: Any) -> int:
    """The records an answer holds: hits, fetched or ranged vectors, deleted or updated."""
    if isinstance(result, list):
        return sum(
            _records_in(item) if isinstance(item, list) else isinstance(item, dict)
            for item in result
        )
    if isinstance(result, dict):
        for key in ("vectors", "scores"):
            if isinstance(found := result.get(key), list):
                return len(found)
        for key in ("deleted", "updated"):
            if isinstance(count := result.get(key), int):
                return count
    return 0


def _rate(config: ServerConfig) -> str:
    rate = config.rate_limit
    if config.rate_limiter == "bucket":
        return f"{rate:g} writes per second"
    if rate >= 1:
        return f"{math.floor(rate)} writes in any one second"
    return f"one write in any {1 / rate:g} seconds"


def _has_flag(query: str, flag: str) -> bool:
    return any(part.partition("=")[0] == flag for part in query.split("&"))


def _fault_response(fault: Fault) -> Response:
    if fault.kind == "drop":
        return Response(0, drop=True)
    content_type, body = _FAILURE_BODIES[fault.status]
    return Response(fault.status, body, content_type)
