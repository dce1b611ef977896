"""The HTTP conversation with the index: one connection pool, one attempt per call, and
every answer (or its absence) made an :class:`~vupsert.transport._answers.Answer`.

Nothing here sleeps or retries: the retry rule (:mod:`vupsert.transport._retry`) decides
what to do with an answer.
"""

from __future__ import annotations

import re
import ssl
import time
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import orjson

from ..config import Endpoint, option, shown_url, url_hint, where_set
from ..config.settings import TIMEOUT, Settings
from ..errors import ConfigError, ServerError
from ._answers import (
    RETRY_STATUSES,
    Answer,
    Kind,
    error_message,
    fatal_hint,
    kind_of,
    retry_after_seconds,
)

_SPACE = re.compile(r"\s+")


def _released(response: httpx.Response) -> httpx.Response:
    """``response``, read and closed, out of its reference cycle.

    In httpx 0.28 a response and its stream point at each other (encode/httpx#3733), so
    the request, and the batch body it holds, waited for the cyclic collector: memory
    then grew with the number of requests between two collections. The body has been
    read into the response by now; the stream has nothing left to give.
    """
    response.stream = httpx.ByteStream(b"")
    return response


PLAIN_HTTP_REASONS = frozenset(
    {"WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG", "UNKNOWN_PROTOCOL"}
)
"""What OpenSSL calls an answer to its hello that is not TLS: plain HTTP, most often."""


