"""How a message names a setting to whoever runs vupsert: ``data_field='text'`` to a
Python caller, ``--data-field text`` on the command line.

The library speaks of settings by their Python names, through :func:`option`; the command
line wraps its work in :func:`spelled_as_flags`. The spelling is a context variable, so a
thread started in a copy of the caller's context speaks as its caller does.
"""

from __future__ import annotations

import contextlib
import shlex
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Literal

_FLAGS = {"types": "type"}
"""Settings whose flag is not their name: ``--type zip=str``, once per column."""
_spelling: ContextVar[Literal["python", "cli"]] = ContextVar("vupsert_spelling", default="python")


def option(setting: str, value: object = None) -> str:
    """How a message names a setting, and a value for it, to whoever runs vupsert:
    ``data_field='text'`` in Python, ``--data-field text`` on the command line."""
    if _spelling.get() == "cli":
        flag = "--" + _FLAGS.get(setting, setting.replace("_", "-"))
        if isinstance(value, dict):
            return " ".join(f"{flag} {shlex.quote(f'{k}={v}')}" for k, v in value.items())
        if value is True or value is None:
            return flag
        if value is False:
            return "--no-" + setting.replace("_", "-")
        return f"{flag} {shlex.quote(str(value))}"
    return f"{setting}=..." if value is None else f"{setting}={value!r}"


def command(name: str) -> str:
    """How a message names one of vupsert's commands: ``vupsert sync`` on the command line,
    ``vupsert.sync()`` in Python."""
    return f"`vupsert {name}`" if _spelling.get() == "cli" else f"`vupsert.{name}()`"


@contextlib.contextmanager
def spelled_as_flags() -> Iterator[None]:
    """Within this block, :func:`option` names settings as command-line flags."""
    token = _spelling.set("cli")
    try:
        yield
    finally:
        _spelling.reset(token)
