"""What every stage is told: the settings and every default (:mod:`.settings`), the
options of the public functions and their checks (:mod:`.options`), how a message spells
an option, the endpoint (URL and token found and checked once), secrets."""

from ._endpoint import TOKEN_ENV, URL_ENV, Endpoint, shown_url, url_hint, where_set
from ._secret import Secret
from ._spelling import command, option, spelled_as_flags

__all__ = [
    "TOKEN_ENV",
    "URL_ENV",
    "Endpoint",
    "Secret",
    "command",
    "option",
    "shown_url",
    "spelled_as_flags",
    "url_hint",
    "where_set",
]
