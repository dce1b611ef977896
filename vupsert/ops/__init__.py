"""The commands that talk to an index beyond upserting: sync, verify, delete and export,
which keep it in step with a source and share a paged scan of a namespace, and query,
which shows what it holds nearest to a text."""

from ._delete import Ids, check_deletion, delete
from ._export import STDOUT_NAME, export
from ._query import query
from ._sync import SyncRun
from ._verify import Verifier

__all__ = [
    "STDOUT_NAME",
    "Ids",
    "SyncRun",
    "Verifier",
    "check_deletion",
    "delete",
    "export",
    "query",
]
