"""Turn each row into a :class:`Record` (its JSON body built once) or a :class:`Rejection`.

A :class:`Mapper` is built once from :class:`MappingOptions` (its ``tabular`` flag set per
input); everything that can be decided before the first row (dotted-path splits, template
parsing, which fields are not metadata) is decided then, so :meth:`Mapper.map` does only
per-row work; :meth:`Mapper.records` maps a reader's output in order.

A bad *record* becomes a Rejection whose reason names the field and what is wrong. A
problem that would hit every row of a CSV/TSV or Parquet input alike (the id column is
not in its header) raises :class:`ColumnError` instead of rejecting the whole file row by
row.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any, NamedTuple, NoReturn

import orjson

from ..config import option
from ..config.settings import (
    DATA_FIELD,
    ID_FIELD,
    METADATA_FIELD,
    ColumnType,
    MappingOptions,
)
from ..errors import ColumnError, ConfigError
from ..records import (
    MAX_DATA_BYTES,
    MAX_METADATA_BYTES,
    REJECT_KEY,
    Fresh,
    JsonLine,
    Position,
    Record,
    Rejection,
    Row,
    Skip,
    Stage,
    json_type,
)

__all__ = ["COLUMN_TYPES", "Mapper", "Named", "Template", "hash_id", "infer_value", "shard_of"]

_MISSING: Any = object()
"""What a getter returns for an absent field (``None`` is JSON null, a real value)."""

_EXACT_FLOAT_INT = 2**53
_INT64 = 2**63
# JSON's number grammar: what a CSV metadata cell must look like to become a number.
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?").fullmatch
_NUMBER_START = frozenset("-0123456789")
_BOOLS = {"true": True, "false": False}
_PARSED_BEFORE = "could not be parsed originally: "
_BOM = b"\xef\xbb\xbf"

Getter = Callable[[dict[str, Any]], Any]
Cast = Callable[[str], Any]
"""Turns a CSV/TSV cell into a value of a column's type, or raises ValueError."""

_INTEGER = re.compile(r"[-+]?[0-9]+").fullmatch
_DECIMAL = re.compile(r"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?").fullmatch
_TRUTH = {"true": True, "t": True, "yes": True, "y": True, "1": True}
_TRUTH.update({"false": False, "f": False, "no": False, "n": False, "0": False})


def _to_int(cell: str) -> int:
    text = cell.strip()
    if not _INTEGER(text):
        raise ValueError("is not an integer")
    number = int(text)
    if not -_INT64 <= number < _INT64:
        raise ValueError("is too large for a 64-bit integer; make the column str")
    return number


def _to_float(cell: str) -> float:
    text = cell.strip()
    if not _DECIMAL(text):
        raise ValueError("is not a number")
    value = float(text)
    if value - value != 0.0:
        raise ValueError("is not a finite number")
    return value


def _to_bool(cell: str) -> bool:
    try:
        return _TRUTH[cell.strip().lower()]
    except KeyError:
        raise ValueError("is not true/false (nor yes/no, 1/0)") from None


def _to_json(cell: str) -> Any:
    try:
        return orjson.loads(cell)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"is not valid JSON ({exc.msg})") from None


COLUMN_TYPES: dict[ColumnType, Cast] = {
    "str": str,
    "int": _to_int,
    "float": _to_float,
    "bool": _to_bool,
    "json": _to_json,
}
"""What each of ``types``' names does to a CSV/TSV cell."""


