"""The one place where exceptions become what a user sees and the exit status (httpie's
``raw_main`` beside ``program``): the parser's errors and the commands' alike end in one
``error:`` line and an :class:`~vupsert.errors.ExitStatus`.

Every command runs in :func:`framed`: it returns its result (a summary), or raises; the
frame prints the error, and with ``--json`` exactly one object on stdout whatever
happened: the result, or, for a command that failed before it had one, its empty result
with ``error`` set. Set ``VUPSERT_RAISE_ERRORS=1`` to let unexpected exceptions crash
with a traceback (the tests do).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn, ParamSpec, TypeVar, get_origin

import typer

from ..errors import CallerError, ExitStatus, UsageError, VupsertError
from .display import Terminal, document, failure
from .environment import Environment, stdout_to_devnull
from .options import grouped

P = ParamSpec("P")
S = TypeVar("S")

RAISE_ERRORS = "VUPSERT_RAISE_ERRORS"
FILLED = ("namespace", "prefix", "dry_run")
"""Options an empty result names as the command was given them."""


class Interrupted(VupsertError):
    """Ctrl-C outside a run that stops by itself: nothing was left half done."""

    exit_status = ExitStatus.INTERRUPTED
    head = ""  # the message says it all: not an error of the user's or vupsert's

    def __init__(self) -> None:
        super().__init__("interrupted")


class InternalError(VupsertError):
    """An exception nothing expected: a bug."""

    head = "internal error:"

    def __init__(self, exc: Exception) -> None:
        super().__init__(
            f"{type(exc).__name__}. This is a bug in vupsert; rerun with "
            f"{RAISE_ERRORS}=1 to see where, and report it."
        )


class ParserError(UsageError):
    """The command line itself is wrong: an unknown option, a bad value, a missing one."""

    def __init__(self, message: str, *, command: str) -> None:
        super().__init__(message, hint=f"Run '{command} --help' for usage.")


def run(app: typer.Typer, argv: Sequence[str] | None, env: Environment) -> int:
    """``vupsert ARGV``'s exit status: the commands' errors are settled in their
    :func:`framed`; here, the parser's."""
    try:
        status = app(args=argv, prog_name="vupsert", obj=env, standalone_mode=False)
    except typer.Abort:
        failure(Terminal(env.stderr), VupsertError("aborted"))
        return int(ExitStatus.PARTIAL)
    except Exception as exc:
        if not _is_parser_error(exc):
            raise
        return _parser_failure(exc, env, argv, app)
    return int(status or 0)


def framed(command: Callable[..., Any]) -> Callable[..., NoReturn]:
    """``command`` as every command runs: its option groups given as one value each
    (:func:`~vupsert.cli.options.grouped`), the :class:`Environment` handed to the
    parameter that asks for it, its result or error shown, its exit status the process's.
    """
    call = grouped(command)
    signature = inspect.signature(call)
    env_name = next(
        (p.name for p in signature.parameters.values() if p.annotation is Environment), None
    )
    blank = _blank(signature.return_annotation)

    def frame(ctx: typer.Context, **values: Any) -> NoReturn:
        env: Environment = ctx.obj
        if env_name is not None:
            values[env_name] = env
        result = _outcome(lambda: call(**values), env, blank, values)
        raise typer.Exit(_concluded(result, env, json=bool(values.get("json_out"))))

    functools.update_wrapper(frame, command)
    context = inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context)
    others = [p for p in signature.parameters.values() if p.name != env_name]
    frame.__signature__ = signature.replace(parameters=[context, *others])  # type: ignore[attr-defined]
    if "json_out" in signature.parameters:
        frame.blank_result = blank  # type: ignore[attr-defined]
    return frame


def settled(function: Callable[P, S], *args: P.args, **kwargs: P.kwargs) -> S:
    """What ``function`` returns, or the summary its error carries, with the error on it:
    every exit prints the summary of what was done."""
    try:
        return function(*args, **kwargs)
    except VupsertError as error:
        if error.summary is None:
            raise
        summary: S = error.summary
        summary.error = error  # type: ignore[attr-defined]
        return summary


