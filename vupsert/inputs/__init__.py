"""Inputs opened, decompressed and read into items: one registry of formats
(``_formats``), one module per format, one entry (:func:`read_input`).

Every item carries where it came from (``source:line``) and the reader's position right
after it, so a checkpoint can say "everything up to byte N, line L is settled" and a later
run can resume there with ``start=Position(N, L)``.
"""

from ._encoding import Text
from ._formats import (
    FORMATS,
    Input,
    InputFormat,
    Item,
    format_named_by,
    format_of,
    iter_rows,
    read_input,
)
from ._frames import ArrowStreamExportable, Table, as_records
from ._json_array import elements
from ._opening import (
    RECORDS,
    STDIN,
    Reading,
    Stream,
    display_name,
    input_size,
    is_stream,
    read_prefix,
    read_stream,
)

__all__ = [
    "FORMATS",
    "RECORDS",
    "STDIN",
    "ArrowStreamExportable",
    "Input",
    "InputFormat",
    "Item",
    "Reading",
    "Stream",
    "Table",
    "Text",
    "as_records",
    "display_name",
    "elements",
    "format_named_by",
    "format_of",
    "input_size",
    "is_stream",
    "iter_rows",
    "read_input",
    "read_prefix",
    "read_stream",
]
