"""The index's address and token: where they come from, and the checks they pass before
anything is built from them.

No message here repeats a token or a URL's password: a URL with a password is refused
(shown with ``***``), a token that cannot be sent names only the position at fault.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from urllib.parse import urlsplit

from .errors import ConfigError
from .settings import Secret, option

URL_ENV = "UPSTASH_VECTOR_REST_URL"
TOKEN_ENV = "UPSTASH_VECTOR_REST_TOKEN"


def where_set(setting: str) -> str:
    """Where the user sets the index's ``url`` or ``token``: the variable, or the option."""
    env = {"url": URL_ENV, "token": TOKEN_ENV}[setting]
    return f"{env} (or {option(setting)})"


def find_connection(
    url: str | None, token: str | None, environ: Mapping[str, str] | None = None
) -> tuple[str, Secret]:
    """The index's URL and token: as given, else from the environment; each checked when
    it is there (a missing one is :func:`require_connection`'s to refuse)."""
    env = os.environ if environ is None else environ
    the_url = url or env.get(URL_ENV, "")
    the_token = check_token(Secret(token or env.get(TOKEN_ENV, "")))
    return the_url, the_token


def require_connection(url: str, token: Secret) -> None:
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


def redact_url(url: str) -> str:
    """``url`` with any user name and password replaced by ``***``, fit for a message."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    authority, slash, tail = rest.partition("/")
    if "@" in authority:
        authority = "***@" + authority.rpartition("@")[2]
    return f"{scheme}{sep}{authority}{slash}{tail}"


def check_url(url: str, *, allow_insecure_http: bool) -> str:
    """Return the base URL without a trailing slash, or raise ``ConfigError``.

    No message repeats a password, nor a value that is not a URL at all: that is
    most often the token, set in the URL's place.
    """
    url = url.strip()
    shown = redact_url(url)
    try:
        parts = urlsplit(url)
        hostname = parts.hostname
    except ValueError:
        parts, hostname = urlsplit(""), None
    if parts.scheme not in ("http", "https") or not hostname:
        what = f"The URL {shown!r}" if "://" in url else "The URL given"
        raise ConfigError(
            f"{what} is not an http(s) URL.",
            hint=f"Set {where_set('url')} to the index's REST URL, "
            "like https://example-us1-vector.upstash.io",
        )
    if "@" in parts.netloc:
        raise ConfigError(
            f"The URL {shown!r} holds a user name or password: the index takes only its token.",
            hint=f"Remove the part before @ and pass the token with {where_set('token')}.",
        )
    base = f"{parts.scheme}://{parts.netloc}"
    first = parts.path.strip("/").split("/")[0]
    if first in API_PATHS or parts.query or parts.fragment:
        raise ConfigError(
            f"The URL {shown!r} is an endpoint's address, not the index's.",
            hint=f"Use the index's base URL, with no path: {base}",
        )
    if parts.scheme == "http" and not allow_insecure_http and not is_loopback(hostname):
        raise ConfigError(
            f"Refusing to send the token over plain http to {hostname}.",
            hint="Use the https URL of the index, or pass "
            f"{option('allow_insecure_http', True)} if this network is trusted.",
        )
    return url.rstrip("/")


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
