"""Rejects-file lines, fed back: what a rejection keeps of its row, and how a line that
holds it is read again.

A line with the ``"_vupsert"`` key says at which stage its record was rejected: the row as
read (``"map"``, a table's row with its ``"format"``) is mapped again with this run's
options, as its format's cells; the record as sent is read as ``{id, data, metadata}``,
whatever the options say; a line that could not be parsed keeps only its raw text, and is
rejected again until it is replaced by the record, fixed.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import orjson

from ..records import REJECT_KEY, Cells, Rejection, Row
from ._safety import scrub

_PARSED_BEFORE = "could not be parsed originally: "
ROW_CELLS = {"csv": Cells.TEXT, "tsv": Cells.TEXT, "parquet": Cells.TYPED}
"""What a table's row held, by the ``"format"`` a rejects-file line names: ``"csv"`` for
text cells, ``"parquet"`` for typed ones (:func:`~vupsert.run.rejects.reject_line`)."""
_BOM = b"\xef\xbb\xbf"


class Replayed(NamedTuple):
    """A rejects-file line to map again."""

    value: dict[str, Any]
    """The line without its ``"_vupsert"`` key."""
    cells: Cells | None
    """The row as read, as this format's cells; ``None``: the record as sent."""


def read_back(row: Row, value: dict[str, Any]) -> Replayed | Rejection:
    """What a rejects-file line holds: a row or record to map again, or (it holds only
    the raw text of a line that could not be parsed) its rejection."""
    info = value[REJECT_KEY]
    if type(info) is not dict:
        info = {}
    raw = info.get("raw")
    if "id" not in value and "data" not in value and isinstance(raw, str):
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
    if info.get("stage") != "map":
        # The record as sent (or a line from before stages were recorded).
        return Replayed(rest, None)
    name = info.get("format")
    return Replayed(rest, ROW_CELLS.get(name, Cells.JSON) if isinstance(name, str) else Cells.JSON)


def as_read(row: Row, value: dict[str, Any]) -> bytes:
    """The row as its input had it, as a JSON object, without any earlier rejection's key:
    what a rejection keeps, so that fixed in the rejects file it is fed back as it was."""
    if row.text and REJECT_KEY not in value:
        text = row.text.strip()
        if text.startswith(_BOM):
            text = text[len(_BOM) :].lstrip()
        return text
    kept = {k: v for k, v in value.items() if k != REJECT_KEY}
    try:
        return orjson.dumps(kept)
    except orjson.JSONEncodeError:
        return orjson.dumps(scrub(kept))
