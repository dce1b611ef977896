"""The index's address and token (:class:`Endpoint`): where they come from, and the checks
they pass before anything is built from them. Made once, from what a caller gives or the
environment holds, and handed to the client.

No message here repeats a token, nor more of a URL than its scheme and host: a URL with a
user name, a password, a query or a fragment is refused, and a token that cannot be sent
names only the position at fault.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import InitVar, dataclass
from typing import NoReturn, Protocol

from ..errors import ConfigError
from ._secret import Secret
from ._spelling import option

URL_ENV = "UPSTASH_VECTOR_REST_URL"
TOKEN_ENV = "UPSTASH_VECTOR_REST_TOKEN"


class Addressed(Protocol):
    """What names an index: settings, say (not imported here, which would put the
    settings under every module that only needs the endpoint)."""

    @property
    def url(self) -> str: ...
    @property
    def token(self) -> Secret: ...
    @property
    def allow_insecure_http(self) -> bool: ...


@dataclass(frozen=True, repr=False)
class Endpoint:
    """The index's base URL and its token, both there and both checked: every request of
    a command goes to one. Its repr shows what a message may show of the URL (its scheme
    and host), never the token."""

    url: str
    """``http(s)://host[:port]``, with a path only behind a proxy; no trailing slash."""
    token: Secret
    allow_insecure_http: InitVar[bool] = False
    """Let the token go over plain http to a host other than this machine."""

    def __post_init__(self, allow_insecure_http: bool) -> None:
        url, token = _checked(self.url, self.token, allow_insecure_http)
        _require(url, token)
        object.__setattr__(self, "url", url)
        object.__setattr__(self, "token", token)

    def __repr__(self) -> str:
        return f"Endpoint({shown_url(self.url)!r}, {self.token!r})"

    @classmethod
    def of(cls, addressed: Addressed) -> Endpoint:
        """The index ``addressed`` sends to; :class:`~vupsert.errors.ConfigError` when the
        URL or the token is missing or cannot be used."""
        return cls(addressed.url, addressed.token, addressed.allow_insecure_http)

    @classmethod
    def find(
        cls,
        url: str | None = None,
        token: str | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        allow_insecure_http: bool = False,
    ) -> Endpoint:
        """The index's URL and token: as given, else from the environment (``environ``,
        by default the process's); :class:`~vupsert.errors.ConfigError` when one is
        missing or cannot be used."""
        return cls(*_given(url, token, environ), allow_insecure_http)


def find_checked(
    url: str | None = None,
    token: str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    allow_insecure_http: bool = False,
) -> tuple[str, Secret]:
    """For a command that sends nothing (a dry run): the URL and token as
    :meth:`Endpoint.find` finds them, each checked when it is there, neither required."""
    return _checked(*_given(url, token, environ), allow_insecure_http)


def where_set(setting: str) -> str:
    """Where the user sets the index's ``url`` or ``token``: the variable, or the option."""
    env = {"url": URL_ENV, "token": TOKEN_ENV}[setting]
    return f"{env} (or {option(setting)})"


def url_hint() -> str:
    """What to do about a URL that is not the index's."""
    return (
        f"Set {where_set('url')} to the index's REST URL, like "
        "https://example-us1-vector.upstash.io"
    )


def _given(
    url: str | None, token: str | None, environ: Mapping[str, str] | None
) -> tuple[str, Secret]:
    """The URL and token as given, else as the environment holds them."""
    env = os.environ if environ is None else environ
    return url or env.get(URL_ENV, ""), Secret(token or env.get(TOKEN_ENV, ""))


def _checked(url: str, token: Secret, allow_insecure_http: bool) -> tuple[str, Secret]:
    """The token and the URL, each checked when it is there (the token first)."""
    token = check_token(token)
    return (check_url(url, allow_insecure_http=allow_insecure_http) if url else ""), token


def _require(url: str, token: Secret) -> None:
    """Raise :class:`ConfigError` when the URL or the token is missing."""
    if not url:
        raise ConfigError(
            f"No index URL: set {URL_ENV} or pass {option('url')}.",
            hint="Find the REST URL on the index's page in the Upstash console, or start a "
            "local index with `vupsert serve`.",
        )
    if not token:
        raise ConfigError(
            f"No token: set {TOKEN_ENV} or pass {option('token')}.",
            hint="Find the REST token on the index's page in the Upstash console.",
        )


def is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost.localdomain") or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


API_PATHS = frozenset(
    {
        "upsert-data",
        "upsert",
        "info",
        "query-data",
        "query",
        "fetch",
        "range",
        "update",
        "delete",
        "reset",
        "list-namespaces",
        "delete-namespace",
        "resumable-query",
    }
)
"""First path segments of Upstash's endpoints: a URL that holds one was copied from an
endpoint, not from the index's page."""


_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")
_AUTHORITY = re.compile(r"(?P<host>\[[0-9A-Fa-f:.]+\]|[^\s:@/?#\[\]\\%]+)(?::(?P<port>[0-9]*))?")
"""A host (a name, an IPv4 address or a bracketed IPv6 one) and an optional port."""


