"""Settings and every default, the options as keywords and their checks (options ->
Settings), how messages spell an option, the endpoint (URL and token found and checked
once), secrets."""

from . import settings
from ._build import build_settings, check_choice, connection_settings
from ._endpoint import TOKEN_ENV, URL_ENV, Endpoint, shown_url, url_hint, where_set
from ._keywords import ConnectionKeywords, SyncKeywords, UpsertKeywords, VerifyKeywords
from ._secret import Secret
from ._spelling import option, spelled_as_flags
from .settings import (
    OPTIONS,
    ColumnType,
    Format,
    IdsFormat,
    MappingOptions,
    ReadOptions,
    Settings,
)

__all__ = [
    "OPTIONS",
    "TOKEN_ENV",
    "URL_ENV",
    "ColumnType",
    "ConnectionKeywords",
    "Endpoint",
    "Format",
    "IdsFormat",
    "MappingOptions",
    "ReadOptions",
    "Secret",
    "Settings",
    "SyncKeywords",
    "UpsertKeywords",
    "VerifyKeywords",
    "build_settings",
    "check_choice",
    "connection_settings",
    "option",
    "settings",
    "shown_url",
    "spelled_as_flags",
    "url_hint",
    "where_set",
]
