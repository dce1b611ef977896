"""A row's fields by dotted path (``doc.title``), and ``{field}`` templates that compose a
value from them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NoReturn

import orjson

from ._safety import Bad, first, nonfinite, nonfinite_reason

MISSING: Any = object()
"""What a getter returns for an absent field (``None`` is JSON null, a real value)."""

Getter = Callable[[dict[str, Any]], Any]


def getter(path: str) -> Getter:
    """Read a field by dotted path; a key that literally contains the dots wins."""
    if "." not in path:

        def get_key(value: dict[str, Any]) -> Any:
            return value.get(path, MISSING)

        return get_key
    parts = tuple(path.split("."))

    def get_path(value: dict[str, Any]) -> Any:
        found = value.get(path, MISSING)
        if found is not MISSING:
            return found
        node: Any = value
        for part in parts:
            if type(node) is not dict:
                return MISSING
            node = node.get(part, MISSING)
            if node is MISSING:
                return MISSING
        return node

    return get_path


def without(node: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    """A copy of ``node`` without the field at ``path`` (nor an object left empty by it)."""
    key, rest = path[0], path[1:]
    if key not in node:
        return node
    if rest:
        inner = node[key]
        if type(inner) is not dict:
            return node
        trimmed = without(inner, rest)
        if trimmed:
            return {**node, key: trimmed}
    return {k: v for k, v in node.items() if k != key}


def absent(value: dict[str, Any], path: str) -> bool:
    """Whether a table row lacks the column a dotted path starts from: then every row
    does, where a null on the way (a null struct) is that one row's."""
    return path not in value and path.partition(".")[0] not in value


def _render(value: Any) -> str:
    """A non-string field as text in a template: JSON's spelling (``true``, ``1.5``)."""
    return orjson.dumps(value).decode()


class Template:
    """A ``{field}`` template, parsed once.

    ``{{``/``}}`` are literal braces; in the literal text the two characters ``\\n`` mean a
    newline, ``\\t`` a tab and ``\\\\`` a backslash, so a template can be typed in a shell.
    Field names are dotted paths, taken literally otherwise (``{dc:title}`` is the field
    ``dc:title``). A text that is no template raises ValueError saying why.
    """

    __slots__ = ("_parts", "fields", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        parts: list[str | tuple[str, Getter]] = []
        literal: list[str] = []
        i, n = 0, len(text)

        def bad(problem: str) -> NoReturn:
            raise ValueError(problem)

        while i < n:
            c = text[i]
            if c == "{":
                if text.startswith("{{", i):
                    literal.append("{")
                    i += 2
                    continue
                close = text.find("}", i + 1)
                reopen = text.find("{", i + 1)
                if close < 0 or 0 <= reopen < close:
                    bad(f"the brace at position {i + 1} is never closed")
                name = text[i + 1 : close]
                if not name.strip():
                    bad(f"empty {{}} at position {i + 1}; put a field name inside")
                if literal:
                    parts.append("".join(literal))
                    literal.clear()
                parts.append((name, getter(name)))
                i = close + 1
            elif c == "}":
                if not text.startswith("}}", i):
                    bad(f"the brace at position {i + 1} closes nothing (write }}}} for a brace)")
                literal.append("}")
                i += 2
            elif c == "\\" and text[i + 1 : i + 2] in ("n", "t", "\\"):
                literal.append({"n": "\n", "t": "\t", "\\": "\\"}[text[i + 1]])
                i += 2
            else:
                literal.append(c)
                i += 1
        if literal:
            parts.append("".join(literal))
        if not any(isinstance(p, tuple) for p in parts):
            bad("it names no field, so every record would get the same value")
        self._parts = tuple(parts)
        self.fields = tuple(p[0] for p in parts if isinstance(p, tuple))
        """The field names the template uses, in order."""

    def render(self, value: dict[str, Any], missing: Callable[[str, bool], NoReturn]) -> str:
        """The template filled from ``value``; ``missing(name, is_null)`` if a field has none.

        The result is ``""`` when every field is empty: the template's own text alone
        (``"doc-"``, a lone newline) is never an id or a text worth sending.
        """
        out: list[str] = []
        filled = False
        for part in self._parts:
            if isinstance(part, str):
                out.append(part)
                continue
            name, get = part
            found = get(value)
            if type(found) is str:
                if found:
                    filled = True
                    out.append(found)
            elif found is MISSING or found is None:
                missing(name, found is None)
            else:
                text = _render(found)
                if "null" in text:
                    unheld = first(found, name, nonfinite)
                    if unheld is not None:
                        raise Bad(nonfinite_reason(*unheld))
                filled = True
                out.append(text)
        return "".join(out) if filled else ""