def shard_of(id: str, n: int) -> int:
    """The shard (``0 <= k < n``) a record id belongs to.

    A stable hash, the same on every machine and Python version (unlike ``hash()``), so
    ``--shard k/n`` run as n separate jobs sends every record exactly once.
    """
    digest = hashlib.blake2b(id.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % n


def hash_id(data: str, metadata: dict[str, Any] | None) -> str:
    """A content id: 32 hex digits of blake2b over ``[data, metadata]``, keys sorted.

    The same text and metadata always give the same id, so loading an input again
    overwrites instead of duplicating.
    """
    canonical = orjson.dumps([data, metadata], option=orjson.OPT_SORT_KEYS)
    return hashlib.blake2b(canonical, digest_size=16).hexdigest()


def infer_value(cell: str) -> Any:
    """A CSV cell as metadata: a JSON-style number or true/false becomes one, else the text.

    Integers keep only their canonical spelling within int64 (``"007"``, ``"+5"`` and
    ``"1_000"`` stay text: zip codes and phone numbers must not lose digits); floats must
    be finite.
    """
    first = cell[0]
    if first in _NUMBER_START:
        m = _NUMBER(cell)
        if m is not None:
            if m.group(1) is None and m.group(2) is None:
                number = int(cell)
                if -_INT64 <= number < _INT64:
                    return number
            else:
                value = float(cell)
                if value - value == 0.0:  # finite: inf - inf and nan - nan are nan
                    return value
        return cell
    if first in "tTfF" and len(cell) <= 5:
        return _BOOLS.get(cell.lower(), cell)
    return cell


def _getter(path: str) -> Getter:
    """Read a field by dotted path; a key that literally contains the dots wins."""
    if "." not in path:

        def get_key(value: dict[str, Any]) -> Any:
            return value.get(path, _MISSING)

        return get_key
    parts = tuple(path.split("."))

    def get_path(value: dict[str, Any]) -> Any:
        found = value.get(path, _MISSING)
        if found is not _MISSING:
            return found
        node: Any = value
        for part in parts:
            if type(node) is not dict:
                return _MISSING
            node = node.get(part, _MISSING)
            if node is _MISSING:
                return _MISSING
        return node

    return get_path


def _render(value: Any) -> str:
    """A non-string field as text in a template: JSON's spelling (``true``, ``1.5``)."""
    return orjson.dumps(value).decode()


class Template:
    """A ``{field}`` template, parsed once.

    ``{{``/``}}`` are literal braces; in the literal text the two characters ``\\n`` mean a
    newline, ``\\t`` a tab and ``\\\\`` a backslash, so a template can be typed in a shell.
    Field names are dotted paths, taken literally otherwise (``{dc:title}`` is the field
    ``dc:title``).
    """

    __slots__ = ("_parts", "fields", "text")

    def __init__(self, text: str, setting: str) -> None:
        self.text = text
        parts: list[str | tuple[str, Getter]] = []
        literal: list[str] = []
        i, n = 0, len(text)

        def bad(problem: str) -> NoReturn:
            raise ConfigError(
                f"{option(setting, text)}: {problem}",
                hint="Write {field} for a field, {{ and }} for literal braces.",
            )

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
                parts.append((name, _getter(name)))
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
            elif found is _MISSING or found is None:
                missing(name, found is None)
            else:
                text = _render(found)
                if "null" in text:
                    nonfinite = _first(found, name, _nonfinite)
                    if nonfinite is not None:
                        raise _Bad(_nonfinite_reason(*nonfinite))
                filled = True
                out.append(text)
        return "".join(out) if filled else ""


class Named(NamedTuple):
    """A field an option names (see :meth:`Mapper.named_fields`)."""

    name: str
    option: str
    """The option as given: ``--metadata-field metdata``."""
    has: Callable[[dict[str, Any]], bool]
    """Whether a row has it."""
    required: bool
    """Whether no record having it means the option is wrong, rather than rare."""


class _Bad(Exception):
    """A row cannot become a record; raised inside the mapper, never outside it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _dump(id_: str, data: str, meta: dict[str, Any] | None) -> bytes:
    """The record as sent; the metadata key is left out when there is none."""
    if meta is None:
        return orjson.dumps({"id": id_, "data": data})
    return orjson.dumps({"id": id_, "data": data, "metadata": meta})


class Mapper:
    """Maps the rows of one input format to records, per :class:`MappingOptions`.

    One rule for every format: the id and the data come from their fields (dotted paths
    reach into objects) or templates; every other field is metadata, merged with the
    keys of the metadata object (``metadata_field``), a key in both rejected; or only
    the fields ``metadata_columns`` names (absent ones are left out).

    What the format adds: JSON values are as they are (``tabular=False``). CSV/TSV cells
    (``tabular=True``) become numbers/booleans per :func:`infer_value` unless
    ``infer_types`` is off, or the column's ``types``; empty ones are left out, and the
    metadata column holds a JSON object. Parquet values (``typed``) keep their types, a
    null left out. A column the options name but a table's header lacks raises
    :class:`ColumnError` at the first row.

    A rejects-file line (it has the ``"_vupsert"`` key) is always read as
    ``{id, data, metadata}``, whatever the options say.

    Sharding (``shard=(k, n)``): a record, or a rejection that has an id, belongs to
    shard ``shard_of(id, n)``; a rejection without an id (the id is missing or bad, the
    row could not be parsed, or ``id_from="hash"`` could not hash it) is reported by
    shard 0 only, so across the n jobs each is reported exactly once.
    """

    def __init__(
        self, options: MappingOptions, *, tabular: bool = False, stage: Stage = "map"
    ) -> None:
        self._options = options
        self._stage: Stage = stage
        """What a rejection of this mapper holds: a row as read, or a record as sent."""
        self._infer = options.infer_types
        self._types = {name: (kind, COLUMN_TYPES[kind]) for name, kind in options.types}
        self._types_checked = False
        self._chunked = options.chunk_size is not None
        """Data over the 1 MB limit is fine: chunking splits it later."""
        for setting in ("id_field", "data_field", "metadata_field"):
            if not getattr(options, setting):
                raise ConfigError(f"{option(setting)} must not be empty")

        self._shard_k = 0
        self._shard_n = 0
        if options.shard is not None:
            k, n = options.shard
            if not (n >= 1 and 0 <= k < n):
                raise ConfigError(
                    f"shard {k}/{n} does not exist; with n shards, k is 0 to n-1",
                    hint="For 4 jobs, shards 0/4, 1/4, 2/4 and 3/4.",
                )
            self._shard_k, self._shard_n = k, n

        self._id_from = options.id_from
        self._id_template: Template | None = None
        if options.id_template is not None:
            if options.id_from != "field":
                raise ConfigError(
                    f"{option('id_template')} and {option('id_from', options.id_from)} both make "
                    "the id; give only one"
                )
            self._id_template = Template(options.id_template, "id_template")
        self._id_name = options.id_field
        self._get_id = _getter(options.id_field)

        self._data_template: Template | None = None
        if options.data_template is not None:
            self._data_template = Template(options.data_template, "data_template")
        self._data_name = options.data_field
        self._get_data = _getter(options.data_field)

        self._meta_name = options.metadata_field
        self._get_meta = _getter(options.metadata_field)
        self._meta_columns: tuple[tuple[str, Getter], ...] | None = None
        if options.metadata_columns is not None:
            self._meta_columns = tuple((c, _getter(c)) for c in options.metadata_columns)
        # Every other field is metadata: not the id's, the data's, nor the metadata
        # object's (its keys are merged in). A template's fields are fields like any other.
        taken = [options.metadata_field]
        if self._id_from == "field" and self._id_template is None:
            taken.append(options.id_field)
        if self._data_template is None:
            taken.append(options.data_field)
        self._not_metadata = frozenset(taken)
        """Top-level fields left out of metadata whole."""
        inner: dict[str, list[tuple[str, ...]]] = {}
        for path in taken:
            if "." in path:
                top, *rest = path.split(".")
                inner.setdefault(top, []).append(tuple(rest))
        self._inside = {top: tuple(paths) for top, paths in inner.items()}
        """Fields the id, data or metadata object are taken from inside of
        (``doc`` for ``doc.body``): metadata without those parts."""

        self._plain: Mapper | None = None
        """For rejects-file lines holding a record as sent: default fields, same shard."""
        self._table: Mapper | None = None
        """For rejects-file lines holding a CSV/TSV row: this mapper's options, as a table."""
        self._typed_table: Mapper | None = None
        """For rejects-file lines holding a Parquet row: this mapper's options, typed."""

        # The common JSON Lines case gets a path with no per-field calls; anything it does
        # not accept at a glance goes through the general path, which has the last word.
        self._fast_jsonl = (
            self._id_from == "field"
            and self._id_template is None
            and self._data_template is None
            and self._meta_columns is None
            and self._shard_n == 0
            and not any("." in f for f in (self._id_name, self._data_name, self._meta_name))
        )
        self._tabular = self._fast = self._typed = False
        self._word = "field"
        self.tabular = tabular

    @property
    def tabular(self) -> bool:
        """Whether rows come from CSV/TSV; one mapper can be switched between inputs."""
        return self._tabular

    @tabular.setter
    def tabular(self, tabular: bool) -> None:
        self._tabular = tabular
        self._typed = False
        self._word = "column" if tabular else "field"
        self._fast = self._fast_jsonl and not tabular

    @property
    def typed(self) -> bool:
        """Whether rows come from a table whose cells have types of their own (Parquet):
        mapped as CSV rows are, but no cell's type is guessed, a null is left out of
        metadata, and dotted paths reach into struct columns."""
        return self._typed

    @typed.setter
    def typed(self, typed: bool) -> None:
        self.tabular = typed
        self._typed = typed

    @property
    def reports_unattributed(self) -> bool:
        """Whether this shard reports rejections that have no id (see the class doc)."""
        return self._shard_k == 0

    def named_fields(self) -> list[Named]:
        """The fields that options given (not left at their defaults) name: a misspelt one
        would otherwise be missing from every record, unnoticed when it is the metadata's.
        A ``metadata_columns`` name may be a field only some records have."""
        o = self._options
        named: list[tuple[str, str, Getter]] = []
        if self._id_from == "field" and self._id_template is None and o.id_field != ID_FIELD:
            named.append((o.id_field, option("id_field", o.id_field), self._get_id))
        if self._data_template is None and o.data_field != DATA_FIELD:
            named.append((o.data_field, option("data_field", o.data_field), self._get_data))
        if o.metadata_field != METADATA_FIELD:
            named.append(
                (o.metadata_field, option("metadata_field", o.metadata_field), self._get_meta)
            )
        for setting, template in (
            ("id_template", self._id_template),
            ("data_template", self._data_template),
        ):
            if template is not None:
                spelled = option(setting, template.text)
                named += [(name, spelled, _getter(name)) for name in template.fields]
        fields = [Named(name, spelled, _has(get), True) for name, spelled, get in named]
        if self._meta_columns is not None:
            spelled = option("metadata_columns", ",".join(o.metadata_columns or ()))
            fields += [
                Named(name, spelled, self._has_picked(get), False)
                for name, get in self._meta_columns
                if name != self._meta_name  # a metadata object is for some records only
            ]
        return fields

    def _has_picked(self, get: Getter) -> Callable[[dict[str, Any]], bool]:
        """Whether a row has a field, or its metadata object the key."""

        def has(value: dict[str, Any]) -> bool:
            found = self._get_meta(value)
            return get(value) is not _MISSING or (
                isinstance(found, dict) and get(found) is not _MISSING
            )

        return has

    def map(self, row: Row) -> Record | Rejection | None:
        """The row as a record or a rejection; ``None`` if it belongs to another shard."""
        value = row.value
        if not self._tabular and REJECT_KEY in value:
            return self._map_rejects_line(row, value)
        return self._map(row, value)

    def records(self, rows: Iterable[Row | Rejection]) -> Iterator[Record | Rejection | Skip]:
        """Map a reader's output (:func:`~vupsert.inputs.sources.iter_rows`) in input order; a
        row of another shard comes out as a :class:`Skip`, so it still counts as read."""
        for item in rows:
            yield self._mapped(item) if isinstance(item, Row) else self._passed_on(item)

    def json_records(
        self, source: str, lines: Iterable[JsonLine | Rejection], *, as_written: bool = True
    ) -> Iterator[Fresh | Record | Rejection | Skip]:
        """:meth:`records` for the rows of one JSON Lines input
        (:func:`~vupsert.inputs.sources.iter_json_lines`).

        The hot path: a row with a plain id, data and metadata object (or none), other
        fields merged into it, is passed on as a :data:`Fresh` tuple, with no object made
        for it; its body is the line itself when the line holds nothing else under the
        API's names, else it is dumped.
        Anything it does not accept at a glance goes through :meth:`map`, which has the
        last word.
        """
        fast = self._fast
        id_name, data_name, meta_name = self._id_name, self._data_name, self._meta_name
        # Records handed over as dicts have no text (``as_written`` is False for them),
        # and may hold a NaN or an infinity, which would be dumped as null.
        from_python = not as_written
        # Under the API's own field names, a line that holds the record and nothing else
        # is already its JSON: it is sent as written, not dumped again.
        as_written = (
            as_written and fast and (id_name, data_name, meta_name) == ("id", "data", "metadata")
        )
        encode_error = orjson.JSONEncodeError
        # A line that may hold an integer beyond 64 bits (see _NINETEEN).
        digits, nineteen = _DIGITS_AS_NINES, _NINETEEN
        for item in lines:
            if type(item) is not tuple:
                assert isinstance(item, Rejection)
                yield self._passed_on(item)
                continue
            line, offset, value, text = item
            if nineteen in text.translate(digits):
                row = Row(source, line, Position(offset, line), value, text)
                where = self._inexact_number(row, text)
                if where is not None:
                    yield self._passed_on(self._reject(row, value, _Bad(where), None))
                    continue
            if fast and REJECT_KEY not in value:
                id_ = value.get(id_name)
                data = value.get(data_name)
                meta = value.get(meta_name)
                if (
                    type(id_) is str
                    and id_
                    and type(data) is str
                    and data
                    and not data.isspace()
                    and (meta is None or type(meta) is dict)
                ):
                    body = b""
                    if len(value) == (2 if meta is None else 3):
                        # Two keys and no metadata, or three with it: nothing else is there.
                        fields: Any = meta
                        if as_written:
                            body = text.strip()
                    else:
                        others = dict(value)  # a copy less three keys: 5x a comprehension
                        del others[id_name], others[data_name]
                        others.pop(meta_name, None)
                        fields = {**meta, **others} if meta else (others or meta)
                        if meta and len(fields) < len(meta) + len(others):
                            fields = _MISSING  # a key in both: rejected by the general path
                    if not body and fields is not _MISSING:
                        try:
                            body = _dump(id_, data, fields)
                        except encode_error:
                            body = b""
                    if (
                        body
                        and len(body) <= MAX_METADATA_BYTES
                        and not (from_python and body.find(b"null", len(data)) >= 0)
                    ):
                        yield id_, body, source, line, offset, line
                        continue
            yield self._mapped(Row(source, line, Position(offset, line), value, text))

    def _inexact_number(self, row: Row, text: bytes) -> str | None:
        """What is wrong with a line whose metadata (or a field a template uses) holds an
        integer beyond 64 bits: JSON readers, orjson and Upstash's among them, keep it
        only as an approximate float, so it would be stored changed."""
        try:
            exact = json.loads(text, parse_int=_exact_int)
        except ValueError:
            return None
        if type(exact) is not dict:
            return None
        try:
            found = self._find(exact, self._make_metadata(row, exact), _is_huge)
        except _Bad:
            found = None  # the general path says what is wrong
        for template in (self._id_template, self._data_template):
            if template is not None:
                for name in template.fields:
                    found = found or _first(_getter(name)(exact), name, _is_huge)
        return _huge_reason(*found) if found is not None else None

    def _mapped(self, row: Row) -> Record | Rejection | Skip:
        mapped = self.map(row)
        return mapped if mapped is not None else Skip(row.source, row.line, row.end)

    def _passed_on(self, rejection: Rejection) -> Rejection | Skip:
        # A reader's rejection has no id: one shard reports it, not each job.
        if self.reports_unattributed:
            return rejection
        return Skip(rejection.source, rejection.line, rejection.end)

    def _map(self, row: Row, value: dict[str, Any]) -> Record | Rejection | None:
        id_: str | None = None
        data: Any = _MISSING
        meta: Any = _MISSING
        try:
            if self._id_from != "hash":
                id_ = self._make_id(row, value)
                if self._shard_n and shard_of(id_, self._shard_n) != self._shard_k:
                    return None
            data = self._make_data(row, value)
            meta = self._make_metadata(row, value)
            if id_ is None:
                id_ = self._hash_id(value, data, meta)
                if self._shard_n and shard_of(id_, self._shard_n) != self._shard_k:
                    return None
            try:
                body = _dump(id_, data, meta)
            except orjson.JSONEncodeError:
                raise _Bad(self._text_problem(value, id_, data, meta)) from None
            if not row.text and body.find(b"null", len(data)) >= 0:
                # Values from Python or Parquet rather than parsed from JSON text: a NaN
                # or an infinity was written as null (after the data, which is text).
                self._check_finite(value, meta)
            # The whole body under the smaller limit proves both parts are under theirs.
            if len(body) > MAX_METADATA_BYTES:
                self._check_sizes(data, meta)
        except _Bad as bad:
            if id_ is None and not self.reports_unattributed:
                return None
            return self._reject(row, value, bad, id_)
        return Record(id_, body, row.source, row.line, row.end)

    def _reject(self, row: Row, value: dict[str, Any], bad: _Bad, id_: str | None) -> Rejection:
        """The rejection, keeping the row as read: fixed in the rejects file, it is fed back
        with the same mapping options."""
        return Rejection(
            row.source,
            row.line,
            row.end,
            bad.reason,
            body=_as_read(row, value),
            id=id_,
            stage=self._stage,
            table=self._tabular,
            typed=self._typed,
        )

    # --- id ---------------------------------------------------------------------------

    def _make_id(self, row: Row, value: dict[str, Any]) -> str:
        if self._id_template is not None:
            id_ = self._id_template.render(
                value, lambda f, null: self._missing(row, f, "id template", null)
            )
            if not id_:
                raise _Bad(f"empty id (every field of {self._id_template.text!r} is empty)")
            return id_
        if self._id_from == "line":
            return f"{row.source}:{row.line}"
        raw = self._get_id(value)
        if isinstance(raw, str):
            if raw:
                return raw
            raise _Bad(f'empty id ({self._word} "{self._id_name}")')
        kind = type(raw)
        if kind is int:
            return str(raw)
        if kind is float:
            if raw - raw != 0.0:
                raise _Bad(f'id {raw!r} is not a finite number (field "{self._id_name}")')
            if raw.is_integer() and abs(raw) >= _EXACT_FLOAT_INT:
                # orjson reads integers beyond 64 bits as floats; digits would be lost.
                raise _Bad(
                    f'id {raw!r} is too large a number to keep exactly (field "{self._id_name}");'
                    " write it as a string"
                )
            return str(raw)
        if raw is _MISSING:
            self._missing(row, self._id_name, "id")
        raise _Bad(f'id is not a string or number (got {json_type(raw)}, field "{self._id_name}")')

    def _hash_id(self, value: dict[str, Any], data: str, meta: dict[str, Any] | None) -> str:
        try:
            return hash_id(data, meta)
        except orjson.JSONEncodeError:
            raise _Bad(self._text_problem(value, None, data, meta)) from None

    # --- what JSON cannot hold -------------------------------------------------------

    def _text_problem(
        self, value: dict[str, Any], id_: str | None, data: Any, meta: dict[str, Any] | None
    ) -> str:
        """Why a record cannot be written as JSON."""
        for key, item in (meta or {}).items():
            if not isinstance(key, str):
                found = self._get_meta(value)
                owner = self._meta_name if isinstance(found, dict) and key in found else ""
                return _key_reason(owner, key)
            found = _first(item, self._path_of(key, value), _bad_keys)
            if found is not None:
                path, holder = found
                return _key_reason(path, next(k for k in holder if not isinstance(k, str)))
        for name, item in (("id", id_), ("data", data), ("metadata", meta)):
            where = _bad_text_at(item)
            if where is not None:
                return f"{name} has invalid text (a lone surrogate at {where})"
        huge = self._find(value, _marked_huge(meta), _is_huge)
        if huge is not None:
            return _huge_reason(*huge)
        return "the record cannot be written as JSON"

    def _check_finite(self, value: dict[str, Any], meta: dict[str, Any] | None) -> None:
        found = self._find(value, meta, _nonfinite)
        if found is not None:
            raise _Bad(_nonfinite_reason(*found))

    def _find(
        self, value: dict[str, Any], meta: dict[str, Any] | None, test: Callable[[Any], bool]
    ) -> tuple[str, Any] | None:
        """The first value in ``meta`` that passes ``test``, with its path in the row."""
        for key, item in (meta or {}).items():
            found = _first(item, self._path_of(key, value), test)
            if found is not None:
                return found
        return None

    def _path_of(self, key: str, value: dict[str, Any]) -> str:
        """Where a metadata key is in the row: a key of the metadata object is under it."""
        found = self._get_meta(value)
        if isinstance(found, dict) and key in found:
            return f"{self._meta_name}.{key}"
        return key

    def _check_sizes(self, data: str, meta: dict[str, Any] | None) -> None:
        size = len(data.encode())
        if size > MAX_DATA_BYTES and not self._chunked:
            raise _Bad(f"data is {size:,} bytes; the limit is {MAX_DATA_BYTES:,}")
        if meta is not None:
            size = len(orjson.dumps(meta))
            if size > MAX_METADATA_BYTES:
                raise _Bad(
                    f"metadata is {size:,} bytes; the limit is {MAX_METADATA_BYTES:,}"
                    + self._largest(meta)
                )

    def _largest(self, meta: dict[str, Any]) -> str:
        """What makes metadata too large, and the option that leaves it out."""
        sizes = {key: len(orjson.dumps(item)) for key, item in meta.items()}
        key = max(sizes, key=sizes.__getitem__)
        said = f'; "{key}" is {sizes[key]:,} bytes of it'
        for part, setting, template in (
            ("data", "data_template", self._data_template),
            ("id", "id_template", self._id_template),
        ):
            if template is not None and key in template.fields:
                said += f" (and in the {part} already, through {option(setting)})"
                break
        rest = [k for k in meta if k != key]
        if self._meta_columns is not None:
            return f"{said}: leave it out of {option('metadata_columns')}"
        if rest:
            return f"{said}: leave it out with {option('metadata_columns', ','.join(rest))}"
        return said

    # --- data and metadata ------------------------------------------------------------

    def _make_data(self, row: Row, value: dict[str, Any]) -> str:
        if self._data_template is not None:
            data = self._data_template.render(
                value, lambda f, null: self._missing(row, f, "data template", null)
            )
            if not data or data.isspace():
                raise _Bad(f"empty data (every field of {self._data_template.text!r} is empty)")
            return data
        raw = self._get_data(value)
        if isinstance(raw, str):
            if raw and not raw.isspace():
                return raw
            blank = ": only whitespace" if raw else ""
            raise _Bad(f'empty data ({self._word} "{self._data_name}"{blank})')
        if raw is _MISSING:
            self._missing(row, self._data_name, "data")
        raise _Bad(f'data is not a string (got {json_type(raw)}, field "{self._data_name}")')

    def _make_metadata(self, row: Row, value: dict[str, Any]) -> dict[str, Any] | None:
        """Every field that is neither the id nor the data, merged with the keys of the
        metadata object; or only the fields ``metadata_columns`` names."""
        if self._types and not self._types_checked and self._tabular and not self._typed:
            self._check_types(row)
        found = self._object(value)
        if self._meta_columns is not None:
            return self._picked(row, value, found)
        others = self._others(value)
        if not others:
            return found
        if not found:
            return others
        for key in others:
            if key in found:
                raise _Bad(self._clash(key))
        return {**found, **others}

    def _object(self, value: dict[str, Any]) -> dict[str, Any] | None:
        """The row's metadata object, if it has one (a CSV cell holds it as JSON)."""
        raw = self._get_meta(value)
        if isinstance(raw, dict):
            return raw
        if raw is _MISSING or raw is None:
            return None
        if self._tabular and not self._typed and type(raw) is str:
            if not raw:
                return None
            try:
                parsed = orjson.loads(raw)
            except orjson.JSONDecodeError:
                parsed = raw
            if parsed is None or isinstance(parsed, dict):
                return parsed
            raise _Bad(
                f'column "{self._meta_name}" holds no JSON object ({_shown(raw)!r}): the '
                "metadata column holds each row's metadata as a JSON object"
            )
        raise _Bad(
            f'metadata is not an object (got {json_type(raw)}, {self._word} "{self._meta_name}")'
        )

    def _others(self, value: dict[str, Any]) -> dict[str, Any]:
        """The row's fields that are neither the id, the data nor the metadata object, as
        metadata: a CSV cell typed, an empty one or a Parquet null left out."""
        skip = self._not_metadata
        if self._typed:
            others = {k: v for k, v in value.items() if v is not None and k not in skip}
        elif self._tabular:
            if self._types:
                return {k: self._cell(k, v) for k, v in value.items() if v and k not in skip}
            infer: Callable[[str], Any] = infer_value if self._infer else str
            return {k: infer(v) for k, v in value.items() if v and k not in skip}
        else:
            others = {k: v for k, v in value.items() if k not in skip}
        for top, paths in self._inside.items():
            kept = others.get(top)
            if type(kept) is not dict:
                continue
            for path in paths:
                if ".".join((top, *path)) not in value:  # else a key with the dots was it
                    kept = _without(kept, path)
            if kept:
                others[top] = kept
            else:
                del others[top]
        return others

    def _picked(
        self, row: Row, value: dict[str, Any], found: dict[str, Any] | None
    ) -> dict[str, Any] | None:
        """The fields ``metadata_columns`` names, in the row (dotted paths reach into it)
        or among the metadata object's keys; the metadata field brings all of them."""
        assert self._meta_columns is not None
        meta: dict[str, Any] = {}
        pairs: Iterable[tuple[str, Any]]
        for name, get in self._meta_columns:
            if name == self._meta_name:
                pairs = found.items() if found else ()
            else:
                item = self._pick(row, value, found, name, get)
                pairs = () if item is _MISSING else ((name, item),)
            for key, item in pairs:
                if key in meta:
                    raise _Bad(self._clash(key))
                meta[key] = item
        whole = found is not None and any(n == self._meta_name for n, _ in self._meta_columns)
        return meta if meta or whole else None

    def _pick(
        self,
        row: Row,
        value: dict[str, Any],
        found: dict[str, Any] | None,
        name: str,
        get: Getter,
    ) -> Any:
        """One field ``metadata_columns`` names, as metadata; ``_MISSING`` to leave out."""
        here = get(value)
        if found:
            there = get(found)
            if there is not _MISSING:
                if here is not _MISSING:
                    raise _Bad(self._clash(name))
                return there
        if here is _MISSING:
            if (
                self._tabular
                and self._meta_name not in value
                and (not self._typed or _absent(value, name))
            ):
                # No metadata object could hold it either: every row lacks it alike.
                self._missing(row, name, "metadata")
            return _MISSING
        if self._typed:
            return _MISSING if here is None else here
        if self._tabular:
            return self._cell(name, here) if here else _MISSING
        return here

    def _clash(self, key: str) -> str:
        return (
            f'"{key}" is both a field of the record and a key of its metadata object '
            f'("{self._meta_name}"): rename one, or choose the metadata with '
            f"{option('metadata_columns')}"
        )

    def _cell(self, name: str, cell: str) -> Any:
        """A CSV/TSV cell as metadata: cast to its column's type, or inferred."""
        typed = self._types.get(name)
        if typed is None:
            return infer_value(cell) if self._infer else cell
        kind, cast = typed
        try:
            return cast(cell)
        except ValueError as exc:
            raise _Bad(
                f'column "{name}": {_shown(cell)!r} {exc} ({option("types", {name: kind})})'
            ) from None

    def _check_types(self, row: Row) -> None:
        """Once per input, at its first row: every column ``types`` names is there."""
        self._types_checked = True
        for name, (kind, _) in self._types.items():
            if name not in row.value:
                columns = ", ".join(row.value)
                raise ColumnError(
                    f"{row.source}: has no column {name!r} for {option('types', {name: kind})} "
                    f"(its columns: {columns})",
                    hint=f"Give types only to columns of the header in {option('types')}.",
                )

    def _missing(self, row: Row, name: str, role: str, null: bool = False) -> NoReturn:
        if self._tabular and (not self._typed or _absent(row.value, name)):
            # Every row of this input has the same columns: one error, not a million.
            columns = ", ".join(row.value)
            raise ColumnError(
                f"{row.source}: has no column {name!r} for the {role} (its columns: {columns})",
                hint=_column_hint(role),
            )
        if role == "data" and self._data_template is None:
            raise _Bad(f'missing data (field "{name}")' + _data_hint(row.value))
        if role in ("id", "data"):
            raise _Bad(f'missing {role} (field "{name}")')
        if null:
            raise _Bad(f'field "{name}" for the {role} is null')
        raise _Bad(f'missing field "{name}" for the {role}')

    # --- rejects-file lines -----------------------------------------------------------

    def _map_rejects_line(self, row: Row, value: dict[str, Any]) -> Record | Rejection | None:
        info = value[REJECT_KEY]
        if type(info) is not dict:
            info = {}
        raw = info.get("raw")
        if "id" not in value and "data" not in value and isinstance(raw, str):
            if not self.reports_unattributed:
                return None
            reason = info.get("reason")
            if not isinstance(reason, str) or not reason:
                reason = "unknown reason"
            if not reason.startswith(_PARSED_BEFORE):
                reason = (
                    f"{_PARSED_BEFORE}{reason}; replace this line with the record, fixed, "
                    "and feed it again"
                )
            return Rejection(row.source, row.line, row.end, reason, raw=raw)
        rest = {k: v for k, v in value.items() if k != REJECT_KEY}
        if info.get("stage") == "map":
            # The row as read: mapped again with this run's options.
            if info.get("format") in ("csv", "tsv"):
                if self._table is None:
                    self._table = Mapper(self._options, tabular=True)
                return self._table._map(row, rest)
            if info.get("format") == "parquet":
                if self._typed_table is None:
                    self._typed_table = Mapper(self._options)
                    self._typed_table.typed = True
                return self._typed_table._map(row, rest)
            return self._map(row, rest)
        # The record as sent (or a line from before stages were recorded).
        if self._plain is None:
            options = MappingOptions(shard=self._options.shard, chunk_size=self._options.chunk_size)
            self._plain = Mapper(options, stage="send")
        return self._plain._map(row, rest)


def _has(get: Getter) -> Callable[[dict[str, Any]], bool]:
    return lambda value: get(value) is not _MISSING


def _shown(cell: str) -> str:
    """A cell as a message quotes it: its first 40 characters."""
    return cell if len(cell) <= 40 else cell[:37] + "..."


def _without(node: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    """A copy of ``node`` without the field at ``path`` (nor an object left empty by it)."""
    key, rest = path[0], path[1:]
    if key not in node:
        return node
    if rest:
        inner = node[key]
        if type(inner) is not dict:
            return node
        trimmed = _without(inner, rest)
        if trimmed:
            return {**node, key: trimmed}
    return {k: v for k, v in node.items() if k != key}


def _absent(value: dict[str, Any], path: str) -> bool:
    """Whether a table row lacks the column a dotted path starts from: then every row
    does, where a null on the way (a null struct) is that one row's."""
    return path not in value and path.partition(".")[0] not in value


def _column_hint(role: str) -> str:
    """What to do when the header lacks the column a setting names for ``role``."""
    if role == "id":
        return (
            f"Name the id column with {option('id_field')}, or use "
            f"{option('id_from', 'hash')} or {option('id_from', 'line')}."
        )
    if role == "data":
        return (
            f"Name the text column with {option('data_field')}, or compose it with "
            f"{option('data_template')}."
        )
    setting = {"metadata": "metadata_columns", "id template": "id_template"}.get(
        role, "data_template"
    )
    return f"Use only columns of the header in {option(setting)}."


_DIGITS_AS_NINES = bytes(0x39 if 0x30 <= b <= 0x39 else 0x20 for b in range(256))
_NINETEEN = b"9" * 19
"""A line may hold an integer beyond 64 bits when its digits, translated to nines, hold 19
in a row; only such lines are parsed a second time, exactly. A table translation and a
substring search cost a tenth of a regular expression's search per line."""


class _Huge(str):
    """An integer literal beyond 64 bits, as written."""


def _exact_int(literal: str) -> int | _Huge:
    number = int(literal)
    return number if -_INT64 <= number < _INT64 else _Huge(literal)


def _first(value: Any, path: str, test: Callable[[Any], bool]) -> tuple[str, Any] | None:
    """The dotted path of the first value in ``value`` that passes ``test``, and it."""
    if test(value):
        return path, value
    if isinstance(value, dict):
        for key, item in value.items():
            found = _first(item, f"{path}.{key}", test)
            if found is not None:
                return found
    elif isinstance(value, (list, tuple)):
        for n, item in enumerate(value):
            found = _first(item, f"{path}[{n}]", test)
            if found is not None:
                return found
    return None


def _is_huge(value: Any) -> bool:
    return type(value) is _Huge


def _nonfinite(value: Any) -> bool:
    return isinstance(value, float) and value - value != 0.0  # inf - inf and nan - nan: nan


def _nonfinite_reason(path: str, number: float) -> str:
    return f'field "{path}" is {number!r}, a number JSON cannot hold (it would be stored as null)'


def _bad_keys(value: Any) -> bool:
    return isinstance(value, dict) and not all(isinstance(k, str) for k in value)


def _key_reason(owner: str, key: object) -> str:
    where = f'field "{owner}"' if owner else "the record"
    return (
        f"{where} has a key that is not a string, {key!r} ({type(key).__name__}): JSON keys "
        "are text"
    )


_TEXT_FIELDS = ("text", "content", "body", "page_content", "document", "description")
"""Where records kept their text when it was not under ``data``, most common first."""


def _data_hint(value: dict[str, Any]) -> str:
    """A hint for a record with no data field but a likely other name for its text."""
    for name in _TEXT_FIELDS:
        if type(value.get(name)) is str and value[name]:
            return f'; the record has "{name}": use {option("data_field", name)}'
    return ""


def _as_read(row: Row, value: dict[str, Any]) -> bytes:
    """The row as its input had it, as a JSON object, without any earlier rejection's key."""
    if row.text and REJECT_KEY not in value:
        text = row.text.strip()
        if text.startswith(_BOM):
            text = text[len(_BOM) :].lstrip()
        return text
    kept = {k: v for k, v in value.items() if k != REJECT_KEY}
    try:
        return orjson.dumps(kept)
    except orjson.JSONEncodeError:
        return orjson.dumps(_scrub(kept))


def _bad_text_at(value: Any) -> str | None:
    """Where a value holds a lone surrogate (text that is not valid Unicode), if it does."""
    if isinstance(value, str):
        try:
            value.encode()
        except UnicodeEncodeError as exc:
            return f"character {exc.start + 1}"
        return None
    if isinstance(value, dict):
        for k, v in value.items():
            if _bad_text_at(k) is not None:
                return f"key {k.encode('utf-8', 'backslashreplace').decode()!r}"
            where = _bad_text_at(v)
            if where is not None:
                return f"key {k!r}, {where}"
    if isinstance(value, list):
        for i, v in enumerate(value):
            where = _bad_text_at(v)
            if where is not None:
                return f"item {i}, {where}"
    return None


def _marked_huge(value: Any) -> Any:
    """``value`` with every integer beyond 64 bits marked as a :class:`_Huge`."""
    if type(value) is int and not -_INT64 <= value < _INT64:
        return _Huge(value)
    if isinstance(value, dict):
        return {k: _marked_huge(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_marked_huge(v) for v in value]
    return value


def _huge_reason(path: str, digits: str) -> str:
    return (
        f'field "{path}" holds {digits}, too large for a 64-bit integer: it would be stored '
        "as an approximate number; write it as a string"
    )


def _scrub(value: Any) -> Any:
    """A copy of a value that orjson can always write: bad text made visible as escapes,
    an integer beyond 64 bits as its digits, anything else JSON lacks as its repr."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode()
    if type(value) is int and not -_INT64 <= value < _INT64:
        return str(value)
    if value is not None and not isinstance(value, (bool, int, float, dict, list)):
        return repr(value)
    if isinstance(value, dict):
        return {_scrub(k) if isinstance(k, str) else str(k): _scrub(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    return value
