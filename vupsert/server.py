"""The local index, ``vupsert serve``: the package :mod:`vupsert_server`, under the
name the README documents (``from vupsert.server import LocalServer, ServerConfig``)."""

from vupsert_server import *  # noqa: F403
from vupsert_server import __all__ as __all__