class _Result:
    """What a command ended with: its result, and the error that stopped it."""

    def __init__(self, value: Any, error: VupsertError | None) -> None:
        self.value = value
        self.error = error

    def document(self) -> dict[str, Any]:
        if hasattr(self.value, "as_dict"):
            return dict(self.value.as_dict())
        value = dict(self.value or {})
        if self.error is not None:
            value["error"] = self.error.message
        return value

    def exit_status(self) -> int:
        if self.error is not None:
            return int(self.error.exit_status)
        if isinstance(self.value, int):
            return self.value
        return int(getattr(self.value, "exit_status", ExitStatus.SUCCESS))


def _outcome(
    call: Callable[[], Any], env: Environment, blank: Callable[[], Any], values: dict[str, Any]
) -> _Result | None:
    """What ``call()`` ended with; ``None`` when nothing more can be said (stdout is gone)."""
    try:
        value = call()
        error = getattr(value, "error", None)
        if isinstance(error, CallerError):
            raise error.raised  # the display failed: a bug, shown as one
        return _Result(value, error)
    except VupsertError as error:
        return _failed(error, blank, values)
    except KeyboardInterrupt:
        return _failed(Interrupted(), blank, values)
    except BrokenPipeError:
        # stdout's reader left (`vupsert export | head`): nothing more to say to it. The
        # rest goes nowhere, so that the interpreter's last flush cannot fail too.
        stdout_to_devnull()
        return None
    except (typer.Exit, typer.Abort):
        raise
    except Exception as exc:
        if env.environ.get(RAISE_ERRORS):
            raise
        return _failed(InternalError(exc), blank, values)


def _failed(error: VupsertError, blank: Callable[[], Any], values: dict[str, Any]) -> _Result:
    """The result of a command that raised ``error``: the summary it carries, or the
    command's empty result."""
    value = error.summary
    if value is None:
        value = blank()
        if dataclasses.is_dataclass(value):
            known = {f.name for f in dataclasses.fields(value)}
            for name in known.intersection(FILLED).intersection(values):
                setattr(value, name, values[name])
    if hasattr(value, "error"):
        value.error = error
    return _Result(value, error)


def _concluded(result: _Result | None, env: Environment, *, json: bool) -> int:
    if result is None:
        return int(ExitStatus.PARTIAL)
    if json:
        document(env.stdout, result.document())
    if result.error is not None:
        head = getattr(result.error, "head", "error:")
        failure(Terminal(env.stderr), result.error, head=head)
    return result.exit_status()


def _blank(annotation: Any) -> Callable[[], Any]:
    """What a command returns when it has nothing to report: its return type, empty."""
    kind = get_origin(annotation) or annotation
    if isinstance(kind, type) and (hasattr(kind, "as_dict") or issubclass(kind, dict)):
        return kind
    return dict


def _is_parser_error(exc: Exception) -> bool:
    """Whether ``exc`` is the parser's (Typer's click): it has an exit code and a message."""
    return isinstance(getattr(exc, "exit_code", None), int) and callable(
        getattr(exc, "format_message", None)
    )


def _parser_failure(
    exc: Any, env: Environment, argv: Sequence[str] | None, app: typer.Typer
) -> int:
    ctx = getattr(exc, "ctx", None)
    if type(exc).__name__ == "NoArgsIsHelpError":
        return int(exc.exit_code)  # `vupsert` alone: the help is printed, as asked
    args = list(argv) if argv is not None else sys.argv[1:]
    args = args[: args.index("--")] if "--" in args else args
    if ctx is not None:
        path, command = ctx.command_path, ctx.command
    else:  # an option without its value is refused before its command has a context
        named = next((arg for arg in args if not arg.startswith("-")), "")
        group = typer.main.get_command(app)
        command = group.get_command(typer.Context(group), named)  # type: ignore[attr-defined]
        path = " ".join(filter(None, ("vupsert", named if command else "")))
    error = ParserError(exc.format_message(), command=path)
    blank = getattr(getattr(command, "callback", None), "blank_result", None)
    result = _failed(error, blank, {}) if blank is not None else _Result({}, error)
    return _concluded(result, env, json=blank is not None and "--json" in args)
