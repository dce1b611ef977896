"""A row becomes a record {id, data, metadata}, or a rejection: no network.

The mapper (``_mapper``) is the one place that turns a row into a Record or a Rejection;
beside it: a table's cells typed (``_cells``), dotted paths and templates
(``_templates``), what JSON cannot hold (``_safety``), rejects-file lines read back
(``_replay``), long data split into chunks or counted when the model would not read it
all (``_chunking``).
"""

from ._chunking import CHUNK_KEY, Chunker, Chunks, LongData, chunk_id, chunk_of
from ._mapper import Mapper, Named

__all__ = [
    "CHUNK_KEY",
    "Chunker",
    "Chunks",
    "LongData",
    "Mapper",
    "Named",
    "chunk_id",
    "chunk_of",
]
