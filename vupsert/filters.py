"""Upstash's SQL-like metadata filter language, compiled to a Python predicate.

Covers what Upstash documents: ``=``, ``!=``, ``<``, ``<=``, ``>``, ``>=`` (ordering on
numbers), ``GLOB`` and ``NOT GLOB`` (``*``, ``?``, ``[abc]``, ``[^abc]``, case-sensitive),
``IN`` and ``NOT IN`` with a parenthesised list, ``CONTAINS`` and ``NOT CONTAINS`` on
arrays, ``HAS FIELD`` and ``HAS NOT FIELD``, ``AND`` binding tighter than ``OR``,
parentheses, dotted paths and array indexes (``a.b[0]``, ``a[#-1]`` from the end).
Keywords are case-insensitive. A vector without the field never matches a comparison.
Parentheses nest at most :data:`MAX_DEPTH` deep; reading a filter takes time in
proportion to its length.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

Predicate = Callable[[Any], bool]
"""Takes a vector's metadata (a dict, or ``None``) and says whether it matches."""

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
      | (?P<number>-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
      | (?P<op><=|>=|!=|=|<|>)
      | (?P<punct>[(),])
      | (?P<path>[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*|\[\#?-?\d+\])*)
    )""",
    re.VERBOSE,
)
_PATH_PART = re.compile(r"\.?([A-Za-z_$][\w$]*)|\[(#?)(-?\d+)\]")
_MISSING = object()

MAX_DEPTH = 100
"""Parentheses a filter may nest (deeper ones would exhaust Python's stack)."""


class FilterError(ValueError):
    """The filter does not parse; the message says where."""


def compile_filter(text: str) -> Predicate | None:
    """The predicate of ``text``, or ``None`` when the filter is empty (matches all)."""
    if not text.strip():
        return None
    return _Parser(text).parse()


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens: list[tuple[str, str, int]] = []
        self.depth = 0
        pos, end = 0, len(text.rstrip())
        while pos < end:
            match = _TOKEN.match(text, pos)
            if match is None or match.lastgroup is None:
                raise FilterError(f"Invalid filter: unexpected character at position {pos}")
            self.tokens.append((match.lastgroup, match.group(match.lastgroup), match.start()))
            pos = match.end()
        self.index = 0

    def parse(self) -> Predicate:
        predicate = self._or()
        if self.index < len(self.tokens):
            _, value, pos = self.tokens[self.index]
            raise FilterError(f"Invalid filter: unexpected {value!r} at position {pos}")
        return predicate

    def _peek(self) -> tuple[str, str, int] | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def _keyword(self, *words: str) -> bool:
        """Consume ``words`` if the next tokens spell them (case-insensitive)."""
        end = self.index + len(words)
        found = self.tokens[self.index : end]
        if len(found) == len(words) and all(
            kind == "path" and value.upper() == word
            for (kind, value, _), word in zip(found, words, strict=True)
        ):
            self.index = end
            return True
        return False

    def _expect(self, kind: str, what: str) -> str:
        token = self._peek()
        if token is None or token[0] != kind:
            where = f"at position {token[2]}" if token else "at the end"
            raise FilterError(f"Invalid filter: expected {what} {where}")
        self.index += 1
        return token[1]

    def _or(self) -> Predicate:
        terms = [self._and()]
        while self._keyword("OR"):
            terms.append(self._and())
        if len(terms) == 1:
            return terms[0]
        return lambda meta: any(term(meta) for term in terms)

    def _and(self) -> Predicate:
        terms = [self._atom()]
        while self._keyword("AND"):
            terms.append(self._atom())
        if len(terms) == 1:
            return terms[0]
        return lambda meta: all(term(meta) for term in terms)

    def _atom(self) -> Predicate:
        token = self._peek()
        if token is not None and token[:2] == ("punct", "("):
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise FilterError(
                    f"Invalid filter: parentheses nest deeper than {MAX_DEPTH} at position "
                    f"{token[2]}"
                )
            self.index += 1
            inner = self._or()
            self._expect_punct(")")
            self.depth -= 1
            return inner
        if self._keyword("HAS", "NOT", "FIELD"):
            get = _getter(self._expect("path", "a field name"))
            return lambda meta: get(meta) is _MISSING
        if self._keyword("HAS", "FIELD"):
            get = _getter(self._expect("path", "a field name"))
            return lambda meta: get(meta) is not _MISSING
        get = _getter(self._expect("path", "a field name"))
        negate = self._keyword("NOT")
        if self._keyword("IN"):
            one_of = _one_of(self._list())
            return _negated(lambda meta: one_of(get(meta)), negate)
        if self._keyword("GLOB"):
            pattern = _glob(self._literal())
            return _negated(
                lambda meta: isinstance(v := get(meta), str) and pattern(v) is not None, negate
            )
        if self._keyword("CONTAINS"):
            wanted = self._literal()
            return _negated(
                lambda meta: isinstance(v := get(meta), list) and _in(wanted, v), negate
            )
        if negate:
            raise FilterError("Invalid filter: NOT must be followed by IN, GLOB or CONTAINS")
        op = self._expect("op", "an operator")
        literal = self._literal()
        return _comparison(get, op, literal)

    def _expect_punct(self, char: str) -> None:
        token = self._peek()
        if token is None or token[:2] != ("punct", char):
            where = f"at position {token[2]}" if token else "at the end"
            raise FilterError(f"Invalid filter: expected {char!r} {where}")
        self.index += 1

    def _list(self) -> list[Any]:
        self._expect_punct("(")
        values = [self._literal()]
        while (token := self._peek()) is not None and token[:2] == ("punct", ","):
            self.index += 1
            values.append(self._literal())
        self._expect_punct(")")
        return values

    def _literal(self) -> Any:
        token = self._peek()
        if token is None:
            raise FilterError("Invalid filter: expected a value at the end")
        kind, value, pos = token
        self.index += 1
        if kind == "string":
            return re.sub(r"\\(.)", r"\1", value[1:-1])
        if kind == "number":
            number = float(value)
            return int(number) if number.is_integer() and "." not in value else number
        if kind == "path" and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise FilterError(f"Invalid filter: expected a value at position {pos}")


def _negated(predicate: Predicate, negate: bool) -> Predicate:
    if not negate:
        return predicate
    return lambda meta: not predicate(meta)


def _same(a: Any, b: Any) -> bool:
    # JSON true is not the number 1, though Python says True == 1.
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    return bool(a == b) and type(a) is not dict and type(a) is not list


def _in(value: Any, values: list[Any]) -> bool:
    return value is not _MISSING and any(_same(value, v) for v in values)


def _one_of(values: list[Any]) -> Callable[[Any], bool]:
    """Whether a value is one of ``values`` (as :func:`_same` says), in constant time."""
    keys = {_key(value) for value in values}
    return lambda value: _key(value) in keys


def _key(value: Any) -> tuple[str, Any]:
    """What :func:`_same` compares: booleans apart from numbers, 1 equal to 1.0; arrays,
    objects and a missing field equal to no literal."""
    if isinstance(value, bool):
        return ("boolean", value)
    if isinstance(value, int | float):
        return ("number", value)
    if isinstance(value, str):
        return ("string", value)
    return ("none", None)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _comparison(get: Callable[[Any], Any], op: str, literal: Any) -> Predicate:
    if op == "=":
        return lambda meta: _same(get(meta), literal)
    if op == "!=":
        return lambda meta: (v := get(meta)) is not _MISSING and not _same(v, literal)
    if not _is_number(literal):
        raise FilterError(f"Invalid filter: {op} applies to numbers, not {literal!r}")
    compare: Callable[[Any], bool] = {
        "<": lambda v: v < literal,
        "<=": lambda v: v <= literal,
        ">": lambda v: v > literal,
        ">=": lambda v: v >= literal,
    }[op]
    return lambda meta: _is_number(v := get(meta)) and compare(v)


def _getter(path: str) -> Callable[[Any], Any]:
    steps: list[tuple[str | None, bool, int]] = []
    for match in _PATH_PART.finditer(path):
        name, from_end, index = match.groups()
        steps.append((name, bool(from_end), int(index) if index is not None else 0))

    def get(meta: Any) -> Any:
        value = meta
        for name, from_end, index in steps:
            if name is not None:
                if not isinstance(value, dict) or name not in value:
                    return _MISSING
                value = value[name]
            else:
                if not isinstance(value, list):
                    return _MISSING
                position = len(value) + index if from_end else index
                if not 0 <= position < len(value):
                    return _MISSING
                value = value[position]
        return value

    return get


def _glob(pattern: Any) -> Callable[[str], Any]:
    if not isinstance(pattern, str):
        raise FilterError(f"Invalid filter: GLOB needs a string pattern, not {pattern!r}")
    out: list[str] = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "*":
            out.append(".*")
        elif char == "?":
            out.append(".")
        elif char == "[" and (end := pattern.find("]", i + 2)) != -1:
            body = pattern[i + 1 : end]
            negated = body[:1] in ("^", "!")
            if negated:
                body = body[1:]
            members = "".join(c if c == "-" else re.escape(c) for c in body)
            out.append("[" + ("^" if negated else "") + members + "]")
            i = end
        else:
            out.append(re.escape(char))
        i += 1
    try:
        return re.compile("".join(out), re.DOTALL).fullmatch
    except re.error as exc:  # a range such as [z-a]
        raise FilterError(f"Invalid filter: GLOB pattern {pattern!r}: {exc.msg}") from None
