"""One run put together, read -> map -> batch -> send -> settle (:class:`Run`): the reading
loop, batching, the sender threads, the ledger, the files a run writes beside the index,
the stale chunks of records that became shorter, the checks before anything is sent."""

from ._batching import Item, as_fresh
from ._columns import check_types, read_settings
from ._pipeline import Run, check_run
from ._preflight import embedding_models, preflight
from ._reading import Reader, check_inputs

__all__ = [
    "Item",
    "Reader",
    "Run",
    "as_fresh",
    "check_inputs",
    "check_run",
    "check_types",
    "embedding_models",
    "preflight",
    "read_settings",
]
