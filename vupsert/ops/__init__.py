"""The commands that keep an index in step with a source, beside the upsert: sync, verify,
delete, export, and the paged scan of a namespace they share."""

from ._delete import Ids, check_deletion, delete
from ._export import STDOUT_NAME, export
from ._sync import SyncRun
from ._verify import Verifier

__all__ = ["STDOUT_NAME", "Ids", "SyncRun", "Verifier", "check_deletion", "delete", "export"]
