"""Turn each row into a :class:`Record` (its JSON body built once) or a :class:`Rejection`.

A :class:`Mapper` is built once per input from :class:`MappingOptions` and what the
input's values are (:class:`~vupsert.inputs.Cells`, from its format); everything that can
be decided before the first row (dotted-path splits, template parsing, which fields are
not metadata) is decided then, so :meth:`Mapper.map` does only per-row work;
:meth:`Mapper.records` maps a reader's items in order.

A bad *record* becomes a Rejection whose reason names the field and what is wrong. A
problem that would hit every row of a CSV/TSV or Parquet input alike (the id column is
not in its header) raises :class:`ColumnError` instead of rejecting the whole file row by
row.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Iterable, Iterator
from typing import Any, NamedTuple, NoReturn

import orjson

from ..config import option
from ..config.settings import DATA_FIELD, ID_FIELD, METADATA_FIELD, MappingOptions
from ..errors import ColumnError, ConfigError
from ..records import (
    MAX_DATA_BYTES,
    MAX_METADATA_BYTES,
    REJECT_KEY,
    Cells,
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
from ._cells import COLUMN_TYPES, infer_value
from ._replay import as_read, read_back
from ._safety import (
    DIGITS_AS_NINES,
    EXACT_FLOAT_INT,
    NINETEEN,
    Bad,
    KeyPaths,
    check_finite,
    exactly,
    find,
    first,
    huge_reason,
    is_huge,
    text_problem,
)
from ._templates import MISSING, Getter, Template, absent, getter, without


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


class Named(NamedTuple):
    """A field an option names (see :meth:`Mapper.named_fields`)."""

    name: str
    option: str
    """The option as given: ``--metadata-field metdata``."""
    has: Callable[[dict[str, Any]], bool]
    """Whether a row has it."""
    required: bool
    """Whether no record having it means the option is wrong, rather than rare."""


def _dump(id_: str, data: str, meta: dict[str, Any] | None) -> bytes:
    """The record as sent; the metadata key is left out when there is none."""
    if meta is None:
        return orjson.dumps({"id": id_, "data": data})
    return orjson.dumps({"id": id_, "data": data, "metadata": meta})


class Mapper:
    """Maps the rows of one input to records, per :class:`MappingOptions`.

    One rule for every format: the id and the data come from their fields (dotted paths
    reach into objects) or templates; every other field is metadata, merged with the
    keys of the metadata object (``metadata_field``), a key in both rejected; or only
    the fields ``metadata_columns`` names (absent ones are left out).

    What the format adds, by its ``cells``: JSON values are as they are. A table's text
    cells (CSV/TSV) become numbers/booleans per :func:`infer_value` unless
    ``infer_types`` is off, or the column's ``types``; empty ones are left out, and the
    metadata column holds a JSON object. Typed cells (Parquet) keep their types, a null
    left out. A column the options name but a table's header lacks raises
    :class:`ColumnError` at the first row.

    A rejects-file line (it has the ``"_vupsert"`` key) is read as its stage says (see
    :mod:`~vupsert.mapping._replay`), whatever the format.

    Sharding (``shard=(k, n)``): a record, or a rejection that has an id, belongs to
    shard ``shard_of(id, n)``; a rejection without an id (the id is missing or bad, the
    row could not be parsed, or ``id_from="hash"`` could not hash it) is reported by
    shard 0 only, so across the n jobs each is reported exactly once.
    """

    def __init__(
        self, options: MappingOptions, *, cells: Cells = Cells.JSON, stage: Stage = "map"
    ) -> None:
        self._options = options
        self._cells = cells
        self._stage: Stage = stage
        """What a rejection of this mapper holds: a row as read, or a record as sent."""
        self._tabular = cells.tabular
        self._typed = cells is Cells.TYPED
        self._text = cells is Cells.TEXT
        self._word = "column" if self._tabular else "field"
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
            self._id_template = _template(options.id_template, "id_template")
        self._id_name = options.id_field
        self._get_id = getter(options.id_field)

        self._data_template: Template | None = None
        if options.data_template is not None:
            self._data_template = _template(options.data_template, "data_template")
        self._data_name = options.data_field
        self._get_data = getter(options.data_field)

        self._meta_name = options.metadata_field
        self._get_meta = getter(options.metadata_field)
        self._meta_columns: tuple[tuple[str, Getter], ...] | None = None
        if options.metadata_columns is not None:
            self._meta_columns = tuple((c, getter(c)) for c in options.metadata_columns)
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

        self._replayers: dict[Cells | None, Mapper] = {}
        """For rejects-file lines: a row as read by its format's cells, or (``None``) a
        record as sent, read with default fields and the same shard."""

        # The common JSON Lines case gets a path with no per-field calls; anything it does
        # not accept at a glance goes through the general path, which has the last word.
        self._fast = (
            not self._tabular
            and self._id_from == "field"
            and self._id_template is None
            and self._data_template is None
            and self._meta_columns is None
            and self._shard_n == 0
            and not any("." in f for f in (self._id_name, self._data_name, self._meta_name))
        )

    @property
    def reports_unattributed(self) -> bool:
        """Whether this shard reports rejections that have no id (see the class doc)."""
        return self._shard_k == 0

    def named_fields(self) -> list[Named]:
        """The fields that options given (not left at their defaults) name: a misspelt one
        would otherwise be missing from every record, unnoticed when it is the metadata's.
        A ``metadata_columns`` name may be a field only some records have. None for a
        table: a column its header lacks raises :class:`ColumnError` at the first row."""
        if self._tabular:
            return []
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
                named += [(name, spelled, getter(name)) for name in template.fields]
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
            return get(value) is not MISSING or (
                isinstance(found, dict) and get(found) is not MISSING
            )

        return has

    def map(self, row: Row) -> Record | Rejection | None:
        """The row as a record or a rejection; ``None`` if it belongs to another shard."""
        value = row.value
        if not self._tabular and REJECT_KEY in value:
            return self._replay(row, value)
        return self._map(row, value)

    def records(
        self, source: str, items: Iterable[JsonLine | Row | Rejection]
    ) -> Iterator[Fresh | Record | Rejection | Skip]:
        """Map a reader's items (:func:`~vupsert.inputs.read_input`) of the input
        ``source`` in input order; a row of another shard comes out as a :class:`Skip`, so
        it still counts as read.

        The hot path, for JSON objects: one with a plain id, data and metadata object (or
        none), other fields merged into it, is passed on as a :data:`Fresh` tuple, with no
        object made for it; its body is the line itself when the line holds nothing else
        under the API's names, else it is dumped.
        Anything it does not accept at a glance goes through :meth:`map`, which has the
        last word.
        """
        fast = self._fast
        id_name, data_name, meta_name = self._id_name, self._data_name, self._meta_name
        # Under the API's own field names, a line that holds the record and nothing else
        # is already its JSON: it is sent as written, not dumped again.
        as_written = fast and (id_name, data_name, meta_name) == ("id", "data", "metadata")
        encode_error = orjson.JSONEncodeError
        # A line that may hold an integer beyond 64 bits (see NINETEEN).
        digits, nineteen = DIGITS_AS_NINES, NINETEEN
        for item in items:
            if type(item) is not tuple:
                if isinstance(item, Row):
                    yield self._mapped(item)
                else:
                    assert isinstance(item, Rejection)
                    yield self._passed_on(item)
                continue
            line, offset, value, text = item
            if nineteen in text.translate(digits):
                row = Row(source, line, Position(offset, line), value, text)
                where = self._inexact_number(row, text)
                if where is not None:
                    yield self._passed_on(self._reject(row, value, Bad(where), None))
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
                            fields = MISSING  # a key in both: rejected by the general path
                    if not body and fields is not MISSING:
                        try:
                            body = _dump(id_, data, fields)
                        except encode_error:
                            body = b""
                    # Values with no text came from Python, and may hold a NaN or an
                    # infinity, which would be dumped as null.
                    if (
                        body
                        and len(body) <= MAX_METADATA_BYTES
                        and not (not text and body.find(b"null", len(data)) >= 0)
                    ):
                        yield id_, body, source, line, offset, line
                        continue
            yield self._mapped(Row(source, line, Position(offset, line), value, text))

    def _inexact_number(self, row: Row, text: bytes) -> str | None:
        """What is wrong with a line whose metadata (or a field a template uses) holds an
        integer beyond 64 bits: JSON readers, orjson and Upstash's among them, keep it
        only as an approximate float, so it would be stored changed."""
        exact = exactly(text)
        if exact is None:
            return None
        try:
            found = find(self._make_metadata(row, exact), is_huge, self._paths(exact))
        except Bad:
            found = None  # the general path says what is wrong
        for template in (self._id_template, self._data_template):
            if template is not None:
                for name in template.fields:
                    found = found or first(getter(name)(exact), name, is_huge)
        return huge_reason(*found) if found is not None else None

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
        data: Any = MISSING
        meta: Any = MISSING
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
                raise Bad(text_problem(id_, data, meta, self._paths(value))) from None
            if not row.text and body.find(b"null", len(data)) >= 0:
                # Values from Python or Parquet rather than parsed from JSON text: a NaN
                # or an infinity was written as null (after the data, which is text).
                check_finite(meta, self._paths(value))
            # The whole body under the smaller limit proves both parts are under theirs.
            if len(body) > MAX_METADATA_BYTES:
                self._check_sizes(data, meta)
        except Bad as bad:
            if id_ is None and not self.reports_unattributed:
                return None
            return self._reject(row, value, bad, id_)
        return Record(id_, body, row.source, row.line, row.end)

    def _reject(self, row: Row, value: dict[str, Any], bad: Bad, id_: str | None) -> Rejection:
        """The rejection, keeping the row as read: fixed in the rejects file, it is fed back
        with the same mapping options."""
        return Rejection(
            row.source,
            row.line,
            row.end,
            bad.reason,
            body=as_read(row, value),
            id=id_,
            stage=self._stage,
            table=self._tabular,
            typed=self._typed,
        )

    def _paths(self, value: dict[str, Any]) -> KeyPaths:
        """Where the row's metadata keys are in it (see :class:`KeyPaths`)."""
        found = self._get_meta(value)
        return KeyPaths(self._meta_name, found if isinstance(found, dict) else None)

    # --- id ---------------------------------------------------------------------------

    def _make_id(self, row: Row, value: dict[str, Any]) -> str:
        if self._id_template is not None:
            id_ = self._id_template.render(
                value, lambda f, null: self._missing(row, f, "id template", null)
            )
            if not id_:
                raise Bad(f"empty id (every field of {self._id_template.text!r} is empty)")
            return id_
        if self._id_from == "line":
            return f"{row.source}:{row.line}"
        raw = self._get_id(value)
        if isinstance(raw, str):
            if raw:
                return raw
            raise Bad(f'empty id ({self._word} "{self._id_name}")')
        kind = type(raw)
        if kind is int:
            return str(raw)
        if kind is float:
            if raw - raw != 0.0:
                raise Bad(f'id {raw!r} is not a finite number (field "{self._id_name}")')
            if raw.is_integer() and abs(raw) >= EXACT_FLOAT_INT:
                # orjson reads integers beyond 64 bits as floats; digits would be lost.
                raise Bad(
                    f'id {raw!r} is too large a number to keep exactly (field "{self._id_name}");'
                    " write it as a string"
                )
            return str(raw)
        if raw is MISSING:
            self._missing(row, self._id_name, "id")
        raise Bad(f'id is not a string or number (got {json_type(raw)}, field "{self._id_name}")')

    def _hash_id(self, value: dict[str, Any], data: str, meta: dict[str, Any] | None) -> str:
        try:
            return hash_id(data, meta)
        except orjson.JSONEncodeError:
            raise Bad(text_problem(None, data, meta, self._paths(value))) from None

    def _check_sizes(self, data: str, meta: dict[str, Any] | None) -> None:
        size = len(data.encode())
        if size > MAX_DATA_BYTES and not self._chunked:
            raise Bad(f"data is {size:,} bytes; the limit is {MAX_DATA_BYTES:,}")
        if meta is not None:
            size = len(orjson.dumps(meta))
            if size > MAX_METADATA_BYTES:
                raise Bad(
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
                raise Bad(f"empty data (every field of {self._data_template.text!r} is empty)")
            return data
        raw = self._get_data(value)
        if isinstance(raw, str):
            if raw and not raw.isspace():
                return raw
            blank = ": only whitespace" if raw else ""
            raise Bad(f'empty data ({self._word} "{self._data_name}"{blank})')
        if raw is MISSING:
            self._missing(row, self._data_name, "data")
        raise Bad(f'data is not a string (got {json_type(raw)}, field "{self._data_name}")')

    def _make_metadata(self, row: Row, value: dict[str, Any]) -> dict[str, Any] | None:
        """Every field that is neither the id nor the data, merged with the keys of the
        metadata object; or only the fields ``metadata_columns`` names."""
        if self._types and not self._types_checked and self._text:
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
                raise Bad(self._clash(key))
        return {**found, **others}

    def _object(self, value: dict[str, Any]) -> dict[str, Any] | None:
        """The row's metadata object, if it has one (a CSV cell holds it as JSON)."""
        raw = self._get_meta(value)
        if isinstance(raw, dict):
            return raw
        if raw is MISSING or raw is None:
            return None
        if self._text and type(raw) is str:
            if not raw:
                return None
            try:
                parsed = orjson.loads(raw)
            except orjson.JSONDecodeError:
                parsed = raw
            if parsed is None or isinstance(parsed, dict):
                return parsed
            raise Bad(
                f'column "{self._meta_name}" holds no JSON object ({_shown(raw)!r}): the '
                "metadata column holds each row's metadata as a JSON object"
            )
        raise Bad(
            f'metadata is not an object (got {json_type(raw)}, {self._word} "{self._meta_name}")'
        )

    def _others(self, value: dict[str, Any]) -> dict[str, Any]:
        """The row's fields that are neither the id, the data nor the metadata object, as
        metadata: a CSV cell typed, an empty one or a Parquet null left out."""
        skip = self._not_metadata
        if self._typed:
            others = {k: v for k, v in value.items() if v is not None and k not in skip}
        elif self._text:
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
                    kept = without(kept, path)
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
                pairs = () if item is MISSING else ((name, item),)
            for key, item in pairs:
                if key in meta:
                    raise Bad(self._clash(key))
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
        """One field ``metadata_columns`` names, as metadata; ``MISSING`` to leave out."""
        here = get(value)
        if found:
            there = get(found)
            if there is not MISSING:
                if here is not MISSING:
                    raise Bad(self._clash(name))
                return there
        if here is MISSING:
            if (
                self._tabular
                and self._meta_name not in value
                and (not self._typed or absent(value, name))
            ):
                # No metadata object could hold it either: every row lacks it alike.
                self._missing(row, name, "metadata")
            return MISSING
        if self._typed:
            return MISSING if here is None else here
        if self._text:
            return self._cell(name, here) if here else MISSING
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
            raise Bad(
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
        if self._tabular and (not self._typed or absent(row.value, name)):
            # Every row of this input has the same columns: one error, not a million.
            columns = ", ".join(row.value)
            raise ColumnError(
                f"{row.source}: has no column {name!r} for the {role} (its columns: {columns})",
                hint=_delimiter_hint(row.value) or _column_hint(role),
            )
        if role == "data" and self._data_template is None:
            raise Bad(f'missing data (field "{name}")' + _data_hint(row.value))
        if role in ("id", "data"):
            raise Bad(f'missing {role} (field "{name}")')
        if null:
            raise Bad(f'field "{name}" for the {role} is null')
        raise Bad(f'missing field "{name}" for the {role}')

    # --- rejects-file lines -----------------------------------------------------------

    def _replay(self, row: Row, value: dict[str, Any]) -> Record | Rejection | None:
        line = read_back(row, value)
        if isinstance(line, Rejection):
            # Only the text of a line that could not be parsed: it has no id.
            return line if self.reports_unattributed else None
        return self._replayer(line.cells)._map(row, line.value)

    def _replayer(self, cells: Cells | None) -> Mapper:
        """The mapper for a rejects-file line's row (as ``cells``) or record (``None``)."""
        if cells is self._cells:
            return self
        mapper = self._replayers.get(cells)
        if mapper is None:
            if cells is None:
                o = self._options
                plain = MappingOptions(shard=o.shard, chunk_size=o.chunk_size)
                mapper = Mapper(plain, stage="send")
            else:
                mapper = Mapper(self._options, cells=cells)
            self._replayers[cells] = mapper
        return mapper


def _template(text: str, setting: str) -> Template:
    """The template a setting gives, or a ConfigError saying what is wrong with it."""
    try:
        return Template(text)
    except ValueError as exc:
        raise ConfigError(
            f"{option(setting, text)}: {exc}",
            hint="Write {field} for a field, {{ and }} for literal braces.",
        ) from None


def _has(get: Getter) -> Callable[[dict[str, Any]], bool]:
    return lambda value: get(value) is not MISSING


def _shown(cell: str) -> str:
    """A cell as a message quotes it: its first 40 characters."""
    return cell if len(cell) <= 40 else cell[:37] + "..."


def _delimiter_hint(columns: Collection[str]) -> str | None:
    """What to say of a table whose only column's name holds a delimiter (``id;data``):
    its fields are separated by that, not by the delimiter it was read with."""
    if len(columns) != 1:
        return None
    (name,) = columns
    for delimiter in _DELIMITERS:
        if delimiter in name:
            shown = "\\t" if delimiter == "\t" else delimiter
            return (
                f"The header is one column, {name!r}: if {shown!r} separates the columns, "
                f"give {option('delimiter', shown)}."
            )
    return None


_DELIMITERS = (";", "\t", ",", "|")
"""What separates the fields of tables, the comma aside, most common first."""


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


_TEXT_FIELDS = ("text", "content", "body", "page_content", "document", "description")
"""Where records kept their text when it was not under ``data``, most common first."""


def _data_hint(value: dict[str, Any]) -> str:
    """A hint for a record with no data field but a likely other name for its text."""
    for name in _TEXT_FIELDS:
        if type(value.get(name)) is str and value[name]:
            return f'; the record has "{name}": use {option("data_field", name)}'
    return ""