def shown_url(url: str) -> str:
    """What a message may show of ``url``: its scheme and host (and port), with ``***@``
    where it held a user name or password; ``""`` when it has no scheme or no host.

    Nothing of its path, query or fragment: a token can hide in a query, and a password
    with an unencoded ``/``, ``?``, ``#`` or ``@`` moves where each part seems to start,
    so everything up to the last ``@`` is taken for a user name or password.
    """
    scheme, sep, rest = url.strip().partition("://")
    if not sep or not _SCHEME.fullmatch(scheme):
        return ""
    _, at, after = rest.rpartition("@")
    authority = re.split(r"[/?#]", after, maxsplit=1)[0]
    if at:
        return f"{scheme}://***@{authority if _AUTHORITY.fullmatch(authority) else '***'}"
    return f"{scheme}://{authority}" if authority else ""


def check_url(url: str, *, allow_insecure_http: bool) -> str:
    """Return the base URL without a trailing slash, or raise ``ConfigError``.

    The base URL is ``http(s)://host[:port]``, with a path for a proxy: no user name or
    password, no query, no fragment. No message repeats more of a URL than
    :func:`shown_url` shows, nor a value that is not a URL at all: that is most often
    the token, set in the URL's place.
    """
    url = url.strip()
    shown = shown_url(url)
    scheme, _, rest = url.partition("://")
    if not shown:
        _refuse_without_scheme(url)
    if scheme.lower() not in ("http", "https"):
        raise ConfigError(f"The URL {shown!r} is not an http(s) URL.", hint=url_hint())
    if "@" in rest:
        raise ConfigError(
            f"The URL {shown!r} holds a user name or password: the index takes only its token.",
            hint=f"Remove the part before @ and pass the token with {where_set('token')}.",
        )
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    _check_path(rest[len(authority) :], shown, base=f"{scheme}://{authority}")
    hostname = _hostname(authority, shown)
    if scheme.lower() == "http" and not allow_insecure_http and not is_loopback(hostname):
        raise ConfigError(
            f"Refusing to send the token over plain http to {hostname}.",
            hint="Use the https URL of the index, or pass "
            f"{option('allow_insecure_http', True)} if this network is trusted.",
        )
    return url.rstrip("/")


_HOST_NAME = re.compile(
    r"(?:(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}\.?"
    r"|(?:\d{1,3}\.){3}\d{1,3}|localhost)(?::\d{1,5})?",
    re.IGNORECASE,
)
"""A host name (dotted, ending in a top-level domain), an IPv4 address or ``localhost``,
with an optional port: what a URL written without its scheme starts with."""


def _refuse_without_scheme(url: str) -> NoReturn:
    """Refuse a URL without an http(s) scheme, showing its host only when it starts with
    one: any other value is withheld, as it is most often the token, set in the URL's
    place."""
    authority = re.split(r"[/?#]", url, maxsplit=1)[0]
    if "@" in url or not _HOST_NAME.fullmatch(authority):
        raise ConfigError(
            "The URL given is not an http(s) URL. It is not shown: a value that is not a "
            "URL is most often the token, set in the URL's place.",
            hint=url_hint(),
        )
    host = authority.rsplit(":", 1)[0] if ":" in authority else authority
    scheme = "http" if is_loopback(host) else "https"
    raise ConfigError(
        f"The URL {authority!r} has no scheme (https:// or http://).",
        hint=f"Set {where_set('url')} to {scheme}://{authority}",
    )


def _check_path(path: str, shown: str, *, base: str) -> None:
    """Refuse a query, a fragment, or an endpoint's path after the host."""
    if "?" in path or "#" in path:
        raise ConfigError(
            f"The URL {shown!r} has a query string or a fragment (after ? or #): the "
            "index's URL has neither, and the token goes in its own setting.",
            hint=f"Use the index's base URL, {base}, and pass the token with {where_set('token')}.",
        )
    first = path.strip("/").split("/")[0]
    if first in API_PATHS:
        raise ConfigError(
            f"The URL {shown!r} names the endpoint /{first}: it is an endpoint's address, "
            "not the index's.",
            hint=f"Use the index's base URL, with no path: {base}",
        )


def _hostname(authority: str, shown: str) -> str:
    """The host of ``host[:port]``, lowercased; refuse one that HTTP cannot use."""
    match = _AUTHORITY.fullmatch(authority)
    port = match and match["port"]
    if not match or (port and not 0 < int(port) <= 65535):
        raise ConfigError(f"The URL {shown!r} has no valid host and port.", hint=url_hint())
    return match["host"].lower()


def check_token(token: Secret) -> Secret:
    """The token without surrounding whitespace, or ``ConfigError`` if it cannot be one.

    A copy-paste often brings a newline or spaces along; inside the token, whitespace or
    a control character would be refused by the HTTP library with the whole header in
    its message. The error names the position, never the token.
    """
    value = token.reveal().strip()
    for position, char in enumerate(value, 1):
        if not "!" <= char <= "~":
            if char.isspace():
                kind = "whitespace"
            elif char.isascii():
                kind = "a control character"
            else:
                kind = "a non-ASCII character"
            raise ConfigError(
                f"The token has {kind} at position {position} of {len(value)}: it cannot "
                "be sent in an HTTP header.",
                hint="Copy the REST token again from the index's page in the Upstash "
                f"console, into {where_set('token')}, with nothing around it.",
            )
    return Secret(value)
