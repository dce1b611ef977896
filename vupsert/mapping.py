"""Turn each row into a :class:`Record` (its JSON body built once) or a :class:`Rejection`.

A :class:`Mapper` is built once from :class:`MappingOptions` (its ``tabular`` flag set per
input); everything that can be decided before the first row (dotted-path splits, template
parsing, which columns are not metadata) is decided then, so :meth:`Mapper.map` does only
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
from typing import Any, NoReturn

import orjson

from .errors import ColumnError, ConfigError
from .records import (
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
from .settings import ColumnType, MappingOptions, option

__all__ = ["COLUMN_TYPES", "Mapper", "Template", "hash_id", "infer_value", "shard_of"]

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
                filled = True
                out.append(_render(found))
        return "".join(out) if filled else ""


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

    JSON Lines (``tabular=False``): ``id_field``, ``data_field`` and ``metadata_field``
    are dotted paths. ``metadata_columns``, if given, builds the metadata from those
    fields instead (absent ones are left out).

    CSV/TSV (``tabular=True``): the same options name columns. Every column that is not
    used for the id or the data (directly or through a template) becomes a metadata key,
    or only ``metadata_columns``; cells become numbers/booleans per :func:`infer_value`
    unless ``infer_types`` is off, and empty cells are left out. A column the options
    name but the header lacks raises :class:`ColumnError` at the first row.

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
        # Columns already sent as id or data are not repeated as metadata.
        used: set[str] = set()
        if self._id_template is not None:
            used.update(self._id_template.fields)
        elif self._id_from == "field":
            used.add(options.id_field)
        if self._data_template is not None:
            used.update(self._data_template.fields)
        else:
            used.add(options.data_field)
        self._not_metadata = frozenset(used)

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

    def map(self, row: Row) -> Record | Rejection | None:
        """The row as a record or a rejection; ``None`` if it belongs to another shard."""
        value = row.value
        if not self._tabular and REJECT_KEY in value:
            return self._map_rejects_line(row, value)
        return self._map(row, value)

    def records(self, rows: Iterable[Row | Rejection]) -> Iterator[Record | Rejection | Skip]:
        """Map a reader's output (:func:`~vupsert.sources.iter_rows`) in input order; a
        row of another shard comes out as a :class:`Skip`, so it still counts as read."""
        for item in rows:
            yield self._mapped(item) if isinstance(item, Row) else self._passed_on(item)

    def json_records(
        self, source: str, lines: Iterable[JsonLine | Rejection], *, as_written: bool = True
    ) -> Iterator[Fresh | Record | Rejection | Skip]:
        """:meth:`records` for the rows of one JSON Lines input
        (:func:`~vupsert.sources.iter_json_lines`).

        The hot path: a row that is already a plain ``{id, data, metadata}`` object is
        passed on as a :data:`Fresh` tuple, with no object made for it; its body is the
        line itself when the line holds nothing else under the API's names, else it is
        dumped.
        Anything it does not accept at a glance goes through :meth:`map`, which has the
        last word.
        """
        fast = self._fast
        id_name, data_name, meta_name = self._id_name, self._data_name, self._meta_name
        # Under the API's own field names, a line that holds the record and nothing else
        # is already its JSON: it is sent as written, not dumped again. (Records handed
        # over as dicts have no text: ``as_written`` is False for them.)
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
                where = self._inexact_number(text)
                if where is not None:
                    row = Row(source, line, Position(offset, line), value, text)
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
                    # Two keys and no metadata, or three with it: nothing else is there.
                    if as_written and len(value) == (2 if meta is None else 3):
                        body = text.strip()
                    else:
                        try:
                            body = _dump(id_, data, meta)
                        except encode_error:
                            body = b""
                    if body and len(body) <= MAX_METADATA_BYTES:
                        yield id_, body, source, line, offset, line
                        continue
            yield self._mapped(Row(source, line, Position(offset, line), value, text))

    def _inexact_number(self, text: bytes) -> str | None:
        """What is wrong with a line whose metadata (or a field a template uses) holds an
        integer beyond 64 bits: JSON readers, orjson and Upstash's among them, keep it
        only as an approximate float, so it would be stored changed."""
        try:
            exact = json.loads(text, parse_int=_exact_int)
        except ValueError:
            return None
        if type(exact) is not dict:
            return None
        if self._meta_columns is not None:
            parts = [(name, get(exact)) for name, get in self._meta_columns]
        else:
            parts = [(self._meta_name, self._get_meta(exact))]
        for template in (self._id_template, self._data_template):
            if template is not None:
                parts += [(name, _getter(name)(exact)) for name in template.fields]
        for name, found in parts:
            where = _huge_at(found, name)
            if where is not None:
                return _huge_reason(*where)
        return None

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
                id_ = self._hash_id(data, meta)
                if self._shard_n and shard_of(id_, self._shard_n) != self._shard_k:
                    return None
            try:
                body = _dump(id_, data, meta)
            except orjson.JSONEncodeError:
                raise _Bad(_text_problem(id_, data, meta)) from None
            # The whole body under the smaller limit proves both parts are under theirs.
            if len(body) > MAX_METADATA_BYTES:
                _check_sizes(data, meta, chunked=self._chunked)
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

    def _hash_id(self, data: str, meta: dict[str, Any] | None) -> str:
        try:
            return hash_id(data, meta)
        except orjson.JSONEncodeError:
            raise _Bad(_text_problem(None, data, meta)) from None

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
        if self._typed:
            return self._typed_metadata(row, value)
        if self._tabular:
            return self._table_metadata(row, value)
        if self._meta_columns is not None:
            picked = {}
            for name, get in self._meta_columns:
                found = get(value)
                if found is not _MISSING:
                    picked[name] = found
            return picked or None
        raw = self._get_meta(value)
        if isinstance(raw, dict):
            return raw
        if raw is _MISSING or raw is None:
            return None
        raise _Bad(f'metadata is not an object (got {json_type(raw)}, field "{self._meta_name}")')

    def _table_metadata(self, row: Row, value: dict[str, str]) -> dict[str, Any] | None:
        infer: Callable[[str], Any] = infer_value if self._infer else str
        if self._types:
            return self._typed_cells(row, value, infer)
        if self._meta_columns is None:
            skip = self._not_metadata
            meta = {k: infer(v) for k, v in value.items() if v and k not in skip}
        else:
            meta = {}
            for name, _ in self._meta_columns:
                cell = value.get(name)
                if cell is None:
                    self._missing(row, name, "metadata")
                if cell:
                    meta[name] = infer(cell)
        return meta or None

    def _typed_cells(
        self, row: Row, value: dict[str, str], infer: Callable[[str], Any]
    ) -> dict[str, Any] | None:
        """:meth:`_table_metadata` with ``types``: the columns they name are cast."""
        if not self._types_checked:
            self._check_types(row)
        types = self._types
        if self._meta_columns is None:
            skip = self._not_metadata
            cells = [(k, v) for k, v in value.items() if v and k not in skip]
        else:
            cells = []
            for name, _ in self._meta_columns:
                cell = value.get(name)
                if cell is None:
                    self._missing(row, name, "metadata")
                if cell:
                    cells.append((name, cell))
        meta = {}
        for name, cell in cells:
            typed = types.get(name)
            if typed is None:
                meta[name] = infer(cell)
                continue
            kind, cast = typed
            try:
                meta[name] = cast(cell)
            except ValueError as exc:
                shown = cell if len(cell) <= 40 else cell[:37] + "..."
                raise _Bad(
                    f'column "{name}": {shown!r} {exc} ({option("types", {name: kind})})'
                ) from None
        return meta or None

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

    def _typed_metadata(self, row: Row, value: dict[str, Any]) -> dict[str, Any] | None:
        if self._meta_columns is None:
            skip = self._not_metadata
            meta = {k: v for k, v in value.items() if v is not None and k not in skip}
        else:
            meta = {}
            for name, get in self._meta_columns:
                found = get(value)
                if found is _MISSING and _absent(value, name):
                    self._missing(row, name, "metadata")
                if found is not _MISSING and found is not None:
                    meta[name] = found
        return meta or None

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


def _huge_at(value: Any, path: str) -> tuple[str, str] | None:
    """The dotted path and digits of the first :class:`_Huge` in ``value``, if any."""
    if type(value) is _Huge:
        return path, str(value)
    if type(value) is dict:
        for key, item in value.items():
            found = _huge_at(item, f"{path}.{key}")
            if found is not None:
                return found
    elif type(value) is list:
        for n, item in enumerate(value):
            found = _huge_at(item, f"{path}[{n}]")
            if found is not None:
                return found
    return None


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


def _check_sizes(data: str, meta: dict[str, Any] | None, *, chunked: bool = False) -> None:
    size = len(data.encode())
    if size > MAX_DATA_BYTES and not chunked:
        raise _Bad(f"data is {size:,} bytes; the limit is {MAX_DATA_BYTES:,}")
    if meta is not None:
        size = len(orjson.dumps(meta))
        if size > MAX_METADATA_BYTES:
            raise _Bad(f"metadata is {size:,} bytes; the limit is {MAX_METADATA_BYTES:,}")


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


def _text_problem(id_: str | None, data: Any, meta: Any) -> str:
    """Why a record cannot be written as JSON."""
    for name, value in (("id", id_), ("data", data), ("metadata", meta)):
        where = _bad_text_at(value)
        if where is not None:
            return f"{name} has invalid text (a lone surrogate at {where})"
    huge = _huge_at(_marked_huge(meta), "metadata")
    if huge is not None:
        path, digits = huge
        return _huge_reason(path, digits)
    return "the record cannot be written as JSON"


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
        return {_scrub(k): _scrub(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    return value
