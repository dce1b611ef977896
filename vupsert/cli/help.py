"""How ``--help`` reads: the usage, the command's text, then a panel for each group of
options, each option's names and value in one column and its help beside them.

Typer's own layout gives long names, short names, negative names and value types a
column each, which at 80 columns leaves the help about 20 characters and cuts long names.
Here the names share one column of at most :data:`NAMES` characters; longer ones (a
``--x / --no-x`` pair) have their help on the lines below them, in the same column.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

from typer.core import TyperCommand, TyperGroup

if TYPE_CHECKING:
    from rich.console import RenderableType
    from rich.text import Text

NAMES = 24
"""The widest names column: at 80 columns the help beside it has 50 characters."""
ARGUMENTS, OPTIONS, COMMANDS = "Arguments", "Options", "Commands"


class Command(TyperCommand):
    """A command whose help is laid out by :func:`print_help`."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        print_help(self, ctx)


class Group(TyperGroup):
    """The group of commands, its help laid out by :func:`print_help`."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        print_help(self, ctx)


def print_help(command: Any, ctx: Any) -> None:
    """``command``'s help, on stdout, at the terminal's width."""
    from rich.console import Console
    from rich.markdown import Markdown
    from rich.padding import Padding
    from rich.text import Text

    console = Console(highlight=False)
    console.print(Padding(Text(command.get_usage(ctx), style="bold"), (1, 1, 1, 1)))
    first, _, rest = inspect.cleandoc(command.help or "").partition("\n\n")
    if first:
        console.print(Padding(Markdown(first), (0, 1)))
    if rest:
        console.print(Padding(Markdown(rest, style="dim"), (1, 1, 0, 1)))
    console.print()
    panels = _panels(command, ctx)
    width = min(NAMES, max(len(names) for rows in panels.values() for names, _ in rows))
    for title, rows in panels.items():
        console.print(_panel(title, rows, width))
    if command.epilog:
        console.print(Padding(Markdown(inspect.cleandoc(command.epilog)), 1))


def _panels(command: Any, ctx: Any) -> dict[str, list[tuple[Text, Text]]]:
    """The rows of each panel, arguments first, then options, then each named panel in
    the order its first option comes."""
    from rich.text import Text

    panels: dict[str, list[tuple[Text, Text]]] = {ARGUMENTS: [], OPTIONS: []}
    for param in command.get_params(ctx):
        if getattr(param, "hidden", False):
            continue
        if param.param_type_name == "argument":
            title = ARGUMENTS
        else:
            title = getattr(param, "rich_help_panel", None) or OPTIONS
        panels.setdefault(title, []).append((_names(param), Text(_help(param))))
    if hasattr(command, "list_commands"):
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is not None and not sub.hidden:
                text = inspect.cleandoc(sub.short_help or sub.help or "").split("\n\n")[0]
                panels.setdefault(COMMANDS, []).append(
                    (_styled(name), Text(" ".join(text.split())))
                )
    return {title: rows for title, rows in panels.items() if rows}


def _panel(title: str, rows: list[tuple[Text, Text]], width: int) -> RenderableType:
    """A box of ``rows``: names in a column ``width`` wide, help beside them."""
    from rich.console import Group as Lines
    from rich.panel import Panel
    from rich.table import Table

    lines: list[RenderableType] = []
    for names, text in rows:
        grid = Table.grid(padding=(0, 2))
        grid.add_column(width=width, no_wrap=True)
        grid.add_column()
        if len(names) > width:
            lines.append(names)
            grid.add_row("", text)
        else:
            grid.add_row(names, text)
        lines.append(grid)
    return Panel(Lines(*lines), title=title, title_align="left", border_style="dim")


def _names(param: Any) -> Text:
    """``-f, --format [auto|...]``, ``--preflight / --no-preflight``, ``[FILE]...``."""
    if param.param_type_name == "argument":
        return _styled(param.metavar or param.name.upper())
    names = sorted(param.opts, key=len)
    text = _styled(", ".join(names))
    if param.secondary_opts:
        text.append(" / ")
        text.append(", ".join(param.secondary_opts), style="bold magenta")
    if not param.is_flag and not getattr(param, "count", False):
        text.append(" ")
        text.append(param.metavar or param.type.name.upper(), style="yellow")
    return text


def _styled(names: str) -> Text:
    from rich.text import Text

    return Text(names, style="bold cyan")


def _help(param: Any) -> str:
    """The option's help, then its default and the range of its values."""
    notes = []
    default = param.default
    if param.show_default and default is not None and not callable(default):
        flag = getattr(param, "is_flag", False)
        if flag and param.secondary_opts:
            notes.append("default: " + (param.opts if default else param.secondary_opts)[-1])
        elif not flag and default != "":
            notes.append(f"default: {default}")
    low, high = getattr(param.type, "min", None), getattr(param.type, "max", None)
    if low is not None or high is not None:
        notes.append(
            f"{low}<=x<={high}"
            if low is not None and high is not None
            else f"x>={low}"
            if low is not None
            else f"x<={high}"
        )
    text = " ".join((getattr(param, "help", None) or "").split())
    return f"{text} [{'; '.join(notes)}]" if notes else text