class Client:
    """Talks to one index (and one namespace) over one connection pool.

    Safe to share between threads: httpx's pool is.
    """

    @classmethod
    def for_settings(
        cls, settings: Settings, transport: httpx.BaseTransport | None = None
    ) -> Client:
        """The client of a command's index and namespace."""
        return cls(
            Endpoint.of(settings),
            namespace=settings.namespace,
            timeout=settings.timeout,
            max_connections=settings.concurrency,
            transport=transport,
        )

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        namespace: str = "",
        timeout: float = TIMEOUT,
        max_connections: int = 16,
        transport: httpx.BaseTransport | None = None,
        proxied: bool | None = None,
    ) -> None:
        self.base_url = endpoint.url
        self.namespace = namespace
        token = endpoint.token
        # What the server says is shown to the user: a server (or a proxy) that echoes the
        # request's headers must not make vupsert print the token.
        self._token = token
        suffix = "/" + quote(namespace, safe="") if namespace else ""
        self._suffix = suffix
        self.upsert_path = "/upsert-data" + suffix
        limits = httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        )
        # Plain http (the local server) never speaks TLS, so it need not load the CA
        # bundle: 0.03 s of every start. This context verifies by default and holds no
        # CA, so were TLS ever used through it, it would fail rather than trust.
        verify: ssl.SSLContext | bool = (
            ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            if urlsplit(self.base_url).scheme == "http"
            else True
        )
        # Upserts go straight to the transport, past the client's per-request work
        # (URL merging, cookies, auth and redirect hooks): a third of httpx's CPU per
        # request. Not when the environment names a proxy (``proxied``): the client
        # then picks each request's route, as httpx users expect.
        if proxied is None:
            proxied = transport is None and _proxies_configured()
        self.proxied = proxied
        """Whether requests may go through a proxy named in the environment."""
        self._transport: httpx.BaseTransport | None = None
        if not proxied:
            self._transport = transport or httpx.HTTPTransport(verify=verify, limits=limits)
        self._http = self._client(
            base_url=self.base_url,
            # The token lives in the client's headers only; httpx does not show headers
            # in reprs or exception messages.
            headers={
                "Authorization": f"Bearer {token.reveal()}",
                "Content-Type": "application/json",
                "User-Agent": "vupsert",
            },
            timeout=httpx.Timeout(timeout, connect=min(timeout, 30.0)),
            limits=limits,
            transport=transport if proxied else self._transport,
            verify=verify,
        )
        self._upsert_url = self._http.base_url.join(self.upsert_path)
        self._extensions = {"timeout": self._http.timeout.as_dict()}
        self._plain_http_said = _plain_http_said(self.base_url)

    def _client(self, **options: Any) -> httpx.Client:
        try:
            return httpx.Client(**options)
        except httpx.InvalidURL:
            # httpx's message may quote the URL whole.
            raise ConfigError(
                f"The URL {shown_url(self.base_url)!r} is not one HTTP can use.",
                hint=url_hint(),
            ) from None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def upsert(self, body: bytes) -> Answer:
        """One attempt at upserting a prepared JSON array; never raises for HTTP trouble."""
        started = time.monotonic()
        try:
            if self._transport is None:
                response = _released(self._http.post(self.upsert_path, content=body))
            else:
                response = self._transport.handle_request(
                    httpx.Request(
                        "POST",
                        self._upsert_url,
                        headers=self._http.headers,
                        content=body,
                        extensions=self._extensions,
                    )
                )
                try:
                    response.read()
                finally:
                    response.close()
        except httpx.TransportError as exc:
            return self._lost(exc, started)
        return self._answer(response, time.monotonic() - started)

    def _lost(self, exc: httpx.TransportError, started: float) -> Answer:
        """The answer to a request that got none: a timeout or a connection failure."""
        plain = self._plain_http(exc)
        if isinstance(exc, httpx.TimeoutException):
            message = f"timed out ({type(exc).__name__})"
        elif plain is not None:
            message = f"{plain.message}: {plain.hint}"
        else:
            message = f"connection failed: {self.scrub(_describe(exc))}"
        return Answer(Kind.TRANSIENT, None, message, elapsed=time.monotonic() - started)

    def _plain_http(self, exc: Exception) -> ConfigError | None:
        """The error to raise when an ``https`` URL's server answered in plain HTTP, as a
        local ``vupsert serve`` does: no retry can help, the URL's scheme is wrong."""
        if self._plain_http_said is None:
            return None
        cause: BaseException | None = exc
        for _ in range(8):
            if cause is None:
                return None
            if isinstance(cause, ssl.SSLError) and cause.reason in PLAIN_HTTP_REASONS:
                message, hint = self._plain_http_said
                return ConfigError(message, hint=hint)
            cause = cause.__cause__ or cause.__context__
        return None

    def call(self, endpoint: str, payload: Any) -> Answer:
        """One attempt at another endpoint of the namespace (``range``, ``fetch``,
        ``delete``); an OK answer holds the parsed ``result``. Never raises for HTTP
        trouble; an ``https`` URL whose server speaks plain HTTP is a wrong URL, a
        :class:`ConfigError`."""
        started = time.monotonic()
        try:
            response = _released(
                self._http.post(f"/{endpoint}{self._suffix}", content=orjson.dumps(payload))
            )
        except httpx.TransportError as exc:
            plain = self._plain_http(exc)
            if plain is not None:
                raise plain from None
            return self._lost(exc, started)
        elapsed = time.monotonic() - started
        if response.status_code == 200:
            try:
                body = orjson.loads(response.content)
            except orjson.JSONDecodeError:
                body = None
            if isinstance(body, dict) and "result" in body:
                return Answer(Kind.OK, 200, "Success", elapsed=elapsed, result=body["result"])
        return self._answer(response, elapsed)

    def _message(self, response: httpx.Response) -> str:
        """The server's message, without the token, a redirect naming its target."""
        message = error_message(response)
        if 300 <= response.status_code < 400:
            location = response.headers.get("location")
            target = shown_url(location) or ("a path" if location else "no Location given")
            message = f"redirected to {target} ({message})"
        return self.scrub(message)

    def scrub(self, text: str) -> str:
        """``text`` with the token, if it holds it, replaced by ``***``."""
        secret = self._token.reveal()
        # A token of a few characters (a test's) would be found in ordinary words.
        return text.replace(secret, "***") if len(secret) >= 8 and secret in text else text

    def _answer(self, response: httpx.Response, elapsed: float) -> Answer:
        status = response.status_code
        if status == 200:
            try:
                payload = orjson.loads(response.content)
            except orjson.JSONDecodeError:
                payload = None
            if isinstance(payload, dict) and payload.get("result") == "Success":
                return Answer(Kind.OK, status, "Success", elapsed=elapsed)
            # A 200 that is not Upstash's answer (a captive portal, a proxy page) means
            # we cannot know whether the write happened: try again.
            return Answer(
                Kind.TRANSIENT,
                status,
                f"unexpected answer: {self._message(response)}",
                elapsed=elapsed,
            )
        message = self._message(response)
        retry_after = (
            retry_after_seconds(response.headers.get("retry-after"))
            if status in RETRY_STATUSES
            else None
        )
        return Answer(kind_of(status), status, message, retry_after, elapsed)

    def info(self) -> dict[str, Any]:
        """``/info`` of the index; raises :class:`ServerError` when it cannot be had."""
        try:
            response = self._http.post("/info")
        except httpx.TransportError as exc:
            plain = self._plain_http(exc)
            if plain is not None:
                raise plain from None
            hint = f"Check {where_set('url')} and the network."
            if self.proxied:
                hint += (
                    " A proxy is set in the environment (HTTP_PROXY, HTTPS_PROXY or "
                    "ALL_PROXY): check it, or add the index's host to NO_PROXY."
                )
            raise ServerError(
                f"Could not reach {self.base_url}: {self.scrub(_describe(exc))}", hint=hint
            ) from None
        status = response.status_code
        if status != 200:
            advice = fatal_hint(status)
            path = urlsplit(self.base_url).path
            if path.strip("/") and status in (400, 404, 405):
                advice = (
                    f"The URL has a path ({path}); the index's REST URL has none. Use its "
                    "base URL, like https://example-us1-vector.upstash.io"
                )
            raise ServerError(
                f"{self.base_url}/info answered {status}: {self._message(response)}",
                status=status,
                hint=advice,
            )
        try:
            payload = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            payload = None
        result = payload.get("result") if isinstance(payload, dict) else None
        if not isinstance(result, dict):
            raise ServerError(
                f"{self.base_url}/info did not answer like an Upstash Vector index: "
                f"{self._message(response)}",
                hint=f"Check {where_set('url')}.",
            )
        return result


def _plain_http_said(url: str) -> tuple[str, str] | None:
    """What to say if ``url``'s server answers in plain HTTP, spelled now: requests are
    made in threads that do not know how the caller names settings."""
    if not url.startswith("https://"):
        return None
    plain = shown_url("http://" + url.removeprefix("https://"))
    return (
        f"{shown_url(url)} answered in plain HTTP, not HTTPS: the server there does not speak TLS",
        f"Use {plain} in {where_set('url')}: a local server's address, or a proxy's. For "
        f"another host, plain http also needs {option('allow_insecure_http', True)}.",
    )


def _proxies_configured() -> bool:
    """Whether the environment names an HTTP proxy, as httpx reads it."""
    from urllib.request import getproxies

    return any(getproxies().get(scheme) for scheme in ("http", "https", "all"))


def _describe(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return _SPACE.sub(" ", text)[:200]
